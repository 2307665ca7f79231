//! Every size limit of the protocol in one place, so docs, server and client agree.

/// Largest request body accepted, before and after gzip decompression (bytes).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Most items (activities + daily metrics + settings changes + plan adjustments)
/// in one upload. One upload is one DynamoDB transaction (at most 100 actions):
/// 4 fixed actions (head, idempotency record, session, device), 1 for a new
/// plan version's history item, and at worst 6 per item (a duplicate merge
/// writes the survivor, the duplicate's tombstone and a conflict-log entry,
/// each as state plus change-log entry): 5 + 15 * 6 = 95. Larger batches get
/// 413 and the client splits them.
pub const MAX_BATCH_ITEMS: usize = 15;

/// Most items in one ingest call: at worst 8 actions each (a wearable activity
/// merged with a manual log, plus its track announcement): 5 + 10 * 8 = 85.
pub const MAX_INGEST_ITEMS: usize = 10;

/// Actions DynamoDB allows in one `TransactWriteItems` call.
pub const DYNAMODB_MAX_TRANSACT_ACTIONS: usize = 100;

/// Most entity changes one commit may carry: each costs two actions (state and
/// change-log entry) and four are reserved (head, idempotency record, session, device).
pub const MAX_CHANGES_PER_COMMIT: usize = (DYNAMODB_MAX_TRANSACT_ACTIONS - 4) / 2;

const _: () = assert!(5 + MAX_BATCH_ITEMS * 6 <= DYNAMODB_MAX_TRANSACT_ACTIONS);
const _: () = assert!(5 + MAX_INGEST_ITEMS * 8 <= DYNAMODB_MAX_TRANSACT_ACTIONS);
const _: () = assert!(MAX_BATCH_ITEMS <= MAX_CHANGES_PER_COMMIT);

/// Download page size when the client gives no `limit`.
pub const DEFAULT_DOWNLOAD_LIMIT: u32 = 100;

/// Largest `limit` a download accepts; bigger values get 400.
pub const MAX_DOWNLOAD_LIMIT: u32 = 500;

/// Longest free-text `notes` on an activity (characters).
pub const MAX_NOTES_CHARS: usize = 2000;

/// How long a sync session opened by `/sync/check` stays usable (seconds).
pub const SESSION_TTL_SECS: i64 = 24 * 3600;

/// How long an idempotency record is kept (PRD 6.2: 7 days).
pub const IDEMPOTENCY_TTL_SECS: i64 = 7 * 24 * 3600;

/// How long an in-progress idempotency record blocks a duplicate before it is
/// considered abandoned (longer than the upload Lambda's timeout).
pub const IDEMPOTENCY_IN_PROGRESS_SECS: i64 = 60;

/// How far in the future a client timestamp may lie (clock skew allowance).
pub const MAX_CLIENT_CLOCK_SKEW_SECS: i64 = 24 * 3600;

/// Longest id (device id, workout id, user id) accepted in keys.
pub const MAX_ID_CHARS: usize = 128;

/// Recent sessions listed by `/sync/status`.
pub const STATUS_RECENT_SESSIONS: i32 = 10;

/// Longest push token accepted (APNs tokens are 64 hex digits, FCM's about 160 characters).
pub const MAX_PUSH_TOKEN_CHARS: usize = 1024;

/// Longest app or OS version string accepted.
pub const MAX_VERSION_CHARS: usize = 32;

/// Longest locale tag accepted (BCP 47 tags in practice stay far below).
pub const MAX_LOCALE_CHARS: usize = 35;
