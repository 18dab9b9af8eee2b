//! The deploy-stack function: starts one stack's operation (docs/design.md, "Stack lifecycle")
//! and writes the stack's record. It never waits for CloudFormation: check follows the work.
//!
//! The stack operations it shares with check and rollback live in `stackwave_aws::stacks`.

use chrono::Utc;
use stackwave_aws::stacks::{new_record, start};
use stackwave_aws::{Ctx, RunStore};
use stackwave_core::io::{wake_index_key, DeployStackInput, DeployStackOutput, WakeIndex};
use stackwave_core::reconcile;
use stackwave_core::record::{Action, Operation, Phase, StackRecord};
use stackwave_core::Error;

/// The input shape, shown in `InvalidInput` errors.
pub const ACCEPTED: &str = "{\"run\": {...}, \"stack\": \"StackName\"}";

pub async fn handle(ctx: &Ctx, input: DeployStackInput) -> Result<DeployStackOutput, Error> {
    let run = &input.run;
    let stack = input.stack.as_str();
    let store = RunStore::for_run(&ctx.clients.s3, run);

    // 1. A retried invoke finds its record: it starts nothing.
    if let Some(record) = store.record(run, stack).await? {
        tracing::info!(stack = %stack, phase = ?record.phase, action = ?record.action, "record exists: retried invoke, nothing started");
        return Ok(output_of(&record));
    }

    let plan = store.plan(run).await?;
    let planned = plan.stack(stack).ok_or_else(|| {
        Error::Internal(format!(
            "stack {stack} is not in the plan at s3://{}/{}. Fix: deploy-stack runs only for stacks of the plan; \
             this is a bug in the state machine input",
            run.bucket,
            run.plan_key()
        ))
    })?;

    // Before the operation starts, so that its CloudFormation events find this run.
    let index = WakeIndex {
        execution_arn: run.execution_arn.clone(),
        run_prefix: run.run_prefix.clone(),
    };
    store.put_json(&wake_index_key(stack), &index).await?;

    let mut record = new_record(run, planned);
    match start(ctx, run, &store, planned, &mut record).await {
        Ok(()) => {
            store.put_record(run, &record).await?;
            tracing::info!(stack = %stack, operation = ?record.operation, phase = ?record.phase, action = ?record.action, "stack started");
            if record.phase == Phase::ChangeSetPending {
                if let Some(next) = Box::pin(execute_when_ready(ctx, &record)).await {
                    store.put_record(run, &next).await?;
                    record = next;
                }
            }
            Ok(output_of(&record))
        }
        Err(e) if e.is_transient() => Err(e),
        Err(e) => {
            // Keep the failure in the run's records so the summary names it; the error itself
            // ends the Map branch.
            record.phase = Phase::Done;
            record.action = Action::Failed;
            record.reason = e.to_string();
            record.finished_at = Some(reconcile::timestamp(Utc::now()));
            if let Err(w) = store.put_record(run, &record).await {
                tracing::warn!(stack = %stack, error = %w, "could not write the failed record");
            }
            tracing::error!(stack = %stack, error_type = e.name(), error = %e, "stack not started");
            Err(e)
        }
    }
}

/// Change sets send no events, so a change set the scheduling step found pending would cost
/// the stack a whole park. Wait up to `config.change_set_wait` (20 s by default) for it to be ready (DescribeChangeSet
/// at once, then after 1, 1, 2, 2, 3, ... s) and carry out what `reconcile::advance` decides:
/// ExecuteChangeSet, or a transition that needs no call (no changes, a failed change set).
/// Anything else, an error, or a change set still pending at the end is left to the scheduling
/// step, which observes the same record: the new record, or `None` for "as it was".
async fn execute_when_ready(ctx: &Ctx, record: &StackRecord) -> Option<StackRecord> {
    let stack = record.stack.as_str();
    let wait = ctx.config.change_set_wait;
    if wait.is_zero() {
        return None;
    }
    let deadline = std::time::Instant::now() + wait;
    let mut attempt: u64 = 0;
    loop {
        let state = match stackwave_aws::cfn::change_set_state(
            &ctx.clients.cfn,
            stack,
            &record.change_set_name,
        )
        .await
        {
            Ok(state) => state,
            Err(e) => {
                tracing::warn!(stack = %stack, error = %e, "change set not observed: the scheduling step takes over");
                return None;
            }
        };
        let obs = reconcile::Observation {
            stack: stackwave_core::reconcile::StackView::NotObserved,
            change_set: state,
            now: Utc::now(),
        };
        let advance = reconcile::advance(record, &obs);
        match advance.step {
            reconcile::Step::ExecuteChangeSet => {
                return match stackwave_aws::cfn::execute_change_set(
                    &ctx.clients.cfn,
                    stack,
                    &record.change_set_name,
                    &record.client_token,
                )
                .await
                {
                    Ok(()) => {
                        let waited = wait.saturating_sub(
                            deadline.saturating_duration_since(std::time::Instant::now()),
                        );
                        tracing::info!(stack = %stack, waited_ms = waited.as_millis() as u64, "change set ready: executed");
                        Some(advance.record)
                    }
                    Err(e) => {
                        tracing::warn!(stack = %stack, error = %e, "ExecuteChangeSet failed: the scheduling step takes over");
                        None
                    }
                };
            }
            reconcile::Step::Settle { .. } | reconcile::Step::Wait
                if advance.record.phase != record.phase =>
            {
                tracing::info!(stack = %stack, phase = ?advance.record.phase, action = ?advance.record.action, "change set settled without an operation");
                return Some(advance.record);
            }
            reconcile::Step::Wait => {}
            other => {
                tracing::info!(stack = %stack, step = ?other, "change set needs the scheduling step");
                return None;
            }
        }
        attempt += 1;
        let pause = std::time::Duration::from_secs(attempt.div_ceil(2));
        let now = std::time::Instant::now();
        if now + pause >= deadline {
            tracing::info!(stack = %stack, "change set still pending: the scheduling step takes over");
            return None;
        }
        tokio::time::sleep(pause).await;
    }
}

/// The JSON entry point used by main.rs and by the local gateway.
pub async fn handle_json(ctx: &Ctx, input: serde_json::Value) -> Result<serde_json::Value, Error> {
    let input: DeployStackInput = stackwave_aws::parse_input(input, ACCEPTED)?;
    // Boxed: the nested SDK futures would otherwise overflow the compiler's layout depth.
    stackwave_aws::to_output(&Box::pin(handle(ctx, input)).await?)
}

fn output_of(record: &StackRecord) -> DeployStackOutput {
    let operation = match record.operation {
        Operation::Create => "create",
        Operation::Update => "update",
        Operation::Recreate => "recreate",
    };
    DeployStackOutput {
        stack: record.stack.clone(),
        operation: operation.to_string(),
    }
}
