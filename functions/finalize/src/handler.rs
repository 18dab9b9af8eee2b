//! The finalize function: build the run summary from the plan and every stack record, keep it in
//! S3 beside the run, record the environment's last successful deployment in SSM, and return the
//! summary as the execution's output (bounded to fit the execution's state, `summary::bounded`).
//!
//! The summary is never lost to bookkeeping: when writing it to S3 or updating SSM fails, the
//! failure is logged and the summary is still returned.
//!
//! Finalize also releases the environment lock (`stackwave_aws::lock`) when it holds this
//! execution's ARN, on every path: the state machine reaches Finalize after success, after a
//! failure, and after a run-level rollback. It releases it even when building the summary fails
//! for good (anything but throttling, which the state machine retries). When Finalize itself
//! cannot run to the end (the NotifyRejected path after a Finalize failure), the lock stays
//! behind, and the environment stays usable all the same: the next execution's plan takes the
//! lease over as soon as this execution is no longer RUNNING, and in any case once it expires.

use aws_sdk_ssm::types::ParameterType;
use serde::Serialize;
use stackwave_aws::{aws_error, lock, Ctx, RunStore};
use stackwave_core::io::{CaughtError, FinalizeInput, RunContext, RunStatus, RunSummary};
use stackwave_core::record::{Action, Operation, StackRecord};
use stackwave_core::Error;
use tracing::{info, warn};

/// The input shape, shown in `InvalidInput` errors.
pub const ACCEPTED: &str = "{\"run\": {...}, \"error\": {\"Error\": \"...\", \"Cause\": \"...\"}, \"rollbackError\": {\"Error\": \"...\", \"Cause\": \"...\"}}";

/// A standard-tier SSM parameter holds at most 4 KB.
pub const MAX_PARAMETER_BYTES: usize = 4096;

/// SSM parameter with the environment's last successful deployment.
pub fn last_deployment_parameter(environment: &str) -> String {
    format!("/stackwave/{environment}/last-deployment")
}

/// The value of `/stackwave/<env>/last-deployment`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastDeployment {
    pub execution_arn: String,
    pub finished_at: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub manifest_uri: String,
    pub stacks: usize,
}

pub async fn handle(ctx: &Ctx, input: FinalizeInput) -> Result<RunSummary, Error> {
    let FinalizeInput {
        run,
        error,
        rollback_error,
    } = input;
    // A loop segment's failure reaches the parent wrapped in its DescribeExecution output.
    let error = error.map(CaughtError::unnested);
    let rollback_error = rollback_error.map(CaughtError::unnested);
    // Boxed: the nested SDK futures would otherwise overflow the compiler's layout depth.
    let result = Box::pin(summarize(ctx, &run, error, rollback_error)).await;
    match &result {
        // The state machine retries this invoke: the next try releases the lock.
        Err(e) if e.is_transient() => {}
        _ => Box::pin(release_lock(ctx, &run)).await,
    }
    result
}

/// Release the environment lock if it is this execution's; a failure is logged, never raised
/// (the lease's expiry and the takeover of a finished execution's lease keep the environment
/// usable).
async fn release_lock(ctx: &Ctx, run: &RunContext) {
    match lock::release(ctx, &run.environment, &run.execution_arn).await {
        Ok(released) => {
            info!(environment = %run.environment, execution = %run.execution_name, released = ?released, "environment lock handled")
        }
        Err(e) => warn!(
            environment = %run.environment,
            execution = %run.execution_name,
            error = %e,
            "could not release the environment lock; the next run takes it over since this execution is ending"
        ),
    }
}

