//! Run-level rollback (issue 3): which stacks a failed run restores, in which order, and how
//! each restore is followed to its end.
//!
//! - [`plan`] picks the stacks this run changed and orders them as waves, dependents first.
//! - The rollback function starts each stack's restore ([`wanted`] says which: delete what this
//!   run created, redeploy the snapshot of what it updated) and records a [`RollbackState`].
//! - check, in rollback mode, observes the stacks and settles each state with [`advance`].
//!
//! Pure functions only; the handlers do the AWS calls.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::plan::{Plan, PlannedStack};
use crate::reconcile::{self, StackEvent, StackView};
use crate::record::{
    Action, Operation, RollbackOperation, RollbackPhase, RollbackState, RootCause, StackRecord,
};
use crate::status::{classify, StatusClass};

/// Token operation of the rollback's DeleteStack / UpdateStack.
pub const OP_ROLLBACK: &str = "rollback";

/// What a delete did, as the summary says it.
pub const DELETED_REASON: &str = "deleted (created by this run)";
/// What a restore did, as the summary says it.
pub const RESTORED_REASON: &str = "restored to its previous template and parameters";
/// A restore CloudFormation answered with "No updates are to be performed".
pub const ALREADY_RESTORED_REASON: &str =
    "restored to its previous template and parameters (it already had them)";

/// The ClientRequestToken of the rollback of `stack` in this execution.
pub fn client_token(execution_name: &str, stack: &str) -> String {
    reconcile::client_token(execution_name, stack, OP_ROLLBACK)
}

/// What the rollback must do to the stack of this record, or `None` when nothing:
/// - created by this run (create, or recreate of a leftover) → delete;
/// - updated by this run → restore its snapshot;
/// - a create of this run that failed but left a stack behind (ROLLBACK_COMPLETE, or
///   ROLLBACK_FAILED / CREATE_FAILED) → delete;
/// - a create of this run still CREATE_IN_PROGRESS when it timed out (no cancel exists for a
///   create; CloudFormation would carry on with it) → delete: DeleteStack stops the create and
///   deletes what it made. A record whose operation is a create only reaches CREATE_IN_PROGRESS
///   by executing this run's change set: a stack busy with someone else's operation is waited
///   for as an update (`reconcile::start`), which is never deleted;
/// - unchanged, failed updates (CloudFormation already rolled them back to the snapshot),
///   failures that left nothing, other stacks still in progress → nothing.
pub fn wanted(record: &StackRecord) -> Option<RollbackOperation> {
    match (record.action, record.operation) {
        (Action::Created, _) => Some(RollbackOperation::Delete),
        (Action::Updated, _) => Some(RollbackOperation::Restore),
        (Action::Failed, Operation::Create | Operation::Recreate)
            if record
                .status
                .as_deref()
                .is_some_and(is_failed_create_leftover) =>
        {
            Some(RollbackOperation::Delete)
        }
        _ => None,
    }
}

/// A status a failed (or timed-out) create of this run leaves behind, holding a stack to
/// delete.
fn is_failed_create_leftover(status: &str) -> bool {
    matches!(
        status,
        "ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" | "CREATE_FAILED" | "CREATE_IN_PROGRESS"
    )
}

/// The stacks this run changed, as rollback waves: every stack is restored before anything it
/// depends on. Dependencies are the plan's `depends_on`, followed transitively through stacks
/// that need no rollback, plus the stage order (a stack of a later stage is restored before any
/// stack of an earlier one, mirroring the deployment, since stages may depend on each other in
/// ways the manifest does not declare). Inside a wave, reverse plan order.
pub fn plan(plan: &Plan, records: &[StackRecord]) -> Vec<Vec<String>> {
    let by_name: HashMap<&str, &StackRecord> =
        records.iter().map(|r| (r.stack.as_str(), r)).collect();
    let planned: HashMap<&str, &PlannedStack> =
        plan.stacks.iter().map(|s| (s.name.as_str(), s)).collect();
    // Reverse plan order: stages, then waves, later first. Every stack's dependents (same stage,
    // later wave) and every later stage come before it.
    let mut selected: Vec<(usize, &PlannedStack)> = plan
        .stacks
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            by_name
                .get(s.name.as_str())
                .is_some_and(|r| wanted(r).is_some())
        })
        .collect();
    selected.sort_by_key(|(i, s)| std::cmp::Reverse((s.stage_index, s.wave, *i)));

    let deps: HashMap<&str, HashSet<&str>> = selected
        .iter()
        .map(|(_, s)| (s.name.as_str(), dependencies(&planned, s.name.as_str())))
        .collect();
    let mut level: HashMap<&str, usize> = HashMap::new();
    let mut waves: Vec<Vec<String>> = Vec::new();
    for (pos, (_, t)) in selected.iter().enumerate() {
        // t waits for every earlier-processed stack that depends on it or is in a later stage.
        let mut lvl = 0;
        for (_, s) in &selected[..pos] {
            let must_precede = s.stage_index > t.stage_index
                || deps
                    .get(s.name.as_str())
                    .is_some_and(|d| d.contains(t.name.as_str()));
            if must_precede {
                lvl = lvl.max(level.get(s.name.as_str()).copied().unwrap_or(0) + 1);
            }
        }
        level.insert(t.name.as_str(), lvl);
        if waves.len() <= lvl {
            waves.resize_with(lvl + 1, Vec::new);
        }
        waves[lvl].push(t.name.clone());
    }
    waves
}

