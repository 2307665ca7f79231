//! End-to-end tests of the offline-first client: the real gateway router on a
//! loopback port over DynamoDB Local, and devices driven only through
//! `trainsync_client`'s API, each on its own database file.

mod harness;
mod lost_answers;
mod multi_device;
mod plans;
mod revocation;
