//! The rules for what devices upload: activities, check-ins, settings, plan adjustments.

use crate::domain::{Activity, DailyMetric, PlanAdjustment, SettingKey, SettingsChange};
use crate::limits::{MAX_ID_CHARS, MAX_NOTES_CHARS};
use crate::validate::FieldError;
use crate::validate::FieldErrorCode;
use crate::validate::Validate;
use crate::validate::check_date;
use crate::validate::check_timestamp;
use crate::validate::in_range;
use crate::validate::opt_in_range;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

impl Validate for Activity {
    fn validate(&self, now: DateTime<Utc>) -> Result<(), FieldError> {
        check_timestamp("started_at", self.started_at, now)?;
        in_range("duration_s", self.duration_s, 1, 86_400)?;
        opt_in_range("distance_m", self.distance_m, 0.0, 1_000_000.0)?;
        opt_in_range("avg_hr", self.avg_hr, 25, 250)?;
        opt_in_range("rpe", self.rpe, 1, 10)?;
        opt_in_range("feeling", self.feeling, 1, 5)?;
        for (field, text) in [
            ("source_device", &self.source_device),
            ("external_id", &self.external_id),
        ] {
            let chars = text.as_deref().map(|t| t.chars().count());
            if chars.is_some_and(|n| n == 0 || n > MAX_ID_CHARS) {
                return Err(FieldError::new(
                    field,
                    FieldErrorCode::OutOfRange,
                    format!("{field} must have 1 to {MAX_ID_CHARS} characters"),
                ));
            }
        }
        if let Some(notes) = &self.notes {
            let chars = notes.chars().count();
            if chars > MAX_NOTES_CHARS {
                return Err(FieldError::new(
                    "notes",
                    FieldErrorCode::TooLong,
                    format!("notes must be at most {MAX_NOTES_CHARS} characters, got {chars}"),
                ));
            }
        }
        Ok(())
    }
}

impl Validate for DailyMetric {
    fn validate(&self, now: DateTime<Utc>) -> Result<(), FieldError> {
        check_date("date", self.date)?;
        opt_in_range("recovery_rating", self.recovery_rating, 1, 10)?;
        opt_in_range("sleep_hours", self.sleep_hours, 0.0, 24.0)?;
        opt_in_range("soreness", self.soreness, 1, 10)?;
        check_timestamp("submitted_at", self.submitted_at, now)
    }
}

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Validate for SettingsChange {
    fn validate(&self, now: DateTime<Utc>) -> Result<(), FieldError> {
        check_timestamp("changed_at", self.changed_at, now)?;
        let bad = |msg: &str| Err(FieldError::new("value", FieldErrorCode::InvalidValue, msg));
        match (self.key, &self.value) {
            (SettingKey::GoalRaceDate, Value::Null) => Ok(()),
            (SettingKey::GoalRaceDate, Value::String(s)) => {
                match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                    Ok(d) => check_date("value", d),
                    Err(_) => bad("goal_race_date must be a date YYYY-MM-DD or null"),
                }
            }
            (SettingKey::GoalRaceDate, _) => {
                bad("goal_race_date must be a date YYYY-MM-DD or null")
            }
            (SettingKey::AvailableTrainingDays, Value::Array(days)) => {
                let mut seen = Vec::new();
                for (i, day) in days.iter().enumerate() {
                    match day.as_str().filter(|d| WEEKDAYS.contains(d)) {
                        Some(d) if !seen.contains(&d) => seen.push(d),
                        Some(_) => {
                            return Err(FieldError::new(
                                format!("value[{i}]"),
                                FieldErrorCode::InvalidValue,
                                "available_training_days must not repeat a day",
                            ));
                        }
                        None => {
                            return Err(FieldError::new(
                                format!("value[{i}]"),
                                FieldErrorCode::InvalidValue,
                                "days are \"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\" or \"sun\"",
                            ));
                        }
                    }
                }
                Ok(())
            }
            (SettingKey::AvailableTrainingDays, _) => {
                bad("available_training_days must be a list of weekdays")
            }
            (SettingKey::Units, Value::String(s)) if s == "metric" || s == "imperial" => Ok(()),
            (SettingKey::Units, _) => bad("units must be \"metric\" or \"imperial\""),
            (SettingKey::Timezone, Value::String(s)) if is_tz_name(s) => Ok(()),
            (SettingKey::Timezone, _) => {
                bad("timezone must be an IANA time-zone name such as \"Europe/Berlin\"")
            }
            (SettingKey::NotificationsEnabled, Value::Bool(_)) => Ok(()),
            (SettingKey::NotificationsEnabled, _) => {
                bad("notifications_enabled must be true or false")
            }
        }
    }
}

