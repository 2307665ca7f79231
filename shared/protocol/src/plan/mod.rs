//! Training plans: the backend's plan versions, their validation, and plan diffs (PRD 7.2).
//!
//! The backend owns the plan; the client never edits its structure, it only
//! asks for reschedules. A new plan version reaches the client as a
//! [`PlanDiff`] against the version it holds, which stays well under 1 KB for
//! a typical change where the full plan is tens of kilobytes.

mod diff;
mod edit;
mod model;
#[cfg(test)]
mod tests;
mod validate;

pub use diff::{PlanDiff, PlanOp, apply, diff};
pub use edit::{reschedule, set_coach_note};
pub use model::*;
