//! Reading the table's stream (NEW_IMAGE): change-log items back into the
//! values storage wrote, next to the code that writes them.

use serde::Deserialize;
use serde_dynamo::Item;

use super::keys::parse_user_pk;
use super::records::{ChangeRecord, ItemKind};
use crate::store::{EntityKey, StoreError, StoredEntity};
use trainsync_protocol::domain::UserId;

/// Just enough of any item to tell what it is.
#[derive(Deserialize)]
struct Probe {
    pk: String,
    #[serde(default)]
    entity: Option<String>,
}

/// The change-log entry a stream image holds, with its user; `None` for
/// every other kind of item (entity states, head, sessions, ...).
pub fn change_from_image(image: Item) -> Result<Option<(UserId, StoredEntity)>, StoreError> {
    let probe: Probe = serde_dynamo::from_item(image.clone())
        .map_err(|e| StoreError::Corrupt(format!("stream image: {e}")))?;
    if probe.entity.as_deref() != Some(ItemKind::Change.as_str()) {
        return Ok(None);
    }
    let user = parse_user_pk(&probe.pk)
        .ok_or_else(|| StoreError::Corrupt(format!("change item in partition {}", probe.pk)))?;
    let record: ChangeRecord = serde_dynamo::from_item(image)
        .map_err(|e| StoreError::Corrupt(format!("change item: {e}")))?;
    Ok(Some((
        user,
        StoredEntity {
            key: EntityKey::new(record.kind, record.id),
            seq: record.seq,
            updated_at: record.at,
            data: record.data,
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::dynamo::keys::{change_at_sk, change_sk, user_pk};
    use chrono::{TimeZone, Utc};
    use serde_json::json;
    use trainsync_protocol::domain::EntityKind;

    fn change_image(kind: EntityKind, data: serde_json::Value) -> Item {
        let at = Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap();
        let user = UserId::parse("runner-1").unwrap();
        let record = ChangeRecord {
            pk: user_pk(&user),
            sk: change_sk(7),
            lsi1sk: change_at_sk(at, 7),
            entity: ItemKind::Change.into(),
            seq: 7,
            at,
            kind,
            id: "a1".into(),
            data,
            device_id: None,
        };
        // Through the SDK's attribute type, as DynamoDB stores it, then the stream's.
        let stored: std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> =
            serde_dynamo::to_item(&record).unwrap();
        Item::from(stored)
    }

    #[test]
    fn a_change_item_reads_back_as_written() {
        let data = json!({"id": "a1", "severity": "critical", "nested": {"n": 1.5}});
        let (user, change) = change_from_image(change_image(EntityKind::Alert, data.clone()))
            .unwrap()
            .expect("a change");
        assert_eq!(user.as_str(), "runner-1");
        assert_eq!(change.key, EntityKey::new(EntityKind::Alert, "a1"));
        assert_eq!((change.seq, change.data), (7, data));
    }

    #[test]
    fn other_items_are_not_changes() {
        let head: Item = serde_dynamo::to_item(
            json!({"pk": "USER#u", "sk": "HEAD", "entity": "head", "seq": 3}),
        )
        .unwrap();
        assert_eq!(change_from_image(head).unwrap(), None);
        let reference: Item =
            serde_dynamo::to_item(json!({"pk": "REF#1", "sk": "CURRENT", "version": 3})).unwrap();
        assert_eq!(change_from_image(reference).unwrap(), None);
    }
}
