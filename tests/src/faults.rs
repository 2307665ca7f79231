//! Storage faults for tests, at the SDK boundary: an interceptor on the test
//! context's DynamoDB client that spoils the next `TransactWriteItems` the
//! way a real network or DynamoDB can, so the real store and services are
//! exercised against the fault (never compiled into a function).

use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextMut,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;

/// What happens to the next transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionFault {
    /// It applies, then every answer (the SDK's retries included) is a 500:
    /// the caller gets an error although the data is written.
    AnswerLostAfterApply,
    /// It applies, then the answer is `TransactionInProgressException` (what
    /// DynamoDB says to a retry while the first try is still running).
    InProgressAfterApply,
    /// It never reaches the table; the answer is `TransactionInProgressException`.
    InProgressBeforeApply,
}

/// The interceptor: armed with one fault, spent on the next transaction
/// (all of its SDK attempts). Clones share their state.
#[derive(Debug, Default, Clone)]
pub struct FaultInjector {
    armed: Arc<Mutex<Option<TransactionFault>>>,
    /// The fault being applied to the current transaction's attempts.
    active: Arc<Mutex<Option<TransactionFault>>>,
}

impl FaultInjector {
    /// Spoils the next `TransactWriteItems` with `fault`.
    pub fn arm(&self, fault: TransactionFault) {
        *self.armed.lock().unwrap() = Some(fault);
    }

    /// Whether the armed fault was used.
    pub fn spent(&self) -> bool {
        self.armed.lock().unwrap().is_none()
    }
}

fn is_transaction(cfg: &ConfigBag) -> bool {
    cfg.load::<Metadata>()
        .is_some_and(|m| m.name() == "TransactWriteItems")
}

fn dynamodb_error(status: u16, kind: &str) -> aws_smithy_runtime_api::http::Response {
    let body = format!(
        r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{kind}","message":"injected by the test"}}"#
    );
    let mut response = aws_smithy_runtime_api::http::Response::new(
        StatusCode::try_from(status).expect("a valid status"),
        SdkBody::from(body),
    );
    response
        .headers_mut()
        .insert("content-type", "application/x-amz-json-1.0");
    response
}

impl Intercept for FaultInjector {
    fn name(&self) -> &'static str {
        "trainsync-test-faults"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if !is_transaction(cfg) {
            return Ok(());
        }
        let mut active = self.active.lock().unwrap();
        if active.is_none() {
            *active = self.armed.lock().unwrap().take();
        }
        if *active == Some(TransactionFault::InProgressBeforeApply) {
            // An empty transaction is refused without touching the table.
            const EMPTY: &str = r#"{"TransactItems":[]}"#;
            let request = context.request_mut();
            *request.body_mut() = SdkBody::from(EMPTY);
            request
                .headers_mut()
                .insert("content-length", EMPTY.len().to_string());
        }
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if !is_transaction(cfg) {
            return Ok(());
        }
        // Every attempt of the spoiled operation; the next operation is clean.
        match *self.active.lock().unwrap() {
            None => {}
            Some(TransactionFault::AnswerLostAfterApply) => {
                *context.response_mut() = dynamodb_error(500, "InternalServerError");
            }
            Some(
                TransactionFault::InProgressAfterApply | TransactionFault::InProgressBeforeApply,
            ) => {
                *context.response_mut() = dynamodb_error(400, "TransactionInProgressException");
            }
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        _context: &aws_sdk_dynamodb::config::interceptors::FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if is_transaction(cfg) {
            *self.active.lock().unwrap() = None;
        }
        Ok(())
    }
}