/// Build the summary, write it to S3 and record the last successful deployment.
async fn summarize(
    ctx: &Ctx,
    run: &RunContext,
    error: Option<stackwave_core::io::CaughtError>,
    rollback_error: Option<stackwave_core::io::CaughtError>,
) -> Result<RunSummary, Error> {
    let store = RunStore::for_run(&ctx.clients.s3, run);
    let plan = store.plan(run).await?;
    let records = store.all_records(run).await?;
    let mut summary = stackwave_core::summary::build(run, &plan, &records, error.as_ref());
    if let Some(stopped) = &rollback_error {
        warn!(environment = %run.environment, execution = %run.execution_name, error = %stopped.error, "the run-level rollback stopped before the end");
        stackwave_core::summary::rollback_stopped(&mut summary, &records, stopped);
    }

    let key = run.summary_key();
    match store.put_json(&key, &summary).await {
        Ok(()) => info!(
            environment = %run.environment,
            execution = %run.execution_name,
            status = ?summary.status,
            stacks = summary.stacks.len(),
            summary_key = %key,
            "run summary written"
        ),
        Err(e) => warn!(
            environment = %run.environment,
            execution = %run.execution_name,
            summary_key = %key,
            error = %e,
            "could not write the run summary to S3; it is still the execution's output"
        ),
    }

    record_secret_sources(&store, run, &summary, &records).await;
    if summary.status == RunStatus::Succeeded {
        record_last_deployment(ctx, run, &summary).await;
    }
    // The execution's state must stay within Step Functions' payload limit: past it, the run
    // would fail here after every stack deployed. summary.json keeps every row.
    let bounded = stackwave_core::summary::bounded(
        &summary,
        &format!("s3://{}/{key}", run.bucket),
        stackwave_core::summary::MAX_STATE_SUMMARY_BYTES,
    );
    if bounded.stacks_omitted > 0 {
        info!(
            environment = %run.environment,
            execution = %run.execution_name,
            omitted = bounded.stacks_omitted,
            summary_key = %key,
            "the execution's output leaves out rows that do not fit its state; summary.json lists every stack"
        );
    }
    Ok(bounded)
}

/// For each stack the run leaves created or updated, the SSM sources of the secrets it now
/// runs with (`RunContext::secret_sources_key`), for a later run's rollback. A stack without
/// secrets drops the sources of an earlier deploy: after a create (a leftover of an earlier
/// stack of that name), or when its snapshot had some.
async fn record_secret_sources(
    store: &RunStore,
    run: &RunContext,
    summary: &RunSummary,
    records: &[StackRecord],
) {
    for row in &summary.stacks {
        if !matches!(row.action, Action::Created | Action::Updated) {
            continue;
        }
        let Some(record) = records.iter().find(|r| r.stack == row.name) else {
            continue;
        };
        let key = run.secret_sources_key(&record.stack);
        let written = if !record.secrets.is_empty() {
            store.put_json(&key, &record.secrets).await
        } else if record.operation != Operation::Update
            || record
                .snapshot
                .as_ref()
                .is_some_and(|s| !s.secrets.is_empty())
        {
            store.delete(&key).await
        } else {
            Ok(())
        };
        if let Err(e) = written {
            // The run's outcome stands; only a later rollback of this stack is affected.
            warn!(stack = %record.stack, key = %key, error = %e, "could not record the stack's secret sources: a later run-level rollback may not restore its NoEcho parameters to this run's values");
        }
    }
}

/// The JSON entry point used by main.rs and by the local gateway.
pub async fn handle_json(ctx: &Ctx, input: serde_json::Value) -> Result<serde_json::Value, Error> {
    let input: FinalizeInput = stackwave_aws::parse_input(input, ACCEPTED)?;
    // Boxed: the nested SDK futures would otherwise overflow the compiler's layout depth.
    stackwave_aws::to_output(&Box::pin(handle(ctx, input)).await?)
}

