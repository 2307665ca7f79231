//! `local-gateway`: runs the whole system locally (DynamoDB Local, the table,
//! and every route served by the Lambdas' handler code) until Ctrl-C.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use trainsync_infra::cli;
use trainsync_infra::dynamodb_local::Storage;
use trainsync_infra::local_system::{self, LocalSystem, StartOptions};

/// Run trainsync locally: DynamoDB Local + the sync API on 127.0.0.1.
///
/// Configuration comes from the environment (TABLE_NAME, JWT_SECRET or
/// JWKS_URL, JWT_ISSUER, JWT_AUDIENCE, AWS_REGION, DYNAMODB_ENDPOINT), with
/// local defaults for anything unset. Without DYNAMODB_ENDPOINT a DynamoDB
/// Local is started and stopped with the gateway.
#[derive(Debug, Parser)]
#[command(name = "local-gateway", version)]
struct Args {
    /// Port to serve on (loopback only; 0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 3000)]
    port: u16,
    /// Keep DynamoDB Local's data in memory instead of <repo>/.local/dynamodb-data.
    #[arg(long)]
    in_memory: bool,
    /// Write the gateway's URL to this file once it accepts requests
    /// (removed again on exit), for scripts that wait for it.
    #[arg(long, value_name = "FILE")]
    ready_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    trainsync_infra::init_tracing();
    cli::exit_code(run(Args::parse()).await)
}

/// Why the gateway stopped with an error.
#[derive(Debug, thiserror::Error)]
enum Error {
    /// Starting or running the system failed.
    #[error(transparent)]
    LocalSystem(#[from] local_system::Error),
    /// The ready file could not be written (DynamoDB Local stops on drop).
    #[error(transparent)]
    ReadyFile(#[from] cli::Error),
}

async fn run(args: Args) -> Result<(), Error> {
    let storage = if args.in_memory {
        Storage::InMemory
    } else {
        Storage::Persistent(local_system::default_data_dir())
    };
    let system = LocalSystem::start(StartOptions {
        storage,
        ..StartOptions::default()
    })
    .await?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let serve_error = |source| local_system::Error::Serve {
        addr: addr.to_string(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(serve_error)?;
    // With --port 0 only the listener knows the port.
    let bound = listener.local_addr().map_err(serve_error)?;
    println!("{}", local_system::startup_message(&system, bound));
    if let Some(path) = &args.ready_file {
        cli::write_ready_file(path, &format!("http://{bound}"))?;
    }
    let served = system
        .run(listener, trainsync_infra::shutdown::signal())
        .await;
    if let Some(path) = &args.ready_file {
        let _ = std::fs::remove_file(path);
    }
    served?;
    eprintln!("local gateway stopped.");
    Ok(())
}
