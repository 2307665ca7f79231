//! Domain types: identities, the entities users sync and the change log's vocabulary.
//! Pure data and rules; no AWS or HTTP types.

mod entities;
mod ids;

pub use entities::*;
pub use ids::*;
