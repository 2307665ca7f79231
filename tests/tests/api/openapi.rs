//! Keeps `docs/openapi.yaml` true to the code.
//!
//! The spec is written by hand, for the people who build clients against it.
//! This test fails when spec and code drift apart: the routes and who may
//! call them, every wire type's fields (names, required, nullable), the
//! enums, the limits, the error statuses and headers, the ingest event's
//! outline, and the examples. It needs no DynamoDB.
//!
//! The checker at the bottom understands the part of OpenAPI 3.0 schemas the
//! spec uses: `type`, `nullable`, `enum`, `properties`, `required`,
//! `additionalProperties`, `items`, local `$ref`s, `format` (uuid, date,
//! date-time) and the numeric, length and item-count bounds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use chrono::{DateTime, NaiveDate, Utc};
use lambda_http::Body;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sync_core::auth::AuthError;
use sync_core::auth::issuer::ACCESS_TOKEN_TTL_HOURS;
use sync_core::auth::revocation::REVOCATION_CACHE_SECS;
use sync_core::compression::decode_body;
use sync_core::error::ApiError;
use sync_core::handlers::Endpoint;
use sync_core::http::{error_reply, into_response};
use sync_core::refresh::{REFRESH_IDLE_DAYS, RefreshToken};
use sync_core::services::retention::INACTIVE_DEVICE_DAYS;
use sync_core::services::upload::{plan_upload, upload_context};
use sync_core::store::{EntityKey, Head, Loaded, SessionState, StoreError, StoredEntity};
use trainsync_protocol::domain::{
    Activity, ActivitySource, ActivityType, ConflictRecord, ConflictRule, ConflictStatus,
    DailyMetric, DeviceId, EntityKind, PlanAdjustment, Priority, RestoreTarget, SettingKey,
    SettingValue, SettingsChange, TombstoneReason, TrackRef, UNDO_WINDOW_HOURS, UndoAction,
    WorkoutId,
};
use trainsync_protocol::limits;
use trainsync_protocol::plan::{PlanDiff, PlanOp, PlannedWorkout, TrainingPlan, WorkoutType};
use trainsync_protocol::reference::{
    ReferenceCurrent, ReferenceEntry, ReferenceKind, ReferenceSnapshot,
};
use trainsync_protocol::rules::resolve::TrackReady;
use trainsync_protocol::validate::{FieldError, FieldErrorCode, Validate, validate_item};
use trainsync_protocol::wire::{
    AcceptedItem, CheckRequest, CheckResponse, CompleteRequest, CompleteResponse, CompleteStatus,
    ConflictEntry, ConflictItem, ConflictsResponse, DeferredChanges, DeletedEntity, DeviceStatus,
    DeviceView, DevicesResponse, DownloadResponse, ErrorBody, ErrorCode, ErrorDetail, ItemType,
    Network, Platform, ProcessingError, RefreshRequest, RegisterDeviceRequest, RevokeReason,
    SessionStatus, StatusResponse, TokenPair, UndoResponse, UploadRequest, UploadResponse,
};
use trainsync_protocol::wire::{IngestEvent, IngestRequest};
use uuid::Uuid;

static SPEC: LazyLock<Spec> = LazyLock::new(|| {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    Spec {
        doc: serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}")),
    }
});

// ------------------------------------------------------------------ routes

/// What a 200 answer carries.
enum Ok200 {
    /// JSON of one of these schemas (one, or the `oneOf` list in order).
    Json(&'static [&'static str]),
    /// Bytes of this media type.
    Binary(&'static str),
}

/// The schemas of an endpoint's request body (if any) and 200 response.
fn body_schemas(endpoint: Endpoint) -> (Option<&'static str>, Ok200) {
    match endpoint {
        Endpoint::Check => (Some("CheckRequest"), Ok200::Json(&["CheckResponse"])),
        Endpoint::Upload => (Some("UploadRequest"), Ok200::Json(&["UploadResponse"])),
        Endpoint::Download => (None, Ok200::Json(&["DownloadResponse"])),
        Endpoint::Complete => (Some("CompleteRequest"), Ok200::Json(&["CompleteResponse"])),
        Endpoint::Status => (None, Ok200::Json(&["StatusResponse"])),
        Endpoint::Conflicts => (None, Ok200::Json(&["ConflictsResponse"])),
        Endpoint::ConflictUndo => (None, Ok200::Json(&["UndoResponse"])),
        Endpoint::Track => (None, Ok200::Binary("application/vnd.trainsync.track")),
        Endpoint::Reference => (
            None,
            Ok200::Json(&["ReferenceCurrent", "ReferenceSnapshot"]),
        ),
        Endpoint::DeviceRegister => (Some("RegisterDeviceRequest"), Ok200::Json(&["DeviceView"])),
        Endpoint::DeviceList => (None, Ok200::Json(&["DevicesResponse"])),
        Endpoint::DeviceRevoke => (None, Ok200::Json(&["DeviceView"])),
        Endpoint::AuthRefresh => (Some("RefreshRequest"), Ok200::Json(&["TokenPair"])),
    }
}

/// Whether `endpoint` takes a bearer token; the one that does not is the
/// refresh, whose body carries the credential.
fn needs_bearer_token(endpoint: Endpoint) -> bool {
    endpoint != Endpoint::AuthRefresh
}

