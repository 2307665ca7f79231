//! The `trainsync` binary: dynamodb-local runs in the foreground, answers,
//! writes its ready file and stops cleanly on SIGTERM; create-table, ingest
//! and dev-token work against it.

use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{Value, json};
use sync_core::store::dynamo::DynamoStore;
use sync_core::store::{ChangeLogStore as _, EntityKey};
use trainsync_infra::dynamodb_local;
use trainsync_infra::local_config;
use trainsync_protocol::domain::{EntityKind, UserId};

use crate::helpers::dynamodb_endpoint;

const TRAINSYNC: &str = env!("CARGO_BIN_EXE_trainsync");

/// Kills the child if a test fails half-way.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_file(path: &Path, child: &mut Child, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return text;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("trainsync dynamodb-local exited early: {status}");
        }
        assert!(Instant::now() < deadline, "no ready file after {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn dynamodb_local_subcommand_serves_until_sigterm() {
    let ready = std::env::temp_dir().join(format!("trainsync-cli-ready-{}", std::process::id()));
    let _ = std::fs::remove_file(&ready);
    let child = Command::new(TRAINSYNC)
        .args(["dynamodb-local", "--in-memory", "--ready-file"])
        .arg(&ready)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("trainsync starts");
    let mut guard = Guard(child);
    let endpoint = wait_for_file(&ready, &mut guard.0, Duration::from_secs(90));
    let endpoint = endpoint.trim();
    let port: u16 = endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("endpoint ends in a port");
    assert_eq!(endpoint, format!("http://127.0.0.1:{port}"));

    let table = "cli-created";
    let status = Command::new(TRAINSYNC)
        .args(["create-table", "--table", table])
        .env("DYNAMODB_ENDPOINT", endpoint)
        .status()
        .expect("create-table runs");
    assert!(status.success());
    let tables = dynamodb_local::list_tables(port)
        .await
        .expect("ListTables answers");
    assert!(tables.contains(table), "{tables}");

    let pid = guard.0.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let status = guard.0.wait().expect("trainsync exits");
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(
        dynamodb_local::port_is_free(port),
        "java still holds {port}"
    );
    assert!(!ready.exists(), "ready file left behind");
}

