//! The `trainsync` binary: dynamodb-local runs in the foreground, answers,
//! writes its ready file and stops cleanly on SIGTERM; create-table and
//! dev-token work against it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use trainsync_infra::dynamodb_local;

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
