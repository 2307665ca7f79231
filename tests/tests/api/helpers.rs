//! Helpers more than one test module uses, written once. The harness itself
//! (contexts, requests, tokens) is the library in `src/lib.rs`, which the
//! bench shares.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};
use trainsync_tests::{TestContext, TestResponse};
use uuid::Uuid;

/// The response body as text, for assertion messages.
pub fn text(response: &TestResponse) -> String {
    String::from_utf8_lossy(&response.bytes).into_owned()
}

/// Header `name` of `response`, if it has it (as text).
pub fn header<'a>(response: &'a TestResponse, name: &str) -> Option<&'a str> {
    response.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Header `name` of `response`; panics if it is missing.
#[track_caller]
pub fn expect_header<'a>(response: &'a TestResponse, name: &str) -> &'a str {
    header(response, name).unwrap_or_else(|| panic!("no {name} header"))
}

/// Asserts `response` is an error with `status`, `code`, `field` (`None`:
/// no field) and a message; `what` names the case in the failure message.
#[track_caller]
pub fn expect_error(
    response: &TestResponse,
    what: &str,
    status: StatusCode,
    code: &str,
    field: Option<&str>,
) {
    let body = text(response);
    assert_eq!(response.status, status, "{what}: {body}");
    assert_eq!(response.error_code(), code, "{what}: {body}");
    assert_eq!(response.error_field().as_deref(), field, "{what}: {body}");
    assert!(
        response.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: an error has a message: {body}"
    );
}

/// An alert as the engine publishes it (an ingest `alerts` item): `kind` at
/// `severity`, created at `created_at`, expiring at `expires_at` if given.
/// Injury-risk alerts are worded per severity and carry the ACWR that raised
/// them, as the reference brain's do (health data a push must not leak);
/// other kinds have one wording and no parameters.
pub fn alert(
    id: Uuid,
    kind: &str,
    severity: &str,
    created_at: impl Serialize,
    expires_at: Option<DateTime<Utc>>,
) -> Value {
    let wording = if kind == "injury_risk" {
        format!("{kind}.{severity}")
    } else {
        kind.to_owned()
    };
    let mut alert = json!({
        "id": id,
        "kind": kind,
        "severity": severity,
        "title_key": format!("alert.{wording}.title"),
        "body_key": format!("alert.{wording}.body"),
        "created_at": created_at
    });
    if kind == "injury_risk" {
        alert["params"] = json!({"acwr": 1.62});
    }
    if let Some(expires_at) = expires_at {
        alert["expires_at"] = json!(expires_at);
    }
    alert
}

/// `kind:id` of every entity in download `pages`, sorted (an entity sent
/// twice is listed twice): activities, daily metrics, plan adjustments,
/// alerts, settings, and the training plan and calculated metrics if sent.
pub fn entity_ids(pages: &[Value]) -> Vec<String> {
    let mut ids = Vec::new();
    for page in pages {
        for (list, kind, id) in [
            ("activities", "activity", "id"),
            ("daily_metrics", "daily_metric", "date"),
            ("plan_adjustments", "plan_adjustment", "id"),
            ("alerts", "alert", "id"),
        ] {
            for entity in page[list].as_array().expect(list) {
                ids.push(format!("{kind}:{}", entity[id].as_str().expect(id)));
            }
        }
        for key in page["settings"].as_object().expect("settings").keys() {
            ids.push(format!("setting:{key}"));
        }
        for single in ["training_plan", "calculated_metrics"] {
            if !page[single].is_null() {
                ids.push(single.to_owned());
            }
        }
    }
    ids.sort();
    ids
}

/// Sort keys of the items under partition key `pk` whose sort key starts
/// with `prefix`, read straight from the test's table (strongly consistent,
/// every page).
pub async fn sort_keys(ctx: &TestContext, pk: &str, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut start = None;
    loop {
        let out = ctx
            .store
            .client()
            .query()
            .table_name(&ctx.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
            .expression_attribute_values(":prefix", AttributeValue::S(prefix.to_owned()))
            .projection_expression("sk")
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("query");
        keys.extend(
            out.items()
                .iter()
                .filter_map(|item| item.get("sk")?.as_s().ok().cloned()),
        );
        start = out.last_evaluated_key;
        if start.is_none() {
            return keys;
        }
    }
}
