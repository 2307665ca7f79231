//! The use cases behind the endpoints, free of HTTP: each takes the few
//! things it uses (a store, a clock, a push provider), not the whole state.
//!
//! - [`commit`]: the one load → resolve → commit loop with back-off, and
//!   loading what a batch needs.
//! - [`idempotency`]: claiming a request id once (PRD 6.2); [`batch`]: an
//!   upload or ingest batch applied once, then the training load recomputed.
//! - [`upload`], [`download`], [`undo`]: the sync endpoints' use cases.
//! - [`publish`], [`ingest`], [`brain`]: the backend's writes into a user's log.
//! - [`retention`]: trimming the change log once every device has it.
//! - [`devices`], [`tokens`]: registering and revoking devices, token pairs.
//! - [`fanout`]: critical-alert pushes from the table's stream.

pub mod batch;
pub mod brain;
pub mod commit;
pub mod devices;
pub mod download;
pub mod fanout;
pub mod idempotency;
pub mod ingest;
pub mod publish;
pub mod retention;
pub mod sessions;
pub mod tokens;
pub mod undo;
pub mod upload;