/// The parameter's value: JSON under [`MAX_PARAMETER_BYTES`] (the manifest URI is dropped in the
/// unlikely case it would not fit).
pub fn last_deployment_value(
    run: &RunContext,
    summary: &RunSummary,
    finished_at: &str,
) -> Result<String, Error> {
    let mut value = LastDeployment {
        execution_arn: run.execution_arn.clone(),
        finished_at: finished_at.to_string(),
        manifest_uri: run.manifest_uri.clone(),
        stacks: summary.stacks.len(),
    };
    let encode = |v: &LastDeployment| {
        serde_json::to_string(v)
            .map_err(|e| Error::Internal(format!("serialize last deployment: {e}")))
    };
    let text = encode(&value)?;
    if text.len() <= MAX_PARAMETER_BYTES {
        return Ok(text);
    }
    value.manifest_uri.clear();
    let text = encode(&value)?;
    if text.len() <= MAX_PARAMETER_BYTES {
        Ok(text)
    } else {
        Err(Error::Internal(format!(
            "last deployment record is {} bytes, above SSM's {MAX_PARAMETER_BYTES}",
            text.len()
        )))
    }
}

async fn record_last_deployment(ctx: &Ctx, run: &RunContext, summary: &RunSummary) {
    let name = last_deployment_parameter(&run.environment);
    let finished_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let value = match last_deployment_value(run, summary, &finished_at) {
        Ok(v) => v,
        Err(e) => {
            warn!(environment = %run.environment, parameter = %name, error = %e, "last deployment not recorded");
            return;
        }
    };
    let result = ctx
        .clients
        .ssm
        .put_parameter()
        .name(&name)
        .value(value)
        .r#type(ParameterType::String)
        .overwrite(true)
        .send()
        .await;
    match result {
        Ok(_) => {
            info!(environment = %run.environment, parameter = %name, execution = %run.execution_name, "last deployment recorded")
        }
        Err(e) => {
            let error = aws_error("ssm:PutParameter", e);
            warn!(
                environment = %run.environment,
                parameter = %name,
                error = %error,
                "could not record the last deployment; the run's summary is unaffected"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stackwave_core::io::PollSeconds;

    fn run(manifest_uri: String) -> RunContext {
        RunContext {
            execution_arn: "arn:aws:states:us-east-1:123456789012:execution:stackwave-deploy:run-1"
                .into(),
            execution_name: "run-1".into(),
            environment: "dev".into(),
            bucket: "artifacts".into(),
            run_prefix: "runs/dev/run-1/".into(),
            poll: PollSeconds { min: 1, max: 2 },
            max_concurrency: 10,
            manifest_uri,
            started_at: "2026-11-27T10:15:00.000Z".into(),
            on_failure: stackwave_core::manifest::OnFailure::Rollback,
            fallback_poll_seconds: stackwave_core::io::DEFAULT_FALLBACK_POLL_SECONDS,
            segment_events: stackwave_core::budget::SEGMENT_EVENTS,
        }
    }

    fn summary() -> RunSummary {
        RunSummary {
            status: RunStatus::Succeeded,
            environment: "dev".into(),
            execution_arn: "arn:x".into(),
            stacks: vec![],
            failed_stack: None,
            root_cause: None,
            error: None,
            stacks_omitted: 0,
            summary_uri: None,
        }
    }

    #[test]
    fn last_deployment_value_is_small_json() {
        let r = run("s3://artifacts/deployments/dev/t1/manifest.yaml".into());
        let text = last_deployment_value(&r, &summary(), "2026-11-27T11:00:00.000Z").unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["executionArn"], r.execution_arn);
        assert_eq!(v["finishedAt"], "2026-11-27T11:00:00.000Z");
        assert_eq!(
            v["manifestUri"],
            "s3://artifacts/deployments/dev/t1/manifest.yaml"
        );
        assert_eq!(v["stacks"], 0);
    }

    #[test]
    fn oversized_manifest_uri_is_dropped_to_fit() {
        let r = run(format!("s3://artifacts/{}", "k".repeat(5000)));
        let text = last_deployment_value(&r, &summary(), "t").unwrap();
        assert!(text.len() <= MAX_PARAMETER_BYTES);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(v.get("manifestUri").is_none());
        assert_eq!(v["executionArn"], r.execution_arn);
    }
}
