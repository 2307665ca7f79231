//! The DynamoDB implementation of the storage traits (`crate::store`), all on
//! [`DynamoStore`]. The only module that speaks `aws_sdk_dynamodb`.
//!
//! One file per job: `client` (connecting), `errors` (SDK errors as
//! `StoreError`s), `keys` and `records` (the single table's keys and item
//! shapes), `queries` (shared reads and batch writes), then one file per
//! storage trait: `change_log` and `commit`, `sessions`, `requests`,
//! `devices`, `logins`, `deliveries`, `tracks`, `reference`. `schema`,
//! `stream` and `metrics` serve the local tooling and the Lambdas too.

mod change_log;
mod client;
mod commit;
mod deliveries;
mod devices;
mod errors;
mod keys;
mod logins;
pub mod metrics;
mod queries;
mod records;
mod reference;
mod requests;
pub mod schema;
mod sessions;
pub mod stream;
mod tracks;

pub use client::{DynamoStore, client_for, client_from, client_with_counter, sdk_config};
pub use commit::PLAN_VERSION_RETENTION_DAYS;