/// The component schemas a media type refers to: its `$ref`, or its `oneOf` list.
fn schema_refs(media: &Value) -> Vec<&str> {
    let schema = &media["schema"];
    let refs: Vec<&Value> = match schema.get("oneOf") {
        Some(list) => as_array(list).iter().collect(),
        None => vec![schema],
    };
    refs.into_iter()
        .map(|r| {
            let target = r["$ref"]
                .as_str()
                .unwrap_or_else(|| panic!("no schema $ref in {media}"));
            target.rsplit('/').next().unwrap_or(target)
        })
        .collect()
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

#[test]
fn the_paths_and_methods_are_the_endpoints() {
    let mut in_spec = BTreeSet::new();
    for (path, item) in as_object(&SPEC.doc["paths"]) {
        for method in as_object(item).keys() {
            if METHODS.contains(&method.as_str()) {
                in_spec.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let in_code: BTreeSet<_> = Endpoint::ALL
        .iter()
        .map(|e| (e.method().to_string(), e.path().to_owned()))
        .collect();
    assert_eq!(in_spec, in_code);
}

#[test]
fn every_operation_is_authenticated_and_answers_with_its_types() {
    assert_eq!(SPEC.doc["security"], json!([{"bearerAuth": []}]));
    for endpoint in Endpoint::ALL {
        let method = endpoint.method().as_str().to_lowercase();
        let op = &SPEC.doc["paths"][endpoint.path()][&method];
        let name = format!("{method} {}", endpoint.path());
        if needs_bearer_token(endpoint) {
            assert!(op.get("security").is_none(), "{name} overrides security");
        } else {
            assert_eq!(op["security"], json!([]), "{name} takes no bearer token");
        }
        let (request, ok_schema) = body_schemas(endpoint);
        let body = &op["requestBody"];
        match request {
            Some(schema) => {
                assert_eq!(body["required"], true, "{name}");
                assert_eq!(schema_ref(&body["content"]["application/json"]), schema);
            }
            None => assert!(body.is_null(), "{name} has a request body"),
        }
        let responses = as_object(&op["responses"]);
        for status in ["200", "401", "500", "503"] {
            assert!(responses.contains_key(status), "{name} lacks {status}");
        }
        for (status, response) in responses {
            let response = SPEC.resolve(response);
            let headers = as_object(&response["headers"]);
            assert!(
                headers.contains_key("X-DynamoDB-Requests"),
                "{name} {status}: X-DynamoDB-Requests"
            );
            let content = &response["content"];
            match (status.as_str(), &ok_schema) {
                // Not modified: no body.
                ("304", _) => assert!(content.is_null(), "{name} 304 has a body"),
                // Binary downloads (whole or part) are sent as stored.
                ("200" | "206", Ok200::Binary(media)) => {
                    let keys: Vec<&String> = as_object(content).keys().collect();
                    assert_eq!(keys, [media], "{name} {status}");
                    assert!(
                        !headers.contains_key("Content-Encoding"),
                        "{name} {status}: binary bodies are never compressed"
                    );
                }
                (status, ok) => {
                    let json = &content["application/json"];
                    let expected: &[&str] = match (status, ok) {
                        ("200", Ok200::Json(schemas)) => schemas,
                        _ => &["ErrorBody"],
                    };
                    assert_eq!(schema_refs(json), expected, "{name} {status}");
                    // 416 is the only error that never carries a compressible body.
                    if status != "416" {
                        assert!(
                            headers.contains_key("Content-Encoding"),
                            "{name} {status}: Content-Encoding"
                        );
                    }
                }
            }
        }
    }
}

/// The error responses of the device and token operations (status -> the
/// component), from what their handlers can send.
fn device_and_token_errors(endpoint: Endpoint) -> Option<&'static [(&'static str, &'static str)]> {
    const SERVER: [(&str, &str); 2] = [("500", "InternalError"), ("503", "ServiceUnavailable")];
    let errors: &[(&str, &str)] = match endpoint {
        Endpoint::DeviceRegister => &[
            ("400", "BadRequest"),
            ("401", "Unauthorized"),
            ("403", "Forbidden"),
            ("409", "DeviceBusy"),
            ("413", "PayloadTooLarge"),
            ("415", "UnsupportedMediaType"),
            ("422", "PushTokenRejected"),
            SERVER[0],
            SERVER[1],
        ],
        Endpoint::DeviceList => &[("401", "Unauthorized"), SERVER[0], SERVER[1]],
        Endpoint::DeviceRevoke => &[
            ("400", "BadRequest"),
            ("401", "Unauthorized"),
            ("404", "DeviceNotFound"),
            SERVER[0],
            SERVER[1],
        ],
        Endpoint::AuthRefresh => &[
            ("400", "BadRequest"),
            ("401", "RefreshRefused"),
            ("413", "PayloadTooLarge"),
            ("415", "UnsupportedMediaType"),
            SERVER[0],
            SERVER[1],
        ],
        _ => return None,
    };
    Some(errors)
}

#[test]
fn device_and_token_operations_list_their_errors() {
    let mut checked = 0;
    for endpoint in Endpoint::ALL {
        let Some(expected) = device_and_token_errors(endpoint) else {
            continue;
        };
        checked += 1;
        let method = endpoint.method().as_str().to_lowercase();
        let name = format!("{method} {}", endpoint.path());
        let responses = as_object(&SPEC.doc["paths"][endpoint.path()][&method]["responses"]);
        let errors: Vec<(String, String)> = responses
            .iter()
            .filter(|(status, _)| status.as_str() != "200")
            .map(|(status, response)| {
                let target = response["$ref"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name} {status}: a shared response"));
                (
                    status.clone(),
                    target.rsplit('/').next().unwrap_or(target).to_owned(),
                )
            })
            .collect();
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(s, c)| ((*s).to_owned(), (*c).to_owned()))
            .collect();
        assert_eq!(errors, expected, "{name}");
        // The device's own id is the path parameter, validated like a token's.
        if endpoint.path().contains("{device_id}") {
            let parameters = as_array(&SPEC.doc["paths"][endpoint.path()][&method]["parameters"]);
            let parameter = parameters
                .iter()
                .map(|p| SPEC.resolve(p))
                .find(|p| p["name"] == "device_id")
                .unwrap_or_else(|| panic!("{name}: a device_id parameter"));
            assert_eq!(parameter["in"], "path");
            assert_eq!(
                parameter["schema"]["maxLength"],
                json!(limits::MAX_ID_CHARS)
            );
        }
    }
    assert_eq!(checked, 4);
    // Token answers are never cached, and the spec says so.
    let ok = &SPEC.doc["paths"]["/auth/refresh"]["post"]["responses"]["200"];
    assert_eq!(
        ok["headers"]["Cache-Control"]["schema"]["enum"],
        json!(["no-store"])
    );
    assert_eq!(ok["headers"]["Cache-Control"]["required"], true);
    // The documented lifetime is the issued one.
    let expires_in = SPEC.schema("TokenPair")["properties"]["expires_in"]["description"]
        .as_str()
        .unwrap_or("");
    assert!(expires_in.contains(&(ACCESS_TOKEN_TTL_HOURS * 3600).to_string()));
}

// ------------------------------------------------------------------ samples

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("an RFC 3339 timestamp")
}

fn day(text: &str) -> NaiveDate {
    text.parse().expect("a date")
}

fn activity() -> Activity {
    Activity {
        id: Uuid::from_u128(0xA1),
        activity_type: ActivityType::Run,
        started_at: at("2025-05-31T07:00:00Z"),
        duration_s: 3600,
        distance_m: Some(10_000.5),
        avg_hr: Some(150),
        rpe: Some(6),
        notes: Some("easy".into()),
        feeling: Some(4),
        source: ActivitySource::Wearable,
        source_device: Some("Garmin Forerunner 265".into()),
        external_id: Some("garmin-123".into()),
        track: None,
        merged_from: vec![],
        distinct_from: vec![],
    }
}

/// The activity as stored after the server added its fields.
fn stored_activity() -> Activity {
    Activity {
        track: Some(track_ref()),
        merged_from: vec![Uuid::from_u128(0xA3)],
        distinct_from: vec![Uuid::from_u128(0xA4)],
        ..activity()
    }
}

fn track_ref() -> TrackRef {
    TrackRef {
        points: 3600,
        bytes: 21_344,
        sha256: "ab".repeat(32),
        url: format!("/sync/tracks/{}", Uuid::from_u128(0xA1)),
    }
}

fn planned_workout(id: &str, date: &str) -> PlannedWorkout {
    serde_json::from_value(json!({
        "id": id,
        "date": date,
        "workout_type": "long_run",
        "title": "Long run",
        "structure": [{"kind": "work", "duration_s": 5400}],
        "targets": {"distance_m": 18000},
        "coach_note": "Keep it easy",
    }))
    .expect("a workout")
}

/// Plan version 23 with the workout `plan_adjustment` moves.
fn training_plan() -> TrainingPlan {
    TrainingPlan {
        version: 23,
        generated_at: at("2025-05-30T05:00:00Z"),
        starts_on: day("2025-06-02"),
        weeks: 4,
        workouts: vec![planned_workout("w-2025-06-02", "2025-06-02")],
    }
}

fn plan_diff() -> PlanDiff {
    let mut fields = serde_json::Map::new();
    fields.insert("date".into(), json!("2025-06-03"));
    fields.insert("coach_note".into(), Value::Null);
    PlanDiff {
        from_version: 22,
        to_version: 23,
        ops: vec![
            PlanOp::Header {
                starts_on: day("2025-06-02"),
                weeks: 5,
                generated_at: at("2025-05-30T05:00:00Z"),
            },
            PlanOp::Remove {
                id: WorkoutId::parse("w-old").expect("a valid id"),
            },
            PlanOp::Update {
                id: WorkoutId::parse("w-2025-06-02").expect("a valid id"),
                fields,
            },
            PlanOp::Add {
                workout: planned_workout("w-new", "2025-06-09"),
            },
        ],
    }
}

/// A conflict-log entry; `full` has every optional field.
fn conflict_record(full: bool) -> ConflictRecord {
    ConflictRecord {
        id: Uuid::from_u128(0xC1),
        rule: ConflictRule::DuplicateActivityMerged,
        entity_type: EntityKind::Activity,
        entity_id: Uuid::from_u128(0xA1).to_string(),
        other_id: full.then(|| Uuid::from_u128(0xA3).to_string()),
        message: "merged".into(),
        winner: if full {
            to_json(&activity())
        } else {
            Value::Null
        },
        user_version: if full {
            json!({"notes": "x"})
        } else {
            Value::Null
        },
        resolved_at: at("2025-06-01T12:00:00Z"),
        undo_until: at("2025-06-02T12:00:00Z"),
        status: if full {
            ConflictStatus::Undone
        } else {
            ConflictStatus::Resolved
        },
        undone_at: full.then(|| at("2025-06-01T13:00:00Z")),
        undo: undo_actions().remove(usize::from(!full)),
    }
}

/// One undo action of each kind.
fn undo_actions() -> Vec<UndoAction> {
    vec![
        UndoAction::Restore {
            targets: vec![restore_target(true)],
        },
        UndoAction::Reschedule {
            adjustment_id: Uuid::from_u128(0xB1),
            workout_id: WorkoutId::parse("w-2025-06-02").expect("a valid id"),
            new_date: day("2025-06-03"),
        },
    ]
}

fn restore_target(full: bool) -> RestoreTarget {
    RestoreTarget {
        kind: EntityKind::Activity,
        id: Uuid::from_u128(0xA3).to_string(),
        expected: full.then(|| json!({"deleted": true, "reason": "merged_duplicate"})),
        restore: if full {
            to_json(&activity())
        } else {
            Value::Null
        },
    }
}

fn conflict_entry(full: bool) -> ConflictEntry {
    ConflictEntry {
        record: conflict_record(full),
        undoable: !full,
    }
}

fn deleted_entity(full: bool) -> DeletedEntity {
    DeletedEntity {
        kind: EntityKind::Activity,
        id: Uuid::from_u128(0xA3).to_string(),
        seq: 7,
        reason: TombstoneReason::MergedDuplicate,
        replaced_by: full.then(|| Uuid::from_u128(0xA1).to_string()),
    }
}

fn track_ready() -> TrackReady {
    TrackReady {
        activity_id: Uuid::from_u128(0xA1),
        track: track_ref(),
    }
}

fn reference_entry(full: bool) -> ReferenceEntry {
    ReferenceEntry {
        id: "squat.back".into(),
        kind: ReferenceKind::Exercise,
        title: "Back squat".into(),
        body: json!({"cues": ["brace"]}),
        media_url: full.then(|| "https://cdn.example.com/squat.mp4".into()),
        updated_at: at("2025-05-20T10:00:00Z"),
    }
}

fn reference_snapshot() -> ReferenceSnapshot {
    ReferenceSnapshot {
        version: 7,
        published_at: at("2025-06-01T06:00:00Z"),
        entries: vec![
            reference_entry(true),
            ReferenceEntry {
                id: "zones.hr-5".into(),
                kind: ReferenceKind::ZoneFormula,
                ..reference_entry(false)
            },
        ],
    }
}

fn daily_metric() -> DailyMetric {
    DailyMetric {
        date: day("2025-05-31"),
        recovery_rating: Some(7),
        sleep_hours: Some(7.5),
        soreness: Some(3),
        submitted_at: at("2025-05-31T06:30:00Z"),
    }
}

fn settings_change() -> SettingsChange {
    SettingsChange {
        key: SettingKey::Units,
        value: json!("metric"),
        changed_at: at("2025-05-31T07:10:00Z"),
    }
}

fn plan_adjustment(plan_version: Option<u64>) -> PlanAdjustment {
    PlanAdjustment {
        id: Uuid::from_u128(0xB1 + u128::from(plan_version.unwrap_or(0))),
        workout_id: WorkoutId::parse("w-2025-06-02").expect("a valid id"),
        new_date: day("2025-06-03"),
        requested_at: at("2025-05-31T07:12:00Z"),
        plan_version,
    }
}

fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("serializable")
}

/// A stored entity as a download shows it: its data plus its `seq`.
fn record<T: Serialize>(item: &T, seq: u64) -> Value {
    let mut value = to_json(item);
    value["seq"] = json!(seq);
    value
}

fn upload_request() -> UploadRequest {
    UploadRequest {
        sync_id: Uuid::from_u128(1),
        sync_request_id: Uuid::from_u128(2),
        activities: vec![to_json(&activity())],
        daily_metrics: vec![to_json(&daily_metric())],
        settings_changes: vec![to_json(&settings_change())],
        plan_adjustments: vec![to_json(&plan_adjustment(Some(23)))],
    }
}

fn processing_error(id: Option<String>) -> ProcessingError {
    ProcessingError {
        item_type: ItemType::Activity,
        id,
        index: 3,
        field: "duration_s".into(),
        code: FieldErrorCode::OutOfRange,
        message: "duration_s must be between 1 and 86400, got 0".into(),
        retryable: false,
    }
}

fn conflict_item(full: bool) -> ConflictItem {
    ConflictItem {
        item_type: ItemType::Activity,
        id: Uuid::from_u128(0xA1).to_string(),
        resolution: "objective_fields_kept".into(),
        message: "kept".into(),
        conflict_id: full.then(|| Uuid::from_u128(0xC1)),
    }
}

fn accepted_item() -> AcceptedItem {
    AcceptedItem {
        item_type: ItemType::SettingsChange,
        id: "units".into(),
    }
}

fn download_response(full: bool) -> DownloadResponse {
    let some = |v: Value| full.then_some(v);
    let settings = [
        ("goal_race_date", json!("2025-10-12")),
        ("available_training_days", json!(["mon", "wed"])),
        ("units", json!("metric")),
        ("timezone", json!("Europe/Berlin")),
        ("notifications_enabled", json!(true)),
    ];
    DownloadResponse {
        training_plan: some(record(&training_plan(), 9)),
        training_plan_diff: full.then(plan_diff),
        calculated_metrics: some(json!({"acwr": 1.1, "seq": 10})),
        alerts: vec![json!({"id": "a1", "kind": "overtraining", "seq": 11})],
        activities: vec![record(&stored_activity(), 3), record(&activity(), 2)],
        daily_metrics: vec![record(&daily_metric(), 4)],
        plan_adjustments: vec![{
            let mut adjustment = record(&plan_adjustment(Some(23)), 5);
            adjustment["status"] = json!("pending");
            adjustment
        }],
        settings: settings
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        conflicts: vec![
            record(&conflict_record(true), 12),
            record(&conflict_record(false), 13),
        ],
        tracks: vec![record(&track_ready(), 14)],
        deleted: vec![deleted_entity(true), deleted_entity(false)],
        resync_required: full,
        resync_reason: full.then(|| "cursor_too_old".into()),
        deferred: full.then(|| DeferredChanges {
            in_page: 1,
            pending: true,
            message: "later".into(),
        }),
        server_timestamp: at("2025-06-01T12:00:00Z"),
        next_cursor: "bDo1".into(),
        has_more: full,
    }
}

fn device_status(full: bool) -> DeviceStatus {
    DeviceStatus {
        device_id: "phone".into(),
        first_seen_at: at("2025-05-01T08:00:00Z"),
        last_seen_at: at("2025-06-01T12:00:00Z"),
        last_sync_at: full.then(|| at("2025-06-01T12:00:00Z")),
        last_cursor: full.then(|| "bDo1".into()),
        acknowledged_cursor: full.then(|| "bDo0".into()),
        pending_downloads: 1,
    }
}

fn session_status(full: bool) -> SessionStatus {
    SessionStatus {
        sync_id: Uuid::from_u128(1),
        device_id: "phone".into(),
        opened_at: at("2025-06-01T12:00:00Z"),
        status: if full { "failed" } else { "open" }.into(),
        completed_at: full.then(|| at("2025-06-01T12:00:05Z")),
        error: full.then(|| "timeout".into()),
        uploads: 2,
        conflicts: 1,
    }
}

