//! The operator CLI (`trainsync`): argument definitions and the subcommands.
//! Add a subcommand by adding a [`Command`] variant, its `Args` struct and a
//! `run_*` function dispatched from [`run`].

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::Utc;
use clap::{Args, Parser, Subcommand};
use serde_json::Value;

use crate::dynamodb_local::{self, DynamoDbLocal, Storage};
use crate::local_config::{self, DevTokenError};
use crate::local_system;

/// trainsync operator tool: local DynamoDB, tables, development tokens and ingest.
#[derive(Debug, Parser)]
#[command(name = "trainsync", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print an HS256 token for a user and device (JWT_SECRET, JWT_ISSUER,
    /// JWT_AUDIENCE from the environment, else the local defaults).
    DevToken(DevTokenArgs),
    /// Run DynamoDB Local in the foreground until Ctrl-C or SIGTERM.
    DynamodbLocal(DynamoDbLocalArgs),
    /// Create the table (TABLE_NAME, DYNAMODB_ENDPOINT, AWS_REGION from the
    /// environment, else the local defaults). Succeeds if it exists.
    CreateTable(CreateTableArgs),
    /// Apply an ingest event (one user's plan, metrics, alerts, coach's notes
    /// and wearable activities, or a reference-data snapshot) to the table,
    /// as the sync-ingest Lambda does, and print the JSON answer. Same
    /// environment and local defaults as create-table, plus BRAIN.
    Ingest(IngestArgs),
    /// Log a device in, as the login service does after checking the user's
    /// credentials: print its first token pair (24-hour access token and a
    /// one-use refresh token) as JSON. The device's earlier login stops
    /// working and a logout of the device is lifted. Same environment as
    /// ingest, plus JWT_SIGNING_KMS_KEY_ID (or JWT_SIGNING_KEY) and
    /// JWT_SIGNING_KID with RS256.
    Login(LoginArgs),
}

/// `trainsync login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The user id.
    #[arg(long)]
    pub user: String,
    /// The device id.
    #[arg(long)]
    pub device: String,
}

/// `trainsync dev-token`.
#[derive(Debug, Args)]
pub struct DevTokenArgs {
    /// The user id (`sub`).
    #[arg(long)]
    pub user: String,
    /// The device id (`device_id` claim).
    #[arg(long)]
    pub device: String,
    /// Lifetime in hours.
    #[arg(long, default_value_t = local_config::DEV_TOKEN_TTL_HOURS)]
    pub ttl_hours: i64,
}

/// `trainsync dynamodb-local`.
#[derive(Debug, Args)]
pub struct DynamoDbLocalArgs {
    /// Port to listen on (default: a free one).
    #[arg(long)]
    pub port: Option<u16>,
    /// Keep data in memory only (the default unless --db-path is given).
    #[arg(long, conflicts_with = "db_path")]
    pub in_memory: bool,
    /// Persist data in this folder.
    #[arg(long, value_name = "DIR")]
    pub db_path: Option<PathBuf>,
    /// Write the endpoint URL to this file once DynamoDB Local answers
    /// (removed again on exit).
    #[arg(long, value_name = "FILE")]
    pub ready_file: Option<PathBuf>,
}

/// `trainsync create-table`.
#[derive(Debug, Args)]
pub struct CreateTableArgs {
    /// Table name (default: TABLE_NAME, else the local default).
    #[arg(long)]
    pub table: Option<String>,
}

/// `trainsync ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// The event as JSON (`{"type": "user_data", ...}` or
    /// `{"type": "reference_data", ...}`); `-` reads standard input.
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
}

