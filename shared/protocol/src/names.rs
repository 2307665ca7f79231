//! Wire names of fieldless enums, taken from serde itself: an enum's
//! `as_str` and `parse` call these instead of keeping a second table of
//! names that could drift from its `#[serde(rename_all)]`.

use serde::Serialize;
use serde::de::value::{Error as ValueError, StrDeserializer};
use serde::de::{DeserializeOwned, IntoDeserializer};

/// The serde name of a unit variant (`EntityKind::DailyMetric` →
/// `"daily_metric"`); `None` for a value that is not a unit variant.
pub fn wire_name<T: Serialize>(value: &T) -> Option<&'static str> {
    serde_variant::to_variant_name(value).ok()
}

/// The value whose serde name is `name`, if any.
pub fn from_wire_name<T: DeserializeOwned>(name: &str) -> Option<T> {
    let deserializer: StrDeserializer<'_, ValueError> = name.into_deserializer();
    T::deserialize(deserializer).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EntityKind, SettingKey};

    #[test]
    fn names_are_serdes_and_round_trip() {
        for kind in EntityKind::ALL {
            let name = wire_name(&kind).expect("a unit variant");
            assert_eq!(serde_json::to_value(kind).unwrap(), name);
            assert_eq!(from_wire_name::<EntityKind>(name), Some(kind));
        }
        assert_eq!(wire_name(&SettingKey::GoalRaceDate), Some("goal_race_date"));
        assert_eq!(from_wire_name::<EntityKind>("nonsense"), None);
        assert_eq!(wire_name(&"a string"), None);
        assert_eq!(wire_name(&Some(3)), None);
    }
}
