//! The wake function (docs/design.md, "Wake-up"): a parked run wakes on CloudFormation's own
//! events, and the fallback poll only bounds how late a lost event makes it.
//!
//! Two callers:
//! * the state machine's `Park` task (`lambda:invoke.waitForTaskToken`) with
//!   `{"action": "park", "token", "run"}`: it stores the task token, then wakes the run at once
//!   if an event arrived since the last scheduling step looked at the stacks;
//! * the EventBridge rule on `CloudFormation Stack Status Change`: it finds the run that owns
//!   the stack (the wake index deploy-stack wrote), sets the run's pending flag, then
//!   completes the run's parked task with `SendTaskSuccess`.
//!
//! Both write before they read (token then flag; flag then token), and the scheduling step
//! clears the flag before it observes, so an event is never lost between the look and the
//! park. An event's status is only a hint: the scheduling step observes every stack itself,
//! so a duplicated, late or out-of-order event costs one scheduling step at most. A stale or
//! used token (`InvalidToken`, `TaskTimedOut`, `TaskDoesNotExist`) is ignored.

use aws_sdk_sfn::error::ProvideErrorMetadata;
use serde::Serialize;
use serde_json::Value;
use stackwave_aws::{aws_error, Ctx, RunStore};
use stackwave_core::io::{wake_index_key, RunContext, WakeIndex, WakeInput, WakeToken};
use stackwave_core::Error;

/// The input shapes, shown in `InvalidInput` errors.
pub const ACCEPTED: &str = "{\"action\": \"park\", \"token\": \"<task token>\", \"run\": {...}}, or an EventBridge event of detail-type \"CloudFormation Stack Status Change\"";

/// The event this function wakes on.
pub const STATUS_CHANGE: &str = "CloudFormation Stack Status Change";

/// What the function did (its answer, and the log line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WakeOutput {
    /// `parked`, `woken`, or `ignored`.
    pub outcome: &'static str,
    pub detail: String,
}

fn out(outcome: &'static str, detail: impl Into<String>) -> WakeOutput {
    let out = WakeOutput {
        outcome,
        detail: detail.into(),
    };
    tracing::info!(outcome, detail = %out.detail, "wake");
    out
}

pub async fn handle(ctx: &Ctx, input: WakeInput) -> Result<WakeOutput, Error> {
    match input {
        WakeInput::Park { token, run, .. } => park(ctx, &token, &run).await,
        WakeInput::Event(event) => on_event(ctx, &event).await,
    }
}

/// The JSON entry point used by main.rs and by the local gateway.
pub async fn handle_json(ctx: &Ctx, input: Value) -> Result<Value, Error> {
    let input: WakeInput = stackwave_aws::parse_input(input, ACCEPTED)?;
    stackwave_aws::to_output(&Box::pin(handle(ctx, input)).await?)
}

/// Store the token; wake at once if an event came after the last look.
pub async fn park(ctx: &Ctx, token: &str, run: &RunContext) -> Result<WakeOutput, Error> {
    let store = RunStore::for_run(&ctx.clients.s3, run);
    let stored = WakeToken {
        token: token.to_string(),
        execution_arn: run.execution_arn.clone(),
    };
    store.put_json(&run.wake_token_key(), &stored).await?;
    if store.exists(&run.wake_pending_key()).await? {
        return Ok(match send_success(ctx, token).await? {
            Sent::Woken => out("woken", "an event arrived before the park: woken at once"),
            Sent::Stale(code) => out("ignored", format!("own token refused ({code})")),
        });
    }
    Ok(out("parked", run.execution_arn.clone()))
}

