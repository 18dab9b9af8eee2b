//! Following an execution: every ~second, DescribeExecution plus the run's stack records in S3,
//! printed as one line per change, grouped by stage; then the run's end (summary or error).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_sfn::types::ExecutionStatus;
use stackwave_core::io::RunSummary;
use stackwave_core::plan::Plan;
use stackwave_core::record::{
    Action, Operation, Phase, RollbackOperation, RollbackPhase, RollbackState, RootCause,
    StackRecord,
};

use crate::aws::{sdk_error, Aws};

/// Where progress lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sink {
    /// Print nothing (library use).
    Quiet,
    #[default]
    Stdout,
    /// With `--output json`, stdout is reserved for the JSON object.
    Stderr,
}

impl Sink {
    pub fn line(self, text: &str) {
        match self {
            Sink::Quiet => {}
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{text}");
                let _ = out.flush();
            }
            Sink::Stderr => {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{text}");
            }
        }
    }

    pub fn lines(self, lines: &[String]) {
        for l in lines {
            self.line(l);
        }
    }
}

/// Seconds between two RFC 3339 times.
pub fn seconds_between(start: &str, end: &str) -> Option<f64> {
    let s = chrono::DateTime::parse_from_rfc3339(start).ok()?;
    let e = chrono::DateTime::parse_from_rfc3339(end).ok()?;
    Some((e - s).num_milliseconds() as f64 / 1000.0)
}

fn operation_word(op: Operation) -> &'static str {
    match op {
        Operation::Create => "create",
        Operation::Update => "update",
        Operation::Recreate => "recreate",
    }
}

/// What a record's run-level rollback says now, in a few words.
fn describe_rollback(rb: &RollbackState) -> String {
    let what = match rb.operation {
        RollbackOperation::Delete => "deleting (created by this run)",
        RollbackOperation::Restore => "restoring the previous template and parameters",
    };
    match (rb.phase, rb.outcome) {
        (RollbackPhase::Executing, _) => match rb.status.as_deref() {
            Some(status) if status.ends_with("_IN_PROGRESS") => {
                format!("rollback → {what} ({status})")
            }
            _ => format!("rollback → {what}"),
        },
        (RollbackPhase::Done, Some(Action::RolledBack)) => {
            format!("rolled_back: {}", rb.reason)
        }
        (RollbackPhase::Done, _) => format!(
            "rollback_failed{}",
            failure_detail(rb.root_cause.as_ref(), &rb.reason)
        ),
    }
}

/// `: <root cause>` (the first failed resource), else `: <reason>`, else nothing.
fn failure_detail(root_cause: Option<&RootCause>, reason: &str) -> String {
    match root_cause {
        Some(rc) => format!(
            ": {} ({}) {}: {}",
            rc.logical_id, rc.resource_type, rc.status, rc.reason
        ),
        None if !reason.is_empty() => format!(": {reason}"),
        None => String::new(),
    }
}

/// ` (<status>)` when the record has seen one.
fn status_suffix(record: &StackRecord) -> String {
    record
        .status
        .as_deref()
        .map(|s| format!(" ({s})"))
        .unwrap_or_default()
}

/// What a record says now, in a few words (its run-level rollback once one started).
pub fn describe(record: &StackRecord) -> String {
    if let Some(rb) = &record.rollback {
        return describe_rollback(rb);
    }
    let op = operation_word(record.operation);
    match record.phase {
        Phase::DeletingLeftover => format!(
            "{op} → deleting ROLLBACK_COMPLETE leftover{}",
            status_suffix(record)
        ),
        Phase::WaitingForOther => format!(
            "waiting for another operation to finish{}",
            status_suffix(record)
        ),
        Phase::ContinuingRollback => format!(
            "{op} → continuing the failed rollback{}",
            status_suffix(record)
        ),
        Phase::CancellingTimeout => {
            format!("{op} → timed out, cancelling{}", status_suffix(record))
        }
        Phase::ChangeSetPending => format!("{op} → change set pending"),
        // Until check sees the operation's own status, the record holds the status from
        // before it (e.g. the old stack's UPDATE_COMPLETE): show that as "executing".
        Phase::Executing => match record.status.as_deref() {
            Some(status) if status.ends_with("_IN_PROGRESS") => format!("{op} → {status}"),
            _ => format!("{op} → executing change set"),
        },
        Phase::Done => {
            let duration = record
                .finished_at
                .as_deref()
                .and_then(|f| seconds_between(&record.started_at, f))
                .map(|d| format!(" ({d:.1}s)"))
                .unwrap_or_default();
            let mut text = format!("{}{duration}", record.action.as_str());
            if matches!(record.action, Action::Failed | Action::RollbackFailed) {
                text.push_str(&failure_detail(record.root_cause.as_ref(), &record.reason));
            }
            text
        }
    }
}

