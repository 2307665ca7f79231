//! Download paging (`GET /sync/download`): a page of the change log after the
//! device's cursor (deferring low-priority changes on cellular), or a page of
//! a resumable full snapshot when the device has no usable position.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use uuid::Builder;

use crate::error::ApiError;
use crate::store::{DeviceVisit, EntityKey, KindQuery, StoreError, StoredEntity, SyncStore};
use trainsync_protocol::cursor::{Cursor, Since};
use trainsync_protocol::domain::{
    DeviceId, EntityKind, Priority, Tombstone, UNDO_WINDOW_HOURS, UserId,
};
use trainsync_protocol::limits::MAX_CHANGES_PER_COMMIT;
use trainsync_protocol::plan::{PlanDiff, TrainingPlan, diff};
use trainsync_protocol::validate::FieldErrorCode;
use trainsync_protocol::wire::{DeferredChanges, DeletedEntity, DownloadResponse, Network};

/// The longest run of consecutive sequence numbers starting right after `after`.
/// Entries past a gap belong to a commit not yet fully visible and wait for the next page.
pub fn contiguous_len(after: u64, seqs: impl IntoIterator<Item = u64>) -> usize {
    // Nothing follows the last sequence number there is (a forged cursor).
    let Some(first) = after.checked_add(1) else {
        return 0;
    };
    (first..=u64::MAX)
        .zip(seqs)
        .take_while(|(expected, seq)| expected == seq)
        .count()
}

/// How far back a full snapshot reaches for activities and check-ins (PRD 9.3).
pub const SNAPSHOT_HISTORY_DAYS: i64 = 90;

/// Why a snapshot is sent: the download had no `since`.
const NO_CURSOR: &str = "no_cursor";
/// Why a snapshot is sent: the history after the position is no longer kept.
const CURSOR_TOO_OLD: &str = "cursor_too_old";
/// Why a snapshot is sent: the position lies past the log's head.
const CURSOR_AHEAD: &str = "cursor_ahead";

/// The order a full snapshot walks the user's data in.
const SNAPSHOT_SECTIONS: [EntityKind; 8] = [
    EntityKind::TrainingPlan,
    EntityKind::CalculatedMetrics,
    EntityKind::Setting,
    EntityKind::Alert,
    EntityKind::PlanAdjustment,
    EntityKind::Conflict,
    EntityKind::DailyMetric,
    EntityKind::Activity,
];

/// What a download asks for (the parsed query string).
#[derive(Debug, Clone)]
pub struct DownloadQuery {
    /// Where the device stands: a cursor, a time, or nothing (a full snapshot).
    pub since: Option<Since>,
    /// At most this many changes.
    pub limit: u32,
    /// The device's network (cellular defers low-priority changes).
    pub network: Network,
    /// The plan version the device holds (the plan then arrives as a diff).
    pub held_plan: Option<u64>,
}

