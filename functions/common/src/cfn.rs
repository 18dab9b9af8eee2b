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
