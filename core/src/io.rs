//! The JSON that crosses the state machine: each function's input and output.
//!
//! Field names are camelCase on the wire. Large data (the plan, per-stack records, outputs)
//! lives in S3 under [`RunContext::run_prefix`]; states carry only keys and small values, so
//! no state's input or output approaches the 256 KiB limit even at 500 stacks.

use serde::{Deserialize, Serialize};

use crate::manifest::OnFailure;
use crate::record::Action;

/// Poll settings of the Wait/check loop, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PollSeconds {
    pub min: u32,
    pub max: u32,
}

impl Default for PollSeconds {
    fn default() -> Self {
        PollSeconds { min: 5, max: 60 }
    }
}

/// What a person or a trigger gives the execution (the console input).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecutionInput {
    /// `s3://bucket/prefix/manifest.yaml`. When absent, read from the SSM parameter
    /// `/stackwave/<environment>/manifest-uri`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// The environment, substituted for `${environment}` in the manifest.
    pub environment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_seconds: Option<PollSeconds>,
    /// How many stacks of a wave deploy at once (default: the function's
    /// `STACKWAVE_DEFAULT_MAX_CONCURRENCY`, else 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// The fallback poll of the dependency schedule, in seconds: how long the run waits for a
    /// CloudFormation event before it looks at its stacks anyway (default 300; 1..=3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_poll_seconds: Option<u32>,
    /// History events one segment of the stage and rollback loops may use before it hands the
    /// loop over to a new segment (default and maximum 20,000; at least 500). Lower it only to
    /// watch the hand-over at a small scale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_events: Option<u32>,
    /// Reserved: validate and plan only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// The execution's identity, passed to plan by the ASL from the context object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionRef {
    /// `$$.Execution.Id`, the execution ARN.
    pub arn: String,
    /// `$$.Execution.Name`.
    pub name: String,
    /// `$$.Execution.StartTime`.
    #[serde(default)]
    pub start_time: Option<String>,
}

/// Plan's input: the raw execution input plus the execution's identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanInput {
    /// Raw: validated by plan into [`ExecutionInput`] (errors are `InvalidInput`).
    pub input: serde_json::Value,
    pub execution: ExecutionRef,
}

/// What every state after plan carries: who this run is and where its data lives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunContext {
    pub execution_arn: String,
    pub execution_name: String,
    pub environment: String,
    /// The artifact bucket holding the run's data.
    pub bucket: String,
    /// `runs/<environment>/<execution name>/` inside the bucket.
    pub run_prefix: String,
    pub poll: PollSeconds,
    /// MaxConcurrency of the wave's deploy Map (`MaxConcurrencyPath: $.run.maxConcurrency`).
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: u32,
    pub manifest_uri: String,
    pub started_at: String,
    /// The manifest's `onFailure` (`"rollback"`, the default, or `"retain"`): the state
    /// machine's `RollbackWanted` Choice reads `$.run.onFailure`.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// The schedule's fallback poll (seconds): the `Park` task's timeout while stacks run and no
    /// CloudFormation event has woken the run.
    #[serde(default = "default_fallback_poll")]
    pub fallback_poll_seconds: u32,
    /// History events one segment (an execution of the loop state machine) may use before it
    /// hands the loop over to the next segment ([`crate::budget::SEGMENT_EVENTS`] unless the
    /// execution input's `segmentEvents` lowers it).
    #[serde(default = "default_segment_events")]
    pub segment_events: u32,
}

fn default_segment_events() -> u32 {
    crate::budget::SEGMENT_EVENTS
}

/// Default fallback poll of the dependency schedule: events wake the run; this only bounds how
/// late a lost event makes it.
pub const DEFAULT_FALLBACK_POLL_SECONDS: u32 = 900;

fn default_fallback_poll() -> u32 {
    DEFAULT_FALLBACK_POLL_SECONDS
}

/// Where the wake function finds the run that owns a stack (`WakeIndex`), by stack name: a
/// CloudFormation event names only the stack. deploy-stack writes it when it starts a stack;
/// a stack name is unique in an account and region, so the run that started it last owns it.
pub fn wake_index_key(stack: &str) -> String {
    format!("wake/stacks/{stack}.json")
}

/// The run a stack belongs to, for the wake function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WakeIndex {
    pub execution_arn: String,
    pub run_prefix: String,
}

/// Default concurrency of a wave's deploy Map.
pub const DEFAULT_MAX_CONCURRENCY: u32 = 10;

fn default_max_concurrency() -> u32 {
    DEFAULT_MAX_CONCURRENCY
}

