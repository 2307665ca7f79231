//! Validation of uploaded items: schema (via serde, naming the failing field)
//! and value ranges. The client runs the same rules before it queues an item.

use crate::limits::MAX_CLIENT_CLOCK_SKEW_SECS;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Machine-readable reason a field was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldErrorCode {
    /// A required field is absent.
    MissingField,
    /// A field the schema does not have (refused so a typo never drops data silently).
    UnknownField,
    /// The JSON type is wrong (e.g. a string where a number belongs).
    InvalidType,
    /// Not one of the allowed values.
    InvalidValue,
    /// A date, timestamp or id that does not parse.
    InvalidFormat,
    /// A number outside its allowed range, or a time too far off.
    OutOfRange,
    /// A text longer than allowed.
    TooLong,
}

/// One field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// Dotted path of the field (`duration_s`, `value[2]`); `""` for the item itself.
    pub field: String,
    /// Why.
    pub code: FieldErrorCode,
    /// A sentence for a human.
    pub message: String,
}

impl FieldError {
    /// A new error for `field`.
    pub fn new(field: impl Into<String>, code: FieldErrorCode, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code,
            message: message.into(),
        }
    }
}

/// Deserializes `value` as `T`, turning serde's error into a [`FieldError`] that
/// names the failing field.
pub fn parse_json<T: DeserializeOwned>(value: Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        classify_serde_error(if path == "." { String::new() } else { path }, message)
    })
}

/// Like [`parse_json`] for raw bytes (a request body).
pub fn parse_json_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, FieldError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return FieldError::new(
                "",
                FieldErrorCode::InvalidFormat,
                format!("malformed JSON: {inner}"),
            );
        }
        classify_serde_error(
            if path == "." { String::new() } else { path },
            inner.to_string(),
        )
    })
}

fn classify_serde_error(path: String, message: String) -> FieldError {
    // serde reports missing and unknown fields at the parent; name the field itself.
    let quoted = || {
        message
            .split('`')
            .nth(1)
            .map(|name| join_path(&path, name))
            .unwrap_or_else(|| path.clone())
    };
    let message = message
        .split(" at line ")
        .next()
        .unwrap_or(&message)
        .to_string();
    if message.starts_with("missing field") {
        FieldError::new(quoted(), FieldErrorCode::MissingField, message)
    } else if message.starts_with("unknown field") {
        // serde_path_to_error already ends the path with the unknown name.
        FieldError::new(path, FieldErrorCode::UnknownField, message)
    } else if message.starts_with("invalid type") {
        FieldError::new(path, FieldErrorCode::InvalidType, message)
    } else if message.starts_with("unknown variant") {
        FieldError::new(path, FieldErrorCode::InvalidValue, message)
    } else if message.starts_with("invalid value") {
        FieldError::new(path, FieldErrorCode::OutOfRange, message)
    } else {
        FieldError::new(path, FieldErrorCode::InvalidFormat, message)
    }
}

fn join_path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

/// Range and consistency rules beyond the schema.
pub trait Validate {
    /// Checks the value against the rules, with `now` as the server's clock.
    fn validate(&self, now: DateTime<Utc>) -> Result<(), FieldError>;
}

/// Parses and validates one uploaded item.
pub fn validate_item<T: DeserializeOwned + Validate>(
    value: Value,
    now: DateTime<Utc>,
) -> Result<T, FieldError> {
    if !value.is_object() {
        return Err(FieldError::new(
            "",
            FieldErrorCode::InvalidType,
            "each item must be a JSON object",
        ));
    }
    let item: T = parse_json(value)?;
    item.validate(now)?;
    Ok(item)
}

pub(crate) fn in_range<T: PartialOrd + std::fmt::Display>(
    field: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), FieldError> {
    if value < min || value > max {
        return Err(FieldError::new(
            field,
            FieldErrorCode::OutOfRange,
            format!("{field} must be between {min} and {max}, got {value}"),
        ));
    }
    Ok(())
}

pub(crate) fn opt_in_range<T: PartialOrd + std::fmt::Display + Copy>(
    field: &str,
    value: Option<T>,
    min: T,
    max: T,
) -> Result<(), FieldError> {
    value.map_or(Ok(()), |v| in_range(field, v, min, max))
}

/// Earliest timestamp accepted anywhere in the protocol.
pub fn earliest_timestamp() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
        .single()
        .expect("2000-01-01 is a valid date")
}

/// Checks a client timestamp lies between 2000-01-01 and `now` plus the allowed skew.
pub fn check_timestamp(
    field: &str,
    t: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), FieldError> {
    let latest = now + Duration::seconds(MAX_CLIENT_CLOCK_SKEW_SECS);
    if t < earliest_timestamp() || t > latest {
        return Err(FieldError::new(
            field,
            FieldErrorCode::OutOfRange,
            format!("{field} must lie between 2000-01-01 and one day from now, got {t}"),
        ));
    }
    Ok(())
}

pub(crate) fn check_date(field: &str, d: NaiveDate) -> Result<(), FieldError> {
    let min = earliest_timestamp().date_naive();
    let max = NaiveDate::from_ymd_opt(2100, 12, 31).expect("valid date");
    if d < min || d > max {
        return Err(FieldError::new(
            field,
            FieldErrorCode::OutOfRange,
            format!("{field} must lie between {min} and {max}, got {d}"),
        ));
    }
    Ok(())
}

/// Checks `text` has 1 to `max` characters, all printable ASCII without spaces
/// (tokens, versions and locale tags never need more).
pub(crate) fn check_token_text(field: &str, text: &str, max: usize) -> Result<(), FieldError> {
    let len = text.chars().count();
    if len == 0 || len > max {
        return Err(FieldError::new(
            field,
            FieldErrorCode::OutOfRange,
            format!("{field} must have 1 to {max} characters, got {len}"),
        ));
    }
    if !text.chars().all(|c| c.is_ascii_graphic()) {
        return Err(FieldError::new(
            field,
            FieldErrorCode::InvalidFormat,
            format!("{field} may only contain printable ASCII characters without spaces"),
        ));
    }
    Ok(())
}

mod backend;
mod entities;
