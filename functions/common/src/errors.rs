//! SDK errors → `stackwave_core::Error`, by error code, never by message text.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use stackwave_core::Error;

/// Error codes AWS uses for throttling, across services.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
    "RequestThrottled",
    "RequestThrottledException",
    "ProvisionedThroughputExceededException",
];

/// Is this code a throttling code?
pub fn classify_code(code: Option<&str>) -> bool {
    code.is_some_and(|c| THROTTLING_CODES.contains(&c))
}

/// Map any SDK error to `Throttled` or `AwsService`, keeping the operation, code and message.
pub fn aws_error<E, R>(operation: &str, err: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let (code, message) = match &err {
        SdkError::ServiceError(se) => (
            se.err().code().map(str::to_string),
            se.err()
                .message()
                .map(str::to_string)
                .unwrap_or_else(|| se.err().to_string()),
        ),
        other => (None, format!("{other}")),
    };
    if classify_code(code.as_deref()) {
        Error::Throttled {
            operation: operation.to_string(),
            message,
        }
    } else {
        Error::AwsService {
            operation: operation.to_string(),
            code: code.unwrap_or_else(|| "Unknown".to_string()),
            message,
        }
    }
}