impl RunContext {
    /// `runs/<environment>/<execution name>/`: the one place a run's prefix is made.
    pub fn prefix_for(environment: &str, execution_name: &str) -> String {
        format!("runs/{environment}/{execution_name}/")
    }
    pub fn plan_key(&self) -> String {
        format!("{}plan.json", self.run_prefix)
    }
    pub fn record_key(&self, stack: &str) -> String {
        format!("{}stacks/{stack}.json", self.run_prefix)
    }
    pub fn records_prefix(&self) -> String {
        format!("{}stacks/", self.run_prefix)
    }
    /// The dependency schedule's state (`crate::schedule::ScheduleState`).
    pub fn schedule_key(&self) -> String {
        format!("{}schedule.json", self.run_prefix)
    }
    /// The rollback schedule's state (`crate::schedule::ScheduleState` over the restores).
    pub fn rollback_schedule_key(&self) -> String {
        format!("{}rollback-schedule.json", self.run_prefix)
    }
    /// The parked run's task token (`WakeToken`), written by the wake function's park action.
    pub fn wake_token_key(&self) -> String {
        Self::wake_token_key_of(&self.run_prefix)
    }
    pub fn wake_token_key_of(run_prefix: &str) -> String {
        format!("{run_prefix}wake/token.json")
    }
    /// Present when an event arrived since the last scheduling step looked at the stacks: the
    /// park action then wakes the run at once (an event between the look and the park is
    /// never lost).
    pub fn wake_pending_key(&self) -> String {
        Self::wake_pending_key_of(&self.run_prefix)
    }
    pub fn wake_pending_key_of(run_prefix: &str) -> String {
        format!("{run_prefix}wake/pending")
    }
    pub fn summary_key(&self) -> String {
        format!("{}summary.json", self.run_prefix)
    }
    /// Where the environment keeps, across runs, the SSM sources of the secrets a stack was last
    /// deployed with (`Vec<crate::secret::SecretRef>`): finalize writes it for every stack a run
    /// leaves created or updated, deploy-stack reads it into the snapshot, so the run-level
    /// rollback can restore a NoEcho parameter to its pre-run value.
    pub fn secret_sources_key(&self, stack: &str) -> String {
        format!("state/{}/secrets/{stack}.json", self.environment)
    }
}

/// A wave: stacks of one stage whose dependencies are all settled once the waves before it are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaveRef {
    pub index: u32,
    pub stacks: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageRef {
    pub index: u32,
    pub name: String,
    pub waves: Vec<WaveRef>,
}

/// Plan's output. The full plan (templates, parameters, tags) is in S3 at `run.plan_key()`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanOutput {
    pub run: RunContext,
    pub stages: Vec<StageRef>,
    pub stack_count: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployStackInput {
    pub run: RunContext,
    pub stack: String,
}

/// What deploy-stack started. The work itself is observed by check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployStackOutput {
    pub stack: String,
    /// `create`, `update`, `recreate` (a ROLLBACK_COMPLETE leftover is being deleted first).
    pub operation: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckInput {
    pub run: RunContext,
    pub stacks: Vec<String>,
    /// How many checks of this wave ran before this one (0 for the first).
    #[serde(default)]
    pub attempt: u32,
    /// `deploy` (the default) follows the stacks' deployments; `rollback` their run-level
    /// rollback.
    #[serde(default)]
    pub mode: CheckMode,
}

/// What check follows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckMode {
    /// The stacks' change sets and operations (the deploy waves).
    #[default]
    Deploy,
    /// The stacks' rollback deletes and restores (the rollback waves).
    Rollback,
    /// The dependency schedule of one stage ([`ScheduleInput`], [`ScheduleOutput`]).
    Schedule,
    /// The run-level rollback on the reversed dependency graph ([`RollbackScheduleInput`],
    /// [`ScheduleOutput`]).
    RollbackSchedule,
    /// A stack whose deploy-stack invocation failed past its retries ([`DeployErroredInput`],
    /// [`DeployErroredOutput`]).
    DeployErrored,
}

/// The `DeployStackErrored` step's input (check, `mode: deploy_errored`): the stack whose
/// deploy-stack invocation failed past its retries, and the error the state machine caught.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeployErroredInput {
    pub run: RunContext,
    pub stack: String,
    pub error: CaughtError,
    pub mode: CheckMode,
}

