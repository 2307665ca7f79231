//! Wire types of the sync API: the JSON contract mobile clients are written
//! against, one module per endpoint. Field names are fixed; see `docs/openapi.yaml`.

mod auth;
mod check;
mod complete;
mod conflicts;
mod devices;
mod download;
mod error;
mod ingest;
mod status;
mod upload;

pub use auth::*;
pub use check::*;
pub use complete::*;
pub use conflicts::*;
pub use devices::*;
pub use download::*;
pub use error::*;
pub use ingest::*;
pub use status::*;
pub use upload::*;
