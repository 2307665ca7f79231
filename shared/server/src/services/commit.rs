//! The heart of the system: every write of a user's data goes through
//! [`commit_with_retry`], the one load → resolve → commit loop. Each attempt
//! reads the head and what it needs, decides the writes, and commits them in
//! one transaction conditional on the head not having moved; when a concurrent
//! commit wins, it backs off and decides again from the new state. So the
//! change log stays gap-free and each decision is made on the state it writes
//! over. [`load_for`] reads what a batch of changes needs.

use chrono::{DateTime, Duration, Utc};

use crate::store::{
    Commit, CommitOutcome, EntityKey, Head, Loaded, RequestCompletion, StoreError, SyncStore,
    contention_backoff,
};
use trainsync_protocol::domain::{Tombstone, UserId};
use trainsync_protocol::rules::merge::DUPLICATE_WINDOW_SECS;
use trainsync_protocol::rules::resolve::{Batch, activity_key};

/// Commit attempts before giving up with [`StoreError::Contention`].
pub const MAX_COMMIT_ATTEMPTS: u32 = 12;

/// What one attempt decided, from the state it read.
#[derive(Debug)]
pub enum Attempt<T> {
    /// Write this commit; the loop's answer is `T` once it is committed.
    Commit(Box<Commit>, T),
    /// Nothing to write: the answer is `T` as it is.
    Nothing(T),
}

/// How the commit loop ended, short of a storage error.
#[derive(Debug, PartialEq, Eq)]
pub enum Committed<T> {
    /// Committed (or nothing needed writing): the attempt's answer.
    Done(T),
    /// Another request with the same idempotency key took the claim over.
    ClaimLost,
    /// The commit's sync session was closed or expired.
    SessionGone,
    /// An earlier attempt of this request committed although its answer was
    /// lost (or is still in doubt): the response it stored, byte for byte.
    Replayed(String),
}

impl<T> Committed<T> {
    /// The answer of a commit that carries no idempotency claim and no session,
    /// for which the other outcomes would be a bug.
    pub fn into_done(self) -> Result<T, StoreError> {
        match self {
            Committed::Done(value) => Ok(value),
            Committed::ClaimLost => Err(StoreError::Other(
                "a commit without an idempotency claim lost its claim".into(),
            )),
            Committed::SessionGone => Err(StoreError::Other(
                "a commit without a session lost its session".into(),
            )),
            Committed::Replayed(_) => Err(StoreError::Other(
                "a commit without an idempotency claim was replayed".into(),
            )),
        }
    }
}

/// The commit time for a commit on `head`: never before the previous commit,
/// whatever this Lambda's clock says (so an RFC 3339 `since` maps onto the log).
pub fn commit_time(head: &Head, now: DateTime<Utc>) -> DateTime<Utc> {
    head.last_at.map_or(now, |last| last.max(now))
}

