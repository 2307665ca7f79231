//! Turning DynamoDB Streams SDK records into the `aws_lambda_events` records
//! Lambda delivers, so the handler sees locally exactly the shape (field
//! names, images, sequence numbers) it gets from the deployed mapping.

use std::collections::HashMap;

use aws_lambda_events::event::dynamodb::{EventRecord, StreamRecord, StreamViewType, UserIdentity};
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record};
use chrono::{DateTime, Utc};

/// Converts a DynamoDB Streams record into the event record Lambda delivers.
pub(super) fn convert(record: Record, stream_arn: &str) -> EventRecord {
    let mut out = EventRecord::default();
    out.event_id = record.event_id.unwrap_or_default();
    out.event_name = record
        .event_name
        .map(|name| name.as_str().to_owned())
        .unwrap_or_default();
    out.event_source = Some(
        record
            .event_source
            .unwrap_or_else(|| "aws:dynamodb".to_owned()),
    );
    out.event_version = record.event_version;
    out.aws_region = record.aws_region.unwrap_or_default();
    out.event_source_arn = Some(stream_arn.to_owned());
    out.user_identity = record.user_identity.map(|identity| {
        let mut user = UserIdentity::default();
        user.type_ = identity.r#type.unwrap_or_default();
        user.principal_id = identity.principal_id.unwrap_or_default();
        user
    });
    if let Some(change) = record.dynamodb {
        let mut stream_record = StreamRecord::default();
        if let Some(at) = change.approximate_creation_date_time {
            stream_record.approximate_creation_date_time =
                DateTime::<Utc>::from_timestamp(at.secs(), at.subsec_nanos()).unwrap_or_default();
        }
        stream_record.keys = item(change.keys);
        stream_record.new_image = item(change.new_image);
        stream_record.old_image = item(change.old_image);
        stream_record.sequence_number = change.sequence_number;
        stream_record.size_bytes = change.size_bytes.unwrap_or_default();
        stream_record.stream_view_type =
            change
                .stream_view_type
                .and_then(|view| match view.as_str() {
                    "NEW_IMAGE" => Some(StreamViewType::NewImage),
                    "OLD_IMAGE" => Some(StreamViewType::OldImage),
                    "NEW_AND_OLD_IMAGES" => Some(StreamViewType::NewAndOldImages),
                    "KEYS_ONLY" => Some(StreamViewType::KeysOnly),
                    _ => None,
                });
        out.change = stream_record;
    }
    out
}

fn item(map: Option<HashMap<String, AttributeValue>>) -> serde_dynamo::Item {
    serde_dynamo::Item::from(map.unwrap_or_default())
}

/// The record's sequence number (`""` when it has none): the identifier a
/// `ReportBatchItemFailures` response names.
pub(super) fn sequence_of(record: &EventRecord) -> &str {
    record.change.sequence_number.as_deref().unwrap_or("")
}