/// One page for `device` of `user`: changes after its position, or a page
/// of the full current state; records the device's visit with the cursor
/// it was given.
pub async fn download(
    store: &dyn SyncStore,
    user: &UserId,
    device: &DeviceId,
    query: DownloadQuery,
    now: DateTime<Utc>,
) -> Result<DownloadResponse, ApiError> {
    let DownloadQuery {
        since,
        limit,
        network,
        held_plan,
    } = query;
    let reader = Reader {
        store,
        user,
        limit,
        network,
        now,
    };
    let mut result = match since {
        None => reader.snapshot(None, None, Some(NO_CURSOR)).await?,
        // Later pages of a snapshot: still a resync; the reason was on the first page.
        Some(Since::Cursor(Cursor::Snapshot { head, after })) => {
            reader.snapshot(Some(head), after, None).await?
        }
        Some(Since::Cursor(Cursor::Log { seq })) => reader.log(seq, None).await?,
        Some(Since::Cursor(Cursor::Deferred { seq, from })) => {
            if network == Network::Cellular {
                reader.log(seq, Some(from)).await?
            } else {
                reader.catch_up(seq, from).await?
            }
        }
        Some(Since::Timestamp(t)) => {
            // Read the head first: anything committed after this read has a higher seq.
            let head = store.head(user).await?;
            match store.first_seq_at_or_after(user, t).await? {
                None => reader.log(head.seq, None).await?,
                Some(first) => {
                    let floor = store.log_floor(user).await?;
                    if floor > 1 && first <= floor {
                        // The oldest entry left is already at or after `t`: the
                        // trimmed ones before it may be too, and are gone.
                        reader.snapshot(None, None, Some(CURSOR_TOO_OLD)).await?
                    } else {
                        // Back up one commit's worth: a commit's entries can become
                        // visible out of order. Never below the floor, though: the
                        // entries there are gone (and were before `t`).
                        let start = first
                            .saturating_sub(1 + MAX_CHANGES_PER_COMMIT as u64)
                            .max(floor.saturating_sub(1));
                        reader.log(start, None).await?
                    }
                }
            }
        }
    };
    if let Some(held) = held_plan {
        result.page.plan_as_diff(store, user, held).await?;
    }
    let next_cursor = result.next.encode(user.as_str());
    let visit = DeviceVisit {
        delivered: Some((next_cursor.clone(), result.next.covered_seq())),
        ..DeviceVisit::at(device.clone(), now)
    };
    store.record_visit(user, &visit).await?;
    let deferred = match (&result.next, result.deferred_in_page) {
        (Cursor::Deferred { .. }, in_page) | (_, in_page @ 1..) => Some(DeferredChanges {
            in_page,
            pending: matches!(result.next, Cursor::Deferred { .. }),
            message: "low-priority changes (GPS tracks) wait for a Wi-Fi download".into(),
        }),
        _ => None,
    };
    let mut response = result.page.into_response(now, next_cursor, result.has_more);
    response.resync_required = result.resync;
    response.resync_reason = result.resync_reason.map(str::to_owned);
    response.deferred = deferred;
    Ok(response)
}

/// What one download call produced.
struct PageResult {
    page: Page,
    next: Cursor,
    has_more: bool,
    /// The page belongs to a full snapshot.
    resync: bool,
    /// Why the snapshot began (first page only).
    resync_reason: Option<&'static str>,
    deferred_in_page: u32,
}

/// One download call's reads.
struct Reader<'a> {
    store: &'a dyn SyncStore,
    user: &'a UserId,
    limit: u32,
    network: Network,
    now: DateTime<Utc>,
}

