//! Counts DynamoDB requests, in total and per operation, so tests and the
//! bench can assert what an endpoint costs. A request handler may also scope
//! a per-request counter (see [`count_requests`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;

tokio::task_local! {
    static PER_REQUEST: Arc<AtomicU64>;
}

/// Runs `fut`, returning its output and the DynamoDB requests it made.
pub async fn count_requests<F: Future>(fut: F) -> (F::Output, u64) {
    let counter = Arc::new(AtomicU64::new(0));
    let out = PER_REQUEST.scope(counter.clone(), fut).await;
    (out, counter.load(Ordering::Relaxed))
}

/// Totals since the client was built.
#[derive(Debug, Default)]
pub struct RequestCounter {
    total: AtomicU64,
    by_operation: Mutex<BTreeMap<String, u64>>,
}

impl RequestCounter {
    /// Requests made so far.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Requests made so far, per operation name (`Query`, `TransactWriteItems`, ...).
    pub fn by_operation(&self) -> BTreeMap<String, u64> {
        self.by_operation
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    fn record(&self, operation: &str) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut map) = self.by_operation.lock() {
            *map.entry(operation.to_owned()).or_default() += 1;
        }
        let _ = PER_REQUEST.try_with(|c| c.fetch_add(1, Ordering::Relaxed));
    }
}

/// The SDK interceptor feeding a [`RequestCounter`]; runs once per operation
/// (not per retry attempt, which the SDK makes on throttling).
#[derive(Debug, Clone)]
pub struct CountingInterceptor(pub Arc<RequestCounter>);

impl Intercept for CountingInterceptor {
    fn name(&self) -> &'static str {
        "trainsync-request-counter"
    }

    // Not `read_before_execution`: client-level interceptors see that hook
    // before the operation's metadata is in the bag.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .map(|m| m.name())
            .unwrap_or("unknown");
        self.0.record(operation);
        Ok(())
    }
}