/// The rollback's reversed graph over the stacks to restore (`names`, as [`plan`] selected
/// them): for each, the stacks restored before it: every one of `names` that depends on it,
/// transitively through stacks that need no rollback, and, with `schedule: stages`, every one of
/// a later stage (the deployment's stage order, mirrored). The scheduler
/// (`crate::schedule::decide_nodes`, `Rules::Rollback`) restores a stack once they have settled.
pub fn reversed_graph(plan: &Plan, names: &[String]) -> Vec<(String, Vec<String>)> {
    let planned: HashMap<&str, &PlannedStack> =
        plan.stacks.iter().map(|s| (s.name.as_str(), s)).collect();
    let stage_order = plan.schedule == crate::manifest::Schedule::Stages;
    let deps: HashMap<&str, HashSet<&str>> = names
        .iter()
        .map(|n| (n.as_str(), dependencies(&planned, n)))
        .collect();
    names
        .iter()
        .map(|t| {
            let t_stage = planned.get(t.as_str()).map(|p| p.stage_index);
            let before = names
                .iter()
                .filter(|s| *s != t)
                .filter(|s| {
                    let later =
                        stage_order && planned.get(s.as_str()).map(|p| p.stage_index) > t_stage;
                    later || deps.get(s.as_str()).is_some_and(|d| d.contains(t.as_str()))
                })
                .cloned()
                .collect();
            (t.clone(), before)
        })
        .collect()
}

/// Every stack `name` depends on, transitively (a cycle, which a valid plan never has, ends the
/// walk instead of looping).
fn dependencies<'a>(planned: &HashMap<&'a str, &'a PlannedStack>, name: &str) -> HashSet<&'a str> {
    let mut seen: HashSet<&'a str> = HashSet::new();
    let mut todo: Vec<&'a str> = planned
        .get_key_value(name)
        .map(|(k, _)| *k)
        .into_iter()
        .collect();
    while let Some(n) = todo.pop() {
        if let Some(ps) = planned.get(n) {
            for d in &ps.depends_on {
                if let Some((key, _)) = planned.get_key_value(d.as_str()) {
                    if seen.insert(key) {
                        todo.push(key);
                    }
                }
            }
        }
    }
    seen
}

/// Seconds from `now` to the deadline of the record's restore in flight (its start +
/// `timeoutMinutes`): a rollback parked for a CloudFormation event still looks at the stack
/// when its timeout runs out. `None` without a restore in flight, once it has passed, or when
/// its start does not parse.
pub fn seconds_to_deadline(record: &StackRecord, now: DateTime<Utc>) -> Option<u64> {
    let state = record
        .rollback
        .as_ref()
        .filter(|s| s.phase != RollbackPhase::Done)?;
    let start = reconcile::parse_timestamp(&state.started_at)?;
    let deadline = start + chrono::Duration::minutes(i64::from(record.timeout_minutes));
    u64::try_from((deadline - now).num_seconds())
        .ok()
        .filter(|s| *s > 0)
}

/// A rollback just started (the DeleteStack / UpdateStack was accepted).
pub fn started(operation: RollbackOperation, token: &str, now: DateTime<Utc>) -> RollbackState {
    RollbackState {
        operation,
        phase: RollbackPhase::Executing,
        started_at: reconcile::timestamp(now),
        finished_at: None,
        status: None,
        reason: String::new(),
        client_token: token.to_string(),
        outcome: None,
        root_cause: None,
    }
}

/// Settle a rollback with `outcome` (`RolledBack` or `RollbackFailed`).
pub fn settle(state: &mut RollbackState, outcome: Action, reason: String, now: DateTime<Utc>) {
    state.phase = RollbackPhase::Done;
    state.outcome = Some(outcome);
    state.reason = reason;
    state.finished_at = Some(reconcile::timestamp(now));
}

