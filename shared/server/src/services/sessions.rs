//! Sync sessions (PRD 4.3): `/sync/check` opens one with the manifest of what
//! changed, `/sync/complete` closes it once (and may release change-log
//! history), `/sync/status` shows the user's sync state.

use chrono::{DateTime, Duration, Utc};

use crate::error::ApiError;
use crate::services::retention;
use crate::store::{
    CompleteOutcome, Completion, DeviceVisit, Head, Session, SessionState, SyncStore,
};
use trainsync_protocol::cursor::Cursor;
use trainsync_protocol::domain::{DeviceId, EntityKind, SyncId, UserId};
use trainsync_protocol::limits::{SESSION_TTL_SECS, STATUS_RECENT_SESSIONS};
use trainsync_protocol::wire::{
    CheckResponse, CompleteRequest, CompleteResponse, CompleteStatus, DeviceStatus, ErrorCode,
    SessionStatus, StatusResponse,
};

/// Where the device says it stands, for the manifest of what changed since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// After this change-log sequence number.
    Seq(u64),
    /// After `seq`, with the low-priority changes from `from` on deferred
    /// (they count as pending updates).
    Deferred {
        /// Last sequence number seen.
        seq: u64,
        /// First deferred sequence number.
        from: u64,
    },
    /// After this time.
    Time(DateTime<Utc>),
    /// Nowhere: everything counts as new.
    Nothing,
}

/// Opens a session for `device` of `user`: one read of the head for the
/// manifest of what changed after `position`, one write of the session and
/// the device's visit.
pub async fn open(
    store: &dyn SyncStore,
    user: &UserId,
    device: &DeviceId,
    position: Position,
    now: DateTime<Utc>,
) -> Result<CheckResponse, ApiError> {
    let head = store.head(user).await?;
    let position = match position {
        // A cursor past the log (forged, or the table was restored from a
        // backup): everything counts as new, so the device downloads and
        // its download re-baselines it.
        Position::Seq(seq) | Position::Deferred { seq, .. } if seq > head.seq => Position::Nothing,
        Position::Deferred { from, .. } => Position::Seq(from - 1),
        other => other,
    };
    let labels = changes_after(&head, &position);
    let session = Session {
        sync_id: SyncId::new(),
        device_id: device.clone(),
        opened_at: now,
        expires_at: now + Duration::seconds(SESSION_TTL_SECS),
        state: SessionState::Open,
        completed_at: None,
        error: None,
        uploads: 0,
        conflicts: 0,
        completed_by: None,
    };
    let visit = DeviceVisit::at(device.clone(), now);
    store.open_session(user, &session, &visit).await?;
    Ok(CheckResponse {
        sync_id: session.sync_id.0,
        has_updates: !labels.is_empty(),
        server_changes_available: labels,
        accepts_client_changes: true,
        server_timestamp: now,
        cursor: Cursor::Log { seq: head.seq }.encode(user.as_str()),
    })
}

/// Labels of the kinds that changed after `position`, in a stable order.
fn changes_after(head: &Head, position: &Position) -> Vec<String> {
    EntityKind::ALL
        .into_iter()
        .filter(|kind| {
            head.kinds
                .get(kind.as_str())
                .is_some_and(|k| match position {
                    Position::Seq(seq) => k.seq > *seq,
                    Position::Deferred { from, .. } => k.seq >= *from,
                    Position::Time(t) => k.at > *t,
                    Position::Nothing => true,
                })
        })
        .map(|kind| kind.update_label(head.plan_version))
        .collect()
}

