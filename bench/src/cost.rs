//! What one deployment costs, from the budget model's counts and measured handler wall times.
//!
//! Prices (us-east-1, list): Step Functions Standard $0.025 per 1,000 state transitions; Lambda
//! $0.0000133334 per GB-second on arm64 at 128 MB, plus $0.20 per million requests; S3 $0.005
//! per 1,000 PUT-class requests (GETs cost less: every request is priced as a PUT, a bound).
//! CloudFormation's status change events on the default bus are free (AWS service events).
//! CodeBuild general1.small $0.005 per minute.

use stackwave_core::budget::Estimate;

pub const USD_PER_TRANSITION: f64 = 0.025 / 1000.0;
pub const USD_PER_GB_SECOND: f64 = 0.000_013_333_4;
pub const USD_PER_REQUEST: f64 = 0.20 / 1_000_000.0;
pub const USD_PER_S3_REQUEST: f64 = 0.005 / 1000.0;
pub const LAMBDA_GB: f64 = 128.0 / 1024.0;
pub const CODEBUILD_USD_PER_MINUTE: f64 = 0.005;

/// S3 requests assumed per scheduling step (schedule state GET and PUT, the wake flag DELETE,
/// the plan GET, one record GET per stack in flight: 4 + in flight, at most 10 by default),
/// per stack started (its record, its wake index, the template GET, the record after the
/// change set) and per park (the token PUT, the flag GET).
pub const S3_PER_STEP: u64 = 14;
pub const S3_PER_STACK: u64 = 4;
pub const S3_PER_PARK: u64 = 2;

/// Median wall seconds per invocation of each function.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WallTimes {
    pub plan: f64,
    pub deploy: f64,
    pub check: f64,
    pub wake: f64,
    pub notify: f64,
    pub finalize: f64,
}

/// One deployment's cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Costed {
    pub events: u64,
    pub transitions: u64,
    pub invocations: u64,
    pub gb_seconds: f64,
    pub s3_requests: u64,
    pub makespan_seconds: f64,
}

impl Costed {
    pub fn step_functions_usd(&self) -> f64 {
        self.transitions as f64 * USD_PER_TRANSITION
    }

    pub fn lambda_usd(&self) -> f64 {
        self.gb_seconds * USD_PER_GB_SECOND + self.invocations as f64 * USD_PER_REQUEST
    }

    pub fn s3_usd(&self) -> f64 {
        self.s3_requests as f64 * USD_PER_S3_REQUEST
    }

    pub fn usd(&self) -> f64 {
        self.step_functions_usd() + self.lambda_usd() + self.s3_usd()
    }
}

/// The model's counts priced with these wall times: every invocation the state machine makes
/// plus the wake function's invocations by EventBridge.
pub fn stackwave(e: &Estimate, wall: WallTimes) -> Costed {
    let lambda_seconds = wall.plan
        + 2.0 * wall.notify
        + wall.finalize
        + e.stacks as f64 * wall.deploy
        + e.schedule_steps as f64 * wall.check
        + (e.parks + e.event_invocations) as f64 * wall.wake;
    Costed {
        events: e.events,
        transitions: e.transitions,
        invocations: e.invocations + e.event_invocations,
        gb_seconds: lambda_seconds * LAMBDA_GB,
        s3_requests: S3_PER_STEP * e.schedule_steps
            + S3_PER_STACK * e.stacks
            + S3_PER_PARK * e.parks,
        makespan_seconds: e.makespan_seconds,
    }
}

/// A build box running `cdk deploy` for `makespan_seconds`.
pub fn codebuild_usd(makespan_seconds: f64) -> f64 {
    makespan_seconds / 60.0 * CODEBUILD_USD_PER_MINUTE
}

#[cfg(test)]
mod tests {
    use super::*;
    use stackwave_core::budget::{self, Settings};

    const WALL: WallTimes = WallTimes {
        plan: 0.3,
        deploy: 0.2,
        check: 0.1,
        wake: 0.05,
        notify: 0.1,
        finalize: 0.2,
    };

    #[test]
    fn one_stack_priced_from_the_model() {
        let text =
            "name: t\nstages:\n  - name: a\n    stacks:\n      - {name: A, template: t.yaml}\n";
        let plan = stackwave_core::plan::from_text(text, "e", &|_| true).expect("plan");
        let e = budget::estimate(&plan, &Settings::default(), &|_| 20.0);
        let c = stackwave(&e, WALL);
        assert_eq!(c.events, e.events);
        assert_eq!(c.invocations, e.invocations + e.event_invocations);
        let lambda = 0.3
            + 0.2
            + 0.2
            + 0.2
            + e.schedule_steps as f64 * 0.1
            + (e.parks + e.event_invocations) as f64 * 0.05;
        assert!((c.gb_seconds - lambda * LAMBDA_GB).abs() < 1e-12);
        assert_eq!(c.s3_requests, 14 * e.schedule_steps + 4 + 2 * e.parks);
        assert!(c.usd() > c.step_functions_usd());
        assert!(c.events < stackwave_core::budget::HISTORY_LIMIT);
    }

    #[test]
    fn codebuild_by_the_minute() {
        assert!((codebuild_usd(3600.0) - 0.3).abs() < 1e-12);
    }
}
