//! The run summary and the notification text built from it.
//!
//! Subjects are short ASCII lines (SNS wants fewer than 100 characters, no line breaks);
//! bodies put the root cause first, then a fixed-width table of every stack, then the console
//! link.

use std::collections::{HashMap, HashSet, VecDeque};

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
///
/// - A stack whose run-level rollback settled shows `rolled_back` or `rollback_failed`, its
///   reason saying what the rollback did; a rollback that never settled shows
///   `rollback_failed`. A stack whose own operation failed stays `failed` when its clean-up
///   succeeded (the reason adds what the rollback did): the table must show what failed.
/// - A stack without a record that depends, transitively, on a failed stack is `skipped`, its
///   reason naming the failed dependency; other stacks without a record are `not_started`.
pub fn build(
    run: &RunContext,
    plan: &Plan,
    records: &[StackRecord],
    error: Option<&CaughtError>,
) -> RunSummary {
    let by_name: HashMap<&str, &StackRecord> =
        records.iter().map(|r| (r.stack.as_str(), r)).collect();
    let failed: HashSet<&str> = records
        .iter()
        .filter(|r| r.action == Action::Failed)
        .map(|r| r.stack.as_str())
        .collect();
    let mut stacks = Vec::with_capacity(plan.stacks.len());
    let mut first_failed: Option<&StackRecord> = None;
    let mut first_rollback_failed: Option<&StackRecord> = None;
    for ps in &plan.stacks {
        match by_name.get(ps.name.as_str()) {
            Some(r) => {
                if r.action == Action::Failed && first_failed.is_none() {
                    first_failed = Some(r);
                }
                let (action, reason) = shown(r);
                if action == Action::RollbackFailed && first_rollback_failed.is_none() {
                    first_rollback_failed = Some(r);
                }
                stacks.push(StackSummary {
                    name: ps.name.clone(),
                    stage: ps.stage.clone(),
                    action,
                    duration_seconds: duration_seconds(&r.started_at, last_finish(r)),
                    reason,
                });
            }
            None => {
                let (action, reason) = match failed_dependency(plan, &ps.name, &failed) {
                    Some(path) => (
                        Action::Skipped,
                        format!("depends on {}, which failed", path.join(" -> ")),
                    ),
                    None => (Action::NotStarted, String::new()),
                };
                stacks.push(StackSummary {
                    name: ps.name.clone(),
                    stage: ps.stage.clone(),
                    action,
                    duration_seconds: 0.0,
                    reason,
                })
            }
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
        root_cause: failed.and_then(|r| {
            r.root_cause
                .clone()
                .or_else(|| r.rollback.as_ref().and_then(|rb| rb.root_cause.clone()))
        }),
        error: error.map(error_text),
        stacks_omitted: 0,
        summary_uri: None,
    }
}

/// The most a run summary may take in the execution's state. Finalize's result joins the state
/// beside the run context and the plan's stage list, and Step Functions fails an execution whose
/// state passes 262,144 bytes (`States.DataLimitExceeded`). A failed run's Fail state carries the
/// same summary as its cause (`States.JsonToString`), which AWS caps at 32,768 characters: this
/// bound keeps under both, with a margin for escapes.
pub const MAX_STATE_SUMMARY_BYTES: usize = 30_000;

/// The summary as it may travel in the execution's state: whole when it serialises within
/// `max_bytes`; otherwise the rows that matter most are kept (failures and rollbacks first, then
/// skipped and not started, then created and updated, unchanged last), in plan order, and
/// `stacks_omitted` counts the rest, and `summary_uri` says where the full summary is (the run's
/// `summary.json`).
pub fn bounded(summary: &RunSummary, summary_uri: &str, max_bytes: usize) -> RunSummary {
    let size = |v: &RunSummary| serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX);
    if size(summary) <= max_bytes {
        return summary.clone();
    }
    let mut out = RunSummary {
        stacks: Vec::new(),
        // Room for the count's and the location's own fields, whatever their values.
        stacks_omitted: usize::MAX,
        summary_uri: Some(summary_uri.to_string()),
        ..summary.clone()
    };
    let mut used = size(&out);
    let row_size = |row: &StackSummary| {
        serde_json::to_vec(row)
            .map(|b| b.len() + 1)
            .unwrap_or(usize::MAX)
    };
    let rank = |a: Action| match a {
        Action::Failed | Action::RollbackFailed | Action::RolledBack | Action::InProgress => 0,
        Action::Skipped | Action::NotStarted => 1,
        Action::Created | Action::Updated => 2,
        Action::Unchanged => 3,
    };
    let mut order: Vec<usize> = (0..summary.stacks.len()).collect();
    order.sort_by_key(|&i| (rank(summary.stacks[i].action), i));
    let mut keep = vec![false; summary.stacks.len()];
    for i in order {
        let n = row_size(&summary.stacks[i]);
        if used.saturating_add(n) > max_bytes {
            break;
        }
        used += n;
        keep[i] = true;
    }
    out.stacks = summary
        .stacks
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(row, _)| row.clone())
        .collect();
    out.stacks_omitted = summary.stacks.len() - out.stacks.len();
    out
}

