//! The execution-history budget and makespan of a run, computed from the state machine's shape.
//!
//! Step Functions keeps at most 25,000 history events per execution and bills state
//! transitions. This is a discrete-event model of a successful run of
//! `statemachine/deploy.asl.json`'s scheduling loop, per stage:
//!
//! ```text
//! Schedule (check, mode schedule) → StageState (Choice)
//!   ├ ready stacks → DeployReady (Map: one DeployStack task per stack) → Schedule
//!   ├ none ready   → Park (lambda:invoke.waitForTaskToken on the wake function; ends when a
//!   │                stack of the run settles and its event arrives, or after waitSeconds) → Schedule
//!   └ settled      → StageDone
//! ```
//!
//! A stack's life in the model: DeployStack creates its change set (it takes
//! `change_set_seconds` to be ready). Within `change_set_wait_seconds` DeployStack waits for it
//! and executes it itself (the DeployReady round lasts as long); otherwise the first Schedule
//! step after it is ready executes it (change sets send no events, so a park while one is
//! pending lasts `pollSeconds.min`). The stack's CloudFormation operation then takes
//! `seconds(stack)`; the first Schedule step at or after its end sees it succeeded. A park ends at the earliest of: the next settle event of a
//! stack in flight (when events are delivered, `event_delay_seconds` after it settles), or
//! `waitSeconds` = `pollSeconds.min` while a change set is pending, else
//! `fallbackPollSeconds`, and never past a stack's timeout deadline. With events lost every park
//! ends by its timeout. Jitter is not modelled (the wait is its base value).
//!
//! Events per state (Standard workflows; moto's executor emits the same):
//! - Task (Lambda function ARN): TaskStateEntered, LambdaFunctionScheduled, LambdaFunctionStarted,
//!   LambdaFunctionSucceeded, TaskStateExited = 5
//! - Park (`.waitForTaskToken`): TaskStateEntered, TaskScheduled, TaskStarted, TaskSubmitted,
//!   TaskSucceeded or TaskTimedOut, TaskStateExited = 6
//! - Pass, Wait, Choice, Succeed: Entered + Exited = 2
//! - Map: MapStateEntered, MapStateStarted, MapStateSucceeded, MapStateExited = 4, plus
//!   MapIterationStarted + MapIterationSucceeded = 2 per item
//! - Execution: ExecutionStarted + ExecutionSucceeded = 2

use std::collections::HashMap;

use serde::Serialize;

use crate::io::PollSeconds;
use crate::plan::Plan;

pub const TASK: u64 = 5;
pub const PARK: u64 = 6;
pub const SIMPLE: u64 = 2;
pub const MAP: u64 = 4;
pub const ITERATION: u64 = 2;
/// One scheduling step: the Schedule task and the StageState choice.
pub const SCHEDULE_STEP: u64 = TASK + SIMPLE;
/// One stack started: its DeployReady iteration and its DeployStack task.
pub const PER_STACK: u64 = ITERATION + TASK;
/// Per stage: its Stages iteration, its RunStage task (`startExecution.sync:2`, as a park: 6)
/// and StageOutcome choice, StageDone, and its segment's own events (execution, Loop choice,
/// the Pass that ends it). A stage that hands over adds [`PER_SEGMENT`] + [`SEGMENT_FIXED`]
/// per extra segment.
pub const PER_STAGE: u64 = ITERATION + PARK + SIMPLE + SIMPLE + SEGMENT_FIXED;
/// Per run: the execution, Plan, NotifyStart, Finalize, NotifyEnd, Outcome, Deployed and the
/// Stages map.
pub const PER_RUN: u64 = 2 + 4 * TASK + SIMPLE + SIMPLE + MAP;
/// States entered per run outside the stages (Plan, NotifyStart, Stages, Finalize, NotifyEnd,
/// Outcome, Deployed).
pub const PER_RUN_TRANSITIONS: u64 = 7;
/// CloudFormation stack status changes of a created stack (REVIEW_IN_PROGRESS of its change
/// set, CREATE_IN_PROGRESS, CREATE_COMPLETE): each is an event that invokes the wake function.
pub const STATUS_EVENTS_PER_CREATE: u64 = 3;
/// The hard limit of a Standard execution's history.
pub const HISTORY_LIMIT: u64 = 25_000;
/// The largest state input or output, bytes.
pub const STATE_LIMIT_BYTES: u64 = 262_144;

/// Growth factor of the poll interval per check (the rollback loop's waits).
pub const GROWTH: f64 = 1.5;

/// The poll interval before jitter for the `attempt`-th wait (0-based): `min × 1.5^attempt`,
/// capped at `max`.
pub fn base_wait(poll: PollSeconds, attempt: u32) -> f64 {
    let min = f64::from(poll.min.max(1));
    let max = f64::from(poll.max.max(poll.min.max(1)));
    (min * GROWTH.powi(attempt.min(64) as i32)).min(max)
}

