//! The rules sync applies to data, pure and property-tested: field merges
//! ([`merge`]), the PRD 5 conflict rules over a batch ([`resolve`]), undoing a
//! resolution ([`undo`]) and the reference training-load formulas ([`training_load`]).

pub mod merge;
pub mod resolve;
pub mod training_load;
pub mod undo;
