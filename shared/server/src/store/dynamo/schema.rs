//! The single table's definition: the one source of truth for local table
//! creation, checked against `template.yaml` by a test.
//!
//! Layout (all items of a user share the partition `USER#<sub>`):
//! - `HEAD`: the per-user head (change-log sequence, per-category cursors);
//! - `CHG#<seq>`: the change log, `seq` dense and zero-padded;
//! - `ENT#<kind>#<id>`: current state of every entity;
//! - `SES#<sync_id>`: sync sessions (TTL);
//! - `IDEM#<sync_request_id>`: idempotency records (TTL, 7 days);
//! - `DEV#<device_id>`: devices seen.
//!
//! `lsi1` is a sparse local index: change-log entries carry `lsi1sk =
//! CHGAT#<committed_at>#<seq>` so an RFC 3339 `since` maps to a sequence with
//! one query; later features put other prefixes in it.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, LocalSecondaryIndex, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};

/// Partition key attribute.
pub const PK: &str = "pk";
/// Sort key attribute.
pub const SK: &str = "sk";
/// Sort key of the local secondary index `lsi1`.
pub const LSI1_SK: &str = "lsi1sk";
/// Name of the local secondary index.
pub const LSI1: &str = "lsi1";
/// Attribute DynamoDB's TTL deletes items by (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "ttl";
/// Stream view the alert fan-out reads.
pub const STREAM_VIEW: StreamViewType = StreamViewType::NewImage;

/// The table's key attributes, in the order they are declared.
pub fn attribute_definitions() -> Vec<(&'static str, ScalarAttributeType)> {
    vec![
        (PK, ScalarAttributeType::S),
        (SK, ScalarAttributeType::S),
        (LSI1_SK, ScalarAttributeType::S),
    ]
}

fn key(name: &str, key_type: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .expect("key schema element has both required fields")
}

/// Creates the table (on-demand, stream, LSI) and enables TTL on it.
/// Succeeds without change when the table already exists.
pub async fn create_table(
    client: &Client,
    table_name: &str,
) -> Result<(), aws_sdk_dynamodb::Error> {
    let mut request = client
        .create_table()
        .table_name(table_name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(PK, KeyType::Hash))
        .key_schema(key(SK, KeyType::Range))
        .local_secondary_indexes(
            LocalSecondaryIndex::builder()
                .index_name(LSI1)
                .key_schema(key(PK, KeyType::Hash))
                .key_schema(key(LSI1_SK, KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build()?,
        )
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(STREAM_VIEW)
                .build()?,
        );
    for (name, kind) in attribute_definitions() {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(kind)
                .build()?,
        );
    }
    match request.send().await {
        Ok(_) => {}
        Err(SdkError::ServiceError(e))
            if matches!(e.err(), CreateTableError::ResourceInUseException(_)) =>
        {
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    }
    client
        .update_time_to_live()
        .table_name(table_name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TTL_ATTRIBUTE)
                .build()?,
        )
        .send()
        .await?;
    Ok(())
}
