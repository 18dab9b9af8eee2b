//! The scheduling step (check, `mode: schedule`; docs/design.md, "Schedule").
//!
//! One step per wake-up of a stage: it clears the run's wake flag, advances every stack in
//! flight exactly as a check round does (observe, reconcile, take the step), records the
//! stacks that settled in the schedule state, and answers which stacks start now
//! (`stackwave_core::schedule::decide`) and how long to park if none does. It never waits.

use stackwave_aws::{Ctx, RunStore};
use stackwave_core::budget::Segment;
use stackwave_core::io::{
    DeployErroredInput, DeployErroredOutput, RollbackScheduleInput, RunContext, ScheduleInput,
    ScheduleOutput,
};
use stackwave_core::manifest::Schedule;
use stackwave_core::plan::PlannedStack;
use stackwave_core::poll;
use stackwave_core::reconcile;
use stackwave_core::record::{Phase, StackRecord};
use stackwave_core::rollback;
use stackwave_core::schedule::{self, Node, Outcome, Rules, ScheduleState};
use stackwave_core::Error;

use crate::{advance_round, count};

/// The input shape, shown in `InvalidInput` errors.
pub const ACCEPTED: &str = "{\"mode\": \"schedule\", \"run\": {...}, \"stage\": 0}";

/// The rollback schedule's input shape.
pub const ROLLBACK_ACCEPTED: &str =
    "{\"mode\": \"rollback_schedule\", \"run\": {...}, \"waves\": [[\"StackName\"]]}";

/// The `deploy_errored` input shape.
pub const DEPLOY_ERRORED_ACCEPTED: &str = "{\"mode\": \"deploy_errored\", \"run\": {...}, \"stack\": \"StackName\", \"error\": {\"Error\": \"...\", \"Cause\": \"...\"}}";

/// The `DeployStackErrored` step: deploy-stack's invocation for `input.stack` failed past its
/// retries. If it wrote no record, the stack is settled failed with the caught error, its cause
/// and the fix ([`reconcile::not_started`]); a record it wrote (its answer was lost, as with a
/// timeout) is left for the scheduling step to follow.
pub async fn deploy_errored(
    ctx: &Ctx,
    input: DeployErroredInput,
) -> Result<DeployErroredOutput, Error> {
    let run = &input.run;
    let store = RunStore::for_run(&ctx.clients.s3, run);
    let existing = store
        .records(run, std::slice::from_ref(&input.stack))
        .await?;
    if !existing.is_empty() {
        tracing::warn!(stack = %input.stack, error = %input.error.error, "deploy-stack failed past its retries after it recorded the stack: the scheduling step follows the record");
        return Ok(DeployErroredOutput {
            stack: input.stack,
            recorded_failed: false,
        });
    }
    let plan = store.plan(run).await?;
    let planned = plan.stack(&input.stack).ok_or_else(|| {
        Error::Internal(format!(
            "stack {} is not in the plan at s3://{}/{}. Fix: this is a bug in the state machine input",
            input.stack,
            run.bucket,
            run.plan_key()
        ))
    })?;
    let mut record = stackwave_aws::stacks::new_record(run, planned);
    reconcile::not_started(&mut record, Some(&input.error), chrono::Utc::now());
    tracing::error!(stack = %input.stack, error = %input.error.error, reason = %record.reason, "deploy-stack failed past its retries: the stack is settled failed");
    store.put_record(run, &record).await?;
    Ok(DeployErroredOutput {
        stack: input.stack,
        recorded_failed: true,
    })
}

/// At most this many failed stack names in the output.
const MAX_FAILED_NAMES: usize = 20;

