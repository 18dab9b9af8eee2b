//! `stackwave deploy`, `watch` and `validate`: validate locally, upload the manifest and its
//! templates, start an execution, follow it, and report the summary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use aws_sdk_s3::primitives::ByteStream;
use futures::{stream, StreamExt, TryStreamExt};
use serde_json::{json, Value};
use stackwave_core::io::{PollSeconds, RunStatus, RunSummary, StackSummary};
use stackwave_core::manifest::ValidationIssue;
use stackwave_core::plan::Plan;
use stackwave_core::record::Action;

use crate::aws::{sdk_error, Target, TargetConfig};
use crate::progress::{self, ExecutionError, Finished, FollowOptions, Sink};

/// Error names that mean the input was invalid (exit code 2).
pub const INVALID_INPUT_ERRORS: &[&str] = &["InvalidManifest", "InvalidInput"];

/// What `deploy::run` is given.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// A manifest file, or a directory holding `manifest.yaml`.
    pub manifest: PathBuf,
    pub environment: String,
    pub target: TargetConfig,
    /// `pollSeconds` for the execution input (the state machine's default when `None`).
    pub poll: Option<PollSeconds>,
    /// `fallbackPollSeconds` for the execution input (the state machine's default when `None`).
    pub fallback_poll: Option<u32>,
    /// Follow the execution to its end (`false`: return once it started).
    pub wait: bool,
    /// Where progress and the final table go.
    pub sink: Sink,
    /// How often progress is read.
    pub tick: Duration,
}

impl DeployOptions {
    /// Follow to the end, print nothing: what tests use.
    pub fn quiet(
        manifest: impl Into<PathBuf>,
        environment: impl Into<String>,
        target: TargetConfig,
    ) -> Self {
        DeployOptions {
            manifest: manifest.into(),
            environment: environment.into(),
            target,
            poll: None,
            fallback_poll: None,
            wait: true,
            sink: Sink::Quiet,
            tick: Duration::from_secs(1),
        }
    }
}

/// How a deployment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    Succeeded,
    /// A stack failed, or the run was rejected or ended for another reason.
    Failed,
    /// Invalid input: local validation failed, or the execution rejected it
    /// (`InvalidManifest` / `InvalidInput`).
    Invalid,
    /// Started and not followed (`--no-wait`).
    Running,
}

/// What `deploy::run` and `deploy::watch` return.
#[derive(Debug, Clone)]
pub struct DeployOutcome {
    pub outcome: Outcome,
    pub environment: String,
    pub execution_arn: Option<String>,
    pub execution_name: Option<String>,
    /// `s3://bucket/deployments/<env>/<timestamp>/manifest.yaml`.
    pub manifest_uri: Option<String>,
    /// The execution status (`SUCCEEDED`, `FAILED`, `TIMED_OUT`, `ABORTED`, `RUNNING`).
    pub execution_status: Option<String>,
    /// The run summary (execution output, or `summary.json` of a failed run).
    pub summary: Option<RunSummary>,
    /// The execution's error, when it failed.
    pub error: Option<ExecutionError>,
    /// Local validation problems (outcome `Invalid` before anything was uploaded).
    pub issues: Vec<ValidationIssue>,
    /// The plan from local validation.
    pub plan: Option<Plan>,
    /// Every stack with what happened to it: the summary's, or built from the records seen.
    pub stacks: Vec<StackSummary>,
}

impl DeployOutcome {
    /// 0 on success (and for a started `--no-wait` run), 1 on a failed deployment, 2 on invalid input.
    pub fn exit_code(&self) -> u8 {
        match self.outcome {
            Outcome::Succeeded | Outcome::Running => 0,
            Outcome::Failed => 1,
            Outcome::Invalid => 2,
        }
    }

