//! Who is calling: verifying access tokens ([`verify`]), signing them
//! ([`issuer`]), the refresh-token rules ([`refresh`]) and the per-container
//! check that a device is still logged in ([`revocation`]).

pub mod issuer;
pub mod refresh;
pub mod revocation;
mod verify;

pub use verify::*;