/// A device; `full` has every optional field (a registered, then revoked device).
fn device_view(full: bool) -> DeviceView {
    DeviceView {
        device_id: "phone".into(),
        current: full,
        platform: full.then_some(Platform::Ios),
        app_version: full.then(|| "4.2.0".into()),
        os_version: full.then(|| "17.4".into()),
        network: full.then_some(Network::Wifi),
        locale: full.then(|| "de-CH".into()),
        push_enabled: false,
        registered_at: full.then(|| at("2025-05-01T08:00:05Z")),
        first_seen_at: at("2025-05-01T08:00:00Z"),
        last_seen_at: at("2025-06-01T12:00:00Z"),
        last_sync_at: full.then(|| at("2025-06-01T11:58:00Z")),
        revoked: full,
        revoked_at: full.then(|| at("2025-06-01T12:05:00Z")),
        revoked_reason: full.then_some(RevokeReason::RefreshTokenReuse),
    }
}

fn register_device_request() -> RegisterDeviceRequest {
    RegisterDeviceRequest {
        platform: Platform::Android,
        push_token: Some("fcm:APA91bH-token_x".into()),
        app_version: "4.2.0".into(),
        os_version: Some("14".into()),
        network: Some(Network::Cellular),
        locale: Some("en-GB".into()),
    }
}

/// A refresh token as the service issues it.
fn refresh_token() -> String {
    RefreshToken::generate(Uuid::from_u128(0xF1)).encode()
}

fn token_pair() -> TokenPair {
    TokenPair {
        access_token: "eyJhbGciOiJSUzI1NiJ9.e30.c2ln".into(),
        token_type: "Bearer".into(),
        expires_in: ACCESS_TOKEN_TTL_HOURS * 3600,
        expires_at: at("2025-06-02T12:00:00Z"),
        refresh_token: refresh_token(),
        refresh_expires_at: at("2025-07-31T12:00:00Z"),
    }
}

fn error_detail(full: bool) -> ErrorDetail {
    ErrorDetail {
        code: ErrorCode::UnknownSyncId,
        message: "no open sync session".into(),
        field: full.then(|| "sync_id".into()),
    }
}

// ------------------------------------------------------------------ responses

/// A response type against its schema. `full` has every `Option` set, `empty`
/// none: both must validate; the schema's properties are the keys of `full`,
/// its `required` the keys always present (those of `empty`), and exactly the
/// keys `empty` has as null may be null.
fn assert_response_schema<T: Serialize>(name: &str, full: &T, empty: &T) {
    assert_response_values(name, to_json(full), to_json(empty));
}

/// [`assert_response_schema`] on serialized samples (e.g. a record plus its `seq`).
fn assert_response_values(name: &str, full: Value, empty: Value) {
    let schema = SPEC.schema(name);
    for sample in [&full, &empty] {
        if let Err(e) = SPEC.check(sample, schema) {
            panic!("{name}: {sample} does not fit the spec: {e}");
        }
    }
    assert_eq!(SPEC.property_names(name), keys(&full), "{name}: properties");
    assert_eq!(SPEC.required(name), keys(&empty), "{name}: required");
    let nullable: BTreeSet<String> = as_object(&schema["properties"])
        .iter()
        .filter(|(_, property)| SPEC.accepts_null(property))
        .map(|(key, _)| key.clone())
        .collect();
    let null: BTreeSet<String> = as_object(&empty)
        .iter()
        .filter(|(_, value)| value.is_null())
        .map(|(key, _)| key.clone())
        .collect();
    assert_eq!(nullable, null, "{name}: nullable properties");
}

#[test]
fn response_schemas_match_the_response_types() {
    let now = at("2025-06-01T12:00:00Z");
    let check = CheckResponse {
        sync_id: Uuid::from_u128(1),
        has_updates: true,
        server_changes_available: vec!["plan_v23".into(), "metrics_updated".into()],
        accepts_client_changes: true,
        server_timestamp: now,
        cursor: "bDo0".into(),
    };
    assert_response_schema(
        "CheckResponse",
        &check,
        &CheckResponse {
            server_changes_available: vec![],
            ..check.clone()
        },
    );
    let upload = UploadResponse {
        accepted: vec![accepted_item()],
        conflicts: vec![conflict_item(true), conflict_item(false)],
        processing_errors: vec![processing_error(Some("x".into()))],
        server_timestamp: now,
    };
    let empty_upload = UploadResponse {
        accepted: vec![],
        conflicts: vec![],
        processing_errors: vec![processing_error(None)],
        server_timestamp: now,
    };
    assert_response_schema("UploadResponse", &upload, &empty_upload);
    assert_response_schema("AcceptedItem", &accepted_item(), &accepted_item());
    assert_response_schema("ConflictItem", &conflict_item(true), &conflict_item(false));
    assert_response_schema(
        "ProcessingError",
        &processing_error(Some(Uuid::from_u128(0xA1).to_string())),
        &processing_error(None),
    );
    assert_response_schema(
        "DownloadResponse",
        &download_response(true),
        &DownloadResponse {
            alerts: vec![],
            activities: vec![],
            daily_metrics: vec![],
            plan_adjustments: vec![],
            settings: BTreeMap::new(),
            conflicts: vec![],
            tracks: vec![],
            deleted: vec![],
            ..download_response(false)
        },
    );
    assert_response_schema("TrackRef", &track_ref(), &track_ref());
    assert_response_values(
        "TrackAnnouncement",
        record(&track_ready(), 14),
        record(&track_ready(), 14),
    );
    assert_response_schema(
        "DeletedEntity",
        &deleted_entity(true),
        &deleted_entity(false),
    );
    let deferred = DeferredChanges {
        in_page: 0,
        pending: true,
        message: "later".into(),
    };
    assert_response_schema("DeferredChanges", &deferred, &deferred);
    assert_response_schema("PlanDiff", &plan_diff(), &plan_diff());
    assert_response_schema(
        "ConflictRecord",
        &conflict_record(true),
        &conflict_record(false),
    );
    assert_response_values(
        "ConflictLogRecord",
        record(&conflict_record(true), 12),
        record(&conflict_record(false), 12),
    );
    assert_response_schema(
        "ConflictEntry",
        &conflict_entry(true),
        &conflict_entry(false),
    );
    assert_response_schema(
        "RestoreTarget",
        &restore_target(true),
        &restore_target(false),
    );
    let conflicts = |full: bool| ConflictsResponse {
        conflicts: if full {
            vec![conflict_entry(true), conflict_entry(false)]
        } else {
            vec![]
        },
        next_after: full.then(|| Uuid::from_u128(0xC1).to_string()),
        server_timestamp: now,
    };
    assert_response_schema("ConflictsResponse", &conflicts(true), &conflicts(false));
    let undo = |full: bool| UndoResponse {
        conflict: conflict_entry(full),
        server_timestamp: now,
    };
    assert_response_schema("UndoResponse", &undo(true), &undo(false));
    let current = ReferenceCurrent::new(7, now);
    assert_eq!(current.url, "/reference/7");
    assert_response_schema("ReferenceCurrent", &current, &current);
    let complete = CompleteResponse {
        sync_id: Uuid::from_u128(1),
        status: CompleteStatus::Failed,
        server_timestamp: now,
    };
    assert_response_schema("CompleteResponse", &complete, &complete);
    assert_response_schema("DeviceStatus", &device_status(true), &device_status(false));
    assert_response_schema(
        "SessionStatus",
        &session_status(true),
        &session_status(false),
    );
    let status = |full: bool| StatusResponse {
        user_id: "user-1".into(),
        head_cursor: "bDo1".into(),
        head_seq: 5,
        devices: vec![device_status(full)],
        recent_sessions: vec![session_status(full)],
        open_sessions: u32::from(!full),
        conflict_rate: 0.5,
        server_timestamp: now,
    };
    assert_response_schema("StatusResponse", &status(true), &status(false));
    let error = |full: bool| ErrorBody {
        error: error_detail(full),
        server_timestamp: now,
    };
    assert_response_schema("ErrorBody", &error(true), &error(false));
    assert_response_schema("ErrorDetail", &error_detail(true), &error_detail(false));
    assert_response_schema("DeviceView", &device_view(true), &device_view(false));
    let devices = |full: bool| DevicesResponse {
        devices: if full {
            vec![device_view(true), device_view(false)]
        } else {
            vec![]
        },
        server_timestamp: now,
    };
    assert_response_schema("DevicesResponse", &devices(true), &devices(false));
    assert_response_schema("TokenPair", &token_pair(), &token_pair());
}

// ------------------------------------------------------------------ requests and items

/// A request or item type against its schema: a fully populated sample
/// validates and has exactly the schema's properties; `required` is exactly
/// the set of fields serde cannot do without; spec and serde agree on which
/// fields take null and on unknown fields.
fn assert_request_schema<T: Serialize + DeserializeOwned>(name: &str, full: &T) {
    assert_accepted_shape(name, to_json(full), |v| {
        serde_json::from_value::<T>(v).is_ok()
    });
}

/// [`assert_request_schema`] where the server's `takes` decides what is
/// accepted (serde and validation, e.g. for an item only valid in its container).
fn assert_accepted_shape(name: &str, full: Value, takes: impl Fn(Value) -> bool) {
    let schema = SPEC.schema(name);
    if let Err(e) = SPEC.check(&full, schema) {
        panic!("{name}: {full} does not fit the spec: {e}");
    }
    assert_eq!(SPEC.property_names(name), keys(&full), "{name}: properties");

    let without = |key: &str| {
        let mut value = full.clone();
        as_object_mut(&mut value).remove(key);
        value
    };
    let serde_requires: BTreeSet<String> = keys(&full)
        .into_iter()
        .filter(|key| !takes(without(key)))
        .collect();
    assert_eq!(SPEC.required(name), serde_requires, "{name}: required");

    let mut minimal = full.clone();
    as_object_mut(&mut minimal).retain(|key, _| serde_requires.contains(key));
    assert!(takes(minimal.clone()), "{name}");
    SPEC.check(&minimal, schema)
        .unwrap_or_else(|e| panic!("{name}: {minimal}: {e}"));

    // Null where serde takes it. A bare `$ref` cannot say `nullable` in
    // OpenAPI 3.0, so there only "the spec allows null => serde takes it".
    for (key, property) in as_object(&schema["properties"]) {
        let mut value = full.clone();
        value[key] = Value::Null;
        let serde_takes_null = takes(value);
        if property.get("$ref").is_none() || SPEC.accepts_null(property) {
            assert_eq!(
                SPEC.accepts_null(property),
                serde_takes_null,
                "{name}.{key}: does it take null? (left: spec, right: serde)"
            );
        }
    }

    let mut extra = full.clone();
    extra["an_unknown_field"] = json!(1);
    assert_eq!(
        schema["additionalProperties"] == false,
        !takes(extra),
        "{name}: serde and spec disagree on unknown fields"
    );
}

#[test]
fn request_schemas_match_the_request_types() {
    assert_request_schema(
        "CheckRequest",
        &CheckRequest {
            user_id: "user-1".into(),
            device_id: Some("phone".into()),
            last_sync_timestamp: Some(at("2025-05-31T07:00:00Z")),
            cursor: Some("bDo0".into()),
            pending_changes_count: 3,
            network: Some(Network::Cellular),
        },
    );
    assert_request_schema("UploadRequest", &upload_request());
    assert_request_schema(
        "CompleteRequest",
        &CompleteRequest {
            sync_id: Uuid::from_u128(1),
            status: CompleteStatus::Failed,
            sync_request_id: Some(Uuid::from_u128(3)),
            error: Some("timeout".into()),
            cursor: Some("bDo0".into()),
        },
    );
    assert_request_schema("RegisterDeviceRequest", &register_device_request());
    assert_request_schema(
        "RefreshRequest",
        &RefreshRequest {
            refresh_token: refresh_token(),
        },
    );
}