/// What the model runs with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub poll: PollSeconds,
    pub fallback_poll_seconds: u32,
    pub max_concurrency: u32,
    /// CloudFormation events reach the wake function (false: every one is lost).
    pub events_delivered: bool,
    /// Seconds from DeployStack creating a change set to the change set being executable.
    pub change_set_seconds: f64,
    /// How long DeployStack waits for its change set before handing over to the scheduling
    /// step (`STACKWAVE_CHANGE_SET_WAIT_SECONDS`).
    pub change_set_wait_seconds: f64,
    /// Seconds from a stack settling to its event completing the parked task.
    pub event_delay_seconds: f64,
    /// Seconds one Schedule step takes (the stacks it observes are observed at its start).
    pub schedule_seconds: f64,
    /// Seconds one DeployReady round takes (the change sets are created at its start).
    pub deploy_seconds: f64,
}

impl Default for Settings {
    /// The execution defaults (polls 5–60 s, fallback 900 s, 10 in flight), events delivered,
    /// instant change sets and steps.
    fn default() -> Self {
        Settings {
            poll: PollSeconds::default(),
            fallback_poll_seconds: crate::io::DEFAULT_FALLBACK_POLL_SECONDS,
            max_concurrency: crate::io::DEFAULT_MAX_CONCURRENCY,
            events_delivered: true,
            change_set_seconds: 0.0,
            change_set_wait_seconds: 20.0,
            event_delay_seconds: 0.0,
            schedule_seconds: 0.0,
            deploy_seconds: 0.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Estimate {
    /// History events of a successful run.
    pub events: u64,
    /// State transitions (what Standard workflows are billed by): states entered.
    pub transitions: u64,
    /// Lambda invocations the state machine makes (Plan, NotifyStart, Schedule, DeployStack,
    /// the wake function at each Park, Finalize, NotifyEnd).
    pub invocations: u64,
    /// Wake invocations by EventBridge: every status change event of the run's stacks.
    pub event_invocations: u64,
    pub schedule_steps: u64,
    pub deploy_rounds: u64,
    /// Parks (wake cycles), and how they ended.
    pub parks: u64,
    pub parks_woken: u64,
    pub parks_timed_out: u64,
    /// Seconds from the first Schedule step to the one that sees the last stage settled.
    pub makespan_seconds: f64,
    pub stacks: u64,
    pub stages: u64,
}

impl Estimate {
    /// The history identity: every event belongs to one of the counted states.
    pub fn events_from_counts(&self) -> u64 {
        history_events(
            self.stages,
            self.schedule_steps,
            self.deploy_rounds,
            self.stacks,
            self.parks,
        )
    }
}

/// History events of a successful run with these counts of stages, scheduling steps,
/// DeployReady rounds, stacks started and parks.
pub fn history_events(
    stages: u64,
    schedule_steps: u64,
    deploy_rounds: u64,
    stacks: u64,
    parks: u64,
) -> u64 {
    PER_RUN
        + PER_STAGE * stages
        + SCHEDULE_STEP * schedule_steps
        + MAP * deploy_rounds
        + PER_STACK * stacks
        + PARK * parks
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Change set created at the time; executable from `ready_at`.
    ChangeSet {
        ready_at: f64,
    },
    Running {
        end: f64,
    },
    Done,
}

#[derive(Debug, Clone, Copy)]
struct Flight {
    phase: Phase,
    deadline: f64,
}

/// The CloudFormation start and end of each stack in the model (seconds from the first step).
pub type Windows = HashMap<String, (f64, f64)>;

/// Model a successful run of `plan`, each stack's CloudFormation operation taking
/// `seconds(stack)`.
pub fn estimate(plan: &Plan, settings: &Settings, seconds: &dyn Fn(&str) -> f64) -> Estimate {
    simulate(plan, settings, seconds).0
}

/// [`estimate`], with each stack's modelled CloudFormation window.
pub fn simulate(
    plan: &Plan,
    settings: &Settings,
    seconds: &dyn Fn(&str) -> f64,
) -> (Estimate, Windows) {
    let whole_plan = plan.schedule == crate::manifest::Schedule::Dependencies;
    let max = settings.max_concurrency.max(1) as usize;
    let mut e = Estimate {
        events: 0,
        transitions: PER_RUN_TRANSITIONS,
        invocations: 4,
        event_invocations: 0,
        schedule_steps: 0,
        deploy_rounds: 0,
        parks: 0,
        parks_woken: 0,
        parks_timed_out: 0,
        makespan_seconds: 0.0,
        stacks: plan.stacks.len() as u64,
        stages: plan.stages.len() as u64,
    };
    let mut flights: HashMap<&str, Flight> = HashMap::new();
    let mut windows: Windows = HashMap::new();
    let mut t = 0.0f64;
    // A guard against a plan the model cannot finish (a dependency outside the plan).
    let mut steps_left: u64 = 10_000_000;
    for stage in &plan.stages {
        let members: Vec<&crate::plan::PlannedStack> = plan
            .stacks
            .iter()
            .filter(|s| whole_plan || s.stage_index == stage.index)
            .collect();
        e.transitions += 1; // StageDone
        loop {
            steps_left = steps_left.saturating_sub(1);
            // Schedule: advance every stack in flight, then decide.
            e.schedule_steps += 1;
            e.transitions += 2;
            e.invocations += 1;
            for s in &members {
                let Some(f) = flights.get_mut(s.name.as_str()) else {
                    continue;
                };
                match f.phase {
                    Phase::ChangeSet { ready_at } if ready_at <= t => {
                        let end = t + seconds(&s.name).max(0.0);
                        f.phase = Phase::Running { end };
                        windows.insert(s.name.clone(), (t, end));
                    }
                    Phase::Running { end } if end <= t => f.phase = Phase::Done,
                    _ => {}
                }
            }
            let done = |name: &str| {
                flights
                    .get(name)
                    .is_some_and(|f| matches!(f.phase, Phase::Done))
            };
            let in_flight = flights
                .values()
                .filter(|f| !matches!(f.phase, Phase::Done))
                .count();
            let pending: Vec<&crate::plan::PlannedStack> = members
                .iter()
                .copied()
                .filter(|s| !flights.contains_key(s.name.as_str()))
                .collect();
            let stage_in_flight = members
                .iter()
                .filter(|s| flights.contains_key(s.name.as_str()) && !done(&s.name))
                .count();
            if (pending.is_empty() && stage_in_flight == 0) || steps_left == 0 {
                t += settings.schedule_seconds;
                break;
            }
            let room = max.saturating_sub(in_flight);
            let ready: Vec<&str> = pending
                .iter()
                .filter(|s| s.depends_on.iter().all(|d| done(d)))
                .take(room)
                .map(|s| s.name.as_str())
                .collect();
            t += settings.schedule_seconds;
            if !ready.is_empty() {
                // DeployReady: one DeployStack per ready stack, then Schedule again.
                let n = ready.len() as u64;
                e.deploy_rounds += 1;
                e.transitions += 1 + n;
                e.invocations += n;
                let change_set = settings.change_set_seconds.max(0.0);
                let executed_by_deploy = change_set <= settings.change_set_wait_seconds;
                for name in ready {
                    let timeout = plan
                        .stack(name)
                        .map_or(crate::plan::DEFAULT_TIMEOUT_MINUTES, |s| s.timeout_minutes);
                    let phase = if executed_by_deploy {
                        let start = t + change_set;
                        let end = start + seconds(name).max(0.0);
                        windows.insert(name.to_string(), (start, end));
                        Phase::Running { end }
                    } else {
                        Phase::ChangeSet {
                            ready_at: t + change_set,
                        }
                    };
                    flights.insert(
                        name,
                        Flight {
                            phase,
                            deadline: t + f64::from(timeout) * 60.0,
                        },
                    );
                }
                t += settings.deploy_seconds;
                if executed_by_deploy {
                    t += change_set;
                }
                continue;
            }
            // Park.
            e.parks += 1;
            e.transitions += 1;
            e.invocations += 1;
            let pending_change_set = flights
                .values()
                .any(|f| matches!(f.phase, Phase::ChangeSet { .. }));
            let base = if pending_change_set {
                f64::from(settings.poll.min.max(1))
            } else {
                f64::from(settings.fallback_poll_seconds.max(1))
            };
            let wait = flights
                .values()
                .filter(|f| !matches!(f.phase, Phase::Done))
                .map(|f| (f.deadline - t).max(0.0).ceil() + 1.0)
                .fold(base, f64::min)
                .max(1.0);
            let event = if settings.events_delivered {
                flights
                    .values()
                    .filter_map(|f| match f.phase {
                        Phase::Running { end } => Some(end + settings.event_delay_seconds),
                        _ => None,
                    })
                    .fold(f64::INFINITY, f64::min)
            } else {
                f64::INFINITY
            };
            if event <= t + wait {
                e.parks_woken += 1;
                t = t.max(event);
            } else {
                e.parks_timed_out += 1;
                t += wait;
            }
        }
    }
    if settings.events_delivered {
        e.event_invocations = STATUS_EVENTS_PER_CREATE * e.stacks;
    }
    e.makespan_seconds = t;
    e.events = e.events_from_counts();
    (e, windows)
}

/// At worst, one stack deployed alone: the scheduling step that readies it, its DeployReady
/// round and item, a park while its change set is created and the park its event ends, each
/// followed by a scheduling step.
pub const WORST_PER_STACK: u64 = SCHEDULE_STEP + MAP + PER_STACK + 2 * (PARK + SCHEDULE_STEP);
/// At worst, one stack restored alone in a rollback: the RollbackSchedule step and its Choice,
/// its RestoreReady round and item, and the park its event ends with the step after it.
pub const WORST_PER_RESTORE: u64 = SCHEDULE_STEP + MAP + PER_STACK + PARK + SCHEDULE_STEP;
/// One fallback poll that expires: a park and the scheduling step after it.
pub const FALLBACK_CYCLE: u64 = PARK + SCHEDULE_STEP;
/// The rollback's own states (PlanRollback, its first step, the states after the loop), an
/// allowance.
pub const ROLLBACK_FIXED: u64 = 50;

/// History events one segment may use before it hands over (`RunContext::segment_events`):
/// the 25,000-event limit less room for the largest cycle a step can still start, the
/// Lambda-level retries of its tasks and the segment's own states.
pub const SEGMENT_EVENTS: u32 = 20_000;
/// The smallest `segmentEvents` the plan step accepts: room for one cycle of the largest
/// `maxConcurrency`.
pub const MIN_SEGMENT_EVENTS: u32 = 500;
/// A segment's own events: its execution (started, succeeded), the `Loop` choice that picks
/// the deploy or rollback loop, and the Pass state that ends it.
pub const SEGMENT_FIXED: u64 = 2 + SIMPLE + SIMPLE;
/// One segment in the parent's history: its `RunStage`/`RunRollback` task
/// (`states:startExecution.sync:2`: entered, scheduled, started, submitted, succeeded, exited)
/// and the Choice on its outcome.
pub const PER_SEGMENT: u64 = PARK + SIMPLE;

/// Events of one cycle of the loop: the scheduling step and its Choice, then the DeployReady
/// (or RestoreReady) round of `ready` stacks, or a park when none is ready.
pub fn cycle_events(ready: usize) -> u64 {
    SCHEDULE_STEP
        + if ready == 0 {
            PARK
        } else {
            MAP + PER_STACK * ready as u64
        }
}

/// A segment's history, as its scheduling steps count it (`ScheduleState::segment`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Segment {
    /// The segment's execution (`$$.Execution.Id` of the loop state machine).
    pub execution: String,
    /// Events it has used so far.
    pub events: u64,
    /// Segments of this loop so far (for logs).
    #[serde(default)]
    pub count: u32,
}

impl Segment {
    /// Enter a step of `execution`: a new segment starts counting at its own fixed events.
    /// True when the segment cannot afford one more cycle of `max_ready` stacks within
    /// `budget`: the step then hands over instead of starting anything.
    pub fn enter(
        segment: &mut Option<Segment>,
        execution: &str,
        budget: u32,
        max_ready: usize,
    ) -> bool {
        let s = segment.get_or_insert_with(Segment::default);
        if s.execution != execution {
            s.execution = execution.to_string();
            s.events = SEGMENT_FIXED;
            s.count = s.count.saturating_add(1);
        }
        s.events + cycle_events(max_ready.max(1)) > u64::from(budget)
    }

    /// Charge the cycle this step starts.
    pub fn charge(segment: &mut Option<Segment>, ready: usize) {
        if let Some(s) = segment {
            s.events = s.events.saturating_add(cycle_events(ready));
        }
    }
}

/// The most history events a run of `plan` can need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorstCase {
    /// Events of every execution of the run together (the parent and its segments).
    pub events: u64,
    pub stacks: u64,
    /// Fallback polls that can expire: over the longest the deployment and its rollback can
    /// last by the stacks' timeouts.
    pub fallback_polls: u64,
    /// Segments the loops can need: each stage's loop and the rollback's hand over to a new
    /// segment whenever one has used `segment_events`.
    pub segments: u64,
    /// Events of the parent execution: its own states and one task per segment.
    pub parent_events: u64,
    /// The most stacks a plan of this shape could hold within the parent's history limit.
    pub max_stacks: u64,
}

/// The dependencies that hold `stack` back: with stage barriers only its same-stage ones (the
/// barrier covers the rest); with `whole_graph` (`schedule: dependencies`) all of them.
pub fn holding<'a>(
    plan: &'a Plan,
    stack: &'a crate::plan::PlannedStack,
    whole_graph: bool,
) -> impl Iterator<Item = &'a str> + 'a {
    stack
        .depends_on
        .iter()
        .filter(move |d| {
            whole_graph
                || plan
                    .stack(d)
                    .is_some_and(|dep| dep.stage_index == stack.stage_index)
        })
        .map(String::as_str)
}

