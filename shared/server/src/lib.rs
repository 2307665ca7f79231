//! trainsync's server crate: everything the Lambda binaries share. The
//! protocol it speaks (wire types, validation, merge rules, cursor) is the
//! `trainsync-protocol` crate, which the offline client compiles too.
//!
//! Layers, each importing only those listed before it:
//! `config`, `clock`, `telemetry`, `compression`, `refresh` → `store`
//! (use-case traits, `store::dynamo`) → `auth` → `push` → `error` →
//! `services` (use cases taking what they use) → `state` → `http` →
//! `handlers` → `lambda` (the composition root). See `docs/architecture.md`.

pub mod auth;
pub mod clock;
pub mod compression;
pub mod config;
pub mod error;
pub mod handlers;
pub mod http;
pub mod lambda;
pub mod push;
pub mod refresh;
pub mod services;
pub mod state;
pub mod store;
pub mod telemetry;
