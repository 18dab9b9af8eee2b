//! An execution that ended outside the state machine's own path: stopped (StopExecution,
//! `ABORTED`), past its Step Functions timeout (`TIMED_OUT`), or failed where no Catch took it
//! (a service limit). EventBridge's `Step Functions Execution Status Change` event for
//! stackwave's state machine (rule `ExecutionEndedRule` in template.yaml) brings it here. When
//! the run did not finalize, this writes its summary (every stack, those in flight with their
//! live CloudFormation status), releases the environment lock and sends the alert.

use std::collections::HashMap;

use serde_json::{json, Value};
use stackwave_aws::{cfn, lock, Ctx, RunStore};
use stackwave_core::io::{PollSeconds, RunContext, DEFAULT_MAX_CONCURRENCY};
use stackwave_core::summary;
use stackwave_core::trigger;
use stackwave_core::Error;
use tracing::{info, warn};

use crate::{publish, Alert};

/// EventBridge's detail-type for Step Functions execution status events.
pub const STATUS_CHANGE: &str = "Step Functions Execution Status Change";

/// Is this input an execution status event?
pub fn is_status_event(input: &Value) -> bool {
    input.get("detail-type").and_then(Value::as_str) == Some(STATUS_CHANGE)
}

pub async fn handle(ctx: &Ctx, event: &Value) -> Result<Value, Error> {
    let detail = &event["detail"];
    let text = |k: &str| detail.get(k).and_then(Value::as_str);
    let status = text("status").unwrap_or_default().to_string();
    let (Some(arn), Some(name)) = (text("executionArn"), text("name")) else {
        return Err(Error::InvalidInput {
            message: "the status event has no detail.executionArn or detail.name".into(),
            accepted: format!("an EventBridge `{STATUS_CHANGE}` event"),
        });
    };
    let skip = |why: &str| {
        info!(execution = %arn, status = %status, why, "execution status event: nothing to do");
        Ok(json!({"handled": false, "why": why}))
    };
    if !matches!(status.as_str(), "ABORTED" | "TIMED_OUT" | "FAILED") {
        return skip("not an ending stackwave handles");
    }
    let input: Value = text("input")
        .and_then(|i| serde_json::from_str(i).ok())
        .unwrap_or(Value::Null);
    let environment = input
        .get("environment")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| trigger::environment_hint(&input));
    let Some(environment) = environment else {
        return skip("no environment in the execution's input: the run never started");
    };
    let run = RunContext {
        execution_arn: arn.to_string(),
        execution_name: name.to_string(),
        environment: environment.clone(),
        bucket: ctx.config.bucket.clone(),
        run_prefix: RunContext::prefix_for(&environment, name),
        poll: PollSeconds::default(),
        max_concurrency: DEFAULT_MAX_CONCURRENCY,
        manifest_uri: input
            .get("manifest")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        started_at: detail
            .get("startDate")
            .and_then(Value::as_i64)
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(stackwave_core::reconcile::timestamp)
            .unwrap_or_default(),
        on_failure: Default::default(),
        fallback_poll_seconds: stackwave_core::io::DEFAULT_FALLBACK_POLL_SECONDS,
        segment_events: stackwave_core::budget::SEGMENT_EVENTS,
    };
    let store = RunStore::for_run(&ctx.clients.s3, &run);
    if store.exists(&run.summary_key()).await? {
        return skip("the run finalized: its summary and alert are written");
    }
    if !store.exists(&run.plan_key()).await? {
        return skip("no plan: the run was rejected before it started (plan alerted it)");
    }
    let plan = store.plan(&run).await?;
    let run = RunContext {
        on_failure: plan.on_failure,
        ..run
    };
    let records = store.all_records(&run).await?;
    let mut live = HashMap::new();
    for record in records.iter().filter(|r| {
        r.action == stackwave_core::record::Action::InProgress
            || r.rollback.as_ref().is_some_and(|rb| rb.outcome.is_none())
    }) {
        let seen = match cfn::describe_stack(&ctx.clients.cfn, &record.stack).await {
            Ok(Some(s)) => s.stack_status().map(|s| s.as_str().to_string()),
            Ok(None) => Some("gone (no such stack)".to_string()),
            Err(e) => {
                warn!(stack = %record.stack, error = %e, "stack not observed");
                None
            }
        };
        if let Some(seen) = seen {
            live.insert(record.stack.clone(), seen);
        }
    }
    let error = summary::ended_error(&status, text("error"), text("cause"));
    let run_summary = summary::ended(&run, &plan, &records, &live, &error);
    store.put_json(&run.summary_key(), &run_summary).await?;
    match lock::release(ctx, &environment, arn).await {
        Ok(released) => {
            info!(environment = %environment, released = ?released, "environment lock handled")
        }
        Err(e) => {
            warn!(environment = %environment, error = %e, "could not release the lock; the next run takes it over since this execution has ended")
        }
    }
    let in_flight = summary::in_flight(&records, &live);
    let alert = Alert::ended(&run, &status, &run_summary, &in_flight);
    let out = publish(ctx, &alert).await?;
    info!(environment = %environment, execution = %arn, status = %status, in_flight = in_flight.len(), "ended run summarised and alerted");
    Ok(json!({"handled": true, "status": status, "messageId": out.message_id}))
}