/// A rollback settled at once: `RolledBack` (nothing to do) or `RollbackFailed` (it could not
/// be started).
pub fn settled(
    operation: RollbackOperation,
    token: &str,
    outcome: Action,
    reason: String,
    now: DateTime<Utc>,
) -> RollbackState {
    let mut state = started(operation, token, now);
    settle(&mut state, outcome, reason, now);
    state
}

/// The reason of a stack whose rollback never started (the rollback function's invoke failed
/// beyond its retries), with the fix.
pub fn never_started_reason(operation: RollbackOperation) -> String {
    let fix = match operation {
        RollbackOperation::Delete => "delete the stack by hand (this run created it)",
        RollbackOperation::Restore => {
            "update the stack by hand with its previous template and parameters (the template is \
             kept in the run's snapshots/ folder of the artifact bucket)"
        }
    };
    format!(
        "the rollback ({}) never started: the rollback function failed beyond its retries (see \
         the execution's history). Fix: {fix}",
        operation.as_str()
    )
}

/// What a successful rollback did, for the summary.
/// What a restore that completed did, for this record: [`RESTORED_REASON`], or, when NoEcho
/// parameters kept this run's value because their pre-run value is unknown, which ones and why.
pub fn restored_reason(record: &StackRecord) -> String {
    let unknown = record
        .snapshot
        .as_ref()
        .map(crate::secret::unknown_masked)
        .unwrap_or_default();
    if unknown.is_empty() {
        RESTORED_REASON.to_string()
    } else {
        format!(
            "{RESTORED_REASON}, except NoEcho parameter(s) {}: their pre-run value is not known to \
             stackwave (it was not set from an SSM SecureString by an earlier run), so they keep \
             this run's value. Fix: set them by hand if this run's value is wrong",
            unknown.join(", ")
        )
    }
}

pub fn success_reason(operation: RollbackOperation) -> &'static str {
    match operation {
        RollbackOperation::Delete => DELETED_REASON,
        RollbackOperation::Restore => RESTORED_REASON,
    }
}

/// The result of [`advance`].
#[derive(Debug, Clone, PartialEq)]
pub struct Advance {
    pub record: StackRecord,
    /// The rollback failed through a stack operation: fetch the stack's events and pass them to
    /// [`apply_events`] to name the root cause.
    pub fetch_events: bool,
}

/// Advance a record's rollback by one look at its stack.
///
/// - delete: stack absent or DELETE_COMPLETE → rolled back; DELETE_FAILED (or another failed
///   status) → rollback failed; DELETE_IN_PROGRESS → wait.
/// - restore: UPDATE_COMPLETE → rolled back; UPDATE_ROLLBACK_COMPLETE, UPDATE_ROLLBACK_FAILED,
///   `*_FAILED` → rollback failed; stack absent → rollback failed; in progress → wait.
/// - still waiting past the stack's `timeoutMinutes` since the rollback started → rollback
///   failed.
/// - no rollback state, or done: unchanged.
pub fn advance(record: &StackRecord, view: &StackView, now: DateTime<Utc>) -> Advance {
    let mut rec = record.clone();
    let mut fetch_events = false;
    let Some(state) = rec.rollback.as_mut() else {
        return Advance {
            record: rec,
            fetch_events,
        };
    };
    if state.phase == RollbackPhase::Done {
        return Advance {
            record: rec,
            fetch_events,
        };
    }
    if let StackView::Present(s) = view {
        state.status = Some(s.status.clone());
    }
    match (state.operation, view) {
        (_, StackView::NotObserved) => {}
        (RollbackOperation::Delete, StackView::Absent) => {
            settle(state, Action::RolledBack, DELETED_REASON.to_string(), now)
        }
        (RollbackOperation::Restore, StackView::Absent) => settle(
            state,
            Action::RollbackFailed,
            "the stack disappeared while it was being restored (deleted by someone else?). \
             Fix: recreate it from its previous template and parameters, kept in the run's \
             snapshots/ folder of the artifact bucket"
                .to_string(),
            now,
        ),
        (RollbackOperation::Delete, StackView::Present(s)) => match classify(&s.status) {
            StatusClass::Deleted => {
                settle(state, Action::RolledBack, DELETED_REASON.to_string(), now)
            }
            StatusClass::Failed | StatusClass::UpdateRollbackFailed => {
                fetch_events = true;
                let reason = failure_reason(
                    RollbackOperation::Delete,
                    &s.status,
                    None,
                    s.reason.as_deref(),
                );
                settle(state, Action::RollbackFailed, reason, now);
            }
            _ => {}
        },
        (RollbackOperation::Restore, StackView::Present(s)) => match classify(&s.status) {
            StatusClass::Succeeded => {
                settle(state, Action::RolledBack, restored_reason(record), now)
            }
            StatusClass::RolledBack
            | StatusClass::UpdateRollbackFailed
            | StatusClass::Failed
            | StatusClass::RollbackComplete
            | StatusClass::Deleted => {
                fetch_events = true;
                let reason = failure_reason(
                    RollbackOperation::Restore,
                    &s.status,
                    None,
                    s.reason.as_deref(),
                );
                settle(state, Action::RollbackFailed, reason, now);
            }
            _ => {}
        },
    }
    if state.phase != RollbackPhase::Done && timed_out(state, record.timeout_minutes, now) {
        let last = state.status.clone().unwrap_or_else(|| "unknown".into());
        let reason = format!(
            "the rollback ({}) did not finish within {} minutes (last status {last}). Fix: look \
             at the stack's events, wait for or stop the operation, then {}",
            state.operation.as_str(),
            record.timeout_minutes,
            manual_fix(state.operation)
        );
        settle(state, Action::RollbackFailed, reason, now);
    }
    Advance {
        record: rec,
        fetch_events,
    }
}

