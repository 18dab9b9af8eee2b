//! What one deployment costs, from the budget model's counts and measured handler wall times.
//!
//! Prices (us-east-1, list): Step Functions Standard $0.025 per 1,000 state transitions; Lambda
//! $0.0000133334 per GB-second on arm64 at 128 MB, plus $0.20 per million requests; CodeBuild
//! general1.small $0.005 per minute.

use stackwave_core::budget::{self, Estimate, HISTORY_LIMIT, POLL_CYCLE};
use stackwave_core::io::PollSeconds;
use stackwave_core::plan::Plan;

pub const USD_PER_TRANSITION: f64 = 0.025 / 1000.0;
pub const USD_PER_GB_SECOND: f64 = 0.000_013_333_4;
pub const USD_PER_REQUEST: f64 = 0.20 / 1_000_000.0;
pub const LAMBDA_GB: f64 = 128.0 / 1024.0;
pub const CODEBUILD_USD_PER_MINUTE: f64 = 0.005;
/// Transitions of one Wait → check → Choice cycle.
pub const CYCLE_TRANSITIONS: u64 = 3;

/// Median wall seconds per invocation of each function.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WallTimes {
    pub plan: f64,
    pub deploy: f64,
    pub check: f64,
    pub notify: f64,
    pub finalize: f64,
}

/// One row of the cost table.
#[derive(Debug, Clone, PartialEq)]
pub struct Costed {
    pub events: u64,
    pub transitions: u64,
    pub invocations: u64,
    pub gb_seconds: f64,
    pub makespan_seconds: f64,
}

impl Costed {
    pub fn step_functions_usd(&self) -> f64 {
        self.transitions as f64 * USD_PER_TRANSITION
    }

    pub fn lambda_usd(&self) -> f64 {
        self.gb_seconds * USD_PER_GB_SECOND + self.invocations as f64 * USD_PER_REQUEST
    }

    pub fn usd(&self) -> f64 {
        self.step_functions_usd() + self.lambda_usd()
    }

    pub fn within_history_limit(&self) -> bool {
        self.events <= HISTORY_LIMIT
    }
}

/// stackwave: the budget model's counts for `plan`, every stack taking `seconds`.
pub fn stackwave(plan: &Plan, poll: PollSeconds, seconds: f64, wall: WallTimes) -> Costed {
    let e = budget::estimate(plan, poll, &|_| seconds);
    let n = e.stacks as f64;
    let lambda_seconds = wall.plan
        + 2.0 * wall.notify
        + wall.finalize
        + n * wall.deploy
        + e.poll_cycles as f64 * wall.check;
    Costed {
        events: e.events,
        transitions: e.transitions,
        invocations: e.invocations,
        gb_seconds: lambda_seconds * LAMBDA_GB,
        makespan_seconds: e.makespan_seconds,
    }
}

/// Polls of a per-stack loop with a fixed `every`-second Wait until a `seconds`-long stack is
/// seen settled.
pub fn loop_polls(every: u32, seconds: f64) -> u64 {
    let every = f64::from(every.max(1));
    (seconds.max(0.0) / every).ceil().max(1.0) as u64
}

/// A per-stack loop (the CfCT style): the same run skeleton, but every stack has its own
/// Wait → check → Choice loop polling every `every` seconds (9 events, 3 transitions and one
/// single-stack check per poll) instead of one loop per wave.
pub fn per_stack_loop(plan: &Plan, every: u32, seconds: f64, wall: WallTimes) -> Costed {
    let e: Estimate = budget::estimate(plan, PollSeconds::default(), &|_| seconds);
    let polls = loop_polls(every, seconds) * e.stacks;
    let n = e.stacks as f64;
    let lambda_seconds =
        wall.plan + 2.0 * wall.notify + wall.finalize + n * wall.deploy + polls as f64 * wall.check;
    let waves = e.waves as f64;
    Costed {
        events: e.events - e.poll_cycles * POLL_CYCLE + polls * POLL_CYCLE,
        transitions: e.transitions - e.poll_cycles * CYCLE_TRANSITIONS + polls * CYCLE_TRANSITIONS,
        invocations: e.invocations - e.poll_cycles + polls,
        gb_seconds: lambda_seconds * LAMBDA_GB,
        makespan_seconds: waves * (seconds + f64::from(every) / 2.0),
    }
}

/// A build box running `cdk deploy` for `makespan_seconds`.
pub fn codebuild_usd(makespan_seconds: f64) -> f64 {
    makespan_seconds / 60.0 * CODEBUILD_USD_PER_MINUTE
}

#[cfg(test)]
mod tests {
    use super::*;
    use stackwave_core::synth::{self, Shape};

    fn plan(stages: usize, per: usize) -> Plan {
        let text = synth::manifest_yaml("t", stages, per, Shape::Independent, "t.yaml");
        stackwave_core::plan::from_text(&text, "e", &|_| true).expect("plan")
    }

    const WALL: WallTimes = WallTimes {
        plan: 0.3,
        deploy: 0.2,
        check: 0.1,
        notify: 0.1,
        finalize: 0.2,
    };

    #[test]
    fn stackwave_matches_the_budget_model() {
        // README: 500 stacks, 5 stages of 100 independent stacks, 30 min, 5–60 s: 5,185 events.
        let c = stackwave(&plan(5, 100), PollSeconds::default(), 1800.0, WALL);
        assert_eq!(c.events, 5185);
        assert!(c.within_history_limit());
        let usd = c.usd();
        assert!(usd > 0.0 && usd < 1.0, "{usd}");
    }

    #[test]
    fn per_stack_loops_poll_every_stack() {
        assert_eq!(loop_polls(10, 1800.0), 180);
        assert_eq!(loop_polls(30, 1800.0), 60);
        assert_eq!(loop_polls(10, 0.0), 1);
        let p = plan(1, 12);
        let sw = stackwave(&p, PollSeconds::default(), 1800.0, WALL);
        let cfct = per_stack_loop(&p, 10, 1800.0, WALL);
        // A dozen stacks polled every 10 s for 30 min: 12 × 180 cycles of 9 events.
        assert_eq!(
            cfct.events,
            sw.events - sw.events.min(35 * 9) + 12 * 180 * 9
        );
        assert!(cfct.within_history_limit());
        assert!(cfct.usd() > sw.usd());
        // ...and an hour of it runs out of history (the "about an hour").
        assert!(!per_stack_loop(&p, 10, 3600.0, WALL).within_history_limit());
    }

    #[test]
    fn codebuild_by_the_minute() {
        assert!((codebuild_usd(3600.0) - 0.3).abs() < 1e-12);
    }
}
