//! SDK errors to [`KvError`], and which failed writes the SDK may retry, in one place.
//!
//! The mapping table is in the crate docs.
//!
//! # Retries of writes that are not idempotent
//!
//! The SDK retries failed requests (3 attempts by default), including after a timeout or an
//! HTTP 500 whose request may already have been applied. An `increment` applied twice counts
//! twice, a `compare_and_swap` or `delete` applied by an attempt whose reply was lost makes the
//! retry report `false`, and a `set` resent after another client's write undoes that write
//! (a reader could see the old value come back). So every write goes through a
//! client with [`AmbiguousWriteGuard`], which forbids retrying any failure except those that
//! prove the request was not applied: throttling (DynamoDB rejects a throttled request before
//! running it), transaction conflicts, and a refused connection. Any other failure is returned
//! as `Unavailable` at once, and that `Unavailable` may hide a write that happened (a lost
//! reply), as the contract allows.
//!
//! A `BatchWriteItem` (`set_many`) goes through the same client for the same reason. What
//! DynamoDB answers as `UnprocessedItems` it did not apply, so `batch.rs` resends those
//! (a resent put applies once).

use std::error::Error as StdError;
use std::fmt;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::config::interceptors::InterceptorContext;
use aws_sdk_dynamodb::config::retry::{ClassifyRetry, RetryAction};
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use kv_trait::KvError;

/// Service error codes that mean "rejected before running, try again later".
const RETRYABLE_REJECTIONS: [&str; 4] = [
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TransactionConflictException",
];

/// Service error codes of transient failures that may or may not have applied the request.
const TRANSIENT_FAILURES: [&str; 3] = [
    "InternalServerError",
    "ServiceUnavailable",
    "RequestTimeout",
];

/// Service error codes of limits.
const LIMITS: [&str; 2] = [
    "ItemCollectionSizeLimitExceededException",
    "LimitExceededException",
];

/// A failed DynamoDB request, with the SDK's whole error chain in its message.
#[derive(Debug)]
pub(crate) struct RequestFailed {
    operation: &'static str,
    detail: String,
    source: Box<dyn StdError + Send + Sync>,
}

impl fmt::Display for RequestFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DynamoDB {} failed: {}", self.operation, self.detail)
    }
}

impl StdError for RequestFailed {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

/// Maps a failed request of `operation` (e.g. `"PutItem"`) to a [`KvError`] (see the table in
/// the module docs).
pub(crate) fn from_sdk<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> KvError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let kind = classify(&err);
    let failure = RequestFailed {
        operation,
        detail: DisplayErrorContext(&err).to_string(),
        source: Box::new(err),
    };
    match kind {
        Kind::Unavailable => KvError::unavailable(failure),
        Kind::Quota => KvError::QuotaExceeded(failure.to_string()),
        Kind::Backend => KvError::backend(failure),
    }
}

enum Kind {
    Unavailable,
    Quota,
    Backend,
}

fn classify<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Kind {
    match err {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => Kind::Unavailable,
        SdkError::DispatchFailure(failure) if failure.is_user() => Kind::Backend,
        SdkError::DispatchFailure(_) => Kind::Unavailable,
        SdkError::ServiceError(service) => {
            let code = err.code().unwrap_or_default();
            let message = err.message().unwrap_or_default();
            if RETRYABLE_REJECTIONS.contains(&code) || TRANSIENT_FAILURES.contains(&code) {
                Kind::Unavailable
            } else if LIMITS.contains(&code)
                || (code == "ValidationException" && message.contains("Item size"))
            {
                Kind::Quota
            } else if service.raw().status().is_server_error() {
                Kind::Unavailable
            } else {
                Kind::Backend
            }
        }
        _ => Kind::Backend,
    }
}

/// The retry classifier of the client that sends every write (see the module docs): lets the SDK retry only failures that prove the request was not applied.
#[derive(Debug, Default)]
pub(crate) struct AmbiguousWriteGuard;