fn timed_out(state: &RollbackState, minutes: u32, now: DateTime<Utc>) -> bool {
    reconcile::parse_timestamp(&state.started_at)
        .is_some_and(|start| now - start >= chrono::Duration::minutes(i64::from(minutes)))
}

fn manual_fix(operation: RollbackOperation) -> &'static str {
    match operation {
        RollbackOperation::Delete => "delete the stack by hand (this run created it)",
        RollbackOperation::Restore => {
            "update the stack with its previous template and parameters (kept in the run's \
             snapshots/ folder of the artifact bucket)"
        }
    }
}

/// Why a rollback failed and how to fix it. `cause` is the root cause when the events named
/// one; otherwise the stack's status reason is used.
pub fn failure_reason(
    operation: RollbackOperation,
    status: &str,
    cause: Option<&RootCause>,
    status_reason: Option<&str>,
) -> String {
    let why = match (cause, status_reason) {
        (Some(rc), _) => format!(
            "{} ({}) {}: {}",
            rc.logical_id, rc.resource_type, rc.status, rc.reason
        ),
        (None, Some(r)) if !r.trim().is_empty() => r.trim().to_string(),
        _ => "no reason given; see the stack's events".to_string(),
    };
    match (operation, status) {
        (RollbackOperation::Delete, _) => format!(
            "deleting the stack (created by this run) ended {status}: {why}. Fix: empty or \
             detach the resources that cannot be deleted, or delete the stack with \
             RetainResources for them, then delete it again"
        ),
        (RollbackOperation::Restore, "UPDATE_ROLLBACK_FAILED") => format!(
            "restoring its previous template and parameters failed, and so did CloudFormation's \
             rollback of the restore (UPDATE_ROLLBACK_FAILED): {why}. Fix: fix the resources \
             named, run ContinueUpdateRollback (skipping resources that cannot be rolled back), \
             then {}",
            manual_fix(RollbackOperation::Restore)
        ),
        (RollbackOperation::Restore, "UPDATE_ROLLBACK_COMPLETE") => format!(
            "restoring its previous template and parameters failed and CloudFormation undid the \
             restore: the stack still has this run's template and parameters. Cause: {why}. \
             Fix: correct the cause, then {}",
            manual_fix(RollbackOperation::Restore)
        ),
        (RollbackOperation::Restore, _) => format!(
            "restoring its previous template and parameters ended {status}: {why}. Fix: look at \
             the stack's events, bring it to a stable status, then {}",
            manual_fix(RollbackOperation::Restore)
        ),
    }
}