#[test]
fn item_schemas_match_the_item_types() {
    assert_request_schema("Activity", &activity());
    assert_request_schema("DailyMetric", &daily_metric());
    assert_request_schema("SettingsChange", &settings_change());
    assert_request_schema("PlanAdjustment", &plan_adjustment(Some(23)));
    // What the backend publishes (ingest) and devices receive as it is.
    assert_request_schema("PlannedWorkout", &planned_workout("w-1", "2025-06-02"));
    assert_request_schema("ReferenceSnapshot", &reference_snapshot());
    // An entry is accepted when a snapshot holding it is.
    assert_accepted_shape("ReferenceEntry", to_json(&reference_entry(true)), |entry| {
        let mut snapshot = to_json(&reference_snapshot());
        snapshot["entries"] = json!([entry]);
        validate_item::<ReferenceSnapshot>(snapshot, Utc::now()).is_ok()
    });
    let snapshot = to_json(&reference_snapshot());
    assert!(validate_item::<ReferenceSnapshot>(snapshot, Utc::now()).is_ok());
    let plan = to_json(&training_plan());
    assert!(validate_item::<TrainingPlan>(plan, Utc::now()).is_ok());
}

/// A schema for a Rust enum of objects tagged by `tag`: its properties are
/// every variant's fields, only the tag is required, the tag's `enum` is the
/// variants' tags, and each variant's sample fits.
fn assert_tagged_union_schema<T: Serialize>(name: &str, tag: &str, variants: &[T]) {
    let schema = SPEC.schema(name);
    let mut fields = BTreeSet::new();
    let mut tags = BTreeSet::new();
    for variant in variants.iter().map(to_json) {
        SPEC.check(&variant, schema)
            .unwrap_or_else(|e| panic!("{name}: {variant} does not fit the spec: {e}"));
        fields.extend(keys(&variant));
        tags.insert(string(variant[tag].clone()));
    }
    assert_eq!(SPEC.property_names(name), fields, "{name}: properties");
    assert_eq!(
        SPEC.required(name),
        BTreeSet::from([tag.to_owned()]),
        "{name}: required"
    );
    let in_spec: BTreeSet<String> = as_array(&schema["properties"][tag]["enum"])
        .iter()
        .cloned()
        .map(string)
        .collect();
    assert_eq!(in_spec, tags, "{name}.{tag}");
    SPEC.assert_described(&format!("/components/schemas/{name}"), &tags);
}

#[test]
fn tagged_unions_list_every_variant() {
    // `variants!` makes a new variant break the build until it is sampled here.
    let _exhaustive = |op: &PlanOp| match op {
        PlanOp::Add { .. }
        | PlanOp::Update { .. }
        | PlanOp::Remove { .. }
        | PlanOp::Header { .. } => (),
    };
    let ops = plan_diff().ops;
    assert_eq!(ops.len(), 4, "one op of each kind");
    assert_tagged_union_schema("PlanOp", "op", &ops);
    let _exhaustive = |action: &UndoAction| match action {
        UndoAction::Restore { .. } | UndoAction::Reschedule { .. } => (),
    };
    let actions = undo_actions();
    assert_eq!(actions.len(), 2, "one action of each kind");
    assert_tagged_union_schema("UndoAction", "action", &actions);
}

#[test]
fn server_set_activity_fields_are_ignored_in_uploads() {
    let record_only: BTreeSet<String> = SPEC
        .property_names("ActivityRecord")
        .difference(&SPEC.property_names("Activity"))
        .cloned()
        .collect();
    let server_set = BTreeSet::from([
        "track".to_owned(),
        "merged_from".to_owned(),
        "distinct_from".to_owned(),
        "seq".to_owned(),
    ]);
    assert_eq!(record_only, server_set);
    // A device re-sending a downloaded record: the server's fields are dropped.
    let mut sent = record(&stored_activity(), 3);
    as_object_mut(&mut sent).remove("seq");
    let request = UploadRequest {
        activities: vec![sent],
        ..upload_request()
    };
    let plan = plan_upload(&request, Utc::now());
    assert_eq!(plan.errors, vec![], "accepted");
    match plan.batch.changes.as_slice() {
        [
            trainsync_protocol::rules::resolve::Change::Activity(taken),
            ..,
        ] => assert_eq!(*taken, activity()),
        other => panic!("{other:?}"),
    }
    let described = SPEC.schema("Activity")["description"]
        .as_str()
        .unwrap_or("");
    for field in ["track", "merged_from", "distinct_from"] {
        assert!(
            described.contains(&format!("`{field}`")),
            "Activity names {field}"
        );
    }
}

/// Every bound the spec gives an item's field is the server's: the values at
/// the bound pass validation and the ones just past it fail on that field.
fn assert_bounds<T: DeserializeOwned + Validate + std::fmt::Debug>(name: &str, sample: Value) {
    let now = Utc::now();
    let try_with = |key: &str, value: Value| {
        let mut item = sample.clone();
        item[key] = value;
        validate_item::<T>(item, now)
    };
    assert!(validate_item::<T>(sample.clone(), now).is_ok(), "{name}");
    for (key, property) in as_object(&SPEC.schema(name)["properties"]) {
        let property = SPEC.resolve(property);
        let integer = property["type"] == "integer";
        let step = if integer { 1.0 } else { 0.5 };
        let number = |x: f64| if integer { json!(x as i64) } else { json!(x) };
        for (bound, past) in [("minimum", -step), ("maximum", step)] {
            if let Some(limit) = property[bound].as_f64() {
                assert!(
                    try_with(key, number(limit)).is_ok(),
                    "{name}.{key} = {limit} (the {bound}) is refused"
                );
                match try_with(key, number(limit + past)) {
                    Err(FieldError { field, code, .. }) => assert_eq!(
                        (field.as_str(), code),
                        (key.as_str(), FieldErrorCode::OutOfRange),
                        "{name}.{key} past the {bound}"
                    ),
                    Ok(_) => panic!("{name}.{key} = {} is accepted", limit + past),
                }
            }
        }
        for (bound, past) in [("minLength", -1), ("maxLength", 1)] {
            if let Some(limit) = property[bound].as_i64() {
                let text = |n: i64| json!("a".repeat(n.max(0) as usize));
                assert!(try_with(key, text(limit)).is_ok(), "{name}.{key}: {bound}");
                if limit + past >= 0 {
                    let error = try_with(key, text(limit + past)).expect_err("refused");
                    assert_eq!(error.field, *key, "{name}.{key} past the {bound}");
                }
            }
        }
    }
}

#[test]
fn item_bounds_are_the_validation_rules() {
    assert_bounds::<Activity>("Activity", to_json(&activity()));
    assert_bounds::<DailyMetric>("DailyMetric", to_json(&daily_metric()));
    assert_bounds::<PlanAdjustment>("PlanAdjustment", to_json(&plan_adjustment(Some(23))));
    let registration = to_json(&register_device_request());
    assert_bounds::<RegisterDeviceRequest>("RegisterDeviceRequest", registration.clone());
    // Tokens, versions and locales: printable ASCII without spaces, as the pattern says.
    let schema = SPEC.schema("RegisterDeviceRequest");
    let mut patterned = 0;
    for (key, property) in as_object(&schema["properties"]) {
        if property["pattern"].as_str() != Some("^[!-~]+$") {
            continue;
        }
        patterned += 1;
        for bad in ["a b", "caf\u{e9}", "tab\t"] {
            let mut request = registration.clone();
            request[key] = json!(bad);
            let error =
                validate_item::<RegisterDeviceRequest>(request, Utc::now()).expect_err("refused");
            assert_eq!(error.field, *key, "{key} = {bad:?}");
        }
    }
    assert_eq!(patterned, 4, "push_token, app_version, os_version, locale");
}

#[test]
fn setting_values_have_the_documented_shapes() {
    let settings = SPEC.schema("Settings");
    let day_names = SPEC
        .doc
        .pointer("/components/schemas/Settings/properties/available_training_days/items/enum")
        .expect("weekdays")
        .clone();
    let units = settings["properties"]["units"]["enum"].clone();
    let mut valid: Vec<(SettingKey, Value)> = vec![
        (SettingKey::GoalRaceDate, json!("2025-10-12")),
        (SettingKey::GoalRaceDate, Value::Null),
        (SettingKey::AvailableTrainingDays, day_names),
        (SettingKey::AvailableTrainingDays, json!([])),
        (
            SettingKey::Timezone,
            json!("America/Argentina/Buenos_Aires"),
        ),
        (SettingKey::NotificationsEnabled, json!(false)),
    ];
    for unit in as_array(&units) {
        valid.push((SettingKey::Units, unit.clone()));
    }
    let invalid = [
        (SettingKey::GoalRaceDate, json!("2025-13-01")),
        (SettingKey::GoalRaceDate, json!(20251012)),
        (SettingKey::AvailableTrainingDays, json!(["mon", "mon"])),
        (SettingKey::AvailableTrainingDays, json!(["monday"])),
        (SettingKey::AvailableTrainingDays, json!("mon")),
        (SettingKey::Units, json!("furlongs")),
        (SettingKey::Timezone, json!("")),
        (SettingKey::Timezone, json!("x".repeat(65))),
        (SettingKey::NotificationsEnabled, json!("yes")),
    ];
    let server_accepts = |key: SettingKey, value: &Value| {
        let change = json!({"key": key, "value": value, "changed_at": "2025-05-31T07:00:00Z"});
        validate_item::<SettingsChange>(change, Utc::now()).is_ok()
    };
    for (key, value) in &valid {
        let property = &settings["properties"][key.as_str()];
        assert!(server_accepts(*key, value), "{key:?} = {value}");
        assert!(SPEC.check(value, property).is_ok(), "{key:?} = {value}");
    }
    for (key, value) in &invalid {
        let property = &settings["properties"][key.as_str()];
        assert!(!server_accepts(*key, value), "{key:?} = {value}");
        assert!(SPEC.check(value, property).is_err(), "{key:?} = {value}");
    }
    let keys: BTreeSet<String> = all_setting_keys()
        .iter()
        .map(|k| k.as_str().to_owned())
        .collect();
    assert_eq!(SPEC.property_names("Settings"), keys);
}

// ------------------------------------------------------------------ what uploads store

/// Loads `entities` as the stored state an upload is resolved against.
fn loaded(plan_version: Option<u64>, entities: Vec<(EntityKind, &str, Value)>) -> Loaded {
    let mut loaded = Loaded {
        head: Head {
            seq: 1,
            plan_version,
            ..Head::default()
        },
        ..Loaded::default()
    };
    for (kind, id, data) in entities {
        let key = EntityKey::new(kind, id);
        loaded.entities.insert(
            key.clone(),
            StoredEntity {
                key,
                seq: 1,
                updated_at: at("2025-06-01T11:00:00Z"),
                data,
            },
        );
    }
    loaded
}

