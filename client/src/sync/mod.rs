//! The sync manager: the PRD 4.3 session as an explicit state machine.
//!
//! ```text
//! Idle ─▶ Checking ─▶ Uploading{sync_id} ─▶ Downloading{sync_id} ─▶ Completing{sync_id, cursor} ─▶ Idle
//!            │ (nothing new, nothing pending)                                              ▲
//!            └─────────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! Every transition is persisted in `sync_state.session` before the step's
//! request is made, so a client killed anywhere resumes at the step it was in:
//! an unanswered upload batch is re-sent with its persisted `sync_request_id`
//! and `sync_id` (the server replays its answer instead of applying it again),
//! and each download page is applied together with its cursor in one
//! transaction. A transient failure ends the session as "will retry" with the
//! next attempt's time; the step stays, so the retry continues where it was.

mod apply;
pub mod backoff;
#[cfg(test)]
mod tests;
mod upload;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use trainsync_protocol::wire::{
    CheckRequest, CheckResponse, CompleteRequest, CompleteResponse, CompleteStatus, ErrorCode,
};
use uuid::Uuid;

use crate::db;
use crate::transport::TransportError;
use crate::{Client, ClientError};

pub use apply::PageCounts;

/// Where a session is; persisted as JSON in `sync_state.session`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// No session running.
    Idle,
    /// About to ask `/sync/check` what is new.
    Checking,
    /// Sending the queue in batches within session `sync_id`.
    Uploading {
        /// The session `/sync/check` opened.
        sync_id: Uuid,
    },
    /// Fetching and applying pages after the held cursor.
    Downloading {
        /// The session.
        sync_id: Uuid,
    },
    /// Closing the session, acknowledging `cursor`.
    Completing {
        /// The session.
        sync_id: Uuid,
        /// The cursor applied.
        cursor: String,
    },
}

/// What started a session (logged; the app decides when to call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The user pulled to refresh.
    Manual,
    /// The app was opened.
    Launch,
    /// A workout, check-in or critical setting was just written.
    LocalWrite,
    /// The periodic background task.
    Periodic,
    /// A critical-alert or "new data" push.
    Push,
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionOutcome {
    /// `/sync/check` reported nothing new and nothing was pending.
    UpToDate,
    /// Every step succeeded.
    Synced {
        /// Items the server accepted.
        accepted: u32,
        /// Items resolved by a conflict rule.
        conflicts: u32,
        /// Items refused permanently (now in the rejected list).
        rejected: u32,
        /// Download pages applied.
        pages: u32,
    },
    /// The server was unreachable or busy; try again at `at`.
    WillRetry {
        /// When the next attempt is due.
        at: DateTime<Utc>,
        /// What failed.
        reason: String,
    },
    /// The device is signed out; local data and the queue are kept.
    SignedOut {
        /// Why.
        reason: String,
    },
}

/// Coalesces concurrent sync calls: one session at a time, and a caller that
/// waited while another session ran takes that session's outcome.
#[derive(Debug, Default)]
pub(crate) struct SessionGate {
    last: tokio::sync::Mutex<Option<SessionOutcome>>,
    finished: AtomicU64,
}

/// Counts of one session, for its outcome and log line.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    accepted: u32,
    conflicts: u32,
    rejected: u32,
    pages: u32,
}

/// How many times a session re-opens after the server forgot it.
const MAX_REOPENS: u32 = 2;

impl Client {
    /// Runs a sync session (or joins the one running).
    pub async fn sync(&self, trigger: Trigger) -> Result<SessionOutcome, ClientError> {
        let seen = self.sessions.finished.load(Ordering::SeqCst);
        let mut last = self.sessions.last.lock().await;
        if self.sessions.finished.load(Ordering::SeqCst) != seen
            && let Some(outcome) = last.clone()
        {
            return Ok(outcome);
        }
        let started = std::time::Instant::now();
        let outcome = self.run_session().await;
        self.sessions.finished.fetch_add(1, Ordering::SeqCst);
        match &outcome {
            Ok(o) => {
                tracing::info!(?trigger, outcome = ?o, duration_ms = started.elapsed().as_millis() as u64, "sync session");
                *last = Some(o.clone());
            }
            Err(e) => {
                tracing::warn!(?trigger, error = %e, duration_ms = started.elapsed().as_millis() as u64, "sync session failed");
                *last = None;
            }
        }
        outcome
    }

    /// The persisted step.
    pub fn step(&self) -> Result<Step, ClientError> {
        Ok(serde_json::from_str(&db::sync_state(&self.db())?.session)?)
    }

    fn set_step(&self, step: &Step) -> Result<(), ClientError> {
        db::set_session(&self.db(), &serde_json::to_string(step)?)
    }

