//! The check function: one poll of every stack of a wave (docs/design.md, "Stack lifecycle").
//!
//! It reads the wave's records, observes every unsettled stack in one pass, advances each
//! record with `stackwave_core::reconcile`, performs the step (ExecuteChangeSet, CreateChangeSet
//! after a leftover delete, DeleteChangeSet for a change set without changes), finds the root
//! cause of stacks that just failed, writes the records that changed, and tells the state
//! machine how long to wait before the next check.

mod rollback;
mod schedule;

use std::collections::{HashMap, HashSet};

use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_sdk_cloudformation::types::{ChangeSetType, Stack};
use chrono::{DateTime, Utc};
use futures::{stream, StreamExt, TryStreamExt};
use stackwave_aws::cfn::describe_stack;
use stackwave_aws::stacks::{
    continue_update_rollback, create_change_set, delete_leftover, stack_outputs, start_update,
    ChangeSetStarted,
};
use stackwave_aws::{aws_error, Ctx, RunStore};
use stackwave_core::io::{
    CheckInput, CheckMode, CheckOutput, DeployErroredInput, RollbackScheduleInput, RunContext,
    ScheduleInput,
};
use stackwave_core::plan::{Plan, PlannedStack};
use stackwave_core::poll;
use stackwave_core::reconcile::{
    self, ChangeSetState, Observation, StackEvent, StackState, StackView, Step,
};
use stackwave_core::record::{Action, Phase, StackRecord};
use stackwave_core::Error;

/// The input shape, shown in `InvalidInput` errors.
pub const ACCEPTED: &str = "{\"run\": {...}, \"stacks\": [\"StackName\"], \"attempt\": 0}";

/// Up to this many unsettled stacks, check asks DescribeStacks per stack; above it, one
/// paginated DescribeStacks over the account, filtered to the wave.
pub const PER_STACK_LIMIT: usize = 10;

/// Concurrent CloudFormation calls of one check.
const CONCURRENCY: usize = 8;

/// At most this many failed stack names in the output (the state's size stays small).
const MAX_FAILED_NAMES: usize = 20;

pub async fn handle(ctx: &Ctx, input: CheckInput) -> Result<CheckOutput, Error> {
    match input.mode {
        CheckMode::Rollback => return rollback::handle(ctx, input).await,
        CheckMode::Deploy => {}
        CheckMode::Schedule | CheckMode::RollbackSchedule | CheckMode::DeployErrored => {
            return Err(Error::InvalidInput {
                message: "the scheduling modes take their own input".into(),
                accepted: format!(
                    "{}, {} or {}",
                    schedule::ACCEPTED,
                    schedule::ROLLBACK_ACCEPTED,
                    schedule::DEPLOY_ERRORED_ACCEPTED
                ),
            })
        }
    }
    let run = &input.run;
    let store = RunStore::for_run(&ctx.clients.s3, run);
    let records = store.records(run, &input.stacks).await?;
    let known: HashSet<&str> = records.iter().map(|r| r.stack.as_str()).collect();
    if let Some(missing) = input.stacks.iter().find(|s| !known.contains(s.as_str())) {
        return Err(Error::Internal(format!(
            "stack {missing} has no record at s3://{}/{}: deploy-stack did not start it. \
             Fix: this is a bug in the state machine; run the deployment again",
            run.bucket,
            run.record_key(missing)
        )));
    }

    let current = advance_round(ctx, run, &store, &records).await?;
    let current: Vec<&StackRecord> = current.iter().collect();
    let output = summarize(run, &current, input.attempt);
    tracing::info!(
        attempt = output.attempt,
        settled = output.settled,
        in_progress = output.in_progress,
        succeeded = output.succeeded,
        failed = output.failed,
        next_wait_seconds = output.next_wait_seconds,
        "wave checked"
    );
    Ok(output)
}

