//! The execution-history budget, computed from the state machine's shape.
//!
//! Step Functions keeps at most 25,000 history events per execution. This model counts the
//! events `statemachine/deploy.asl.json` emits for a plan, given how long each stack takes and
//! the poll settings, so the budget is arithmetic that tests check, not a hope. The e2e tests
//! compare it with `GetExecutionHistory` of real runs on the emulator.
//!
//! Events per state (Standard workflows):
//! - Task (Lambda): TaskStateEntered, LambdaFunctionScheduled, LambdaFunctionStarted,
//!   LambdaFunctionSucceeded, TaskStateExited = 5
//! - Pass, Wait, Choice, Succeed: Entered + Exited = 2
//! - Map: MapStateEntered, MapStateStarted, MapStateSucceeded, MapStateExited = 4, plus
//!   MapIterationStarted + MapIterationSucceeded = 2 per item
//! - Execution: ExecutionStarted + ExecutionSucceeded = 2

use serde::Serialize;

use crate::io::PollSeconds;
use crate::plan::Plan;

pub const TASK: u64 = 5;
pub const SIMPLE: u64 = 2;
pub const MAP: u64 = 4;
pub const ITERATION: u64 = 2;
/// One Wait → check → Choice cycle.
pub const POLL_CYCLE: u64 = SIMPLE + TASK + SIMPLE;
/// The hard limit of a Standard execution's history.
pub const HISTORY_LIMIT: u64 = 25_000;

/// Growth factor of the poll interval per check.
pub const GROWTH: f64 = 1.5;

/// The poll interval before jitter for the `attempt`-th wait of a wave (0-based):
/// `min × 1.5^attempt`, capped at `max`.
pub fn base_wait(poll: PollSeconds, attempt: u32) -> f64 {
    let min = f64::from(poll.min.max(1));
    let max = f64::from(poll.max.max(poll.min.max(1)));
    (min * GROWTH.powi(attempt.min(64) as i32)).min(max)
}

/// How many Wait/check cycles a wave takes when its slowest stack runs `seconds`.
/// The first check executes the change sets deploy-stack created, so the stacks' clock starts
/// after the first wait; the wave settles at the first check at or after that + `seconds`.
pub fn cycles_for(poll: PollSeconds, seconds: f64) -> u64 {
    let first = base_wait(poll, 0);
    let target = first + seconds.max(0.0);
    let mut elapsed = 0.0;
    let mut attempt = 0u32;
    let mut cycles = 0u64;
    while elapsed < target && cycles < 1_000_000 {
        elapsed += base_wait(poll, attempt);
        attempt = attempt.saturating_add(1);
        cycles += 1;
    }
    cycles.max(1)
}

/// Seconds from a wave's start until the check that sees it settled.
pub fn detected_after(poll: PollSeconds, seconds: f64) -> f64 {
    (0..cycles_for(poll, seconds))
        .map(|a| base_wait(poll, a as u32))
        .sum()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Estimate {
    /// History events of a successful run.
    pub events: u64,
    /// State transitions (what Standard workflows are billed by): states entered.
    pub transitions: u64,
    /// Wait/check cycles over the whole run.
    pub poll_cycles: u64,
    /// Lambda invocations.
    pub invocations: u64,
    /// Seconds from the first wave's start to the last wave's detected end.
    pub makespan_seconds: f64,
    pub waves: u64,
    pub stacks: u64,
}

/// Count the events of a successful run of `plan`, each stack taking `seconds(stack)`.
pub fn estimate(plan: &Plan, poll: PollSeconds, seconds: &dyn Fn(&str) -> f64) -> Estimate {
    // Plan, NotifyStart, Finalize, NotifyEnd (tasks); Outcome (choice); Deployed (pass);
    // the Stages map; the execution itself.
    let mut events = 4 * TASK + SIMPLE + SIMPLE + MAP + 2;
    let mut transitions = 4 + 1 + 1 + 1;
    let mut invocations = 4u64;
    let mut cycles_total = 0u64;
    let mut makespan = 0.0;
    let mut waves = 0u64;
    for stage in &plan.stages {
        // The stage's iteration of Stages and its Waves map.
        events += ITERATION + MAP;
        transitions += 1;
        for wave in &stage.waves {
            waves += 1;
            let n = wave.len() as u64;
            let slowest = wave.iter().map(|s| seconds(s)).fold(0.0, f64::max);
            let cycles = cycles_for(poll, slowest);
            cycles_total += cycles;
            makespan += detected_after(poll, slowest);
            // Waves iteration; DeployWave map with one iteration + one task per stack;
            // StartPolling pass; the cycles; WaveDone.
            events +=
                ITERATION + MAP + n * (ITERATION + TASK) + SIMPLE + cycles * POLL_CYCLE + SIMPLE;
            transitions += 1 + n + 1 + cycles * 3 + 1;
            invocations += n + cycles;
        }
    }
    Estimate {
        events,
        transitions,
        poll_cycles: cycles_total,
        invocations,
        makespan_seconds: makespan,
        waves,
        stacks: plan.stacks.len() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_grows_from_min_to_max() {
        let p = PollSeconds { min: 5, max: 60 };
        assert_eq!(base_wait(p, 0), 5.0);
        assert_eq!(base_wait(p, 1), 7.5);
        assert!(base_wait(p, 6) <= 60.0);
        assert_eq!(base_wait(p, 7), 60.0);
        assert_eq!(base_wait(p, 100), 60.0);
    }

    #[test]
    fn thirty_minutes_at_default_polls_costs_35_cycles() {
        // 5, 7.5, 11.25, 16.9, 25.3, 38, 57 (≈160 s), then 60 s steps to 5 + 1800 s.
        let p = PollSeconds::default();
        assert_eq!(cycles_for(p, 1800.0), 35);
        assert_eq!(cycles_for(PollSeconds { min: 5, max: 120 }, 1800.0), 21);
        assert!(detected_after(p, 1800.0) >= 1805.0);
        assert!(detected_after(p, 1800.0) < 1805.0 + 60.0);
    }

    #[test]
    fn a_quick_stack_is_seen_at_the_second_check() {
        let p = PollSeconds { min: 1, max: 2 };
        assert_eq!(cycles_for(p, 0.5), 2);
        assert_eq!(cycles_for(p, 0.0), 1);
    }
}