pub async fn handle(ctx: &Ctx, input: ScheduleInput) -> Result<ScheduleOutput, Error> {
    let run = &input.run;
    let store = RunStore::for_run(&ctx.clients.s3, run);
    // Cleared before the stacks are observed: an event after this point sets it again, and
    // the park that follows then wakes at once (the wake function writes the flag first).
    store.delete(&run.wake_pending_key()).await?;
    let plan = store.plan(run).await?;
    if !plan.stages.iter().any(|s| s.index == input.stage) {
        return Err(Error::Internal(format!(
            "stage {} is not in the plan at s3://{}/{}. Fix: this is a bug in the state machine input",
            input.stage,
            run.bucket,
            run.plan_key()
        )));
    }
    // `schedule: dependencies`: every stack of the plan is scheduled from the first stage on,
    // so a stack of a later stage starts once its own dependencies are done; the later
    // stages' steps find their stacks settled.
    let whole_plan = plan.schedule == Schedule::Dependencies;
    let stage: Vec<&PlannedStack> = plan
        .stacks
        .iter()
        .filter(|s| whole_plan || s.stage_index == input.stage)
        .collect();
    let mut state: ScheduleState = store
        .get_json(&run.schedule_key())
        .await?
        .unwrap_or_default();
    if let Some(output) = state.replay(input.step.as_deref()) {
        tracing::info!(stage = input.stage, round = state.rounds, ready = ?output.ready, "a retry of a step that completed: its answer again");
        return Ok(output.clone());
    }

    let in_flight: Vec<String> = state.in_flight().cloned().collect();
    let mut records = store.records(run, &in_flight).await?;
    for name in &in_flight {
        if records.iter().any(|r| &r.stack == name) {
            continue;
        }
        // Asked to start, and no record: deploy-stack's invocation failed past its retries
        // before it could write one. Recorded failed, so the summary names it.
        let Some(planned) = plan.stack(name) else {
            continue;
        };
        let mut record = stackwave_aws::stacks::new_record(run, planned);
        reconcile::not_started(&mut record, None, chrono::Utc::now());
        store.put_record(run, &record).await?;
        records.push(record);
    }

    let current = advance_round(ctx, run, &store, &records).await?;
    for record in &current {
        if let Some(outcome) = Outcome::of(record) {
            state.settled.insert(record.stack.clone(), outcome);
        }
    }

    let max = usize::try_from(run.max_concurrency).unwrap_or(usize::MAX);
    let spent = spent(&mut state, input.segment.as_deref(), run, max);
    let mut decision = schedule::decide(&stage, &state, max);
    if !decision.stuck.is_empty() {
        return Err(Error::Internal(format!(
            "stacks {} of stage {} can never start: a dependency is neither deployed nor able to start. \
             Fix: this is a bug in the plan; run `stackwave validate` on the manifest",
            decision.stuck.join(", "),
            input.stage
        )));
    }
    let hand_over = spent && !decision.settled;
    if hand_over {
        decision.ready.clear();
    } else {
        Segment::charge(&mut state.segment, decision.ready.len());
    }
    state.started.extend(decision.ready.iter().cloned());
    state.rounds = state.rounds.saturating_add(1);
    let mut output = output_of(run, &stage, &state, &decision, &current);
    output.hand_over = hand_over;
    state.answered(input.step.as_deref(), &output);
    store.put_json(&run.schedule_key(), &state).await?;

    tracing::info!(
        stage = input.stage,
        round = state.rounds,
        ready = ?output.ready,
        settled = output.settled,
        any_failed = output.any_failed,
        in_flight = output.in_flight,
        succeeded = output.succeeded,
        failed = output.failed,
        wait_seconds = output.wait_seconds,
        hand_over = output.hand_over,
        segment = state.segment.as_ref().map_or(0, |s| s.count),
        segment_events = state.segment.as_ref().map_or(0, |s| s.events),
        "scheduled"
    );
    Ok(output)
}

