//! `GET /sync/tracks/{activity_id}`: an activity's GPS track, binary and resumable.
//!
//! The body is the track exactly as stored: the gzip'd, delta/varint-encoded
//! binary of [`trainsync_protocol::track::encode`], media type [`TRACK_CONTENT_TYPE`]. It is
//! not sent with `Content-Encoding: gzip`; the client decodes it with
//! [`trainsync_protocol::track::decode`]. A version of a track is immutable and named by its
//! SHA-256, which is the `ETag`: `If-None-Match` answers 304, and an
//! interrupted download resumes with `Range: bytes=N-` (206), guarded by
//! `If-Range` so a replaced track is sent whole instead of mixed.

use std::ops::Bound;
use trainsync_protocol::wire::ErrorCode;

use http::StatusCode;
use lambda_http::Request;
use uuid::Uuid;

use super::{Endpoint, path_param};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{Reply, error_reply};
use crate::state::AppState;
use trainsync_protocol::validate::FieldErrorCode;

/// Media type of a track download.
pub const TRACK_CONTENT_TYPE: &str = "application/vnd.trainsync.track";

/// How long a client may reuse a track without revalidating (a version never changes).
const TRACK_CACHE_CONTROL: &str = "private, max-age=86400";

pub(super) async fn track(
    state: &AppState,
    caller: &Caller,
    req: &Request,
) -> Result<Reply, ApiError> {
    let activity_id = parse_activity_id(path_param(req, Endpoint::Track, "activity_id"))?;
    let store = &state.store;
    let user = &caller.user_id;
    let not_found = || ApiError::NotFound {
        code: ErrorCode::TrackNotFound,
        message: "no track for this activity".into(),
        field: Some("activity_id"),
    };

    if let Some(tags) = header(req, "if-none-match") {
        let info = store
            .track_info(user, &activity_id)
            .await?
            .ok_or_else(not_found)?;
        if etag_listed(tags, &info.sha256) {
            let mut reply = Reply::empty(StatusCode::NOT_MODIFIED);
            reply.headers = cache_headers(&info.sha256);
            return Ok(reply);
        }
    }

    let range = header(req, "range").and_then(parse_range);
    let mut part = store
        .track_range(user, &activity_id, range.unwrap_or(WHOLE))
        .await?
        .ok_or_else(not_found)?;
    // A resumed download of a track replaced since: send the new one whole.
    let stale = header(req, "if-range").is_some_and(|tag| tag.trim() != etag(&part.info.sha256));
    if range.is_some() && stale {
        part = store
            .track_range(user, &activity_id, WHOLE)
            .await?
            .ok_or_else(not_found)?;
    }
    let total = part.info.bytes;
    let Some(served) = part.range else {
        let error = ApiError::bad_request(
            "range",
            FieldErrorCode::OutOfRange,
            format!("the range starts at or past the end of the track ({total} bytes)"),
        );
        let mut reply = error_reply(&error, state.clock.now());
        reply.status = StatusCode::RANGE_NOT_SATISFIABLE;
        reply
            .headers
            .push(("content-range", format!("bytes */{total}")));
        reply.headers.push(("accept-ranges", "bytes".into()));
        return Ok(reply);
    };
    let mut reply = Reply::binary(TRACK_CONTENT_TYPE, part.bytes);
    reply.headers = cache_headers(&part.info.sha256);
    if range.is_some() && !stale {
        reply.status = StatusCode::PARTIAL_CONTENT;
        reply.headers.push((
            "content-range",
            format!(
                "bytes {}-{}/{total}",
                served.start,
                served.end.saturating_sub(1)
            ),
        ));
    }
    Ok(reply)
}

/// The whole track, as a store range.
const WHOLE: (Bound<u64>, Bound<u64>) = (Bound::Unbounded, Bound::Unbounded);

fn parse_activity_id(raw: Option<String>) -> Result<String, ApiError> {
    raw.as_deref()
        .and_then(|raw| Uuid::parse_str(raw).ok())
        .map(|id| id.to_string())
        .ok_or_else(|| {
            ApiError::bad_request(
                "activity_id",
                FieldErrorCode::InvalidFormat,
                "activity_id must be a UUID",
            )
        })
}

fn header<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A single `bytes=N-` or `bytes=N-M` range. Anything else (suffix ranges,
/// several ranges, other units, malformed) is ignored and the whole track
/// sent, as RFC 9110 section 14.2 allows.
fn parse_range(value: &str) -> Option<(Bound<u64>, Bound<u64>)> {
    let spec = value.trim().strip_prefix("bytes=")?.trim();
    let (first, last) = spec.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(first) {
        return None;
    }
    let first: u64 = first.parse().ok()?;
    if last.is_empty() {
        return Some((Bound::Included(first), Bound::Unbounded));
    }
    if !digits(last) {
        return None;
    }
    let last: u64 = last.parse().ok()?;
    (first <= last).then_some((Bound::Included(first), Bound::Included(last)))
}

/// The strong `ETag` of a track version.
fn etag(sha256: &str) -> String {
    format!("\"{sha256}\"")
}

/// Whether an `If-None-Match` list names this version (weak comparison).
fn etag_listed(list: &str, sha256: &str) -> bool {
    let ours = etag(sha256);
    list.split(',')
        .map(|tag| tag.trim())
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == ours)
}

fn cache_headers(sha256: &str) -> Vec<(&'static str, String)> {
    vec![
        ("etag", etag(sha256)),
        ("cache-control", TRACK_CACHE_CONTROL.into()),
        ("accept-ranges", "bytes".into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_or_are_ignored() {
        use Bound::*;
        assert_eq!(parse_range("bytes=0-"), Some((Included(0), Unbounded)));
        assert_eq!(
            parse_range(" bytes=100-199 "),
            Some((Included(100), Included(199)))
        );
        for ignored in [
            "bytes=-500",
            "bytes=5-2",
            "bytes=0-1,5-6",
            "items=0-",
            "bytes=a-",
            "bytes=",
            "bytes=+1-",
        ] {
            assert_eq!(parse_range(ignored), None, "{ignored}");
        }
    }

    #[test]
    fn etags_match_weakly_in_lists() {
        assert!(etag_listed("\"abc\"", "abc"));
        assert!(etag_listed("\"x\", W/\"abc\"", "abc"));
        assert!(etag_listed("*", "abc"));
        assert!(!etag_listed("\"abcd\"", "abc"));
    }

    #[test]
    fn activity_ids_must_be_uuids() {
        let id = parse_activity_id(Some("0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B".into()));
        assert_eq!(
            id.ok().as_deref(),
            Some("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
        );
        for bad in [Some("nope".to_owned()), None] {
            match parse_activity_id(bad) {
                Err(ApiError::BadRequest(e)) => assert_eq!(e.field, "activity_id"),
                other => panic!("{other:?}"),
            }
        }
    }
}