    /// `SUCCEEDED` / `FAILED` (also for invalid input) / `RUNNING`.
    pub fn status_word(&self) -> &'static str {
        match self.outcome {
            Outcome::Succeeded => "SUCCEEDED",
            Outcome::Running => "RUNNING",
            Outcome::Failed | Outcome::Invalid => "FAILED",
        }
    }

    /// `"<Name>: <message>"` when the run was rejected or failed with an error.
    pub fn error_text(&self) -> Option<String> {
        if let Some(e) = &self.error {
            if self.summary.as_ref().is_none_or(|s| s.error.is_none()) {
                return Some(format!("{}: {}", e.error, e.readable_cause()));
            }
        }
        if let Some(e) = self.summary.as_ref().and_then(|s| s.error.clone()) {
            return Some(e);
        }
        if !self.issues.is_empty() {
            return Some(format!(
                "InvalidManifest: {} problem(s):\n{}",
                self.issues.len(),
                stackwave_core::manifest::render_issues(&self.issues)
            ));
        }
        None
    }

    /// The `--output json` object (the fixed public interface):
    /// `{"status", "environment", "executionArn", "stacks": [{"name", "stage", "action",
    /// "durationSeconds", "reason"}]}`, plus `"error"` when the run was rejected or failed
    /// with an error.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.json_report()).unwrap_or(Value::Null)
    }

    /// The same object as a struct, whose fields serialize in the documented order.
    pub fn json_report(&self) -> JsonReport {
        JsonReport {
            status: self.status_word(),
            environment: self.environment.clone(),
            execution_arn: self.execution_arn.clone(),
            stacks: self
                .stacks
                .iter()
                .map(|s| JsonStack {
                    name: s.name.clone(),
                    stage: s.stage.clone(),
                    action: s.action.as_str(),
                    duration_seconds: s.duration_seconds,
                    reason: s.reason.clone(),
                })
                .collect(),
            error: self.error_text(),
        }
    }
}

/// `--output json`: one object on stdout (the fixed public interface).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsonReport {
    /// `SUCCEEDED`, `FAILED` (`RUNNING` only with `--no-wait`).
    pub status: &'static str,
    pub environment: String,
    pub execution_arn: Option<String>,
    pub stacks: Vec<JsonStack>,
    /// `"<ErrorName>: <message>"` when the run was rejected or failed with an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsonStack {
    pub name: String,
    pub stage: String,
    pub action: &'static str,
    pub duration_seconds: f64,
    pub reason: String,
}

/// The manifest file: the path itself, or `manifest.yaml` (`.yml`, `.json`) in a directory.
pub fn manifest_file(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_dir() {
        for name in ["manifest.yaml", "manifest.yml", "manifest.json"] {
            let p = path.join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
        bail!("{} holds no manifest.yaml. Fix: pass the manifest file, or the directory holding manifest.yaml", path.display());
    }
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    bail!("manifest {} not found", path.display())
}

/// The result of local validation.
#[derive(Debug)]
pub struct Validated {
    pub manifest_file: PathBuf,
    /// The directory the templates are relative to.
    pub dir: PathBuf,
    pub plan: Result<Plan, Vec<ValidationIssue>>,
}

/// Validate a manifest locally: parse, substitute, check every rule, templates on disk.
pub fn validate(manifest: &Path, environment: &str) -> anyhow::Result<Validated> {
    let manifest_file = manifest_file(manifest)?;
    let dir = manifest_file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let text = std::fs::read_to_string(&manifest_file)
        .with_context(|| format!("read {}", manifest_file.display()))?;
    let exists = |rel: &str| dir.join(rel).is_file();
    let plan = match stackwave_core::plan::from_text(&text, environment, &exists) {
        // Each stack against its template (size, declared and required parameters), as the
        // plan function checks it.
        Ok(p) => {
            let templates = read_templates(&dir, &p);
            let issues: Vec<ValidationIssue> = p
                .stacks
                .iter()
                .flat_map(|s| stackwave_core::template::check(s, &templates[&s.template]))
                .collect();
            if issues.is_empty() {
                Ok(p)
            } else {
                Err(issues)
            }
        }
        Err(stackwave_core::Error::InvalidManifest { issues }) => Err(issues),
        Err(e) => bail!("validating {}: {e}", manifest_file.display()),
    };
    Ok(Validated {
        manifest_file,
        dir,
        plan,
    })
}

/// Each template the plan uses, read from disk once, by the stacks' `template`.
fn read_templates(dir: &Path, plan: &Plan) -> BTreeMap<String, Result<Vec<u8>, String>> {
    plan.stacks
        .iter()
        .map(|s| {
            let path = dir.join(&s.template);
            let bytes =
                std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()));
            (s.template.clone(), bytes)
        })
        .collect()
}