/// The rollback's scheduling step: the same loop on the reversed graph
/// (`rollback::reversed_graph`): a stack is restored once every stack restored before it (its
/// dependants, and later stages' stacks with `schedule: stages`) has settled, restored or not.
/// A failed restore stops nothing; everything that can be restored is.
pub async fn handle_rollback(
    ctx: &Ctx,
    input: RollbackScheduleInput,
) -> Result<ScheduleOutput, Error> {
    let run = &input.run;
    let store = RunStore::for_run(&ctx.clients.s3, run);
    store.delete(&run.wake_pending_key()).await?;
    let plan = store.plan(run).await?;
    let names: Vec<String> = input.waves.concat();
    let graph = rollback::reversed_graph(&plan, &names);
    let mut state: ScheduleState = store
        .get_json(&run.rollback_schedule_key())
        .await?
        .unwrap_or_default();
    if let Some(output) = state.replay(input.step.as_deref()) {
        tracing::info!(round = state.rounds, ready = ?output.ready, "a retry of a rollback step that completed: its answer again");
        return Ok(output.clone());
    }

    let in_flight: Vec<String> = state.in_flight().cloned().collect();
    let records = store.records(run, &in_flight).await?;
    if let Some(missing) = in_flight
        .iter()
        .find(|s| !records.iter().any(|r| &r.stack == *s))
    {
        return Err(Error::Internal(format!(
            "stack {missing} is being rolled back but has no record at s3://{}/{}. Fix: this is \
             a bug in the rollback plan; check the stack by hand",
            run.bucket,
            run.record_key(missing)
        )));
    }
    let current = crate::rollback::round(ctx, run, &store, &records).await?;
    for record in &current {
        if let Some(outcome) = crate::rollback::outcome(record) {
            state.settled.insert(record.stack.clone(), outcome);
        }
    }
    let nodes: Vec<Node> = graph
        .iter()
        .map(|(name, before)| Node {
            name,
            waits_for: before,
        })
        .collect();
    let max = usize::try_from(run.max_concurrency).unwrap_or(usize::MAX);
    let spent = spent(&mut state, input.segment.as_deref(), run, max);
    let mut decision = schedule::decide_nodes(&nodes, &state, max, Rules::Rollback);
    if !decision.stuck.is_empty() {
        return Err(Error::Internal(format!(
            "stacks {} can never be restored: the rollback graph has a cycle. Fix: this is a bug \
             in the rollback plan; restore them by hand",
            decision.stuck.join(", ")
        )));
    }
    let hand_over = spent && !decision.settled;
    if hand_over {
        decision.ready.clear();
    } else {
        Segment::charge(&mut state.segment, decision.ready.len());
    }
    state.started.extend(decision.ready.iter().cloned());
    state.rounds = state.rounds.saturating_add(1);

    // Restores and deletes send events; the park never outlasts a rollback's timeout.
    let now = chrono::Utc::now();
    let wait_seconds = current
        .iter()
        .filter_map(|r| rollback::seconds_to_deadline(r, now))
        .map(|s| u32::try_from(s.saturating_add(1)).unwrap_or(u32::MAX))
        .fold(run.fallback_poll_seconds.max(1), u32::min)
        .max(1);
    let failed_stacks: Vec<String> = names
        .iter()
        .filter(|s| state.settled.get(s.as_str()) == Some(&Outcome::Failed))
        .take(MAX_FAILED_NAMES)
        .cloned()
        .collect();
    let output = ScheduleOutput {
        ready: decision.ready,
        settled: decision.settled,
        any_failed: decision.any_failed,
        wait_seconds,
        in_flight: count(decision.in_flight),
        succeeded: count(decision.succeeded),
        failed: count(decision.failed),
        failed_stacks,
        hand_over,
    };
    state.answered(input.step.as_deref(), &output);
    store.put_json(&run.rollback_schedule_key(), &state).await?;
    tracing::info!(
        round = state.rounds,
        ready = ?output.ready,
        settled = output.settled,
        in_flight = output.in_flight,
        rolled_back = output.succeeded,
        rollback_failed = output.failed,
        wait_seconds = output.wait_seconds,
        hand_over = output.hand_over,
        "rollback scheduled"
    );
    Ok(output)
}

/// The answer. A change set being created sends no event, so a park while one is pending
/// lasts `poll.min` (jittered); otherwise the fallback poll, since an event wakes the run; and
/// never past the next timeout deadline of a stack in flight.
fn output_of(
    run: &RunContext,
    stage: &[&PlannedStack],
    state: &ScheduleState,
    decision: &schedule::Decision,
    current: &[StackRecord],
) -> ScheduleOutput {
    let change_set_pending = current.iter().any(|r| r.phase == Phase::ChangeSetPending);
    let fallback = if change_set_pending {
        poll::next_wait(run.poll, 0, fastrand::f64())
    } else {
        run.fallback_poll_seconds.max(1)
    };
    // Never park past a stack's timeout: no event comes when a stack hangs.
    let now = chrono::Utc::now();
    let wait_seconds = current
        .iter()
        .filter(|r| r.phase != Phase::Done)
        .filter_map(|r| reconcile::seconds_to_deadline(r, now))
        .map(|s| u32::try_from(s.saturating_add(1)).unwrap_or(u32::MAX))
        .fold(fallback, u32::min)
        .max(1);
    ScheduleOutput {
        ready: decision.ready.clone(),
        settled: decision.settled,
        any_failed: decision.any_failed,
        wait_seconds,
        in_flight: count(decision.in_flight),
        succeeded: count(decision.succeeded),
        failed: count(decision.failed),
        failed_stacks: stage
            .iter()
            .filter(|s| state.settled.get(&s.name) == Some(&Outcome::Failed))
            .take(MAX_FAILED_NAMES)
            .map(|s| s.name.clone())
            .collect(),
        hand_over: false,
    }
}

/// Whether this step's segment has spent its history (`budget::Segment::enter`): it then
/// starts nothing and hands over, unless the loop is settled. A step without a segment (a
/// caller outside the loop state machine) never hands over.
fn spent(
    state: &mut ScheduleState,
    segment: Option<&str>,
    run: &RunContext,
    max_ready: usize,
) -> bool {
    segment.is_some_and(|execution| {
        Segment::enter(&mut state.segment, execution, run.segment_events, max_ready)
    })
}
