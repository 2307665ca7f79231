//! What the unit tests share: a settable clock and a client on a temporary file.

use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};

use crate::{Client, Clock, MemorySecretStore};

/// A clock the test moves.
#[derive(Debug)]
pub struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    pub fn new() -> Arc<Self> {
        Arc::new(Self(Mutex::new(epoch())))
    }

    /// Moves past the test tokens' 24-hour lifetime.
    pub fn advance_to_expiry(&self) {
        *self.0.lock().unwrap() = epoch() + chrono::Duration::hours(25);
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// Where test clocks start.
pub fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap()
}

/// A client on `db` for `server` with in-memory secrets and `clock`.
pub fn client(
    db: &Path,
    server: &str,
    secrets: Arc<MemorySecretStore>,
    clock: Arc<TestClock>,
) -> Client {
    Client::open_with_clock(db, server, secrets, clock).unwrap()
}

/// A client whose server never answers (port 9 on loopback refuses).
pub fn offline_client(db: &Path) -> Client {
    client(db, "http://127.0.0.1:9", Arc::default(), TestClock::new())
}