/// A CloudFormation stack status change: wake the run that owns the stack.
pub async fn on_event(ctx: &Ctx, event: &Value) -> Result<WakeOutput, Error> {
    let detail_type = event.get("detail-type").and_then(Value::as_str);
    if detail_type != Some(STATUS_CHANGE) {
        return Err(Error::InvalidInput {
            message: format!("not a {STATUS_CHANGE} event (detail-type {detail_type:?})"),
            accepted: ACCEPTED.into(),
        });
    }
    let detail = &event["detail"];
    let stack_id = detail["stack-id"].as_str().unwrap_or_default();
    let status = detail["status-details"]["status"]
        .as_str()
        .unwrap_or_default();
    let Some(stack) = stack_name(stack_id) else {
        return Ok(out(
            "ignored",
            format!("no stack name in stack-id {stack_id:?}"),
        ));
    };
    if !settles(status) {
        return Ok(out("ignored", format!("{stack}: {status} settles nothing")));
    }
    let store = RunStore::new(ctx.clients.s3.clone(), ctx.config.bucket.clone());
    let Some(index) = store.get_json::<WakeIndex>(&wake_index_key(stack)).await? else {
        return Ok(out(
            "ignored",
            format!("{stack}: not a stack stackwave started"),
        ));
    };
    // The flag first, then the token: a park that stored its token before this write sees
    // the token below; one that stores it after sees the flag.
    store
        .put_bytes(
            &RunContext::wake_pending_key_of(&index.run_prefix),
            stack.as_bytes().to_vec(),
            "text/plain",
        )
        .await?;
    let token_key = RunContext::wake_token_key_of(&index.run_prefix);
    let Some(parked) = store.get_json::<WakeToken>(&token_key).await? else {
        return Ok(out(
            "ignored",
            format!("{stack} {status}: the run has not parked yet"),
        ));
    };
    Ok(match send_success(ctx, &parked.token).await? {
        Sent::Woken => out(
            "woken",
            format!("{stack} {status}: {}", index.execution_arn),
        ),
        Sent::Stale(code) => out(
            "ignored",
            format!("{stack} {status}: the run is not parked ({code})"),
        ),
    })
}

/// A status that ends an operation (or a step of it): `*_COMPLETE` or `*_FAILED`.
/// `*_IN_PROGRESS` (also `UPDATE_COMPLETE_CLEANUP_IN_PROGRESS`) settles nothing.
pub fn settles(status: &str) -> bool {
    status.ends_with("_COMPLETE") || status.ends_with("_FAILED")
}

/// `arn:aws:cloudformation:<region>:<account>:stack/<name>/<id>` → `<name>`.
pub fn stack_name(stack_id: &str) -> Option<&str> {
    let (_, rest) = stack_id.split_once(":stack/")?;
    let name = rest.split('/').next()?;
    (!name.is_empty()).then_some(name)
}

enum Sent {
    Woken,
    /// The token is no longer open (its error code).
    Stale(String),
}

/// SendTaskSuccess; a token that is no longer open is no error: the run moved on.
async fn send_success(ctx: &Ctx, token: &str) -> Result<Sent, Error> {
    match ctx
        .clients
        .sfn
        .send_task_success()
        .task_token(token)
        .output("{}")
        .send()
        .await
    {
        Ok(_) => Ok(Sent::Woken),
        Err(e) => {
            let stale = e.as_service_error().and_then(|se| {
                (se.is_invalid_token() || se.is_task_timed_out() || se.is_task_does_not_exist())
                    .then(|| se.code().unwrap_or("TaskTimedOut").to_string())
            });
            match stale {
                Some(code) => Ok(Sent::Stale(code)),
                None => Err(aws_error("states:SendTaskSuccess", e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_names_from_stack_ids() {
        assert_eq!(
            stack_name(
                "arn:aws:cloudformation:us-east-1:123456789012:stack/bellyfed-dev-db/0e4f-11"
            ),
            Some("bellyfed-dev-db")
        );
        assert_eq!(
            stack_name("arn:aws:cloudformation:us-east-1:1:stack//x"),
            None
        );
        assert_eq!(stack_name("bellyfed-dev-db"), None);
    }

    #[test]
    fn only_settling_statuses_wake() {
        for s in [
            "CREATE_COMPLETE",
            "UPDATE_COMPLETE",
            "UPDATE_ROLLBACK_COMPLETE",
            "ROLLBACK_COMPLETE",
            "DELETE_COMPLETE",
            "CREATE_FAILED",
            "UPDATE_ROLLBACK_FAILED",
            "DELETE_FAILED",
        ] {
            assert!(settles(s), "{s}");
        }
        for s in [
            "CREATE_IN_PROGRESS",
            "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
            "REVIEW_IN_PROGRESS",
            "",
        ] {
            assert!(!settles(s), "{s}");
        }
    }

    #[test]
    fn park_and_event_inputs_parse() {
        let park: WakeInput = serde_json::from_value(serde_json::json!({
            "action": "park",
            "token": "t",
            "run": {
                "executionArn": "arn", "executionName": "e", "environment": "dev",
                "bucket": "b", "runPrefix": "runs/dev/e/", "poll": {"min": 1, "max": 2},
                "manifestUri": "s3://b/m.yaml", "startedAt": "2026-12-03T00:00:00Z"
            }
        }))
        .expect("park");
        assert!(matches!(park, WakeInput::Park { ref token, .. } if token == "t"));
        let event: WakeInput = serde_json::from_value(serde_json::json!({
            "detail-type": STATUS_CHANGE, "source": "aws.cloudformation", "detail": {}
        }))
        .expect("event");
        assert!(matches!(event, WakeInput::Event(_)));
    }
}