/// Its answer: whether it settled the stack failed (`false`: deploy-stack had written a record
/// before its answer was lost, and the scheduling step follows that record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployErroredOutput {
    pub stack: String,
    pub recorded_failed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckOutput {
    /// Every stack of the wave has settled (succeeded, unchanged or failed).
    pub settled: bool,
    /// At least one stack failed.
    pub any_failed: bool,
    pub attempt: u32,
    /// How long the Wait before the next check lasts.
    pub next_wait_seconds: u32,
    pub in_progress: u32,
    pub succeeded: u32,
    pub failed: u32,
    /// Names of failed stacks (at most 20).
    pub failed_stacks: Vec<String>,
}

/// The scheduling step's input (check, `mode: schedule`): the stage to advance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleInput {
    pub run: RunContext,
    /// The stage's index in the plan.
    pub stage: u32,
    pub mode: CheckMode,
    /// When the state machine entered this step (`$$.State.EnteredTime`): the same for every
    /// retry of one step, so a retry after a lost answer (a timeout) replays that answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The segment running this step (`$$.Execution.Id` of the loop state machine's
    /// execution): its history is charged for the step, and it hands over once spent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
}

/// The rollback's scheduling step (check, `mode: rollback_schedule`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollbackScheduleInput {
    pub run: RunContext,
    /// The stacks to restore, as the rollback plan listed them (`RollbackPlanOutput::waves`).
    pub waves: Vec<Vec<String>>,
    pub mode: CheckMode,
    /// As [`ScheduleInput::step`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// As [`ScheduleInput::segment`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
}

/// The scheduling step's answer (`ResultPath: $.schedule`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleOutput {
    /// Stacks to start now (the `DeployReady` Map's items); the schedule counts them started.
    pub ready: Vec<String>,
    /// Every stack of the stage has settled (or one failed and none is in flight).
    pub settled: bool,
    pub any_failed: bool,
    /// The `Park` task's timeout: short while a change set is being created (change sets send
    /// no events), else the fallback poll.
    pub wait_seconds: u32,
    pub in_flight: u32,
    pub succeeded: u32,
    pub failed: u32,
    /// Names of failed stacks (at most 20).
    pub failed_stacks: Vec<String>,
    /// This segment's history is spent: it ends (the loop's `HandOver`) and the parent starts
    /// the next segment, which continues from the schedule state in S3. Nothing is ready then.
    /// Always written: the loop's Choice reads it.
    #[serde(default)]
    pub hand_over: bool,
}

/// The wake function's input: the park action of the state machine, or an EventBridge event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WakeInput {
    /// `Park`: the run waits for an event (or the fallback poll) with this task token.
    Park {
        action: ParkAction,
        token: String,
        run: RunContext,
    },
    /// A `CloudFormation Stack Status Change` event.
    Event(serde_json::Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ParkAction {
    Park,
}

/// The stored task token of a parked run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WakeToken {
    pub token: String,
    pub execution_arn: String,
}

/// The rollback function's input, by `action`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "camelCase", deny_unknown_fields)]
pub enum RollbackInput {
    /// Which stacks this run changed, as rollback waves (dependents first).
    Plan { run: RunContext },
    /// Start restoring one stack; check (mode `rollback`) follows it.
    Stack { run: RunContext, stack: String },
}

/// `action: plan`'s answer (`ResultPath: $.rollback`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackPlanOutput {
    /// Stack names per rollback wave, in the order they are restored.
    pub waves: Vec<Vec<String>>,
    /// How many stacks are restored.
    pub count: u32,
}

/// `action: stack`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackStackOutput {
    pub stack: String,
    /// `delete` or `restore`; absent when the stack needs no rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// `rolled_back` or `rollback_failed` when it settled at once; absent while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Action>,
}

/// What an error caught by the ASL looks like (`ResultPath: $.error`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaughtError {
    #[serde(rename = "Error")]
    pub error: String,
    #[serde(rename = "Cause", default)]
    pub cause: String,
}