    async fn run_session(&self) -> Result<SessionOutcome, ClientError> {
        if let Some(reason) = self.signed_out()? {
            return Ok(SessionOutcome::SignedOut { reason });
        }
        let mut tally = Tally::default();
        let mut reopens = 0;
        loop {
            match self.run_steps(&mut tally).await {
                Ok(outcome) => {
                    db::record_success(&self.db(), self.now())?;
                    return Ok(outcome);
                }
                Err(ClientError::Transport(TransportError::Server { code, .. }))
                    if matches!(
                        code,
                        ErrorCode::UnknownSyncId | ErrorCode::SyncSessionClosed
                    ) && reopens < MAX_REOPENS =>
                {
                    // The session expired or was closed: nothing of the refused
                    // request was applied, so its batch may go again in a new one.
                    reopens += 1;
                    self.reopen_session()?;
                }
                Err(ClientError::Transport(TransportError::SignedOut(reason))) => {
                    return Ok(SessionOutcome::SignedOut { reason });
                }
                Err(ClientError::Transport(error)) if error.is_transient() => {
                    let wait = backoff::backoff(
                        db::sync_state(&self.db())?.consecutive_failures + 1,
                        backoff::jitter(),
                        error.retry_after(),
                    );
                    let at = self.now() + wait;
                    db::record_failure(&self.db(), &error.to_string(), at)?;
                    return Ok(SessionOutcome::WillRetry {
                        at,
                        reason: error.to_string(),
                    });
                }
                Err(error) => {
                    let wait = backoff::backoff(
                        db::sync_state(&self.db())?.consecutive_failures + 1,
                        backoff::jitter(),
                        None,
                    );
                    db::record_failure(&self.db(), &error.to_string(), self.now() + wait)?;
                    return Err(error);
                }
            }
        }
    }

    /// Back to `Checking` with the unanswered batch returned to the queue, in
    /// one transaction.
    fn reopen_session(&self) -> Result<(), ClientError> {
        let mut conn = self.db();
        let tx = conn.transaction()?;
        for item in db::in_flight_batch(&tx)? {
            db::requeue(&tx, item.queue_id)?;
        }
        db::set_session(&tx, &serde_json::to_string(&Step::Checking)?)?;
        tx.commit()?;
        Ok(())
    }

    async fn run_steps(&self, tally: &mut Tally) -> Result<SessionOutcome, ClientError> {
        let mut step = self.step()?;
        if step == Step::Idle {
            step = Step::Checking;
            self.set_step(&step)?;
        }
        loop {
            step = match step {
                Step::Idle => {
                    return Ok(SessionOutcome::Synced {
                        accepted: tally.accepted,
                        conflicts: tally.conflicts,
                        rejected: tally.rejected,
                        pages: tally.pages,
                    });
                }
                Step::Checking => match self.check().await? {
                    Some(next) => next,
                    None => {
                        self.set_step(&Step::Idle)?;
                        return Ok(SessionOutcome::UpToDate);
                    }
                },
                Step::Uploading { sync_id } => {
                    self.upload_queue(sync_id, tally).await?;
                    Step::Downloading { sync_id }
                }
                Step::Downloading { sync_id } => {
                    let cursor = self.download_pages(tally).await?;
                    Step::Completing { sync_id, cursor }
                }
                Step::Completing { sync_id, cursor } => {
                    self.complete(sync_id, &cursor).await?;
                    Step::Idle
                }
            };
            self.set_step(&step)?;
        }
    }

    /// `/sync/check`: the next step, or `None` when there is nothing to do.
    async fn check(&self) -> Result<Option<Step>, ClientError> {
        let (state, pending) = {
            let conn = self.db();
            let pending: u32 = db::unsent_counts(&conn)?.iter().map(|(_, n)| n).sum();
            (db::sync_state(&conn)?, pending)
        };
        let user_id = state
            .user_id
            .clone()
            .ok_or_else(|| TransportError::SignedOut("not signed in".into()))?;
        let request = CheckRequest {
            user_id,
            device_id: state.device_id.clone(),
            last_sync_timestamp: state.last_sync_at,
            cursor: state.cursor.clone(),
            pending_changes_count: pending,
            network: Some(self.network()),
        };
        let answer: CheckResponse = self
            .call(Method::POST, "/sync/check", &[], Some(&request))
            .await?;
        let sync_id = answer.sync_id;
        if !answer.has_updates
            && pending == 0
            && state.cursor.is_some()
            && !state.snapshot_in_progress
        {
            return Ok(None);
        }
        Ok(Some(if pending > 0 && answer.accepts_client_changes {
            Step::Uploading { sync_id }
        } else {
            Step::Downloading { sync_id }
        }))
    }

    /// `/sync/complete` with the cursor applied. A session the server already
    /// forgot needs no closing: the data is in.
    async fn complete(&self, sync_id: Uuid, cursor: &str) -> Result<(), ClientError> {
        let request = CompleteRequest {
            sync_id,
            status: CompleteStatus::Success,
            sync_request_id: None,
            error: None,
            cursor: Some(cursor.to_owned()),
        };
        let answer = self
            .call::<CompleteResponse>(Method::POST, "/sync/complete", &[], Some(&request))
            .await;
        match answer {
            Ok(_) => Ok(()),
            Err(ClientError::Transport(TransportError::Server {
                code: ErrorCode::UnknownSyncId,
                ..
            })) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