/// The plan function's secrets check (`stackwave_core::secret`), before anything is uploaded:
/// SSM types with the caller's rights, templates from disk. When SSM cannot be asked, the check
/// is left to the plan function, which always makes it.
async fn secret_issues(
    target: &Target,
    dir: &Path,
    plan: &mut Plan,
    sink: Sink,
) -> Vec<ValidationIssue> {
    let secure = match stackwave_aws::secrets::secure_names(&target.aws.ssm, &plan.stacks).await {
        Ok(secure) => secure,
        Err(e) => {
            sink.line(&format!(
                "note: SSM parameter types not checked here ({e}); the plan function checks them"
            ));
            return Vec::new();
        }
    };
    let templates = read_templates(dir, plan);
    stackwave_core::secret::check(&mut plan.stacks, &secure, &templates)
}

/// The plan as text: the schedule, stages, stacks (in an order their dependencies allow) and
/// what each one starts after.
pub fn render_plan(plan: &Plan) -> String {
    let mut out = format!(
        "plan {} ({}): {} stacks in {} stages; schedule: {} ({})\n",
        plan.name,
        plan.environment,
        plan.stacks.len(),
        plan.stages.len(),
        plan.schedule.as_str(),
        match plan.schedule {
            stackwave_core::manifest::Schedule::Stages => "each stage waits for the one before",
            stackwave_core::manifest::Schedule::Dependencies => {
                "a stack waits only for its dependencies, across stages"
            }
        }
    );
    for stage in &plan.stages {
        out.push_str(&format!("stage {} {}\n", stage.index + 1, stage.name));
        for name in stage.waves.iter().flatten() {
            let deps = plan
                .stack(name)
                .map(|s| s.depends_on.clone())
                .unwrap_or_default();
            if deps.is_empty() {
                out.push_str(&format!("  {name}\n"));
            } else {
                out.push_str(&format!("  {name}  (after {})\n", deps.join(", ")));
            }
        }
    }
    out
}

/// Render validation issues for a person.
pub fn render_issues(file: &Path, issues: &[ValidationIssue]) -> String {
    if issues.is_empty() {
        return format!(
            "{}: the manifest is invalid (no details given)",
            file.display()
        );
    }
    format!(
        "{}: {} problem(s):\n{}",
        file.display(),
        issues.len(),
        stackwave_core::manifest::render_issues(issues)
    )
}

/// `YYYYmmddTHHMMSSZ` (UTC).
pub fn timestamp(now: chrono::DateTime<chrono::Utc>) -> String {
    now.format("%Y%m%dT%H%M%SZ").to_string()
}

/// `<env>-<timestamp>-<6 hex>`, cut to Step Functions' 80 characters.
pub fn execution_name(environment: &str, timestamp: &str, random: u32) -> String {
    let suffix = format!("-{timestamp}-{:06x}", random & 0xff_ffff);
    let env: String = environment.chars().take(80 - suffix.len()).collect();
    format!("{env}{suffix}")
}

