//! GPS tracks in a compact binary form (PRD 7.1).
//!
//! A 3-hour run recorded at 1 Hz has more than 10 000 points, far too many to
//! travel inside an activity. A track is stored apart from its activity,
//! encoded with [`encode`], split by [`chunks`] into pieces under DynamoDB's
//! 400 KB item limit, and fetched on demand as binary.
//!
//! # Format (version 1)
//!
//! The whole payload is gzip-compressed. Inflated, it is:
//!
//! 1. the version byte (`1`);
//! 2. the point count, an unsigned LEB128 varint;
//! 3. a flags byte: bits 0–1 say how elevations are present, bits 2–3 the
//!    same for heart rates (`0` none, `1` on every point, `2` a presence
//!    bitmap follows); the other bits are 0;
//! 4. columns of zigzag LEB128 varints: time (ms), latitude and longitude
//!    (fixed point, 1e-7 degree, as i32) as second-order deltas (each delta
//!    minus the previous delta, near 0 for a steady 1 Hz pace); then for
//!    elevation (decimetres) and heart rate (bpm) the optional bitmap (bit
//!    `i % 8` of byte `i / 8` set when point `i` has a value) followed by
//!    first-order deltas of the values present. The first value of a column
//!    is its delta from 0, and the second its plain delta from the first.
//!
//! Columns rather than interleaved points put similar bytes together, which
//! gzip compresses far better.
//!
//! Round trips are exact up to the fixed-point quantisation: latitude and
//! longitude to 1e-7 degree (about 1 cm), elevation to 0.1 m (see
//! [`quantize`]). Times, heart rates and absent values are kept exactly.

mod codec;
mod model;
mod summary;
#[cfg(test)]
mod tests;

pub use codec::*;
pub use model::*;
pub use summary::*;