fn is_tz_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+'))
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
}

impl Validate for PlanAdjustment {
    fn validate(&self, now: DateTime<Utc>) -> Result<(), FieldError> {
        check_date("new_date", self.new_date)?;
        check_timestamp("requested_at", self.requested_at, now)
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::*;
    use crate::validate::*;
    use crate::wire::RegisterDeviceRequest;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap()
    }

    fn activity() -> Value {
        json!({
            "id": "0b5f3c52-54c4-4f7a-9d8e-6f0f1c9e2a11",
            "activity_type": "run",
            "started_at": "2025-05-31T07:00:00Z",
            "duration_s": 3600,
            "distance_m": 10000.5,
            "avg_hr": 150,
            "rpe": 6,
            "notes": "easy",
            "feeling": 4,
            "source": "manual"
        })
    }

    fn error_for(mut item: Value, field: &str, value: Value) -> FieldError {
        if value.is_null() {
            item.as_object_mut().unwrap().remove(field);
        } else {
            item[field] = value;
        }
        validate_item::<Activity>(item, now()).unwrap_err()
    }

    #[test]
    fn a_valid_activity_passes() {
        let a: Activity = validate_item(activity(), now()).unwrap();
        assert_eq!(a.duration_s, 3600);
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            ("duration_s", json!(0), FieldErrorCode::OutOfRange),
            ("duration_s", json!(86_401), FieldErrorCode::OutOfRange),
            ("duration_s", json!("3600"), FieldErrorCode::InvalidType),
            ("distance_m", json!(1_000_000.5), FieldErrorCode::OutOfRange),
            ("avg_hr", json!(24), FieldErrorCode::OutOfRange),
            ("rpe", json!(11), FieldErrorCode::OutOfRange),
            ("feeling", json!(0), FieldErrorCode::OutOfRange),
            ("notes", json!("x".repeat(2001)), FieldErrorCode::TooLong),
            ("activity_type", json!("fly"), FieldErrorCode::InvalidValue),
            ("source", json!(null), FieldErrorCode::MissingField),
            (
                "started_at",
                json!("yesterday"),
                FieldErrorCode::InvalidFormat,
            ),
            (
                "started_at",
                json!("2031-01-01T00:00:00Z"),
                FieldErrorCode::OutOfRange,
            ),
            ("id", json!("not-a-uuid"), FieldErrorCode::InvalidFormat),
        ];
        for (field, value, code) in cases {
            let err = error_for(activity(), field, value.clone());
            assert_eq!(
                (err.field.as_str(), err.code),
                (field, code),
                "{field}={value}: {err:?}"
            );
        }
    }

    #[test]
    fn unknown_fields_are_named() {
        let mut item = activity();
        item["distanse_m"] = json!(5);
        let err = validate_item::<Activity>(item, now()).unwrap_err();
        assert_eq!(err.field, "distanse_m");
        assert_eq!(err.code, FieldErrorCode::UnknownField);
    }

    #[test]
    fn non_objects_are_refused() {
        let err = validate_item::<Activity>(json!([1]), now()).unwrap_err();
        assert_eq!(err.code, FieldErrorCode::InvalidType);
    }

    #[test]
    fn settings_values_follow_their_key() {
        let check = |key: &str, value: Value| {
            validate_item::<SettingsChange>(
                json!({"key": key, "value": value, "changed_at": "2025-05-31T07:00:00Z"}),
                now(),
            )
        };
        assert!(check("units", json!("metric")).is_ok());
        assert!(check("goal_race_date", json!("2025-10-12")).is_ok());
        assert!(check("goal_race_date", Value::Null).is_ok());
        assert!(check("available_training_days", json!(["mon", "wed"])).is_ok());
        assert!(check("timezone", json!("America/Argentina/Buenos_Aires")).is_ok());
        assert!(check("notifications_enabled", json!(false)).is_ok());
        assert_eq!(
            check("units", json!("furlongs")).unwrap_err().field,
            "value"
        );
        assert_eq!(
            check("available_training_days", json!(["mon", "mon"]))
                .unwrap_err()
                .field,
            "value[1]"
        );
        assert_eq!(check("timezone", json!("")).unwrap_err().field, "value");
        assert_eq!(check("colour", json!("red")).unwrap_err().field, "key");
    }

    #[test]
    fn daily_metrics_and_plan_adjustments_check_ranges() {
        let err = validate_item::<DailyMetric>(
            json!({"date": "2025-05-31", "sleep_hours": 25, "submitted_at": "2025-05-31T07:00:00Z"}),
            now(),
        )
        .unwrap_err();
        assert_eq!(
            (err.field.as_str(), err.code),
            ("sleep_hours", FieldErrorCode::OutOfRange)
        );
        let err = validate_item::<PlanAdjustment>(
            json!({"id": "0b5f3c52-54c4-4f7a-9d8e-6f0f1c9e2a11", "workout_id": "w 1",
                   "new_date": "2025-06-02", "requested_at": "2025-05-31T07:00:00Z"}),
            now(),
        )
        .unwrap_err();
        assert_eq!(err.field, "workout_id");
    }

    #[test]
    fn malformed_json_bytes_say_so() {
        let err = parse_json_bytes::<Value>(b"{\"a\":").unwrap_err();
        assert_eq!(err.code, FieldErrorCode::InvalidFormat);
        assert!(err.message.starts_with("malformed JSON"));
    }

    #[test]
    fn device_registrations_are_checked_field_by_field() {
        let now = Utc::now();
        let good = json!({"platform": "ios", "push_token": "a1b2c3", "app_version": "4.2.0",
            "os_version": "17.4", "network": "wifi", "locale": "de-CH"});
        let request: RegisterDeviceRequest = validate_item(good.clone(), now).unwrap();
        assert_eq!(request.platform, crate::wire::Platform::Ios);
        for (patch, field, code) in [
            (
                json!({"platform": "windows"}),
                "platform",
                FieldErrorCode::InvalidValue,
            ),
            (
                json!({"push_token": ""}),
                "push_token",
                FieldErrorCode::OutOfRange,
            ),
            (
                json!({"push_token": "x".repeat(MAX_PUSH_TOKEN_CHARS + 1)}),
                "push_token",
                FieldErrorCode::OutOfRange,
            ),
            (
                json!({"push_token": "has space"}),
                "push_token",
                FieldErrorCode::InvalidFormat,
            ),
            (
                json!({"app_version": 4}),
                "app_version",
                FieldErrorCode::InvalidType,
            ),
            (
                json!({"os_version": "1".repeat(MAX_VERSION_CHARS + 1)}),
                "os_version",
                FieldErrorCode::OutOfRange,
            ),
            (
                json!({"locale": "de CH"}),
                "locale",
                FieldErrorCode::InvalidFormat,
            ),
            (
                json!({"user_id": "someone-else"}),
                "user_id",
                FieldErrorCode::UnknownField,
            ),
        ] {
            let mut body = good.clone();
            for (k, v) in patch.as_object().unwrap() {
                body[k] = v.clone();
            }
            let err = validate_item::<RegisterDeviceRequest>(body, now).unwrap_err();
            assert_eq!((err.field.as_str(), err.code), (field, code), "{patch}");
        }
        let mut no_push = good;
        no_push["push_token"] = Value::Null;
        assert!(
            validate_item::<RegisterDeviceRequest>(no_push, now)
                .unwrap()
                .push_token
                .is_none()
        );
    }
}