#[test]
fn downloaded_entities_are_stored_items_plus_seq() {
    // (record, item, the record's extra properties, the required ones among them)
    for (record, item, extra, required) in [
        (
            "ActivityRecord",
            "Activity",
            vec!["seq", "track", "merged_from", "distinct_from"],
            vec!["seq"],
        ),
        ("DailyMetricRecord", "DailyMetric", vec!["seq"], vec!["seq"]),
        (
            "PlanAdjustmentRecord",
            "PlanAdjustment",
            vec!["seq", "status", "applied_in_version"],
            vec!["seq", "status"],
        ),
        (
            "ConflictLogRecord",
            "ConflictRecord",
            vec!["seq"],
            vec!["seq"],
        ),
        (
            "ConflictEntry",
            "ConflictRecord",
            vec!["undoable"],
            vec!["undoable"],
        ),
    ] {
        let with = |mut set: BTreeSet<String>, extra: &[&str]| {
            set.extend(extra.iter().map(|s| s.to_string()));
            set
        };
        assert_eq!(
            SPEC.property_names(record),
            with(SPEC.property_names(item), &extra),
            "{record}: properties"
        );
        assert_eq!(
            SPEC.required(record),
            with(SPEC.required(item), &required),
            "{record}: required"
        );
        // Shared fields have the same constraints (descriptions and the
        // request side's `nullable` aside: stored records omit absent fields).
        for (key, property) in as_object(&SPEC.schema(item)["properties"]) {
            let strip = |p: &Value| {
                let mut p = p.clone();
                if let Some(map) = p.as_object_mut() {
                    map.retain(|k, _| {
                        !["description", "nullable", "pattern"].contains(&k.as_str())
                    });
                }
                p
            };
            let in_record = &SPEC.schema(record)["properties"][key];
            assert_eq!(strip(in_record), strip(property), "{record}.{key}");
        }
    }

    // Resolve real uploads (full and minimal items, one reschedule against
    // the current plan, one against an older one) and check what gets stored.
    let minimal = |value: Value, name: &str| {
        let mut value = value;
        let required = SPEC.required(name);
        as_object_mut(&mut value).retain(|k, _| required.contains(k));
        value
    };
    let request = UploadRequest {
        activities: vec![
            to_json(&activity()),
            minimal(
                to_json(&Activity {
                    id: Uuid::from_u128(0xA2),
                    started_at: at("2025-05-30T07:00:00Z"),
                    ..activity()
                }),
                "Activity",
            ),
        ],
        daily_metrics: vec![
            to_json(&daily_metric()),
            minimal(
                to_json(&DailyMetric {
                    date: day("2025-05-30"),
                    ..daily_metric()
                }),
                "DailyMetric",
            ),
        ],
        settings_changes: all_setting_keys()
            .into_iter()
            .zip([
                json!(null),
                json!(["sun"]),
                json!("imperial"),
                json!("UTC"),
                json!(true),
            ])
            .map(|(key, value)| {
                to_json(&SettingsChange {
                    key,
                    value,
                    ..settings_change()
                })
            })
            .collect(),
        plan_adjustments: vec![
            to_json(&plan_adjustment(Some(23))),
            to_json(&plan_adjustment(Some(22))),
            minimal(to_json(&plan_adjustment(None)), "PlanAdjustment"),
        ],
        ..upload_request()
    };
    let plan = plan_upload(&request, Utc::now());
    assert_eq!(plan.errors, vec![], "the samples are valid items");
    let device = DeviceId::parse("phone").expect("a valid id");
    // With a plan (reschedules apply or are superseded) and without one (they wait).
    let with_plan = loaded(
        Some(23),
        vec![(
            EntityKind::TrainingPlan,
            "current",
            to_json(&training_plan()),
        )],
    );
    let mut statuses = BTreeSet::new();
    let mut settings = serde_json::Map::new();
    let mut kinds = BTreeSet::new();
    for stored in [with_plan, loaded(Some(23), vec![])] {
        let (resolution, errors) = plan.resolve(&stored, upload_context(Utc::now(), &device));
        assert_eq!(errors, vec![], "every sample is stored");
        for (seq, write) in (1..).zip(&resolution.writes) {
            kinds.insert(write.key.kind);
            let mut data = write.data.clone();
            let schema = match write.key.kind {
                EntityKind::Activity => "ActivityRecord",
                EntityKind::DailyMetric => "DailyMetricRecord",
                EntityKind::PlanAdjustment => {
                    statuses.insert(data["status"].as_str().expect("a status").to_owned());
                    "PlanAdjustmentRecord"
                }
                EntityKind::Conflict => "ConflictLogRecord",
                EntityKind::TrainingPlan => {
                    // The moved workout is a PlannedWorkout of the new version.
                    let plan: TrainingPlan = serde_json::from_value(data.clone()).expect("a plan");
                    assert!(plan.version > 23, "a reschedule makes a new version");
                    for workout in as_array(&data["workouts"]) {
                        SPEC.check(workout, SPEC.schema("PlannedWorkout"))
                            .unwrap_or_else(|e| panic!("PlannedWorkout: {workout}: {e}"));
                    }
                    continue;
                }
                EntityKind::Setting => {
                    let stored: SettingValue = serde_json::from_value(data).expect("a setting");
                    settings.insert(stored.key.as_str().into(), stored.value);
                    continue;
                }
                other => panic!("uploads never write {other:?}"),
            };
            data["seq"] = json!(seq);
            SPEC.check(&data, SPEC.schema(schema))
                .unwrap_or_else(|e| panic!("{schema}: {data}: {e}"));
        }
    }
    assert!(
        kinds.contains(&EntityKind::Conflict),
        "a conflict was logged"
    );
    SPEC.check(&Value::Object(settings), SPEC.schema("Settings"))
        .expect("downloaded settings fit Settings");
    let pointer = "/components/schemas/PlanAdjustmentRecord/properties/status";
    assert_eq!(
        statuses,
        SPEC.known_values(pointer),
        "plan adjustment statuses"
    );
    SPEC.assert_described(pointer, &statuses);
}

#[test]
fn every_item_lands_in_exactly_one_list_and_conflict_rules_are_documented() {
    let now = Utc::now();
    let device = DeviceId::parse("phone").expect("a valid id");
    let stored_adjustment = {
        let mut value = to_json(&PlanAdjustment {
            new_date: day("2025-06-04"),
            ..plan_adjustment(Some(23))
        });
        value["status"] = json!("pending");
        value
    };
    let stored_setting = SettingValue {
        key: SettingKey::Units,
        value: json!("metric"),
        changed_at: at("2025-05-31T07:00:00Z"),
        received_at: now,
        device_id: "zz-tablet".into(),
    };
    let stored = loaded(
        Some(23),
        vec![
            (
                EntityKind::Activity,
                &activity().id.to_string(),
                to_json(&activity()),
            ),
            (
                EntityKind::DailyMetric,
                "2025-05-31",
                to_json(&DailyMetric {
                    submitted_at: at("2025-05-31T20:00:00Z"),
                    ..daily_metric()
                }),
            ),
            (EntityKind::Setting, "units", to_json(&stored_setting)),
            (
                EntityKind::PlanAdjustment,
                &plan_adjustment(Some(23)).id.to_string(),
                stored_adjustment,
            ),
            (
                EntityKind::TrainingPlan,
                "current",
                to_json(&training_plan()),
            ),
        ],
    );
    let mut bad_activity = to_json(&activity());
    bad_activity["duration_s"] = json!(0);
    let request = UploadRequest {
        activities: vec![
            to_json(&Activity {
                duration_s: 1800,
                ..activity()
            }),
            // The manual log of the stored wearable recording.
            to_json(&Activity {
                id: Uuid::from_u128(0xA3),
                source: ActivitySource::Manual,
                started_at: at("2025-05-31T07:02:00Z"),
                source_device: None,
                external_id: None,
                ..activity()
            }),
            bad_activity,
            json!("not an object"),
        ],
        daily_metrics: vec![to_json(&DailyMetric {
            sleep_hours: Some(9.0),
            ..daily_metric()
        })],
        settings_changes: vec![
            to_json(&SettingsChange {
                value: json!("imperial"),
                ..settings_change()
            }),
            json!({"key": "colour", "value": "red", "changed_at": "2025-05-31T07:00:00Z"}),
        ],
        plan_adjustments: vec![
            to_json(&plan_adjustment(Some(23))),
            to_json(&plan_adjustment(Some(22))),
            to_json(&plan_adjustment(None)),
        ],
        ..upload_request()
    };
    let plan = plan_upload(&request, now);
    let (resolution, processing_errors) = plan.resolve(&stored, upload_context(now, &device));
    let response = UploadResponse {
        accepted: resolution.accepted,
        conflicts: resolution.conflicts,
        processing_errors,
        server_timestamp: now,
    };
    assert_eq!(
        response.accepted.len() + response.conflicts.len() + response.processing_errors.len(),
        request.item_count(),
        "{response:?}"
    );
    SPEC.check(&to_json(&response), SPEC.schema("UploadResponse"))
        .expect("the response fits UploadResponse");
    let resolutions: BTreeSet<String> = response
        .conflicts
        .iter()
        .map(|c| c.resolution.clone())
        .collect();
    let pointer = "/components/schemas/ConflictItem/properties/resolution";
    assert_eq!(
        resolutions,
        SPEC.known_values(pointer),
        "conflict resolutions"
    );
    SPEC.assert_described(pointer, &resolutions);
    let rules: BTreeSet<String> = all_conflict_rules()
        .into_iter()
        .map(|r| r.as_str().to_owned())
        .collect();
    assert_eq!(resolutions, rules, "every rule is met above");
    // Every conflict names its log entry.
    assert!(response.conflicts.iter().all(|c| c.conflict_id.is_some()));
}

// ------------------------------------------------------------------ enums

/// Every variant of an enum; adding a variant breaks the build here, so the
/// lists cannot fall behind the code.
macro_rules! variants {
    ($ty:ident: $($variant:ident),+ $(,)?) => {{
        let _exhaustive = |value: $ty| match value {
            $($ty::$variant)|+ => (),
        };
        vec![$($ty::$variant),+]
    }};
}

fn all_setting_keys() -> Vec<SettingKey> {
    variants!(SettingKey: GoalRaceDate, AvailableTrainingDays, Units, Timezone, NotificationsEnabled)
}

fn assert_enum<T: Serialize>(name: &str, variants: &[T]) {
    let from_serde: BTreeSet<String> = variants.iter().map(to_json).map(string).collect();
    let in_spec: BTreeSet<String> = as_array(&SPEC.schema(name)["enum"])
        .iter()
        .cloned()
        .map(string)
        .collect();
    assert_eq!(in_spec, from_serde, "{name}");
    assert_eq!(
        from_serde.len(),
        variants.len(),
        "{name}: duplicate spellings"
    );
}

#[test]
fn enums_are_spelled_as_serde_spells_them() {
    assert_enum(
        "ActivityType",
        &variants!(ActivityType: Run, Ride, Swim, Walk, Strength, Other),
    );
    assert_enum(
        "ActivitySource",
        &variants!(ActivitySource: Manual, Wearable),
    );
    assert_enum("SettingKey", &all_setting_keys());
    assert_enum("Network", &variants!(Network: Wifi, Cellular, Unknown));
    assert_enum(
        "CompleteStatus",
        &variants!(CompleteStatus: Success, Failed),
    );
    assert_enum(
        "ItemType",
        &variants!(ItemType: Activity, DailyMetric, SettingsChange, PlanAdjustment, TrainingPlan, CalculatedMetrics, Alert, AlertWithdrawal, CoachNote),
    );
    SPEC.assert_described(
        "/components/schemas/ItemType",
        &as_array(&SPEC.schema("ItemType")["enum"])
            .iter()
            .cloned()
            .map(string)
            .collect(),
    );
    assert_enum("EntityKind", &EntityKind::ALL);
    let kinds = variants!(EntityKind: Activity, DailyMetric, Setting, PlanAdjustment, TrainingPlan, CalculatedMetrics, Alert, Conflict, Track);
    assert_eq!(kinds, EntityKind::ALL, "EntityKind::ALL lists every kind");
    let priorities: serde_json::Map<String, Value> = kinds
        .iter()
        .map(|k| (k.as_str().to_owned(), to_json(&k.priority())))
        .collect();
    assert_eq!(
        SPEC.schema("EntityKind")["x-priorities"],
        Value::Object(priorities),
        "EntityKind priorities"
    );
    let levels: BTreeSet<String> = variants!(Priority: Low, Medium, High)
        .iter()
        .map(to_json)
        .map(string)
        .collect();
    SPEC.assert_described("/components/schemas/EntityKind", &levels);
    assert_enum("ConflictRule", &all_conflict_rules());
    for rule in all_conflict_rules() {
        assert_eq!(to_json(&rule), json!(rule.as_str()), "{rule:?}");
    }
    assert_enum(
        "ConflictStatus",
        &variants!(ConflictStatus: Resolved, Undone),
    );
    assert_enum(
        "TombstoneReason",
        &variants!(TombstoneReason: MergedDuplicate, Withdrawn),
    );
    assert_enum(
        "WorkoutType",
        &variants!(WorkoutType: Easy, Recovery, Tempo, Interval, LongRun, Race, Strength, CrossTraining, Rest),
    );
    assert_enum(
        "ReferenceKind",
        &variants!(ReferenceKind: Exercise, ZoneFormula, Article),
    );
    assert_enum("Platform", &variants!(Platform: Ios, Android));
    assert_enum(
        "RevokeReason",
        &variants!(RevokeReason: Logout, RefreshTokenReuse),
    );
    for name in ["Platform", "RevokeReason"] {
        let values = as_array(&SPEC.schema(name)["enum"])
            .iter()
            .cloned()
            .map(string)
            .collect();
        SPEC.assert_described(&format!("/components/schemas/{name}"), &values);
    }
    // A bare `$ref` cannot be nullable in OpenAPI 3.0, so nullable enum
    // properties spell their enum out: the named enum's values plus null.
    for (schema, property, named) in [
        ("DeviceView", "platform", "Platform"),
        ("DeviceView", "network", "Network"),
        ("DeviceView", "revoked_reason", "RevokeReason"),
        ("RegisterDeviceRequest", "network", "Network"),
    ] {
        let property = &SPEC.schema(schema)["properties"][property];
        assert_eq!(property["nullable"], true, "{schema}.{property}");
        let mut values = as_array(&property["enum"]).clone();
        assert!(
            values.contains(&Value::Null),
            "{schema}: null is in the enum"
        );
        values.retain(|v| !v.is_null());
        assert_eq!(
            Value::Array(values),
            SPEC.schema(named)["enum"],
            "{schema}: {named}"
        );
    }
    for name in ["ConflictRule", "TombstoneReason"] {
        let values = as_array(&SPEC.schema(name)["enum"])
            .iter()
            .cloned()
            .map(string)
            .collect();
        SPEC.assert_described(&format!("/components/schemas/{name}"), &values);
    }
    assert_enum("FieldErrorCode", &all_field_error_codes());
    for code in all_field_error_codes() {
        // A field error code is an error code of the same wire name.
        assert_eq!(to_json(&code), to_json(&ErrorCode::from(code)), "{code:?}");
    }

    let states: BTreeSet<String> = variants!(SessionState: Open, Success, Failed)
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect();
    let in_spec = &SPEC.schema("SessionStatus")["properties"]["status"]["enum"];
    let in_spec: BTreeSet<String> = as_array(in_spec).iter().cloned().map(string).collect();
    assert_eq!(in_spec, states);

    let network = as_array(&SPEC.doc["paths"]["/sync/download"]["get"]["parameters"])
        .iter()
        .find(|p| p["name"] == "network")
        .expect("a network parameter");
    assert_eq!(schema_ref(network), "Network");
}

