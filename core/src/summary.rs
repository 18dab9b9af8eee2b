//! The run summary and the notification text built from it.
//!
//! Subjects are short ASCII lines (SNS wants fewer than 100 characters, no line breaks);
//! bodies put the root cause first, then a fixed-width table of every stack, then the console
//! link.

use std::collections::HashMap;

use crate::io::{CaughtError, RunContext, RunStatus, RunSummary, StackSummary, StageRef};
use crate::plan::Plan;
use crate::record::{Action, StackRecord};

/// The longest subject: SNS requires fewer than 100 characters.
pub const MAX_SUBJECT_LEN: usize = 99;

/// The longest reason shown in a table cell (the JSON summary keeps the whole text).
const MAX_REASON_IN_TABLE: usize = 160;

/// The longest error text kept in the summary.
const MAX_ERROR_LEN: usize = 2000;

/// Build the summary: every stack of the plan, with its record's action, or `not_started`.
pub fn build(
    run: &RunContext,
    plan: &Plan,
    records: &[StackRecord],
    error: Option<&CaughtError>,
) -> RunSummary {
    let by_name: HashMap<&str, &StackRecord> =
        records.iter().map(|r| (r.stack.as_str(), r)).collect();
    let mut stacks = Vec::with_capacity(plan.stacks.len());
    let mut first_failed: Option<&StackRecord> = None;
    let mut first_rollback_failed: Option<&StackRecord> = None;
    for ps in &plan.stacks {
        match by_name.get(ps.name.as_str()) {
            Some(r) => {
                if r.action == Action::Failed && first_failed.is_none() {
                    first_failed = Some(r);
                }
                if r.action == Action::RollbackFailed && first_rollback_failed.is_none() {
                    first_rollback_failed = Some(r);
                }
                stacks.push(StackSummary {
                    name: ps.name.clone(),
                    stage: ps.stage.clone(),
                    action: r.action,
                    duration_seconds: duration_seconds(&r.started_at, r.finished_at.as_deref()),
                    reason: r.reason.clone(),
                });
            }
            None => stacks.push(StackSummary {
                name: ps.name.clone(),
                stage: ps.stage.clone(),
                action: Action::NotStarted,
                duration_seconds: 0.0,
                reason: String::new(),
            }),
        }
    }
    let all_good = stacks.iter().all(|s| {
        matches!(
            s.action,
            Action::Created | Action::Updated | Action::Unchanged
        )
    });
    let status = if error.is_none() && all_good {
        RunStatus::Succeeded
    } else {
        RunStatus::Failed
    };
    let failed = first_failed.or(first_rollback_failed);
    RunSummary {
        status,
        environment: run.environment.clone(),
        execution_arn: run.execution_arn.clone(),
        stacks,
        failed_stack: failed.map(|r| r.stack.clone()),
        root_cause: failed.and_then(|r| r.root_cause.clone()),
        error: error.map(error_text),
    }
}

/// Seconds between two RFC 3339 instants (millisecond precision); 0 when either is missing or
/// unreadable, never negative.
pub fn duration_seconds(started_at: &str, finished_at: Option<&str>) -> f64 {
    let Some(finished_at) = finished_at else {
        return 0.0;
    };
    match (
        chrono::DateTime::parse_from_rfc3339(started_at),
        chrono::DateTime::parse_from_rfc3339(finished_at),
    ) {
        (Ok(s), Ok(f)) => ((f - s).num_milliseconds().max(0) as f64) / 1000.0,
        _ => 0.0,
    }
}

/// `Name: message` of a caught error. A Lambda error's cause is the JSON
/// `{"errorType", "errorMessage"}`: its message is used.
fn error_text(e: &CaughtError) -> String {
    let cause = cause_message(&e.cause);
    let text = if cause.is_empty() {
        e.error.clone()
    } else {
        format!("{}: {cause}", e.error)
    };
    truncate(&text, MAX_ERROR_LEN)
}

/// The readable part of an ASL `Cause`.
pub fn cause_message(cause: &str) -> String {
    if let Ok(serde_json::Value::Object(obj)) = serde_json::from_str::<serde_json::Value>(cause) {
        if let Some(serde_json::Value::String(m)) = obj.get("errorMessage") {
            return m.clone();
        }
    }
    cause.to_string()
}

/// A human message: a short subject (at most 100 characters, as SNS requires) and a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub subject: String,
    pub body: String,
}