impl Reader<'_> {
    /// A page of the change log after `after`; on cellular, low-priority
    /// changes are skipped and the cursor remembers the first one (`deferred_from`).
    async fn log(&self, after: u64, deferred_from: Option<u64>) -> Result<PageResult, ApiError> {
        let user = self.user;
        let page = self.store.changes_after(user, after, self.limit).await?;
        if page.entries.is_empty() && self.ahead_of_log(after).await? {
            return self.snapshot(None, None, Some(CURSOR_AHEAD)).await;
        }
        let run = contiguous_len(after, page.entries.iter().map(|e| e.seq));
        if run == 0 && !page.entries.is_empty() {
            // A gap right at the cursor: a commit in flight, or the log was trimmed past it.
            if after.saturating_add(1) < self.store.log_floor(user).await? {
                return self.snapshot(None, None, Some(CURSOR_TOO_OLD)).await;
            }
        }
        let more = page.more || run < page.entries.len();
        let mut out = Page::default();
        let mut last = after;
        let mut deferred_from = deferred_from;
        let mut deferred_in_page = 0;
        for entry in page.entries.into_iter().take(run) {
            last = entry.seq;
            if self.network == Network::Cellular && entry.key.kind.priority() == Priority::Low {
                deferred_from = Some(deferred_from.map_or(entry.seq, |d| d.min(entry.seq)));
                deferred_in_page += 1;
                continue;
            }
            out.add(entry);
        }
        let next = match deferred_from {
            Some(from) => Cursor::Deferred { seq: last, from },
            None => Cursor::Log { seq: last },
        };
        Ok(PageResult {
            page: out,
            next,
            has_more: more,
            resync: false,
            resync_reason: None,
            deferred_in_page,
        })
    }

    /// On Wi-Fi again: delivers the low-priority changes a cellular download
    /// deferred (sequences `from..=seq`), then the cursor continues normally.
    async fn catch_up(&self, seq: u64, from: u64) -> Result<PageResult, ApiError> {
        let page = self
            .store
            .changes_after(self.user, from - 1, self.limit)
            .await?;
        if page.entries.first().is_some_and(|e| e.seq != from)
            && from < self.store.log_floor(self.user).await?
        {
            // The deferred changes were trimmed while the device was away: re-baseline.
            return self.snapshot(None, None, Some(CURSOR_TOO_OLD)).await;
        }
        let mut out = Page::default();
        let mut scanned = from - 1;
        let mut past_cursor = false;
        for entry in page.entries {
            if entry.seq > seq {
                past_cursor = true;
                break;
            }
            scanned = entry.seq;
            if entry.key.kind.priority() == Priority::Low {
                out.add(entry);
            }
        }
        // The log ended before the cursor's position: it may lie past the head.
        if !past_cursor && !page.more && scanned < seq && self.ahead_of_log(seq).await? {
            return self.snapshot(None, None, Some(CURSOR_AHEAD)).await;
        }
        let done = scanned >= seq || past_cursor || !page.more;
        let next = if done {
            Cursor::Log { seq }
        } else {
            Cursor::Deferred {
                seq,
                from: scanned + 1,
            }
        };
        Ok(PageResult {
            page: out,
            next,
            // After catching up, the log after `seq` may hold more.
            has_more: !done || past_cursor,
            resync: false,
            resync_reason: None,
            deferred_in_page: 0,
        })
    }

    /// A page of the full snapshot (PRD 9.3): the plan, metrics, settings,
    /// open alerts, pending reschedules, undoable conflicts, then check-ins and
    /// activities of the last 90 days, each read with Queries on the user's
    /// partition. `head` is the log position the snapshot continues from.
    async fn snapshot(
        &self,
        head: Option<u64>,
        after: Option<String>,
        reason: Option<&'static str>,
    ) -> Result<PageResult, ApiError> {
        let user = self.user;
        let cursor_head = head;
        let head = match head {
            Some(head) => head,
            None => self.store.head(user).await?.seq,
        };
        let (mut section, mut position) = match after.as_deref() {
            None => (0, None),
            Some(text) => parse_snapshot_position(text)?,
        };
        let mut out = Page::default();
        let mut remaining = self.limit;
        while section < SNAPSHOT_SECTIONS.len() {
            if remaining == 0 {
                let after = snapshot_position(section, position.as_deref());
                return Ok(PageResult {
                    page: out,
                    next: Cursor::Snapshot {
                        head,
                        after: Some(after),
                    },
                    has_more: true,
                    resync: true,
                    resync_reason: reason,
                    deferred_in_page: 0,
                });
            }
            let kind = SNAPSHOT_SECTIONS[section];
            let (entities, next) = self
                .snapshot_section(kind, position.as_deref(), remaining)
                .await?;
            remaining = remaining.saturating_sub(entities.len() as u32);
            for entity in entities {
                if self.current(&entity) {
                    out.add(entity);
                }
            }
            match next {
                Some(next) => position = Some(next),
                None => {
                    section += 1;
                    position = None;
                }
            }
        }
        // Snapshot done: continue from the log position it started at (may
        // repeat, never misses), never from past the log's head (a forged
        // snapshot cursor would skip what comes next).
        let head = match cursor_head {
            Some(_) => head.min(self.store.head(user).await?.seq),
            None => head,
        };
        Ok(PageResult {
            page: out,
            next: Cursor::Log { seq: head },
            has_more: false,
            resync: true,
            resync_reason: reason,
            deferred_in_page: 0,
        })
    }

    /// Whether a position that found nothing after it lies past the log's
    /// head: a forged cursor, or one issued before the table was restored
    /// from a backup. Continuing from it would skip the changes to come.
    /// Costs a head read, only on an empty page.
    async fn ahead_of_log(&self, seq: u64) -> Result<bool, ApiError> {
        Ok(seq > 0 && seq > self.store.head(self.user).await?.seq)
    }

    /// Whether a stored entity belongs in a snapshot (no tombstones, no expired alerts).
    fn current(&self, entity: &StoredEntity) -> bool {
        if Tombstone::of(&entity.data).is_some() {
            return false;
        }
        let expired = entity
            .data
            .get("expires_at")
            .and_then(|v| serde_json::from_value::<DateTime<Utc>>(v.clone()).ok())
            .is_some_and(|t| t < self.now);
        !(entity.key.kind == EntityKind::Alert && expired)
    }

    /// Up to `limit` entities of one section after `position`, and where to continue.
    async fn snapshot_section(
        &self,
        kind: EntityKind,
        position: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<StoredEntity>, Option<String>), ApiError> {
        let user = self.user;
        let history_start = self.now - Duration::days(SNAPSHOT_HISTORY_DAYS);
        if kind == EntityKind::Activity {
            // By start time through the index: the cost follows the 90 days, not the whole history.
            let after = position.and_then(|p| {
                let (time, id) = p.split_once('/')?;
                Some((
                    DateTime::parse_from_rfc3339(time).ok()?.with_timezone(&Utc),
                    id.to_owned(),
                ))
            });
            let window = self
                .store
                .activities_started_between(user, history_start, self.now + Duration::days(1))
                .await?;
            let chosen: Vec<(DateTime<Utc>, EntityKey)> = window
                .into_iter()
                .filter(|(t, key)| {
                    after
                        .as_ref()
                        .is_none_or(|(at, id)| (t, &key.id) > (at, id))
                })
                .take(limit as usize)
                .collect();
            let next = (chosen.len() == limit as usize)
                .then(|| {
                    chosen
                        .last()
                        .map(|(t, key)| format!("{}/{}", t.to_rfc3339(), key.id))
                })
                .flatten();
            let keys: Vec<EntityKey> = chosen.into_iter().map(|(_, key)| key).collect();
            let loaded = self.store.load(user, &keys).await?;
            let entities = keys
                .iter()
                .filter_map(|k| loaded.entities.get(k).cloned())
                .collect();
            return Ok((entities, next));
        }
        let from_id = match kind {
            EntityKind::DailyMetric => Some(history_start.date_naive().to_string()),
            // Conflict ids are UUID v7: the ones still undoable sort after this one.
            EntityKind::Conflict => {
                let since = self.now - Duration::hours(UNDO_WINDOW_HOURS);
                let millis = u64::try_from(since.timestamp_millis()).unwrap_or(0);
                Some(
                    Builder::from_unix_timestamp_millis(millis, &[0; 10])
                        .into_uuid()
                        .to_string(),
                )
            }
            _ => None,
        };
        let page = self
            .store
            .entities_of_kind(
                user,
                KindQuery {
                    kind,
                    from_id: from_id.as_deref(),
                    after_id: position,
                    descending: false,
                    limit,
                },
            )
            .await?;
        Ok((page.entities, page.next.map(|k| k.id)))
    }
}

