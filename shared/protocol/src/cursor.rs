//! The opaque download cursor.
//!
//! Every change a user's data goes through gets a dense sequence number,
//! assigned in commit order (see `store`). A cursor names a position in that
//! sequence, so "everything after my cursor" misses nothing whatever the
//! clocks say. A snapshot cursor walks the current state of every entity
//! first (a download without `since`) and then continues from the sequence
//! the snapshot started at.
//!
//! A cursor names a position in one user's log, so it carries a short tag of
//! the user it was issued to: a cursor quoted under another account (an app
//! that kept it across a log-out) is refused instead of silently skipping
//! that account's changes. The tag is a guard against mix-ups, not a secret:
//! every read is scoped to the token's user anyway.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};

/// A position a download continues from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// After change-log entry `seq` (0 = before the first change).
    Log {
        /// Last sequence number the holder has seen.
        seq: u64,
    },
    /// After `seq`, except low-priority changes from `from` on, which a
    /// cellular download deferred; a Wi-Fi download delivers them first.
    Deferred {
        /// Last sequence number the holder has seen (high and medium priority).
        seq: u64,
        /// First sequence number of a deferred low-priority change.
        from: u64,
    },
    /// Part-way through a full snapshot taken when the change log stood at `head`.
    Snapshot {
        /// Change-log head when the snapshot began; the log continues from here.
        head: u64,
        /// The last entity key delivered, if any.
        after: Option<String>,
    },
}

/// Why a cursor (or `since` value) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// Not a cursor this server issued, nor an RFC 3339 timestamp.
    #[error("not a cursor issued by this server nor an RFC 3339 timestamp")]
    Malformed,
    /// Issued to another account.
    #[error("this cursor was issued to another account: download without `since` to start over")]
    OtherAccount,
}

use CursorError::Malformed;

impl CursorError {
    /// The validation error for the request field that carried the cursor.
    pub fn field_error(&self, field: &str) -> crate::validate::FieldError {
        use crate::validate::{FieldError, FieldErrorCode};
        let code = match self {
            Malformed => FieldErrorCode::InvalidFormat,
            CursorError::OtherAccount => FieldErrorCode::InvalidValue,
        };
        FieldError::new(field, code, self.to_string())
    }
}

/// The short tag binding a cursor to the account it was issued to.
fn scope_tag(scope: &str) -> String {
    // The first four bytes of the digest.
    crate::digest::sha256_hex(scope)[..8].to_owned()
}

impl Cursor {
    /// The cursor at the very start of the change log.
    pub const START: Cursor = Cursor::Log { seq: 0 };

    /// Encodes the cursor for the account `scope` as an opaque URL-safe string.
    pub fn encode(&self, scope: &str) -> String {
        let tag = scope_tag(scope);
        let raw = match self {
            Cursor::Log { seq } => format!("{tag}|l|{seq}"),
            Cursor::Deferred { seq, from } => format!("{tag}|d|{seq}|{from}"),
            Cursor::Snapshot { head, after } => {
                format!("{tag}|s|{head}|{}", after.as_deref().unwrap_or(""))
            }
        };
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Decodes a string [`Cursor::encode`] produced for the same `scope`.
    pub fn decode(s: &str, scope: &str) -> Result<Cursor, CursorError> {
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| Malformed)?;
        let raw = String::from_utf8(bytes).map_err(|_| Malformed)?;
        let mut parts = raw.splitn(4, '|');
        let (tag, kind, digits) = (
            parts.next().ok_or(Malformed)?,
            parts.next().ok_or(Malformed)?,
            parts.next().ok_or(Malformed)?,
        );
        let number: u64 = digits.parse().map_err(|_| Malformed)?;
        // One spelling per position: no leading zeros or signs.
        if number.to_string() != digits || tag.len() != 8 {
            return Err(Malformed);
        }
        let cursor = match (kind, parts.next()) {
            ("l", None) => Cursor::Log { seq: number },
            ("d", Some(from)) => {
                let from_number: u64 = from.parse().map_err(|_| Malformed)?;
                if from_number.to_string() != from || from_number == 0 || from_number > number {
                    return Err(Malformed);
                }
                Cursor::Deferred {
                    seq: number,
                    from: from_number,
                }
            }
            ("s", Some(after)) => Cursor::Snapshot {
                head: number,
                after: Some(after.to_owned()).filter(|a| !a.is_empty()),
            },
            _ => return Err(Malformed),
        };
        if tag != scope_tag(scope) {
            return Err(CursorError::OtherAccount);
        }
        Ok(cursor)
    }

