//! `local-gateway`: runs the whole system locally (DynamoDB Local, the table,
//! and every route served by the Lambdas' handler code) until Ctrl-C.

use std::net::{Ipv4Addr, SocketAddr};
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
    /// Port to serve on (loopback only).
    #[arg(long, env = "PORT", default_value_t = 3000)]
    port: u16,
    /// Keep DynamoDB Local's data in memory instead of <repo>/.local/dynamodb-data.
    #[arg(long)]
    in_memory: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    trainsync_infra::init_tracing();
    cli::exit_code(run(Args::parse()).await)
}

async fn run(args: Args) -> Result<(), local_system::Error> {
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
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| local_system::Error::Serve {
            addr: addr.to_string(),
            source,
        })?;
    println!("{}", local_system::startup_message(&system, addr));
    system
        .run(listener, trainsync_infra::shutdown::signal())
        .await?;
    eprintln!("local gateway stopped.");
    Ok(())
}