fn snapshot_position(section: usize, position: Option<&str>) -> String {
    format!(
        "{}#{}",
        SNAPSHOT_SECTIONS[section].as_str(),
        position.unwrap_or("")
    )
}

fn parse_snapshot_position(text: &str) -> Result<(usize, Option<String>), ApiError> {
    let bad = || {
        ApiError::bad_request(
            "since",
            FieldErrorCode::InvalidFormat,
            "not a cursor issued by this server",
        )
    };
    let (kind, position) = text.split_once('#').ok_or_else(bad)?;
    let kind = EntityKind::parse(kind).ok_or_else(bad)?;
    let section = SNAPSHOT_SECTIONS
        .iter()
        .position(|k| *k == kind)
        .ok_or_else(bad)?;
    Ok((section, Some(position.to_owned()).filter(|p| !p.is_empty())))
}

/// Entities of one page, latest state per entity, grouped as the response shows them.
#[derive(Default)]
struct Page {
    by_kind: BTreeMap<EntityKind, BTreeMap<String, Value>>,
    deleted: Vec<DeletedEntity>,
    plan_diff: Option<PlanDiff>,
}

impl Page {
    fn add(&mut self, entity: StoredEntity) {
        if let Some(tombstone) = Tombstone::of(&entity.data) {
            if let Some(kind) = self.by_kind.get_mut(&entity.key.kind) {
                kind.remove(&entity.key.id);
            }
            self.deleted
                .retain(|d| d.kind != entity.key.kind || d.id != entity.key.id);
            self.deleted.push(DeletedEntity {
                kind: entity.key.kind,
                id: entity.key.id,
                seq: entity.seq,
                reason: tombstone.reason,
                replaced_by: tombstone.replaced_by,
            });
            return;
        }
        self.deleted
            .retain(|d| d.kind != entity.key.kind || d.id != entity.key.id);
        let mut data = entity.data;
        if let Some(map) = data.as_object_mut() {
            map.insert("seq".into(), Value::from(entity.seq));
        }
        self.by_kind
            .entry(entity.key.kind)
            .or_default()
            .insert(entity.key.id, data);
    }

