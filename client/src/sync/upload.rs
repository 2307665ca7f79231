//! The upload step: the queue in FIFO batches of at most `MAX_BATCH_ITEMS`,
//! each batch's `sync_request_id` persisted before it is sent and reused until
//! the server answers it; the answer is applied to the queue in one transaction.

use reqwest::Method;
use rusqlite::Connection;
use trainsync_protocol::limits::MAX_BATCH_ITEMS;
use trainsync_protocol::wire::{ItemType, UploadRequest, UploadResponse};
use uuid::Uuid;

use super::Tally;
use crate::db::{self, QueuedItem, SyncStatus, Table};
use crate::{Client, ClientError};

impl Client {
    pub(super) async fn upload_queue(
        &self,
        sync_id: Uuid,
        tally: &mut Tally,
    ) -> Result<(), ClientError> {
        loop {
            let Some((request_id, batch)) = self.next_batch()? else {
                return Ok(());
            };
            let request = upload_request(sync_id, request_id, &batch);
            let answer: UploadResponse = self
                .call(Method::POST, "/sync/upload", &[], Some(&request))
                .await?;
            let mut conn = self.db();
            let tx = conn.transaction()?;
            let requeued = settle(&tx, &batch, &answer, tally, self.now())?;
            tx.commit()?;
            if requeued > 0 {
                // Items refused for now (or not answered) wait for the next
                // session instead of going round in a tight loop.
                return Ok(());
            }
        }
    }

    /// The batch to send: the unanswered one if there is one (same items, same
    /// id), else the oldest queued items marked in flight under a new id.
    fn next_batch(&self) -> Result<Option<(Uuid, Vec<QueuedItem>)>, ClientError> {
        let mut conn = self.db();
        let in_flight = db::in_flight_batch(&conn)?;
        if let Some(id) = in_flight.first().and_then(|item| item.sync_request_id) {
            return Ok(Some((id, in_flight)));
        }
        let batch = db::queued(&conn, MAX_BATCH_ITEMS)?;
        if batch.is_empty() {
            return Ok(None);
        }
        let id = Uuid::new_v4();
        let tx = conn.transaction()?;
        db::mark_in_flight(&tx, &batch, id)?;
        tx.commit()?;
        Ok(Some((id, batch)))
    }
}

/// The upload body of `batch`: each item in its list, in queue order.
fn upload_request(sync_id: Uuid, sync_request_id: Uuid, batch: &[QueuedItem]) -> UploadRequest {
    let mut request = UploadRequest {
        sync_id,
        sync_request_id,
        activities: Vec::new(),
        daily_metrics: Vec::new(),
        settings_changes: Vec::new(),
        plan_adjustments: Vec::new(),
    };
    for item in batch {
        let list = match item.item_type {
            ItemType::Activity => &mut request.activities,
            ItemType::DailyMetric => &mut request.daily_metrics,
            ItemType::SettingsChange => &mut request.settings_changes,
            _ => &mut request.plan_adjustments,
        };
        list.push(item.payload.clone());
    }
    request
}

/// Applies the server's answer to the batch: accepted and resolved items leave
/// the queue, permanently refused ones move to the rejected list with the
/// server's reason, retryable ones go back to the queue in their place.
/// Returns how many went back.
fn settle(
    conn: &Connection,
    batch: &[QueuedItem],
    answer: &UploadResponse,
    tally: &mut Tally,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<usize, ClientError> {
    let mut requeued = 0;
    let mut settled = vec![false; batch.len()];
    let mut outcome: Vec<(ItemType, String, SyncStatus)> = Vec::new();
    let take = |item_type: ItemType, id: &str, settled: &mut Vec<bool>| {
        let position = batch.iter().enumerate().position(|(i, item)| {
            !settled[i] && item.item_type == item_type && item.entity_id == id
        })?;
        settled[position] = true;
        Some(position)
    };
    for accepted in &answer.accepted {
        if let Some(i) = take(accepted.item_type, &accepted.id, &mut settled) {
            db::dequeue(conn, batch[i].queue_id)?;
            outcome.push((accepted.item_type, accepted.id.clone(), SyncStatus::Synced));
            tally.accepted += 1;
        }
    }
    for conflict in &answer.conflicts {
        if let Some(i) = take(conflict.item_type, &conflict.id, &mut settled) {
            db::dequeue(conn, batch[i].queue_id)?;
            if let Some(table) = Table::for_item(conflict.item_type)
                && let Some(mut row) = db::entity(conn, table, &conflict.id)?
            {
                // The server's sentence, shown until the download brings the record.
                row.data["message"] = conflict.message.clone().into();
                row.data["resolution"] = conflict.resolution.clone().into();
                db::put_entity(
                    conn,
                    table,
                    &conflict.id,
                    &row.data,
                    now,
                    SyncStatus::Conflict,
                )?;
            }
            outcome.push((
                conflict.item_type,
                conflict.id.clone(),
                SyncStatus::Conflict,
            ));
            tally.conflicts += 1;
        }
    }
    for error in &answer.processing_errors {
        // Refused items are named by their position in their list.
        let Some(i) = batch
            .iter()
            .enumerate()
            .filter(|(_, item)| item.item_type == error.item_type)
            .nth(error.index)
            .map(|(i, _)| i)
        else {
            continue;
        };
        if settled[i] {
            continue;
        }
        settled[i] = true;
        if error.retryable {
            db::requeue(conn, batch[i].queue_id)?;
            requeued += 1;
        } else {
            let field = if error.field.is_empty() {
                "item"
            } else {
                &error.field
            };
            let code = trainsync_protocol::names::wire_name(&error.code).unwrap_or("invalid");
            db::reject(
                conn,
                batch[i].queue_id,
                &format!("{field}: {} ({code})", error.message),
            )?;
            outcome.push((
                error.item_type,
                batch[i].entity_id.clone(),
                SyncStatus::Conflict,
            ));
            tally.rejected += 1;
        }
    }
    // An item the answer does not mention was not processed: it goes again.
    for (i, item) in batch.iter().enumerate() {
        if !settled[i] {
            db::requeue(conn, item.queue_id)?;
            requeued += 1;
        }
    }
    for (item_type, id, status) in outcome {
        // A later local write of the same entity is still unsent: it stays pending.
        if let Some(table) = Table::for_item(item_type)
            && !db::has_unsent(conn, item_type, &id)?
        {
            db::set_entity_status(conn, table, &id, status)?;
        }
    }
    Ok(requeued)
}