/// Files to upload from the manifest's directory: `(path on disk, key relative to the
/// directory with '/' separators)`, hidden files and directories skipped, sorted.
pub fn files_to_upload(dir: &Path) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let mut files = Vec::new();
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .into_iter()
        .filter_entry(|e| {
            e.depth() == 0 || !e.file_name().to_str().is_some_and(|n| n.starts_with('.'))
        });
    for entry in walker {
        let entry = entry.with_context(|| format!("list {}", dir.display()))?;
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(dir)
            .with_context(|| format!("{} outside {}", entry.path().display(), dir.display()))?;
        let key = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        files.push((entry.path().to_path_buf(), key));
    }
    files.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(files)
}

fn content_type(key: &str) -> &'static str {
    match key.rsplit('.').next() {
        Some("yaml" | "yml") => "application/x-yaml",
        Some("json") => "application/json",
        Some("txt") => "text/plain",
        _ => "application/octet-stream",
    }
}

/// Upload the manifest directory under `prefix`; returns the number of files.
async fn upload(target: &Target, bucket: &str, dir: &Path, prefix: &str) -> anyhow::Result<usize> {
    let files = files_to_upload(dir)?;
    let count = files.len();
    stream::iter(files)
        .map(|(path, rel)| async move {
            let body = ByteStream::from_path(&path)
                .await
                .with_context(|| format!("read {}", path.display()))?;
            let key = format!("{prefix}{rel}");
            target
                .aws
                .s3
                .put_object()
                .bucket(bucket)
                .key(&key)
                .content_type(content_type(&rel))
                .body(body)
                .send()
                .await
                .map_err(|e| sdk_error("s3:PutObject", e))
                .with_context(|| format!("upload {} to s3://{bucket}/{key}", path.display()))?;
            anyhow::Ok(())
        })
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(count)
}