/// The run-level rollback itself stopped with an error (its plan, or a rollback wave after the
/// state machine's retries): every stack it should have handled but never started is shown
/// `rollback_failed` (so the ROLLBACK_FAILED alert asks a human), its reason saying what is left
/// of this run on it, and the summary's error names the rollback's error. A stack whose own
/// failure left a stack behind stays `failed`, its reason saying the clean-up did not happen.
pub fn rollback_stopped(summary: &mut RunSummary, records: &[StackRecord], error: &CaughtError) {
    let by_name: HashMap<&str, &StackRecord> =
        records.iter().map(|r| (r.stack.as_str(), r)).collect();
    let why = error_text(error);
    let mut missed = Vec::new();
    for row in &mut summary.stacks {
        let Some(record) = by_name.get(row.name.as_str()) else {
            continue;
        };
        if record.rollback.is_some() {
            continue;
        }
        let Some(operation) = crate::rollback::wanted(record) else {
            continue;
        };
        let left = match operation {
            crate::record::RollbackOperation::Delete => {
                "the stack this run created is still there. Fix: delete it, or run the deployment again"
            }
            crate::record::RollbackOperation::Restore => {
                "it keeps this run's update. Fix: deploy the previous manifest again to restore it"
            }
        };
        let text = format!("the rollback stopped before reaching it ({why}); {left}");
        if row.action == Action::Failed {
            row.reason = format!("failed: {}; then {text}", row.reason);
        } else {
            row.action = Action::RollbackFailed;
            row.reason = text;
        }
        missed.push(row.name.clone());
    }
    let mut text = format!("RollbackStopped: the rollback could not run to the end: {why}");
    if !missed.is_empty() {
        text.push_str(&format!(
            ". Not rolled back: {}. Fix: see each stack's reason",
            missed.join(", ")
        ));
    }
    summary.status = RunStatus::Failed;
    summary.error = Some(match summary.error.take() {
        Some(first) => truncate(&format!("{first}; then {text}"), MAX_ERROR_LEN),
        None => truncate(&text, MAX_ERROR_LEN),
    });
}

/// The action and reason a record shows in the summary.
fn shown(r: &StackRecord) -> (Action, String) {
    let Some(rb) = &r.rollback else {
        return (r.action, r.reason.clone());
    };
    let (action, what) = match rb.outcome {
        Some(Action::RolledBack) if r.action == Action::Failed => {
            (Action::Failed, rb.reason.clone())
        }
        Some(Action::RolledBack) => (Action::RolledBack, rb.reason.clone()),
        Some(_) => (Action::RollbackFailed, rb.reason.clone()),
        None => (
            Action::RollbackFailed,
            format!(
                "the rollback ({}) did not finish before the run ended (last status {}). Fix: \
                 look at the stack's events and finish it by hand",
                rb.operation.as_str(),
                rb.status.as_deref().unwrap_or("unknown")
            ),
        ),
    };
    let reason = if r.action == Action::Failed && !r.reason.is_empty() {
        format!("failed: {}; then {what}", r.reason)
    } else {
        what
    };
    (action, reason)
}

/// When the run last worked on the stack: the rollback's end, else the deployment's.
fn last_finish(r: &StackRecord) -> Option<&str> {
    r.rollback
        .as_ref()
        .and_then(|rb| rb.finished_at.as_deref())
        .or(r.finished_at.as_deref())
}

