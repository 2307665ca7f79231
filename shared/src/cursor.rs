//! The opaque download cursor.
//!
//! Every change a user's data goes through gets a dense sequence number,
//! assigned in commit order (see `store`). A cursor names a position in that
//! sequence, so "everything after my cursor" misses nothing whatever the
//! clocks say. A snapshot cursor walks the current state of every entity
//! first (a download without `since`) and then continues from the sequence
//! the snapshot started at.

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
    /// Part-way through a full snapshot taken when the change log stood at `head`.
    Snapshot {
        /// Change-log head when the snapshot began; the log continues from here.
        head: u64,
        /// The last entity key delivered, if any.
        after: Option<String>,
    },
}

/// A `since` value that is not a cursor we issued nor an RFC 3339 timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a cursor issued by this server nor an RFC 3339 timestamp")]
pub struct CursorError;

impl Cursor {
    /// The cursor at the very start of the change log.
    pub const START: Cursor = Cursor::Log { seq: 0 };

    /// Encodes the cursor as an opaque URL-safe string.
    pub fn encode(&self) -> String {
        let raw = match self {
            Cursor::Log { seq } => format!("l:{seq}"),
            Cursor::Snapshot { head, after: None } => format!("s:{head}:"),
            Cursor::Snapshot {
                head,
                after: Some(key),
            } => format!("s:{head}:{key}"),
        };
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Decodes a string produced by [`Cursor::encode`].
    pub fn decode(s: &str) -> Result<Cursor, CursorError> {
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| CursorError)?;
        let raw = String::from_utf8(bytes).map_err(|_| CursorError)?;
        let mut parts = raw.splitn(3, ':');
        let tag = parts.next().ok_or(CursorError)?;
        let digits = parts.next().ok_or(CursorError)?;
        let number: u64 = digits.parse().map_err(|_| CursorError)?;
        // One spelling per position: no leading zeros or signs.
        if number.to_string() != digits {
            return Err(CursorError);
        }
        match (tag, parts.next()) {
            ("l", None) => Ok(Cursor::Log { seq: number }),
            ("s", Some("")) => Ok(Cursor::Snapshot {
                head: number,
                after: None,
            }),
            ("s", Some(key)) => Ok(Cursor::Snapshot {
                head: number,
                after: Some(key.to_owned()),
            }),
            _ => Err(CursorError),
        }
    }

    /// The change-log sequence this cursor has fully covered.
    pub fn covered_seq(&self) -> u64 {
        match self {
            Cursor::Log { seq } => *seq,
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
    /// Parses `since`: RFC 3339 timestamps contain `:`, which URL-safe base64 never does.
    pub fn parse(s: &str) -> Result<Since, CursorError> {
        if s.contains(':') {
            DateTime::parse_from_rfc3339(s)
                .map(|t| Since::Timestamp(t.with_timezone(&Utc)))
                .map_err(|_| CursorError)
        } else {
            Cursor::decode(s).map(Since::Cursor)
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
            (
                any::<u64>(),
                proptest::option::of("[a-z_]{1,12}#[A-Za-z0-9:#._-]{0,40}")
            )
                .prop_map(|(head, after)| Cursor::Snapshot { head, after }),
        ]
    }

    proptest! {
        #[test]
        fn cursors_round_trip(cursor in any_cursor()) {
            let encoded = cursor.encode();
            prop_assert!(!encoded.contains(':'));
            prop_assert_eq!(Since::parse(&encoded), Ok(Since::Cursor(cursor.clone())));
            prop_assert_eq!(Cursor::decode(&encoded), Ok(cursor));
        }

        #[test]
        fn garbage_is_refused_not_misread(s in "[A-Za-z0-9_-]{0,30}") {
            // Anything that decodes must re-encode to itself: no two strings name one position.
            if let Ok(cursor) = Cursor::decode(&s) {
                prop_assert_eq!(cursor.encode(), s);
            }
        }
    }

    #[test]
    fn timestamps_parse_as_timestamps() {
        let since = Since::parse("2025-01-14T08:00:00Z").unwrap();
        assert!(matches!(since, Since::Timestamp(_)));
        assert_eq!(Since::parse("2025-13-14T08:00:00Z"), Err(CursorError));
        assert_eq!(Since::parse("not-a-cursor"), Err(CursorError));
    }
}
