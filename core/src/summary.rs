//! The run summary and the notification text built from it.
//! (skeleton: signatures are the contract; bodies are being written)

use crate::io::{CaughtError, RunContext, RunSummary, StageRef};
use crate::plan::Plan;
use crate::record::StackRecord;

/// Build the summary: every stack of the plan, with its record's action, or `not_started`.
pub fn build(
    run: &RunContext,
    plan: &Plan,
    records: &[StackRecord],
    error: Option<&CaughtError>,
) -> RunSummary {
    let _ = (plan, records);
    RunSummary {
        status: crate::io::RunStatus::Failed,
        environment: run.environment.clone(),
        execution_arn: run.execution_arn.clone(),
        stacks: vec![],
        failed_stack: None,
        root_cause: None,
        error: error.map(|e| e.error.clone()),
    }
}

/// A human message: a short subject (at most 100 characters, as SNS requires) and a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub subject: String,
    pub body: String,
}

/// The run is starting.
pub fn started(run: &RunContext, stack_count: u32, stages: &[StageRef]) -> Message {
    let _ = (stack_count, stages);
    Message { subject: format!("stackwave {}: started", run.environment), body: String::new() }
}

/// The run ended (success or failure): subject names the environment and, on failure, the failed
/// stack; body has the root cause, a table of every stack, and a console link.
pub fn finished(run: &RunContext, summary: &RunSummary) -> Message {
    let _ = summary;
    Message { subject: format!("stackwave {}: finished", run.environment), body: String::new() }
}

/// Plan rejected the run: invalid input or manifest, or the environment is locked.
pub fn rejected(environment: Option<&str>, execution_arn: &str, error: &CaughtError) -> Message {
    let _ = (execution_arn, error);
    Message { subject: format!("stackwave {}: rejected", environment.unwrap_or("?")), body: String::new() }
}

/// The summary as a fixed-width text table (used by the alert body and the CLI).
pub fn table(summary: &RunSummary) -> String {
    let _ = summary;
    String::new()
}

/// Step Functions console link for an execution ARN.
pub fn console_url(execution_arn: &str) -> String {
    let region = execution_arn.split(':').nth(3).unwrap_or("us-east-1");
    format!("https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}")
}
