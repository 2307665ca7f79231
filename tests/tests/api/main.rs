//! The integration suite as one test binary (one link, one process): a
//! module per area, every test against DynamoDB Local through the harness in
//! `src/lib.rs`, and the helpers several modules use in `helpers`.
//!
//! Run one area with `scripts/test -p trainsync-tests --test api -- cursor::`.

mod bad_input;
mod brain;
mod conflict_rules;
mod cursor;
mod devices;
mod downloads;
mod helpers;
mod idempotency;
mod ingest;
mod isolation;
mod jwks;
mod kms_signing;
mod lambda_event;
mod openapi;
mod outage;
mod pushes;
mod reference;
mod sync_flow;
mod template;
mod tracks;