fn all_conflict_rules() -> Vec<ConflictRule> {
    variants!(ConflictRule: ObjectiveFieldsKept, DuplicateActivityMerged, SupersededByAdaptivePlan, SupersededByNewerWrite, SupersededByNewerCheckIn)
}

fn all_field_error_codes() -> Vec<FieldErrorCode> {
    variants!(FieldErrorCode: MissingField, UnknownField, InvalidType, InvalidValue, InvalidFormat, OutOfRange, TooLong)
}

#[test]
fn change_labels_are_documented() {
    let labels: BTreeSet<String> = EntityKind::ALL
        .into_iter()
        .map(|kind| match kind {
            EntityKind::TrainingPlan => {
                assert_eq!(kind.update_label(Some(23)), "plan_v23");
                "plan_v<N>".to_owned()
            }
            _ => kind.update_label(Some(23)),
        })
        .collect();
    let pointer = "/components/schemas/CheckResponse/properties/server_changes_available";
    assert_eq!(labels, SPEC.known_values(pointer));
    SPEC.assert_described(pointer, &labels);
}

// ------------------------------------------------------------------ errors, headers, limits

#[test]
fn error_responses_are_what_error_reply_sends() {
    let store = |e: StoreError| ApiError::from(e);
    let mut cases: Vec<(ApiError, Option<&str>)> = all_field_error_codes()
        .into_iter()
        .map(|code| {
            let error = ApiError::BadRequest(FieldError::new("sync_id", code, "bad"));
            (error, Some("BadRequest"))
        })
        .collect();
    cases.extend([
        (ApiError::from(AuthError::Missing), Some("Unauthorized")),
        (ApiError::from(AuthError::NotBearer), Some("Unauthorized")),
        (
            ApiError::from(AuthError::Invalid("x".into())),
            Some("Unauthorized"),
        ),
        (ApiError::from(AuthError::Expired), Some("Unauthorized")),
        (
            ApiError::from(AuthError::KeysUnavailable("x".into())),
            Some("ServiceUnavailable"),
        ),
        (
            ApiError::Forbidden {
                field: "user_id",
                message: "x".into(),
            },
            Some("Forbidden"),
        ),
        (ApiError::unknown_session(), Some("NotFound")),
        (
            ApiError::NoRoute {
                method: "GET".into(),
                path: "/x".into(),
                allow: vec![],
            },
            None,
        ),
        (
            ApiError::NoRoute {
                method: "GET".into(),
                path: "/sync/check".into(),
                allow: vec![http::Method::POST],
            },
            None,
        ),
        // The handlers' own codes; the integration tests pin them on real requests.
        (
            ApiError::Conflict {
                code: ErrorCode::RequestInProgress,
                message: "x".into(),
            },
            Some("Conflict"),
        ),
        (
            ApiError::Conflict {
                code: ErrorCode::SyncSessionClosed,
                message: "x".into(),
            },
            Some("Conflict"),
        ),
        (
            ApiError::NotFound {
                code: ErrorCode::ConflictNotFound,
                message: "x".into(),
                field: Some("conflict_id"),
            },
            Some("ConflictNotFound"),
        ),
        (
            ApiError::Conflict {
                code: ErrorCode::ResolutionOutdated,
                message: "x".into(),
            },
            Some("UndoRefused"),
        ),
        (
            ApiError::Conflict {
                code: ErrorCode::UndoNotApplicable,
                message: "x".into(),
            },
            Some("UndoRefused"),
        ),
        (
            ApiError::Gone {
                code: ErrorCode::UndoExpired,
                message: "x".into(),
                field: Some("conflict_id"),
            },
            Some("UndoExpired"),
        ),
        (
            ApiError::NotFound {
                code: ErrorCode::TrackNotFound,
                message: "x".into(),
                field: Some("activity_id"),
            },
            Some("TrackNotFound"),
        ),
        (
            ApiError::NotFound {
                code: ErrorCode::ReferenceNotFound,
                message: "x".into(),
                field: Some("version"),
            },
            Some("ReferenceNotFound"),
        ),
        (
            ApiError::PayloadTooLarge {
                code: ErrorCode::BodyTooLarge,
                message: "x".into(),
                field: None,
            },
            Some("PayloadTooLarge"),
        ),
        (
            ApiError::PayloadTooLarge {
                code: ErrorCode::BatchTooLarge,
                message: "x".into(),
                field: None,
            },
            Some("PayloadTooLarge"),
        ),
        (
            ApiError::UnsupportedMediaType("x".into()),
            Some("UnsupportedMediaType"),
        ),
        (
            ApiError::Unprocessable {
                code: ErrorCode::IdempotencyKeyReused,
                message: "x".into(),
                field: Some("sync_request_id"),
            },
            Some("Unprocessable"),
        ),
        (
            store(StoreError::Unavailable("x".into())),
            Some("ServiceUnavailable"),
        ),
        (store(StoreError::Contention), Some("ServiceUnavailable")),
        (store(StoreError::Other("x".into())), Some("InternalError")),
        // Devices and tokens.
        (
            ApiError::from(AuthError::DeviceRevoked),
            Some("Unauthorized"),
        ),
        (
            ApiError::from(AuthError::DeviceRevoked),
            Some("RefreshRefused"),
        ),
        (
            ApiError::from(AuthError::RefreshInvalid),
            Some("RefreshRefused"),
        ),
        (
            ApiError::from(AuthError::RefreshExpired),
            Some("RefreshRefused"),
        ),
        (
            ApiError::from(AuthError::RefreshReused),
            Some("RefreshRefused"),
        ),
        (
            ApiError::Forbidden {
                field: "device_id",
                message: "x".into(),
            },
            Some("Forbidden"),
        ),
        (
            ApiError::NotFound {
                code: ErrorCode::DeviceNotFound,
                message: "x".into(),
                field: Some("device_id"),
            },
            Some("DeviceNotFound"),
        ),
        (
            ApiError::Conflict {
                code: ErrorCode::DeviceBusy,
                message: "x".into(),
            },
            Some("DeviceBusy"),
        ),
        (
            ApiError::Unprocessable {
                code: ErrorCode::PushTokenRejected,
                message: "x".into(),
                field: Some("push_token"),
            },
            Some("PushTokenRejected"),
        ),
        (
            ApiError::PushUnavailable("x".into()),
            Some("ServiceUnavailable"),
        ),
    ]);
    let known = SPEC.known_values("/components/schemas/ErrorDetail/properties/code");
    let mut seen = BTreeSet::new();
    for (error, component) in cases {
        let reply = error_reply(&error, Utc::now());
        let body: Value =
            serde_json::from_str(reply.json_text().expect("a JSON reply")).expect("JSON");
        SPEC.check(&body, SPEC.schema("ErrorBody"))
            .unwrap_or_else(|e| panic!("{body}: {e}"));
        serde_json::from_value::<ErrorBody>(body.clone()).expect("an ErrorBody");
        let code = body["error"]["code"].as_str().expect("a code").to_owned();
        assert!(
            known.contains(&code),
            "{code} is not a known ErrorDetail.code"
        );
        seen.insert(code.clone());
        let Some(component) = component else { continue };
        let pointer = format!("/components/responses/{component}");
        SPEC.assert_described(&pointer, &BTreeSet::from([code.clone()]));
        let declared: BTreeSet<String> = as_object(&SPEC.pointer(&pointer)["headers"])
            .keys()
            .map(|h| h.to_lowercase())
            .filter(|h| h != "x-dynamodb-requests" && h != "content-encoding")
            .collect();
        let sent: BTreeSet<String> = reply.headers.iter().map(|(h, _)| h.to_string()).collect();
        assert_eq!(declared, sent, "{code}: headers");
        // Every operation lists the component under the status it is sent with.
        for item in as_object(&SPEC.doc["paths"]).values() {
            for op in as_object(item).values() {
                for (status, response) in as_object(&op["responses"]) {
                    if response["$ref"] == format!("#{pointer}") {
                        assert_eq!(status, reply.status.as_str(), "{component}");
                    }
                }
            }
        }
    }
    assert_eq!(seen, known, "ErrorDetail.code lists exactly the codes sent");
}

/// The wire name of every `ErrorCode` variant, read from its definition (the
/// one list of codes) and checked to round-trip through serde.
fn error_codes() -> BTreeSet<String> {
    let source = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/protocol/src/wire/error.rs"
    ))
    .expect("wire/error.rs");
    let body = source
        .split("pub enum ErrorCode {")
        .nth(1)
        .and_then(|rest| rest.split("\n}").next())
        .expect("ErrorCode is defined");
    body.lines()
        .map(str::trim)
        .filter(|line| !line.starts_with("//") && !line.starts_with('#'))
        .filter_map(|line| line.strip_suffix(','))
        .map(|variant| {
            let mut snake = String::new();
            for (i, c) in variant.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    snake.push('_');
                }
                snake.push(c.to_ascii_lowercase());
            }
            let code: ErrorCode = serde_json::from_value(json!(snake)).expect("a code");
            assert_eq!(to_json(&code), json!(snake), "{variant}");
            snake
        })
        .filter(|code| code != "unknown")
        .collect()
}

