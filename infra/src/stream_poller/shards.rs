//! Reading the table's stream through the SDK, as Lambda's poller does:
//! DescribeTable for the current stream, DescribeStream for its shards,
//! GetShardIterator and GetRecords for their records, plus [`read_all`], the
//! one-shot read of everything currently in the stream.

use aws_lambda_events::event::dynamodb::EventRecord;
use aws_sdk_dynamodbstreams::error::SdkError;
use aws_sdk_dynamodbstreams::operation::get_records::GetRecordsError;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use sync_core::config::Config;

use super::records::convert;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why reading the table's stream failed.
#[derive(Debug, thiserror::Error)]
pub enum PollerError {
    /// DescribeTable failed (e.g. the table does not exist yet).
    #[error("DescribeTable on table {table} failed")]
    DescribeTable {
        /// The table.
        table: String,
        /// The SDK error.
        #[source]
        source: BoxError,
    },
    /// The table has no stream enabled.
    #[error("table {table} has no stream (LatestStreamArn is missing)")]
    NoStream {
        /// The table.
        table: String,
    },
    /// DescribeStream failed.
    #[error("DescribeStream on {stream_arn} failed")]
    DescribeStream {
        /// The stream.
        stream_arn: String,
        /// The SDK error.
        #[source]
        source: BoxError,
    },
    /// GetShardIterator failed.
    #[error("GetShardIterator on shard {shard_id} failed")]
    GetShardIterator {
        /// The shard.
        shard_id: String,
        /// The SDK error.
        #[source]
        source: BoxError,
    },
    /// GetRecords failed.
    #[error("GetRecords on shard {shard_id} failed")]
    GetRecords {
        /// The shard.
        shard_id: String,
        /// The SDK error.
        #[source]
        source: BoxError,
    },
}

/// Every record currently in the table's stream, all shards from the trim
/// horizon, unfiltered and converted to the Lambda event type.
pub async fn read_all(config: &Config) -> Result<Vec<EventRecord>, PollerError> {
    let clients = Clients::new(config).await;
    let stream_arn = clients.stream_arn(&config.table_name).await?;
    let mut shards = clients.shards(&stream_arn).await?;
    // Parents before children, so records come out in stream order.
    let mut ordered = Vec::with_capacity(shards.len());
    while !shards.is_empty() {
        let ready = shards
            .iter()
            .position(|s| {
                s.parent
                    .as_ref()
                    .is_none_or(|p| !shards.iter().any(|o| &o.id == p))
            })
            .unwrap_or(0);
        ordered.push(shards.remove(ready));
    }
    let mut records = Vec::new();
    for shard in ordered {
        let mut iterator = clients.iterator(&stream_arn, &shard.id, None).await?;
        while let Some(current) = iterator {
            let page =
                clients
                    .get_records(&current)
                    .await
                    .map_err(|source| PollerError::GetRecords {
                        shard_id: shard.id.clone(),
                        source: Box::new(source),
                    })?;
            if page.records.is_empty() {
                break;
            }
            records.extend(page.records.into_iter().map(|r| convert(r, &stream_arn)));
            iterator = page.next_iterator;
        }
    }
    Ok(records)
}

/// The DynamoDB client (DescribeTable) and the streams client (the rest).
pub(super) struct Clients {
    dynamodb: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
}

/// A shard as DescribeStream lists it.
pub(super) struct ShardInfo {
    pub(super) id: String,
    pub(super) parent: Option<String>,
}

/// One GetRecords answer.
pub(super) struct Page {
    pub(super) records: Vec<Record>,
    pub(super) next_iterator: Option<String>,
}

impl Clients {
    /// The DynamoDB client as the handlers build it, and a streams client on
    /// the same SDK configuration (credentials, region) and endpoint.
    pub(super) async fn new(config: &Config) -> Self {
        let sdk = sync_core::store::dynamo::sdk_config(config).await;
        let dynamodb = sync_core::store::dynamo::client_from(&sdk, config, Default::default());
        let mut builder = aws_sdk_dynamodbstreams::config::Builder::from(&sdk);
        if let Some(endpoint) = &config.dynamodb_endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        let streams = aws_sdk_dynamodbstreams::Client::from_conf(builder.build());
        Self { dynamodb, streams }
    }

    /// The table's current stream (DescribeTable's `LatestStreamArn`).
    pub(super) async fn stream_arn(&self, table: &str) -> Result<String, PollerError> {
        let output = self
            .dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|source| PollerError::DescribeTable {
                table: table.to_owned(),
                source: Box::new(source),
            })?;
        output
            .table
            .and_then(|t| t.latest_stream_arn)
            .ok_or_else(|| PollerError::NoStream {
                table: table.to_owned(),
            })
    }

    /// Every shard of the stream, following DescribeStream's pages.
    pub(super) async fn shards(&self, stream_arn: &str) -> Result<Vec<ShardInfo>, PollerError> {
        let mut shards = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let output = self
                .streams
                .describe_stream()
                .stream_arn(stream_arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .map_err(|source| PollerError::DescribeStream {
                    stream_arn: stream_arn.to_owned(),
                    source: Box::new(source),
                })?;
            let Some(description) = output.stream_description else {
                break;
            };
            shards.extend(
                description
                    .shards
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|shard| {
                        Some(ShardInfo {
                            id: shard.shard_id?,
                            parent: shard.parent_shard_id,
                        })
                    }),
            );
            match description.last_evaluated_shard_id {
                Some(last) => start = Some(last),
                None => break,
            }
        }
        Ok(shards)
    }

    /// An iterator at the trim horizon, or just after `after` (a sequence
    /// number); `None` when the shard has nothing more to read.
    pub(super) async fn iterator(
        &self,
        stream_arn: &str,
        shard_id: &str,
        after: Option<&str>,
    ) -> Result<Option<String>, PollerError> {
        let kind = match after {
            Some(_) => ShardIteratorType::AfterSequenceNumber,
            None => ShardIteratorType::TrimHorizon,
        };
        let output = self
            .streams
            .get_shard_iterator()
            .stream_arn(stream_arn)
            .shard_id(shard_id)
            .shard_iterator_type(kind)
            .set_sequence_number(after.map(str::to_owned))
            .send()
            .await
            .map_err(|source| PollerError::GetShardIterator {
                shard_id: shard_id.to_owned(),
                source: Box::new(source),
            })?;
        Ok(output.shard_iterator)
    }

    /// One GetRecords call; the raw SDK error so callers can tell expired
    /// iterators and trimmed data from real failures.
    pub(super) async fn get_records(
        &self,
        iterator: &str,
    ) -> Result<Page, SdkError<GetRecordsError>> {
        let output = self
            .streams
            .get_records()
            .shard_iterator(iterator)
            .send()
            .await?;
        Ok(Page {
            records: output.records.unwrap_or_default(),
            next_iterator: output.next_shard_iterator,
        })
    }
}