/// Turns successive snapshots of a run's records into progress lines.
#[derive(Debug, Default)]
pub struct Tracker {
    /// Stage name → (index, count of stages).
    stages: HashMap<String, u32>,
    stage_count: usize,
    stage_sizes: HashMap<String, usize>,
    /// Stack → (stage index, wave, position in the plan).
    order: HashMap<String, (u32, u32, usize)>,
    width: usize,
    /// Width of the `[stage]` label.
    stage_width: usize,
    seen: HashMap<String, String>,
    last_stage: Option<String>,
    /// The run-level rollback has started: one header, then lines in rollback order.
    rolling_back: bool,
}

impl Tracker {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn has_plan(&self) -> bool {
        self.stage_count > 0
    }

    /// The plan gives stage order, names and the column width.
    pub fn set_plan(&mut self, plan: &Plan) {
        self.stage_count = plan.stages.len();
        for s in &plan.stages {
            self.stages.insert(s.name.clone(), s.index);
            self.stage_sizes
                .insert(s.name.clone(), s.waves.iter().map(Vec::len).sum());
        }
        for (i, s) in plan.stacks.iter().enumerate() {
            self.order
                .insert(s.name.clone(), (s.stage_index, s.wave, i));
        }
        self.width = plan.stacks.iter().map(|s| s.name.len()).max().unwrap_or(0);
        self.stage_width = plan
            .stages
            .iter()
            .map(|s| s.name.len() + 2)
            .max()
            .unwrap_or(0);
    }

    fn sort_key(&self, r: &StackRecord) -> (u32, u32, usize, String) {
        let (stage, wave, pos) = self.order.get(&r.stack).copied().unwrap_or((
            self.stages.get(&r.stage).copied().unwrap_or(u32::MAX),
            u32::MAX,
            usize::MAX,
        ));
        (stage, wave, pos, r.stack.clone())
    }

    fn stage_header(&self, stage: &str) -> String {
        match self.stages.get(stage) {
            Some(i) => format!(
                "── stage {}/{}: {stage} ({} stacks) ──",
                i + 1,
                self.stage_count,
                self.stage_sizes.get(stage).copied().unwrap_or(0)
            ),
            None => format!("── stage {stage} ──"),
        }
    }

    /// The lines for what changed since the last call: a stage header whenever the stage
    /// changes, then `[stage] Stack  what`.
    pub fn update<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a StackRecord>,
    ) -> Vec<String> {
        let mut changed: Vec<(&StackRecord, String)> = Vec::new();
        for r in records {
            let text = describe(r);
            if self.seen.get(&r.stack) != Some(&text) {
                changed.push((r, text));
            }
        }
        changed.sort_by_key(|(r, _)| self.sort_key(r));
        let width = self.width.max(
            changed
                .iter()
                .map(|(r, _)| r.stack.len())
                .max()
                .unwrap_or(0),
        );
        let stage_width = self.stage_width.max(
            changed
                .iter()
                .map(|(r, _)| r.stage.len() + 2)
                .max()
                .unwrap_or(0),
        );
        // Rollback lines come after every deploy line, in the order the rollback runs (later
        // stages first); the `[stage]` label says where each stack belongs.
        let (mut rolling, deploying): (Vec<_>, Vec<_>) =
            changed.into_iter().partition(|(r, _)| r.rollback.is_some());
        rolling.reverse();
        let mut lines = Vec::new();
        for (r, text) in deploying.into_iter().chain(rolling) {
            if r.rollback.is_some() {
                if !self.rolling_back {
                    lines.push("── rolling back this run's changes ──".to_string());
                    self.rolling_back = true;
                }
            } else if self.last_stage.as_deref() != Some(r.stage.as_str()) {
                lines.push(self.stage_header(&r.stage));
                self.last_stage = Some(r.stage.clone());
            }
            let label = format!("[{}]", r.stage);
            lines.push(format!("{label:<stage_width$} {:<width$}  {text}", r.stack));
            self.seen.insert(r.stack.clone(), text);
        }
        lines
    }
}

