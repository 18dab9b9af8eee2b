//! The rollback function (issue 3, "Run-level rollback"): when a run fails with
//! `onFailure: rollback`, the state machine asks it which stacks to restore (`action: plan`),
//! then, wave by wave, to start restoring each of them (`action: stack`). It never waits:
//! check, in rollback mode, follows every delete and restore to its end.
//!
//! - A stack this run created is deleted (DeleteStack).
//! - A stack this run updated is redeployed with its snapshot: the template, parameters and
//!   tags it had before the run (UpdateStack).
//! - Unchanged stacks and failed updates (CloudFormation already rolled those back) are never
//!   touched.
//!
//! A rollback that cannot be started is recorded `rollback_failed` with its reason and the fix,
//! and the function returns normally, so the rest of the wave is still restored and the summary
//! and the alerts name the stack. Only throttling escapes (as `Throttled`, retried by the ASL).

use aws_sdk_cloudformation::types::{Capability, Parameter, Tag};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use chrono::Utc;
use serde::Serialize;
use stackwave_aws::{aws_error, Ctx, RunStore};
use stackwave_core::io::{RollbackInput, RollbackPlanOutput, RollbackStackOutput, RunContext};
use stackwave_core::plan::Plan;
use stackwave_core::reconcile;
use stackwave_core::record::{Action, RollbackOperation, Snapshot, StackRecord};
use stackwave_core::rollback;
use stackwave_core::secret;
use stackwave_core::Error;

/// The input shapes, shown in `InvalidInput` errors.
pub const ACCEPTED: &str = "{\"action\": \"plan\", \"run\": {...}} or {\"action\": \"stack\", \"run\": {...}, \"stack\": \"StackName\"}";

/// The answer, by action.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RollbackOutput {
    Plan(RollbackPlanOutput),
    Stack(RollbackStackOutput),
}

pub async fn handle(ctx: &Ctx, input: RollbackInput) -> Result<RollbackOutput, Error> {
    // Boxed: the two SDK call chains in one future nest too deep for the compiler's layout.
    match input {
        RollbackInput::Plan { run } => Box::pin(plan(ctx, &run)).await.map(RollbackOutput::Plan),
        RollbackInput::Stack { run, stack } => Box::pin(restore_stack(ctx, &run, &stack))
            .await
            .map(RollbackOutput::Stack),
    }
}

/// The JSON entry point used by main.rs and by the local gateway.
pub async fn handle_json(ctx: &Ctx, input: serde_json::Value) -> Result<serde_json::Value, Error> {
    let input: RollbackInput = stackwave_aws::parse_input(input, ACCEPTED)?;
    // Boxed: the nested SDK futures would otherwise overflow the compiler's layout depth.
    stackwave_aws::to_output(&Box::pin(handle(ctx, input)).await?)
}

/// `action: plan`: the stacks this run changed, as rollback waves (dependents first).
pub async fn plan(ctx: &Ctx, run: &RunContext) -> Result<RollbackPlanOutput, Error> {
    let store = RunStore::for_run(&ctx.clients.s3, run);
    let plan = store.plan(run).await?;
    let records = store.all_records(run).await?;
    let waves = rollback::plan(&plan, &records);
    let count: usize = waves.iter().map(Vec::len).sum();
    tracing::info!(
        environment = %run.environment,
        execution = %run.execution_name,
        records = records.len(),
        waves = waves.len(),
        count,
        stacks = ?waves,
        "rollback planned"
    );
    Ok(RollbackPlanOutput {
        waves,
        count: u32::try_from(count).unwrap_or(u32::MAX),
    })
}

/// How a rollback start went.
enum Started {
    /// CloudFormation accepted the delete or the update: check follows it.
    Running,
    /// Nothing to do: the stack already has its previous template and parameters.
    AlreadyRestored,
}

/// `action: stack`: start restoring one stack and record it.
pub async fn restore_stack(
    ctx: &Ctx,
    run: &RunContext,
    stack: &str,
) -> Result<RollbackStackOutput, Error> {
    let store = RunStore::for_run(&ctx.clients.s3, run);
    let Some(mut record) = store.record(run, stack).await? else {
        return Err(Error::Internal(format!(
            "stack {stack} has no record at s3://{}/{}, so this run did not change it and there \
             is nothing to roll back. Fix: this is a bug in the rollback plan; restore the stack \
             by hand if it was changed",
            run.bucket,
            run.record_key(stack)
        )));
    };
    // A retried invoke finds the rollback it started: it starts nothing.
    if record.rollback.is_some() {
        tracing::info!(stack = %stack, "rollback recorded already: retried invoke, nothing started");
        return Ok(output_of(&record));
    }
    let Some(operation) = rollback::wanted(&record) else {
        tracing::info!(stack = %stack, action = ?record.action, "the run did not change this stack: nothing to roll back");
        return Ok(output_of(&record));
    };

    let token = rollback::client_token(&run.execution_name, stack);
    let now = Utc::now();
    let started = match operation {
        RollbackOperation::Delete => start_delete(ctx, stack, &token).await,
        RollbackOperation::Restore => match &record.snapshot {
            Some(snapshot) => {
                let plan = store.plan(run).await?;
                start_restore(ctx, run, &plan, stack, snapshot, &token).await
            }
            None => Err(Error::RollbackFailed {
                stack: stack.to_string(),
                cause: "this run updated it but took no snapshot, so its previous template and \
                        parameters are unknown"
                    .into(),
            }),
        },
    };
    let state = match started {
        Ok(Started::Running) => {
            tracing::info!(stack = %stack, operation = operation.as_str(), token = %token, "rollback started");
            rollback::started(operation, &token, now)
        }
        Ok(Started::AlreadyRestored) => {
            tracing::info!(stack = %stack, "the stack already has its previous template and parameters");
            rollback::settled(
                operation,
                &token,
                Action::RolledBack,
                rollback::ALREADY_RESTORED_REASON.to_string(),
                now,
            )
        }
        Err(e) if e.is_transient() => return Err(e),
        Err(e) => {
            let reason = not_started_reason(operation, &record, &e);
            tracing::error!(stack = %stack, operation = operation.as_str(), error_type = e.name(), error = %e, "rollback not started");
            rollback::settled(operation, &token, Action::RollbackFailed, reason, now)
        }
    };
    record.rollback = Some(state);
    store.put_record(run, &record).await?;
    Ok(output_of(&record))
}