#[test]
fn every_error_code_the_code_can_send_is_documented() {
    let in_code = error_codes();
    let http = SPEC.known_values("/components/schemas/ErrorDetail/properties/code");
    let ingest_only: BTreeSet<String> =
        as_array(&SPEC.doc["info"]["x-ingest"]["ingest_only_error_codes"])
            .iter()
            .cloned()
            .map(string)
            .collect();
    assert!(
        http.is_disjoint(&ingest_only),
        "ingest-only codes are not HTTP codes"
    );
    let documented: BTreeSet<String> = http.union(&ingest_only).cloned().collect();
    let undocumented: Vec<&String> = in_code.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "undocumented error codes: {undocumented:?}"
    );
    let ingest_source = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/server/src/handlers/ingest.rs"
    ))
    .expect("handlers/ingest.rs");
    let text = SPEC.doc["info"]["description"].as_str().unwrap_or("");
    for code in &ingest_only {
        let variant: String = code
            .split('_')
            .map(|w| w[..1].to_uppercase() + &w[1..])
            .collect();
        assert!(
            ingest_source.contains(&format!("ErrorCode::{variant}")),
            "{code} is an ingest answer"
        );
        assert!(
            text.contains(&format!("`{code}`")),
            "info.description names {code}"
        );
    }
}

#[test]
fn the_ingest_outline_is_the_ingest_code() {
    let x = &SPEC.doc["info"]["x-ingest"];
    assert_eq!(x["max_items"], json!(limits::MAX_INGEST_ITEMS));
    let user_data = IngestEvent::UserData(IngestRequest {
        user_id: "user-1".into(),
        ingest_id: Uuid::from_u128(9),
        training_plan: Some(to_json(&training_plan())),
        calculated_metrics: None,
        alerts: vec![],
        withdrawn_alerts: vec![],
        coach_notes: vec![],
        activities: vec![],
    });
    let _exhaustive = |event: &IngestEvent| match event {
        IngestEvent::UserData(_) | IngestEvent::ReferenceData(_) => (),
    };
    let types: Vec<Value> = [user_data, IngestEvent::ReferenceData(reference_snapshot())]
        .iter()
        .map(|event| to_json(event)["type"].clone())
        .collect();
    assert_eq!(x["event_types"], Value::Array(types.clone()));
    // The prose names every event type and every list of a user_data event.
    let text = SPEC.doc["info"]["description"].as_str().unwrap_or("");
    let request = to_json(&IngestRequest {
        user_id: "u".into(),
        ingest_id: Uuid::from_u128(9),
        training_plan: None,
        calculated_metrics: None,
        alerts: vec![],
        withdrawn_alerts: vec![],
        coach_notes: vec![],
        activities: vec![],
    });
    let fields: Vec<String> = keys(&request).into_iter().collect();
    for word in types.into_iter().map(string).chain(fields) {
        assert!(
            text.contains(&format!("`{word}`")),
            "info.description names `{word}`"
        );
    }
    assert!(text.contains(&format!("at most {} items", limits::MAX_INGEST_ITEMS)));
}

#[test]
fn every_response_has_the_documented_headers() {
    let reply = error_reply(&ApiError::unknown_session(), Utc::now());
    let small = into_response(reply.clone(), true, Some(3));
    assert_eq!(small.headers()["x-dynamodb-requests"], "3");
    assert_eq!(small.headers()["content-type"], "application/json");
    assert_eq!(small.headers()["cache-control"], "no-store");
    assert!(small.headers().get("content-encoding").is_none());
    let mut large = reply;
    large.body = sync_core::http::Reply::raw(
        serde_json::to_string(&json!({"padding": "x".repeat(512)})).expect("JSON"),
    )
    .body;
    let large = into_response(large, true, None);
    assert_eq!(large.headers()["content-encoding"], "gzip");
    assert!(matches!(large.body(), Body::Binary(_)));

    // Request bodies: the encodings the description names are the decoded ones.
    let encodings = &SPEC.doc["info"]["x-request-content-encodings"];
    for encoding in as_array(encodings) {
        let encoding = encoding.as_str().expect("a string");
        let body = if encoding.contains("gzip") {
            sync_core::compression::gzip(b"{}")
        } else {
            b"{}".to_vec()
        };
        assert_eq!(
            decode_body(&body, Some(encoding), 100).as_deref(),
            Ok(&b"{}"[..])
        );
    }
    assert!(decode_body(b"{}", Some("br"), 100).is_err());
}

#[test]
fn limits_are_the_code_limits() {
    let x = &SPEC.doc["info"]["x-limits"];
    let expected = json!({
        "max_body_bytes": limits::MAX_BODY_BYTES,
        "max_batch_items": limits::MAX_BATCH_ITEMS,
        "max_ingest_items": limits::MAX_INGEST_ITEMS,
        "default_download_limit": limits::DEFAULT_DOWNLOAD_LIMIT,
        "max_download_limit": limits::MAX_DOWNLOAD_LIMIT,
        "max_notes_chars": limits::MAX_NOTES_CHARS,
        "max_id_chars": limits::MAX_ID_CHARS,
        "session_ttl_seconds": limits::SESSION_TTL_SECS,
        "idempotency_ttl_seconds": limits::IDEMPOTENCY_TTL_SECS,
        "idempotency_in_progress_seconds": limits::IDEMPOTENCY_IN_PROGRESS_SECS,
        "max_client_clock_skew_seconds": limits::MAX_CLIENT_CLOCK_SKEW_SECS,
        "status_recent_sessions": limits::STATUS_RECENT_SESSIONS,
        "undo_window_hours": UNDO_WINDOW_HOURS,
        "inactive_device_days": INACTIVE_DEVICE_DAYS,
        "max_push_token_chars": limits::MAX_PUSH_TOKEN_CHARS,
        "max_version_chars": limits::MAX_VERSION_CHARS,
        "max_locale_chars": limits::MAX_LOCALE_CHARS,
        "access_token_ttl_seconds": ACCESS_TOKEN_TTL_HOURS * 3600,
        "refresh_token_idle_days": REFRESH_IDLE_DAYS,
        "revocation_cache_seconds": REVOCATION_CACHE_SECS,
    });
    assert_eq!(*x, expected);

    // The prose quotes the same numbers.
    let text = SPEC.doc["info"]["description"]
        .as_str()
        .expect("a description");
    for phrase in [
        format!("{} items", limits::MAX_BATCH_ITEMS),
        format!("{} KiB", limits::MAX_BODY_BYTES / 1024),
        format!("{} hours", limits::SESSION_TTL_SECS / 3600),
        format!("{} days", limits::IDEMPOTENCY_TTL_SECS / (24 * 3600)),
        format!("{} seconds", limits::IDEMPOTENCY_IN_PROGRESS_SECS),
        format!("{} hours with", UNDO_WINDOW_HOURS),
        format!("silent for {} days", INACTIVE_DEVICE_DAYS),
        format!("Access tokens live {} hours", ACCESS_TOKEN_TTL_HOURS),
        format!("unused for {} days expires", REFRESH_IDLE_DAYS),
        format!("within {} seconds", REVOCATION_CACHE_SECS),
    ] {
        assert!(
            text.contains(&phrase),
            "info.description does not say {phrase:?}"
        );
    }

    let limit = as_array(&SPEC.doc["paths"]["/sync/download"]["get"]["parameters"])
        .iter()
        .find(|p| p["name"] == "limit")
        .expect("a limit parameter");
    assert_eq!(
        limit["schema"],
        json!({"type": "integer", "minimum": 1, "maximum": limits::MAX_DOWNLOAD_LIMIT,
               "default": limits::DEFAULT_DOWNLOAD_LIMIT})
    );
    // `/sync/conflicts` pages with the same `limit` parameter.
    let conflicts_limit = as_array(&SPEC.doc["paths"]["/sync/conflicts"]["get"]["parameters"])
        .iter()
        .find(|p| p["name"] == "limit")
        .expect("a limit parameter");
    assert_eq!(conflicts_limit["schema"], limit["schema"]);
    for list in [
        "activities",
        "daily_metrics",
        "settings_changes",
        "plan_adjustments",
    ] {
        let max = &SPEC.schema("UploadRequest")["properties"][list]["maxItems"];
        assert_eq!(*max, json!(limits::MAX_BATCH_ITEMS), "{list}");
    }
    for (schema, field, max) in [
        ("Activity", "notes", limits::MAX_NOTES_CHARS),
        ("CompleteRequest", "error", limits::MAX_NOTES_CHARS),
        ("PlanAdjustment", "workout_id", limits::MAX_ID_CHARS),
        (
            "RegisterDeviceRequest",
            "push_token",
            limits::MAX_PUSH_TOKEN_CHARS,
        ),
        (
            "RegisterDeviceRequest",
            "app_version",
            limits::MAX_VERSION_CHARS,
        ),
        (
            "RegisterDeviceRequest",
            "os_version",
            limits::MAX_VERSION_CHARS,
        ),
        ("RegisterDeviceRequest", "locale", limits::MAX_LOCALE_CHARS),
    ] {
        let found = &SPEC.schema(schema)["properties"][field]["maxLength"];
        assert_eq!(*found, json!(max), "{schema}.{field}");
    }
}

// ------------------------------------------------------------------ examples

/// Deserializes an example into the Rust type its schema describes.
fn parses_as(schema: &str, example: &Value) -> Result<(), String> {
    fn parse<T: DeserializeOwned>(v: &Value) -> Result<(), String> {
        serde_json::from_value::<T>(v.clone())
            .map(drop)
            .map_err(|e| e.to_string())
    }
    match schema {
        "CheckRequest" => parse::<CheckRequest>(example),
        "UploadRequest" => {
            let request: UploadRequest =
                serde_json::from_value(example.clone()).map_err(|e| e.to_string())?;
            let plan = plan_upload(&request, Utc::now());
            match plan.errors.as_slice() {
                [] => Ok(()),
                errors => Err(format!("invalid items: {errors:?}")),
            }
        }
        "CompleteRequest" => parse::<CompleteRequest>(example),
        "RegisterDeviceRequest" => {
            validate_item::<RegisterDeviceRequest>(example.clone(), Utc::now())
                .map(drop)
                .map_err(|e| e.message)
        }
        "RefreshRequest" => {
            let request: RefreshRequest =
                serde_json::from_value(example.clone()).map_err(|e| e.to_string())?;
            RefreshToken::parse(&request.refresh_token)
                .map(drop)
                .map_err(|e| e.to_string())
        }
        "DeviceView" => parse::<DeviceView>(example),
        "DevicesResponse" => parse::<DevicesResponse>(example),
        "TokenPair" => {
            let pair: TokenPair =
                serde_json::from_value(example.clone()).map_err(|e| e.to_string())?;
            RefreshToken::parse(&pair.refresh_token)
                .map(drop)
                .map_err(|e| e.to_string())
        }
        "CheckResponse" => parse::<CheckResponse>(example),
        "UploadResponse" => parse::<UploadResponse>(example),
        "DownloadResponse" => parse::<DownloadResponse>(example),
        "CompleteResponse" => parse::<CompleteResponse>(example),
        "StatusResponse" => parse::<StatusResponse>(example),
        "ErrorBody" => parse::<ErrorBody>(example),
        "ConflictsResponse" => parse::<ConflictsResponse>(example),
        "UndoResponse" => parse::<UndoResponse>(example),
        "ReferenceCurrent" => parse::<ReferenceCurrent>(example),
        "ReferenceSnapshot" => {
            let snapshot: ReferenceSnapshot =
                serde_json::from_value(example.clone()).map_err(|e| e.to_string())?;
            validate_item::<ReferenceSnapshot>(to_json(&snapshot), Utc::now())
                .map(drop)
                .map_err(|e| e.message)
        }
        _ => Ok(()),
    }
}

