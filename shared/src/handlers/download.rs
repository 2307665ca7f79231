//! `GET /sync/download`: a page of changes after the client's cursor, or a
//! page of the full current state when the client has none.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use lambda_http::Request;
use serde_json::Value;

use crate::auth::Caller;
use crate::cursor::{Cursor, Since};
use crate::domain::EntityKind;
use crate::error::ApiError;
use crate::http::{Reply, query_param};
use crate::limits::{DEFAULT_DOWNLOAD_LIMIT, MAX_CHANGES_PER_COMMIT, MAX_DOWNLOAD_LIMIT};
use crate::protocol::{DownloadResponse, Network};
use crate::state::AppState;
use crate::store::{DeviceVisit, EntityKey, StoredEntity};
use crate::validation::FieldErrorCode;

fn parse_limit(raw: Option<String>) -> Result<u32, ApiError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_DOWNLOAD_LIMIT);
    };
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(
            "limit",
            FieldErrorCode::InvalidType,
            "limit must be a whole number",
        ));
    }
    match raw.parse::<u32>() {
        Ok(n) if (1..=MAX_DOWNLOAD_LIMIT).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_request(
            "limit",
            FieldErrorCode::OutOfRange,
            format!("limit must be between 1 and {MAX_DOWNLOAD_LIMIT}"),
        )),
    }
}

fn parse_network(raw: Option<String>) -> Result<Network, ApiError> {
    match raw.as_deref() {
        None => Ok(Network::Unknown),
        Some(text) => serde_json::from_value(Value::String(text.to_owned())).map_err(|_| {
            ApiError::bad_request(
                "network",
                FieldErrorCode::InvalidValue,
                "network must be wifi, cellular or unknown",
            )
        }),
    }
}

/// The longest run of consecutive sequence numbers starting right after `after`.
/// Entries past a gap belong to a commit not yet fully visible and wait for the next page.
pub fn contiguous_len(after: u64, seqs: impl IntoIterator<Item = u64>) -> usize {
    (after + 1..)
        .zip(seqs)
        .take_while(|(expected, seq)| expected == seq)
        .count()
}

pub(super) async fn download(
    state: &AppState,
    caller: &Caller,
    req: &Request,
) -> Result<Reply, ApiError> {
    let limit = parse_limit(query_param(req, "limit"))?;
    // Priorities arrive with the ingest path; today every change is delivered on every network.
    let _network = parse_network(query_param(req, "network"))?;
    let since = match query_param(req, "since").filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => Some(
            Since::parse(&raw, caller.user_id.as_str())
                .map_err(|e| ApiError::BadRequest(e.field_error("since")))?,
        ),
    };
    let now = state.clock.now();
    let user = &caller.user_id;
    let (page, next, has_more) = match since {
        None => {
            snapshot(
                state,
                caller,
                state.store.head(user).await?.seq,
                None,
                limit,
            )
            .await?
        }
        Some(Since::Cursor(Cursor::Snapshot { head, after })) => {
            let after = match after {
                None => None,
                Some(text) => Some(EntityKey::parse(&text).ok_or_else(|| {
                    ApiError::bad_request(
                        "since",
                        FieldErrorCode::InvalidFormat,
                        "not a cursor issued by this server",
                    )
                })?),
            };
            snapshot(state, caller, head, after, limit).await?
        }
        Some(Since::Cursor(Cursor::Log { seq })) => log_page(state, caller, seq, limit).await?,
        Some(Since::Timestamp(t)) => {
            // Read the head first: anything committed after this read has a higher seq.
            let head = state.store.head(user).await?;
            let start = match state.store.first_seq_at_or_after(user, t).await? {
                // Back up one commit's worth: a commit's entries can become visible out of order.
                Some(first) => first.saturating_sub(1 + MAX_CHANGES_PER_COMMIT as u64),
                None => head.seq,
            };
            log_page(state, caller, start, limit).await?
        }
    };
    let next_cursor = next.encode(user.as_str());
    let visit = DeviceVisit {
        delivered: Some((next_cursor.clone(), next.covered_seq())),
        ..DeviceVisit::at(caller.device_id.clone(), now)
    };
    state.store.record_visit(user, &visit).await?;
    Ok(Reply::json(&page.into_response(now, next_cursor, has_more)))
}

