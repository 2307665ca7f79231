//! Shared reference data: common to all users, versioned (exercise library,
//! zone formulas, articles).
//!
//! The backend publishes a whole [`ReferenceSnapshot`] at a time under a new,
//! strictly increasing `version`; a published version never changes, so
//! `GET /reference/{version}` is cacheable forever. Clients poll
//! `GET /reference/current` (a [`ReferenceCurrent`]) and download a version
//! only when it is newer than theirs. See `docs/reference-data.md`.
//!
//! Client-safe: serde only, no AWS.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::validate::{FieldError, FieldErrorCode, Validate, check_timestamp};

/// Most entries one snapshot may hold.
pub const MAX_REFERENCE_ENTRIES: usize = 5000;
/// Longest entry id (characters of `[a-z0-9_.-]`).
pub const MAX_REFERENCE_ID_CHARS: usize = 128;
/// Longest entry title (characters).
pub const MAX_REFERENCE_TITLE_CHARS: usize = 200;
/// Largest entry `body`, as compact JSON (bytes).
pub const MAX_REFERENCE_BODY_BYTES: usize = 64 * 1024;
/// Longest `media_url` (characters).
pub const MAX_MEDIA_URL_CHARS: usize = 2048;
/// Largest snapshot as compact JSON (bytes). Served uncompressed to clients
/// that do not accept gzip, it must fit a Lambda response (6 MB, with JSON
/// escaping of the body in the Lambda envelope); gzip'd it is smaller still,
/// so its base64 form fits as well.
pub const MAX_SNAPSHOT_JSON_BYTES: usize = 4 * 1024 * 1024;

/// What a reference entry describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceKind {
    /// An exercise of the exercise library.
    Exercise,
    /// A training-zone formula.
    ZoneFormula,
    /// An article.
    Article,
}

impl ReferenceKind {
    /// The kind's wire name.
    pub fn as_str(self) -> &'static str {
        // serde\'s name: one source for it. Every variant of a fieldless enum has one.
        crate::names::wire_name(&self).expect("a unit variant has a wire name")
    }
}

/// One piece of reference data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceEntry {
    /// Stable id, unique within a snapshot: 1 to 128 characters of `[a-z0-9_.-]`.
    pub id: String,
    /// What it is.
    pub kind: ReferenceKind,
    /// Human-readable title (1 to 200 characters).
    pub title: String,
    /// Kind-specific content: a JSON object of at most 64 KiB.
    pub body: Value,
    /// An image or video for the entry; `https://` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_url: Option<String>,
    /// When the entry's content last changed.
    pub updated_at: DateTime<Utc>,
}

/// A complete, immutable set of reference data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceSnapshot {
    /// Version, at least 1; each publication's is above every earlier one.
    pub version: u64,
    /// When it was published.
    pub published_at: DateTime<Utc>,
    /// The entries, at most [`MAX_REFERENCE_ENTRIES`], ids unique.
    pub entries: Vec<ReferenceEntry>,
}

/// `GET /reference/current`: which version to fetch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceCurrent {
    /// The newest published version.
    pub version: u64,
    /// Where to fetch it (`/reference/{version}`).
    pub url: String,
    /// The server's clock.
    pub server_timestamp: DateTime<Utc>,
}

impl ReferenceCurrent {
    /// The answer for `version` at `now`.
    pub fn new(version: u64, now: DateTime<Utc>) -> Self {
        Self {
            version,
            url: reference_url(version),
            server_timestamp: now,
        }
    }
}

/// Storage partitions every snapshot and "current version" pointer is
/// replicated to (server side; here so docs, server and tests agree).
/// Reads spread evenly over them: see `docs/reference-data.md` for the arithmetic.
pub const REFERENCE_SHARDS: u32 = 8;

/// A shard chosen at random, for one read.
pub fn random_shard() -> u32 {
    u32::from(uuid::Uuid::new_v4().as_bytes()[0]) % REFERENCE_SHARDS
}

/// What publishing a snapshot did (`ReferenceStore::publish_reference` on the server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    /// Stored on every shard and made current (unless a newer version
    /// finished first, which stays current).
    Published {
        /// The version.
        version: u64,
    },
    /// This version was already published with the same entries (a retried
    /// ingest); nothing new was stored, an interrupted publication was finished.
    AlreadyPublished {
        /// The version.
        version: u64,
    },
    /// Refused: this version was already published with other entries.
    VersionConflict {
        /// The version.
        version: u64,
    },
    /// Refused: a version at least as new was published before.
    Stale {
        /// The version offered.
        version: u64,
        /// The newest version published (or being published).
        latest: u64,
    },
    /// Refused: the snapshot breaks a rule (the field is named).
    Invalid(FieldError),
}

