//! Storage of GPS tracks, apart from the activity records (PRD 7.1).
//!
//! A track is stored as opaque bytes (the output of [`trainsync_protocol::track::encode`]),
//! chunked under DynamoDB's item limit. Readers only ever see a whole stored
//! version of a track: a replacement becomes visible at once, never half-written.

use std::ops::{Bound, Range};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use trainsync_protocol::domain::UserId;

/// What is known of a stored track without reading its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    /// Size of the encoded track.
    pub bytes: u64,
    /// Number of chunk items it is stored in (0 for an empty track).
    pub chunks: u32,
    /// SHA-256 of the encoded bytes, lowercase hex. Identifies this version of the track.
    pub sha256: String,
}

/// A whole stored track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackBlob {
    /// Its manifest.
    pub info: TrackInfo,
    /// The encoded bytes.
    pub bytes: Vec<u8>,
}

/// Part of a stored track, as a byte-range read returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackPart {
    /// The whole track's manifest.
    pub info: TrackInfo,
    /// Which bytes of the track `bytes` are (`start..end`); `None` when the
    /// range asked for is not satisfiable (it starts at or past the end).
    pub range: Option<Range<u64>>,
    /// The bytes in `range`.
    pub bytes: Vec<u8>,
}

/// A byte range over a track, as `RangeBounds` spells it:
/// `(Unbounded, Unbounded)` is the whole track, `(Included(n), Unbounded)` is
/// HTTP's `bytes=n-` and `(Included(n), Included(m))` is `bytes=n-m`.
pub type TrackRange = (Bound<u64>, Bound<u64>);

/// The whole track.
pub const WHOLE_TRACK: TrackRange = (Bound::Unbounded, Bound::Unbounded);

/// Resolves `range` against a track of `total` bytes: the bytes to serve, or
/// `None` if the range is not satisfiable. The whole track is always
/// satisfiable (even when empty); any other range must start before the end.
pub fn resolve_range(range: TrackRange, total: u64) -> Option<Range<u64>> {
    let start = match range.0 {
        Bound::Unbounded => 0,
        Bound::Included(n) => n,
        Bound::Excluded(n) => n.saturating_add(1),
    };
    let end = match range.1 {
        Bound::Unbounded => total,
        Bound::Included(m) => m.saturating_add(1).min(total),
        Bound::Excluded(m) => m.min(total),
    };
    if range == WHOLE_TRACK {
        return Some(0..total);
    }
    (start < end).then_some(start..end)
}

/// The lowercase-hex SHA-256 of `bytes`, as [`TrackInfo::sha256`] holds it.
pub fn track_sha256(bytes: &[u8]) -> String {
    trainsync_protocol::digest::sha256_hex(bytes)
}

/// Where activities' GPS tracks are kept. Every method is scoped to one user's data.
#[async_trait]
pub trait TrackStore: Send + Sync {
    /// Stores (or replaces) the encoded track of `activity_id`. Storing the
    /// same bytes again changes nothing.
    async fn put_track(
        &self,
        user: &UserId,
        activity_id: &str,
        encoded: &[u8],
        now: DateTime<Utc>,
    ) -> Result<TrackInfo, StoreError>;

    /// The track's manifest, without its bytes (one small read).
    async fn track_info(
        &self,
        user: &UserId,
        activity_id: &str,
    ) -> Result<Option<TrackInfo>, StoreError>;

    /// The bytes of `range` of the track, reading only the chunks they lie in;
    /// `None` when the user has no track for `activity_id`.
    async fn track_range(
        &self,
        user: &UserId,
        activity_id: &str,
        range: TrackRange,
    ) -> Result<Option<TrackPart>, StoreError>;

    /// The whole track; `None` when the user has no track for `activity_id`.
    async fn track(
        &self,
        user: &UserId,
        activity_id: &str,
    ) -> Result<Option<TrackBlob>, StoreError> {
        Ok(self
            .track_range(user, activity_id, WHOLE_TRACK)
            .await?
            .map(|part| TrackBlob {
                info: part.info,
                bytes: part.bytes,
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_like_http() {
        use Bound::*;
        assert_eq!(resolve_range(WHOLE_TRACK, 10), Some(0..10));
        assert_eq!(resolve_range(WHOLE_TRACK, 0), Some(0..0));
        assert_eq!(resolve_range((Included(4), Unbounded), 10), Some(4..10));
        assert_eq!(resolve_range((Included(4), Included(6)), 10), Some(4..7));
        assert_eq!(resolve_range((Included(4), Included(60)), 10), Some(4..10));
        assert_eq!(resolve_range((Included(10), Unbounded), 10), None);
        assert_eq!(resolve_range((Included(0), Unbounded), 0), None);
        assert_eq!(resolve_range((Included(6), Included(4)), 10), None);
    }

    #[test]
    fn sha256_is_lowercase_hex() {
        assert_eq!(
            track_sha256(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