/// The run is starting.
pub fn started(run: &RunContext, stack_count: u32, stages: &[StageRef]) -> Message {
    let subject = subject(&format!(
        "stackwave {}: deploying {} in {}",
        run.environment,
        plural(stack_count as usize, "stack"),
        plural(stages.len(), "stage"),
    ));
    let mut body = format!(
        "stackwave is deploying {} in {} to environment {}.\n\n",
        plural(stack_count as usize, "stack"),
        plural(stages.len(), "stage"),
        run.environment
    );
    for (i, stage) in stages.iter().enumerate() {
        let count: usize = stage.waves.iter().map(|w| w.stacks.len()).sum();
        body.push_str(&format!(
            "Stage {} {} ({}, {})\n",
            i + 1,
            stage.name,
            plural(count, "stack"),
            plural(stage.waves.len(), "wave")
        ));
        for (w, wave) in stage.waves.iter().enumerate() {
            body.push_str(&format!("  wave {}: {}\n", w + 1, wave.stacks.join(", ")));
        }
    }
    body.push_str(&format!(
        "\nManifest:  {}\nStarted:   {}\nExecution: {}\nConsole:   {}\n",
        run.manifest_uri,
        run.started_at,
        run.execution_arn,
        console_url(&run.execution_arn)
    ));
    Message { subject, body }
}

/// The run ended (success or failure): subject names the environment and, on failure, the failed
/// stack; body has the root cause, a table of every stack, and a console link.
pub fn finished(run: &RunContext, summary: &RunSummary) -> Message {
    let env = &summary.environment;
    let env = if env.is_empty() {
        &run.environment
    } else {
        env
    };
    let subject_text = match summary.status {
        RunStatus::Succeeded => {
            let counts = action_counts(summary);
            let detail = if counts.is_empty() {
                String::new()
            } else {
                format!(" ({counts})")
            };
            format!(
                "stackwave {env}: deployed {}{detail}",
                plural(summary.stacks.len(), "stack")
            )
        }
        RunStatus::Failed => match (&summary.failed_stack, &summary.error) {
            (Some(stack), _) => format!("stackwave {env}: FAILED at {stack}"),
            (None, Some(err)) => {
                let name = err.split(':').next().unwrap_or(err);
                format!("stackwave {env}: FAILED ({name})")
            }
            (None, None) => format!("stackwave {env}: FAILED"),
        },
    };

    let mut body = String::new();
    if summary.status == RunStatus::Failed {
        if let Some(stack) = &summary.failed_stack {
            body.push_str(&format!("Stack {stack} failed.\n"));
            match &summary.root_cause {
                Some(rc) => {
                    body.push_str("Root cause:\n");
                    body.push_str(&format!("  Logical id: {}\n", rc.logical_id));
                    body.push_str(&format!("  Type:       {}\n", rc.resource_type));
                    if !rc.status.is_empty() {
                        body.push_str(&format!("  Status:     {}\n", rc.status));
                    }
                    body.push_str(&format!("  Reason:     {}\n", one_line(&rc.reason)));
                }
                None => {
                    let reason = summary
                        .stacks
                        .iter()
                        .find(|s| &s.name == stack)
                        .map(|s| s.reason.as_str())
                        .unwrap_or("");
                    if !reason.is_empty() {
                        body.push_str(&format!("Reason: {}\n", one_line(reason)));
                    }
                }
            }
            body.push('\n');
        }
        if let Some(err) = &summary.error {
            body.push_str(&format!("Error: {err}\n\n"));
        }
        let not_started = summary
            .stacks
            .iter()
            .filter(|s| s.action == Action::NotStarted)
            .count();
        if not_started > 0 {
            body.push_str(&format!(
                "{} not started: the run stops after a failed wave.\n\n",
                plural(not_started, "stack")
            ));
        }
    } else {
        let counts = action_counts(summary);
        body.push_str(&format!(
            "Deployed {} to {env}{}.\n\n",
            plural(summary.stacks.len(), "stack"),
            if counts.is_empty() {
                String::new()
            } else {
                format!(": {counts}")
            }
        ));
    }
    body.push_str(&format!(
        "Environment: {env}\nStatus:      {}\nExecution:   {}\n\n",
        status_str(summary.status),
        summary.execution_arn
    ));
    body.push_str(&table(summary));
    body.push_str(&format!(
        "\nConsole: {}\n",
        console_url(&summary.execution_arn)
    ));
    Message {
        subject: subject(&subject_text),
        body,
    }
}

