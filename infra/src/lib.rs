//! Local tooling for trainsync: DynamoDB Local launcher, the local HTTP
//! gateway that serves the Lambda handlers, and the operator CLI's logic.
//!
//! The binaries (`trainsync`, `local-gateway`) are thin wrappers over this
//! library, so tests in other crates can start the same pieces in-process.

#![warn(missing_docs)]

use std::path::{Path, PathBuf};

pub mod cli;
pub mod dynamodb_local;
pub mod gateway;
pub mod local_config;
pub mod local_system;
pub mod push_receiver;
pub mod shutdown;
pub mod stream_filter;
pub mod stream_poller;

/// The repository root (the workspace folder holding `infra/`).
pub fn repo_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest_dir.to_path_buf())
}

/// `<repo>/.local`, the git-ignored folder for local installs and data.
pub fn local_dir() -> PathBuf {
    repo_root().join(".local")
}

/// Logs to stderr, `info` and up unless `RUST_LOG` says otherwise.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