impl PublishOutcome {
    /// Whether the version is now stored (newly or before).
    pub fn is_published(&self) -> bool {
        matches!(
            self,
            PublishOutcome::Published { .. } | PublishOutcome::AlreadyPublished { .. }
        )
    }
}

/// The path a version is served at.
pub fn reference_url(version: u64) -> String {
    format!("/reference/{version}")
}

/// Whether `id` is a valid entry id.
pub fn is_reference_id(id: &str) -> bool {
    (1..=MAX_REFERENCE_ID_CHARS).contains(&id.len())
        && id.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
        })
}

/// Whether `url` is an acceptable `media_url`: `https://`, a host, no spaces
/// or control characters.
fn is_media_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    !host.is_empty()
        && !host.contains('@')
        && url.chars().count() <= MAX_MEDIA_URL_CHARS
        && url.chars().all(|c| !c.is_whitespace() && !c.is_control())
}

impl ReferenceEntry {
    /// Checks the entry; `field` prefixes the names of failing fields (`entries[3]`).
    fn validate_at(&self, field: &str, now: DateTime<Utc>) -> Result<(), FieldError> {
        let name = |f: &str| format!("{field}.{f}");
        if !is_reference_id(&self.id) {
            return Err(FieldError::new(
                name("id"),
                FieldErrorCode::InvalidFormat,
                format!("id must be 1 to {MAX_REFERENCE_ID_CHARS} characters of a-z, 0-9, _ . -"),
            ));
        }
        let title = self.title.trim();
        if title.is_empty() {
            return Err(FieldError::new(
                name("title"),
                FieldErrorCode::InvalidValue,
                "title must not be blank",
            ));
        }
        let chars = self.title.chars().count();
        if chars > MAX_REFERENCE_TITLE_CHARS {
            return Err(FieldError::new(
                name("title"),
                FieldErrorCode::TooLong,
                format!(
                    "title must be at most {MAX_REFERENCE_TITLE_CHARS} characters, got {chars}"
                ),
            ));
        }
        if !self.body.is_object() {
            return Err(FieldError::new(
                name("body"),
                FieldErrorCode::InvalidType,
                "body must be a JSON object",
            ));
        }
        let bytes = serde_json::to_vec(&self.body).map_or(usize::MAX, |b| b.len());
        if bytes > MAX_REFERENCE_BODY_BYTES {
            return Err(FieldError::new(
                name("body"),
                FieldErrorCode::TooLong,
                format!(
                    "body must be at most {MAX_REFERENCE_BODY_BYTES} bytes of JSON, got {bytes}"
                ),
            ));
        }
        if let Some(url) = &self.media_url
            && !is_media_url(url)
        {
            return Err(FieldError::new(
                name("media_url"),
                FieldErrorCode::InvalidFormat,
                format!(
                    "media_url must be an https:// URL of at most {MAX_MEDIA_URL_CHARS} characters"
                ),
            ));
        }
        check_timestamp(&name("updated_at"), self.updated_at, now)
    }
}

