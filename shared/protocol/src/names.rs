//! Wire names of fieldless enums, taken from serde itself: an enum's
//! `as_str` and `parse` call these instead of keeping a second table of
//! names that could drift from its `#[serde(rename_all)]`.

use serde::de::value::{Error as ValueError, StrDeserializer};
use serde::de::{DeserializeOwned, IntoDeserializer};
use serde::ser::{Impossible, Serialize, Serializer};

/// The serde name of a unit variant (`EntityKind::DailyMetric` →
/// `"daily_metric"`); `None` for a value that is not a unit variant.
pub fn wire_name<T: Serialize + ?Sized>(value: &T) -> Option<&'static str> {
    value.serialize(VariantName).ok()
}

/// The value whose serde name is `name`, if any.
pub fn from_wire_name<T: DeserializeOwned>(name: &str) -> Option<T> {
    let deserializer: StrDeserializer<'_, ValueError> = name.into_deserializer();
    T::deserialize(deserializer).ok()
}

/// A serializer that answers the variant name of a unit variant, the
/// `&'static str` serde_derive passes it, and refuses everything else.
struct VariantName;

/// Anything but a unit variant.
#[derive(Debug)]
struct NotAUnitVariant;

impl std::fmt::Display for NotAUnitVariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a unit variant")
    }
}

impl std::error::Error for NotAUnitVariant {}

impl serde::ser::Error for NotAUnitVariant {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        NotAUnitVariant
    }
}

type Refused = Result<&'static str, NotAUnitVariant>;

impl Serializer for VariantName {
    type Ok = &'static str;
    type Error = NotAUnitVariant;
    type SerializeSeq = Impossible<&'static str, NotAUnitVariant>;
    type SerializeTuple = Impossible<&'static str, NotAUnitVariant>;
    type SerializeTupleStruct = Impossible<&'static str, NotAUnitVariant>;
    type SerializeTupleVariant = Impossible<&'static str, NotAUnitVariant>;
    type SerializeMap = Impossible<&'static str, NotAUnitVariant>;
    type SerializeStruct = Impossible<&'static str, NotAUnitVariant>;
    type SerializeStructVariant = Impossible<&'static str, NotAUnitVariant>;

    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Refused {
        Ok(variant)
    }

    fn serialize_bool(self, _: bool) -> Refused {
        Err(NotAUnitVariant)
    }
    fn serialize_i8(self, _: i8) -> Refused {
        Err(NotAUnitVariant)
    }
    fn serialize_i16(self, _: i16) -> Refused {
        Err(NotAUnitVariant)
    }
    fn serialize_i32(self, _: i32) -> Refused {
        Err(NotAUnitVariant)
    }
    fn serialize_i64(self, _: i64) -> Refused {
        Err(NotAUnitVariant)
    }
    fn serialize_u8(self, _: u8) -> Refused {
        Err(NotAUnitVariant)
    }
    fn serialize_u16(self, _: u16) -> Refused {
        Err(NotAUnitVariant)
    }
    fn serialize_u32(self, _: u32) -> Refused {
        Err(NotAUnitVariant)
    }
    fn serialize_u64(self, _: u64) -> Refused {
        Err(NotAUnitVariant)
    }
    fn serialize_f32(self, _: f32) -> Refused {
        Err(NotAUnitVariant)
    }
    fn serialize_f64(self, _: f64) -> Refused {
        Err(NotAUnitVariant)
    }
    fn serialize_char(self, _: char) -> Refused {
        Err(NotAUnitVariant)
    }
    fn serialize_str(self, _: &str) -> Refused {
        Err(NotAUnitVariant)
    }
    fn serialize_bytes(self, _: &[u8]) -> Refused {
        Err(NotAUnitVariant)
    }
    fn serialize_none(self) -> Refused {
        Err(NotAUnitVariant)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Refused {
        Err(NotAUnitVariant)
    }
    fn serialize_unit(self) -> Refused {
        Err(NotAUnitVariant)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Refused {
        Err(NotAUnitVariant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, _: &T) -> Refused {
        Err(NotAUnitVariant)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Refused {
        Err(NotAUnitVariant)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, NotAUnitVariant> {
        Err(NotAUnitVariant)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, NotAUnitVariant> {
        Err(NotAUnitVariant)
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, NotAUnitVariant> {
        Err(NotAUnitVariant)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, NotAUnitVariant> {
        Err(NotAUnitVariant)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, NotAUnitVariant> {
        Err(NotAUnitVariant)
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, NotAUnitVariant> {
        Err(NotAUnitVariant)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, NotAUnitVariant> {
        Err(NotAUnitVariant)
    }
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