/// Validate, upload, start an execution and (unless `wait` is off) follow it to its end.
/// Prints to `opts.sink` only; never exits the process.
pub async fn run(opts: &DeployOptions) -> anyhow::Result<DeployOutcome> {
    let sink = opts.sink;
    let validated = validate(&opts.manifest, &opts.environment)?;
    let invalid = |issues: Vec<ValidationIssue>| {
        sink.line(&render_issues(&validated.manifest_file, &issues));
        DeployOutcome {
            outcome: Outcome::Invalid,
            environment: opts.environment.clone(),
            execution_arn: None,
            execution_name: None,
            manifest_uri: None,
            execution_status: None,
            summary: None,
            error: None,
            issues,
            plan: None,
            stacks: Vec::new(),
        }
    };
    let mut plan = match &validated.plan {
        Ok(p) => p.clone(),
        Err(issues) => return Ok(invalid(issues.clone())),
    };
    sink.line(&format!(
        "{}: {} stacks in {} stages, valid",
        validated.manifest_file.display(),
        plan.stacks.len(),
        plan.stages.len()
    ));

    // Real AWS: a bucket or state machine not given comes from the installation's SSM settings.
    let target = opts.target.resolve().await?;
    let bucket = target.bucket()?.to_string();
    let state_machine_arn = target.state_machine_arn()?.to_string();
    let issues = secret_issues(&target, &validated.dir, &mut plan, sink).await;
    if !issues.is_empty() {
        return Ok(invalid(issues));
    }

    let ts = timestamp(chrono::Utc::now());
    let prefix = format!("deployments/{}/{ts}/", opts.environment);
    let count = upload(&target, &bucket, &validated.dir, &prefix).await?;
    let manifest_rel = validated
        .manifest_file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| {
            anyhow!(
                "manifest {} has no file name",
                validated.manifest_file.display()
            )
        })?;
    let manifest_uri = format!("s3://{bucket}/{prefix}{manifest_rel}");
    sink.line(&format!(
        "uploaded {count} file(s) to s3://{bucket}/{prefix}"
    ));

    let name = execution_name(&opts.environment, &ts, fastrand::u32(..));
    let mut input = json!({"manifest": manifest_uri, "environment": opts.environment});
    if let (Some(poll), Some(obj)) = (opts.poll, input.as_object_mut()) {
        obj.insert(
            "pollSeconds".to_string(),
            json!({"min": poll.min, "max": poll.max}),
        );
    }
    if let (Some(seconds), Some(obj)) = (opts.fallback_poll, input.as_object_mut()) {
        obj.insert("fallbackPollSeconds".to_string(), json!(seconds));
    }
    let started = target
        .aws
        .sfn
        .start_execution()
        .state_machine_arn(&state_machine_arn)
        .name(&name)
        .input(input.to_string())
        .send()
        .await;
    let execution_arn = match started {
        Ok(o) => o.execution_arn,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_state_machine_does_not_exist()) =>
        {
            let hint = if target.aws.is_local() {
                "run `stackwave local start`"
            } else {
                "deploy stackwave (template.yaml) and pass its state machine ARN"
            };
            bail!("state machine {state_machine_arn} does not exist. Fix: {hint}");
        }
        Err(e) => return Err(sdk_error("states:StartExecution", e)),
    };
    if !target.aws.is_local() {
        sink.line(&format!(
            "console: {}",
            stackwave_core::summary::console_url(&execution_arn)
        ));
    }

    let mut outcome = if opts.wait {
        let finished = progress::follow(
            &target.aws,
            &FollowOptions {
                execution_arn: execution_arn.clone(),
                bucket: Some(bucket),
                tick: opts.tick,
                sink,
            },
        )
        .await?;
        let outcome = outcome_of(finished);
        report(sink, &outcome);
        outcome
    } else {
        sink.line(&format!(
            "execution {execution_arn} started; follow it with `stackwave watch {execution_arn}`"
        ));
        DeployOutcome {
            outcome: Outcome::Running,
            environment: opts.environment.clone(),
            execution_arn: Some(execution_arn.clone()),
            execution_name: Some(name.clone()),
            manifest_uri: None,
            execution_status: Some("RUNNING".to_string()),
            summary: None,
            error: None,
            issues: Vec::new(),
            plan: None,
            stacks: Vec::new(),
        }
    };
    outcome.manifest_uri = Some(manifest_uri);
    outcome.plan = Some(plan);
    outcome.execution_name = Some(name);
    Ok(outcome)
}

/// What `watch` is given.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub execution_arn: String,
    pub target: TargetConfig,
    pub sink: Sink,
    pub tick: Duration,
}

/// Follow an existing execution to its end: the same progress and summary as `deploy`.
pub async fn watch(opts: &WatchOptions) -> anyhow::Result<DeployOutcome> {
    let target = opts.target.resolve().await?;
    let finished = progress::follow(
        &target.aws,
        &FollowOptions {
            execution_arn: opts.execution_arn.clone(),
            bucket: target.bucket.clone(),
            tick: opts.tick,
            sink: opts.sink,
        },
    )
    .await?;
    let outcome = outcome_of(finished);
    report(opts.sink, &outcome);
    Ok(outcome)
}

/// Every stack of the plan with what the records say (`not_started` where there is none):
/// for a run that ended without a summary.
pub fn stacks_from_records(f: &Finished) -> Vec<StackSummary> {
    let summarize = |r: &stackwave_core::record::StackRecord| StackSummary {
        name: r.stack.clone(),
        stage: r.stage.clone(),
        action: r.action,
        duration_seconds: r
            .finished_at
            .as_deref()
            .and_then(|e| progress::seconds_between(&r.started_at, e))
            .unwrap_or(0.0),
        reason: r.reason.clone(),
    };
    match &f.plan {
        Some(plan) => plan
            .stacks
            .iter()
            .map(|s| match f.records.iter().find(|r| r.stack == s.name) {
                Some(r) => summarize(r),
                None => StackSummary {
                    name: s.name.clone(),
                    stage: s.stage.clone(),
                    action: Action::NotStarted,
                    duration_seconds: 0.0,
                    reason: String::new(),
                },
            })
            .collect(),
        None => f.records.iter().map(summarize).collect(),
    }
}