/// The critical path of `plan` with these per-stack seconds: Σ over stages of each stage's
/// longest chain, or with `whole_graph` the whole graph's longest chain.
pub fn critical_path(
    plan: &Plan,
    whole_graph: bool,
    seconds: &dyn Fn(&crate::plan::PlannedStack) -> f64,
) -> f64 {
    let mut finish: HashMap<&str, f64> = HashMap::new();
    let mut per_stage: HashMap<u32, f64> = HashMap::new();
    // Plan order is topological (stage, then dependency level).
    for s in &plan.stacks {
        let before = holding(plan, s, whole_graph)
            .filter_map(|d| finish.get(d).copied())
            .fold(0.0, f64::max);
        let end = before + seconds(s);
        finish.insert(s.name.as_str(), end);
        let key = if whole_graph { 0 } else { s.stage_index };
        let stage = per_stage.entry(key).or_insert(0.0);
        *stage = stage.max(end);
    }
    per_stage.values().sum()
}

/// Seconds the run can last at most by its timeouts: a stack is cancelled at its
/// `timeoutMinutes` and given as long again to settle (`reconcile::seconds_to_deadline`); the
/// critical path of those.
fn longest_by_timeouts(plan: &Plan) -> u64 {
    let whole_graph = plan.schedule == crate::manifest::Schedule::Dependencies;
    critical_path(plan, whole_graph, &|s| {
        2.0 * 60.0 * f64::from(s.timeout_minutes)
    }) as u64
}

