//! Device revocation at the door: every authenticated request is refused
//! when its device is logged out, or when its token belongs to an earlier
//! login of the device. The device item decides; each container caches what
//! it read for [`REVOCATION_CACHE_SECS`], so a logout reaches every
//! container within that bound (at once in the container that performed
//! it), at the cost of one small read per device and container per window.
//! A token of a login newer than the one cached (the device logged in again
//! through another container) is never refused from the cache: the device is
//! read again, consistently, first.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::auth::{AuthError, Caller};
use crate::store::{DeviceRecord, DeviceStore, StoreError};

/// How long a container trusts what it read about a device.
pub const REVOCATION_CACHE_SECS: i64 = 30;
/// Devices a container remembers at most (it forgets all of them past that).
const MAX_CACHED_DEVICES: usize = 10_000;

/// What the door needs to know of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// Never stored (a device on its first call): admitted.
    Unknown,
    /// Stored, with its current login if it logged in through us.
    Active { login: Option<Uuid> },
    /// Logged out.
    Revoked,
}

impl Standing {
    fn of(device: Option<&DeviceRecord>) -> Self {
        match device {
            None => Standing::Unknown,
            Some(d) if d.revoked_at.is_some() => Standing::Revoked,
            Some(d) => Standing::Active { login: d.login },
        }
    }

    /// Whether `caller`'s token may be used.
    fn admits(self, caller: &Caller) -> bool {
        match self {
            Standing::Unknown => true,
            // A login of ours is a UUID; a `sid` that is none (an identity
            // provider's) is not this device's login.
            Standing::Active { login } => login.is_none_or(|l| {
                caller
                    .login
                    .as_deref()
                    .and_then(|sid| Uuid::parse_str(sid).ok())
                    == Some(l)
            }),
            Standing::Revoked => false,
        }
    }
}

/// What a container read, per (user, device): when, and the standing.
type Seen = HashMap<(String, String), (DateTime<Utc>, Standing)>;

/// The per-container revocation check (see the module docs).
#[derive(Debug, Default)]
pub struct DeviceGate {
    seen: Mutex<Seen>,
}

impl DeviceGate {
    /// Admits `caller` or refuses it with [`AuthError::DeviceRevoked`].
    pub async fn admit<S: DeviceStore + ?Sized>(
        &self,
        store: &S,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<(), GateError> {
        let key = (caller.user_id.to_string(), caller.device_id.to_string());
        let cached = self
            .lock()
            .get(&key)
            .filter(|(at, _)| now - *at < Duration::seconds(REVOCATION_CACHE_SECS))
            .copied();
        let mut standing = match cached {
            Some((_, standing)) => standing,
            None => self.read(store, caller, key.clone(), now, false).await?,
        };
        // What this container cached may predate a new login of the device
        // (made through another container): before refusing a token that
        // names another login, read the device again, consistently; at most
        // once a second, so replaying an old token cannot force a read each time.
        let stale = cached.is_some_and(|(at, _)| now - at >= Duration::seconds(1));
        if stale && caller.login.is_some() && !standing.admits(caller) {
            standing = self.read(store, caller, key, now, true).await?;
        }
        if standing.admits(caller) {
            Ok(())
        } else {
            Err(GateError::Refused(AuthError::DeviceRevoked))
        }
    }

    /// Reads the device's standing and caches it.
    async fn read<S: DeviceStore + ?Sized>(
        &self,
        store: &S,
        caller: &Caller,
        key: (String, String),
        now: DateTime<Utc>,
        consistent: bool,
    ) -> Result<Standing, GateError> {
        let device = store
            .device(&caller.user_id, &caller.device_id, consistent)
            .await?;
        let standing = Standing::of(device.as_ref());
        let mut seen = self.lock();
        if seen.len() >= MAX_CACHED_DEVICES {
            seen.clear();
        }
        seen.insert(key, (now, standing));
        Ok(standing)
    }

    /// Forgets what this container knows of a device (after it logged out or in here).
    pub fn forget(&self, user: &str, device: &str) {
        self.lock().remove(&(user.to_owned(), device.to_owned()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Why the gate did not admit a caller.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The device is logged out, or the token is of an earlier login.
    #[error(transparent)]
    Refused(AuthError),
    /// The device could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use trainsync_protocol::domain::{DeviceId, UserId};

    fn caller(login: Option<Uuid>) -> Caller {
        let login = login.map(|l| l.to_string());
        Caller {
            user_id: UserId::parse("u").unwrap(),
            device_id: DeviceId::parse("phone").unwrap(),
            login,
        }
    }

    #[test]
    fn only_the_current_login_of_a_live_device_is_admitted() {
        let (l1, l2) = (Uuid::new_v4(), Uuid::new_v4());
        assert!(Standing::Unknown.admits(&caller(None)));
        assert!(Standing::Active { login: None }.admits(&caller(None)));
        assert!(Standing::Active { login: None }.admits(&caller(Some(l1))));
        assert!(Standing::Active { login: Some(l1) }.admits(&caller(Some(l1))));
        assert!(!Standing::Active { login: Some(l1) }.admits(&caller(Some(l2))));
        assert!(!Standing::Active { login: Some(l1) }.admits(&caller(None)));
        assert!(!Standing::Revoked.admits(&caller(Some(l1))));
        assert!(!Standing::Revoked.admits(&caller(None)));
    }
}