/// Classify a finished execution.
pub fn outcome_of(f: Finished) -> DeployOutcome {
    let invalid = f
        .error
        .as_ref()
        .is_some_and(|e| INVALID_INPUT_ERRORS.contains(&e.error.as_str()));
    let outcome = if f.status == "SUCCEEDED"
        && f.summary
            .as_ref()
            .is_none_or(|s| s.status == RunStatus::Succeeded)
    {
        Outcome::Succeeded
    } else if invalid {
        Outcome::Invalid
    } else {
        Outcome::Failed
    };
    let stacks = match &f.summary {
        Some(s) => s.stacks.clone(),
        None => stacks_from_records(&f),
    };
    DeployOutcome {
        outcome,
        environment: f.environment.clone(),
        execution_arn: Some(f.execution_arn.clone()),
        execution_name: Some(f.execution_name.clone()),
        manifest_uri: None,
        execution_status: Some(f.status.clone()),
        summary: f.summary,
        error: f.error,
        issues: Vec::new(),
        plan: None,
        stacks,
    }
}

/// Print the end of a run: the summary table, then one line saying how it ended.
pub fn report(sink: Sink, o: &DeployOutcome) {
    if sink == Sink::Quiet {
        return;
    }
    sink.line("");
    if let Some(summary) = &o.summary {
        let table = stackwave_core::summary::table(summary);
        if !table.trim().is_empty() {
            sink.line(table.trim_end());
        }
    } else if !o.stacks.is_empty() {
        for s in &o.stacks {
            sink.line(&format!(
                "  {:<40} {:<12} {:<12} {:>7.1}s  {}",
                s.name,
                s.stage,
                s.action.as_str(),
                s.duration_seconds,
                s.reason
            ));
        }
    }
    let counts = count_actions(&o.stacks);
    let status = o.execution_status.as_deref().unwrap_or("?");
    match o.outcome {
        Outcome::Succeeded => {
            sink.line(&format!("SUCCEEDED: {} stack(s): {counts}", o.stacks.len()))
        }
        Outcome::Invalid => sink.line(&format!(
            "REJECTED ({status}): {}",
            o.error_text().unwrap_or_else(|| "invalid input".into())
        )),
        Outcome::Failed => {
            let mut line = format!("FAILED ({status})");
            if let Some(s) = o.summary.as_ref().and_then(|s| s.failed_stack.clone()) {
                line.push_str(&format!(": stack {s} failed"));
                if let Some(rc) = o.summary.as_ref().and_then(|s| s.root_cause.as_ref()) {
                    line.push_str(&format!(
                        ": {} ({}) {}: {}",
                        rc.logical_id, rc.resource_type, rc.status, rc.reason
                    ));
                }
            } else if let Some(e) = o.error_text() {
                line.push_str(&format!(": {e}"));
            }
            if !o.stacks.is_empty() {
                line.push_str(&format!(" [{counts}]"));
            }
            sink.line(&line);
        }
        Outcome::Running => {}
    }
    if let Some(arn) = &o.execution_arn {
        sink.line(&format!("execution {arn}"));
    }
}