impl ClassifyRetry for AmbiguousWriteGuard {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let Some(Err(error)) = ctx.output_or_error() else {
            return RetryAction::NoActionIndicated;
        };
        let rejected_unapplied = match error.as_operation_error() {
            Some(operation_error) => {
                let code = operation_error
                    .downcast_ref::<UpdateItemError>()
                    .and_then(ProvideErrorMetadata::code)
                    .or_else(|| {
                        operation_error
                            .downcast_ref::<PutItemError>()
                            .and_then(ProvideErrorMetadata::code)
                    })
                    .or_else(|| {
                        operation_error
                            .downcast_ref::<DeleteItemError>()
                            .and_then(ProvideErrorMetadata::code)
                    })
                    .or_else(|| {
                        operation_error
                            .downcast_ref::<BatchWriteItemError>()
                            .and_then(ProvideErrorMetadata::code)
                    });
                code.is_some_and(|code| RETRYABLE_REJECTIONS.contains(&code))
            }
            None => error
                .as_connector_error()
                .is_some_and(|connector| connection_refused(connector)),
        };
        if rejected_unapplied {
            // Not applied: the SDK's own classifiers decide as usual (the SDK's own `tracing`
            // events, under `aws_smithy_runtime`, show its retries and back-off).
            tracing::debug!(%error, "write refused unapplied: the SDK may retry it");
            RetryAction::NoActionIndicated
        } else {
            tracing::debug!(%error, "write may have been applied: not retried");
            RetryAction::RetryForbidden
        }
    }

    fn name(&self) -> &'static str {
        "kv-dynamodb: no retry of writes that may have been applied"
    }
}

/// Whether the error chain holds a refused connection: nothing was sent.
fn connection_refused(err: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        next = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::get_item::GetItemError;

    type RawResponse = HttpResponse;

    fn service_error(
        code: &str,
        message: &str,
        status: u16,
    ) -> SdkError<GetItemError, RawResponse> {
        let meta = ErrorMetadata::builder().code(code).message(message).build();
        let raw = RawResponse::new(status.try_into().expect("status"), "".into());
        SdkError::service_error(GetItemError::generic(meta), raw)
    }

    #[test]
    fn throttling_and_server_errors_are_unavailable() {
        for (code, status) in [
            ("ProvisionedThroughputExceededException", 400),
            ("ThrottlingException", 400),
            ("RequestLimitExceeded", 400),
            ("TransactionConflictException", 400),
            ("InternalServerError", 500),
            ("SomethingNew", 503),
        ] {
            let err = from_sdk("GetItem", service_error(code, "m", status));
            assert!(matches!(err, KvError::Unavailable(_)), "{code}: {err:?}");
            assert!(err.to_string().contains("GetItem"), "{err}");
        }
    }

    #[test]
    fn limits_are_quota_and_the_rest_backend_errors() {
        let err = service_error(
            "ValidationException",
            "Item size has exceeded the maximum allowed size",
            400,
        );
        assert!(matches!(
            from_sdk("PutItem", err),
            KvError::QuotaExceeded(_)
        ));
        let err = service_error("ItemCollectionSizeLimitExceededException", "m", 400);
        assert!(matches!(
            from_sdk("PutItem", err),
            KvError::QuotaExceeded(_)
        ));
        for code in [
            "ResourceNotFoundException",
            "AccessDeniedException",
            "UnrecognizedClientException",
            "ValidationException",
        ] {
            let err = from_sdk("GetItem", service_error(code, "m", 400));
            assert!(matches!(err, KvError::Backend(_)), "{code}: {err:?}");
        }
    }

    #[test]
    fn timeouts_are_unavailable_and_keep_their_chain() {
        let err: SdkError<GetItemError, RawResponse> =
            SdkError::timeout_error(std::io::Error::other("attempt timeout after 10s"));
        let err = from_sdk("GetItem", err);
        assert!(err.is_retryable());
        assert!(
            err.to_string().contains("attempt timeout after 10s"),
            "{err}"
        );
    }

    #[test]
    fn a_refused_connection_is_found_in_the_chain() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let wrapped = RequestFailed {
            operation: "PutItem",
            detail: String::new(),
            source: Box::new(refused),
        };
        assert!(connection_refused(&wrapped));
        assert!(!connection_refused(&std::io::Error::from(
            std::io::ErrorKind::ConnectionReset
        )));
    }
}
