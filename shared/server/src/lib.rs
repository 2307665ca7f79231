//! trainsync's server crate: auth, storage, idempotency, the services behind
//! every endpoint, HTTP mapping and the handlers the Lambda binaries call.
//! The protocol it speaks (wire types, validation, merge rules) is the
//! `trainsync-protocol` crate, shared with the offline client.

pub mod apply;
pub mod auth;
pub mod brain;
pub mod clock;
pub mod compression;
pub mod config;
pub mod devices;
pub mod error;
pub mod fanout;
pub mod handlers;
pub mod http;
pub mod idempotency;
pub mod ingest;
pub mod lambda;
pub mod publish;
pub mod push;
pub mod refresh;
pub mod retention;
pub mod revocation;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tokens;
