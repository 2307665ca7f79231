//! Bad input on every endpoint: the right status, a JSON error naming the
//! field, and nothing stored is damaged.
//!
//! Each test seeds one user with a little data and an open session, records
//! what that user's data looks like from the outside (full download, head,
//! sessions), sends its bad requests, and checks the record is unchanged.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use http::{Method, StatusCode};
use lambda_http::{Body, Request};
use serde_json::{Value, json};
use sync_core::auth::mint_hs256_token;
use trainsync_protocol::limits::{MAX_BATCH_ITEMS, MAX_BODY_BYTES};
use trainsync_tests::{
    AUDIENCE, ISSUER, SECRET, TestContext, TestResponse, activity, get_request, gzip, gzip_post,
    post_request, with_headers,
};
use uuid::Uuid;

use crate::helpers::{entity_ids, expect_error};

const USER: &str = "alice";
const DEVICE: &str = "phone";

/// What the user's data looks like from the outside.
#[derive(Debug, PartialEq)]
struct Stored {
    /// Every page of a full download, `server_timestamp` removed.
    pages: Vec<Value>,
    /// `/sync/status` `head_seq`.
    head_seq: u64,
    /// `/sync/status` sessions: id, status, uploads.
    sessions: Vec<Value>,
}

async fn stored(ctx: &TestContext, token: &str) -> Stored {
    // The whole change log (a snapshot only reaches back 90 days), in small
    // pages so it spans several.
    let start = trainsync_protocol::cursor::Cursor::START.encode(USER);
    let (mut pages, _) = ctx.download_all(token, Some(&start), 2).await;
    for page in &mut pages {
        page.as_object_mut()
            .expect("a download page is an object")
            .remove("server_timestamp");
    }
    let status = ctx.get("/sync/status", token, &[]).await;
    assert_eq!(status.status, StatusCode::OK);
    let status = status.json();
    let sessions = status["recent_sessions"]
        .as_array()
        .expect("recent_sessions")
        .iter()
        .map(|s| json!([s["sync_id"], s["status"], s["uploads"]]))
        .collect();
    Stored {
        pages,
        head_seq: status["head_seq"].as_u64().expect("head_seq"),
        sessions,
    }
}

/// One user with some data and an open session, and a record of that data.
struct Fixture {
    ctx: TestContext,
    token: String,
    sync_id: String,
    before: Stored,
}

impl Fixture {
    async fn new() -> Self {
        let ctx = TestContext::new().await;
        let token = ctx.token(USER, DEVICE);
        let sync_id = ctx.check(&token, USER).await;
        let seeded = ctx
            .upload(
                &token,
                &sync_id,
                json!({
                    "activities": [activity(Uuid::new_v4(), "seed run")],
                    "daily_metrics": [{"date": "2025-05-31", "recovery_rating": 7, "submitted_at": "2025-05-31T06:00:00Z"}],
                    "settings_changes": [{"key": "units", "value": "imperial", "changed_at": "2025-05-31T06:00:00Z"}],
                    "plan_adjustments": [{"id": Uuid::new_v4(), "workout_id": "w-1", "new_date": "2025-06-02", "requested_at": "2025-05-31T06:00:00Z"}]
                }),
            )
            .await;
        assert_eq!(seeded.status, StatusCode::OK);
        assert_eq!(seeded.json()["accepted"].as_array().unwrap().len(), 4);
        let before = stored(&ctx, &token).await;
        assert_eq!(before.head_seq, 4);
        Self {
            ctx,
            token,
            sync_id,
            before,
        }
    }

    /// The user's data, download, head and sessions, are as they were at the start.
    async fn assert_undamaged(&self) {
        let now = stored(&self.ctx, &self.token).await;
        assert_eq!(now, self.before, "stored data changed");
    }

    /// Sends `request` to the handlers.
    async fn send(&self, request: Request) -> TestResponse {
        self.ctx.send(request).await
    }

    /// `POST path` with a raw body and the user's token.
    async fn post_raw(&self, path: &str, body: impl Into<Body>) -> TestResponse {
        self.send(post_request(path, Some(&self.token), body)).await
    }

    /// `POST path` with a JSON body and the user's token.
    async fn post(&self, path: &str, body: &Value) -> TestResponse {
        self.ctx.post(path, &self.token, body).await
    }

