//! Identity newtypes. Constructed only through validation, so a value of
//! these types is always safe to use in a storage key.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::limits::MAX_ID_CHARS;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Empty string.
    #[error("must not be empty")]
    Empty,
    /// Longer than [`MAX_ID_CHARS`].
    #[error("must be at most {MAX_ID_CHARS} characters")]
    TooLong,
    /// Contains characters outside the allowed set.
    #[error("may only contain letters, digits and . _ : @ | -")]
    BadCharacters,
}

fn check_id(value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty);
    }
    if value.chars().count() > MAX_ID_CHARS {
        return Err(IdError::TooLong);
    }
    // `#` separates key segments; keep ids to a conservative, printable set.
    let ok = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '@' | '|' | '-'));
    if ok {
        Ok(())
    } else {
        Err(IdError::BadCharacters)
    }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `value`.
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check_id(&value)?;
                Ok(Self(value))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// The user, always taken from the verified token's `sub`.
    UserId
);
string_id!(
    /// A device of a user, from the token's `device_id` claim.
    DeviceId
);
string_id!(
    /// A workout of the training plan.
    WorkoutId
);

/// A sync session opened by `/sync/check` (UUID v7, so sessions sort by time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SyncId(pub Uuid);

impl SyncId {
    /// A fresh, time-ordered session id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for SyncId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for SyncId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The client's idempotency key for one request (PRD 6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SyncRequestId(pub Uuid);

impl fmt::Display for SyncRequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_refuse_key_separators_and_empty_values() {
        assert_eq!(UserId::parse(""), Err(IdError::Empty));
        assert_eq!(UserId::parse("a#b"), Err(IdError::BadCharacters));
        assert_eq!(
            DeviceId::parse("x".repeat(MAX_ID_CHARS + 1)),
            Err(IdError::TooLong)
        );
        assert_eq!(
            UserId::parse("auth0|abc-123").unwrap().as_str(),
            "auth0|abc-123"
        );
    }

    #[test]
    fn ids_deserialize_through_validation() {
        assert!(serde_json::from_str::<DeviceId>("\"phone-1\"").is_ok());
        assert!(serde_json::from_str::<DeviceId>("\"bad id\"").is_err());
    }
}