/// The run's limits: the fallback poll, the segment budget and the stacks in flight at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub fallback_poll_seconds: u32,
    pub segment_events: u32,
    pub max_concurrency: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fallback_poll_seconds: crate::io::DEFAULT_FALLBACK_POLL_SECONDS,
            segment_events: SEGMENT_EVENTS,
            max_concurrency: crate::io::DEFAULT_MAX_CONCURRENCY,
        }
    }
}

/// The parent's events with `segments` segments.
fn parent_events(stages: u64, segments: u64) -> u64 {
    PER_RUN + ROLLBACK_FIXED + stages * PER_STAGE + segments * PER_SEGMENT
}

/// The worst case of a run of `plan`: every stack starts alone and settles alone (each costs
/// [`WORST_PER_STACK`]), every stack is then restored alone ([`WORST_PER_RESTORE`]), and a
/// fallback poll expires every `fallback_poll_seconds` of the longest the deployment and the
/// rollback can each last by the stacks' timeouts. Those events are spread over segments of
/// at most `segment_events` each (a segment hands over before a cycle could overrun it); the
/// parent holds one task per segment.
pub fn worst_case(plan: &Plan, limits: Limits) -> WorstCase {
    let stacks = plan.stacks.len() as u64;
    let stages = plan.stages.len() as u64;
    let longest = longest_by_timeouts(plan);
    let fallback_polls = 2 * longest.div_ceil(u64::from(limits.fallback_poll_seconds.max(1)));
    let per_stack = WORST_PER_STACK + WORST_PER_RESTORE;
    let looped = stages * SCHEDULE_STEP + fallback_polls * FALLBACK_CYCLE + stacks * per_stack;
    let usable = usable_per_segment(limits);
    // Each stage's loop and the rollback's start a segment of their own.
    let segments = looped.div_ceil(usable) + stages + 1;
    let parent = parent_events(stages, segments);
    // Stacks the parent could hold: each needs per_stack/usable segments.
    let room = HISTORY_LIMIT.saturating_sub(parent_events(stages, stages + 1)) / PER_SEGMENT;
    WorstCase {
        events: parent + looped + segments * SEGMENT_FIXED,
        stacks,
        fallback_polls,
        segments,
        parent_events: parent,
        max_stacks: room.saturating_mul(usable) / per_stack,
    }
}

