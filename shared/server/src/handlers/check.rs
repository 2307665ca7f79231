//! `POST /sync/check`: "anything new?" in one read of the user's head, and a new session.

use chrono::Duration;
use lambda_http::Request;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{Reply, json_request};
use crate::state::AppState;
use crate::store::{DeviceVisit, Head, Session, SessionState};
use trainsync_protocol::cursor::Cursor;
use trainsync_protocol::domain::{EntityKind, SyncId};
use trainsync_protocol::limits::SESSION_TTL_SECS;
use trainsync_protocol::wire::{CheckRequest, CheckResponse};

/// Where the device says it stands.
enum Position {
    Seq(u64),
    Time(chrono::DateTime<chrono::Utc>),
    Nothing,
}

pub(super) async fn check(
    state: &AppState,
    caller: &Caller,
    req: &Request,
) -> Result<Reply, ApiError> {
    let (request, _): (CheckRequest, _) = json_request(req)?;
    if request.user_id != caller.user_id.as_str() {
        return Err(ApiError::Forbidden {
            field: "user_id",
            message: "user_id does not match the authenticated user".into(),
        });
    }
    if request
        .device_id
        .as_deref()
        .is_some_and(|d| d != caller.device_id.as_str())
    {
        return Err(ApiError::Forbidden {
            field: "device_id",
            message: "device_id does not match the token's device".into(),
        });
    }
    let position = match (&request.cursor, request.last_sync_timestamp) {
        (Some(cursor), _) => match Cursor::decode(cursor, caller.user_id.as_str()) {
            Ok(Cursor::Log { seq }) => Position::Seq(seq),
            // Deferred low-priority changes count as pending updates.
            Ok(Cursor::Deferred { from, .. }) => Position::Seq(from - 1),
            Ok(Cursor::Snapshot { .. }) => Position::Nothing,
            Err(e) => return Err(ApiError::BadRequest(e.field_error("cursor"))),
        },
        (None, Some(t)) => Position::Time(t),
        (None, None) => Position::Nothing,
    };
    let now = state.clock.now();
    let head = state.store.head(&caller.user_id).await?;
    let labels = changes_after(&head, &position);
    let session = Session {
        sync_id: SyncId::new(),
        device_id: caller.device_id.clone(),
        opened_at: now,
        expires_at: now + Duration::seconds(SESSION_TTL_SECS),
        state: SessionState::Open,
        completed_at: None,
        error: None,
        uploads: 0,
        conflicts: 0,
        completed_by: None,
    };
    let visit = DeviceVisit::at(caller.device_id.clone(), now);
    state
        .store
        .open_session(&caller.user_id, &session, &visit)
        .await?;
    Ok(Reply::json(&CheckResponse {
        sync_id: session.sync_id.0,
        has_updates: !labels.is_empty(),
        server_changes_available: labels,
        accepts_client_changes: true,
        server_timestamp: now,
        cursor: Cursor::Log { seq: head.seq }.encode(caller.user_id.as_str()),
    }))
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
                    Position::Time(t) => k.at > *t,
                    Position::Nothing => true,
                })
        })
        .map(|kind| kind.update_label(head.plan_version))
        .collect()
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