/// One round over `records` (deploy and schedule mode): observe every unsettled stack in one
/// pass, advance each record (`reconcile::advance`), take its step, write the records that
/// changed. The answer is every record as it is after the round, in input order.
pub(crate) async fn advance_round(
    ctx: &Ctx,
    run: &RunContext,
    store: &RunStore,
    records: &[StackRecord],
) -> Result<Vec<StackRecord>, Error> {
    let open: Vec<&StackRecord> = records.iter().filter(|r| r.phase != Phase::Done).collect();
    let now = Utc::now();
    let stacks = observe_stacks(ctx, &open).await?;
    let change_sets = observe_change_sets(ctx, &open).await?;
    // The plan is needed to start an operation: after a leftover's delete, once another
    // operation settled, or after a continued rollback.
    let plan = if open.iter().any(|r| {
        matches!(
            r.phase,
            Phase::DeletingLeftover | Phase::WaitingForOther | Phase::ContinuingRollback
        )
    }) {
        Some(store.plan(run).await?)
    } else {
        None
    };

    let results: Vec<(String, Result<StackRecord, Error>)> = stream::iter(open.iter().copied())
        .map(|record| {
            let obs = Observation {
                stack: stacks
                    .get(&record.stack)
                    .cloned()
                    .unwrap_or(StackView::NotObserved),
                change_set: change_sets.get(&record.stack).cloned().flatten(),
                now,
            };
            let plan = plan.as_ref();
            async move {
                (
                    record.stack.clone(),
                    step(ctx, run, store, plan, record, obs).await,
                )
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;

    let mut advanced: HashMap<String, StackRecord> = HashMap::new();
    let changed = end_round(run, store, records, &mut advanced, results).await?;
    tracing::debug!(changed, "records written");
    Ok(current(records, &advanced).into_iter().cloned().collect())
}

/// The end of one check round, in both modes. Each stack's step result is kept in `advanced`;
/// a transient error (throttled past the SDK's retries) is no progress for that stack this
/// round: its record stays as it was and the next poll takes the step again (every step is
/// idempotent), so a throttling storm slows the wave and does not fail it. The records that
/// changed are written back, even when another stack's step failed; then the first
/// non-transient error is returned. The answer is the number of records written.
pub(crate) async fn end_round(
    run: &RunContext,
    store: &RunStore,
    records: &[StackRecord],
    advanced: &mut HashMap<String, StackRecord>,
    results: Vec<(String, Result<StackRecord, Error>)>,
) -> Result<usize, Error> {
    let mut first_error = None;
    for (stack, result) in results {
        match result {
            Ok(rec) => {
                advanced.insert(stack, rec);
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(stack = %stack, error_type = e.name(), error = %e, "stack not advanced this round: throttled; the next check tries again");
            }
            Err(e) => {
                tracing::warn!(stack = %stack, error_type = e.name(), error = %e, "stack not advanced");
                first_error.get_or_insert(e);
            }
        }
    }
    let changed: Vec<&StackRecord> = records
        .iter()
        .filter_map(|old| advanced.get(&old.stack).filter(|new| *new != old))
        .collect();
    stream::iter(changed.iter().copied())
        .map(|rec| store.put_record(run, rec))
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    match first_error {
        Some(e) => Err(e),
        None => Ok(changed.len()),
    }
}

/// Every record as it is after the round: advanced, or as it was.
pub(crate) fn current<'a>(
    records: &'a [StackRecord],
    advanced: &'a HashMap<String, StackRecord>,
) -> Vec<&'a StackRecord> {
    records
        .iter()
        .map(|r| advanced.get(&r.stack).unwrap_or(r))
        .collect()
}

/// The JSON entry point used by main.rs and by the local gateway.
pub async fn handle_json(ctx: &Ctx, input: serde_json::Value) -> Result<serde_json::Value, Error> {
    match input.get("mode").and_then(serde_json::Value::as_str) {
        Some("schedule") => {
            let input: ScheduleInput = stackwave_aws::parse_input(input, schedule::ACCEPTED)?;
            return stackwave_aws::to_output(&Box::pin(schedule::handle(ctx, input)).await?);
        }
        Some("rollback_schedule") => {
            let input: RollbackScheduleInput =
                stackwave_aws::parse_input(input, schedule::ROLLBACK_ACCEPTED)?;
            return stackwave_aws::to_output(
                &Box::pin(schedule::handle_rollback(ctx, input)).await?,
            );
        }
        Some("deploy_errored") => {
            let input: DeployErroredInput =
                stackwave_aws::parse_input(input, schedule::DEPLOY_ERRORED_ACCEPTED)?;
            return stackwave_aws::to_output(
                &Box::pin(schedule::deploy_errored(ctx, input)).await?,
            );
        }
        _ => {}
    }
    let input: CheckInput = stackwave_aws::parse_input(input, ACCEPTED)?;
    // Boxed: the nested SDK futures would otherwise overflow the compiler's layout depth.
    stackwave_aws::to_output(&Box::pin(handle(ctx, input)).await?)
}

/// The check's answer. `attempt` is the number of checks before this one; the next wait is
/// computed for the check that follows (attempt + 1), the first wait having been `poll.min`.
fn summarize(run: &RunContext, records: &[&StackRecord], attempt: u32) -> CheckOutput {
    let in_progress = records.iter().filter(|r| r.phase != Phase::Done).count();
    let failed: Vec<&str> = records
        .iter()
        .filter(|r| r.phase == Phase::Done && r.action == Action::Failed)
        .map(|r| r.stack.as_str())
        .collect();
    let succeeded = records.len() - in_progress - failed.len();
    let attempt = attempt.saturating_add(1);
    CheckOutput {
        settled: in_progress == 0,
        any_failed: !failed.is_empty(),
        attempt,
        next_wait_seconds: poll::next_wait(run.poll, attempt, fastrand::f64()),
        in_progress: count(in_progress),
        succeeded: count(succeeded),
        failed: count(failed.len()),
        failed_stacks: failed
            .iter()
            .take(MAX_FAILED_NAMES)
            .map(|s| s.to_string())
            .collect(),
    }
}

pub(crate) fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn view_of(s: &Stack) -> StackView {
    StackView::Present(StackState {
        status: s
            .stack_status()
            .map(|st| st.as_str().to_string())
            .unwrap_or_default(),
        reason: s.stack_status_reason().map(str::to_string),
        outputs: stack_outputs(s),
    })
}

/// DescribeStacks for the unsettled stacks that need it: per stack (concurrently) for a small
/// wave, one paginated listing filtered to the wave for a large one. A record waiting for its
/// change set needs only the change set.
async fn observe_stacks(
    ctx: &Ctx,
    open: &[&StackRecord],
) -> Result<HashMap<String, StackView>, Error> {
    let wanted: Vec<&str> = open
        .iter()
        .filter(|r| r.phase != Phase::ChangeSetPending)
        .map(|r| r.stack.as_str())
        .collect();
    observe_named(ctx, &wanted, open.len()).await
}

/// The stacks `wanted` (of `open_count` unsettled ones in the wave): DescribeStacks per stack
/// (concurrently) up to [`PER_STACK_LIMIT`], else one paginated listing filtered to them. A
/// stack not found is [`StackView::Absent`]; a throttled read past the SDK's retries is no news
/// this round ([`StackView::NotObserved`]). Deploy and rollback mode share it.
pub(crate) async fn observe_named(
    ctx: &Ctx,
    wanted: &[&str],
    open_count: usize,
) -> Result<HashMap<String, StackView>, Error> {
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    if open_count <= PER_STACK_LIMIT {
        return stream::iter(wanted.iter().copied())
            .map(|name| async move {
                let view = match describe_stack(&ctx.clients.cfn, name).await {
                    Ok(Some(s)) => view_of(&s),
                    Ok(None) => StackView::Absent,
                    Err(e) if e.is_transient() => no_news(name, &e),
                    Err(e) => return Err(e),
                };
                Ok::<_, Error>((name.to_string(), view))
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await;
    }
    // Deleted stacks are not listed by DescribeStacks without a name: not listed = absent.
    let mut views: HashMap<String, StackView> = wanted
        .iter()
        .map(|n| (n.to_string(), StackView::Absent))
        .collect();
    let mut pages = ctx.clients.cfn.describe_stacks().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = match page.map_err(|e| aws_error("cloudformation:DescribeStacks", e)) {
            Ok(page) => page,
            Err(e) if e.is_transient() => {
                return Ok(wanted
                    .iter()
                    .map(|n| (n.to_string(), no_news(n, &e)))
                    .collect());
            }
            Err(e) => return Err(e),
        };
        for s in page.stacks() {
            if let Some(view) = s.stack_name().and_then(|n| views.get_mut(n)) {
                *view = view_of(s);
            }
        }
    }
    Ok(views)
}

/// A throttled observation past the SDK's retries: no news of this stack this round (the next
/// poll asks again; its timeout still counts).
fn no_news(stack: &str, e: &Error) -> StackView {
    tracing::warn!(stack = %stack, error = %e, "throttled: no news of this stack this round");
    StackView::NotObserved
}

/// DescribeChangeSet for the records waiting for their change set (`None`: not found, or
/// throttled: no news this round).
async fn observe_change_sets(
    ctx: &Ctx,
    open: &[&StackRecord],
) -> Result<HashMap<String, Option<ChangeSetState>>, Error> {
    stream::iter(open.iter().filter(|r| r.phase == Phase::ChangeSetPending))
        .map(|r| async move {
            let state = match stackwave_aws::cfn::change_set_state(
                &ctx.clients.cfn,
                &r.stack,
                &r.change_set_name,
            )
            .await
            {
                Ok(state) => state,
                Err(e) if e.is_transient() => {
                    no_news(&r.stack, &e);
                    None
                }
                Err(e) => return Err(e),
            };
            Ok((r.stack.clone(), state))
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await
}

/// Advance one record and perform its step. `Err` only for transient errors: the record is
/// then left as it was and the whole check is retried (every step is idempotent).
async fn step(
    ctx: &Ctx,
    run: &RunContext,
    store: &RunStore,
    plan: Option<&Plan>,
    record: &StackRecord,
    obs: Observation,
) -> Result<StackRecord, Error> {
    let stack = record.stack.as_str();
    let advance = reconcile::advance(record, &obs);
    let mut next = advance.record;
    if advance.step != Step::Wait || next.phase != record.phase {
        tracing::info!(stack = %stack, step = ?advance.step, phase = ?next.phase, action = ?next.action, status = ?next.status, "advanced");
    }
    match &advance.step {
        Step::Wait => {}
        Step::ExecuteChangeSet => {
            if let Err(e) = stackwave_aws::cfn::execute_change_set(
                &ctx.clients.cfn,
                stack,
                &record.change_set_name,
                &record.client_token,
            )
            .await
            {
                fail_step(&mut next, e, obs.now)?;
            }
        }
        Step::CreateChangeSet => {
            let started = match planned_stack(run, plan, stack) {
                Ok(planned) => {
                    create_change_set(ctx, run, planned, record, ChangeSetType::Create).await
                }
                Err(e) => Err(e),
            };
            match started {
                Ok(ChangeSetStarted::Started) => {}
                Ok(ChangeSetStarted::NoChanges) => {
                    next.phase = Phase::Done;
                    next.action = Action::Unchanged;
                    next.reason = "no changes".into();
                    next.finished_at = Some(reconcile::timestamp(obs.now));
                }
                Err(e) => fail_step(&mut next, e, obs.now)?,
            }
        }
        Step::DeleteChangeSet => {
            let result = ctx
                .clients
                .cfn
                .delete_change_set()
                .stack_name(stack)
                .change_set_name(&record.change_set_name)
                .send()
                .await;
            if let Err(e) = result {
                // The stack is settled either way; a leftover FAILED change set is harmless.
                let e = aws_error("cloudformation:DeleteChangeSet", e);
                tracing::warn!(stack = %stack, error = %e, "could not delete the change set without changes");
            }
        }
        Step::Settle { action, reason } => {
            if let Some(token) = &advance.fetch_events_token {
                let since = reconcile::parse_timestamp(&record.started_at)
                    .unwrap_or(DateTime::<Utc>::MIN_UTC);
                match stack_events(&ctx.clients.cfn, stack, since).await {
                    Ok(events) => reconcile::apply_events(&mut next, &events, token),
                    Err(e) if e.is_transient() => return Err(e),
                    Err(e) => {
                        tracing::warn!(stack = %stack, error = %e, "no stack events: root cause unknown")
                    }
                }
            }
            tracing::info!(stack = %stack, action = ?action, reason = %reason, root_cause = ?next.root_cause, "stack settled");
        }
        Step::UpdateChangeSet => {
            let started = match planned_stack(run, plan, stack) {
                Ok(planned) => start_update(ctx, run, store, planned, &mut next).await,
                Err(e) => Err(e),
            };
            if let Err(e) = started {
                fail_step(&mut next, e, obs.now)?;
            }
        }
        Step::DeleteLeftover => {
            let status = next.status.clone().unwrap_or_default();
            if let Err(e) = delete_leftover(ctx, &next, &status).await {
                fail_step(&mut next, e, obs.now)?;
            }
        }
        Step::ContinueRollback => {
            if let Err(e) = continue_update_rollback(ctx, &next).await {
                fail_step(&mut next, e, obs.now)?;
            }
        }
        Step::CancelUpdate => {
            name_what_hangs(ctx, record, &advance.hanging_events_token, &mut next).await?;
            cancel_update(ctx, record, &mut next, obs.now).await?;
        }
        Step::Timeout => {
            name_what_hangs(ctx, record, &advance.hanging_events_token, &mut next).await?;
            tracing::warn!(stack = %stack, minutes = record.timeout_minutes, status = ?next.status, reason = %next.reason, "stack timed out");
        }
    }
    Ok(next)
}

/// A step failed: transient errors propagate (the check is retried), others settle the stack
/// as failed with the error as reason.
fn fail_step(next: &mut StackRecord, e: Error, now: DateTime<Utc>) -> Result<(), Error> {
    if e.is_transient() {
        return Err(e);
    }
    tracing::error!(stack = %next.stack, error_type = e.name(), error = %e, "step failed");
    next.phase = Phase::Done;
    next.action = Action::Failed;
    next.reason = e.to_string();
    next.finished_at = Some(reconcile::timestamp(now));
    Ok(())
}

/// The planned stack, or an internal error naming the plan.
fn planned_stack<'a>(
    run: &RunContext,
    plan: Option<&'a Plan>,
    stack: &str,
) -> Result<&'a PlannedStack, Error> {
    plan.and_then(|p| p.stack(stack)).ok_or_else(|| {
        Error::Internal(format!(
            "stack {stack} is not in the plan at s3://{}/{}",
            run.bucket,
            run.plan_key()
        ))
    })
}

/// A stack timed out during this run's operation: name the resource still in progress as the
/// root cause (best effort: without events the timeout is reported all the same).
async fn name_what_hangs(
    ctx: &Ctx,
    record: &StackRecord,
    token: &Option<String>,
    next: &mut StackRecord,
) -> Result<(), Error> {
    let Some(token) = token else {
        return Ok(());
    };
    let stack = record.stack.as_str();
    let since = reconcile::parse_timestamp(&record.started_at).unwrap_or(DateTime::<Utc>::MIN_UTC);
    match stack_events(&ctx.clients.cfn, stack, since).await {
        Ok(events) => {
            let cause =
                reconcile::hanging_resource(&events, Some(token), since, record.timeout_minutes);
            tracing::info!(stack = %stack, hanging = ?cause, "what hangs");
            if cause.is_some() {
                next.root_cause = cause;
            }
            Ok(())
        }
        Err(e) if e.is_transient() => Err(e),
        Err(e) => {
            tracing::warn!(stack = %stack, error = %e, "no stack events: what hangs is unknown");
            Ok(())
        }
    }
}

/// CancelUpdateStack with the record's cancel token; the record stays `cancelling_timeout` until
/// CloudFormation has rolled the update back. A ValidationError means the stack has left
/// UPDATE_IN_PROGRESS meanwhile (completed, or in cleanup): the next check sees where it went.
/// Any other refusal settles the stack failed, `StackTimeout`, saying the update still runs.
async fn cancel_update(
    ctx: &Ctx,
    record: &StackRecord,
    next: &mut StackRecord,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let stack = record.stack.as_str();
    let token = reconcile::client_token_of(record, reconcile::OP_CANCEL);
    let result = ctx
        .clients
        .cfn
        .cancel_update_stack()
        .stack_name(stack)
        .client_request_token(&token)
        .send()
        .await;
    let e = match result {
        Ok(_) => {
            tracing::warn!(stack = %stack, minutes = record.timeout_minutes, token = %token, "timed out: update cancelled; waiting for CloudFormation's rollback");
            return Ok(());
        }
        Err(e) => e,
    };
    let code = e
        .as_service_error()
        .and_then(|se| se.code())
        .map(str::to_string);
    if e.as_service_error()
        .is_some_and(|se| se.is_token_already_exists_exception())
    {
        tracing::info!(stack = %stack, token = %token, "the update was cancelled already (retried check)");
        return Ok(());
    }
    if code.as_deref() == Some("ValidationError") {
        tracing::info!(stack = %stack, "the update left UPDATE_IN_PROGRESS before the cancel: following it");
        return Ok(());
    }
    let error = aws_error("cloudformation:CancelUpdateStack", e);
    if error.is_transient() {
        return Err(error);
    }
    next.phase = Phase::Done;
    next.action = Action::Failed;
    next.reason = format!(
        "StackTimeout: stack {stack} was still UPDATE_IN_PROGRESS after its timeoutMinutes ({}), and \
         cancelling the update failed ({error}); the update still runs. Fix: cancel it by hand \
         (CancelUpdateStack) and grant stackwave cloudformation:CancelUpdateStack; {}",
        record.timeout_minutes,
        reconcile::TIMEOUT_FIX
    );
    next.finished_at = Some(reconcile::timestamp(now));
    tracing::error!(stack = %stack, error = %error, "could not cancel the timed-out update");
    Ok(())
}

fn to_chrono(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos())
}

/// The stack's events back to `since` (AWS lists them newest first; paging stops at the first
/// page that reaches past `since`).
pub(crate) async fn stack_events(
    cfn: &aws_sdk_cloudformation::Client,
    stack: &str,
    since: DateTime<Utc>,
) -> Result<Vec<StackEvent>, Error> {
    let mut pages = cfn
        .describe_stack_events()
        .stack_name(stack)
        .into_paginator()
        .send();
    let mut events = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| aws_error("cloudformation:DescribeStackEvents", e))?;
        let mut reached_since = page.stack_events().is_empty();
        for e in page.stack_events() {
            let Some(timestamp) = e.timestamp().and_then(to_chrono) else {
                continue;
            };
            reached_since |= timestamp < since;
            events.push(StackEvent {
                stack_name: e.stack_name().unwrap_or(stack).to_string(),
                logical_id: e.logical_resource_id().unwrap_or_default().to_string(),
                resource_type: e.resource_type().unwrap_or_default().to_string(),
                status: e
                    .resource_status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                reason: e.resource_status_reason().map(str::to_string),
                timestamp,
                client_request_token: e.client_request_token().map(str::to_string),
            });
        }
        if reached_since {
            break;
        }
    }
    Ok(events)
}
