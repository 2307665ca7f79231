//! Validation of what the backend publishes: metrics, alerts, coach's notes.

use crate::domain::{Alert, CalculatedMetrics};
use crate::validate::{FieldError, FieldErrorCode, Validate};
use chrono::{DateTime, Utc};

impl Validate for CalculatedMetrics {
    fn validate(&self, _now: DateTime<Utc>) -> Result<(), FieldError> {
        let finite = [
            ("atl", Some(self.atl)),
            ("ctl", Some(self.ctl)),
            ("tsb", Some(self.tsb)),
            ("acwr", self.acwr),
        ];
        for (field, value) in finite {
            if value.is_some_and(|v| !v.is_finite() || v.abs() > 100_000.0) {
                return Err(FieldError::new(
                    field,
                    FieldErrorCode::OutOfRange,
                    format!("{field} must be a finite number of reasonable size"),
                ));
            }
        }
        if self.readiness.is_some_and(|r| r > 100) {
            return Err(FieldError::new(
                "readiness",
                FieldErrorCode::OutOfRange,
                "readiness must be between 0 and 100",
            ));
        }
        Ok(())
    }
}

impl Validate for Alert {
    fn validate(&self, now: DateTime<Utc>) -> Result<(), FieldError> {
        crate::validate::check_timestamp("created_at", self.created_at, now)?;
        for (field, key) in [("title_key", &self.title_key), ("body_key", &self.body_key)] {
            if key.is_empty() || key.len() > 128 {
                return Err(FieldError::new(
                    field,
                    FieldErrorCode::OutOfRange,
                    format!("{field} must have 1 to 128 characters"),
                ));
            }
        }
        if serde_json::to_vec(&self.params).map_or(0, |v| v.len()) > 1024 {
            return Err(FieldError::new(
                "params",
                FieldErrorCode::TooLong,
                "params must stay under 1 KiB (notifications carry no health data)",
            ));
        }
        Ok(())
    }
}