/// Events a segment can spend on its loop: its budget less its own states and the largest
/// cycle it may still start.
fn usable_per_segment(limits: Limits) -> u64 {
    let max_ready = usize::try_from(limits.max_concurrency.max(1)).unwrap_or(usize::MAX);
    u64::from(limits.segment_events)
        .saturating_sub(SEGMENT_FIXED + cycle_events(max_ready))
        .max(1)
}

/// The fix for a refused plan: split it (when a smaller manifest of the same shape fits), or
/// make the fallback polls fewer.
fn fix_for(plan: &Plan, w: &WorstCase, limits: Limits) -> String {
    let mut fixes = Vec::new();
    if w.max_stacks > 0 && w.max_stacks < w.stacks {
        fixes.push(format!(
            "split the manifest into manifests of at most {} stacks each and deploy them one \
             after another (stage boundaries are natural split points)",
            w.max_stacks
        ));
    }
    // The fallback at which the parent fits: the segments that the polls may need.
    let stages = plan.stages.len() as u64;
    let room = HISTORY_LIMIT.saturating_sub(parent_events(stages, stages + 1)) / PER_SEGMENT;
    let usable = usable_per_segment(limits);
    let budget = room.saturating_mul(usable);
    let fixed = stages * SCHEDULE_STEP + w.stacks * (WORST_PER_STACK + WORST_PER_RESTORE);
    let polls = budget.saturating_sub(fixed) / FALLBACK_CYCLE;
    if polls > 0 {
        let longest = longest_by_timeouts(plan);
        let min_fallback = (2 * longest).div_ceil(polls);
        if min_fallback > u64::from(limits.fallback_poll_seconds) {
            fixes.push(format!(
                "raise fallbackPollSeconds to at least {min_fallback} (or lower timeoutMinutes): \
                 the fallback polls over the longest the timeouts allow then fit"
            ));
        }
    }
    if u64::from(limits.segment_events) < u64::from(SEGMENT_EVENTS) {
        fixes.push(format!(
            "raise segmentEvents (up to {SEGMENT_EVENTS}): fewer segments then fit"
        ));
    }
    if fixes.is_empty() {
        fixes.push("lower timeoutMinutes and split the manifest".to_string());
    }
    fixes.join("; or ")
}

