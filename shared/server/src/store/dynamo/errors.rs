//! How SDK errors become [`StoreError`]s: by the error's type (transport
//! failures, the operation's typed service errors), never by matching text,
//! so a retryable failure always reaches the client as a 503.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::CreateUnhandledError;
use aws_smithy_types::retry::{ErrorKind, ProvideErrorKind};

use crate::store::StoreError;

/// Maps an SDK error: throttling, timeouts and server faults are retryable.
pub(super) fn store_error<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorKind
        + ProvideErrorMetadata
        + CreateUnhandledError
        + std::error::Error
        + Send
        + Sync
        + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
    aws_sdk_dynamodb::Error: From<E>,
{
    let text = match err.as_service_error() {
        Some(e) => format!(
            "{}: {}",
            ProvideErrorMetadata::code(e).unwrap_or("error"),
            e.message().unwrap_or("")
        ),
        None => format!("{err:?}"),
    };
    let retryable = match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(_) => {
            let service = err.into_service_error();
            matches!(
                service.retryable_error_kind(),
                Some(
                    ErrorKind::ThrottlingError | ErrorKind::TransientError | ErrorKind::ServerError
                )
            ) || matches!(
                aws_sdk_dynamodb::Error::from(service),
                aws_sdk_dynamodb::Error::ProvisionedThroughputExceededException(_)
                    | aws_sdk_dynamodb::Error::RequestLimitExceeded(_)
                    | aws_sdk_dynamodb::Error::ThrottlingException(_)
            )
        }
        _ => false,
    };
    if retryable {
        StoreError::Unavailable(text)
    } else {
        StoreError::Other(text)
    }
}

/// Whether a conditional write's condition held: `false` when it failed
/// (by `failed_condition`), any other error as a [`StoreError`].
pub(super) fn condition_held<O, E>(
    result: Result<O, SdkError<E, HttpResponse>>,
    failed_condition: impl Fn(&E) -> bool,
) -> Result<bool, StoreError>
where
    E: ProvideErrorKind
        + ProvideErrorMetadata
        + CreateUnhandledError
        + std::error::Error
        + Send
        + Sync
        + 'static,
    aws_sdk_dynamodb::Error: From<E>,
{
    match result {
        Ok(_) => Ok(true),
        Err(err) if err.as_service_error().is_some_and(failed_condition) => Ok(false),
        Err(err) => Err(store_error(err)),
    }
}

/// The outcome of a conditional write whose failed condition means there is
/// nothing (left) to do.
pub(super) fn done_unless_failed<O, E>(
    result: Result<O, SdkError<E, HttpResponse>>,
    failed_condition: impl Fn(&E) -> bool,
) -> Result<(), StoreError>
where
    E: ProvideErrorKind
        + ProvideErrorMetadata
        + CreateUnhandledError
        + std::error::Error
        + Send
        + Sync
        + 'static,
    aws_sdk_dynamodb::Error: From<E>,
{
    condition_held(result, failed_condition).map(|_| ())
}

/// A request builder's result, its failure as a [`StoreError`].
pub(super) fn build<T, E: std::fmt::Display>(built: Result<T, E>) -> Result<T, StoreError> {
    built.map_err(|e| StoreError::Other(e.to_string()))
}