/// Plan rejected the run: invalid input or manifest, or the environment is locked.
pub fn rejected(environment: Option<&str>, execution_arn: &str, error: &CaughtError) -> Message {
    let subject_text = match environment {
        Some(env) if !env.is_empty() => format!("stackwave {env}: rejected ({})", error.error),
        _ => format!("stackwave: rejected ({})", error.error),
    };
    let cause = cause_message(&error.cause);
    let mut body =
        String::from("The run was rejected before any change: nothing was deployed.\n\n");
    if let Some(env) = environment {
        body.push_str(&format!("Environment: {env}\n"));
    }
    body.push_str(&format!(
        "Execution:   {execution_arn}\nError:       {}\n\n",
        error.error
    ));
    if !cause.is_empty() {
        body.push_str(&cause);
        body.push_str("\n\n");
    }
    body.push_str(&format!("Console: {}\n", console_url(execution_arn)));
    Message {
        subject: subject(&subject_text),
        body,
    }
}

/// The summary as a fixed-width text table (used by the alert body and the CLI).
pub fn table(summary: &RunSummary) -> String {
    let headers = ["STACK", "STAGE", "ACTION", "DURATION", "REASON"];
    let rows: Vec<[String; 5]> = summary
        .stacks
        .iter()
        .map(|s| {
            [
                s.name.clone(),
                s.stage.clone(),
                s.action.as_str().to_string(),
                if s.action == Action::NotStarted {
                    "-".to_string()
                } else {
                    format_duration(s.duration_seconds)
                },
                truncate(&one_line(&s.reason), MAX_REASON_IN_TABLE),
            ]
        })
        .collect();
    let mut widths = headers.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 5]| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i == cells.len() - 1 {
                l.push_str(cell);
            } else if i == 3 {
                // durations read best right-aligned
                l.push_str(&format!("{cell:>w$}  ", w = widths[i]));
            } else {
                l.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(headers);
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
    }
    out
}

/// `12.3s`, `3m 05s`, `1h 02m`.
pub fn format_duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "-".into();
    }
    if seconds < 60.0 {
        return format!("{seconds:.1}s");
    }
    let total = seconds.round() as u64;
    if total < 3600 {
        format!("{}m {:02}s", total / 60, total % 60)
    } else {
        format!("{}h {:02}m", total / 3600, (total % 3600) / 60)
    }
}

/// Step Functions console link for an execution ARN.
pub fn console_url(execution_arn: &str) -> String {
    let region = execution_arn.split(':').nth(3).unwrap_or("us-east-1");
    format!("https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}")
}

fn status_str(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Succeeded => "SUCCEEDED",
        RunStatus::Failed => "FAILED",
    }
}