/// Refuse a plan whose worst case exceeds the parent execution's history limit: such an
/// execution could fail part-way, with stacks in flight and no rollback. (Each segment hands
/// over before it reaches the limit, so only the parent's count can.)
pub fn check_history(
    plan: &Plan,
    limits: Limits,
) -> Result<WorstCase, crate::manifest::ValidationIssue> {
    let w = worst_case(plan, limits);
    if w.parent_events <= HISTORY_LIMIT {
        return Ok(w);
    }
    Err(crate::manifest::ValidationIssue::new(
        None,
        "stages",
        format!(
            "this run could need {} segments of at most {} history events each, and their \
             tasks {} events in the parent execution, over the {HISTORY_LIMIT} one execution \
             may hold: {} stacks at up to {} events each (when every stack starts and settles \
             alone, and is restored alone if the run fails), plus {} fallback polls over the \
             longest its timeoutMinutes allow. Past the limit the execution would fail \
             part-way, with stacks in flight and no rollback, so it is not started",
            w.segments,
            limits.segment_events,
            w.parent_events,
            w.stacks,
            WORST_PER_STACK + WORST_PER_RESTORE,
            w.fallback_polls,
        ),
        fix_for(plan, &w, limits),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{self, Shape};

    fn plan_of(text: &str) -> Plan {
        crate::plan::from_text(text, "t", &|_| true).expect("plan")
    }

    /// Polls 5 s, fallback 900 s, change sets 10 s: the settings of the 30-minute figures.
    fn thirty_minute_settings() -> Settings {
        Settings {
            change_set_seconds: 10.0,
            ..Settings::default()
        }
    }

    #[test]
    fn the_interval_grows_from_min_to_max() {
        let p = PollSeconds { min: 5, max: 60 };
        assert_eq!(base_wait(p, 0), 5.0);
        assert_eq!(base_wait(p, 1), 7.5);
        assert!(base_wait(p, 6) <= 60.0);
        assert_eq!(base_wait(p, 7), 60.0);
    }

    #[test]
    fn a_chain_of_two_thirty_minute_stacks_step_by_step() {
        // A → B, 1,800 s each. Per stack: a Schedule that readies it, DeployReady (DeployStack
        // waits the 10 s for its change set and executes it), the Schedule that sees it run,
        // then parks of the 900-s fallback: one times out (at 900 s of its run), the second is
        // woken by its CREATE_COMPLETE at 1,800 s. The step after B's event sees the stage
        // settled.
        let text = "name: t\nstages:\n  - name: a\n    stacks:\n      - {name: A, template: t.yaml}\n      - {name: B, template: t.yaml, dependsOn: [A]}\n";
        let plan = plan_of(text);
        let (e, w) = simulate(&plan, &thirty_minute_settings(), &|_| 1800.0);
        assert_eq!(e.deploy_rounds, 2);
        assert_eq!(e.parks, 2 * 2);
        assert_eq!(e.parks_woken, 2);
        assert_eq!(e.parks_timed_out, 2);
        // 1 initial + per stack (after deploy 1, after the running parks 2; the last of A's
        // is the one that readies B).
        assert_eq!(e.schedule_steps, 1 + 2 * (1 + 2));
        assert_eq!(
            e.events,
            PER_RUN + PER_STAGE + 7 * SCHEDULE_STEP + 2 * MAP + 2 * PER_STACK + 4 * PARK
        );
        assert_eq!(e.events, 143);
        assert_eq!(e.transitions, 7 + 1 + 7 * 2 + 2 * 2 + 4);
        assert_eq!(e.invocations, 4 + 7 + 2 + 4);
        assert_eq!(e.makespan_seconds, 2.0 * (10.0 + 1800.0));
        assert_eq!(w["A"], (10.0, 1810.0));
        assert_eq!(w["B"], (1820.0, 3620.0));

        // A change set slower than DeployStack's wait: the scheduling step executes it after
        // two 5-s parks (the step after DeployReady, then one per park).
        let slow = Settings {
            change_set_wait_seconds: 5.0,
            ..thirty_minute_settings()
        };
        let (e, w) = simulate(&plan, &slow, &|_| 1800.0);
        assert_eq!(e.parks, 2 * (2 + 2));
        assert_eq!(e.parks_timed_out, 2 * (2 + 1));
        assert_eq!(e.schedule_steps, 1 + 2 * (1 + 2 + 2));
        assert_eq!(e.events, 195);
        assert_eq!(w["A"], (10.0, 1810.0));
        assert_eq!(e.makespan_seconds, 2.0 * (10.0 + 1800.0));
    }

    #[test]
    fn lost_events_make_every_park_a_fallback_timeout() {
        let text =
            "name: t\nstages:\n  - name: a\n    stacks:\n      - {name: A, template: t.yaml}\n";
        let plan = plan_of(text);
        let s = Settings {
            fallback_poll_seconds: 7,
            events_delivered: false,
            ..Settings::default()
        };
        // 20 s: executed at 0, parks end at 7, 14, 21; the step at 21 sees it done.
        let e = estimate(&plan, &s, &|_| 20.0);
        assert_eq!((e.parks, e.parks_woken, e.parks_timed_out), (3, 0, 3));
        assert_eq!(e.makespan_seconds, 21.0);
        assert_eq!(e.event_invocations, 0);
        // Delivered: one park, woken at 20.
        let e = estimate(
            &plan,
            &Settings {
                events_delivered: true,
                ..s
            },
            &|_| 20.0,
        );
        assert_eq!((e.parks, e.parks_woken), (3, 1));
        assert_eq!(e.makespan_seconds, 20.0);
    }

    #[test]
    fn bellyfed_at_thirty_minutes() {
        let text = include_str!("../../examples/bellyfed/manifest.yaml");
        let plan = plan_of(text);
        assert_eq!(plan.stacks.len(), 14);
        let e = estimate(&plan, &thirty_minute_settings(), &|_| 1800.0);
        // Every stack 30 min: the run is a sequence of dependency levels (each level's stacks
        // start together and settle together). Per level: the Schedule that readies it,
        // DeployReady (DeployStack executes the change set), the step that sees it run, 2 parks
        // of its run (the 900-s fallback once, then the event) with their steps.
        let levels: u64 = plan.stages.iter().map(|s| s.waves.len() as u64).sum();
        assert_eq!(e.deploy_rounds, levels);
        assert_eq!(e.parks, levels * 2);
        assert_eq!(e.parks_woken, levels);
        assert_eq!(e.schedule_steps, levels * 3 + e.stages);
        assert_eq!(e.events, e.events_from_counts());
        assert_eq!(
            e.events,
            PER_RUN
                + PER_STAGE * 5
                + SCHEDULE_STEP * (levels * 3 + 5)
                + MAP * levels
                + PER_STACK * 14
                + PARK * levels * 2
        );
        assert_eq!(e.makespan_seconds, levels as f64 * 1810.0);
        assert!(e.events < HISTORY_LIMIT);
    }

    #[test]
    fn two_thousand_stacks_at_thirty_minutes_stay_below_the_history_limit() {
        // 5 stages × 400 independent stacks, 40 in flight (the largest maxConcurrency): each
        // stage runs 10 batches of 40 that start and settle together.
        let plan = plan_of(&synth::manifest_yaml(
            "sy",
            5,
            400,
            Shape::Independent,
            "t.yaml",
        ));
        assert_eq!(plan.stacks.len(), 2000);
        let s = Settings {
            max_concurrency: 40,
            ..thirty_minute_settings()
        };
        let e = estimate(&plan, &s, &|_| 1800.0);
        let batches = 5 * 10;
        assert_eq!(e.deploy_rounds, batches);
        assert_eq!(e.parks, batches * 2);
        assert_eq!(e.schedule_steps, batches * 3 + 5);
        assert_eq!(
            e.events,
            PER_RUN
                + PER_STAGE * 5
                + SCHEDULE_STEP * (batches * 3 + 5)
                + MAP * batches
                + PER_STACK * 2000
                + PARK * batches * 2
        );
        assert_eq!(e.events, 16_005);
        assert!(e.events < HISTORY_LIMIT);
        assert_eq!(e.makespan_seconds, batches as f64 * 1810.0);
    }

    #[test]
    fn the_dependency_schedule_runs_the_whole_graph_from_the_first_stage() {
        // FanIn links each stage's first stack to the stage before: in dependency mode the
        // independent stacks of every stage start at once.
        let mut text = synth::manifest_yaml("sy", 3, 4, Shape::FanIn, "t.yaml");
        let stages = plan_of(&text);
        text.push_str("schedule: dependencies\n");
        let dag = plan_of(&text);
        let s = Settings::default();
        // A slow stack nothing in its stage waits for first: its stage's barrier delays the
        // next stage; the graph does not.
        let secs = |n: &str| if n == "sy-s1-n1-t" { 300.0 } else { 100.0 };
        let a = estimate(&stages, &s, &secs);
        let b = estimate(&dag, &s, &secs);
        assert_eq!(a.makespan_seconds, 200.0 + 400.0 + 200.0);
        assert_eq!(b.makespan_seconds, 600.0);
        // Later stages: one step each, seeing their stacks settled.
        assert_eq!(b.events, b.events_from_counts());
    }

    fn limits(fallback: u32, segment_events: u32) -> Limits {
        Limits {
            fallback_poll_seconds: fallback,
            segment_events,
            max_concurrency: crate::io::DEFAULT_MAX_CONCURRENCY,
        }
    }

    #[test]
    fn the_worst_case_counts_every_stack_alone_and_its_timeouts() {
        let text = include_str!("../../examples/bellyfed/manifest.yaml");
        let plan = plan_of(text);
        let w = worst_case(&plan, Limits::default());
        assert_eq!(WORST_PER_STACK, 44);
        assert_eq!(WORST_PER_RESTORE, 31);
        // The longest chain by timeouts, twice each (cancel, then settle), in 900-s polls, for
        // the deployment and again for the rollback.
        let longest = longest_by_timeouts(&plan);
        assert!(longest >= 5 * 2 * 60 * 60, "{longest}");
        assert_eq!(w.fallback_polls, 2 * longest.div_ceil(900));
        let looped = 5 * SCHEDULE_STEP + w.fallback_polls * FALLBACK_CYCLE + 14 * 75;
        // Everything fits one segment per stage, plus the rollback's.
        assert!(looped < u64::from(SEGMENT_EVENTS) / 2, "{looped}");
        assert_eq!(w.segments, 1 + 5 + 1);
        assert_eq!(
            w.parent_events,
            PER_RUN + ROLLBACK_FIXED + 5 * PER_STAGE + 7 * PER_SEGMENT
        );
        assert_eq!(w.events, w.parent_events + looped + 7 * SEGMENT_FIXED);
        assert!(check_history(&plan, Limits::default()).is_ok());
        // The worst case bounds what the model gives for any durations.
        let e = estimate(&plan, &Settings::default(), &|_| 1800.0);
        assert!(e.events < w.events, "{} < {}", e.events, w.events);
    }

    #[test]
    fn a_segment_hands_over_before_a_cycle_could_overrun_its_budget() {
        let mut segment = None;
        // A new segment starts at its own events and can afford a cycle of 10.
        assert!(!Segment::enter(&mut segment, "s1", 500, 10));
        assert_eq!(
            segment.as_ref().map(|s| (s.events, s.count)),
            Some((SEGMENT_FIXED, 1))
        );
        let mut steps = 0;
        while !Segment::enter(&mut segment, "s1", 500, 10) {
            Segment::charge(&mut segment, 10);
            steps += 1;
        }
        let used = segment.as_ref().map_or(0, |s| s.events);
        assert!(used + cycle_events(10) > 500 && used <= 500, "{used}");
        assert_eq!(steps, (500 - SEGMENT_FIXED) / cycle_events(10));
        // The next segment starts afresh.
        assert!(!Segment::enter(&mut segment, "s2", 500, 10));
        assert_eq!(
            segment.as_ref().map(|s| (s.events, s.count)),
            Some((SEGMENT_FIXED, 2))
        );
        // A park costs its step and the park.
        Segment::charge(&mut segment, 0);
        assert_eq!(
            segment.map(|s| s.events),
            Some(SEGMENT_FIXED + SCHEDULE_STEP + PARK)
        );
    }

    #[test]
    fn polls_that_need_too_many_segments_are_refused_with_the_fallback_and_budget_that_fit() {
        let text = "name: t\nstages:\n  - name: a\n    stacks:\n      - {name: A, template: t.yaml, timeoutMinutes: 1440}\n";
        let plan = plan_of(text);
        // 1,440 minutes, cancelled and given as long again, for the deployment and the
        // rollback: 345,600 polls of 1 s. With the default segment budget they fit.
        assert!(check_history(&plan, limits(1, SEGMENT_EVENTS)).is_ok());
        let why = check_history(&plan, limits(1, MIN_SEGMENT_EVENTS)).expect_err("refused");
        assert!(why.message.contains("345600 fallback polls"), "{why:?}");
        assert!(why.fix.contains("raise segmentEvents"), "{why:?}");
        assert!(!why.fix.contains("split"), "{why:?}");
        let min: u32 = why
            .fix
            .split("at least ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .expect("a fallback in the fix");
        assert!(
            check_history(&plan, limits(min, MIN_SEGMENT_EVENTS)).is_ok(),
            "{min}"
        );
        assert!(
            check_history(&plan, limits(min - 1, MIN_SEGMENT_EVENTS)).is_err(),
            "{min}"
        );
    }

    #[test]
    fn two_thousand_stacks_fit_in_segments() {
        let plan = plan_of(&synth::manifest_yaml(
            "sy",
            5,
            400,
            Shape::Independent,
            "t.yaml",
        ));
        let l = Limits {
            max_concurrency: 40,
            ..Limits::default()
        };
        let w = worst_case(&plan, l);
        // Far more than one execution holds, spread over a handful of segments.
        assert!(w.events > 6 * HISTORY_LIMIT, "{w:?}");
        assert!(w.segments < 20, "{w:?}");
        assert!(w.parent_events < 500, "{w:?}");
        assert!(w.max_stacks > 100_000, "{w:?}");
        assert!(check_history(&plan, l).is_ok());
    }
}