/// Complete a failed rollback with the stack's events: the root cause (the first failed
/// resource event with the rollback's token) goes into the state and its reason.
pub fn apply_events(record: &mut StackRecord, events: &[StackEvent]) {
    let Some(state) = record.rollback.as_mut() else {
        return;
    };
    if state.outcome != Some(Action::RollbackFailed) {
        return;
    }
    let since = reconcile::parse_timestamp(&state.started_at).unwrap_or(DateTime::<Utc>::MIN_UTC);
    let Some(cause) = reconcile::root_cause(events, Some(&state.client_token), since) else {
        return;
    };
    let status = state.status.clone().unwrap_or_default();
    state.reason = failure_reason(state.operation, &status, Some(&cause), None);
    state.root_cause = Some(cause);
    if let Some(t) = reconcile::settled_at(events, Some(&state.client_token), since) {
        state.finished_at = Some(reconcile::timestamp(t));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::StackState;
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0)
            .single()
            .expect("valid time")
    }

    fn record(stack: &str, operation: Operation, action: Action, status: &str) -> StackRecord {
        StackRecord {
            stack: stack.into(),
            stage: "s".into(),
            operation,
            phase: crate::record::Phase::Done,
            action,
            change_set_name: reconcile::change_set_name("exec-1", stack),
            client_token: reconcile::client_token("exec-1", stack, reconcile::OP_EXECUTE),
            parameters: vec![],
            secrets: vec![],
            started_at: reconcile::timestamp(t(0)),
            finished_at: Some(reconcile::timestamp(t(30))),
            status: Some(status.into()),
            reason: String::new(),
            root_cause: None,
            outputs: vec![],
            snapshot: None,
            timeout_minutes: 10,
            rollback: None,
        }
    }

    #[test]
    fn a_restore_in_flight_parks_no_longer_than_its_timeout() {
        let mut r = record("Net", Operation::Update, Action::Updated, "UPDATE_COMPLETE");
        assert_eq!(seconds_to_deadline(&r, t(100)), None, "no restore");
        r.rollback = Some(started(RollbackOperation::Restore, "tok", t(60)));
        // Started at 60 s, 10 minutes: the deadline is at 660 s.
        assert_eq!(seconds_to_deadline(&r, t(100)), Some(560));
        assert_eq!(seconds_to_deadline(&r, t(660)), None, "passed");
        if let Some(state) = r.rollback.as_mut() {
            settle(state, Action::RolledBack, String::new(), t(200));
        }
        assert_eq!(seconds_to_deadline(&r, t(100)), None, "settled");
    }

    /// Bellyfed's shape: 5 stages with cross-stage and same-stage dependencies.
    fn bellyfed() -> Plan {
        let text = "name: b\nstages:\n\
- name: bootstrap\n  stacks:\n  - {name: Boot, template: t.yaml}\n  - {name: Coord, template: t.yaml, dependsOn: [Boot]}\n\
- name: infra\n  stacks:\n  - {name: Net, template: t.yaml}\n  - {name: Ecs, template: t.yaml, dependsOn: [Net]}\n  - {name: Search, template: t.yaml, dependsOn: [Net]}\n\
- name: data\n  stacks:\n  - {name: Aurora, template: t.yaml, dependsOn: [Net]}\n  - {name: Dynamo, template: t.yaml}\n  - {name: Migrate, template: t.yaml, dependsOn: [Aurora, Net]}\n\
- name: app\n  stacks:\n  - {name: Api, template: t.yaml, dependsOn: [Dynamo]}\n";
        crate::plan::from_text(text, "dev", &|_| true).expect("plan")
    }

    #[test]
    fn what_each_record_needs() {
        use Action::*;
        use Operation::*;
        let cases = [
            (
                Create,
                Created,
                "CREATE_COMPLETE",
                Some(RollbackOperation::Delete),
            ),
            (
                Recreate,
                Created,
                "CREATE_COMPLETE",
                Some(RollbackOperation::Delete),
            ),
            (
                Update,
                Updated,
                "UPDATE_COMPLETE",
                Some(RollbackOperation::Restore),
            ),
            (Update, Unchanged, "UPDATE_COMPLETE", None),
            (Update, Failed, "UPDATE_ROLLBACK_COMPLETE", None),
            (
                Create,
                Failed,
                "ROLLBACK_COMPLETE",
                Some(RollbackOperation::Delete),
            ),
            (
                Recreate,
                Failed,
                "ROLLBACK_COMPLETE",
                Some(RollbackOperation::Delete),
            ),
            (
                Create,
                Failed,
                "ROLLBACK_FAILED",
                Some(RollbackOperation::Delete),
            ),
            // a CREATE change set that failed leaves only a REVIEW_IN_PROGRESS shell
            (Create, Failed, "REVIEW_IN_PROGRESS", None),
            // a leftover whose delete failed was never this run's
            (Recreate, Failed, "DELETE_FAILED", None),
            (Create, InProgress, "CREATE_IN_PROGRESS", None),
            // this run's create, still running at its timeout: the rollback stops and deletes it
            (
                Create,
                Failed,
                "CREATE_IN_PROGRESS",
                Some(RollbackOperation::Delete),
            ),
            // someone else's create this run waited for (recorded as an update): never deleted
            (Update, Failed, "CREATE_IN_PROGRESS", None),
        ];
        for (op, action, status, want) in cases {
            assert_eq!(
                wanted(&record("A", op, action, status)),
                want,
                "{op:?} {action:?} {status}"
            );
        }
    }

    #[test]
    fn stage_three_failure_restores_dependents_first() {
        // Stages 1-2 updated or created, stage 3 partly created, Migrate failed its create.
        let records = vec![
            record(
                "Boot",
                Operation::Update,
                Action::Updated,
                "UPDATE_COMPLETE",
            ),
            record(
                "Coord",
                Operation::Update,
                Action::Unchanged,
                "UPDATE_COMPLETE",
            ),
            record("Net", Operation::Update, Action::Updated, "UPDATE_COMPLETE"),
            record("Ecs", Operation::Create, Action::Created, "CREATE_COMPLETE"),
            record(
                "Search",
                Operation::Update,
                Action::Unchanged,
                "UPDATE_COMPLETE",
            ),
            record(
                "Aurora",
                Operation::Create,
                Action::Created,
                "CREATE_COMPLETE",
            ),
            record(
                "Dynamo",
                Operation::Update,
                Action::Failed,
                "UPDATE_ROLLBACK_COMPLETE",
            ),
            record(
                "Migrate",
                Operation::Create,
                Action::Failed,
                "ROLLBACK_COMPLETE",
            ),
        ];
        let waves = plan(&bellyfed(), &records);
        assert_eq!(
            waves,
            vec![
                vec!["Migrate".to_string()],
                vec!["Aurora".to_string()],
                vec!["Ecs".to_string()],
                vec!["Net".to_string()],
                vec!["Boot".to_string()],
            ]
        );
        // Dynamo (failed update) and the unchanged stacks are not touched; Api never started.
        let all: Vec<&String> = waves.iter().flatten().collect();
        for untouched in ["Dynamo", "Coord", "Search", "Api"] {
            assert!(!all.iter().any(|s| s.as_str() == untouched), "{untouched}");
        }
    }

    #[test]
    fn independent_stacks_of_one_stage_share_a_wave() {
        let records = vec![
            record("Net", Operation::Update, Action::Updated, "UPDATE_COMPLETE"),
            record("Ecs", Operation::Create, Action::Created, "CREATE_COMPLETE"),
            record(
                "Search",
                Operation::Update,
                Action::Updated,
                "UPDATE_COMPLETE",
            ),
        ];
        let waves = plan(&bellyfed(), &records);
        assert_eq!(
            waves,
            vec![
                vec!["Search".to_string(), "Ecs".to_string()],
                vec!["Net".to_string()],
            ]
        );
    }

    #[test]
    fn dependencies_count_through_stacks_that_need_no_rollback() {
        // Top -> Mid (unchanged) -> Base, all in one stage: Top before Base.
        let text = "name: x\nstages:\n- name: a\n  stacks:\n  - {name: Base, template: t.yaml}\n  - {name: Mid, template: t.yaml, dependsOn: [Base]}\n  - {name: Top, template: t.yaml, dependsOn: [Mid]}\n  - {name: Free, template: t.yaml}\n";
        let p = crate::plan::from_text(text, "dev", &|_| true).expect("plan");
        let records = vec![
            record(
                "Base",
                Operation::Update,
                Action::Updated,
                "UPDATE_COMPLETE",
            ),
            record(
                "Mid",
                Operation::Update,
                Action::Unchanged,
                "UPDATE_COMPLETE",
            ),
            record("Top", Operation::Create, Action::Created, "CREATE_COMPLETE"),
            record(
                "Free",
                Operation::Create,
                Action::Created,
                "CREATE_COMPLETE",
            ),
        ];
        assert_eq!(
            plan(&p, &records),
            vec![
                vec!["Top".to_string(), "Free".to_string()],
                vec!["Base".to_string()],
            ]
        );
        // nothing changed: no waves
        let unchanged = vec![record(
            "Base",
            Operation::Update,
            Action::Unchanged,
            "UPDATE_COMPLETE",
        )];
        assert!(plan(&p, &unchanged).is_empty());
        assert!(plan(&p, &[]).is_empty());
    }

    fn with_rollback(op: RollbackOperation, started: i64) -> StackRecord {
        let mut r = record("App", Operation::Create, Action::Created, "CREATE_COMPLETE");
        r.rollback = Some(super::started(
            op,
            &client_token("exec-1", "App"),
            t(started),
        ));
        r
    }

    fn present(status: &str, reason: Option<&str>) -> StackView {
        StackView::Present(StackState {
            status: status.into(),
            reason: reason.map(str::to_string),
            outputs: vec![],
        })
    }

    fn outcome(a: &Advance) -> (RollbackPhase, Option<Action>, String) {
        let s = a.record.rollback.as_ref().expect("rollback state");
        (s.phase, s.outcome, s.reason.clone())
    }

    #[test]
    fn a_delete_settles_when_the_stack_is_gone() {
        let r = with_rollback(RollbackOperation::Delete, 0);
        let a = advance(&r, &present("DELETE_IN_PROGRESS", None), t(5));
        assert_eq!(outcome(&a), (RollbackPhase::Executing, None, String::new()));
        assert_eq!(
            a.record.rollback.as_ref().and_then(|s| s.status.as_deref()),
            Some("DELETE_IN_PROGRESS")
        );
        for view in [StackView::Absent, present("DELETE_COMPLETE", None)] {
            let a = advance(&r, &view, t(9));
            assert_eq!(
                outcome(&a),
                (
                    RollbackPhase::Done,
                    Some(Action::RolledBack),
                    DELETED_REASON.to_string()
                )
            );
            assert!(!a.fetch_events);
            assert_eq!(
                a.record
                    .rollback
                    .as_ref()
                    .and_then(|s| s.finished_at.clone()),
                Some(reconcile::timestamp(t(9)))
            );
        }
        // the deploy record itself is untouched
        let a = advance(&r, &StackView::Absent, t(9));
        assert_eq!(a.record.action, Action::Created);
    }

    #[test]
    fn a_failed_delete_names_the_resource_and_the_fix() {
        let r = with_rollback(RollbackOperation::Delete, 0);
        let a = advance(
            &r,
            &present("DELETE_FAILED", Some("resources failed")),
            t(9),
        );
        let (phase, out, reason) = outcome(&a);
        assert_eq!(
            (phase, out),
            (RollbackPhase::Done, Some(Action::RollbackFailed))
        );
        assert!(a.fetch_events);
        assert!(
            reason.contains("DELETE_FAILED: resources failed"),
            "{reason}"
        );
        assert!(reason.contains("RetainResources"), "{reason}");

        let token = client_token("exec-1", "App");
        let ev = |logical: &str, status: &str, reason: &str, secs: i64, tok: &str| StackEvent {
            stack_name: "App".into(),
            logical_id: logical.into(),
            resource_type: if logical == "App" {
                "AWS::CloudFormation::Stack".into()
            } else {
                "AWS::S3::Bucket".into()
            },
            status: status.into(),
            reason: Some(reason.into()),
            timestamp: t(secs),
            client_request_token: Some(tok.into()),
        };
        // newest first, as AWS lists them; an older failure of another operation is ignored
        let events = vec![
            ev("App", "DELETE_FAILED", "resources failed", 8, &token),
            ev(
                "Logs",
                "DELETE_FAILED",
                "The bucket you tried to delete is not empty",
                7,
                &token,
            ),
            ev("Logs", "DELETE_IN_PROGRESS", "", 2, &token),
            ev("Old", "CREATE_FAILED", "earlier", 1, "sw-execute-x"),
        ];
        let mut rec = a.record;
        apply_events(&mut rec, &events);
        let state = rec.rollback.as_ref().expect("state");
        let rc = state.root_cause.as_ref().expect("root cause");
        assert_eq!(rc.logical_id, "Logs");
        assert!(
            state.reason.contains(
                "Logs (AWS::S3::Bucket) DELETE_FAILED: The bucket you tried to delete is not empty"
            ),
            "{}",
            state.reason
        );
        assert_eq!(state.finished_at, Some(reconcile::timestamp(t(8))));
    }

    #[test]
    fn a_restore_settles_on_update_complete_or_fails_with_the_fix() {
        let r = with_rollback(RollbackOperation::Restore, 0);
        let a = advance(&r, &present("UPDATE_IN_PROGRESS", None), t(3));
        assert_eq!(outcome(&a).0, RollbackPhase::Executing);
        let a = advance(
            &r,
            &present("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", None),
            t(3),
        );
        assert_eq!(outcome(&a).0, RollbackPhase::Executing);
        let a = advance(&r, &present("UPDATE_COMPLETE", None), t(4));
        assert_eq!(
            outcome(&a),
            (
                RollbackPhase::Done,
                Some(Action::RolledBack),
                RESTORED_REASON.to_string()
            )
        );

        // A NoEcho parameter without a known pre-run source kept this run's value: said so.
        let mut masked = r.clone();
        masked.snapshot = Some(crate::record::Snapshot {
            template_key: "k".into(),
            parameters: vec![
                ("DbPassword".into(), crate::secret::MASKED.into()),
                ("ApiKey".into(), crate::secret::MASKED.into()),
            ],
            tags: vec![],
            secrets: vec![crate::secret::SecretRef {
                parameter: "ApiKey".into(),
                ssm: "/k".into(),
                version: 1,
            }],
        });
        let a = advance(&masked, &present("UPDATE_COMPLETE", None), t(4));
        let (_, out, reason) = outcome(&a);
        assert_eq!(out, Some(Action::RolledBack));
        assert!(
            reason.starts_with(RESTORED_REASON)
                && reason.contains("except NoEcho parameter(s) DbPassword:")
                && !reason.contains("ApiKey"),
            "{reason}"
        );

        let a = advance(&r, &present("UPDATE_ROLLBACK_COMPLETE", None), t(4));
        let (_, out, reason) = outcome(&a);
        assert_eq!(out, Some(Action::RollbackFailed));
        assert!(a.fetch_events);
        assert!(reason.contains("still has this run's template"), "{reason}");

        let a = advance(&r, &present("UPDATE_ROLLBACK_FAILED", None), t(4));
        let (_, out, reason) = outcome(&a);
        assert_eq!(out, Some(Action::RollbackFailed));
        assert!(reason.contains("ContinueUpdateRollback"), "{reason}");

        let a = advance(&r, &StackView::Absent, t(4));
        let (_, out, reason) = outcome(&a);
        assert_eq!(out, Some(Action::RollbackFailed));
        assert!(reason.contains("disappeared"), "{reason}");
    }

    #[test]
    fn a_rollback_past_the_timeout_fails_and_done_is_final() {
        let r = with_rollback(RollbackOperation::Delete, 0);
        let a = advance(&r, &present("DELETE_IN_PROGRESS", None), t(10 * 60));
        let (phase, out, reason) = outcome(&a);
        assert_eq!(
            (phase, out),
            (RollbackPhase::Done, Some(Action::RollbackFailed))
        );
        assert!(reason.contains("within 10 minutes (last status DELETE_IN_PROGRESS)"));
        // settled: nothing changes any more
        let again = advance(&a.record, &StackView::Absent, t(11 * 60));
        assert_eq!(again.record, a.record);
        // no rollback state: nothing to advance
        let plain = record("B", Operation::Create, Action::Created, "CREATE_COMPLETE");
        assert_eq!(advance(&plain, &StackView::Absent, t(1)).record, plain);
    }

    #[test]
    fn the_reversed_graph_restores_dependants_first_and_later_stages_first() {
        let p = bellyfed();
        let names: Vec<String> = ["Api", "Migrate", "Aurora", "Net", "Ecs"]
            .map(String::from)
            .to_vec();
        let graph: HashMap<String, Vec<String>> = reversed_graph(&p, &names).into_iter().collect();
        // Net is restored after everything that depends on it (directly or not) and every
        // later-stage stack; Ecs (same stage, depends on Net) before it.
        let mut net = graph["Net"].clone();
        net.sort();
        assert_eq!(net, ["Api", "Aurora", "Ecs", "Migrate"]);
        assert_eq!(
            graph["Aurora"],
            ["Api", "Migrate"],
            "Api: a later stage; Migrate: depends on Aurora"
        );
        assert!(
            graph["Api"].is_empty(),
            "nothing is restored before the last stage's stack"
        );
        assert_eq!(graph["Migrate"], ["Api"]);

        // With `schedule: dependencies`, only dependencies order the rollback.
        let mut dag = p.clone();
        dag.schedule = crate::manifest::Schedule::Dependencies;
        let graph: HashMap<String, Vec<String>> =
            reversed_graph(&dag, &names).into_iter().collect();
        assert_eq!(graph["Aurora"], ["Migrate"]);
        assert!(graph["Migrate"].is_empty());
        let mut net = graph["Net"].clone();
        net.sort();
        assert_eq!(net, ["Aurora", "Ecs", "Migrate"]);
    }

    #[test]
    fn settled_states_and_reasons() {
        let s = settled(
            RollbackOperation::Restore,
            "sw-rollback-1",
            Action::RolledBack,
            ALREADY_RESTORED_REASON.into(),
            t(1),
        );
        assert_eq!(s.phase, RollbackPhase::Done);
        assert_eq!(s.outcome, Some(Action::RolledBack));
        assert_eq!(s.finished_at.as_deref(), Some(s.started_at.as_str()));
        assert!(
            never_started_reason(RollbackOperation::Delete).contains("delete the stack by hand")
        );
        assert_eq!(success_reason(RollbackOperation::Restore), RESTORED_REASON);
        let token = client_token("exec-1", "App");
        assert!(token.starts_with("sw-rollback-"), "{token}");
        assert_ne!(token, client_token("exec-2", "App"));
        assert_ne!(token, client_token("exec-1", "Api"));
    }
}