/// Closes session `request.sync_id` of `user` once (`hash` is the request
/// body's hash: a repeat with another body is refused); a repeat reports the
/// first outcome. A successful close with a cursor acknowledges it for
/// `device`, which may release change-log history.
pub async fn complete(
    store: &dyn SyncStore,
    user: &UserId,
    device: &DeviceId,
    request: &CompleteRequest,
    hash: &str,
    now: DateTime<Utc>,
) -> Result<CompleteResponse, ApiError> {
    let request_id = request
        .sync_request_id
        .map(|id| id.to_string())
        .unwrap_or_default();
    let completion = Completion {
        sync_id: SyncId(request.sync_id),
        state: request.status.into(),
        error: request.error.clone(),
        at: now,
        request: (request_id.clone(), hash.to_owned()),
    };
    let outcome = store.complete_session(user, &completion).await?;
    // Only the request that closed the session successfully moves the device's sync state.
    let closed_now =
        matches!(&outcome, CompleteOutcome::Closed(s) if s.state == SessionState::Success);
    let visit = DeviceVisit {
        synced: closed_now.then(|| request.cursor.clone()),
        ..DeviceVisit::at(device.clone(), now)
    };
    store.record_visit(user, &visit).await?;
    if closed_now && request.cursor.is_some() {
        // An acknowledgement may release history; trimming failures only delay it.
        if let Err(e) = retention::trim(store, user, now).await {
            tracing::warn!(error = %e, "change-log trim failed");
        }
    }
    let session = match outcome {
        CompleteOutcome::Closed(session) => session,
        CompleteOutcome::AlreadyClosed(session) => {
            let reused = !request_id.is_empty()
                && session
                    .completed_by
                    .as_ref()
                    .is_some_and(|(id, first_hash)| *id == request_id && *first_hash != hash);
            if reused {
                return Err(ApiError::Unprocessable {
                    code: ErrorCode::IdempotencyKeyReused,
                    message:
                        "this sync_request_id already completed the session with a different body"
                            .into(),
                    field: Some("sync_request_id"),
                });
            }
            session
        }
        CompleteOutcome::NotFound => return Err(ApiError::unknown_session()),
    };
    Ok(CompleteResponse {
        sync_id: session.sync_id.0,
        status: match session.state {
            SessionState::Failed => CompleteStatus::Failed,
            _ => CompleteStatus::Success,
        },
        server_timestamp: now,
    })
}

/// The sync state of `user` as `device` (which is recorded as seen first, so
/// it is listed even on its first call) sees it: devices, recent sessions,
/// the PRD 11.1 conflict rate.
pub async fn status(
    store: &dyn SyncStore,
    user: &UserId,
    device: &DeviceId,
    now: DateTime<Utc>,
) -> Result<StatusResponse, ApiError> {
    // Record the visit first so the calling device is listed even on its first call.
    store
        .record_visit(user, &DeviceVisit::at(device.clone(), now))
        .await?;
    let (head, devices, sessions) = tokio::try_join!(
        store.head(user),
        store.devices(user),
        store.recent_sessions(user, STATUS_RECENT_SESSIONS, now),
    )?;
    let devices = devices
        .into_iter()
        .map(|d| DeviceStatus {
            pending_downloads: head.seq.saturating_sub(d.last_cursor_seq.unwrap_or(0)),
            device_id: d.device_id,
            first_seen_at: d.first_seen_at,
            last_seen_at: d.last_seen_at,
            last_sync_at: d.last_sync_at,
            last_cursor: d.last_cursor,
            acknowledged_cursor: d.acknowledged_cursor,
        })
        .collect();
    let open_sessions = sessions
        .iter()
        .filter(|s| s.state == SessionState::Open)
        .count() as u32;
    // PRD 11.1 conflict rate: the share of recent sessions whose uploads met a conflict rule.
    let with_conflicts = sessions.iter().filter(|s| s.conflicts > 0).count();
    let conflict_rate = if sessions.is_empty() {
        0.0
    } else {
        with_conflicts as f64 / sessions.len() as f64
    };
    let recent_sessions = sessions
        .into_iter()
        .map(|s| SessionStatus {
            sync_id: s.sync_id.0,
            device_id: s.device_id.to_string(),
            opened_at: s.opened_at,
            status: s.state.as_str().to_owned(),
            completed_at: s.completed_at,
            error: s.error,
            uploads: s.uploads,
            conflicts: s.conflicts,
        })
        .collect();
    Ok(StatusResponse {
        user_id: user.to_string(),
        head_cursor: Cursor::Log { seq: head.seq }.encode(user.as_str()),
        head_seq: head.seq,
        devices,
        recent_sessions,
        open_sessions,
        conflict_rate,
        server_timestamp: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::KindHead;
    use chrono::{TimeZone, Utc};

    #[test]
    fn labels_name_only_what_changed_after_the_position() {
        let at = |s| Utc.timestamp_opt(s, 0).unwrap();
        let mut head = Head {
            seq: 7,
            plan_version: Some(23),
            ..Head::default()
        };
        head.kinds.insert(
            "activity".into(),
            KindHead {
                seq: 3,
                at: at(100),
            },
        );
        head.kinds.insert(
            "training_plan".into(),
            KindHead {
                seq: 7,
                at: at(200),
            },
        );
        assert_eq!(changes_after(&head, &Position::Seq(3)), vec!["plan_v23"]);
        assert_eq!(
            changes_after(&head, &Position::Seq(7)),
            Vec::<String>::new()
        );
        assert_eq!(
            changes_after(&head, &Position::Time(at(50))),
            vec!["activities_updated", "plan_v23"]
        );
        assert_eq!(changes_after(&head, &Position::Nothing).len(), 2);
    }
}
