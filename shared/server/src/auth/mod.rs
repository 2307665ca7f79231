//! Who is calling: verifying access tokens (`verify`), signing them
//! ([`issuer`]) and the per-container check that a device is still logged in
//! ([`revocation`]). The refresh-token rules are `crate::refresh`, below storage.

pub mod issuer;
pub mod revocation;
mod verify;

pub use issuer::mint_hs256_token;
pub use verify::*;
