//! trainsync's common crate.
//!
//! The first group of modules is client-safe: no AWS, Lambda or network
//! dependencies, so the offline-first client SDK compiles the very same
//! protocol types, validation and merge rules (`default-features = false`).
//! Everything behind the `server` feature is the backend: auth, storage,
//! idempotency, HTTP mapping and the endpoint handlers.

pub mod cursor;
pub mod domain;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod limits;
pub mod merge;
pub mod plan;
pub mod protocol;
pub mod reference;
pub mod track;
pub mod training_load;
pub mod validation;

#[cfg(feature = "server")]
pub mod apply;
#[cfg(feature = "server")]
pub mod auth;
#[cfg(feature = "server")]
pub mod brain;
#[cfg(feature = "server")]
pub mod clock;
#[cfg(feature = "server")]
pub mod compression;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod devices;
#[cfg(feature = "server")]
pub mod error;
#[cfg(feature = "server")]
pub mod fanout;
#[cfg(feature = "server")]
pub mod handlers;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod idempotency;
#[cfg(feature = "server")]
pub mod ingest;
#[cfg(feature = "server")]
pub mod lambda;
#[cfg(feature = "server")]
pub mod publish;
#[cfg(feature = "server")]
pub mod push;
#[cfg(feature = "server")]
pub mod refresh;
#[cfg(feature = "server")]
pub mod resolve;
#[cfg(feature = "server")]
pub mod retention;
#[cfg(feature = "server")]
pub mod revocation;
#[cfg(feature = "server")]
pub mod state;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "server")]
pub mod telemetry;
#[cfg(feature = "server")]
pub mod tokens;
#[cfg(feature = "server")]
pub mod undo;