#[test]
fn examples_fit_their_schemas_and_types() {
    fn walk(node: &Value, at: &str, found: &mut usize) {
        if let (Some(example), Some(schema)) = (node.get("example"), node.get("schema")) {
            *found += 1;
            // One schema, or `oneOf` several: the example fits (and parses as) one.
            let candidates: Vec<&Value> = match schema.get("oneOf") {
                Some(list) => as_array(list).iter().collect(),
                None => vec![schema],
            };
            let fits: Vec<String> = candidates
                .iter()
                .map(|candidate| {
                    SPEC.check(example, candidate)?;
                    match candidate["$ref"].as_str() {
                        Some(name) => {
                            let name = name.rsplit('/').next().unwrap_or(name);
                            parses_as(name, example).map_err(|e| format!("no {name}: {e}"))
                        }
                        None => Ok(()),
                    }
                })
                .filter_map(Result::err)
                .collect();
            assert!(
                fits.len() < candidates.len(),
                "the example at {at}: {}",
                fits.join("; ")
            );
        }
        match node {
            Value::Object(map) => map
                .iter()
                .for_each(|(k, v)| walk(v, &format!("{at}/{k}"), found)),
            Value::Array(list) => list
                .iter()
                .enumerate()
                .for_each(|(i, v)| walk(v, &format!("{at}/{i}"), found)),
            _ => {}
        }
    }
    let mut found = 0;
    walk(&SPEC.doc, "", &mut found);
    assert!(found >= 30, "only {found} examples found");
}

#[test]
fn no_operation_declares_how_its_body_is_encoded() {
    // `Content-Encoding` (and `Content-Type`) say how a body is sent; as
    // parameters, a fuzzer sends `Content-Encoding: gzip` with a plain body
    // and expects it to be accepted.
    let mut operations = 0;
    for (path, item) in as_object(&SPEC.doc["paths"]) {
        for (method, op) in as_object(item) {
            operations += 1;
            let parameters = op.get("parameters").map(as_array).into_iter().flatten();
            for parameter in parameters.map(|p| SPEC.resolve(p)) {
                let name = parameter["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_ascii_lowercase();
                assert!(
                    !(parameter["in"] == "header"
                        && (name == "content-encoding" || name == "content-type")),
                    "{method} {path} declares the header {name} as a parameter"
                );
            }
        }
    }
    assert_eq!(operations, Endpoint::ALL.len());
    assert!(
        SPEC.doc["components"]["parameters"]
            .get("ContentEncoding")
            .is_none()
    );
}

/// Every string under a key ending in `cursor` in the examples in `node`,
/// with where it is.
fn example_cursors<'a>(
    node: &'a Value,
    at: String,
    in_example: bool,
    found: &mut Vec<(String, &'a str)>,
) {
    match node {
        Value::Object(map) => {
            for (key, value) in map {
                let inside = in_example || key == "example";
                match value.as_str() {
                    Some(text) if inside && key.ends_with("cursor") => {
                        found.push((format!("{at}/{key}"), text));
                    }
                    _ => example_cursors(value, format!("{at}/{key}"), inside, found),
                }
            }
        }
        Value::Array(list) => {
            for (i, value) in list.iter().enumerate() {
                example_cursors(value, format!("{at}/{i}"), in_example, found);
            }
        }
        _ => {}
    }
}

#[test]
fn examples_are_values_the_server_accepts_from_the_dev_token() {
    use trainsync_infra::local_config::{DEV_DEVICE, DEV_USER};
    use trainsync_protocol::cursor::{Cursor, Since};

    // The cursors of every example are cursors the server issues to the
    // dev user, so a client (or a fuzzer) sending them gets no 400.
    let mut cursors = Vec::new();
    example_cursors(&SPEC.doc, String::new(), false, &mut cursors);
    assert!(cursors.len() >= 7, "only {} example cursors", cursors.len());
    for (at, cursor) in &cursors {
        assert!(
            Cursor::decode(cursor, DEV_USER).is_ok(),
            "{at}: {cursor} is not a cursor the server issues to {DEV_USER}"
        );
    }
    let since = as_array(&SPEC.doc["paths"]["/sync/download"]["get"]["parameters"])
        .iter()
        .find(|p| p["name"] == "since")
        .expect("a since parameter");
    let since = since["example"].as_str().expect("an example since");
    assert!(
        Since::parse(since, DEV_USER).is_ok(),
        "since example {since}"
    );

    // The ids a request checks against the token are the dev token's.
    let check = &SPEC.doc["paths"]["/sync/check"]["post"]["requestBody"]["content"]["application/json"]
        ["example"];
    assert_eq!(check["user_id"], DEV_USER);
    assert_eq!(check["device_id"], DEV_DEVICE);
    let register = as_array(&SPEC.doc["paths"]["/devices/{device_id}"]["put"]["parameters"])
        .iter()
        .map(|p| SPEC.resolve(p))
        .find(|p| p["name"] == "device_id")
        .expect("a device_id parameter");
    assert_eq!(register["example"], DEV_DEVICE);
}

/// The `values` of `[dictionaries.<name>]` in the contract run's Schemathesis
/// configuration (one-line string arrays, as written there).
fn contract_dictionary(name: &str) -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/schemathesis.toml");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let header = format!("[dictionaries.{name}]");
    let line = text
        .lines()
        .skip_while(|line| line.trim() != header)
        .find(|line| line.trim_start().starts_with("values"))
        .unwrap_or_else(|| panic!("{path}: no values for {header}"));
    line.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_contract_runs_cursors_are_issued_ones() {
    use trainsync_infra::local_config::{DEV_DEVICE, DEV_USER};
    use trainsync_protocol::cursor::{Cursor, Since};

    let cursors = contract_dictionary("cursors");
    assert!(!cursors.is_empty());
    for cursor in &cursors {
        assert!(
            Cursor::decode(cursor, DEV_USER).is_ok(),
            "{cursor} is not a cursor the server issues to {DEV_USER}"
        );
    }
    let since = contract_dictionary("since");
    assert!(cursors.iter().all(|c| since.contains(c)));
    for value in &since {
        assert!(Since::parse(value, DEV_USER).is_ok(), "since {value}");
    }
    assert_eq!(contract_dictionary("user"), [DEV_USER]);
    assert_eq!(contract_dictionary("device"), [DEV_DEVICE]);
}

// ------------------------------------------------------------------ the checker

/// The parsed spec and a small schema checker for it.
struct Spec {
    doc: Value,
}

impl Spec {
    fn pointer(&self, pointer: &str) -> &Value {
        self.doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("the spec has nothing at {pointer}"))
    }

    /// `components/schemas/<name>`.
    fn schema(&self, name: &str) -> &Value {
        self.pointer(&format!("/components/schemas/{name}"))
    }

    /// Follows local `$ref`s.
    fn resolve<'a>(&'a self, mut node: &'a Value) -> &'a Value {
        while let Some(target) = node.get("$ref").and_then(Value::as_str) {
            let pointer = target
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("only local $refs are used: {target}"));
            node = self.pointer(pointer);
        }
        node
    }

    fn property_names(&self, name: &str) -> BTreeSet<String> {
        as_object(&self.schema(name)["properties"])
            .keys()
            .cloned()
            .collect()
    }

    fn required(&self, name: &str) -> BTreeSet<String> {
        as_array(&self.schema(name)["required"])
            .iter()
            .map(|v| v.as_str().expect("a name").to_owned())
            .collect()
    }

    /// The `x-known-values` of an open set of strings.
    fn known_values(&self, pointer: &str) -> BTreeSet<String> {
        as_array(&self.pointer(pointer)["x-known-values"])
            .iter()
            .map(|v| v.as_str().expect("a string").to_owned())
            .collect()
    }

    /// Each value is explained (in backticks) in the description at `pointer`.
    fn assert_described(&self, pointer: &str, values: &BTreeSet<String>) {
        let text = self.pointer(pointer)["description"].as_str().unwrap_or("");
        for value in values {
            assert!(
                text.contains(&format!("`{value}`")),
                "the description at {pointer} does not explain `{value}`"
            );
        }
    }

    fn accepts_null(&self, schema: &Value) -> bool {
        self.check(&Value::Null, schema).is_ok()
    }

    /// Checks `value` against `schema`; the error lists every violation.
    fn check(&self, value: &Value, schema: &Value) -> Result<(), String> {
        let mut errors = Vec::new();
        self.collect(value, schema, "$", &mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    fn collect(&self, value: &Value, schema: &Value, at: &str, errors: &mut Vec<String>) {
        let schema = self.resolve(schema);
        let Some(ty) = schema.get("type").and_then(Value::as_str) else {
            return; // An untyped schema takes any value, null included.
        };
        if value.is_null() {
            if schema["nullable"] != true {
                errors.push(format!("{at}: must not be null"));
            }
            return;
        }
        let type_ok = match ty {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            other => panic!("{at}: the checker does not know type {other}"),
        };
        if !type_ok {
            errors.push(format!("{at}: {value} is not of type {ty}"));
            return;
        }
        let allowed = schema.get("enum").and_then(Value::as_array);
        if allowed.is_some_and(|allowed| !allowed.contains(value)) {
            errors.push(format!("{at}: {value} is not one of {}", schema["enum"]));
        }
        // (lower bound, upper bound, measured): a number's value, a string's
        // length in characters, an array's length.
        let mut measures = Vec::new();
        if let Some(n) = value.as_f64() {
            measures.push(("minimum", "maximum", n));
        }
        if let Some(text) = value.as_str() {
            measures.push(("minLength", "maxLength", text.chars().count() as f64));
            let format_ok = match schema.get("format").and_then(Value::as_str) {
                Some("uuid") => Uuid::parse_str(text).is_ok(),
                Some("date-time") => DateTime::parse_from_rfc3339(text).is_ok(),
                Some("date") => NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok(),
                _ => true,
            };
            if !format_ok {
                errors.push(format!("{at}: {value} is not a {}", schema["format"]));
            }
        }
        if let Some(items) = value.as_array() {
            measures.push(("minItems", "maxItems", items.len() as f64));
            let unique = items
                .iter()
                .enumerate()
                .all(|(i, v)| !items[..i].contains(v));
            if schema["uniqueItems"] == true && !unique {
                errors.push(format!("{at}: items are not unique"));
            }
            for (i, item) in items.iter().enumerate() {
                self.collect(item, &schema["items"], &format!("{at}[{i}]"), errors);
            }
        }
        for (min, max, measured) in measures {
            let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
            if bound(min).is_some_and(|limit| measured < limit) {
                errors.push(format!("{at}: {value} is below its {min} {}", schema[min]));
            }
            if bound(max).is_some_and(|limit| measured > limit) {
                errors.push(format!("{at}: {value} is above its {max} {}", schema[max]));
            }
        }
        if let Some(map) = value.as_object() {
            for name in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = name.as_str().expect("a name");
                if !map.contains_key(name) {
                    errors.push(format!("{at}: lacks required {name}"));
                }
            }
            for (key, item) in map {
                let at = format!("{at}.{key}");
                match (
                    schema["properties"].get(key),
                    &schema["additionalProperties"],
                ) {
                    (Some(property), _) => self.collect(item, property, &at, errors),
                    (None, Value::Bool(false)) => errors.push(format!("{at}: not in the schema")),
                    (None, extra @ Value::Object(_)) => self.collect(item, extra, &at, errors),
                    (None, _) => {}
                }
            }
        }
    }
}

fn as_object(value: &Value) -> &serde_json::Map<String, Value> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
}

fn as_object_mut(value: &mut Value) -> &mut serde_json::Map<String, Value> {
    value.as_object_mut().expect("an object")
}

fn as_array(value: &Value) -> &Vec<Value> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
}

fn string(value: Value) -> String {
    match value {
        Value::String(text) => text,
        other => panic!("not a string: {other}"),
    }
}

fn keys(value: &Value) -> BTreeSet<String> {
    as_object(value).keys().cloned().collect()
}

/// The name of the component schema a media type or parameter refers to.
fn schema_ref(node: &Value) -> &str {
    let target = node["schema"]["$ref"]
        .as_str()
        .unwrap_or_else(|| panic!("no schema $ref in {node}"));
    target.rsplit('/').next().unwrap_or(target)
}