/// The path from `stack` to the first failed stack it depends on (transitively), e.g.
/// `[App, Db]` when App depends on Db, which failed; `None` when it depends on no failed stack.
fn failed_dependency(plan: &Plan, stack: &str, failed: &HashSet<&str>) -> Option<Vec<String>> {
    if failed.is_empty() {
        return None;
    }
    // Breadth first: the shortest path, dependencies in their sorted order.
    let mut parent: HashMap<&str, &str> = HashMap::new();
    let mut queue: VecDeque<&str> = VecDeque::from([stack]);
    let mut seen: HashSet<&str> = HashSet::from([stack]);
    while let Some(n) = queue.pop_front() {
        let Some(ps) = plan.stack(n) else { continue };
        for d in &ps.depends_on {
            let d = d.as_str();
            if !seen.insert(d) {
                continue;
            }
            parent.insert(d, n);
            if failed.contains(d) {
                let mut path = vec![d.to_string()];
                let mut at = d;
                while let Some(p) = parent.get(at).copied().filter(|p| *p != stack) {
                    path.push(p.to_string());
                    at = p;
                }
                path.reverse();
                return Some(path);
            }
            queue.push_back(d);
        }
    }
    None
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
    body.push_str("Each stack starts as soon as the stacks it depends on have succeeded.\n");
    for (i, stage) in stages.iter().enumerate() {
        let stacks: Vec<&str> = stage
            .waves
            .iter()
            .flat_map(|w| w.stacks.iter().map(String::as_str))
            .collect();
        body.push_str(&format!(
            "Stage {} {} ({}): {}\n",
            i + 1,
            stage.name,
            plural(stacks.len(), "stack"),
            stacks.join(", ")
        ));
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
        let skipped = count_of(summary, Action::Skipped);
        if skipped > 0 {
            body.push_str(&format!(
                "{} skipped: {} on a failed stack.\n\n",
                plural(skipped, "stack"),
                if skipped == 1 {
                    "it depends"
                } else {
                    "they depend"
                }
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
    body.push_str(&rollback_section(summary));
    body.push_str(&format!(
        "\nConsole: {}\n",
        console_url(&summary.execution_arn)
    ));
    Message {
        subject: subject(&subject_text),
        body,
    }
}

fn count_of(summary: &RunSummary, action: Action) -> usize {
    summary.stacks.iter().filter(|s| s.action == action).count()
}

/// "Rolled back:" with what was restored, then the stacks whose rollback failed (empty when
/// nothing was rolled back).
fn rollback_section(summary: &RunSummary) -> String {
    let mut out = String::new();
    let rolled_back: Vec<&StackSummary> = summary
        .stacks
        .iter()
        .filter(|s| was_rolled_back(s))
        .collect();
    let rollback_failed: Vec<&StackSummary> = summary
        .stacks
        .iter()
        .filter(|s| s.action == Action::RollbackFailed)
        .collect();
    if !rolled_back.is_empty() {
        out.push_str(&format!(
            "\nRolled back: {}\n",
            plural(rolled_back.len(), "stack")
        ));
        for s in &rolled_back {
            out.push_str(&format!("  {}: {}\n", s.name, rollback_what(&s.reason)));
        }
    }
    if !rollback_failed.is_empty() {
        out.push_str(&format!(
            "\nRollback FAILED: {} (a separate alert says how to fix {}): {}\n",
            plural(rollback_failed.len(), "stack"),
            if rollback_failed.len() == 1 {
                "it"
            } else {
                "them"
            },
            rollback_failed
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out
}

/// The rollback restored or removed this stack: `rolled_back`, or a `failed` stack that the
/// rollback cleaned up (its reason goes on with "; then <what the rollback did>").
fn was_rolled_back(s: &StackSummary) -> bool {
    s.action == Action::RolledBack || (s.action == Action::Failed && s.reason.contains("; then "))
}

/// What the rollback did, from a rolled-back stack's reason (`failed: ...; then <what>`).
fn rollback_what(reason: &str) -> String {
    let what = reason.rsplit_once("; then ").map_or(reason, |(_, w)| w);
    one_line(what)
}

/// The run's rollback failed for at least one stack: a separate alert, marked as needing a
/// human, naming each stack with its reason and fix.
pub fn rollback_failed(run: &RunContext, summary: &RunSummary) -> Message {
    let env = if summary.environment.is_empty() {
        &run.environment
    } else {
        &summary.environment
    };
    let failed: Vec<&StackSummary> = summary
        .stacks
        .iter()
        .filter(|s| s.action == Action::RollbackFailed)
        .collect();
    let mut body = format!(
        "The rollback of the failed deployment to {env} did not complete: {} could not be \
         restored. A human must fix {} before the next deployment.\n\n",
        plural(failed.len(), "stack"),
        if failed.len() == 1 { "it" } else { "them" }
    );
    for s in &failed {
        body.push_str(&format!("Stack {} (stage {}):\n", s.name, s.stage));
        body.push_str(&format!("  {}\n\n", one_line(&s.reason)));
    }
    if let Some(stack) = &summary.failed_stack {
        let cause = match &summary.root_cause {
            Some(rc) => format!(
                "{} ({}): {}",
                rc.logical_id,
                rc.resource_type,
                one_line(&rc.reason)
            ),
            None => "see the run's failure alert".to_string(),
        };
        body.push_str(&format!(
            "The deployment failed at stack {stack}: {cause}\n"
        ));
    }
    let rolled_back: Vec<&str> = summary
        .stacks
        .iter()
        .filter(|s| was_rolled_back(s))
        .map(|s| s.name.as_str())
        .collect();
    if rolled_back.is_empty() {
        body.push_str("Nothing else was rolled back.\n");
    } else {
        body.push_str(&format!("Rolled back: {}\n", rolled_back.join(", ")));
    }
    body.push_str(&format!(
        "\nEnvironment: {env}\nExecution:   {}\nConsole:     {}\n",
        summary.execution_arn,
        console_url(&summary.execution_arn)
    ));
    Message {
        subject: subject(&format!("stackwave {env}: ROLLBACK FAILED - needs a human")),
        body,
    }
}

/// How an execution ended when it ended outside the state machine's own path (StopExecution, a
/// Step Functions timeout or limit), as the EventBridge status event gives it: `ABORTED`,
/// `TIMED_OUT` or `FAILED`.
pub fn ended_error(status: &str, error: Option<&str>, cause: Option<&str>) -> CaughtError {
    let (name, what) = match status {
        "ABORTED" => (
            "ExecutionAborted",
            "the execution was stopped (StopExecution)".to_string(),
        ),
        "TIMED_OUT" => (
            "ExecutionTimedOut",
            "the execution reached its Step Functions timeout".to_string(),
        ),
        _ => (
            "ExecutionFailed",
            format!(
                "the execution failed outside stackwave's handling ({}{})",
                error.unwrap_or("no error name"),
                cause
                    .map(|c| format!(": {}", truncate(&one_line(c), 300)))
                    .unwrap_or_default()
            ),
        ),
    };
    CaughtError {
        error: name.to_string(),
        cause: format!(
            "{what} before the run finished: no rollback ran, and stacks in flight go on in \
             CloudFormation. Fix: wait for them to settle, check them, then run the deployment \
             again"
        ),
    }
}

/// The summary of a run whose execution ended without finalizing: every stack of the plan, the
/// ones in flight with their live CloudFormation status (`live`, by stack; absent when not
/// observed), and the error of [`ended_error`].
pub fn ended(
    run: &RunContext,
    plan: &Plan,
    records: &[StackRecord],
    live: &HashMap<String, String>,
    error: &CaughtError,
) -> RunSummary {
    let records: Vec<StackRecord> = records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            let in_flight = r.action == Action::InProgress
                || r.rollback.as_ref().is_some_and(|rb| rb.outcome.is_none());
            if in_flight {
                let status = live
                    .get(&r.stack)
                    .cloned()
                    .unwrap_or_else(|| "not observed".into());
                let text = format!(
                    "in flight when the execution ended: CloudFormation status {status}; it goes on \
                     without stackwave. Fix: wait for it to settle and check it"
                );
                match r.rollback.as_mut() {
                    Some(rb) if rb.outcome.is_none() => rb.status = Some(status),
                    _ => r.reason = text,
                }
                r.status = live.get(&r.stack).cloned().or(r.status);
            }
            r
        })
        .collect();
    build(run, plan, &records, Some(error))
}

/// The stacks an ended run left in flight, with their live status, for the alert.
pub fn in_flight(records: &[StackRecord], live: &HashMap<String, String>) -> Vec<(String, String)> {
    records
        .iter()
        .filter(|r| {
            r.action == Action::InProgress
                || r.rollback.as_ref().is_some_and(|rb| rb.outcome.is_none())
        })
        .map(|r| {
            (
                r.stack.clone(),
                live.get(&r.stack)
                    .cloned()
                    .unwrap_or_else(|| "not observed".into()),
            )
        })
        .collect()
}

/// The alert of an execution that ended without finalizing (status `ABORTED`, `TIMED_OUT`,
/// `FAILED`): environment, execution, what was in flight and what to do, then the table.
pub fn ended_message(
    run: &RunContext,
    status: &str,
    summary: &RunSummary,
    in_flight: &[(String, String)],
) -> Message {
    let mut body = format!(
        "The execution ended {status} before the run finished: no rollback ran and no later \
         stack started. The environment's lock is released.\n\nEnvironment: {}\nExecution:   \
         {}\n\n",
        run.environment, run.execution_arn
    );
    if in_flight.is_empty() {
        body.push_str("No stack was in flight.\n\n");
    } else {
        body.push_str("In flight (CloudFormation goes on with them):\n");
        for (stack, status) in in_flight {
            body.push_str(&format!("  {stack}: {status}\n"));
        }
        body.push('\n');
    }
    body.push_str(
        "What to do: wait for the stacks in flight to settle and check them in the \
         CloudFormation console, then run the deployment again: it updates or recreates what \
         needs it.\n\n",
    );
    body.push_str(&table(summary));
    body.push_str(&format!("\nConsole: {}\n", console_url(&run.execution_arn)));
    let what = if in_flight.is_empty() {
        String::new()
    } else {
        format!(", {} stack(s) in flight", in_flight.len())
    };
    Message {
        subject: subject(&format!("stackwave {}: {status}{what}", run.environment)),
        body,
    }
}

/// Finalize could not build the run's summary. The run had started deploying, so stacks may
/// have been created, updated or rolled back: a failed run, with where to look.
pub fn summary_failed(run: &RunContext, error: &CaughtError) -> Message {
    let cause = cause_message(&error.cause);
    let mut body = String::from(
        "The run deployed, but its summary could not be built, so this alert cannot list what \
         changed: stacks of this run may have been created, updated or rolled back.\n\n",
    );
    body.push_str(&format!(
        "Environment: {}\nExecution:   {}\nManifest:    {}\nError:       {}\n\n",
        run.environment, run.execution_arn, run.manifest_uri, error.error
    ));
    if !cause.is_empty() {
        body.push_str(&cause);
        body.push_str("\n\n");
    }
    body.push_str(&format!(
        "What to do: each stack's record is under s3://{}/{}stacks/ (what the run did to it); \
         check those stacks in the CloudFormation console, fix the cause above, then run the \
         deployment again.\n\nConsole: {}\n",
        run.bucket,
        run.run_prefix,
        console_url(&run.execution_arn)
    ));
    Message {
        subject: subject(&format!(
            "stackwave {}: FAILED (summary not built: {})",
            run.environment, error.error
        )),
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
                if matches!(s.action, Action::NotStarted | Action::Skipped) {
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
    if summary.stacks_omitted > 0 {
        out.push_str(&format!(
            "... {} not shown: {} lists every stack\n",
            plural(summary.stacks_omitted, "stack"),
            summary
                .summary_uri
                .as_deref()
                .unwrap_or("the run's summary.json")
        ));
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
            fallback_poll_seconds: crate::io::DEFAULT_FALLBACK_POLL_SECONDS,
            segment_events: crate::budget::SEGMENT_EVENTS,
        }
    }

    #[test]
    fn an_ended_run_lists_every_stack_with_what_was_in_flight() {
        let mut flying = record("Ecs-dev", "infra", Action::InProgress, 0, "");
        flying.phase = Phase::Executing;
        let records = vec![
            record("Network-dev", "infra", Action::Created, 30, ""),
            flying,
        ];
        let live = HashMap::from([("Ecs-dev".to_string(), "CREATE_IN_PROGRESS".to_string())]);
        let error = ended_error("ABORTED", None, None);
        assert_eq!(error.error, "ExecutionAborted");
        assert!(error.cause.contains("no rollback ran"));
        let s = ended(&run(), &plan(), &records, &live, &error);
        assert_eq!(s.status, RunStatus::Failed);
        let row = |n: &str| s.stacks.iter().find(|r| r.name == n).expect("row").clone();
        assert_eq!(row("Network-dev").action, Action::Created);
        assert_eq!(row("Ecs-dev").action, Action::InProgress);
        assert!(row("Ecs-dev").reason.contains(
            "in flight when the execution ended: CloudFormation status CREATE_IN_PROGRESS"
        ));
        assert_eq!(row("Api-dev").action, Action::NotStarted);
        assert!(s
            .error
            .as_deref()
            .unwrap_or_default()
            .starts_with("ExecutionAborted: "));
        let flying = in_flight(&records, &live);
        assert_eq!(
            flying,
            vec![("Ecs-dev".to_string(), "CREATE_IN_PROGRESS".to_string())]
        );
        let m = ended_message(&run(), "ABORTED", &s, &flying);
        assert_eq!(m.subject, "stackwave dev: ABORTED, 1 stack(s) in flight");
        assert!(
            m.body.contains("  Ecs-dev: CREATE_IN_PROGRESS\n"),
            "{}",
            m.body
        );
        assert!(
            m.body.contains(ARN) && m.body.contains("What to do:"),
            "{}",
            m.body
        );
        assert_eq!(
            ended_error("TIMED_OUT", None, None).error,
            "ExecutionTimedOut"
        );
        let failed = ended_error("FAILED", Some("States.DataLimitExceeded"), Some("too big"));
        assert!(
            failed.cause.contains("States.DataLimitExceeded: too big"),
            "{}",
            failed.cause
        );
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
            secrets: vec![],
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
            stacks_omitted: 0,
            summary_uri: None,
        };
        let m = finished(&r, &s);
        assert!(m.subject.len() <= 100 && m.subject.len() == MAX_SUBJECT_LEN);
        assert!(m.subject.is_ascii());
        assert!(m.subject.starts_with("stackwave prod: FAILED at St?ck"));
        assert!(m.subject.ends_with("..."));
        assert!(!m.subject.contains('\n'));
    }

    #[test]
    fn started_message_lists_stages_and_their_stacks() {
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
        assert!(
            m.body
                .contains("Stage 1 infra (3 stacks): Network-dev, Logs-dev, Ecs-dev\n"),
            "{}",
            m.body
        );
        assert!(m.body.contains("Stage 2 data (1 stack): Aurora-dev\n"));
        assert!(!m.body.contains(" wave"), "{}", m.body);
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

    fn rollback_plan() -> Plan {
        let text = "name: x\nstages:\n\
- name: infra\n  stacks:\n  - {name: Net, template: t.yaml}\n  - {name: Ecs, template: t.yaml, dependsOn: [Net]}\n\
- name: data\n  stacks:\n  - {name: Db, template: t.yaml, dependsOn: [Net]}\n  - {name: Cache, template: t.yaml}\n\
- name: app\n  stacks:\n  - {name: Api, template: t.yaml, dependsOn: [Db]}\n  - {name: Web, template: t.yaml, dependsOn: [Api]}\n  - {name: Docs, template: t.yaml}\n";
        crate::plan::from_text(text, "dev", &|_| true).expect("plan")
    }

    fn rolled(
        mut r: StackRecord,
        op: crate::record::RollbackOperation,
        outcome: Action,
        reason: &str,
    ) -> StackRecord {
        r.rollback = Some(crate::record::RollbackState {
            operation: op,
            phase: crate::record::RollbackPhase::Done,
            started_at: "2026-11-27T10:20:00Z".into(),
            finished_at: Some("2026-11-27T10:21:00Z".into()),
            status: None,
            reason: reason.into(),
            client_token: "sw-rollback-1".into(),
            outcome: Some(outcome),
            root_cause: None,
        });
        r
    }

    #[test]
    fn a_summary_too_large_for_the_state_keeps_failures_first_and_counts_the_rest() {
        let row = |name: &str, action: Action| StackSummary {
            name: name.into(),
            stage: "apps".into(),
            action,
            duration_seconds: 1.0,
            reason: "x".repeat(100),
        };
        let mut stacks: Vec<StackSummary> = (0..400)
            .map(|i| row(&format!("Unchanged{i}"), Action::Unchanged))
            .collect();
        stacks.insert(200, row("Broken", Action::Failed));
        stacks.push(row("Made", Action::Created));
        let full = RunSummary {
            status: RunStatus::Failed,
            environment: "dev".into(),
            execution_arn: "arn:x".into(),
            stacks,
            failed_stack: Some("Broken".into()),
            root_cause: None,
            error: None,
            stacks_omitted: 0,
            summary_uri: None,
        };
        // Whole when it fits.
        let uri = "s3://artifacts/runs/dev/run-1/summary.json";
        assert_eq!(bounded(&full, uri, 1 << 20), full);

        let small = bounded(&full, uri, 8_192);
        let text = serde_json::to_string(&small).unwrap();
        assert!(text.len() <= 8_192, "{} bytes", text.len());
        assert_eq!(small.stacks_omitted + small.stacks.len(), full.stacks.len());
        assert!(small.stacks_omitted > 300);
        // The failure and the created stack are kept, ahead of unchanged ones, in plan order.
        assert_eq!(small.stacks[0].name, "Unchanged0");
        assert!(small.stacks.iter().any(|s| s.name == "Broken"));
        assert!(small.stacks.iter().any(|s| s.name == "Made"));
        let broken = small
            .stacks
            .iter()
            .position(|s| s.name == "Broken")
            .unwrap();
        let made = small.stacks.iter().position(|s| s.name == "Made").unwrap();
        assert!(broken < made);
        assert_eq!(small.failed_stack.as_deref(), Some("Broken"));
        let parsed: RunSummary = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed.stacks_omitted, small.stacks_omitted);
        assert_eq!(parsed.summary_uri.as_deref(), Some(uri));
        assert!(table(&small).contains(&format!(
            "... {} stacks not shown: {uri} lists every stack",
            small.stacks_omitted
        )));
        // A summary with nothing omitted does not carry the fields.
        let whole = serde_json::to_string(&full).unwrap();
        assert!(!whole.contains("stacksOmitted") && !whole.contains("summaryUri"));
    }

    /// Issue: a failed run's cause is this summary as text, capped at 32,768 characters by AWS.
    #[test]
    fn two_thousand_failed_stacks_give_a_summary_within_the_failure_cause_cap() {
        let stacks: Vec<StackSummary> = (0..2000)
            .map(|i| StackSummary {
                name: format!("BellyfedServiceStack{i:04}-production"),
                stage: "applications".into(),
                action: if i % 2 == 0 {
                    Action::Failed
                } else {
                    Action::Skipped
                },
                duration_seconds: 1234.5,
                reason: format!("Resource handler returned message: \"{}\"", "é".repeat(200)),
            })
            .collect();
        let full = RunSummary {
            status: RunStatus::Failed,
            environment: "production".into(),
            execution_arn: "arn:aws:states:us-east-1:123456789012:execution:stackwave-deploy:x"
                .into(),
            stacks,
            failed_stack: Some("BellyfedServiceStack0000-production".into()),
            root_cause: None,
            error: Some("StackFailed: ".to_string() + &"x".repeat(MAX_ERROR_LEN)),
            stacks_omitted: 0,
            summary_uri: None,
        };
        let out = bounded(
            &full,
            "s3://artifacts/runs/production/x/summary.json",
            MAX_STATE_SUMMARY_BYTES,
        );
        let cause = serde_json::to_string(&out).unwrap();
        assert!(cause.chars().count() < 32_768, "{} characters", cause.len());
        assert!(!out.stacks.is_empty());
        // Failures come first: every row kept is a failed one.
        assert!(out.stacks.iter().all(|s| s.action == Action::Failed));
        assert_eq!(out.stacks_omitted + out.stacks.len(), 2000);
    }

    /// Db's create failed in stage 2 after Net was updated and Ecs created; Cache's delete failed.
    fn rolled_back_summary() -> RunSummary {
        use crate::record::RollbackOperation::{Delete, Restore};
        let mut db = record(
            "Db",
            "data",
            Action::Failed,
            40,
            "ROLLBACK_COMPLETE: The following resource(s) failed to create: [Cluster]",
        );
        db.status = Some("ROLLBACK_COMPLETE".into());
        db.root_cause = Some(RootCause {
            logical_id: "Cluster".into(),
            resource_type: "AWS::RDS::DBCluster".into(),
            status: "CREATE_FAILED".into(),
            reason: "The parameter MasterUsername is not valid.".into(),
        });
        let mut net = record("Net", "infra", Action::Updated, 30, "");
        net.operation = Operation::Update;
        let records = vec![
            rolled(
                net,
                Restore,
                Action::RolledBack,
                crate::rollback::RESTORED_REASON,
            ),
            rolled(
                record("Ecs", "infra", Action::Created, 20, ""),
                Delete,
                Action::RolledBack,
                crate::rollback::DELETED_REASON,
            ),
            rolled(db, Delete, Action::RolledBack, crate::rollback::DELETED_REASON),
            rolled(
                record("Cache", "data", Action::Created, 10, ""),
                Delete,
                Action::RollbackFailed,
                "deleting the stack (created by this run) ended DELETE_FAILED: Bucket (AWS::S3::Bucket) DELETE_FAILED: The bucket you tried to delete is not empty. Fix: empty or detach the resources",
            ),
        ];
        let error = CaughtError {
            error: "StackFailed".into(),
            cause: "A stack of this wave failed".into(),
        };
        build(&run(), &rollback_plan(), &records, Some(&error))
    }

    #[test]
    fn a_rollback_that_stopped_shows_what_it_did_not_reach() {
        use crate::record::RollbackOperation::Delete;
        let mut net = record("Net", "infra", Action::Updated, 30, "");
        net.operation = Operation::Update;
        let mut db = record(
            "Db",
            "data",
            Action::Failed,
            40,
            "ROLLBACK_COMPLETE: Cluster",
        );
        db.status = Some("ROLLBACK_COMPLETE".into());
        let records = vec![
            net,
            record("Ecs", "infra", Action::Created, 20, ""),
            db,
            rolled(
                record("Cache", "data", Action::Created, 10, ""),
                Delete,
                Action::RolledBack,
                crate::rollback::DELETED_REASON,
            ),
        ];
        let error = CaughtError {
            error: "StackFailed".into(),
            cause: "Db failed".into(),
        };
        let mut s = build(&run(), &rollback_plan(), &records, Some(&error));
        let stopped = CaughtError {
            error: "Lambda.ServiceException".into(),
            cause: r#"{"errorType":"Lambda.ServiceException","errorMessage":"Rate exceeded"}"#
                .into(),
        };
        rollback_stopped(&mut s, &records, &stopped);
        let row = |name: &str| {
            s.stacks
                .iter()
                .find(|x| x.name == name)
                .map(|x| (x.action, x.reason.clone()))
                .expect("row")
        };
        let (action, reason) = row("Net");
        assert_eq!(action, Action::RollbackFailed);
        assert!(
            reason.contains("Lambda.ServiceException: Rate exceeded")
                && reason.contains("keeps this run's update"),
            "{reason}"
        );
        let (action, reason) = row("Ecs");
        assert_eq!(action, Action::RollbackFailed);
        assert!(reason.contains("still there"), "{reason}");
        let (action, reason) = row("Db");
        assert_eq!(action, Action::Failed, "what failed stays failed");
        assert!(
            reason.starts_with("failed: ROLLBACK_COMPLETE: Cluster; then the rollback stopped"),
            "{reason}"
        );
        assert_eq!(
            row("Cache"),
            (Action::RolledBack, crate::rollback::DELETED_REASON.into()),
            "what the rollback did is kept"
        );
        let text = s.error.clone().expect("error");
        assert!(
            text.starts_with("StackFailed: Db failed; then RollbackStopped:")
                && text.contains("Not rolled back: Net, Ecs, Db"),
            "{text}"
        );
        assert_eq!(s.status, RunStatus::Failed);
        // The ROLLBACK_FAILED alert lists the stacks a human must finish.
        let m = rollback_failed(&run(), &s);
        assert!(
            m.body.contains("Net") && m.body.contains("Ecs"),
            "{}",
            m.body
        );
    }

    #[test]
    fn rollback_outcomes_and_skipped_dependents() {
        let s = rolled_back_summary();
        assert_eq!(s.status, RunStatus::Failed);
        let row = |name: &str| {
            s.stacks
                .iter()
                .find(|x| x.name == name)
                .map(|x| (x.action, x.reason.clone()))
                .expect("row")
        };
        assert_eq!(
            row("Net"),
            (
                Action::RolledBack,
                "restored to its previous template and parameters".into()
            )
        );
        assert_eq!(
            row("Ecs"),
            (Action::RolledBack, "deleted (created by this run)".into())
        );
        let (action, reason) = row("Db");
        // The stack that failed stays `failed`; its reason says the rollback deleted it.
        assert_eq!(action, Action::Failed);
        assert!(
            reason.starts_with("failed: ROLLBACK_COMPLETE: The following resource(s)")
                && reason.ends_with("; then deleted (created by this run)"),
            "{reason}"
        );
        assert_eq!(row("Cache").0, Action::RollbackFailed);
        assert_eq!(
            row("Api"),
            (Action::Skipped, "depends on Db, which failed".into())
        );
        assert_eq!(
            row("Web"),
            (Action::Skipped, "depends on Api -> Db, which failed".into())
        );
        assert_eq!(row("Docs"), (Action::NotStarted, String::new()));
        // the failed stack stays the run's failure, with its root cause
        assert_eq!(s.failed_stack.as_deref(), Some("Db"));
        assert_eq!(
            s.root_cause.as_ref().map(|r| r.logical_id.as_str()),
            Some("Cluster")
        );
        // duration runs to the end of the rollback
        let ecs = s.stacks.iter().find(|x| x.name == "Ecs").expect("Ecs");
        assert_eq!(ecs.duration_seconds, 360.0);
    }

    #[test]
    fn an_unfinished_rollback_is_reported_failed() {
        let mut r = rolled(
            record("Ecs", "infra", Action::Created, 20, ""),
            crate::record::RollbackOperation::Delete,
            Action::RolledBack,
            "",
        );
        if let Some(rb) = r.rollback.as_mut() {
            rb.outcome = None;
            rb.phase = crate::record::RollbackPhase::Executing;
            rb.status = Some("DELETE_IN_PROGRESS".into());
        }
        let s = build(&run(), &rollback_plan(), &[r], None);
        let ecs = &s.stacks[1];
        assert_eq!(ecs.action, Action::RollbackFailed);
        assert!(
            ecs.reason
                .contains("did not finish before the run ended (last status DELETE_IN_PROGRESS)"),
            "{}",
            ecs.reason
        );
        assert_eq!(s.failed_stack.as_deref(), Some("Ecs"));
    }

    #[test]
    fn failure_alert_lists_what_was_rolled_back_after_the_table() {
        let s = rolled_back_summary();
        let m = finished(&run(), &s);
        assert_eq!(m.subject, "stackwave dev: FAILED at Db");
        let lines: Vec<&str> = m.body.lines().collect();
        assert_eq!(lines[0], "Stack Db failed.");
        assert_eq!(lines[2], "  Logical id: Cluster");
        assert_eq!(lines[3], "  Type:       AWS::RDS::DBCluster");
        assert!(m
            .body
            .contains("2 stacks skipped: they depend on a failed stack."));
        assert!(m.body.contains("1 stack not started"));
        let at = |needle: &str| m.body.find(needle).unwrap_or(usize::MAX);
        assert!(at("Root cause") < at("STACK"));
        assert!(at("STACK") < at("Rolled back: 3 stacks"));
        assert!(at("Rolled back: 3 stacks") < at("Rollback FAILED: 1 stack"));
        assert!(at("Rollback FAILED: 1 stack") < at("Console:"));
        assert!(m
            .body
            .contains("  Net: restored to its previous template and parameters\n"));
        assert!(m.body.contains("  Ecs: deleted (created by this run)\n"));
        assert!(m.body.contains("  Db: deleted (created by this run)\n"));
        assert!(m
            .body
            .contains("(a separate alert says how to fix it): Cache"));
        assert!(m.body.contains("rolled_back"));
        assert!(m.body.contains("rollback_failed"));
        let skipped_row = m
            .body
            .lines()
            .find(|l| l.starts_with("Api "))
            .unwrap_or_default();
        assert!(
            skipped_row.contains("skipped  ") && skipped_row.contains("  -  depends on Db"),
            "{skipped_row}"
        );
        // no rollback: no section
        let plain = finished(&run(), &failed_summary());
        assert!(!plain.body.contains("Rolled back"));
        assert!(!plain.body.contains("Rollback FAILED"));
    }

    #[test]
    fn rollback_failed_alert_needs_a_human() {
        let s = rolled_back_summary();
        let m = rollback_failed(&run(), &s);
        assert_eq!(m.subject, "stackwave dev: ROLLBACK FAILED - needs a human");
        assert!(m.subject.len() <= MAX_SUBJECT_LEN);
        assert!(
            m.body.starts_with(
                "The rollback of the failed deployment to dev did not complete: 1 stack could not be restored. A human must fix it"
            ),
            "{}",
            m.body
        );
        assert!(m.body.contains("Stack Cache (stage data):\n"));
        assert!(m
            .body
            .contains("The bucket you tried to delete is not empty. Fix: empty or detach"));
        assert!(m.body.contains(
            "The deployment failed at stack Db: Cluster (AWS::RDS::DBCluster): The parameter MasterUsername is not valid."
        ));
        assert!(m.body.contains("Rolled back: Net, Ecs, Db\n"));
        assert!(m
            .body
            .contains(&format!("Console:     {}", console_url(ARN))));
        assert!(!m.body.contains("Stack Net"));
    }
}