/// The execution's failure, when it has one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExecutionError {
    pub error: String,
    pub cause: String,
}

impl ExecutionError {
    /// The cause as a person reads it: a Lambda error payload's `errorMessage`, else the cause.
    pub fn readable_cause(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.cause)
            .ok()
            .and_then(|v| {
                v.get("errorMessage")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| self.cause.clone())
    }
}

/// How long to wait for the summary of an execution that was stopped or timed out.
const ENDED_SUMMARY_WAIT: Duration = Duration::from_secs(30);

/// How a followed execution ended.
#[derive(Debug, Clone)]
pub struct Finished {
    pub execution_arn: String,
    pub execution_name: String,
    pub environment: String,
    /// `SUCCEEDED`, `FAILED`, `TIMED_OUT`, `ABORTED`.
    pub status: String,
    /// The execution's output, or the run's summary.json.
    pub summary: Option<RunSummary>,
    pub error: Option<ExecutionError>,
    /// The last records seen (for a run that ended without a summary).
    pub records: Vec<StackRecord>,
    pub plan: Option<Plan>,
    pub elapsed: Duration,
}

/// What `follow` needs.
#[derive(Debug, Clone)]
pub struct FollowOptions {
    pub execution_arn: String,
    /// The bucket when the execution input does not name one (`manifest: s3://bucket/...`).
    pub bucket: Option<String>,
    pub tick: Duration,
    pub sink: Sink,
}

/// The run's data in S3, read incrementally (only records whose ETag changed are fetched).
struct RunReader<'a> {
    aws: &'a Aws,
    bucket: String,
    prefix: String,
    etags: HashMap<String, String>,
    records: BTreeMap<String, StackRecord>,
    plan: Option<Plan>,
}

/// The run's summary.json, when it can be read.
async fn stored_summary(reader: Option<&RunReader<'_>>) -> Option<RunSummary> {
    let r = reader?;
    let bytes = r.get(&format!("{}summary.json", r.prefix)).await.ok()??;
    serde_json::from_slice(&bytes).ok()
}

impl RunReader<'_> {
    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        match self
            .aws
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => {
                let data = o
                    .body
                    .collect()
                    .await
                    .with_context(|| format!("read s3://{}/{key}", self.bucket))?;
                Ok(Some(data.into_bytes().to_vec()))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(sdk_error("s3:GetObject", e)),
        }
    }

    async fn refresh(&mut self) -> anyhow::Result<()> {
        if self.plan.is_none() {
            if let Some(bytes) = self.get(&format!("{}plan.json", self.prefix)).await? {
                match serde_json::from_slice::<Plan>(&bytes) {
                    Ok(p) => self.plan = Some(p),
                    Err(e) => {
                        tracing::warn!(error = %e, "plan.json does not parse; progress without stage order")
                    }
                }
            }
        }
        let records_prefix = format!("{}stacks/", self.prefix);
        let mut changed: Vec<(String, String)> = Vec::new();
        let mut pages = self
            .aws
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&records_prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("s3:ListObjectsV2", e))?;
            for o in page.contents.unwrap_or_default() {
                let (Some(key), etag) = (o.key, o.e_tag.unwrap_or_default()) else {
                    continue;
                };
                if !key.ends_with(".json") {
                    continue;
                }
                if self.etags.get(&key) != Some(&etag) || etag.is_empty() {
                    changed.push((key, etag));
                }
            }
        }
        for (key, etag) in changed {
            let Some(bytes) = self.get(&key).await? else {
                continue;
            };
            match serde_json::from_slice::<StackRecord>(&bytes) {
                Ok(r) => {
                    self.records.insert(r.stack.clone(), r);
                    self.etags.insert(key, etag);
                }
                Err(e) => tracing::warn!(key, error = %e, "a stack record does not parse; skipped"),
            }
        }
        Ok(())
    }
}