fn output_of(record: &StackRecord) -> RollbackStackOutput {
    let state = record.rollback.as_ref();
    RollbackStackOutput {
        stack: record.stack.clone(),
        operation: state
            .map(|s| s.operation)
            .or_else(|| rollback::wanted(record))
            .map(|o| o.as_str().to_string()),
        outcome: state.and_then(|s| s.outcome),
    }
}

/// Why the rollback could not start, and the fix.
fn not_started_reason(operation: RollbackOperation, record: &StackRecord, e: &Error) -> String {
    let (what, fix) = match operation {
        RollbackOperation::Delete => (
            "deleting the stack (created by this run)",
            "correct the cause (termination protection, permissions), then delete the stack by hand"
                .to_string(),
        ),
        RollbackOperation::Restore => (
            "restoring its previous template and parameters",
            match &record.snapshot {
                Some(s) => format!(
                    "correct the cause, then update the stack with its previous template (kept \
                     at {} in the artifact bucket) and parameters",
                    s.template_key
                ),
                None => "redeploy the previous version of the manifest to restore the stack"
                    .to_string(),
            },
        ),
    };
    let cause = match e {
        Error::RollbackFailed { cause, .. } => cause.clone(),
        other => other.to_string(),
    };
    format!("{what} could not be started: {cause}. Fix: {fix}")
}

/// DeleteStack with the rollback's token and role. Deleting a stack that is gone already
/// succeeds; check then sees it absent.
async fn start_delete(ctx: &Ctx, stack: &str, token: &str) -> Result<Started, Error> {
    let result = ctx
        .clients
        .cfn
        .delete_stack()
        .stack_name(stack)
        .client_request_token(token)
        .set_role_arn(ctx.config.cfn_role_arn.clone())
        .send()
        .await;
    match result {
        Ok(_) => Ok(Started::Running),
        // The token was used already: an earlier try started this delete.
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_token_already_exists_exception()) =>
        {
            Ok(Started::Running)
        }
        Err(e) => Err(aws_error("cloudformation:DeleteStack", e)),
    }
}

/// UpdateStack with the snapshot: its template (kept beside the run), parameters and tags; the
/// plan's capabilities and the configured role.
async fn start_restore(
    ctx: &Ctx,
    run: &RunContext,
    plan: &Plan,
    stack: &str,
    snapshot: &Snapshot,
    token: &str,
) -> Result<Started, Error> {
    let region = ctx
        .clients
        .cfn
        .config()
        .region()
        .map(|r| r.as_ref().to_string());
    let url = stackwave_aws::stacks::template_url(
        ctx.config.endpoint_url.as_deref(),
        region.as_deref(),
        &run.bucket,
        &snapshot.template_key,
    );
    // A NoEcho parameter (masked in the snapshot) gets its pre-run value read again from its
    // SSM source at the pre-run version; without a known source it keeps this run's value
    // (UsePreviousValue), and the summary says so (`rollback::restored_reason`).
    let secrets =
        stackwave_aws::secrets::values(&ctx.clients.ssm, stack, &snapshot.secrets).await?;
    let parameters: Vec<Parameter> = snapshot
        .parameters
        .iter()
        .map(|(k, v)| {
            let p = Parameter::builder().parameter_key(k);
            if v != secret::MASKED {
                return p.parameter_value(v).build();
            }
            match secrets.iter().find(|(name, _)| name == k) {
                Some((_, value)) => p.parameter_value(value).build(),
                None => {
                    tracing::warn!(stack = %stack, parameter = %k, "NoEcho parameter: its pre-run value is not known, this run's is kept");
                    p.use_previous_value(true).build()
                }
            }
        })
        .collect();
    let tags: Vec<Tag> = snapshot
        .tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    let capabilities: Vec<Capability> = plan
        .stack(stack)
        .map(|p| p.capabilities.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|c| Capability::from(c.as_str()))
        .collect();
    let result = ctx
        .clients
        .cfn
        .update_stack()
        .stack_name(stack)
        .template_url(&url)
        .set_parameters(Some(parameters))
        .set_tags(Some(tags))
        .set_capabilities(Some(capabilities))
        .set_role_arn(ctx.config.cfn_role_arn.clone())
        .client_request_token(token)
        .send()
        .await;
    match result {
        Ok(_) => {
            tracing::info!(stack = %stack, url = %url, "restore requested");
            Ok(Started::Running)
        }
        Err(e) => match e.as_service_error() {
            Some(se) if se.is_token_already_exists_exception() => Ok(Started::Running),
            // UpdateStack answers an update without changes with this ValidationError; its
            // message is the only thing that tells it from other validation errors.
            Some(se)
                if se.code() == Some("ValidationError")
                    && se.message().is_some_and(reconcile::is_no_change_reason) =>
            {
                Ok(Started::AlreadyRestored)
            }
            _ => Err(aws_error("cloudformation:UpdateStack", e)),
        },
    }
}