#[test]
fn dev_token_prints_a_jwt() {
    let output = Command::new(TRAINSYNC)
        .args([
            "dev-token",
            "--user",
            "u-1",
            "--device",
            "d-1",
            "--ttl-hours",
            "2",
        ])
        .env_remove("JWKS_URL")
        .output()
        .expect("dev-token runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).expect("utf-8");
    assert_eq!(token.trim().split('.').count(), 3, "{token}");
}

#[test]
fn dev_token_refuses_a_bad_ttl() {
    let output = Command::new(TRAINSYNC)
        .args([
            "dev-token",
            "--user",
            "u",
            "--device",
            "d",
            "--ttl-hours",
            "0",
        ])
        .output()
        .expect("dev-token runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("lifetime"));
}

/// `trainsync create-table` for `table` on `endpoint`.
fn create_table(endpoint: &str, table: &str) {
    let status = Command::new(TRAINSYNC)
        .args(["create-table", "--table", table])
        .env("DYNAMODB_ENDPOINT", endpoint)
        .stdout(Stdio::null())
        .status()
        .expect("create-table runs");
    assert!(status.success());
}

/// `trainsync ingest --file <file>` against `table`, with `stdin` piped in.
fn ingest(endpoint: &str, table: &str, file: &str, stdin: &str) -> Output {
    let mut child = Command::new(TRAINSYNC)
        .args(["ingest", "--file", file])
        .env("DYNAMODB_ENDPOINT", endpoint)
        .env("TABLE_NAME", table)
        .env_remove("JWKS_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("trainsync ingest starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("stdin written");
    child.wait_with_output().expect("trainsync ingest runs")
}

fn answer(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the answer is JSON")
}

#[tokio::test]
async fn ingest_applies_an_event_once_and_the_plan_reads_back() {
    let (endpoint, _local) = dynamodb_endpoint().await;
    let table = format!(
        "cli-ingest-{}",
        Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    create_table(&endpoint, &table);

    let today = Utc::now().date_naive();
    let event = json!({
        "type": "user_data",
        "user_id": "cli-user",
        "ingest_id": "7d1c7e0a-3f59-4c1e-9a8b-5e0f4d2c1b01",
        "training_plan": {
            "version": 1,
            "generated_at": Utc::now(),
            "starts_on": today,
            "weeks": 4,
            "workouts": [{
                "id": "w-1-easy",
                "date": today,
                "workout_type": "easy",
                "title": "Easy run",
                "structure": [],
                "targets": {"duration_s": 2400}
            }]
        }
    });
    let path = std::env::temp_dir().join(format!("{table}.json"));
    std::fs::write(&path, event.to_string()).expect("event written");
    let file = path.to_str().expect("a UTF-8 path");

    let first = ingest(&endpoint, &table, file, "");
    let applied = answer(&first);
    assert_eq!(applied["user_id"], "cli-user");
    assert_eq!(applied["accepted"][0]["type"], "training_plan", "{applied}");
    assert_eq!(applied["processing_errors"], json!([]), "{applied}");
    assert_eq!(applied["plan_version"], 1, "{applied}");

    // The plan is stored for the user, numbered by the server.
    let mut config = local_config::from_env_with_endpoint(&endpoint).expect("local config");
    config.table_name = table.clone();
    let store = DynamoStore::from_config(&config).await;
    let user = UserId::parse("cli-user").expect("a valid id");
    let key = EntityKey::new(EntityKind::TrainingPlan, "current");
    let loaded = store
        .load(&user, std::slice::from_ref(&key))
        .await
        .expect("readable");
    let stored = &loaded.entities.get(&key).expect("the plan is stored").data;
    assert_eq!(stored["version"], 1, "{stored}");
    assert_eq!(stored["workouts"][0]["id"], "w-1-easy", "{stored}");
    assert_eq!(loaded.head.plan_version, Some(1));

    // The same event again, from stdin: the stored answer, nothing applied twice.
    let replay = ingest(&endpoint, &table, "-", &event.to_string());
    assert_eq!(answer(&replay), applied);
    let head = store.head(&user).await.expect("readable");
    assert_eq!(head.plan_version, Some(1), "the replay made no new version");

    // A refused event: printed answer, non-zero exit.
    let refused = ingest(
        &endpoint,
        &table,
        "-",
        r#"{"type": "user_data", "user_id": "not a user id", "ingest_id": "7d1c7e0a-3f59-4c1e-9a8b-5e0f4d2c1b02"}"#,
    );
    assert!(!refused.status.success());
    let body: Value = serde_json::from_slice(&refused.stdout).expect("the answer is JSON");
    assert_eq!(body["error"]["field"], "user_id", "{body}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("refused"));
    std::fs::remove_file(&path).expect("removed");
}

#[tokio::test]
async fn login_prints_a_pair_whose_access_token_verifies() {
    let (endpoint, _local) = dynamodb_endpoint().await;
    let table = format!(
        "cli-login-{}",
        Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    create_table(&endpoint, &table);
    let login = |user: &str| {
        Command::new(TRAINSYNC)
            .args(["login", "--user", user, "--device", "phone"])
            .env("DYNAMODB_ENDPOINT", &endpoint)
            .env("TABLE_NAME", &table)
            .env_remove("JWKS_URL")
            .env_remove("JWT_SECRET")
            .output()
            .expect("trainsync login runs")
    };
    let pair = answer(&login("cli-user"));
    assert_eq!(pair["token_type"], "Bearer");
    assert_eq!(pair["expires_in"], 86_400);
    assert!(
        pair["refresh_token"]
            .as_str()
            .is_some_and(|t| sync_core::refresh::RefreshToken::parse(t).is_ok()),
        "{pair}"
    );
    let config = local_config::from_env_with_endpoint(&endpoint).expect("local config");
    let caller = sync_core::auth::Verifier::new(&config.auth)
        .verify(
            Some(&format!(
                "Bearer {}",
                pair["access_token"].as_str().unwrap()
            )),
            Utc::now(),
        )
        .await
        .expect("the access token verifies");
    assert_eq!(caller.user_id.as_str(), "cli-user");
    assert!(caller.login.is_some(), "bound to the login");

    let refused = login("not a user");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--user"));
}