async fn snapshot(
    state: &AppState,
    caller: &Caller,
    head: u64,
    after: Option<EntityKey>,
    limit: u32,
) -> Result<(Page, Cursor, bool), ApiError> {
    let page = state
        .store
        .snapshot_page(&caller.user_id, after.as_ref(), limit)
        .await?;
    let mut out = Page::default();
    for entity in page.entities {
        out.add(entity);
    }
    Ok(match page.next {
        Some(key) => (
            out,
            Cursor::Snapshot {
                head,
                after: Some(key.to_string()),
            },
            true,
        ),
        // Snapshot done: continue from the log position it started at (may repeat, never misses).
        None => (out, Cursor::Log { seq: head }, false),
    })
}

async fn log_page(
    state: &AppState,
    caller: &Caller,
    after: u64,
    limit: u32,
) -> Result<(Page, Cursor, bool), ApiError> {
    let page = state
        .store
        .changes_after(&caller.user_id, after, limit)
        .await?;
    let run = contiguous_len(after, page.entries.iter().map(|e| e.seq));
    let more = page.more || run < page.entries.len();
    let mut out = Page::default();
    let mut last = after;
    for entry in page.entries.into_iter().take(run) {
        last = entry.seq;
        out.add(entry);
    }
    Ok((out, Cursor::Log { seq: last }, more))
}

/// Entities of one page, latest state per entity, grouped as the response shows them.
#[derive(Default)]
struct Page {
    by_kind: BTreeMap<EntityKind, BTreeMap<String, Value>>,
}

impl Page {
    fn add(&mut self, entity: StoredEntity) {
        let mut data = entity.data;
        if let Some(map) = data.as_object_mut() {
            map.insert("seq".into(), Value::from(entity.seq));
        }
        self.by_kind
            .entry(entity.key.kind)
            .or_default()
            .insert(entity.key.id, data);
    }

    fn take(&mut self, kind: EntityKind) -> Vec<Value> {
        let mut values: Vec<Value> = self
            .by_kind
            .remove(&kind)
            .unwrap_or_default()
            .into_values()
            .collect();
        values.sort_by_key(|v| v.get("seq").and_then(Value::as_u64).unwrap_or(0));
        values
    }

    fn into_response(
        mut self,
        now: DateTime<Utc>,
        next_cursor: String,
        has_more: bool,
    ) -> DownloadResponse {
        let settings = self
            .take(EntityKind::Setting)
            .into_iter()
            .filter_map(|v| Some((v.get("key")?.as_str()?.to_owned(), v.get("value")?.clone())))
            .collect();
        DownloadResponse {
            training_plan: self.take(EntityKind::TrainingPlan).pop(),
            calculated_metrics: self.take(EntityKind::CalculatedMetrics).pop(),
            alerts: self.take(EntityKind::Alert),
            activities: self.take(EntityKind::Activity),
            daily_metrics: self.take(EntityKind::DailyMetric),
            plan_adjustments: self.take(EntityKind::PlanAdjustment),
            settings,
            server_timestamp: now,
            next_cursor,
            has_more,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_run_never_includes_anything_past_a_gap(after in 0u64..100, seqs in proptest::collection::vec(0u64..120, 0..20)) {
            let len = contiguous_len(after, seqs.iter().copied());
            for (i, seq) in seqs.iter().take(len).enumerate() {
                prop_assert_eq!(*seq, after + 1 + i as u64);
            }
            if len < seqs.len() {
                prop_assert_ne!(seqs[len], after + 1 + len as u64);
            }
        }
    }

    #[test]
    fn limits_are_checked() {
        assert_eq!(parse_limit(None).unwrap(), DEFAULT_DOWNLOAD_LIMIT);
        assert_eq!(parse_limit(Some("5".into())).unwrap(), 5);
        assert!(parse_limit(Some("0".into())).is_err());
        assert!(parse_limit(Some("100000".into())).is_err());
        assert!(parse_limit(Some("ten".into())).is_err());
        assert!(parse_network(Some("cellular".into())).is_ok());
        assert!(parse_network(Some("5g".into())).is_err());
    }
}