/// `3 created, 1 failed, 10 not_started`.
pub fn count_actions(stacks: &[StackSummary]) -> String {
    let mut counts: Vec<(&'static str, usize)> = Vec::new();
    for s in stacks {
        let a = s.action.as_str();
        match counts.iter_mut().find(|(k, _)| *k == a) {
            Some((_, n)) => *n += 1,
            None => counts.push((a, 1)),
        }
    }
    counts
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn names_and_timestamps() {
        let t = chrono::Utc
            .with_ymd_and_hms(2026, 11, 27, 10, 15, 0)
            .unwrap();
        assert_eq!(timestamp(t), "20261127T101500Z");
        assert_eq!(
            execution_name("dev", "20261127T101500Z", 0xabc),
            "dev-20261127T101500Z-000abc"
        );
        let long = execution_name(&"e".repeat(100), "20261127T101500Z", 0xffffffff);
        assert_eq!(long.len(), 80);
        assert!(long.ends_with("-20261127T101500Z-ffffff"));
    }

    #[test]
    fn upload_keeps_relative_paths_and_skips_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("templates/nested")).unwrap();
        std::fs::create_dir_all(d.join(".git")).unwrap();
        std::fs::write(d.join("manifest.yaml"), "name: x").unwrap();
        std::fs::write(d.join("templates/a.yaml"), "a").unwrap();
        std::fs::write(d.join("templates/nested/b.json"), "{}").unwrap();
        std::fs::write(d.join(".git/config"), "x").unwrap();
        std::fs::write(d.join("templates/.swp"), "x").unwrap();
        let keys: Vec<String> = files_to_upload(d)
            .unwrap()
            .into_iter()
            .map(|(_, k)| k)
            .collect();
        assert_eq!(
            keys,
            vec![
                "manifest.yaml",
                "templates/a.yaml",
                "templates/nested/b.json"
            ]
        );
        assert_eq!(manifest_file(d).unwrap(), d.join("manifest.yaml"));
        assert!(manifest_file(&d.join("templates")).is_err());
    }

    fn outcome(outcome: Outcome, error: Option<ExecutionError>) -> DeployOutcome {
        DeployOutcome {
            outcome,
            environment: "dev".into(),
            execution_arn: Some(
                "arn:aws:states:us-east-1:123456789012:execution:stackwave-deploy:x".into(),
            ),
            execution_name: None,
            manifest_uri: None,
            execution_status: Some("FAILED".into()),
            summary: None,
            error,
            issues: vec![],
            plan: None,
            stacks: vec![StackSummary {
                name: "A".into(),
                stage: "s".into(),
                action: Action::Created,
                duration_seconds: 1.5,
                reason: String::new(),
            }],
        }
    }

    #[test]
    fn json_has_the_public_shape() {
        let v = outcome(Outcome::Succeeded, None).to_json();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 4, "{v}");
        assert_eq!(v["status"], "SUCCEEDED");
        assert_eq!(v["environment"], "dev");
        assert_eq!(v["stacks"][0]["action"], "created");
        assert_eq!(v["stacks"][0]["durationSeconds"], 1.5);
        let rejected = outcome(
            Outcome::Invalid,
            Some(ExecutionError {
                error: "InvalidManifest".into(),
                cause: r#"{"errorType":"InvalidManifest","errorMessage":"cycle A -> B -> A"}"#
                    .into(),
            }),
        );
        let v = rejected.to_json();
        assert_eq!(v["status"], "FAILED");
        assert_eq!(v["error"], "InvalidManifest: cycle A -> B -> A");
        assert_eq!(rejected.exit_code(), 2);
    }

    #[test]
    fn rejected_runs_are_invalid_input_only_for_input_errors() {
        let f = |error: &str| Finished {
            execution_arn: "arn".into(),
            execution_name: "n".into(),
            environment: "dev".into(),
            status: "FAILED".into(),
            summary: None,
            error: Some(ExecutionError {
                error: error.into(),
                cause: String::new(),
            }),
            records: vec![],
            plan: None,
            elapsed: Duration::from_secs(1),
        };
        assert_eq!(outcome_of(f("InvalidManifest")).exit_code(), 2);
        assert_eq!(outcome_of(f("InvalidInput")).exit_code(), 2);
        assert_eq!(outcome_of(f("DeploymentLocked")).exit_code(), 1);
        assert_eq!(outcome_of(f("StackFailed")).exit_code(), 1);
    }
}
