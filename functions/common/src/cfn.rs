//! CloudFormation calls shared by the functions.

use aws_sdk_cloudformation::types::Stack;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use stackwave_core::Error;

use crate::aws_error;

/// Does this DescribeStacks error mean "no such stack"?
///
/// AWS answers DescribeStacks for a missing stack with the generic `ValidationError` code; only
/// its message ("Stack with id X does not exist") tells it from other validation errors, so
/// the message is checked here, and only here.
pub fn is_stack_absent<E: ProvideErrorMetadata>(e: &E) -> bool {
    e.code() == Some("ValidationError") && e.message().is_some_and(|m| m.contains("does not exist"))
}

/// DescribeStacks for one stack: `None` when it does not exist.
pub async fn describe_stack(
    cfn: &aws_sdk_cloudformation::Client,
    stack: &str,
) -> Result<Option<Stack>, Error> {
    match cfn.describe_stacks().stack_name(stack).send().await {
        Ok(out) => Ok(out.stacks.unwrap_or_default().into_iter().next()),
        Err(e) if e.as_service_error().is_some_and(is_stack_absent) => Ok(None),
        Err(e) => Err(aws_error("cloudformation:DescribeStacks", e)),
    }
}

/// DescribeChangeSet: the change set's state, `None` when it does not exist.
pub async fn change_set_state(
    cfn: &aws_sdk_cloudformation::Client,
    stack: &str,
    change_set: &str,
) -> Result<Option<stackwave_core::reconcile::ChangeSetState>, Error> {
    match cfn
        .describe_change_set()
        .stack_name(stack)
        .change_set_name(change_set)
        .send()
        .await
    {
        Ok(cs) => Ok(Some(stackwave_core::reconcile::ChangeSetState {
            status: cs
                .status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            execution_status: cs.execution_status().map(|s| s.as_str().to_string()),
            reason: cs.status_reason().map(str::to_string),
        })),
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_change_set_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(aws_error("cloudformation:DescribeChangeSet", e)),
    }
}

/// ExecuteChangeSet with the record's ClientRequestToken. A token used already means an
/// earlier try executed this change set: that is success.
pub async fn execute_change_set(
    cfn: &aws_sdk_cloudformation::Client,
    stack: &str,
    change_set: &str,
    client_token: &str,
) -> Result<(), Error> {
    match cfn
        .execute_change_set()
        .stack_name(stack)
        .change_set_name(change_set)
        .client_request_token(client_token)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_token_already_exists_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(aws_error("cloudformation:ExecuteChangeSet", e)),
    }
}
