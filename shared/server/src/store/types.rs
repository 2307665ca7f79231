//! The values more than one of the storage traits read and write, free of
//! any database types.

use chrono::{DateTime, Utc};
use trainsync_protocol::domain::DeviceId;

/// A device's visit to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceVisit {
    /// The device.
    pub device_id: DeviceId,
    /// When.
    pub at: DateTime<Utc>,
    /// A download handed it this cursor (encoded) covering this sequence.
    pub delivered: Option<(String, u64)>,
    /// It completed a sync successfully, acknowledging this cursor.
    pub synced: Option<Option<String>>,
}

impl DeviceVisit {
    /// A plain visit.
    pub fn at(device_id: DeviceId, at: DateTime<Utc>) -> Self {
        Self {
            device_id,
            at,
            delivered: None,
            synced: None,
        }
    }
}