impl CaughtError {
    /// The error a loop segment failed with. A `states:startExecution.sync:2` task whose child
    /// execution failed is caught as `States.TaskFailed` with the child's DescribeExecution
    /// output as its cause; the child's own error and cause are what the summary names. Any
    /// other error is returned as it is.
    pub fn unnested(self) -> CaughtError {
        if self.error != "States.TaskFailed" {
            return self;
        }
        let Ok(described) = serde_json::from_str::<serde_json::Value>(&self.cause) else {
            return self;
        };
        let field = |names: [&str; 2]| {
            names
                .iter()
                .find_map(|n| described.get(*n).and_then(serde_json::Value::as_str))
                .map(str::to_string)
        };
        match field(["Error", "error"]) {
            Some(error) if field(["ExecutionArn", "executionArn"]).is_some() => CaughtError {
                error,
                cause: field(["Cause", "cause"]).unwrap_or_default(),
            },
            _ => self,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FinalizeInput {
    pub run: RunContext,
    /// Present when the stages failed: the error the ASL caught.
    #[serde(default)]
    pub error: Option<CaughtError>,
    /// Present when the run-level rollback itself stopped with an error (its plan, or a wave).
    #[serde(default)]
    pub rollback_error: Option<CaughtError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    Succeeded,
    Failed,
}

/// One stack in the run summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StackSummary {
    pub name: String,
    pub stage: String,
    pub action: Action,
    pub duration_seconds: f64,
    pub reason: String,
}

/// The run summary: the execution's output, the CLI's `--output json`, the alert's JSON form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    pub status: RunStatus,
    pub environment: String,
    pub execution_arn: String,
    pub stacks: Vec<StackSummary>,
    /// The first failed stack, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_stack: Option<String>,
    /// The root cause of the first failure, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_cause: Option<crate::record::RootCause>,
    /// Error name and text when the run failed for a reason other than a stack (or as well).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Rows left out of `stacks` to keep the execution's state within Step Functions' payload
    /// limit (`summary::bounded`); the run's `summary.json` in S3 holds every row.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stacks_omitted: usize,
    /// Where the full summary is, when rows were left out (`s3://<bucket>/<run>/summary.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary_uri: Option<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Notify's input, by `event`.
// One value per invocation, parsed once and never held in bulk: boxing the summary would only
// add noise at every site that builds or matches it.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum NotifyInput {
    /// The run passed plan and is about to deploy.
    #[serde(rename_all = "camelCase")]
    Started {
        run: RunContext,
        stack_count: u32,
        stages: Vec<StageRef>,
    },
    /// The run ended; `summary` is finalize's output.
    #[serde(rename_all = "camelCase")]
    Finished {
        run: RunContext,
        summary: RunSummary,
    },
    /// The run deployed, but finalize could not build its summary (its error, past retries):
    /// stacks may have changed, so this is a failed run, never a rejection.
    #[serde(rename_all = "camelCase")]
    SummaryFailed { run: RunContext, error: CaughtError },
    /// Plan rejected the run (invalid input or manifest, lock held): nothing was deployed.
    #[serde(rename_all = "camelCase")]
    Rejected {
        execution_arn: String,
        input: serde_json::Value,
        error: CaughtError,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotifyOutput {
    pub message_id: String,
    pub subject: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_segment_is_caught_as_its_own_error() {
        let described = serde_json::json!({
            "ExecutionArn": "arn:aws:states:us-east-1:123456789012:execution:stackwave-loop:s1",
            "Status": "FAILED",
            "Error": "Internal",
            "Cause": "stacks A of stage 0 can never start"
        });
        let caught = CaughtError {
            error: "States.TaskFailed".into(),
            cause: described.to_string(),
        };
        assert_eq!(
            caught.unnested(),
            CaughtError {
                error: "Internal".into(),
                cause: "stacks A of stage 0 can never start".into()
            }
        );
        // Anything else is kept as it is.
        for kept in [
            CaughtError {
                error: "StackFailed".into(),
                cause: "x".into(),
            },
            CaughtError {
                error: "States.TaskFailed".into(),
                cause: "not json".into(),
            },
            CaughtError {
                error: "States.TaskFailed".into(),
                cause: "{\"errorMessage\": \"a Lambda\"}".into(),
            },
        ] {
            assert_eq!(kept.clone().unnested(), kept);
        }
    }

    fn run_json() -> serde_json::Value {
        serde_json::json!({
            "executionArn": "arn:aws:states:us-east-1:123456789012:execution:stackwave-deploy:e1",
            "executionName": "e1",
            "environment": "dev",
            "bucket": "artifacts",
            "runPrefix": "runs/dev/e1/",
            "poll": {"min": 1, "max": 2},
            "maxConcurrency": 10,
            "manifestUri": "s3://artifacts/deployments/dev/t1/manifest.yaml",
            "startedAt": "2026-11-27T10:15:00.000Z"
        })
    }

    #[test]
    fn on_failure_is_camel_case_and_defaults_to_rollback() {
        let run: RunContext = serde_json::from_value(run_json()).expect("run context");
        assert_eq!(run.on_failure, OnFailure::Rollback);
        let value = serde_json::to_value(&run).expect("serialize");
        assert_eq!(value["onFailure"], "rollback");

        let mut retain = run_json();
        retain["onFailure"] = "retain".into();
        let run: RunContext = serde_json::from_value(retain).expect("run context");
        assert_eq!(run.on_failure, OnFailure::Retain);
        assert_eq!(
            serde_json::to_value(&run).expect("serialize")["onFailure"],
            "retain"
        );
    }
}