    /// Replaces the full plan by its diff from the version the device holds,
    /// when that version is still stored (PRD 7.2); drops it when the device
    /// already holds the current one.
    async fn plan_as_diff(
        &mut self,
        store: &dyn SyncStore,
        user: &UserId,
        held: u64,
    ) -> Result<(), ApiError> {
        let Some(plans) = self.by_kind.get_mut(&EntityKind::TrainingPlan) else {
            return Ok(());
        };
        // The page's copy carries the `seq` the download added, which is no plan field.
        let Some(current) = plans.values().next().and_then(|v| {
            let mut plan = v.clone();
            if let Some(map) = plan.as_object_mut() {
                map.remove("seq");
            }
            serde_json::from_value::<TrainingPlan>(plan).ok()
        }) else {
            return Ok(());
        };
        if current.version == held {
            plans.clear();
            return Ok(());
        }
        let old = match store.plan_version(user, held).await? {
            // A stored version that does not parse is corrupt, not absent.
            Some(v) => Some(
                serde_json::from_value::<TrainingPlan>(v)
                    .map_err(|e| StoreError::Corrupt(format!("plan version {held}: {e}")))?,
            ),
            None => None,
        };
        if let Some(old) = old {
            self.plan_diff = Some(diff(&old, &current));
            plans.clear();
        }
        Ok(())
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
        self.deleted.sort_by_key(|d| d.seq);
        DownloadResponse {
            training_plan: self.take(EntityKind::TrainingPlan).pop(),
            training_plan_diff: self.plan_diff.take(),
            calculated_metrics: self.take(EntityKind::CalculatedMetrics).pop(),
            alerts: self.take(EntityKind::Alert),
            activities: self.take(EntityKind::Activity),
            daily_metrics: self.take(EntityKind::DailyMetric),
            plan_adjustments: self.take(EntityKind::PlanAdjustment),
            settings,
            conflicts: self.take(EntityKind::Conflict),
            tracks: self.take(EntityKind::Track),
            deleted: self.deleted,
            resync_required: false,
            resync_reason: None,
            deferred: None,
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
}
