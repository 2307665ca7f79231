//! Logging setup: JSON lines for CloudWatch, filtered by `RUST_LOG`
//! (`info`, `warn,sync_core=debug`, ...).

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber once; later calls are no-ops.
pub fn init() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(false)
                .with_target(false)
                .without_time(), // CloudWatch stamps each line.
        )
        .with(filter)
        .try_init();
}