    /// The change-log sequence this cursor has fully covered.
    pub fn covered_seq(&self) -> u64 {
        match self {
            Cursor::Log { seq } => *seq,
            // Deferred changes are not delivered yet: keep them in the log.
            Cursor::Deferred { from, .. } => from - 1,
            // A snapshot in progress covers nothing for sure yet.
            Cursor::Snapshot { .. } => 0,
        }
    }
}

/// Where a download starts, as the client gave it in `since`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Since {
    /// A cursor this server issued.
    Cursor(Cursor),
    /// An RFC 3339 timestamp (PRD compatibility: may repeat a change, never misses one).
    Timestamp(DateTime<Utc>),
}

impl Since {
    /// Parses `since` for account `scope`: RFC 3339 timestamps contain `:`,
    /// which URL-safe base64 never does.
    pub fn parse(s: &str, scope: &str) -> Result<Since, CursorError> {
        if s.contains(':') {
            DateTime::parse_from_rfc3339(s)
                .map(|t| Since::Timestamp(t.with_timezone(&Utc)))
                .map_err(|_| Malformed)
        } else {
            Cursor::decode(s, scope).map(Since::Cursor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_cursor() -> impl Strategy<Value = Cursor> {
        prop_oneof![
            any::<u64>().prop_map(|seq| Cursor::Log { seq }),
            (1u64.., 0u64..).prop_filter_map("from <= seq", |(from, extra)| {
                Some(Cursor::Deferred {
                    seq: from.checked_add(extra)?,
                    from,
                })
            }),
            (
                any::<u64>(),
                proptest::option::of("[a-z_]{1,12}#[A-Za-z0-9:|#._-]{1,40}")
            )
                .prop_map(|(head, after)| Cursor::Snapshot { head, after }),
        ]
    }

    proptest! {
        #[test]
        fn cursors_round_trip(cursor in any_cursor(), user in "[a-z0-9|-]{1,20}") {
            let encoded = cursor.encode(&user);
            prop_assert!(!encoded.contains(':'));
            prop_assert_eq!(Since::parse(&encoded, &user), Ok(Since::Cursor(cursor.clone())));
            prop_assert_eq!(Cursor::decode(&encoded, &user), Ok(cursor));
        }

        #[test]
        fn a_cursor_is_refused_under_another_account(cursor in any_cursor(), a in "[a-z]{1,8}", b in "[a-z]{1,8}") {
            prop_assume!(a != b);
            prop_assert_eq!(Cursor::decode(&cursor.encode(&a), &b), Err(CursorError::OtherAccount));
        }

        #[test]
        fn garbage_is_refused_not_misread(s in "[A-Za-z0-9_-]{0,40}") {
            // Anything that decodes must re-encode to itself: no two strings name one position.
            if let Ok(cursor) = Cursor::decode(&s, "u") {
                prop_assert_eq!(cursor.encode("u"), s);
            }
        }
    }

    #[test]
    fn timestamps_parse_as_timestamps() {
        let since = Since::parse("2025-01-14T08:00:00Z", "u").unwrap();
        assert!(matches!(since, Since::Timestamp(_)));
        assert_eq!(Since::parse("2025-13-14T08:00:00Z", "u"), Err(Malformed));
        assert_eq!(Since::parse("not-a-cursor", "u"), Err(Malformed));
    }
}