/// `3 created, 11 unchanged`: non-zero counts in a fixed order.
fn action_counts(summary: &RunSummary) -> String {
    const ORDER: [Action; 9] = [
        Action::Created,
        Action::Updated,
        Action::Unchanged,
        Action::Failed,
        Action::RolledBack,
        Action::RollbackFailed,
        Action::Skipped,
        Action::InProgress,
        Action::NotStarted,
    ];
    ORDER
        .iter()
        .filter_map(|a| {
            let n = summary.stacks.iter().filter(|s| s.action == *a).count();
            (n > 0).then(|| format!("{n} {}", a.as_str().replace('_', " ")))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// An SNS-safe subject: printable ASCII on one line, at most [`MAX_SUBJECT_LEN`] characters.
fn subject(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else if c.is_whitespace() {
                ' '
            } else {
                '?'
            }
        })
        .collect();
    let clean = clean.trim();
    if clean.len() <= MAX_SUBJECT_LEN {
        clean.to_string()
    } else {
        format!("{}...", &clean[..MAX_SUBJECT_LEN - 3])
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max.saturating_sub(3)).collect();
        format!("{cut}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{PollSeconds, WaveRef};
    use crate::record::{Operation, Phase, RootCause};

    const ARN: &str = "arn:aws:states:eu-west-1:123456789012:execution:stackwave-deploy:run-1";

    fn run() -> RunContext {
        RunContext {
            execution_arn: ARN.into(),
            execution_name: "run-1".into(),
            environment: "dev".into(),
            bucket: "artifacts".into(),
            run_prefix: "runs/dev/run-1/".into(),
            poll: PollSeconds::default(),
            max_concurrency: 10,
            manifest_uri: "s3://artifacts/deployments/dev/20261127T101500Z/manifest.yaml".into(),
            started_at: "2026-11-27T10:15:00Z".into(),
            on_failure: crate::manifest::OnFailure::Rollback,
        }
    }

    fn plan() -> Plan {
        let text = "name: x\nstages:\n- name: infra\n  stacks:\n  - {name: Network-dev, template: t.yaml}\n  - {name: Ecs-dev, template: t.yaml, dependsOn: [Network-dev]}\n- name: data\n  stacks:\n  - {name: Aurora-dev, template: t.yaml}\n  - {name: Dynamo-dev, template: t.yaml}\n- name: app\n  stacks:\n  - {name: Api-dev, template: t.yaml}\n";
        crate::plan::from_text(text, "dev", &|_| true).expect("plan")
    }

    fn record(stack: &str, stage: &str, action: Action, secs: u32, reason: &str) -> StackRecord {
        StackRecord {
            stack: stack.into(),
            stage: stage.into(),
            operation: Operation::Create,
            phase: Phase::Done,
            action,
            change_set_name: "sw-1".into(),
            client_token: "sw-1".into(),
            parameters: vec![],
            started_at: "2026-11-27T10:15:00Z".into(),
            finished_at: Some(format!(
                "2026-11-27T10:{:02}:{:02}.500Z",
                15 + secs / 60,
                secs % 60
            )),
            status: None,
            reason: reason.into(),
            root_cause: None,
            outputs: vec![],
            snapshot: None,
            timeout_minutes: 60,
            rollback: None,
        }
    }

    fn success_records() -> Vec<StackRecord> {
        vec![
            record("Api-dev", "app", Action::Unchanged, 3, ""),
            record(
                "Network-dev",
                "infra",
                Action::Created,
                75,
                "CREATE_COMPLETE",
            ),
            record("Ecs-dev", "infra", Action::Updated, 30, ""),
            record("Aurora-dev", "data", Action::Created, 600, ""),
            record("Dynamo-dev", "data", Action::Unchanged, 2, "no changes"),
        ]
    }

    fn failed_summary() -> RunSummary {
        let mut aurora = record(
            "Aurora-dev",
            "data",
            Action::Failed,
            120,
            "Resource creation failed",
        );
        aurora.root_cause = Some(RootCause {
            logical_id: "AuroraCluster".into(),
            resource_type: "AWS::RDS::DBCluster".into(),
            status: "CREATE_FAILED".into(),
            reason: "The parameter MasterUsername is not valid.".into(),
        });
        let mut dynamo = record("Dynamo-dev", "data", Action::Failed, 10, "later failure");
        dynamo.root_cause = Some(RootCause {
            logical_id: "Table".into(),
            resource_type: "AWS::DynamoDB::Table".into(),
            status: "CREATE_FAILED".into(),
            reason: "other".into(),
        });
        let records = vec![
            dynamo,
            record("Network-dev", "infra", Action::Created, 60, ""),
            record("Ecs-dev", "infra", Action::Unchanged, 1, ""),
            aurora,
        ];
        let error = CaughtError {
            error: "StackFailed".into(),
            cause: r#"{"errorType":"StackFailed","errorMessage":"stack Aurora-dev failed: CREATE_FAILED"}"#.into(),
        };
        build(&run(), &plan(), &records, Some(&error))
    }

    #[test]
    fn summary_follows_plan_order_with_actions_and_durations() {
        let s = build(&run(), &plan(), &success_records(), None);
        assert_eq!(s.status, RunStatus::Succeeded);
        assert_eq!(s.environment, "dev");
        assert_eq!(s.execution_arn, ARN);
        let names: Vec<&str> = s.stacks.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Network-dev",
                "Ecs-dev",
                "Aurora-dev",
                "Dynamo-dev",
                "Api-dev"
            ]
        );
        assert_eq!(s.stacks[0].stage, "infra");
        assert_eq!(s.stacks[0].action, Action::Created);
        assert_eq!(s.stacks[0].duration_seconds, 75.5);
        assert_eq!(s.stacks[0].reason, "CREATE_COMPLETE");
        assert_eq!(s.stacks[2].duration_seconds, 600.5);
        assert_eq!(s.failed_stack, None);
        assert_eq!(s.root_cause, None);
        assert_eq!(s.error, None);
    }

    #[test]
    fn missing_records_are_not_started_and_fail_the_run() {
        let records: Vec<StackRecord> = success_records().into_iter().take(2).collect();
        let s = build(&run(), &plan(), &records, None);
        assert_eq!(s.status, RunStatus::Failed);
        let aurora = &s.stacks[2];
        assert_eq!(
            (
                aurora.action,
                aurora.duration_seconds,
                aurora.reason.as_str()
            ),
            (Action::NotStarted, 0.0, "")
        );
        // an error fails the run even when every stack succeeded
        let e = CaughtError {
            error: "States.Timeout".into(),
            cause: String::new(),
        };
        let s = build(&run(), &plan(), &success_records(), Some(&e));
        assert_eq!(s.status, RunStatus::Failed);
        assert_eq!(s.error.as_deref(), Some("States.Timeout"));
    }

    #[test]
    fn first_failure_in_plan_order_is_the_root_cause() {
        let s = failed_summary();
        assert_eq!(s.status, RunStatus::Failed);
        assert_eq!(s.failed_stack.as_deref(), Some("Aurora-dev"));
        assert_eq!(
            s.root_cause.as_ref().map(|r| r.logical_id.as_str()),
            Some("AuroraCluster")
        );
        assert_eq!(
            s.error.as_deref(),
            Some("StackFailed: stack Aurora-dev failed: CREATE_FAILED")
        );
        assert_eq!(s.stacks[4].action, Action::NotStarted);
    }

    #[test]
    fn durations() {
        assert_eq!(
            duration_seconds("2026-11-27T10:00:00Z", Some("2026-11-27T10:00:01.250Z")),
            1.25
        );
        assert_eq!(
            duration_seconds("2026-11-27T10:00:00+01:00", Some("2026-11-27T09:30:00Z")),
            1800.0
        );
        assert_eq!(duration_seconds("2026-11-27T10:00:00Z", None), 0.0);
        assert_eq!(
            duration_seconds("garbage", Some("2026-11-27T10:00:00Z")),
            0.0
        );
        assert_eq!(
            duration_seconds("2026-11-27T10:00:05Z", Some("2026-11-27T10:00:00Z")),
            0.0
        );
        assert_eq!(format_duration(4.25), "4.2s");
        assert_eq!(format_duration(125.0), "2m 05s");
        assert_eq!(format_duration(3725.0), "1h 02m");
    }

    #[test]
    fn success_message() {
        let s = build(&run(), &plan(), &success_records(), None);
        let m = finished(&run(), &s);
        assert_eq!(
            m.subject,
            "stackwave dev: deployed 5 stacks (2 created, 1 updated, 2 unchanged)"
        );
        assert!(
            m.body
                .starts_with("Deployed 5 stacks to dev: 2 created, 1 updated, 2 unchanged."),
            "{}",
            m.body
        );
        assert!(m.body.contains("Status:      SUCCEEDED"));
        assert!(m.body.contains("Network-dev  infra  created"), "{}", m.body);
        assert!(m.body.contains(&format!("Console: {}", console_url(ARN))));
        assert!(!m.body.contains("Root cause"));
    }

    #[test]
    fn failure_message_puts_the_root_cause_first() {
        let s = failed_summary();
        let m = finished(&run(), &s);
        assert_eq!(m.subject, "stackwave dev: FAILED at Aurora-dev");
        let lines: Vec<&str> = m.body.lines().collect();
        assert_eq!(lines[0], "Stack Aurora-dev failed.");
        assert_eq!(lines[1], "Root cause:");
        assert_eq!(lines[2], "  Logical id: AuroraCluster");
        assert_eq!(lines[3], "  Type:       AWS::RDS::DBCluster");
        assert_eq!(lines[4], "  Status:     CREATE_FAILED");
        assert_eq!(
            lines[5],
            "  Reason:     The parameter MasterUsername is not valid."
        );
        assert!(m
            .body
            .contains("Error: StackFailed: stack Aurora-dev failed"));
        assert!(m.body.contains("1 stack not started"));
        let root = m.body.find("Root cause").unwrap_or(usize::MAX);
        let table_at = m.body.find("STACK").unwrap_or(0);
        let console_at = m.body.find("Console:").unwrap_or(0);
        assert!(root < table_at && table_at < console_at);
        assert!(m.body.contains("Api-dev"));
        assert!(m.body.contains("not_started"));
    }

    #[test]
    fn failure_without_a_failed_stack_names_the_error() {
        let e = CaughtError {
            error: "StackTimeout".into(),
            cause: "took too long".into(),
        };
        let s = build(&run(), &plan(), &success_records()[..3], Some(&e));
        let m = finished(&run(), &s);
        assert_eq!(m.subject, "stackwave dev: FAILED (StackTimeout)");
        assert!(
            m.body.starts_with("Error: StackTimeout: took too long"),
            "{}",
            m.body
        );
    }

    #[test]
    fn table_is_fixed_width() {
        let t = table(&failed_summary());
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 6);
        assert!(
            lines[0].starts_with("STACK        STAGE  ACTION       DURATION  REASON"),
            "{t}"
        );
        let action_col = lines[0].find("ACTION").unwrap_or(0);
        let stage_col = lines[0].find("STAGE").unwrap_or(0);
        for l in &lines[1..] {
            assert!(l.len() > action_col);
            assert_eq!(&l[stage_col - 2..stage_col], "  ");
            assert_eq!(&l[action_col - 2..action_col], "  ");
        }
        assert!(
            lines[3]
                .starts_with("Aurora-dev   data   failed         2m 01s  Resource creation failed"),
            "{t}"
        );
        assert!(
            lines[5].starts_with("Api-dev      app    not_started         -"),
            "{t}"
        );
    }

    #[test]
    fn subjects_are_short_ascii() {
        let mut r = run();
        r.environment = "prod".into();
        let long = format!("Stäck{}", "x".repeat(200));
        let s = RunSummary {
            status: RunStatus::Failed,
            environment: "prod".into(),
            execution_arn: ARN.into(),
            stacks: vec![],
            failed_stack: Some(long),
            root_cause: None,
            error: None,
        };
        let m = finished(&r, &s);
        assert!(m.subject.len() <= 100 && m.subject.len() == MAX_SUBJECT_LEN);
        assert!(m.subject.is_ascii());
        assert!(m.subject.starts_with("stackwave prod: FAILED at St?ck"));
        assert!(m.subject.ends_with("..."));
        assert!(!m.subject.contains('\n'));
    }

    #[test]
    fn started_message_lists_stages_and_waves() {
        let stages = vec![
            StageRef {
                index: 0,
                name: "infra".into(),
                waves: vec![
                    WaveRef {
                        index: 0,
                        stacks: vec!["Network-dev".into(), "Logs-dev".into()],
                    },
                    WaveRef {
                        index: 1,
                        stacks: vec!["Ecs-dev".into()],
                    },
                ],
            },
            StageRef {
                index: 1,
                name: "data".into(),
                waves: vec![WaveRef {
                    index: 0,
                    stacks: vec!["Aurora-dev".into()],
                }],
            },
        ];
        let m = started(&run(), 4, &stages);
        assert_eq!(m.subject, "stackwave dev: deploying 4 stacks in 2 stages");
        assert!(m.body.contains("Stage 1 infra (3 stacks, 2 waves)\n  wave 1: Network-dev, Logs-dev\n  wave 2: Ecs-dev\n"), "{}", m.body);
        assert!(m.body.contains("Stage 2 data (1 stack, 1 wave)"));
        assert!(m
            .body
            .contains("Manifest:  s3://artifacts/deployments/dev/"));
        assert!(m.body.contains("Console:   https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/arn:aws:states:eu-west-1"));
    }

    #[test]
    fn rejected_message_carries_the_readable_cause() {
        let e = CaughtError {
            error: "InvalidManifest".into(),
            cause: r#"{"errorType":"InvalidManifest","errorMessage":"invalid manifest: 1 problem(s):\n- stack A, stages[0].stacks[0].dependsOn[0]: dependency cycle: A -> B -> A. Fix: remove one"}"#.into(),
        };
        let m = rejected(Some("dev"), ARN, &e);
        assert_eq!(m.subject, "stackwave dev: rejected (InvalidManifest)");
        assert!(m
            .body
            .starts_with("The run was rejected before any change: nothing was deployed."));
        assert!(m.body.contains("Error:       InvalidManifest"));
        assert!(m.body.contains(
            "- stack A, stages[0].stacks[0].dependsOn[0]: dependency cycle: A -> B -> A"
        ));
        assert!(!m.body.contains("errorType"));
        assert!(m.body.contains("Console: https://eu-west-1.console"));
        let m = rejected(
            None,
            ARN,
            &CaughtError {
                error: "InvalidInput".into(),
                cause: "bad".into(),
            },
        );
        assert_eq!(m.subject, "stackwave: rejected (InvalidInput)");
        assert!(m.body.contains("bad"));
    }
}