/// Follow an execution until it ends, printing progress to `opts.sink`.
pub async fn follow(aws: &Aws, opts: &FollowOptions) -> anyhow::Result<Finished> {
    let started = Instant::now();
    let mut tracker = Tracker::new();
    let mut reader: Option<RunReader> = None;
    let mut announced = false;
    loop {
        let desc = aws
            .sfn
            .describe_execution()
            .execution_arn(&opts.execution_arn)
            .send()
            .await
            .map_err(|e| sdk_error("states:DescribeExecution", e))?;
        let name = desc.name.clone().unwrap_or_default();
        let input: serde_json::Value = desc
            .input
            .as_deref()
            .and_then(|i| serde_json::from_str(i).ok())
            .unwrap_or_default();
        let environment = input
            .get("environment")
            .and_then(|e| e.as_str())
            .unwrap_or_default()
            .to_string();
        if !announced {
            opts.sink
                .line(&format!("execution {} ({environment})", opts.execution_arn));
            announced = true;
        }
        if reader.is_none() {
            let bucket = input
                .get("manifest")
                .and_then(|m| m.as_str())
                .and_then(|m| m.strip_prefix("s3://"))
                .and_then(|m| m.split('/').next())
                .map(str::to_string)
                .or_else(|| opts.bucket.clone());
            match bucket {
                Some(bucket) if !environment.is_empty() => {
                    reader = Some(RunReader {
                        aws,
                        bucket,
                        prefix: format!("runs/{environment}/{name}/"),
                        etags: HashMap::new(),
                        records: BTreeMap::new(),
                        plan: None,
                    })
                }
                _ => tracing::warn!(
                    "no bucket known for this execution: progress shows its status only"
                ),
            }
        }
        let status = desc.status.clone();
        if let Some(r) = reader.as_mut() {
            match r.refresh().await {
                Ok(()) => {
                    if !tracker.has_plan() {
                        if let Some(p) = &r.plan {
                            tracker.set_plan(p);
                        }
                    }
                    opts.sink.lines(&tracker.update(r.records.values()));
                }
                // A transient read error must not end the watch; the next tick retries.
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "reading the run's records"),
            }
        }
        if status != ExecutionStatus::Running && status != ExecutionStatus::PendingRedrive {
            let status_text = status.as_str().to_string();
            let error = desc.error.clone().map(|error| ExecutionError {
                error,
                cause: desc.cause.clone().unwrap_or_default(),
            });
            let mut summary = desc
                .output
                .as_deref()
                .and_then(|o| serde_json::from_str::<RunSummary>(o).ok());
            // Finalize's output leaves rows out when the summary would not fit the execution's
            // state: summary.json holds every stack.
            if summary.as_ref().is_some_and(|s| s.stacks_omitted > 0) {
                if let Some(full) = stored_summary(reader.as_ref()).await {
                    summary = Some(full);
                }
            }
            // An execution stopped or timed out outside the state machine's own path gets its
            // summary from notify (rule ExecutionEndedRule) just after it ends: wait a little.
            let ended_outside =
                matches!(status, ExecutionStatus::Aborted | ExecutionStatus::TimedOut);
            let deadline = std::time::Instant::now() + ENDED_SUMMARY_WAIT;
            while summary.is_none() {
                summary = stored_summary(reader.as_ref()).await;
                if summary.is_some() || !ended_outside || std::time::Instant::now() > deadline {
                    break;
                }
                tokio::time::sleep(opts.tick).await;
            }
            let (records, plan) = match reader {
                Some(r) => (r.records.into_values().collect(), r.plan),
                None => (Vec::new(), None),
            };
            return Ok(Finished {
                execution_arn: opts.execution_arn.clone(),
                execution_name: name,
                environment,
                status: status_text,
                summary,
                error,
                records,
                plan,
                elapsed: started.elapsed(),
            });
        }
        tokio::time::sleep(opts.tick).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stackwave_core::manifest::OnFailure;
    use stackwave_core::plan::{PlannedStack, PlannedStage};

    fn record(
        stack: &str,
        stage: &str,
        phase: Phase,
        action: Action,
        status: Option<&str>,
    ) -> StackRecord {
        StackRecord {
            stack: stack.into(),
            stage: stage.into(),
            operation: Operation::Create,
            phase,
            action,
            change_set_name: "sw-x".into(),
            client_token: "t".into(),
            parameters: vec![],
            secrets: vec![],
            started_at: "2026-11-27T10:00:00Z".into(),
            finished_at: (phase == Phase::Done).then(|| "2026-11-27T10:00:12.3Z".into()),
            status: status.map(str::to_string),
            reason: String::new(),
            root_cause: None,
            outputs: vec![],
            snapshot: None,
            timeout_minutes: 60,
            rollback: None,
        }
    }

    #[test]
    fn rollback_steps_follow_the_deploy_lines_under_one_header() {
        let mut t = Tracker::new();
        t.set_plan(&plan());
        let net = record(
            "NetStack",
            "infra",
            Phase::Done,
            Action::Created,
            Some("CREATE_COMPLETE"),
        );
        let mut db = record(
            "DbStack",
            "data",
            Phase::Done,
            Action::Failed,
            Some("ROLLBACK_COMPLETE"),
        );
        db.reason = "ROLLBACK_COMPLETE: bad".into();
        let first = t.update([&net, &db]);
        assert!(
            first
                .iter()
                .any(|l| l.contains("NetStack") && l.contains("created")),
            "{first:?}"
        );

        let rollback =
            |op: RollbackOperation, phase: RollbackPhase, outcome: Option<Action>, reason: &str| {
                RollbackState {
                    operation: op,
                    phase,
                    started_at: "2026-11-27T10:01:00Z".into(),
                    finished_at: None,
                    status: Some("DELETE_IN_PROGRESS".into()),
                    reason: reason.into(),
                    client_token: "rb".into(),
                    outcome,
                    root_cause: None,
                }
            };
        let mut net_rb = net.clone();
        net_rb.rollback = Some(rollback(
            RollbackOperation::Delete,
            RollbackPhase::Executing,
            None,
            "",
        ));
        let mut db_rb = db.clone();
        db_rb.rollback = Some(rollback(
            RollbackOperation::Delete,
            RollbackPhase::Executing,
            None,
            "",
        ));
        let lines = t.update([&net_rb, &db_rb]);
        assert_eq!(
            lines[0], "── rolling back this run's changes ──",
            "{lines:?}"
        );
        assert_eq!(lines.len(), 3, "{lines:?}");
        // Later stages first, as the rollback runs.
        assert!(
            lines[1].contains("DbStack") && lines[2].contains("NetStack"),
            "{lines:?}"
        );
        assert!(
            lines[2].contains("rollback → deleting (created by this run) (DELETE_IN_PROGRESS)"),
            "{lines:?}"
        );

        net_rb.rollback = Some(rollback(
            RollbackOperation::Delete,
            RollbackPhase::Done,
            Some(Action::RolledBack),
            "deleted (created by this run)",
        ));
        db_rb.rollback = Some(rollback(
            RollbackOperation::Delete,
            RollbackPhase::Done,
            Some(Action::RollbackFailed),
            "deleting ended DELETE_FAILED",
        ));
        let lines = t.update([&net_rb, &db_rb]);
        assert_eq!(lines.len(), 2, "one header only: {lines:?}");
        assert!(
            lines
                .iter()
                .any(|l| l.contains("NetStack") && l.contains("rolled_back: deleted")),
            "{lines:?}"
        );
        assert!(
            lines.iter().any(|l| l.contains("DbStack")
                && l.contains("rollback_failed: deleting ended DELETE_FAILED")),
            "{lines:?}"
        );
        assert!(t.update([&net_rb, &db_rb]).is_empty(), "each change once");
    }

    fn planned(name: &str, stage: &str, stage_index: u32) -> PlannedStack {
        PlannedStack {
            name: name.into(),
            stage: stage.into(),
            stage_index,
            wave: 0,
            template: "t.yaml".into(),
            parameters: Default::default(),
            depends_on: vec![],
            tags: Default::default(),
            capabilities: vec![],
            timeout_minutes: 60,
            secret_parameters: vec![],
        }
    }

    fn plan() -> Plan {
        Plan {
            name: "demo".into(),
            environment: "dev".into(),
            on_failure: OnFailure::Retain,
            schedule: Default::default(),
            stages: vec![
                PlannedStage {
                    index: 0,
                    name: "infra".into(),
                    waves: vec![vec!["NetStack".into()]],
                },
                PlannedStage {
                    index: 1,
                    name: "data".into(),
                    waves: vec![vec!["DbStack".into()]],
                },
            ],
            stacks: vec![
                planned("NetStack", "infra", 0),
                planned("DbStack", "data", 1),
            ],
        }
    }

    #[test]
    fn prints_each_change_once_grouped_by_stage_in_plan_order() {
        let mut t = Tracker::new();
        t.set_plan(&plan());
        let db = record(
            "DbStack",
            "data",
            Phase::Executing,
            Action::InProgress,
            Some("CREATE_IN_PROGRESS"),
        );
        let net = record(
            "NetStack",
            "infra",
            Phase::Done,
            Action::Created,
            Some("CREATE_COMPLETE"),
        );
        let lines = t.update([&db, &net]);
        assert_eq!(
            lines,
            vec![
                "── stage 1/2: infra (1 stacks) ──".to_string(),
                "[infra] NetStack  created (12.3s)".to_string(),
                "── stage 2/2: data (1 stacks) ──".to_string(),
                "[data]  DbStack   create → CREATE_IN_PROGRESS".to_string(),
            ]
        );
        assert!(t.update([&db, &net]).is_empty(), "no change, no line");
        let db_done = record(
            "DbStack",
            "data",
            Phase::Done,
            Action::Created,
            Some("CREATE_COMPLETE"),
        );
        assert_eq!(
            t.update([&db_done, &net]),
            vec!["[data]  DbStack   created (12.3s)".to_string()]
        );
    }

    #[test]
    fn failure_lines_carry_the_root_cause() {
        let mut r = record(
            "DbStack",
            "data",
            Phase::Done,
            Action::Failed,
            Some("ROLLBACK_COMPLETE"),
        );
        r.root_cause = Some(stackwave_core::record::RootCause {
            logical_id: "Cluster".into(),
            resource_type: "AWS::RDS::DBCluster".into(),
            status: "CREATE_FAILED".into(),
            reason: "quota".into(),
        });
        assert_eq!(
            describe(&r),
            "failed (12.3s): Cluster (AWS::RDS::DBCluster) CREATE_FAILED: quota"
        );
        let pending = record(
            "DbStack",
            "data",
            Phase::ChangeSetPending,
            Action::InProgress,
            None,
        );
        assert_eq!(describe(&pending), "create → change set pending");
    }

    #[test]
    fn lambda_error_causes_are_unwrapped() {
        let e = ExecutionError {
            error: "InvalidManifest".into(),
            cause:
                r#"{"errorType":"InvalidManifest","errorMessage":"invalid manifest: 1 problem(s)"}"#
                    .into(),
        };
        assert_eq!(e.readable_cause(), "invalid manifest: 1 problem(s)");
        let plain = ExecutionError {
            error: "X".into(),
            cause: "just text".into(),
        };
        assert_eq!(plain.readable_cause(), "just text");
    }
}
