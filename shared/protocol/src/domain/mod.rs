//! Domain types: identities, the entities users sync and the change log's vocabulary.
//! Pure data and rules; no AWS or HTTP types.

mod backend;
mod conflict;
mod entities;
mod ids;
mod state;

pub use backend::*;
pub use conflict::*;
pub use entities::*;
pub use ids::*;
pub use state::*;