/// Runs `attempt` and commits what it decides, again from fresh state each
/// time a concurrent commit moves the head (with jittered exponential back-off),
/// at most [`MAX_COMMIT_ATTEMPTS`] times. `attempt` gets the attempt number.
///
/// A commit that completes an idempotency claim and whose outcome is unknown
/// (an error after it may have applied, a transaction still in progress, or
/// its claim's condition failing) is settled by reading the claim's record:
/// completed by this claim means an earlier attempt applied, and its stored
/// response is the answer ([`Committed::Replayed`]); never a second commit.
pub async fn commit_with_retry<T, E, Fut>(
    store: &dyn SyncStore,
    user: &UserId,
    mut attempt: impl FnMut(u32) -> Fut,
) -> Result<Committed<T>, E>
where
    Fut: Future<Output = Result<Attempt<T>, E>>,
    E: From<StoreError>,
{
    for number in 0..MAX_COMMIT_ATTEMPTS {
        let (mut commit, answer) = match attempt(number).await? {
            Attempt::Nothing(answer) => return Ok(Committed::Done(answer)),
            Attempt::Commit(commit, answer) => (commit, answer),
        };
        if let Some(request) = commit.request.as_mut() {
            request.attempt = number;
        }
        let outcome = store.commit(user, &commit).await;
        let request = commit.request.as_ref();
        match (outcome, request) {
            (Ok(CommitOutcome::Committed { .. }), _) => return Ok(Committed::Done(answer)),
            (Ok(CommitOutcome::HeadMoved), _) => contention_backoff(number).await,
            (Ok(CommitOutcome::SessionGone), _) => return Ok(Committed::SessionGone),
            (Ok(CommitOutcome::ClaimLost), None) => return Ok(Committed::ClaimLost),
            // Without a claim the head condition alone keeps a re-plan safe.
            (Ok(CommitOutcome::InDoubt), None) => contention_backoff(number).await,
            (Err(e), None) => return Err(e.into()),
            (Ok(CommitOutcome::ClaimLost), Some(request)) => {
                return match settle(store, user, request).await? {
                    Settled::Applied(body) => Ok(Committed::Replayed(body)),
                    Settled::Open | Settled::Lost => Ok(Committed::ClaimLost),
                };
            }
            (Ok(CommitOutcome::InDoubt), Some(request)) => {
                contention_backoff(number).await;
                match settle(store, user, request).await? {
                    Settled::Applied(body) => return Ok(Committed::Replayed(body)),
                    // Plan again: the next attempt's completion is conditioned
                    // on this claim still being open, so at most one applies.
                    Settled::Open => {}
                    Settled::Lost => return Ok(Committed::ClaimLost),
                }
            }
            (Err(error), Some(request)) => {
                return match settle(store, user, request).await {
                    Ok(Settled::Applied(body)) => {
                        tracing::warn!(%error, "a commit's answer was lost after it applied; answering its stored response");
                        Ok(Committed::Replayed(body))
                    }
                    Ok(Settled::Open | Settled::Lost) => Err(error.into()),
                    Err(read) => {
                        tracing::warn!(%read, "could not read the idempotency record after a failed commit");
                        Err(error.into())
                    }
                };
            }
        }
    }
    Err(StoreError::Contention.into())
}

/// Where a claim stands after a commit whose outcome is unknown.
enum Settled {
    /// Completed by this claim: an attempt applied; its stored response.
    Applied(String),
    /// Still this claim's, not completed: nothing applied yet.
    Open,
    /// Taken over (or gone): another request with the key owns it.
    Lost,
}

/// Reads `request`'s idempotency record to learn whether its commit applied.
async fn settle(
    store: &dyn SyncStore,
    user: &UserId,
    request: &RequestCompletion,
) -> Result<Settled, StoreError> {
    Ok(match store.request_state(user, request.key).await? {
        Some(state) if state.claim == request.claim => match state.response {
            Some(body) => Settled::Applied(body),
            None => Settled::Open,
        },
        _ => Settled::Lost,
    })
}

/// Reads the head and every entity `batch` may touch. Costs one read, plus
/// one index query when the batch has activities, plus one more read only
/// when it writes under the id of a merged duplicate.
pub async fn load_for(
    store: &dyn SyncStore,
    user: &UserId,
    batch: &Batch,
) -> Result<Loaded, StoreError> {
    let mut keys = batch.keys();
    let starts: Vec<_> = batch.activities().map(|a| a.started_at).collect();
    if let (Some(first), Some(last)) = (starts.iter().min(), starts.iter().max()) {
        let window = Duration::seconds(DUPLICATE_WINDOW_SECS);
        let candidates = store
            .activities_started_between(user, *first - window, *last + window)
            .await?;
        keys.extend(candidates.into_iter().map(|(_, key)| key));
        keys.sort();
        keys.dedup();
    }
    let mut loaded = store.load(user, &keys).await?;
    let mut survivors: Vec<EntityKey> = Vec::new();
    for entity in loaded.entities.values() {
        let Some(survivor) = Tombstone::of(&entity.data).and_then(|t| t.replaced_by) else {
            continue;
        };
        // A merged duplicate always names its survivor's UUID; anything else is corrupt.
        let id = uuid::Uuid::parse_str(&survivor).map_err(|e| {
            StoreError::Corrupt(format!("{}: replaced_by {survivor:?}: {e}", entity.key))
        })?;
        let key = activity_key(id);
        if !loaded.entities.contains_key(&key) {
            survivors.push(key);
        }
    }
    if !survivors.is_empty() {
        let more = store.load(user, &survivors).await?;
        // The head of the first read stays the commit's base: a move in between fails the commit.
        loaded.entities.extend(more.entities);
    }
    Ok(loaded)
}
