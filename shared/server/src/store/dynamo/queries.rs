//! The reads and batch writes every storage impl shares: strongly consistent
//! single reads, prefix queries of one partition (one page or every page),
//! and `BatchWriteItem` in DynamoDB's size limits with unprocessed items retried.

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::WriteRequest;

use super::DynamoStore;
use super::errors::store_error;
use super::keys::key_of;
use super::records::{Item, s};
use crate::store::{StoreError, contention_backoff};

/// Requests DynamoDB accepts in one `BatchWriteItem`.
const BATCH_WRITE_MAX_ITEMS: usize = 25;
/// Payload bytes per `BatchWriteItem` (its limit is 16 MB after base64 of binary values).
const BATCH_WRITE_MAX_BYTES: usize = 8 * 1024 * 1024;
/// Attempts at a batch whose items DynamoDB keeps leaving unprocessed.
const BATCH_WRITE_ATTEMPTS: u32 = 8;

impl DynamoStore {
    /// A query of the items of partition `pk` whose sort key starts with `prefix`.
    pub(super) fn prefix_query(&self, pk: &str, prefix: &str) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(prefix))
    }

    /// Runs `query` to its end, page after page, and returns every item.
    pub(super) async fn query_all(
        &self,
        query: QueryFluentBuilder,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = query
                .clone()
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(store_error)?;
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    /// Writes (puts or deletes) `requests`, each with its payload size, in
    /// `BatchWriteItem` calls of at most 25 items and 8 MiB, retrying what
    /// DynamoDB leaves unprocessed.
    pub(super) async fn write_all(
        &self,
        requests: Vec<(usize, WriteRequest)>,
    ) -> Result<(), StoreError> {
        let mut requests = requests.into_iter().peekable();
        while requests.peek().is_some() {
            let mut batch = Vec::new();
            let mut batch_bytes = 0;
            while let Some((size, _)) = requests.peek() {
                if batch.len() == BATCH_WRITE_MAX_ITEMS
                    || (!batch.is_empty() && batch_bytes + size > BATCH_WRITE_MAX_BYTES)
                {
                    break;
                }
                batch_bytes += size;
                batch.extend(requests.next().map(|(_, r)| r));
            }
            let mut attempt = 0;
            while !batch.is_empty() {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, batch)
                    .send()
                    .await
                    .map_err(store_error)?;
                batch = out
                    .unprocessed_items
                    .and_then(|mut left| left.remove(&self.table))
                    .unwrap_or_default();
                if !batch.is_empty() {
                    attempt += 1;
                    if attempt >= BATCH_WRITE_ATTEMPTS {
                        return Err(StoreError::Unavailable(format!(
                            "{} items left unprocessed by BatchWriteItem",
                            batch.len()
                        )));
                    }
                    contention_backoff(attempt).await;
                }
            }
        }
        Ok(())
    }

    /// One item, read strongly consistently.
    pub(super) async fn get_item(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        Ok(out.item)
    }

    /// The items of partition `pk` whose sort key starts with `prefix`, in
    /// sort-key order (`forward`) or reversed: one page of at most `limit`,
    /// or every page.
    pub(super) async fn query_prefix(
        &self,
        pk: &str,
        prefix: &str,
        forward: bool,
        limit: Option<i32>,
    ) -> Result<Vec<Item>, StoreError> {
        let query = self.prefix_query(pk, prefix).scan_index_forward(forward);
        match limit {
            // One page of at most `limit` items.
            Some(limit) => Ok(query
                .limit(limit)
                .send()
                .await
                .map_err(store_error)?
                .items
                .unwrap_or_default()),
            None => self.query_all(query).await,
        }
    }
}