/// Errors of the CLI's subcommands.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is unusable.
    #[error("configuration: {0}")]
    Config(#[from] sync_core::config::ConfigError),
    /// A token could not be made.
    #[error(transparent)]
    DevToken(#[from] DevTokenError),
    /// DynamoDB Local failed.
    #[error(transparent)]
    DynamoDbLocal(#[from] dynamodb_local::Error),
    /// Table creation (or another local-system step) failed.
    #[error(transparent)]
    LocalSystem(#[from] local_system::Error),
    /// DynamoDB Local exited while it should have been serving.
    #[error("DynamoDB Local exited unexpectedly ({status}); its output:\n{output}")]
    DynamoDbLocalDied {
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The tail of its output.
        output: String,
    },
    /// The state for ingest could not be built.
    #[error(transparent)]
    Startup(#[from] sync_core::state::StartupError),
    /// The ingest event could not be read or is not JSON.
    #[error("cannot read the event {path}: {reason}")]
    Event {
        /// The file (`-` for standard input).
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Ingest failed with an error worth retrying (storage unavailable).
    #[error("ingest failed; retry with the same event: {0}")]
    Ingest(#[source] sync_core::error::ApiError),
    /// A user or device id is not valid.
    #[error("--{flag}: {source}")]
    Id {
        /// The flag.
        flag: &'static str,
        /// Why.
        #[source]
        source: trainsync_protocol::domain::IdError,
    },
    /// The login failed.
    #[error("login failed: {0}")]
    Login(#[source] sync_core::error::ApiError),
    /// Ingest refused the event; the answer (printed) says why.
    #[error("ingest refused the event: {code}")]
    Refused {
        /// The answer's `error.code`.
        code: String,
    },
    /// The ready file could not be written.
    #[error("cannot write the ready file {path}: {source}")]
    ReadyFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::DevToken(args) => run_dev_token(args),
        Command::DynamodbLocal(args) => run_dynamodb_local(args).await,
        Command::CreateTable(args) => run_create_table(args).await,
        Command::Ingest(args) => run_ingest(args).await,
        Command::Login(args) => run_login(args).await,
    }
}

fn run_dev_token(args: DevTokenArgs) -> Result<(), Error> {
    let config = local_config::from_env()?;
    let token = local_config::dev_token(
        &config,
        &args.user,
        &args.device,
        args.ttl_hours,
        Utc::now(),
    )?;
    println!("{token}");
    Ok(())
}

async fn run_dynamodb_local(args: DynamoDbLocalArgs) -> Result<(), Error> {
    let storage = match args.db_path {
        Some(dir) => Storage::Persistent(dir),
        None => Storage::InMemory,
    };
    let mut local = DynamoDbLocal::start(dynamodb_local::Options {
        port: args.port,
        storage,
        echo_output: true,
        ..dynamodb_local::Options::default()
    })
    .await?;
    let endpoint = local.endpoint();
    if let Some(path) = &args.ready_file {
        write_ready_file(path, &endpoint)?;
    }
    let storage = match local.storage() {
        Storage::InMemory => "in memory".to_owned(),
        Storage::Persistent(dir) => format!("persisting in {}", dir.display()),
    };
    eprintln!("DynamoDB Local is ready at {endpoint} ({storage}); Ctrl-C or SIGTERM stops it.");
    println!("{endpoint}");

    let outcome = tokio::select! {
        () = crate::shutdown::signal() => Ok(()),
        status = watch_exit(&mut local) => Err(status),
    };
    if let Some(path) = &args.ready_file {
        let _ = std::fs::remove_file(path);
    }
    match outcome {
        Ok(()) => {
            eprintln!("stopping DynamoDB Local ...");
            local.stop()?;
            eprintln!("DynamoDB Local stopped.");
            Ok(())
        }
        Err(status) => Err(Error::DynamoDbLocalDied {
            status,
            output: local.output(),
        }),
    }
}

/// Resolves when the Java process exits on its own.
async fn watch_exit(local: &mut DynamoDbLocal) -> std::process::ExitStatus {
    loop {
        if let Ok(Some(status)) = local.try_wait() {
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Writes `endpoint` to `path` atomically (temporary file, then rename), so a
/// waiting script never reads half a line.
pub fn write_ready_file(path: &Path, endpoint: &str) -> Result<(), Error> {
    let error = |source| Error::ReadyFile {
        path: path.to_path_buf(),
        source,
    };
    let mut staging = path.as_os_str().to_owned();
    staging.push(".tmp");
    let staging = PathBuf::from(staging);
    std::fs::write(&staging, format!("{endpoint}\n")).map_err(error)?;
    std::fs::rename(&staging, path).map_err(error)
}

async fn run_create_table(args: CreateTableArgs) -> Result<(), Error> {
    let mut config = local_config::from_env()?;
    if let Some(table) = args.table {
        config.table_name = table;
    }
    local_system::create_table(&config).await?;
    println!(
        "table {} is ready on {}",
        config.table_name,
        config
            .dynamodb_endpoint
            .as_deref()
            .unwrap_or("the default AWS endpoint")
    );
    Ok(())
}

/// Reads the event from `path` (`-`: standard input) as JSON.
fn read_event(path: &Path) -> Result<Value, Error> {
    let error = |reason: String| Error::Event {
        path: path.to_path_buf(),
        reason,
    };
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| error(e.to_string()))?;
        text
    } else {
        std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?
    };
    serde_json::from_str(&text).map_err(|e| error(format!("not JSON: {e}")))
}

async fn run_ingest(args: IngestArgs) -> Result<(), Error> {
    let event = read_event(&args.file)?;
    let state = sync_core::lambda::build_state(local_config::from_env()?).await?;
    let answer = sync_core::handlers::ingest::handle_event(&state, event)
        .await
        .map_err(Error::Ingest)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&answer).unwrap_or_else(|_| answer.to_string())
    );
    // Refusals a retry cannot fix come back as an `{"error": ...}` answer.
    match answer["error"]["code"].as_str() {
        Some(code) => Err(Error::Refused {
            code: code.to_owned(),
        }),
        None => Ok(()),
    }
}

async fn run_login(args: LoginArgs) -> Result<(), Error> {
    use trainsync_protocol::domain::{DeviceId, UserId};
    let user = UserId::parse(args.user).map_err(|source| Error::Id {
        flag: "user",
        source,
    })?;
    let device = DeviceId::parse(args.device).map_err(|source| Error::Id {
        flag: "device",
        source,
    })?;
    let state = sync_core::lambda::build_state(local_config::from_env()?).await?;
    let pair = state
        .tokens()
        .login(&user, &device)
        .await
        .map_err(Error::Login)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&pair).unwrap_or_default()
    );
    Ok(())
}

/// Prints `error` with its causes to stderr and turns the outcome into an exit code.
pub fn exit_code<E: std::error::Error>(outcome: Result<(), E>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            let mut source = error.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_the_subcommands() {
        let cli = Cli::try_parse_from(["trainsync", "dev-token", "--user", "u", "--device", "d"])
            .expect("dev-token parses");
        match cli.command {
            Command::DevToken(args) => {
                assert_eq!((args.user.as_str(), args.device.as_str()), ("u", "d"));
                assert_eq!(args.ttl_hours, 24);
            }
            other => panic!("unexpected {other:?}"),
        }
        let cli = Cli::try_parse_from([
            "trainsync",
            "dynamodb-local",
            "--port",
            "8123",
            "--in-memory",
            "--ready-file",
            "/tmp/r",
        ])
        .expect("dynamodb-local parses");
        assert!(matches!(
            cli.command,
            Command::DynamodbLocal(DynamoDbLocalArgs {
                port: Some(8123),
                in_memory: true,
                ..
            })
        ));
        assert!(
            Cli::try_parse_from([
                "trainsync",
                "dynamodb-local",
                "--in-memory",
                "--db-path",
                "x"
            ])
            .is_err()
        );
        let cli = Cli::try_parse_from(["trainsync", "create-table", "--table", "t"])
            .expect("create-table parses");
        assert!(
            matches!(cli.command, Command::CreateTable(CreateTableArgs { table: Some(ref t) }) if t == "t")
        );
        let cli =
            Cli::try_parse_from(["trainsync", "ingest", "--file", "-"]).expect("ingest parses");
        assert!(
            matches!(cli.command, Command::Ingest(IngestArgs { ref file }) if file == Path::new("-"))
        );
        assert!(
            Cli::try_parse_from(["trainsync", "ingest"]).is_err(),
            "--file is required"
        );
    }

    #[test]
    fn unreadable_events_name_their_file() {
        let missing = std::env::temp_dir().join("trainsync-no-such-event.json");
        assert!(
            matches!(read_event(&missing), Err(Error::Event { ref path, .. }) if *path == missing)
        );
        let bad = std::env::temp_dir().join(format!("trainsync-bad-event-{}", std::process::id()));
        std::fs::write(&bad, "{not json").expect("written");
        let error = read_event(&bad).expect_err("refused");
        assert!(error.to_string().contains("not JSON"), "{error}");
        std::fs::remove_file(&bad).expect("removed");
    }

    #[test]
    fn ready_file_is_written_whole() {
        let path = std::env::temp_dir().join(format!("trainsync-ready-{}", std::process::id()));
        write_ready_file(&path, "http://127.0.0.1:1").expect("written");
        assert_eq!(
            std::fs::read_to_string(&path).expect("readable"),
            "http://127.0.0.1:1\n"
        );
        std::fs::remove_file(&path).expect("removed");
    }
}
