//! `GET /reference/{version}`: shared reference data as versioned, cacheable snapshots.
//!
//! `current` answers which version is newest (cacheable for 5 minutes); a
//! number answers that snapshot, immutable and cacheable for a year, with
//! `ETag: "N"` (`If-None-Match` gets a 304 without touching storage). Every
//! read goes to one of the replica shards at random.

use http::StatusCode;
use lambda_http::Request;
use trainsync_protocol::wire::ErrorCode;

use crate::auth::Caller;
use crate::compression::{accepts_gzip, decode_body};
use crate::error::ApiError;
use crate::http::Reply;
use crate::state::AppState;
use crate::store::StoreError;
use trainsync_protocol::reference::{MAX_SNAPSHOT_JSON_BYTES, ReferenceCurrent, random_shard};
use trainsync_protocol::validate::FieldErrorCode;

use super::{Endpoint, path_param};

/// `Cache-Control` of `/reference/current`.
const CURRENT_CACHE_CONTROL: &str = "public, max-age=300";
/// `Cache-Control` of `/reference/{N}`: a published version never changes.
const SNAPSHOT_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// Which reference data a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    Current,
    Version(u64),
}

fn parse_version(raw: Option<&str>) -> Result<Wanted, ApiError> {
    let raw = raw.unwrap_or("");
    if raw == "current" {
        return Ok(Wanted::Current);
    }
    // Canonical decimal only (no sign, no leading zero), so each version has one URL to cache.
    let canonical =
        !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) && !raw.starts_with('0');
    match raw.parse::<u64>() {
        Ok(version) if canonical => Ok(Wanted::Version(version)),
        _ => Err(ApiError::bad_request(
            "version",
            FieldErrorCode::InvalidFormat,
            format!("version must be \"current\" or a positive integer, got {raw:?}"),
        )),
    }
}

fn not_found(message: &str) -> ApiError {
    ApiError::NotFound {
        code: ErrorCode::ReferenceNotFound,
        message: message.into(),
        field: Some("version"),
    }
}

fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

/// Whether an `If-None-Match` value matches the entity tag of `version`.
fn matches_etag(if_none_match: &str, version: u64) -> bool {
    let tag = etag(version);
    if_none_match.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == tag
    })
}

pub(super) async fn reference(
    state: &AppState,
    _caller: &Caller,
    req: &Request,
) -> Result<Reply, ApiError> {
    let raw = path_param(req, Endpoint::Reference, "version");
    match parse_version(raw.as_deref())? {
        Wanted::Current => current(state).await,
        Wanted::Version(version) => snapshot(state, req, version).await,
    }
}

async fn current(state: &AppState) -> Result<Reply, ApiError> {
    let version = state
        .store
        .reference_current(random_shard())
        .await?
        .ok_or_else(|| not_found("no reference data has been published yet"))?;
    let mut reply = Reply::json(&ReferenceCurrent::new(version, state.clock.now()));
    reply
        .headers
        .push(("cache-control", CURRENT_CACHE_CONTROL.into()));
    Ok(reply)
}

async fn snapshot(state: &AppState, req: &Request, version: u64) -> Result<Reply, ApiError> {
    let cache_headers = || {
        vec![
            ("cache-control", SNAPSHOT_CACHE_CONTROL.to_owned()),
            ("etag", etag(version)),
        ]
    };
    let if_none_match = req
        .headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok());
    if if_none_match.is_some_and(|v| matches_etag(v, version)) {
        // Versions are immutable: the client's copy is this one, no need to read it.
        let mut reply = Reply::empty(StatusCode::NOT_MODIFIED);
        reply.headers = cache_headers();
        return Ok(reply);
    }
    let gzip = state
        .store
        .reference_snapshot(version, random_shard())
        .await?
        .ok_or_else(|| not_found("no reference data of this version"))?;
    let accept_gzip = accepts_gzip(
        req.headers()
            .get("accept-encoding")
            .and_then(|v| v.to_str().ok()),
    );
    let mut reply = if accept_gzip {
        // The stored form is gzip'd JSON: send it as it is.
        let mut reply = Reply::binary("application/json", gzip);
        reply.headers.push(("content-encoding", "gzip".to_owned()));
        reply
    } else {
        let json = decode_body(&gzip, Some("gzip"), MAX_SNAPSHOT_JSON_BYTES)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| {
                ApiError::Internal(Box::new(StoreError::Corrupt(format!(
                    "reference snapshot {version} does not inflate to UTF-8 JSON"
                ))))
            })?;
        Reply::raw(json)
    };
    reply.headers.extend(cache_headers());
    reply.headers.push(("vary", "Accept-Encoding".to_owned()));
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_canonically() {
        assert_eq!(parse_version(Some("current")).unwrap(), Wanted::Current);
        assert_eq!(parse_version(Some("42")).unwrap(), Wanted::Version(42));
        for bad in [
            "",
            "0",
            "007",
            "-1",
            "+1",
            "abc",
            "1.5",
            "99999999999999999999",
        ] {
            assert!(parse_version(Some(bad)).is_err(), "{bad}");
        }
        assert!(parse_version(None).is_err());
    }

    #[test]
    fn etags_match_strong_weak_lists_and_star() {
        assert!(matches_etag("\"3\"", 3));
        assert!(matches_etag("W/\"3\"", 3));
        assert!(matches_etag("\"1\", \"3\"", 3));
        assert!(matches_etag("*", 3));
        assert!(!matches_etag("\"33\"", 3));
        assert!(!matches_etag("3", 3));
    }
}