    /// A valid body for each POST endpoint (the complete body closes the open session if it gets through).
    fn valid_bodies(&self) -> [(&'static str, Value); 3] {
        [
            ("/sync/check", self.check_body()),
            ("/sync/upload", self.upload_body(json!({}))),
            ("/sync/complete", self.complete_body()),
        ]
    }

    fn check_body(&self) -> Value {
        json!({"user_id": USER, "pending_changes_count": 0})
    }

    /// An upload in the open session with a fresh request id and `items`.
    fn upload_body(&self, items: Value) -> Value {
        let mut body = json!({"sync_id": self.sync_id, "sync_request_id": Uuid::new_v4()});
        body.as_object_mut()
            .unwrap()
            .extend(items.as_object().expect("items is an object").clone());
        body
    }

    fn complete_body(&self) -> Value {
        json!({"sync_id": self.sync_id, "status": "success"})
    }
}

/// `body` with `key` set to `value`.
fn with(body: &Value, key: &str, value: Value) -> Value {
    let mut body = body.clone();
    body[key] = value;
    body
}

/// `body` without `key`.
fn without(body: &Value, key: &str) -> Value {
    let mut body = body.clone();
    body.as_object_mut().unwrap().remove(key);
    body
}

/// A `POST` with explicit `Content-Type` and `Content-Encoding`.
fn encoded_post(
    path: &str,
    token: &str,
    content_type: &str,
    encoding: Option<&str>,
    body: Body,
) -> Request {
    let mut headers = vec![("content-type", content_type)];
    headers.extend(encoding.map(|encoding| ("content-encoding", encoding)));
    with_headers(post_request(path, Some(token), body), &headers)
}

#[tokio::test]
async fn malformed_bodies_get_400_on_every_post_endpoint() {
    let fx = Fixture::new().await;
    let cases: [(&str, Body, &str); 8] = [
        (
            "truncated JSON",
            Body::from(r#"{"user_id": "ali"#),
            "invalid_format",
        ),
        (
            "not JSON at all",
            Body::from("user_id=alice"),
            "invalid_format",
        ),
        (
            "a JSON array",
            Body::from(r#"[{"user_id": "alice"}]"#),
            "invalid_type",
        ),
        ("a JSON string", Body::from(r#""alice""#), "invalid_type"),
        ("a JSON number", Body::from("42"), "invalid_type"),
        ("an empty body", Body::Empty, "missing_field"),
        ("an empty text body", Body::from(""), "missing_field"),
        ("whitespace only", Body::from(" \n\t\r\n "), "missing_field"),
    ];
    for path in ["/sync/check", "/sync/upload", "/sync/complete"] {
        for (what, body, code) in &cases {
            let response = fx.post_raw(path, body.clone()).await;
            expect_error(
                &response,
                &format!("{path} with {what}"),
                StatusCode::BAD_REQUEST,
                code,
                None,
            );
        }
    }
    fx.assert_undamaged().await;
}

#[tokio::test]
async fn wrong_unknown_and_missing_top_level_fields_are_named() {
    let fx = Fixture::new().await;
    let check = fx.check_body();
    let upload = fx.upload_body(json!({"activities": []}));
    let complete = fx.complete_body();
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        // /sync/check
        (
            "/sync/check",
            with(&check, "pending_changes_count", json!("3")),
            "invalid_type",
            "pending_changes_count",
        ),
        (
            "/sync/check",
            with(&check, "pending_changes_count", json!(-1)),
            "out_of_range",
            "pending_changes_count",
        ),
        (
            "/sync/check",
            with(&check, "user_id", json!(5)),
            "invalid_type",
            "user_id",
        ),
        (
            "/sync/check",
            with(&check, "network", json!("5g")),
            "invalid_value",
            "network",
        ),
        (
            "/sync/check",
            with(&check, "last_sync_timestamp", json!("yesterday")),
            "invalid_format",
            "last_sync_timestamp",
        ),
        (
            "/sync/check",
            with(&check, "cursor", json!("not a cursor")),
            "invalid_format",
            "cursor",
        ),
        (
            "/sync/check",
            with(&check, "userid", json!(USER)),
            "unknown_field",
            "userid",
        ),
        (
            "/sync/check",
            without(&check, "user_id"),
            "missing_field",
            "user_id",
        ),
        (
            "/sync/check",
            without(&check, "pending_changes_count"),
            "missing_field",
            "pending_changes_count",
        ),
        // /sync/upload
        (
            "/sync/upload",
            with(&upload, "sync_id", json!(5)),
            "invalid_type",
            "sync_id",
        ),
        (
            "/sync/upload",
            with(&upload, "sync_id", json!("not-a-uuid")),
            "invalid_format",
            "sync_id",
        ),
        (
            "/sync/upload",
            with(&upload, "sync_request_id", json!("req-1")),
            "invalid_format",
            "sync_request_id",
        ),
        (
            "/sync/upload",
            with(&upload, "sync_request_id", json!(12)),
            "invalid_type",
            "sync_request_id",
        ),
        (
            "/sync/upload",
            with(&upload, "activities", json!({})),
            "invalid_type",
            "activities",
        ),
        (
            "/sync/upload",
            with(&upload, "daily_metrics", json!("none")),
            "invalid_type",
            "daily_metrics",
        ),
        (
            "/sync/upload",
            with(&upload, "settings_changes", json!(3)),
            "invalid_type",
            "settings_changes",
        ),
        (
            "/sync/upload",
            with(&upload, "activites", json!([])),
            "unknown_field",
            "activites",
        ),
        (
            "/sync/upload",
            without(&upload, "sync_request_id"),
            "missing_field",
            "sync_request_id",
        ),
        (
            "/sync/upload",
            without(&upload, "sync_id"),
            "missing_field",
            "sync_id",
        ),
        // /sync/complete
        (
            "/sync/complete",
            with(&complete, "status", json!("done")),
            "invalid_value",
            "status",
        ),
        (
            "/sync/complete",
            with(&complete, "status", json!(true)),
            "invalid_type",
            "status",
        ),
        (
            "/sync/complete",
            with(&complete, "sync_id", json!(7)),
            "invalid_type",
            "sync_id",
        ),
        (
            "/sync/complete",
            with(&complete, "sync_request_id", json!("req-1")),
            "invalid_format",
            "sync_request_id",
        ),
        (
            "/sync/complete",
            with(&complete, "error", json!(5)),
            "invalid_type",
            "error",
        ),
        (
            "/sync/complete",
            with(&complete, "error", json!("e".repeat(2001))),
            "too_long",
            "error",
        ),
        (
            "/sync/complete",
            with(&complete, "cursor", json!("not a cursor")),
            "invalid_format",
            "cursor",
        ),
        (
            "/sync/complete",
            with(&complete, "statuss", json!("success")),
            "unknown_field",
            "statuss",
        ),
        (
            "/sync/complete",
            without(&complete, "status"),
            "missing_field",
            "status",
        ),
        (
            "/sync/complete",
            without(&complete, "sync_id"),
            "missing_field",
            "sync_id",
        ),
    ];
    for (path, body, code, field) in &cases {
        let response = fx.post(path, body).await;
        expect_error(
            &response,
            &format!("{path} {body}"),
            StatusCode::BAD_REQUEST,
            code,
            Some(field),
        );
    }
    // The session those bodies named is still open and usable.
    fx.assert_undamaged().await;
    let ok = fx.post("/sync/upload", &upload).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.json());
}

/// An activity with `field` replaced by `value` (`None`: removed).
fn activity_with(id: Uuid, field: &str, value: Option<Value>) -> Value {
    let mut item = activity(id, "x");
    match value {
        Some(value) => item[field] = value,
        None => {
            item.as_object_mut().unwrap().remove(field);
        }
    }
    item
}

/// `(type, index, id, field, code)` of each entry of `processing_errors`.
fn processing_errors(body: &Value) -> Vec<(String, u64, Option<String>, String, String)> {
    let mut errors: Vec<_> = body["processing_errors"]
        .as_array()
        .expect("processing_errors")
        .iter()
        .map(|e| {
            assert_eq!(e["retryable"], false, "validation errors are final: {e}");
            assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
            (
                e["type"].as_str().unwrap_or_default().to_owned(),
                e["index"].as_u64().expect("index"),
                e["id"].as_str().map(str::to_owned),
                e["field"].as_str().expect("field").to_owned(),
                e["code"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    errors.sort();
    errors
}

#[tokio::test]
async fn bad_items_are_reported_one_by_one_and_good_items_kept() {
    let fx = Fixture::new().await;
    let future = (fx.ctx.now() + Duration::days(3)).to_rfc3339();
    let good = [Uuid::new_v4(), Uuid::new_v4()];
    let bad: Vec<Uuid> = (0..10).map(|_| Uuid::new_v4()).collect();
    let good_plan = Uuid::new_v4();
    let bad_plan = [Uuid::new_v4(), Uuid::new_v4()];
    let activities = vec![
        activity(good[0], "good one"),
        activity_with(bad[0], "duration_s", Some(json!(0))),
        activity_with(bad[1], "duration_s", Some(json!("1800"))),
        activity_with(bad[2], "rpe", Some(json!(11))),
        activity_with(bad[3], "avg_hr", Some(json!(300))),
        activity_with(bad[4], "started_at", Some(json!(future))),
        activity_with(bad[5], "started_at", Some(json!("2025-02-30T07:00:00Z"))),
        activity_with(bad[6], "activity_type", Some(json!("fly"))),
        activity_with(bad[7], "notes", Some(json!("n".repeat(2001)))),
        activity_with(bad[8], "distanse_m", Some(json!(5000))),
        json!("a run"),
        activity_with(bad[9], "source", None),
        activity(good[1], "good two"),
    ];
    let daily_metrics = vec![
        json!({"date": "2025-05-30", "sleep_hours": 8, "submitted_at": "2025-05-30T06:00:00Z"}),
        json!({"date": "2025-02-30", "sleep_hours": 8, "submitted_at": "2025-05-30T06:00:00Z"}),
        json!({"date": "2025-05-29", "sleep_hours": 25, "submitted_at": "2025-05-30T06:00:00Z"}),
        json!({"date": "2025-05-28", "mood": "great", "submitted_at": "2025-05-30T06:00:00Z"}),
    ];
    let at = "2025-05-31T06:00:00Z";
    let settings_changes = vec![
        json!({"key": "timezone", "value": "Europe/Berlin", "changed_at": at}),
        json!({"key": "units", "value": "furlongs", "changed_at": at}),
        json!({"key": "available_training_days", "value": ["mon", "mon"], "changed_at": at}),
        json!({"key": "colour", "value": "red", "changed_at": at}),
    ];
    let plan_adjustments = vec![
        json!({"id": good_plan, "workout_id": "w-2", "new_date": "2025-06-04", "requested_at": at}),
        json!({"id": bad_plan[0], "workout_id": "w-3", "new_date": "next tuesday", "requested_at": at}),
        json!({"id": bad_plan[1], "workout_id": "w 3", "new_date": "2025-06-04", "requested_at": at}),
        json!(42),
    ];
    let others = daily_metrics.len() + settings_changes.len() + plan_adjustments.len();
    assert!(
        activities.len() <= MAX_BATCH_ITEMS && others <= MAX_BATCH_ITEMS,
        "two batches within the limit, so neither is refused as too large"
    );

    let mut body = json!({"accepted": [], "processing_errors": [], "conflicts": []});
    for items in [
        json!({"activities": activities}),
        json!({
            "daily_metrics": daily_metrics,
            "settings_changes": settings_changes,
            "plan_adjustments": plan_adjustments,
        }),
    ] {
        let response = fx.post("/sync/upload", &fx.upload_body(items)).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.json());
        let part = response.json();
        for list in ["accepted", "processing_errors", "conflicts"] {
            let items = part[list].as_array().cloned().unwrap_or_default();
            body[list].as_array_mut().unwrap().extend(items);
        }
    }

    let error = |t: &str, index: u64, id: Option<String>, field: &str, code: &str| {
        (t.to_owned(), index, id, field.to_owned(), code.to_owned())
    };
    let id = |u: Uuid| Some(u.to_string());
    let mut expected = vec![
        error("activity", 1, id(bad[0]), "duration_s", "out_of_range"),
        error("activity", 2, id(bad[1]), "duration_s", "invalid_type"),
        error("activity", 3, id(bad[2]), "rpe", "out_of_range"),
        error("activity", 4, id(bad[3]), "avg_hr", "out_of_range"),
        error("activity", 5, id(bad[4]), "started_at", "out_of_range"),
        error("activity", 6, id(bad[5]), "started_at", "invalid_format"),
        error("activity", 7, id(bad[6]), "activity_type", "invalid_value"),
        error("activity", 8, id(bad[7]), "notes", "too_long"),
        error("activity", 9, id(bad[8]), "distanse_m", "unknown_field"),
        error("activity", 10, None, "", "invalid_type"),
        error("activity", 11, id(bad[9]), "source", "missing_field"),
        error(
            "daily_metric",
            1,
            Some("2025-02-30".into()),
            "date",
            "invalid_format",
        ),
        error(
            "daily_metric",
            2,
            Some("2025-05-29".into()),
            "sleep_hours",
            "out_of_range",
        ),
        error(
            "daily_metric",
            3,
            Some("2025-05-28".into()),
            "mood",
            "unknown_field",
        ),
        error(
            "settings_change",
            1,
            Some("units".into()),
            "value",
            "invalid_value",
        ),
        error(
            "settings_change",
            2,
            Some("available_training_days".into()),
            "value[1]",
            "invalid_value",
        ),
        error(
            "settings_change",
            3,
            Some("colour".into()),
            "key",
            "invalid_value",
        ),
        error(
            "plan_adjustment",
            1,
            id(bad_plan[0]),
            "new_date",
            "invalid_format",
        ),
        error(
            "plan_adjustment",
            2,
            id(bad_plan[1]),
            "workout_id",
            "invalid_format",
        ),
        error("plan_adjustment", 3, None, "", "invalid_type"),
    ];
    expected.sort();
    assert_eq!(processing_errors(&body), expected, "{body}");

    let mut accepted: Vec<String> = body["accepted"]
        .as_array()
        .expect("accepted")
        .iter()
        .map(|a| {
            format!(
                "{}:{}",
                a["type"].as_str().unwrap(),
                a["id"].as_str().unwrap()
            )
        })
        .collect();
    accepted.sort();
    let mut expected_accepted = vec![
        format!("activity:{}", good[0]),
        format!("activity:{}", good[1]),
        "daily_metric:2025-05-30".to_owned(),
        "settings_change:timezone".to_owned(),
        format!("plan_adjustment:{good_plan}"),
    ];
    expected_accepted.sort();
    assert_eq!(accepted, expected_accepted, "{body}");
    assert!(body["conflicts"].as_array().unwrap().is_empty(), "{body}");

    // The good items are downloadable next to the seeded ones; the bad ones are nowhere.
    let start = trainsync_protocol::cursor::Cursor::START.encode(USER);
    let (pages, _) = fx.ctx.download_all(&fx.token, Some(&start), 100).await;
    let mut expected_ids = entity_ids(&fx.before.pages);
    expected_ids.extend([
        format!("activity:{}", good[0]),
        format!("activity:{}", good[1]),
        "daily_metric:2025-05-30".to_owned(),
        "setting:timezone".to_owned(),
        format!("plan_adjustment:{good_plan}"),
    ]);
    expected_ids.sort();
    assert_eq!(entity_ids(&pages), expected_ids);
    let settings: serde_json::Map<String, Value> = pages
        .iter()
        .filter_map(|p| p["settings"].as_object())
        .flat_map(|m| m.clone())
        .collect();
    assert_eq!(
        settings["units"], "imperial",
        "a refused value changes nothing"
    );
    assert_eq!(settings["timezone"], "Europe/Berlin");
    let after = stored(&fx.ctx, &fx.token).await;
    assert_eq!(
        after.head_seq,
        fx.before.head_seq + 5,
        "one change per good item"
    );
}

/// A valid upload body of `n` activities.
fn activities_body(fx: &Fixture, n: usize) -> Value {
    let items: Vec<Value> = (0..n)
        .map(|i| activity(Uuid::new_v4(), &format!("run {i}")))
        .collect();
    fx.upload_body(json!({"activities": items}))
}

#[tokio::test]
async fn oversized_bodies_and_batches_get_413() {
    let fx = Fixture::new().await;

    let response = fx
        .post("/sync/upload", &activities_body(&fx, MAX_BATCH_ITEMS + 1))
        .await;
    expect_error(
        &response,
        "26 activities",
        StatusCode::PAYLOAD_TOO_LARGE,
        "batch_too_large",
        None,
    );

    // The limit counts all four lists together.
    let mixed = fx.upload_body(json!({
        "activities": (0..13).map(|i| activity(Uuid::new_v4(), &format!("run {i}"))).collect::<Vec<_>>(),
        "daily_metrics": (1..=13).map(|d| json!({"date": format!("2025-05-{d:02}"), "submitted_at": "2025-05-31T06:00:00Z"})).collect::<Vec<_>>(),
    }));
    let response = fx.post("/sync/upload", &mixed).await;
    expect_error(
        &response,
        "13 + 13 items",
        StatusCode::PAYLOAD_TOO_LARGE,
        "batch_too_large",
        None,
    );

    // A body over 256 KiB, refused before it is parsed.
    let mut big = activities_body(&fx, 1);
    big["activities"][0]["notes"] = json!("x".repeat(MAX_BODY_BYTES));
    let text = big.to_string();
    assert!(text.len() > MAX_BODY_BYTES);
    let response = fx.post_raw("/sync/upload", text.clone()).await;
    expect_error(
        &response,
        "a 256 KiB+ body",
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        None,
    );

    // The same, gzip-compressed: small on the wire, too big once inflated.
    let response = fx
        .send(gzip_post("/sync/upload", &fx.token, gzip(text.as_bytes())))
        .await;
    expect_error(
        &response,
        "a gzipped 256 KiB+ body",
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        None,
    );

    // A decompression bomb: 10 MB of spaces inside a JSON string.
    let bomb = format!(
        r#"{{"sync_id":"{}","sync_request_id":"{}","activities":[{{"notes":"{}"}}]}}"#,
        fx.sync_id,
        Uuid::new_v4(),
        " ".repeat(10 << 20)
    );
    let compressed = gzip(bomb.as_bytes());
    assert!(
        compressed.len() < MAX_BODY_BYTES / 4,
        "the bomb is small on the wire"
    );
    for path in ["/sync/check", "/sync/upload", "/sync/complete"] {
        let response = fx
            .send(gzip_post(path, &fx.token, compressed.clone()))
            .await;
        expect_error(
            &response,
            &format!("a gzip bomb to {path}"),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            None,
        );
    }
    fx.assert_undamaged().await;
}

#[tokio::test]
async fn undecodable_bodies_and_wrong_media_types_are_refused() {
    let fx = Fixture::new().await;
    for (path, body) in fx.valid_bodies() {
        let json = body.to_string();
        let compressed = gzip(json.as_bytes());
        let truncated = compressed[..compressed.len() / 2].to_vec();
        for (what, bytes) in [
            ("not gzip", b"this is not gzip at all".to_vec()),
            ("truncated gzip", truncated),
        ] {
            let response = fx.send(gzip_post(path, &fx.token, bytes)).await;
            expect_error(
                &response,
                &format!("{what} to {path}"),
                StatusCode::BAD_REQUEST,
                "invalid_format",
                None,
            );
        }
        let media_cases = [
            (
                "Content-Encoding: br",
                "application/json",
                Some("br"),
                Body::Binary(json.clone().into_bytes()),
            ),
            (
                "Content-Encoding: deflate",
                "application/json",
                Some("deflate"),
                Body::Binary(json.clone().into_bytes()),
            ),
            (
                "Content-Type: text/plain",
                "text/plain",
                None,
                Body::from(json.clone()),
            ),
            (
                "Content-Type: application/x-www-form-urlencoded",
                "application/x-www-form-urlencoded",
                None,
                Body::from(json.clone()),
            ),
        ];
        for (what, content_type, encoding, body) in media_cases {
            let response = fx
                .send(encoded_post(path, &fx.token, content_type, encoding, body))
                .await;
            expect_error(
                &response,
                &format!("{what} to {path}"),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                None,
            );
        }
    }
    fx.assert_undamaged().await;
}

#[tokio::test]
async fn a_gzip_body_is_accepted() {
    let fx = Fixture::new().await;
    let run = Uuid::new_v4();
    let body = fx.upload_body(json!({"activities": [activity(run, "zipped")]}));
    let response = fx
        .send(gzip_post(
            "/sync/upload",
            &fx.token,
            gzip(body.to_string().as_bytes()),
        ))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.json());
    assert_eq!(response.json()["accepted"][0]["id"], run.to_string());

    let check = fx
        .send(gzip_post(
            "/sync/check",
            &fx.token,
            gzip(fx.check_body().to_string().as_bytes()),
        ))
        .await;
    assert_eq!(check.status, StatusCode::OK, "{}", check.json());

    let start = trainsync_protocol::cursor::Cursor::START.encode(USER);
    let (pages, _) = fx.ctx.download_all(&fx.token, Some(&start), 100).await;
    let notes: Vec<&Value> = pages
        .iter()
        .flat_map(|p| p["activities"].as_array().unwrap())
        .filter(|a| a["id"] == run.to_string())
        .map(|a| &a["notes"])
        .collect();
    assert_eq!(notes, [&json!("zipped")]);
}

#[tokio::test]
async fn download_parameters_are_checked() {
    let fx = Fixture::new().await;
    let cases = [
        ("limit", "0", "out_of_range"),
        ("limit", "501", "out_of_range"),
        ("limit", "99999999999", "out_of_range"),
        ("limit", "abc", "invalid_type"),
        ("limit", "-1", "invalid_type"),
        ("limit", "2.5", "invalid_type"),
        ("network", "5g", "invalid_value"),
        ("network", "WIFI", "invalid_value"),
        ("since", "garbage", "invalid_format"),
        ("since", "2025-13-01T00:00:00Z", "invalid_format"),
        ("since", "2025-06-01", "invalid_format"),
        // A well-formed base64 cursor we never issued.
        ("since", &URL_SAFE_NO_PAD.encode("l:007"), "invalid_format"),
    ];
    for (name, value, code) in cases {
        let response = fx
            .ctx
            .get("/sync/download", &fx.token, &[(name, value)])
            .await;
        expect_error(
            &response,
            &format!("{name}={value}"),
            StatusCode::BAD_REQUEST,
            code,
            Some(name),
        );
    }
    // The edges of the range are fine.
    for limit in ["1", "500"] {
        let response = fx
            .ctx
            .get("/sync/download", &fx.token, &[("limit", limit)])
            .await;
        assert_eq!(response.status, StatusCode::OK, "limit={limit}");
    }
    fx.assert_undamaged().await;
}

/// A `Bearer` header value for a token with these claims, signed with `secret`.
fn bearer(secret: &str, issuer: &str, audience: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    let token = mint_hs256_token(
        secret,
        issuer,
        audience,
        USER,
        DEVICE,
        at,
        Duration::hours(24),
    )
    .unwrap();
    format!("Bearer {token}")
}

/// An unsigned (`alg: none`) token with otherwise valid claims.
fn unsigned_bearer(at: chrono::DateTime<chrono::Utc>) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(
        json!({
            "sub": USER, "device_id": DEVICE, "iss": ISSUER, "aud": AUDIENCE,
            "iat": at.timestamp(), "exp": (at + Duration::hours(24)).timestamp()
        })
        .to_string(),
    );
    format!("Bearer {header}.{claims}.")
}

/// A request to each endpoint with a valid body and the `Authorization` header given.
fn every_endpoint(fx: &Fixture, authorization: Option<&str>) -> Vec<(&'static str, Request)> {
    let mut requests: Vec<(&'static str, Request)> = fx
        .valid_bodies()
        .into_iter()
        .map(|(path, body)| (path, post_request(path, None, body.to_string())))
        .collect();
    for path in ["/sync/download", "/sync/status"] {
        requests.push((path, get_request(path, None, &[])));
    }
    if let Some(value) = authorization {
        for (_, request) in &mut requests {
            request
                .headers_mut()
                .insert("authorization", value.parse().unwrap());
        }
    }
    requests
}

#[tokio::test]
async fn every_endpoint_refuses_missing_and_bad_tokens() {
    let fx = Fixture::new().await;
    let now = fx.ctx.now();
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("no header", None, "missing_token"),
        ("Basic auth", Some("Basic x".into()), "invalid_token"),
        ("an empty bearer", Some("Bearer ".into()), "invalid_token"),
        (
            "a garbage token",
            Some("Bearer garbage.token.here".into()),
            "invalid_token",
        ),
        (
            "another secret",
            Some(bearer(
                "another-secret-another-secret-0123",
                ISSUER,
                AUDIENCE,
                now,
            )),
            "invalid_token",
        ),
        (
            "a wrong issuer",
            Some(bearer(SECRET, "someone-else", AUDIENCE, now)),
            "invalid_token",
        ),
        (
            "a wrong audience",
            Some(bearer(SECRET, ISSUER, "another-api", now)),
            "invalid_token",
        ),
        (
            "an expired token",
            Some(bearer(SECRET, ISSUER, AUDIENCE, now - Duration::hours(25))),
            "token_expired",
        ),
        ("alg none", Some(unsigned_bearer(now)), "invalid_token"),
    ];
    for (what, authorization, code) in &cases {
        for (path, request) in every_endpoint(&fx, authorization.as_deref()) {
            let response = fx.send(request).await;
            let label = format!("{path} with {what}");
            expect_error(&response, &label, StatusCode::UNAUTHORIZED, code, None);
            let challenge = response
                .headers
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            assert!(challenge.starts_with("Bearer"), "{label}: {challenge:?}");
            assert_eq!(
                response.ddb_requests(),
                0,
                "{label}: refused before any storage call"
            );
        }
    }
    fx.assert_undamaged().await;
    // The same requests with the real token get through: the bodies were fine.
    let good = format!("Bearer {}", fx.token);
    for (path, request) in every_endpoint(&fx, Some(&good)) {
        let response = fx.send(request).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{path}: {}",
            response.json()
        );
    }
}

#[tokio::test]
async fn wrong_methods_get_405_and_unknown_paths_404() {
    let fx = Fixture::new().await;
    let request = |method: Method, path: &str| {
        let mut request = post_request(path, Some(&fx.token), fx.check_body().to_string());
        *request.method_mut() = method;
        request
    };
    let cases = [
        (
            Method::GET,
            "/sync/check",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Method::GET,
            "/sync/upload",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Method::PUT,
            "/sync/complete",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Method::POST,
            "/sync/download",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Method::DELETE,
            "/sync/status",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (Method::GET, "/sync/nope", StatusCode::NOT_FOUND, "no_route"),
        (Method::POST, "/sync", StatusCode::NOT_FOUND, "no_route"),
        (
            Method::POST,
            "/sync/check/extra",
            StatusCode::NOT_FOUND,
            "no_route",
        ),
        (Method::GET, "/", StatusCode::NOT_FOUND, "no_route"),
    ];
    for (method, path, status, code) in cases {
        let response = fx.send(request(method.clone(), path)).await;
        expect_error(&response, &format!("{method} {path}"), status, code, None);
        // RFC 9110: a 405 names the methods the path has; a 404 names none.
        let allow = response.headers.get("allow").map(|v| v.to_str().unwrap());
        match status {
            StatusCode::METHOD_NOT_ALLOWED => {
                let expected = if path == "/sync/download" || path == "/sync/status" {
                    "GET"
                } else {
                    "POST"
                };
                assert_eq!(allow, Some(expected), "{method} {path}");
            }
            _ => assert_eq!(allow, None, "{method} {path}"),
        }
    }
    // Two methods share a device's path.
    let response = fx.send(request(Method::POST, "/devices/phone")).await;
    expect_error(
        &response,
        "POST /devices/phone",
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        None,
    );
    assert_eq!(
        response.headers.get("allow").map(|v| v.to_str().unwrap()),
        Some("PUT, DELETE")
    );
    fx.assert_undamaged().await;
}

#[tokio::test]
async fn unknown_sync_ids_get_404() {
    let fx = Fixture::new().await;
    for sync_id in [Uuid::new_v4(), Uuid::now_v7(), Uuid::nil()] {
        let mut upload = activities_body(&fx, 1);
        upload["sync_id"] = json!(sync_id);
        let response = fx.post("/sync/upload", &upload).await;
        expect_error(
            &response,
            &format!("upload {sync_id}"),
            StatusCode::NOT_FOUND,
            "unknown_sync_id",
            Some("sync_id"),
        );
        for status in ["success", "failed"] {
            let complete = json!({"sync_id": sync_id, "status": status, "error": "x"});
            let response = fx.post("/sync/complete", &complete).await;
            expect_error(
                &response,
                &format!("complete {sync_id} {status}"),
                StatusCode::NOT_FOUND,
                "unknown_sync_id",
                Some("sync_id"),
            );
        }
    }
    fx.assert_undamaged().await;
}

#[tokio::test]
async fn check_refuses_another_users_or_devices_id() {
    let fx = Fixture::new().await;
    let check = fx.check_body();
    for user in ["mallory", "Alice", "alice ", ""] {
        let response = fx
            .post("/sync/check", &with(&check, "user_id", json!(user)))
            .await;
        expect_error(
            &response,
            &format!("user_id {user:?}"),
            StatusCode::FORBIDDEN,
            "forbidden",
            Some("user_id"),
        );
    }
    for device in ["tablet", "Phone", ""] {
        let response = fx
            .post("/sync/check", &with(&check, "device_id", json!(device)))
            .await;
        expect_error(
            &response,
            &format!("device_id {device:?}"),
            StatusCode::FORBIDDEN,
            "forbidden",
            Some("device_id"),
        );
    }
    fx.assert_undamaged().await;
    // The token's own ids are fine.
    let own = fx
        .post("/sync/check", &with(&check, "device_id", json!(DEVICE)))
        .await;
    assert_eq!(own.status, StatusCode::OK);
}
