//! One whole sync session, two devices, against DynamoDB Local.

use http::StatusCode;
use serde_json::json;
use trainsync_tests::{TestContext, activity};
use uuid::Uuid;

#[tokio::test]
async fn a_whole_session_reaches_the_other_device() {
    let ctx = TestContext::new().await;
    let phone = ctx.token("alice", "phone");
    let tablet = ctx.token("alice", "tablet");

    // Phone: check, upload, complete.
    let sync_id = ctx.check(&phone, "alice").await;
    let run = Uuid::new_v4();
    let upload = ctx
        .upload(
            &phone,
            &sync_id,
            json!({
                "activities": [activity(run, "felt good")],
                "daily_metrics": [{"date": "2025-05-31", "recovery_rating": 7, "sleep_hours": 7.5, "submitted_at": "2025-05-31T06:00:00Z"}],
                "settings_changes": [{"key": "units", "value": "imperial", "changed_at": "2025-05-31T06:00:00Z"}],
                "plan_adjustments": [{"id": Uuid::new_v4(), "workout_id": "w-12", "new_date": "2025-06-03", "requested_at": "2025-05-31T06:00:00Z"}]
            }),
        )
        .await;
    assert_eq!(upload.status, StatusCode::OK);
    let body = upload.json();
    assert_eq!(body["accepted"].as_array().unwrap().len(), 4, "{body}");
    assert!(body["processing_errors"].as_array().unwrap().is_empty());
    assert!(body["server_timestamp"].is_string());

    // Tablet: check says there is news, download shows it.
    let check = ctx
        .post(
            "/sync/check",
            &tablet,
            &json!({"user_id": "alice", "device_id": "tablet", "last_sync_timestamp": null, "pending_changes_count": 0, "network": "wifi"}),
        )
        .await;
    let check = check.json();
    assert_eq!(check["has_updates"], true);
    let labels: Vec<&str> = check["server_changes_available"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "activities_updated",
            "daily_metrics_updated",
            "settings_updated",
            "plan_adjustments_updated"
        ]
    );

    let (pages, cursor) = ctx.download_all(&tablet, None, 100).await;
    let page = &pages[0];
    assert_eq!(page["activities"][0]["id"], run.to_string());
    assert_eq!(page["activities"][0]["notes"], "felt good");
    assert_eq!(page["daily_metrics"][0]["sleep_hours"], 7.5);
    assert_eq!(page["settings"]["units"], "imperial");
    assert_eq!(page["plan_adjustments"][0]["status"], "pending");
    assert!(page["training_plan"].is_null());

    // Nothing new after the cursor; a check quoting it says so.
    let again = ctx
        .get("/sync/download", &tablet, &[("since", &cursor)])
        .await
        .json();
    assert!(again["activities"].as_array().unwrap().is_empty());
    assert_eq!(again["next_cursor"], cursor);
    let check = ctx
        .post(
            "/sync/check",
            &tablet,
            &json!({"user_id": "alice", "cursor": cursor, "pending_changes_count": 0}),
        )
        .await
        .json();
    assert_eq!(check["has_updates"], false);

    // Complete once; a repeat is harmless and reports the first outcome.
    let done = ctx
        .post(
            "/sync/complete",
            &phone,
            &json!({"sync_id": sync_id, "status": "success", "cursor": cursor}),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK);
    assert_eq!(done.json()["status"], "success");
    let repeat = ctx
        .post(
            "/sync/complete",
            &phone,
            &json!({"sync_id": sync_id, "status": "failed", "error": "late"}),
        )
        .await;
    assert_eq!(repeat.status, StatusCode::OK);
    assert_eq!(repeat.json()["status"], "success");

    // A closed session takes no more uploads.
    let late = ctx
        .upload(
            &phone,
            &sync_id,
            json!({"activities": [activity(Uuid::new_v4(), "x")]}),
        )
        .await;
    assert_eq!(late.status, StatusCode::CONFLICT);
    assert_eq!(late.error_code(), "sync_session_closed");

    // Status lists both devices, the sessions and the head.
    let status = ctx.get("/sync/status", &phone, &[]).await.json();
    assert_eq!(status["head_seq"], 4);
    let devices: Vec<&str> = status["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].as_str().unwrap())
        .collect();
    assert!(
        devices.contains(&"phone") && devices.contains(&"tablet"),
        "{status}"
    );
    let tablet_status = status["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device_id"] == "tablet")
        .unwrap();
    assert_eq!(tablet_status["pending_downloads"], 0);
    assert_eq!(tablet_status["last_cursor"], cursor);
    let phone_status = status["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device_id"] == "phone")
        .unwrap();
    assert!(phone_status["last_sync_at"].is_string());
    assert_eq!(phone_status["acknowledged_cursor"], cursor);
    let sessions = status["recent_sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3);
    let phone_session = sessions
        .iter()
        .find(|s| s["sync_id"] == sync_id.as_str())
        .unwrap();
    assert_eq!(phone_session["status"], "success");
    assert_eq!(phone_session["uploads"], 1);
}

#[tokio::test]
async fn a_device_that_only_downloads_is_listed() {
    let ctx = TestContext::new().await;
    let watch = ctx.token("bob", "watch");
    let response = ctx.get("/sync/download", &watch, &[]).await;
    assert_eq!(response.status, StatusCode::OK);
    let status = ctx
        .get("/sync/status", &ctx.token("bob", "phone"), &[])
        .await
        .json();
    let devices: Vec<&str> = status["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].as_str().unwrap())
        .collect();
    assert_eq!(devices.len(), 2);
    assert!(devices.contains(&"watch"));
}

#[tokio::test]
async fn responses_are_gzipped_when_asked() {
    let ctx = TestContext::new().await;
    let token = ctx.token("carol", "phone");
    let sync_id = ctx.check(&token, "carol").await;
    let items: Vec<_> = (0..15)
        .map(|i| activity(Uuid::new_v4(), &format!("run {i}")))
        .collect();
    assert_eq!(
        ctx.upload(&token, &sync_id, json!({"activities": items}))
            .await
            .status,
        StatusCode::OK
    );
    let response = ctx
        .get_with_headers("/sync/download", &token, &[("accept-encoding", "gzip")])
        .await;
    assert_eq!(response.headers.get("content-encoding").unwrap(), "gzip");
    assert_eq!(response.json()["activities"].as_array().unwrap().len(), 15);
}
