//! The alert fan-out's stream filter, as code, for local tooling and tests.
//!
//! In AWS the `alerts-fanout` function is invoked through an event-source
//! mapping whose `FilterCriteria` drops every stream record that is not the
//! INSERT of a critical alert's change-log entry, so the function never sees
//! them and the deployed code never runs this module. Locally the stream
//! poller ([`crate::stream_poller`]) reads DynamoDB Local's stream itself and
//! must drop exactly the same records: [`FANOUT_FILTER_PATTERN`] is the very
//! pattern `template.yaml` declares (a test compares them), and [`matches()`]
//! evaluates the part of Lambda's event-pattern language that pattern uses.

use std::sync::LazyLock;

use aws_lambda_events::event::dynamodb::EventRecord;
use serde_json::Value;

/// The `FilterCriteria` pattern of the `alerts-fanout` event-source mapping in `template.yaml`.
pub const FANOUT_FILTER_PATTERN: &str = r#"{"eventName": ["INSERT"], "dynamodb": {"NewImage": {"entity": {"S": ["change"]}, "kind": {"S": ["alert"]}, "data": {"M": {"severity": {"S": ["critical"]}}}}}}"#;

static FANOUT_FILTER: LazyLock<Value> = LazyLock::new(|| {
    serde_json::from_str(FANOUT_FILTER_PATTERN).expect("FANOUT_FILTER_PATTERN is valid JSON")
});

/// Whether `event` matches the Lambda/EventBridge event `pattern` (equality-matching subset only).
///
/// - An object pattern matches an object whose every pattern key is present
///   and matches its sub-pattern (a missing key never matches).
/// - An array pattern lists literals (strings, numbers, booleans, null): it
///   matches a value equal to one of them, or an array value holding one.
///   Numbers compare numerically, as Lambda does.
/// - Content filters (`{"prefix": ..}`, `{"anything-but": ..}`, `{"exists": ..}`,
///   `{"numeric": ..}`, ...) and nested arrays inside a pattern array are not
///   supported: such an element never matches. So is a bare scalar in place
///   of an array. Unsupported syntax therefore fails closed (drops records)
///   rather than letting them all through.
pub fn matches(pattern: &Value, event: &Value) -> bool {
    match pattern {
        Value::Object(fields) => {
            let Value::Object(event) = event else {
                return false;
            };
            fields
                .iter()
                .all(|(key, sub)| event.get(key).is_some_and(|value| matches(sub, value)))
        }
        Value::Array(allowed) => match event {
            Value::Array(values) => values
                .iter()
                .any(|value| any_literal_equals(allowed, value)),
            value => any_literal_equals(allowed, value),
        },
        _ => false,
    }
}

fn any_literal_equals(allowed: &[Value], value: &Value) -> bool {
    allowed.iter().any(|literal| literal_equals(literal, value))
}

fn literal_equals(literal: &Value, value: &Value) -> bool {
    match (literal, value) {
        (Value::Object(_) | Value::Array(_), _) => false,
        (Value::Number(a), Value::Number(b)) => a == b || a.as_f64() == b.as_f64(),
        (literal, value) => literal == value,
    }
}

/// Whether a stream record passes the fan-out's filter, i.e. Lambda would deliver it.
pub fn passes(record: &EventRecord) -> bool {
    // Lambda filters on the record's JSON as delivered: `eventName`, `dynamodb.NewImage`, ...
    match serde_json::to_value(record) {
        Ok(json) => matches(&FANOUT_FILTER, &json),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::dynamodb::Event;
    use serde_json::json;

    fn fixture() -> Event {
        serde_json::from_str(include_str!(
            "../../shared/server/tests/fixtures/stream-alerts.json"
        ))
        .expect("fixture is a DynamoDB stream event")
    }

    #[test]
    fn records_serialize_with_the_lambda_field_names() {
        let record = &fixture().records[0];
        let json = serde_json::to_value(record).unwrap();
        println!("{}", serde_json::to_string_pretty(&json).unwrap());
        assert_eq!(json["eventName"], "INSERT");
        assert_eq!(
            json["dynamodb"]["NewImage"]["entity"],
            json!({"S": "change"})
        );
        assert_eq!(
            json["dynamodb"]["NewImage"]["data"]["M"]["severity"],
            json!({"S": "critical"})
        );
    }

    #[test]
    fn only_the_critical_alert_insert_passes() {
        let passed: Vec<bool> = fixture().records.iter().map(passes).collect();
        // Critical INSERT; warning INSERT; entity-state item; MODIFY of the alert.
        assert_eq!(passed, [true, false, false, false]);
    }

    #[test]
    fn a_missing_key_does_not_match() {
        let pattern = json!({"a": {"b": ["x"]}});
        assert!(matches(&pattern, &json!({"a": {"b": "x", "c": 1}})));
        assert!(!matches(&pattern, &json!({"a": {"c": "x"}})));
        assert!(!matches(&pattern, &json!({"z": 1})));
        assert!(!matches(&pattern, &json!({"a": "b"})));
    }

    #[test]
    fn an_array_event_value_matches_when_any_element_does() {
        let pattern = json!({"tags": ["red", "blue"]});
        assert!(matches(&pattern, &json!({"tags": ["green", "blue"]})));
        assert!(!matches(&pattern, &json!({"tags": ["green"]})));
        assert!(!matches(&pattern, &json!({"tags": []})));
    }

    #[test]
    fn literals_compare_by_type_and_numbers_numerically() {
        let pattern = json!({"n": [3], "ok": [true], "gone": [null]});
        assert!(matches(
            &pattern,
            &json!({"n": 3.0, "ok": true, "gone": null})
        ));
        assert!(!matches(
            &pattern,
            &json!({"n": "3", "ok": true, "gone": null})
        ));
        assert!(!matches(
            &pattern,
            &json!({"n": 3, "ok": "true", "gone": null})
        ));
        assert!(!matches(&pattern, &json!({"n": 3, "ok": true})));
    }

    #[test]
    fn content_filters_are_unsupported_and_never_match() {
        let pattern = json!({"s": [{"prefix": "ab"}]});
        assert!(!matches(&pattern, &json!({"s": "abc"})));
        let mixed = json!({"s": [{"prefix": "ab"}, "xyz"]});
        assert!(matches(&mixed, &json!({"s": "xyz"})));
        assert!(!matches(&json!({"s": "abc"}), &json!({"s": "abc"})));
    }
}
