//! trainsync's protocol: everything the server and the offline-first client
//! must agree on, compiled by both.
//!
//! No async runtime, AWS, Lambda or HTTP crate is in this crate's tree: the
//! client SDK depends on it alone. Layers, each importing only those above it:
//!
//! - [`limits`]: the numbers both sides enforce.
//! - [`domain`]: identities, the entities users sync, the conflict log's
//!   vocabulary, and a user's stored state as the rules see it.
//! - [`validate`]: the field-naming error type and the rules for uploaded items.
//! - [`plan`], [`track`], [`reference`](mod@reference): the training plan (model, diff, edits,
//!   validation), GPS tracks (model, binary codec, summary) and reference data.
//! - [`cursor`]: the opaque download position.
//! - [`names`]: enum wire names taken from serde, never a second table.
//! - [`rules`]: merge, conflict resolution, undo and training load; pure.
//! - [`wire`]: the request and response bodies of every endpoint, and ingest events.
#![forbid(unsafe_code)]

pub mod cursor;
pub mod digest;
pub mod domain;
pub mod fixtures;
pub mod limits;
pub mod names;
pub mod plan;
pub mod reference;
pub mod rules;
pub mod track;
pub mod validate;
pub mod wire;
