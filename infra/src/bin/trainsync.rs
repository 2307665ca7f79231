//! `trainsync`: the operator CLI. All logic lives in `trainsync_infra::cli`.

use std::process::ExitCode;

use clap::Parser as _;
use trainsync_infra::cli::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::exit_code(cli::run(cli).await)
}
