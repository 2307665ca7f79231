//! `GET /sync/status`: the caller's sync state, for debugging.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::Reply;
use crate::state::AppState;
use crate::store::{DeviceVisit, SessionState};
use trainsync_protocol::cursor::Cursor;
use trainsync_protocol::limits::STATUS_RECENT_SESSIONS;
use trainsync_protocol::wire::{DeviceStatus, SessionStatus, StatusResponse};

pub(super) async fn status(state: &AppState, caller: &Caller) -> Result<Reply, ApiError> {
    let now = state.clock.now();
    let user = &caller.user_id;
    // Record the visit first so the calling device is listed even on its first call.
    state
        .store
        .record_visit(user, &DeviceVisit::at(caller.device_id.clone(), now))
        .await?;
    let (head, devices, sessions) = tokio::try_join!(
        state.store.head(user),
        state.store.devices(user),
        state
            .store
            .recent_sessions(user, STATUS_RECENT_SESSIONS, now),
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
    Ok(Reply::json(&StatusResponse {
        user_id: user.to_string(),
        head_cursor: Cursor::Log { seq: head.seq }.encode(user.as_str()),
        head_seq: head.seq,
        devices,
        recent_sessions,
        open_sessions,
        conflict_rate,
        server_timestamp: now,
    }))
}
