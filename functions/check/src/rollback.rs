//! check in rollback mode (`"mode": "rollback"`): one poll of a rollback wave.
//!
//! It reads the wave's records, observes every stack whose delete or restore is running,
//! settles each with `stackwave_core::rollback::advance` (naming the root cause of a failed one
//! from the stack's events), records a stack whose rollback never started as
//! `rollback_failed`, writes the records that changed, and answers like a deploy check:
//! settled once every stack's rollback is done, `anyFailed` when one ended `rollback_failed`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures::{stream, StreamExt};
use stackwave_aws::{Ctx, RunStore};
use stackwave_core::io::{CheckInput, CheckOutput, RunContext};
use stackwave_core::poll;
use stackwave_core::reconcile::{self, StackView};
use stackwave_core::record::{Action, RollbackPhase, StackRecord};
use stackwave_core::rollback;
use stackwave_core::Error;

/// Concurrent CloudFormation calls of one check.
const CONCURRENCY: usize = 8;

/// At most this many failed stack names in the output.
const MAX_FAILED_NAMES: usize = 20;

pub(crate) async fn handle(ctx: &Ctx, input: CheckInput) -> Result<CheckOutput, Error> {
    let run = &input.run;
    let store = RunStore::for_run(&ctx.clients.s3, run);
    let records = store.records(run, &input.stacks).await?;
    if let Some(missing) = input
        .stacks
        .iter()
        .find(|s| !records.iter().any(|r| &r.stack == *s))
    {
        return Err(Error::Internal(format!(
            "stack {missing} is in a rollback wave but has no record at s3://{}/{}. Fix: this \
             is a bug in the rollback plan; check the stack by hand",
            run.bucket,
            run.record_key(missing)
        )));
    }
    let current = round(ctx, run, &store, &records).await?;
    let current: Vec<&StackRecord> = current.iter().collect();
    let output = summarize(run, &current, input.attempt);
    tracing::info!(
        attempt = output.attempt,
        settled = output.settled,
        in_progress = output.in_progress,
        rolled_back = output.succeeded,
        rollback_failed = output.failed,
        next_wait_seconds = output.next_wait_seconds,
        "rollback wave checked"
    );
    Ok(output)
}

/// One rollback round over `records` (rollback mode and the rollback schedule): a stack whose
/// rollback never recorded a start is settled `rollback_failed`; every running delete or
/// restore is observed and advanced; the records that changed are written. The answer is every
/// record as it is after the round, in input order.
pub(crate) async fn round(
    ctx: &Ctx,
    run: &RunContext,
    store: &RunStore,
    records: &[StackRecord],
) -> Result<Vec<StackRecord>, Error> {
    let now = Utc::now();

    let mut advanced: HashMap<String, StackRecord> = HashMap::new();
    // The rollback step of these never recorded a start: its invoke failed past its retries.
    for r in records {
        if let (None, Some(operation)) = (&r.rollback, rollback::wanted(r)) {
            let mut next = r.clone();
            next.rollback = Some(rollback::settled(
                operation,
                &rollback::client_token(&run.execution_name, &r.stack),
                Action::RollbackFailed,
                rollback::never_started_reason(operation),
                now,
            ));
            tracing::error!(stack = %r.stack, operation = operation.as_str(), "rollback never started");
            advanced.insert(r.stack.clone(), next);
        }
    }

    let open: Vec<&StackRecord> = records
        .iter()
        .filter(|r| {
            r.rollback
                .as_ref()
                .is_some_and(|s| s.phase == RollbackPhase::Executing)
        })
        .collect();
    let views = observe(ctx, &open).await?;
    let results: Vec<(String, Result<StackRecord, Error>)> = stream::iter(open.iter().copied())
        .map(|record| {
            let view = views
                .get(&record.stack)
                .cloned()
                .unwrap_or(StackView::NotObserved);
            async move { (record.stack.clone(), step(ctx, record, &view, now).await) }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let changed = crate::end_round(run, store, records, &mut advanced, results).await?;
    tracing::debug!(changed, "rollback records written");
    Ok(crate::current(records, &advanced)
        .into_iter()
        .cloned()
        .collect())
}

/// How a stack's rollback has settled, if it has: restored (or nothing to restore) or failed.
pub(crate) fn outcome(record: &StackRecord) -> Option<stackwave_core::schedule::Outcome> {
    use stackwave_core::schedule::Outcome;
    match &record.rollback {
        Some(s) if s.phase == RollbackPhase::Done => Some(match s.outcome {
            Some(Action::RollbackFailed) => Outcome::Failed,
            _ => Outcome::Succeeded,
        }),
        Some(_) => None,
        None if rollback::wanted(record).is_none() => Some(Outcome::Succeeded),
        None => None,
    }
}

/// Advance one stack's rollback; a failed one gets its root cause from the stack's events.
/// `Err` only for transient errors (the record is then left as it was for the next poll).
async fn step(
    ctx: &Ctx,
    record: &StackRecord,
    view: &StackView,
    now: DateTime<Utc>,
) -> Result<StackRecord, Error> {
    let stack = record.stack.as_str();
    let advance = rollback::advance(record, view, now);
    let mut next = advance.record;
    if advance.fetch_events {
        let since = next
            .rollback
            .as_ref()
            .and_then(|s| reconcile::parse_timestamp(&s.started_at))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        match crate::stack_events(&ctx.clients.cfn, stack, since).await {
            Ok(events) => rollback::apply_events(&mut next, &events),
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                tracing::warn!(stack = %stack, error = %e, "no stack events: root cause of the rollback failure unknown")
            }
        }
    }
    if let Some(state) = next
        .rollback
        .as_ref()
        .filter(|s| s.phase == RollbackPhase::Done)
    {
        tracing::info!(stack = %stack, operation = state.operation.as_str(), outcome = ?state.outcome, status = ?state.status, reason = %state.reason, root_cause = ?state.root_cause, "rollback settled");
    }
    Ok(next)
}

/// The stacks of the running rollbacks (a deleted stack is absent; a throttled read is no
/// news this round, as in deploy mode).
async fn observe(ctx: &Ctx, open: &[&StackRecord]) -> Result<HashMap<String, StackView>, Error> {
    let names: Vec<&str> = open.iter().map(|r| r.stack.as_str()).collect();
    crate::observe_named(ctx, &names, names.len()).await
}

/// The check's answer: `succeeded` counts rolled-back stacks (and those needing no rollback),
/// `failed` the rollback_failed ones.
fn summarize(run: &RunContext, records: &[&StackRecord], attempt: u32) -> CheckOutput {
    let running = |r: &&&StackRecord| {
        r.rollback
            .as_ref()
            .is_some_and(|s| s.phase == RollbackPhase::Executing)
    };
    let in_progress = records.iter().filter(running).count();
    let failed: Vec<&str> = records
        .iter()
        .filter(|r| {
            r.rollback
                .as_ref()
                .is_some_and(|s| s.outcome == Some(Action::RollbackFailed))
        })
        .map(|r| r.stack.as_str())
        .collect();
    let succeeded = records.len() - in_progress - failed.len();
    let attempt = attempt.saturating_add(1);
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
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