impl Validate for ReferenceSnapshot {
    fn validate(&self, now: DateTime<Utc>) -> Result<(), FieldError> {
        if self.version == 0 {
            return Err(FieldError::new(
                "version",
                FieldErrorCode::OutOfRange,
                "version must be at least 1",
            ));
        }
        check_timestamp("published_at", self.published_at, now)?;
        if self.entries.len() > MAX_REFERENCE_ENTRIES {
            return Err(FieldError::new(
                "entries",
                FieldErrorCode::TooLong,
                format!(
                    "a snapshot holds at most {MAX_REFERENCE_ENTRIES} entries, got {}",
                    self.entries.len()
                ),
            ));
        }
        let mut seen = HashSet::with_capacity(self.entries.len());
        for (i, entry) in self.entries.iter().enumerate() {
            let field = format!("entries[{i}]");
            entry.validate_at(&field, now)?;
            if !seen.insert(entry.id.as_str()) {
                return Err(FieldError::new(
                    format!("{field}.id"),
                    FieldErrorCode::InvalidValue,
                    format!("id {:?} appears twice", entry.id),
                ));
            }
        }
        let bytes = serde_json::to_vec(self).map_or(usize::MAX, |b| b.len());
        if bytes > MAX_SNAPSHOT_JSON_BYTES {
            return Err(FieldError::new(
                "entries",
                FieldErrorCode::TooLong,
                format!(
                    "a snapshot is at most {MAX_SNAPSHOT_JSON_BYTES} bytes of JSON, got {bytes}"
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap()
    }

    fn entry(id: &str) -> ReferenceEntry {
        ReferenceEntry {
            id: id.into(),
            kind: ReferenceKind::Exercise,
            title: "Squat".into(),
            body: json!({"muscles": ["quads"]}),
            media_url: Some("https://cdn.example.com/squat.mp4".into()),
            updated_at: now(),
        }
    }

    fn snapshot(entries: Vec<ReferenceEntry>) -> ReferenceSnapshot {
        ReferenceSnapshot {
            version: 1,
            published_at: now(),
            entries,
        }
    }

    #[test]
    fn a_valid_snapshot_passes_and_round_trips() {
        let s = snapshot(vec![entry("squat"), entry("z2.karvonen")]);
        s.validate(now()).unwrap();
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.contains(r#""kind":"exercise""#), "{text}");
        assert_eq!(serde_json::from_str::<ReferenceSnapshot>(&text).unwrap(), s);
    }

    #[test]
    fn failing_fields_are_named() {
        type Change = Box<dyn Fn(&mut ReferenceSnapshot)>;
        let cases: Vec<(Change, &str, FieldErrorCode)> = vec![
            (
                Box::new(|s| s.version = 0),
                "version",
                FieldErrorCode::OutOfRange,
            ),
            (
                Box::new(|s| s.entries[1].id = "Squat".into()),
                "entries[1].id",
                FieldErrorCode::InvalidFormat,
            ),
            (
                Box::new(|s| s.entries[1].id = "a".repeat(129)),
                "entries[1].id",
                FieldErrorCode::InvalidFormat,
            ),
            (
                Box::new(|s| s.entries[1].id = "a".into()),
                "entries[1].id",
                FieldErrorCode::InvalidValue,
            ),
            (
                Box::new(|s| s.entries[1].title = " ".into()),
                "entries[1].title",
                FieldErrorCode::InvalidValue,
            ),
            (
                Box::new(|s| s.entries[0].title = "t".repeat(201)),
                "entries[0].title",
                FieldErrorCode::TooLong,
            ),
            (
                Box::new(|s| s.entries[0].body = json!([1])),
                "entries[0].body",
                FieldErrorCode::InvalidType,
            ),
            (
                Box::new(|s| s.entries[0].body = json!({"t": "x".repeat(70_000)})),
                "entries[0].body",
                FieldErrorCode::TooLong,
            ),
            (
                Box::new(|s| s.entries[1].media_url = Some("http://cdn.example.com/a".into())),
                "entries[1].media_url",
                FieldErrorCode::InvalidFormat,
            ),
            (
                Box::new(|s| s.entries[1].media_url = Some("https:///a".into())),
                "entries[1].media_url",
                FieldErrorCode::InvalidFormat,
            ),
            (
                Box::new(|s| s.entries[1].updated_at = now() + chrono::Duration::days(3)),
                "entries[1].updated_at",
                FieldErrorCode::OutOfRange,
            ),
        ];
        for (change, field, code) in cases {
            let mut s = snapshot(vec![entry("a"), entry("b")]);
            change(&mut s);
            let err = s.validate(now()).unwrap_err();
            assert_eq!((err.field.as_str(), err.code), (field, code), "{err:?}");
        }
    }

    #[test]
    fn size_limits_hold() {
        let many = (0..=MAX_REFERENCE_ENTRIES)
            .map(|i| entry(&format!("e{i}")))
            .collect();
        assert_eq!(snapshot(many).validate(now()).unwrap_err().field, "entries");
        let body = json!({"t": "x".repeat(60_000)});
        let big = (0..80)
            .map(|i| ReferenceEntry {
                body: body.clone(),
                ..entry(&format!("e{i}"))
            })
            .collect();
        let err = snapshot(big).validate(now()).unwrap_err();
        assert_eq!(
            (err.field.as_str(), err.code),
            ("entries", FieldErrorCode::TooLong)
        );
    }

    #[test]
    fn unknown_kinds_and_fields_are_refused() {
        let mut value = serde_json::to_value(entry("a")).unwrap();
        value["kind"] = json!("recipe");
        assert!(serde_json::from_value::<ReferenceEntry>(value.clone()).is_err());
        value["kind"] = json!("zone_formula");
        value["colour"] = json!("red");
        assert!(serde_json::from_value::<ReferenceEntry>(value).is_err());
    }
}
