//! Error names: a contract with the state machine.
//!
//! Every variant maps to a stable PascalCase `errorType` (see [`Error::name`]). The ASL's
//! Retry and Catch clauses use exactly these names; a test checks that every name the ASL
//! uses is in [`ERROR_NAMES`] (or is a `States.*` / `Lambda.*` name of the service).

use crate::manifest::ValidationIssue;

/// Every `errorType` stackwave's functions can raise.
pub const ERROR_NAMES: &[&str] = &[
    "InvalidInput",
    "InvalidManifest",
    "TemplateNotFound",
    "ParameterNotFound",
    "StackFailed",
    "StackTimeout",
    "DeploymentLocked",
    "Throttled",
    "AwsServiceError",
    "RollbackFailed",
    "DuplicateEvent",
    "InternalError",
];

/// Errors that cross a Lambda boundary. Each message names the stack (where there is one),
/// the cause and the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The execution input does not have the accepted shape.
    #[error("invalid input: {message}. Accepted shape: {accepted}")]
    InvalidInput { message: String, accepted: String },

    /// The manifest failed validation; every problem is listed.
    #[error("invalid manifest: {} problem(s):\n{}", .issues.len(), crate::manifest::render_issues(.issues))]
    InvalidManifest { issues: Vec<ValidationIssue> },

    /// A stack's template is not where the manifest says.
    #[error("stack {stack}: template {location} not found. Fix: upload the template or correct `template` in the manifest")]
    TemplateNotFound { stack: String, location: String },

    /// An `{output}` or `{ssm}` parameter could not be resolved at deploy time.
    #[error("stack {stack}: parameter {parameter}: {cause}. Fix: {fix}")]
    ParameterNotFound {
        stack: String,
        parameter: String,
        cause: String,
        fix: String,
    },

    /// A stack operation failed.
    #[error("stack {stack} failed: {cause}")]
    StackFailed { stack: String, cause: String },

    /// A stack did not settle within its timeoutMinutes.
    #[error("stack {stack} did not settle within {minutes} minutes; the operation was cancelled. Fix: raise timeoutMinutes or find what hangs")]
    StackTimeout { stack: String, minutes: u32 },

    /// Another execution holds the environment's lock.
    #[error("environment {environment} is locked by {holder} until {expires}. Fix: wait for that execution to end, or stop it; an expired lease is taken over")]
    DeploymentLocked {
        environment: String,
        holder: String,
        expires: String,
    },

    /// AWS throttled a call; transient, the state machine retries it.
    #[error("throttled by AWS on {operation}: {message}")]
    Throttled { operation: String, message: String },

    /// A non-transient AWS error.
    #[error("AWS {operation} failed ({code}): {message}")]
    AwsService {
        operation: String,
        code: String,
        message: String,
    },

    /// A rollback step failed: a human must look.
    #[error("rollback of stack {stack} failed: {cause}. A human must look at this stack")]
    RollbackFailed { stack: String, cause: String },

    /// The EventBridge event that started this execution was already handled by another
    /// execution (a redelivery, or the same upload seen twice): nothing is deployed.
    #[error("duplicate event: {event} was already handled by execution {execution} (claimed in SSM parameter {parameter}); this execution deployed nothing. Fix: nothing, for a redelivered event; to deploy again, upload the manifest again (a new object version), send a new event, or start an execution from the console")]
    DuplicateEvent {
        event: String,
        execution: String,
        parameter: String,
    },

    /// A bug or an unexpected state.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The stable `errorType` name.
    pub fn name(&self) -> &'static str {
        match self {
            Error::InvalidInput { .. } => "InvalidInput",
            Error::InvalidManifest { .. } => "InvalidManifest",
            Error::TemplateNotFound { .. } => "TemplateNotFound",
            Error::ParameterNotFound { .. } => "ParameterNotFound",
            Error::StackFailed { .. } => "StackFailed",
            Error::StackTimeout { .. } => "StackTimeout",
            Error::DeploymentLocked { .. } => "DeploymentLocked",
            Error::Throttled { .. } => "Throttled",
            Error::AwsService { .. } => "AwsServiceError",
            Error::RollbackFailed { .. } => "RollbackFailed",
            Error::DuplicateEvent { .. } => "DuplicateEvent",
            Error::Internal(_) => "InternalError",
        }
    }

    /// Whether the state machine should retry it.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Throttled { .. })
    }
}

impl From<Error> for lambda_runtime::Diagnostic {
    fn from(e: Error) -> Self {
        lambda_runtime::Diagnostic {
            error_type: e.name().to_string(),
            error_message: e.to_string(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_name_is_listed() {
        let samples = [
            Error::InvalidInput {
                message: String::new(),
                accepted: String::new(),
            },
            Error::InvalidManifest { issues: vec![] },
            Error::TemplateNotFound {
                stack: String::new(),
                location: String::new(),
            },
            Error::ParameterNotFound {
                stack: String::new(),
                parameter: String::new(),
                cause: String::new(),
                fix: String::new(),
            },
            Error::StackFailed {
                stack: String::new(),
                cause: String::new(),
            },
            Error::StackTimeout {
                stack: String::new(),
                minutes: 1,
            },
            Error::DeploymentLocked {
                environment: String::new(),
                holder: String::new(),
                expires: String::new(),
            },
            Error::Throttled {
                operation: String::new(),
                message: String::new(),
            },
            Error::AwsService {
                operation: String::new(),
                code: String::new(),
                message: String::new(),
            },
            Error::RollbackFailed {
                stack: String::new(),
                cause: String::new(),
            },
            Error::DuplicateEvent {
                event: String::new(),
                execution: String::new(),
                parameter: String::new(),
            },
            Error::Internal(String::new()),
        ];
        assert_eq!(samples.len(), ERROR_NAMES.len());
        // Exhaustive, with no wildcard: a new variant does not compile until it has a place
        // here, and then the count above fails until it has a sample and a listed name.
        let place = |e: &Error| -> usize {
            match e {
                Error::InvalidInput { .. } => 0,
                Error::InvalidManifest { .. } => 1,
                Error::TemplateNotFound { .. } => 2,
                Error::ParameterNotFound { .. } => 3,
                Error::StackFailed { .. } => 4,
                Error::StackTimeout { .. } => 5,
                Error::DeploymentLocked { .. } => 6,
                Error::Throttled { .. } => 7,
                Error::AwsService { .. } => 8,
                Error::RollbackFailed { .. } => 9,
                Error::DuplicateEvent { .. } => 10,
                Error::Internal(_) => 11,
            }
        };
        let mut places: Vec<usize> = samples.iter().map(place).collect();
        places.sort_unstable();
        places.dedup();
        assert_eq!(
            places,
            (0..12).collect::<Vec<_>>(),
            "one sample of every variant"
        );
        let names: std::collections::BTreeSet<&str> = samples.iter().map(Error::name).collect();
        assert_eq!(
            names.len(),
            ERROR_NAMES.len(),
            "every variant has its own name"
        );
        for e in samples {
            assert!(
                ERROR_NAMES.contains(&e.name()),
                "{} missing from ERROR_NAMES",
                e.name()
            );
            let d: lambda_runtime::Diagnostic = e.into();
            assert!(!d.error_type.is_empty());
        }
    }
}
