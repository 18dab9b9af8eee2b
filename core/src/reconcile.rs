//! The pure rules of the stack lifecycle (docs/design.md, "Stack lifecycle").
//!
//! deploy-stack asks [`start`] what to do with a stack as it finds it; check observes every
//! unsettled stack of a wave and asks [`advance`] for the next step and the updated record.
//! The handlers do the AWS calls; every decision is here, tested without AWS.

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

use crate::record::{Action, Operation, Phase, RootCause, StackRecord};
use crate::status::{classify, execution_outcome, Outcome, StatusClass};

/// Prefix of every change set and token stackwave makes. Both must start with a letter.
pub const NAME_PREFIX: &str = "sw-";

/// Token operation for ExecuteChangeSet (the record's `client_token`).
pub const OP_EXECUTE: &str = "execute";
/// Token operation for deleting a ROLLBACK_COMPLETE leftover.
pub const OP_DELETE: &str = "delete";
/// Token operation for ContinueUpdateRollback on an UPDATE_ROLLBACK_FAILED stack.
pub const OP_CONTINUE: &str = "continue";
/// Token operation for CancelUpdateStack on a stack past its timeout.
pub const OP_CANCEL: &str = "cancel";

/// Reasons of resource events that are a consequence of another failure, not its cause.
pub const CANCELLED_REASONS: &[&str] =
    &["Resource creation cancelled", "Resource update cancelled"];

/// Resource type named in the root cause of a change set that failed to be created.
pub const CHANGE_SET_RESOURCE_TYPE: &str = "AWS::CloudFormation::ChangeSet";

/// 24 hex characters of sha256 over the parts, joined by newlines.
fn hash24(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b"\n");
        }
        h.update(p.as_bytes());
    }
    let digest = h.finalize();
    hex::encode(&digest[..12])
}

/// The change set's name for this execution and stack: `sw-` + 24 hex characters. It starts
/// with a letter and is far below the 128-character limit. Also used as CreateChangeSet's
/// ClientToken, so a retried deploy-stack makes no second change set.
pub fn change_set_name(execution_name: &str, stack: &str) -> String {
    format!("{NAME_PREFIX}{}", hash24(&[execution_name, stack]))
}

/// The ClientRequestToken of one operation (`op`: [`OP_EXECUTE`], [`OP_DELETE`], ...) on a stack
/// in this execution: `sw-<op>-<24 hex>`. Only letters, digits and hyphens; at most 128 chars.
pub fn client_token(execution_name: &str, stack: &str, op: &str) -> String {
    let op: String = op
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(32)
        .collect();
    format!(
        "{NAME_PREFIX}{op}-{}",
        hash24(&[execution_name, stack, &op])
    )
}

/// A record timestamp: RFC 3339, UTC, milliseconds.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parse a record timestamp.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Does a change set's status reason say it holds no changes?
///
/// AWS reports a change set without changes only as status FAILED with this reason text (there
/// is no code or flag), and the emulator as a ValidationError whose only distinguishing part is
/// its message. Matching text is therefore the one way, and confined to this function.
pub fn is_no_change_reason(reason: &str) -> bool {
    reason.contains("didn't contain changes") || reason.contains("No updates are to be performed")
}

// ---------------------------------------------------------------------------------------------
// deploy-stack: what to start

/// What deploy-stack starts, given the stack's current status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// Absent (or REVIEW_IN_PROGRESS, or DELETE_COMPLETE): a CREATE change set.
    Create,
    /// A stable stack: snapshot it, then an UPDATE change set.
    Update,
    /// ROLLBACK_COMPLETE left by an earlier failed create: DeleteStack, then create. The only
    /// delete of the deployment path (see [`may_delete`]).
    DeleteLeftover,
    /// DELETE_IN_PROGRESS (our own delete, seen by a retried invoke, or someone else's): wait for
    /// the delete to finish, then create.
    AwaitDelete,
    /// UPDATE_ROLLBACK_FAILED: ContinueUpdateRollback; once UPDATE_ROLLBACK_COMPLETE, snapshot and
    /// update as usual.
    ContinueRollback,
    /// Another operation runs on the stack (`*_IN_PROGRESS`): wait for it to settle, within the
    /// stack's timeout, then start what the settled status calls for.
    WaitForOther,
    /// The stack cannot be deployed as it is.
    Refuse { cause: String, fix: String },
}

/// The deletion rule: stackwave never deletes a stack that has ever completed successfully,
/// except a stack this same run created (run-level rollback deletes those).
///
/// The one status that proves a stack never completed is ROLLBACK_COMPLETE: its create failed
/// and CloudFormation removed what it had made, so the stack holds nothing and can only be
/// deleted. Every other status either is or may follow a completed create (UPDATE_*, IMPORT_*,
/// DELETE_FAILED, …) or may hold resources (ROLLBACK_FAILED, CREATE_FAILED): those are never
/// deleted unless this run created the stack.
pub fn may_delete(status: &str, created_by_this_run: bool) -> bool {
    created_by_this_run || classify(status) == StatusClass::RollbackComplete
}

/// Decide what deploy-stack starts. `status` is `None` when the stack does not exist.
///
/// An `*_IN_PROGRESS` stack seen here was not started by this run: deploy-stack finds no record
/// of this run for the stack (a retried invoke returns the record and starts nothing), and the
/// only operation it starts before writing the record is a delete (DELETE_IN_PROGRESS, awaited)
/// or a ContinueUpdateRollback (UPDATE_ROLLBACK_IN_PROGRESS: waiting for it to settle and then
/// deciding from the settled status is right whoever started it).
pub fn start(status: Option<&str>) -> Start {
    let Some(status) = status else {
        return Start::Create;
    };
    match classify(status) {
        StatusClass::ReviewInProgress | StatusClass::Deleted => Start::Create,
        StatusClass::Succeeded | StatusClass::RolledBack => Start::Update,
        StatusClass::RollbackComplete if may_delete(status, false) => Start::DeleteLeftover,
        StatusClass::InProgress if status == "DELETE_IN_PROGRESS" => Start::AwaitDelete,
        StatusClass::InProgress => Start::WaitForOther,
        StatusClass::UpdateRollbackFailed => Start::ContinueRollback,
        StatusClass::Failed if status == "UPDATE_FAILED" => Start::Refuse {
            cause: format!("it is {status}: an earlier update failed with rollback disabled"),
            fix: "roll the stack back (RollbackStack) or fix and continue it, then run the deployment again".into(),
        },
        StatusClass::Failed => Start::Refuse {
            cause: format!("it is {status}: an earlier operation left it broken"),
            fix: "look at the stack's events, delete the stack (retaining resources that cannot be deleted), \
                  then run the deployment again"
                .into(),
        },
        StatusClass::RollbackComplete => Start::Refuse {
            cause: format!("it is {status}, and stackwave never deletes a stack it did not prove empty"),
            fix: "delete the stack by hand, then run the deployment again".into(),
        },
        StatusClass::Unknown => Start::Refuse {
            cause: format!("it is in status {status}, which stackwave does not know"),
            fix: "bring the stack to a stable status, then run the deployment again".into(),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// check: observe and advance

/// What DescribeStacks said about a stack.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StackState {
    pub status: String,
    pub reason: Option<String>,
    pub outputs: Vec<(String, String)>,
}

/// The stack as check saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackView {
    /// Not asked this time (a record waiting for its change set needs only the change set).
    NotObserved,
    /// The stack does not exist (or is deleted).
    Absent,
    Present(StackState),
}

/// What DescribeChangeSet said.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChangeSetState {
    /// CREATE_PENDING, CREATE_IN_PROGRESS, CREATE_COMPLETE, DELETE_*, FAILED.
    pub status: String,
    /// UNAVAILABLE, AVAILABLE, EXECUTE_IN_PROGRESS, EXECUTE_COMPLETE, EXECUTE_FAILED, OBSOLETE.
    pub execution_status: Option<String>,
    pub reason: Option<String>,
}

/// One observation of one stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub stack: StackView,
    /// The run's change set; `None` when not asked or not found.
    pub change_set: Option<ChangeSetState>,
    pub now: DateTime<Utc>,
}

/// The next step for a stack. The record returned beside it already reflects the step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do: the operation runs; look again at the next check.
    Wait,
    /// The change set is ready: ExecuteChangeSet with the record's ClientRequestToken.
    ExecuteChangeSet,
    /// The stack is absent (the leftover is deleted, or another operation left none):
    /// CreateChangeSet (CREATE).
    CreateChangeSet,
    /// The stack is stable again (UPDATE_ROLLBACK_COMPLETE after ContinueUpdateRollback, or
    /// another operation settled): snapshot it, then CreateChangeSet (UPDATE).
    UpdateChangeSet,
    /// Another operation settled leaving a ROLLBACK_COMPLETE stack: DeleteStack with the delete
    /// token (allowed by [`may_delete`]), then create.
    DeleteLeftover,
    /// Another operation settled leaving UPDATE_ROLLBACK_FAILED: ContinueUpdateRollback with the
    /// continue token.
    ContinueRollback,
    /// The change set holds no changes: delete it; the stack is `unchanged`.
    DeleteChangeSet,
    /// The stack settled with this action.
    Settle { action: Action, reason: String },
    /// Past `timeoutMinutes` while UPDATE_IN_PROGRESS: CancelUpdateStack with the cancel token.
    /// The record is `cancelling_timeout`; it settles once CloudFormation has rolled back.
    CancelUpdate,
    /// Past `timeoutMinutes` with nothing to cancel: settled failed at once, the reason
    /// (`StackTimeout: …`) naming the status.
    Timeout,
}

/// The result of [`advance`].
#[derive(Debug, Clone, PartialEq)]
pub struct Advance {
    pub step: Step,
    pub record: StackRecord,
    /// The stack failed through a stack operation: fetch its events and pass them to
    /// [`apply_events`] with this ClientRequestToken to find the root cause.
    pub fetch_events_token: Option<String>,
    /// The stack timed out during this run's operation: fetch its events and pass them to
    /// [`hanging_resource`] with this ClientRequestToken to name what hangs.
    pub hanging_events_token: Option<String>,
}

fn settle(record: &mut StackRecord, action: Action, reason: String, now: DateTime<Utc>) -> Step {
    record.phase = Phase::Done;
    record.action = action;
    record.reason = reason.clone();
    record.finished_at = Some(timestamp(now));
    Step::Settle { action, reason }
}

fn succeeded_action(op: Operation) -> Action {
    match op {
        Operation::Create | Operation::Recreate => Action::Created,
        Operation::Update => Action::Updated,
    }
}

/// Has the record run past its timeout at `now`? The timeout counts from `startedAt`, when
/// deploy-stack first looked at the stack: waiting for another operation and continuing a
/// failed rollback count toward it.
pub fn timed_out(record: &StackRecord, now: DateTime<Utc>) -> bool {
    past(record, now, 1)
}

/// Seconds from `now` to the record's next timeout deadline (1×, then 2× `timeoutMinutes`
/// since `startedAt`: the timeout, then giving up on a cancel), so that a run parked for a
/// CloudFormation event still looks at the stack when its timeout runs out. `None` once both
/// have passed, or when `startedAt` does not parse.
pub fn seconds_to_deadline(record: &StackRecord, now: DateTime<Utc>) -> Option<u64> {
    let start = parse_timestamp(&record.started_at)?;
    [1, 2].into_iter().find_map(|factor| {
        let deadline =
            start + chrono::Duration::minutes(i64::from(record.timeout_minutes) * factor);
        u64::try_from((deadline - now).num_seconds())
            .ok()
            .filter(|s| *s > 0)
    })
}

/// Past `factor` × `timeoutMinutes` since `startedAt`?
fn past(record: &StackRecord, now: DateTime<Utc>, factor: i64) -> bool {
    parse_timestamp(&record.started_at).is_some_and(|start| {
        now - start >= chrono::Duration::minutes(i64::from(record.timeout_minutes) * factor)
    })
}

/// The fix named by every `StackTimeout` reason.
pub const TIMEOUT_FIX: &str =
    "raise timeoutMinutes for this stack in the manifest, or find what hangs \
     (the root cause names the resource still in progress, when there was one)";

/// Advance a record by one observation.
///
/// - `deleting_leftover`: stack absent/DELETE_COMPLETE → CreateChangeSet, `change_set_pending`;
///   DELETE_FAILED (or another failed status) → failed (events with the delete token).
/// - `waiting_for_other`: still `*_IN_PROGRESS` → wait; settled → this run's operation, decided
///   by [`start`] on the settled status (create, update, delete a ROLLBACK_COMPLETE leftover,
///   continue a failed rollback, or refuse).
/// - `continuing_rollback`: UPDATE_ROLLBACK_COMPLETE → snapshot and UPDATE change set;
///   UPDATE_ROLLBACK_FAILED again → failed with the reason and the fix (events with the
///   continue token).
/// - `change_set_pending`: change set CREATE_COMPLETE and AVAILABLE → ExecuteChangeSet,
///   `executing`; already EXECUTE_* (a retried check) → `executing`; OBSOLETE → failed;
///   FAILED with a no-change reason → DeleteChangeSet, `unchanged`; FAILED otherwise → failed
///   with the change set's reason as root cause.
/// - `executing`: CREATE/UPDATE/IMPORT_COMPLETE → created/updated (recreate → created) with the
///   outputs; a failed terminal status (ROLLBACK_COMPLETE, UPDATE_ROLLBACK_COMPLETE, *_FAILED,
///   DELETE_COMPLETE) → failed (events with the execute token); stack gone → failed.
/// - `cancelling_timeout`: UPDATE_ROLLBACK_COMPLETE → failed, `StackTimeout`; UPDATE_ROLLBACK_FAILED
///   → failed, `StackTimeout`, with the rollback's failure (events with the cancel token);
///   UPDATE_COMPLETE (the update finished before the cancel took effect) → updated.
/// - anything still waiting past `timeoutMinutes` → UPDATE_IN_PROGRESS of this run's change set:
///   [`Step::CancelUpdate`], `cancelling_timeout`; anything else: [`Step::Timeout`], settled failed
///   at once (no cancel exists for it). A cancel whose rollback outlasts a second
///   `timeoutMinutes` is settled failed too.
/// - `done`: nothing.
pub fn advance(record: &StackRecord, obs: &Observation) -> Advance {
    let mut rec = record.clone();
    let now = obs.now;
    if let StackView::Present(s) = &obs.stack {
        rec.status = Some(s.status.clone());
    }
    let mut fetch_events_token = None;
    let step = match record.phase {
        Phase::Done => Step::Wait,
        Phase::DeletingLeftover => match &obs.stack {
            StackView::NotObserved => Step::Wait,
            StackView::Absent => {
                rec.phase = Phase::ChangeSetPending;
                Step::CreateChangeSet
            }
            StackView::Present(s) => match classify(&s.status) {
                StatusClass::Deleted => {
                    rec.phase = Phase::ChangeSetPending;
                    Step::CreateChangeSet
                }
                StatusClass::Failed | StatusClass::UpdateRollbackFailed => {
                    fetch_events_token = Some(client_token_of(record, OP_DELETE));
                    let why = match trimmed(s.reason.as_deref()) {
                        r if r.is_empty() => s.status.clone(),
                        r => r,
                    };
                    settle(
                        &mut rec,
                        Action::Failed,
                        format!(
                            "the ROLLBACK_COMPLETE leftover of an earlier failed create could not be deleted \
                             ({}): {why}. Fix: delete the stack by hand, then run the deployment again",
                            s.status
                        ),
                        now,
                    )
                }
                _ => Step::Wait,
            },
        },
        Phase::WaitingForOther => match &obs.stack {
            StackView::NotObserved => Step::Wait,
            StackView::Absent => begin(&mut rec, start(None), now),
            StackView::Present(s) if classify(&s.status) == StatusClass::InProgress => Step::Wait,
            StackView::Present(s) => begin(&mut rec, start(Some(&s.status)), now),
        },
        Phase::ContinuingRollback => match &obs.stack {
            StackView::NotObserved => Step::Wait,
            StackView::Absent => settle(
                &mut rec,
                Action::Failed,
                "the stack disappeared while its failed rollback was being continued (deleted by someone else?). \
                 Fix: run the deployment again to create it"
                    .into(),
                now,
            ),
            StackView::Present(s) => match classify(&s.status) {
                StatusClass::InProgress => Step::Wait,
                StatusClass::UpdateRollbackFailed => {
                    fetch_events_token = Some(client_token_of(record, OP_CONTINUE));
                    let why = trimmed(s.reason.as_deref());
                    settle(
                        &mut rec,
                        Action::Failed,
                        format!(
                            "UPDATE_ROLLBACK_FAILED again after ContinueUpdateRollback: {why}. Fix: fix the \
                             resources named in the root cause by hand (or skip them: ContinueUpdateRollback \
                             with ResourcesToSkip) until the stack is UPDATE_ROLLBACK_COMPLETE, then run the \
                             deployment again"
                        ),
                        now,
                    )
                }
                // UPDATE_ROLLBACK_COMPLETE, or whatever someone else made of it meanwhile.
                _ => begin(&mut rec, start(Some(&s.status)), now),
            },
        },
        Phase::ChangeSetPending => match &obs.change_set {
            None => Step::Wait,
            Some(cs) => advance_change_set(&mut rec, cs, now),
        },
        Phase::Executing => match &obs.stack {
            StackView::NotObserved => Step::Wait,
            StackView::Absent => settle(
                &mut rec,
                Action::Failed,
                "the stack disappeared while its change set was executing (deleted by someone else?)".into(),
                now,
            ),
            StackView::Present(s) => match execution_outcome(&s.status) {
                Outcome::Pending => Step::Wait,
                Outcome::Succeeded => {
                    rec.outputs = s.outputs.clone();
                    settle(&mut rec, succeeded_action(record.operation), String::new(), now)
                }
                Outcome::Failed => {
                    fetch_events_token = Some(record.client_token.clone());
                    let reason = match &s.reason {
                        Some(r) if !r.is_empty() => format!("{}: {r}", s.status),
                        _ => s.status.clone(),
                    };
                    settle(&mut rec, Action::Failed, reason, now)
                }
            },
        },
        Phase::CancellingTimeout => match &obs.stack {
            StackView::NotObserved => Step::Wait,
            StackView::Absent => settle(
                &mut rec,
                Action::Failed,
                format!(
                    "StackTimeout: stack {} did not settle within its timeoutMinutes ({}); after the update \
                     was cancelled the stack disappeared (deleted by someone else?). Fix: {TIMEOUT_FIX}",
                    record.stack, record.timeout_minutes
                ),
                now,
            ),
            StackView::Present(s) => match (s.status.as_str(), classify(&s.status)) {
                ("UPDATE_ROLLBACK_COMPLETE", _) => {
                    // A failure of the update itself (rather than the cancel) is the root cause.
                    fetch_events_token = Some(record.client_token.clone());
                    settle(
                        &mut rec,
                        Action::Failed,
                        format!(
                            "StackTimeout: stack {} was still UPDATE_IN_PROGRESS after its timeoutMinutes \
                             ({}); the update was cancelled (CancelUpdateStack) and CloudFormation rolled the \
                             stack back to its previous template and parameters (UPDATE_ROLLBACK_COMPLETE). \
                             Fix: {TIMEOUT_FIX}",
                            record.stack, record.timeout_minutes
                        ),
                        now,
                    )
                }
                (_, StatusClass::UpdateRollbackFailed) => {
                    fetch_events_token = Some(client_token_of(record, OP_CANCEL));
                    let why = trimmed(s.reason.as_deref());
                    settle(
                        &mut rec,
                        Action::Failed,
                        format!(
                            "StackTimeout: stack {} was still UPDATE_IN_PROGRESS after its timeoutMinutes ({}); \
                             the update was cancelled, but the rollback that followed failed \
                             (UPDATE_ROLLBACK_FAILED: {why}). Fix: {TIMEOUT_FIX}; the next deployment continues \
                             the failed rollback itself (ContinueUpdateRollback) once the resources named in \
                             the stack's events can be rolled back",
                            record.stack, record.timeout_minutes
                        ),
                        now,
                    )
                }
                (_, StatusClass::Succeeded) => {
                    rec.outputs = s.outputs.clone();
                    settle(
                        &mut rec,
                        succeeded_action(record.operation),
                        format!(
                            "completed after its timeoutMinutes ({}), before the cancel took effect",
                            record.timeout_minutes
                        ),
                        now,
                    )
                }
                (_, StatusClass::InProgress) => Step::Wait,
                (status, _) => {
                    fetch_events_token = Some(record.client_token.clone());
                    settle(
                        &mut rec,
                        Action::Failed,
                        format!(
                            "StackTimeout: stack {} did not settle within its timeoutMinutes ({}); the update \
                             was cancelled and the stack ended {status}. Fix: {TIMEOUT_FIX}",
                            record.stack, record.timeout_minutes
                        ),
                        now,
                    )
                }
            },
        },
    };
    let mut hanging_events_token = None;
    let step = if step == Step::Wait && rec.phase != Phase::Done {
        match timeout_step(record, &mut rec, now) {
            Some(timeout) => {
                if record.phase == Phase::Executing {
                    hanging_events_token = Some(record.client_token.clone());
                }
                timeout
            }
            None => step,
        }
    } else {
        step
    };
    Advance {
        step,
        record: rec,
        fetch_events_token,
        hanging_events_token,
    }
}

/// A status reason without its trailing space and period (CloudFormation ends its lists of
/// failed resources with ". "), to sit inside a sentence.
fn trimmed(reason: Option<&str>) -> String {
    reason
        .unwrap_or_default()
        .trim_end()
        .trim_end_matches('.')
        .to_string()
}

/// At most this many characters of a Lambda-level error's cause go into a stack's reason.
const MAX_LAMBDA_CAUSE: usize = 500;

/// The record transition of a stack that deploy-stack did not start: its invocation failed at
/// Lambda level past its retries (`error`, as the state machine caught it) before it wrote a
/// record, or the error is unknown (`None`: the scheduling step found the stack asked to start
/// and without a record). The record is settled failed with the error, its cause and the fix,
/// so the summary and the alert name them and nothing new starts.
pub fn not_started(
    record: &mut StackRecord,
    error: Option<&crate::io::CaughtError>,
    now: DateTime<Utc>,
) -> Step {
    let name = record.stack.clone();
    let reason = match error {
        None => format!(
            "deploy-stack did not start stack {name}: its invocation failed past its retries \
             (the execution's DeployStack state shows the error). Nothing was changed on the \
             stack. Fix: run the deployment again"
        ),
        Some(e) => {
            // A Lambda function's error cause is `{"errorMessage", "errorType", ...}`.
            let message = serde_json::from_str::<serde_json::Value>(&e.cause)
                .ok()
                .and_then(|v| v.get("errorMessage")?.as_str().map(str::to_string))
                .unwrap_or_else(|| e.cause.clone());
            let message: String = message.trim().chars().take(MAX_LAMBDA_CAUSE).collect();
            let cause = if message.is_empty() {
                String::new()
            } else {
                format!(" ({message})")
            };
            let fix = match e.error.as_str() {
                "Sandbox.Timedout"
                | "States.Timeout"
                | "Lambda.ClientExecutionTimeoutException" => {
                    "the deploy-stack function ran out of time: raise its Timeout \
                     (DeployStackFunction in template.yaml), then run the deployment again"
                }
                "Lambda.Unknown" => {
                    "the deploy-stack function may have run out of memory: raise its MemorySize \
                     (DeployStackFunction in template.yaml), then run the deployment again"
                }
                "Throttled" | "Lambda.TooManyRequestsException" => {
                    "AWS throttled the run past its retries: lower maxConcurrency, or raise the \
                     account's Lambda or CloudFormation quota, then run the deployment again"
                }
                _ => "correct what the error names, then run the deployment again",
            };
            format!(
                "deploy-stack failed on stack {name} past its retries with {}{cause}. This run \
                 did not record an operation on the stack: look at the stack in the \
                 CloudFormation console before you deploy again. Fix: {fix}",
                e.error
            )
        }
    };
    settle(record, Action::Failed, reason, now)
}

/// Start this run's operation once the stack is free: the record takes the operation and
/// phase `start` calls for, and the step says what to call.
/// The record transition of a [`Start`] decision, for deploy-stack's first look at a stack
/// and for check's looks at a stack it waited for: the step to carry out next. The one home of
/// these transitions.
pub fn begin(rec: &mut StackRecord, start: Start, now: DateTime<Utc>) -> Step {
    match start {
        Start::Create => {
            rec.operation = Operation::Create;
            rec.phase = Phase::ChangeSetPending;
            Step::CreateChangeSet
        }
        Start::Update => {
            rec.operation = Operation::Update;
            rec.phase = Phase::ChangeSetPending;
            Step::UpdateChangeSet
        }
        Start::DeleteLeftover => {
            rec.operation = Operation::Recreate;
            rec.phase = Phase::DeletingLeftover;
            Step::DeleteLeftover
        }
        Start::ContinueRollback => {
            rec.operation = Operation::Update;
            rec.phase = Phase::ContinuingRollback;
            Step::ContinueRollback
        }
        // A delete runs (a retried invoke's own, or someone else's): once the stack is gone it
        // is created, as after a leftover's delete.
        Start::AwaitDelete => {
            rec.operation = Operation::Recreate;
            rec.phase = Phase::DeletingLeftover;
            Step::Wait
        }
        // Another operation runs: an update until the settled status says otherwise (a
        // run-level rollback never deletes a stack whose operation is an update).
        Start::WaitForOther => {
            rec.operation = Operation::Update;
            rec.phase = Phase::WaitingForOther;
            Step::Wait
        }
        Start::Refuse { cause, fix } => settle(
            rec,
            Action::Failed,
            format!("the stack cannot be deployed: {cause}. Fix: {fix}"),
            now,
        ),
    }
}

/// What to do with a record still waiting at `now`, if it is past its deadline: cancel an
/// update of this run, or settle failed at once naming the status that cannot be cancelled.
fn timeout_step(record: &StackRecord, rec: &mut StackRecord, now: DateTime<Utc>) -> Option<Step> {
    let stack = &record.stack;
    let minutes = record.timeout_minutes;
    let status = rec.status.clone().unwrap_or_else(|| "unknown".into());
    if record.phase == Phase::CancellingTimeout {
        // The cancel's rollback gets a second timeoutMinutes; nothing more can be cancelled.
        if !past(record, now, 2) {
            return None;
        }
        settle(
            rec,
            Action::Failed,
            format!(
                "StackTimeout: stack {stack} was still UPDATE_IN_PROGRESS after its timeoutMinutes ({minutes}); \
                 the update was cancelled, but the rollback that followed has not finished within another \
                 {minutes} minutes (still {status}) and cannot be cancelled. Fix: {TIMEOUT_FIX}; watch the \
                 stack until it settles before deploying it again"
            ),
            now,
        );
        return Some(Step::Timeout);
    }
    if !timed_out(record, now) {
        return None;
    }
    let reason = match record.phase {
        Phase::Executing if status == "UPDATE_IN_PROGRESS" => {
            rec.phase = Phase::CancellingTimeout;
            return Some(Step::CancelUpdate);
        }
        // Already rolling back (after this run's cancel, whose record write was lost, or after
        // its own failure): nothing to cancel; settle once the rollback has finished.
        Phase::Executing
            if matches!(
                status.as_str(),
                "UPDATE_ROLLBACK_IN_PROGRESS" | "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS"
            ) =>
        {
            rec.phase = Phase::CancellingTimeout;
            return Some(Step::Wait);
        }
        Phase::WaitingForOther => format!(
            "StackTimeout: stack {stack} waited its timeoutMinutes ({minutes}) for another operation, not \
             started by this run, to finish (still {status}); this run changed nothing on it. Fix: find who \
             runs that operation and let it finish (or stop it), or raise timeoutMinutes for this stack in the \
             manifest"
        ),
        Phase::ChangeSetPending => format!(
            "StackTimeout: stack {stack}'s change set was not ready within its timeoutMinutes ({minutes}); \
             nothing was executed. Fix: {TIMEOUT_FIX}"
        ),
        // This run's create: no cancel exists, but a delete stops it (`rollback::wanted`).
        Phase::Executing if status == "CREATE_IN_PROGRESS" => format!(
            "StackTimeout: stack {stack} did not settle within its timeoutMinutes ({minutes}): it is still \
             CREATE_IN_PROGRESS, which cannot be cancelled; the run-level rollback (onFailure: rollback) \
             deletes it, with onFailure: retain CloudFormation carries on with it. Fix: {TIMEOUT_FIX}"
        ),
        _ => format!(
            "StackTimeout: stack {stack} did not settle within its timeoutMinutes ({minutes}): it is still \
             {status}, which cannot be cancelled (CancelUpdateStack only cancels UPDATE_IN_PROGRESS), so \
             CloudFormation carries on with it. Fix: {TIMEOUT_FIX}"
        ),
    };
    settle(rec, Action::Failed, reason, now);
    Some(Step::Timeout)
}

/// The ClientRequestToken of an operation on the record's stack. The record keeps only the
/// execute token (itself derived from the execution and the stack); the others derive from it,
/// so deploy-stack and check compute the same token without the execution name.
pub fn client_token_of(record: &StackRecord, op: &str) -> String {
    if op == OP_EXECUTE {
        record.client_token.clone()
    } else {
        client_token(&record.client_token, &record.stack, op)
    }
}

fn advance_change_set(rec: &mut StackRecord, cs: &ChangeSetState, now: DateTime<Utc>) -> Step {
    let reason = cs.reason.clone().unwrap_or_default();
    match cs.status.as_str() {
        "CREATE_COMPLETE" => match cs.execution_status.as_deref() {
            None | Some("AVAILABLE") => {
                rec.phase = Phase::Executing;
                Step::ExecuteChangeSet
            }
            // Executed by an earlier check whose record write was lost: just follow the stack.
            Some("EXECUTE_IN_PROGRESS" | "EXECUTE_COMPLETE" | "EXECUTE_FAILED") => {
                rec.phase = Phase::Executing;
                Step::Wait
            }
            Some("OBSOLETE") => {
                rec.root_cause = Some(change_set_cause(
                    rec,
                    "OBSOLETE",
                    "the stack changed after the change set was made",
                ));
                settle(
                    rec,
                    Action::Failed,
                    "the change set is obsolete: the stack was changed by someone else after it was made. \
                     Fix: run the deployment again"
                        .into(),
                    now,
                )
            }
            Some(_) => Step::Wait,
        },
        "FAILED" if is_no_change_reason(&reason) => {
            settle(rec, Action::Unchanged, "no changes".into(), now);
            Step::DeleteChangeSet
        }
        "FAILED" => {
            rec.root_cause = Some(change_set_cause(rec, "FAILED", &reason));
            settle(
                rec,
                Action::Failed,
                format!("change set failed: {reason}. Fix: correct the template or parameters, then run again"),
                now,
            )
        }
        s if s.starts_with("DELETE_") => settle(
            rec,
            Action::Failed,
            format!(
                "the change set was deleted ({s}) before it ran. Fix: run the deployment again"
            ),
            now,
        ),
        _ => Step::Wait,
    }
}

fn change_set_cause(rec: &StackRecord, status: &str, reason: &str) -> RootCause {
    RootCause {
        logical_id: rec.change_set_name.clone(),
        resource_type: CHANGE_SET_RESOURCE_TYPE.into(),
        status: status.into(),
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Root cause

/// A stack event (DescribeStackEvents), without AWS types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackEvent {
    pub stack_name: String,
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: Option<String>,
    pub timestamp: DateTime<Utc>,
    pub client_request_token: Option<String>,
}

/// Is the event part of this operation? Its ClientRequestToken decides when it has one;
/// otherwise it counts when it happened at or after `since`.
fn of_operation(e: &StackEvent, token: Option<&str>, since: DateTime<Utc>) -> bool {
    match (token, e.client_request_token.as_deref()) {
        (Some(ours), Some(theirs)) if !theirs.is_empty() => ours == theirs,
        _ => e.timestamp >= since,
    }
}

/// Events oldest first. AWS lists them newest first, so ties keep AWS's order reversed.
fn oldest_first(events: &[StackEvent]) -> Vec<&StackEvent> {
    let mut v: Vec<&StackEvent> = events.iter().rev().collect();
    v.sort_by_key(|e| e.timestamp);
    v
}

/// The root cause of a failed operation: the first (oldest) `*_FAILED` resource event (its
/// logical id is not the stack's name) of this operation, skipping the cancellations that
/// follow a failure ("Resource creation cancelled", "Resource update cancelled").
///
/// `events` in AWS's order (newest first) or any order; `token` the operation's
/// ClientRequestToken; `since` when the operation started.
pub fn root_cause(
    events: &[StackEvent],
    token: Option<&str>,
    since: DateTime<Utc>,
) -> Option<RootCause> {
    oldest_first(events)
        .into_iter()
        .filter(|e| of_operation(e, token, since))
        .filter(|e| e.logical_id != e.stack_name)
        .filter(|e| e.status.ends_with("_FAILED"))
        .find(|e| {
            let reason = e.reason.as_deref().unwrap_or_default();
            !CANCELLED_REASONS.iter().any(|c| reason.contains(c))
        })
        .map(|e| RootCause {
            logical_id: e.logical_id.clone(),
            resource_type: e.resource_type.clone(),
            status: e.status.clone(),
            reason: e.reason.clone().unwrap_or_default(),
        })
}

/// What hangs: the resource of this operation that has been `*_IN_PROGRESS` the longest (its
/// newest event of this operation is `*_IN_PROGRESS`), as the root cause of a `StackTimeout`.
/// `None` when no resource is in progress (the stack itself is slow, e.g. in cleanup).
pub fn hanging_resource(
    events: &[StackEvent],
    token: Option<&str>,
    since: DateTime<Utc>,
    timeout_minutes: u32,
) -> Option<RootCause> {
    let mut latest: Vec<&StackEvent> = Vec::new();
    for e in oldest_first(events)
        .into_iter()
        .filter(|e| of_operation(e, token, since))
        .filter(|e| e.logical_id != e.stack_name)
    {
        match latest.iter_mut().find(|l| l.logical_id == e.logical_id) {
            Some(l) => *l = e,
            None => latest.push(e),
        }
    }
    // Of the resources still in progress, the one in progress the longest.
    latest
        .into_iter()
        .filter(|e| e.status.ends_with("_IN_PROGRESS"))
        .min_by_key(|e| e.timestamp)
        .map(|e| RootCause {
            logical_id: e.logical_id.clone(),
            resource_type: e.resource_type.clone(),
            status: e.status.clone(),
            reason: format!(
                "still {} when the stack's timeoutMinutes ({timeout_minutes}) ran out (since {})",
                e.status,
                timestamp(e.timestamp)
            ),
        })
}

/// When the operation settled: the newest stack-level event of this operation with a terminal
/// status.
pub fn settled_at(
    events: &[StackEvent],
    token: Option<&str>,
    since: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    events
        .iter()
        .filter(|e| of_operation(e, token, since))
        .filter(|e| e.logical_id == e.stack_name && crate::status::is_terminal(&e.status))
        .map(|e| e.timestamp)
        .max()
}

/// Complete a failed record with its events: the root cause and, when known, the time the
/// stack settled (else `finished_at` stays as set).
pub fn apply_events(record: &mut StackRecord, events: &[StackEvent], token: &str) {
    let since = parse_timestamp(&record.started_at).unwrap_or(DateTime::<Utc>::MIN_UTC);
    if let Some(cause) = root_cause(events, Some(token), since) {
        record.root_cause = Some(cause);
    }
    if let Some(t) = settled_at(events, Some(token), since) {
        record.finished_at = Some(timestamp(t));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0)
            .single()
            .expect("valid time")
    }

    fn record(phase: Phase, op: Operation) -> StackRecord {
        StackRecord {
            stack: "App".into(),
            stage: "s1".into(),
            operation: op,
            phase,
            action: Action::InProgress,
            change_set_name: change_set_name("exec-1", "App"),
            client_token: client_token("exec-1", "App", OP_EXECUTE),
            parameters: vec![],
            secrets: vec![],
            started_at: timestamp(t(0)),
            finished_at: None,
            status: None,
            reason: String::new(),
            root_cause: None,
            outputs: vec![],
            snapshot: None,
            timeout_minutes: 60,
            rollback: None,
        }
    }

    #[test]
    fn a_stack_deploy_stack_did_not_start_is_failed_with_the_error_cause_and_fix() {
        let caught = |error: &str, cause: &str| crate::io::CaughtError {
            error: error.into(),
            cause: cause.into(),
        };
        let mut rec = record(Phase::ChangeSetPending, Operation::Create);
        let step = not_started(
            &mut rec,
            Some(&caught(
                "Sandbox.Timedout",
                r#"{"errorMessage":"Task timed out after 60.00 seconds","errorType":"Sandbox.Timedout"}"#,
            )),
            t(5),
        );
        assert_eq!(rec.phase, Phase::Done);
        assert_eq!(rec.action, Action::Failed);
        assert_eq!(rec.finished_at.as_deref(), Some(timestamp(t(5)).as_str()));
        assert!(
            rec.reason.starts_with(
                "deploy-stack failed on stack App past its retries with Sandbox.Timedout \
                 (Task timed out after 60.00 seconds)."
            ),
            "{}",
            rec.reason
        );
        assert!(rec.reason.contains("raise its Timeout"), "{}", rec.reason);
        assert!(matches!(
            step,
            Step::Settle {
                action: Action::Failed,
                ..
            }
        ));

        // Out of memory: no cause; a cause that is not JSON is kept as it is, and bounded.
        let mut rec = record(Phase::ChangeSetPending, Operation::Create);
        not_started(&mut rec, Some(&caught("Lambda.Unknown", "")), t(5));
        assert!(
            rec.reason.contains("with Lambda.Unknown. This run"),
            "{}",
            rec.reason
        );
        assert!(
            rec.reason.contains("raise its MemorySize"),
            "{}",
            rec.reason
        );
        let mut rec = record(Phase::ChangeSetPending, Operation::Create);
        let long = "x".repeat(5_000);
        not_started(
            &mut rec,
            Some(&caught("Lambda.ServiceException", &long)),
            t(5),
        );
        assert!(rec.reason.len() < 1_000, "{}", rec.reason.len());
        assert!(
            rec.reason.contains("correct what the error names"),
            "{}",
            rec.reason
        );

        // The error is not known: the scheduling step found no record.
        let mut rec = record(Phase::ChangeSetPending, Operation::Create);
        not_started(&mut rec, None, t(5));
        assert_eq!(rec.action, Action::Failed);
        assert!(rec
            .reason
            .starts_with("deploy-stack did not start stack App"));
        assert!(rec.reason.contains("Fix: run the deployment again"));
    }

    fn present(status: &str) -> StackView {
        StackView::Present(StackState {
            status: status.into(),
            reason: None,
            outputs: vec![],
        })
    }

    fn obs(stack: StackView, cs: Option<ChangeSetState>, now: i64) -> Observation {
        Observation {
            stack,
            change_set: cs,
            now: t(now),
        }
    }

    fn cs(status: &str, exec: Option<&str>, reason: Option<&str>) -> ChangeSetState {
        ChangeSetState {
            status: status.into(),
            execution_status: exec.map(str::to_string),
            reason: reason.map(str::to_string),
        }
    }

    fn ev(
        logical: &str,
        status: &str,
        reason: Option<&str>,
        secs: i64,
        token: Option<&str>,
    ) -> StackEvent {
        StackEvent {
            stack_name: "App".into(),
            logical_id: logical.into(),
            resource_type: if logical == "App" {
                "AWS::CloudFormation::Stack".into()
            } else {
                "AWS::S3::Bucket".into()
            },
            status: status.into(),
            reason: reason.map(str::to_string),
            timestamp: t(secs),
            client_request_token: token.map(str::to_string),
        }
    }

    #[test]
    fn names_are_valid_and_stable() {
        let a = change_set_name("exec-1", "App");
        assert_eq!(a, change_set_name("exec-1", "App"));
        assert_ne!(a, change_set_name("exec-2", "App"));
        assert_ne!(a, change_set_name("exec-1", "App2"));
        assert!(a.starts_with("sw-"));
        assert_eq!(a.len(), 3 + 24);
        assert!(a.chars().next().is_some_and(|c| c.is_ascii_alphabetic()));
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));

        let e = client_token("exec-1", "App", OP_EXECUTE);
        let d = client_token("exec-1", "App", OP_DELETE);
        assert_ne!(e, d);
        assert!(e.starts_with("sw-execute-"));
        assert!(e.len() <= 128 && d.len() <= 128);
        assert!(d.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        let weird = client_token("x", "y", "a b/c");
        assert!(weird.starts_with("sw-abc-"));
    }

    #[test]
    fn no_change_reasons() {
        assert!(is_no_change_reason(
            "The submitted information didn't contain changes. Submit different information to create a change set."
        ));
        assert!(is_no_change_reason("No updates are to be performed."));
        assert!(!is_no_change_reason(
            "Template format error: Unresolved resource dependencies [X]"
        ));
    }

    #[test]
    fn start_rules() {
        assert_eq!(start(None), Start::Create);
        assert_eq!(start(Some("REVIEW_IN_PROGRESS")), Start::Create);
        assert_eq!(start(Some("DELETE_COMPLETE")), Start::Create);
        assert_eq!(start(Some("CREATE_COMPLETE")), Start::Update);
        assert_eq!(start(Some("UPDATE_COMPLETE")), Start::Update);
        assert_eq!(start(Some("UPDATE_ROLLBACK_COMPLETE")), Start::Update);
        assert_eq!(start(Some("IMPORT_COMPLETE")), Start::Update);
        assert_eq!(start(Some("ROLLBACK_COMPLETE")), Start::DeleteLeftover);
        assert_eq!(start(Some("DELETE_IN_PROGRESS")), Start::AwaitDelete);
        assert_eq!(
            start(Some("UPDATE_ROLLBACK_FAILED")),
            Start::ContinueRollback
        );
        for s in [
            "UPDATE_IN_PROGRESS",
            "CREATE_IN_PROGRESS",
            "ROLLBACK_IN_PROGRESS",
            "UPDATE_ROLLBACK_IN_PROGRESS",
            "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
            "IMPORT_IN_PROGRESS",
        ] {
            assert_eq!(start(Some(s)), Start::WaitForOther, "{s}");
        }
        for s in [
            "ROLLBACK_FAILED",
            "DELETE_FAILED",
            "UPDATE_FAILED",
            "CREATE_FAILED",
            "WHAT",
        ] {
            match start(Some(s)) {
                Start::Refuse { cause, fix } => {
                    assert!(cause.contains(s), "{cause}");
                    assert!(!fix.is_empty());
                }
                other => panic!("{s}: {other:?}"),
            }
        }
    }

    #[test]
    fn never_deletes_a_stack_that_ever_completed_unless_this_run_created_it() {
        // Only ROLLBACK_COMPLETE proves a stack never completed (its create failed and rolled
        // back, leaving nothing); every other status may follow a completed create or hold
        // resources.
        for s in crate::status::ALL_STACK_STATUSES {
            assert_eq!(may_delete(s, false), *s == "ROLLBACK_COMPLETE", "{s}");
            assert!(may_delete(s, true), "{s}: created by this run");
        }
        // deploy-stack deletes only what the rule allows: DeleteLeftover is the only delete.
        for s in crate::status::ALL_STACK_STATUSES {
            if start(Some(s)) == Start::DeleteLeftover {
                assert!(may_delete(s, false), "{s}");
            }
        }
        // And so does check, once another operation settled.
        for s in crate::status::ALL_STACK_STATUSES {
            let r = record(Phase::WaitingForOther, Operation::Update);
            let a = advance(&r, &obs(present(s), None, 5));
            if a.step == Step::DeleteLeftover {
                assert!(may_delete(s, false), "{s}");
                assert_eq!(a.record.operation, Operation::Recreate);
            }
        }
    }

    #[test]
    fn pending_change_set_ready_executes() {
        let r = record(Phase::ChangeSetPending, Operation::Create);
        let a = advance(
            &r,
            &obs(
                StackView::NotObserved,
                Some(cs("CREATE_COMPLETE", Some("AVAILABLE"), None)),
                5,
            ),
        );
        assert_eq!(a.step, Step::ExecuteChangeSet);
        assert_eq!(a.record.phase, Phase::Executing);
        assert_eq!(a.record.action, Action::InProgress);
    }

    #[test]
    fn pending_change_set_still_creating_waits() {
        let r = record(Phase::ChangeSetPending, Operation::Update);
        for s in ["CREATE_PENDING", "CREATE_IN_PROGRESS"] {
            let a = advance(
                &r,
                &obs(
                    StackView::NotObserved,
                    Some(cs(s, Some("UNAVAILABLE"), None)),
                    5,
                ),
            );
            assert_eq!(a.step, Step::Wait);
            assert_eq!(a.record, r);
        }
        let a = advance(&r, &obs(StackView::NotObserved, None, 5));
        assert_eq!(a.step, Step::Wait);
    }

    #[test]
    fn already_executed_change_set_is_followed() {
        let r = record(Phase::ChangeSetPending, Operation::Update);
        let a = advance(
            &r,
            &obs(
                StackView::NotObserved,
                Some(cs("CREATE_COMPLETE", Some("EXECUTE_IN_PROGRESS"), None)),
                5,
            ),
        );
        assert_eq!(a.step, Step::Wait);
        assert_eq!(a.record.phase, Phase::Executing);
    }

    #[test]
    fn no_change_change_set_is_unchanged() {
        let r = record(Phase::ChangeSetPending, Operation::Update);
        let reason = "The submitted information didn't contain changes. Submit different information to create a change set.";
        let a = advance(
            &r,
            &obs(
                StackView::NotObserved,
                Some(cs("FAILED", Some("UNAVAILABLE"), Some(reason))),
                5,
            ),
        );
        assert_eq!(a.step, Step::DeleteChangeSet);
        assert_eq!(a.record.phase, Phase::Done);
        assert_eq!(a.record.action, Action::Unchanged);
        assert_eq!(
            a.record.finished_at.as_deref(),
            Some(timestamp(t(5)).as_str())
        );
        assert!(a.record.root_cause.is_none());
    }

    #[test]
    fn failed_change_set_fails_with_its_reason() {
        let r = record(Phase::ChangeSetPending, Operation::Create);
        let a = advance(
            &r,
            &obs(
                StackView::NotObserved,
                Some(cs("FAILED", None, Some("Template error: bad ref"))),
                5,
            ),
        );
        assert_eq!(
            a.step,
            Step::Settle {
                action: Action::Failed,
                reason: a.record.reason.clone()
            }
        );
        assert!(a.record.reason.contains("Template error: bad ref"));
        let cause = a.record.root_cause.expect("root cause");
        assert_eq!(cause.resource_type, CHANGE_SET_RESOURCE_TYPE);
        assert_eq!(cause.reason, "Template error: bad ref");
        assert!(a.fetch_events_token.is_none());
    }

    #[test]
    fn obsolete_change_set_fails() {
        let r = record(Phase::ChangeSetPending, Operation::Update);
        let a = advance(
            &r,
            &obs(
                StackView::NotObserved,
                Some(cs("CREATE_COMPLETE", Some("OBSOLETE"), None)),
                5,
            ),
        );
        assert!(matches!(
            a.step,
            Step::Settle {
                action: Action::Failed,
                ..
            }
        ));
    }

    #[test]
    fn executing_in_progress_then_complete() {
        let r = record(Phase::Executing, Operation::Create);
        let a = advance(&r, &obs(present("CREATE_IN_PROGRESS"), None, 5));
        assert_eq!(a.step, Step::Wait);
        assert_eq!(a.record.status.as_deref(), Some("CREATE_IN_PROGRESS"));
        assert_eq!(a.record.phase, Phase::Executing);

        let done = StackView::Present(StackState {
            status: "CREATE_COMPLETE".into(),
            reason: None,
            outputs: vec![("VpcId".into(), "vpc-1".into())],
        });
        let b = advance(&a.record, &obs(done, None, 9));
        assert_eq!(
            b.step,
            Step::Settle {
                action: Action::Created,
                reason: String::new()
            }
        );
        assert_eq!(b.record.phase, Phase::Done);
        assert_eq!(b.record.action, Action::Created);
        assert_eq!(
            b.record.outputs,
            vec![("VpcId".to_string(), "vpc-1".to_string())]
        );
        assert_eq!(
            b.record.finished_at.as_deref(),
            Some(timestamp(t(9)).as_str())
        );
    }

    #[test]
    fn update_and_recreate_actions() {
        let r = record(Phase::Executing, Operation::Update);
        assert_eq!(
            advance(&r, &obs(present("UPDATE_COMPLETE"), None, 5))
                .record
                .action,
            Action::Updated
        );
        let r = record(Phase::Executing, Operation::Recreate);
        assert_eq!(
            advance(&r, &obs(present("CREATE_COMPLETE"), None, 5))
                .record
                .action,
            Action::Created
        );
        // Cleanup still running: not settled yet.
        let r = record(Phase::Executing, Operation::Update);
        assert_eq!(
            advance(
                &r,
                &obs(present("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"), None, 5)
            )
            .step,
            Step::Wait
        );
        // Create change set executed but not visible yet.
        let r = record(Phase::Executing, Operation::Create);
        assert_eq!(
            advance(&r, &obs(present("REVIEW_IN_PROGRESS"), None, 5)).step,
            Step::Wait
        );
    }

    #[test]
    fn executing_failed_statuses_fail_and_ask_for_events() {
        for s in [
            "ROLLBACK_COMPLETE",
            "UPDATE_ROLLBACK_COMPLETE",
            "ROLLBACK_FAILED",
            "UPDATE_ROLLBACK_FAILED",
            "CREATE_FAILED",
        ] {
            let r = record(Phase::Executing, Operation::Create);
            let view = StackView::Present(StackState {
                status: s.into(),
                reason: Some("The following resource(s) failed to create: [Bucket].".into()),
                outputs: vec![],
            });
            let a = advance(&r, &obs(view, None, 5));
            assert_eq!(a.record.action, Action::Failed, "{s}");
            assert!(a.record.reason.starts_with(s));
            assert!(a.record.reason.contains("[Bucket]"));
            assert_eq!(
                a.fetch_events_token.as_deref(),
                Some(r.client_token.as_str())
            );
        }
        let r = record(Phase::Executing, Operation::Update);
        let a = advance(&r, &obs(StackView::Absent, None, 5));
        assert_eq!(a.record.action, Action::Failed);
    }

    #[test]
    fn leftover_delete_then_create() {
        let r = record(Phase::DeletingLeftover, Operation::Recreate);
        let a = advance(&r, &obs(present("DELETE_IN_PROGRESS"), None, 5));
        assert_eq!(a.step, Step::Wait);
        let a = advance(&r, &obs(present("ROLLBACK_COMPLETE"), None, 5));
        assert_eq!(a.step, Step::Wait);
        let a = advance(&r, &obs(StackView::Absent, None, 6));
        assert_eq!(a.step, Step::CreateChangeSet);
        assert_eq!(a.record.phase, Phase::ChangeSetPending);
        let a = advance(&r, &obs(present("DELETE_COMPLETE"), None, 6));
        assert_eq!(a.step, Step::CreateChangeSet);
        let a = advance(&r, &obs(present("DELETE_FAILED"), None, 6));
        assert_eq!(a.record.action, Action::Failed);
        assert_eq!(a.fetch_events_token, Some(client_token_of(&r, OP_DELETE)));
        assert_ne!(client_token_of(&r, OP_DELETE), r.client_token);
    }

    #[test]
    fn timeout_only_when_still_waiting() {
        let r = record(Phase::Executing, Operation::Create);
        let late = 60 * 60 + 1;
        let a = advance(&r, &obs(present("CREATE_IN_PROGRESS"), None, late));
        assert_eq!(a.step, Step::Timeout);
        assert_eq!(a.record.action, Action::Failed);
        assert_eq!(a.record.phase, Phase::Done);
        assert!(
            a.record.reason.starts_with("StackTimeout:"),
            "{}",
            a.record.reason
        );
        assert!(a.record.reason.contains("60"));
        assert!(a.record.reason.contains("CREATE_IN_PROGRESS"));
        assert!(a.record.reason.contains("cannot be cancelled"));
        assert!(a
            .record
            .reason
            .contains("rollback (onFailure: rollback) deletes it"));
        assert!(a.record.reason.contains("raise timeoutMinutes"));
        assert_eq!(
            a.hanging_events_token.as_deref(),
            Some(r.client_token.as_str())
        );
        // A stack that completed at the deadline counts as completed.
        let r = record(Phase::Executing, Operation::Update);
        let b = advance(&r, &obs(present("UPDATE_COMPLETE"), None, late));
        assert_eq!(b.record.action, Action::Updated);
        // Before the deadline: wait.
        let c = advance(&r, &obs(present("UPDATE_IN_PROGRESS"), None, 60 * 60 - 1));
        assert_eq!(c.step, Step::Wait);
        assert!(c.hanging_events_token.is_none());
    }

    #[test]
    fn seconds_to_deadline_counts_to_the_timeout_then_to_twice_it() {
        let mut r = record(Phase::Executing, Operation::Create);
        r.timeout_minutes = 1;
        let start = parse_timestamp(&r.started_at).expect("started_at");
        let at = |s: i64| start + chrono::Duration::seconds(s);
        assert_eq!(seconds_to_deadline(&r, at(0)), Some(60));
        assert_eq!(seconds_to_deadline(&r, at(45)), Some(15));
        assert_eq!(
            seconds_to_deadline(&r, at(60)),
            Some(60),
            "then the 2x deadline"
        );
        assert_eq!(seconds_to_deadline(&r, at(119)), Some(1));
        assert_eq!(seconds_to_deadline(&r, at(120)), None);
        r.started_at = "not a time".into();
        assert_eq!(seconds_to_deadline(&r, at(0)), None);
    }

    #[test]
    fn timed_out_update_is_cancelled_and_settles_once_rolled_back() {
        let r = record(Phase::Executing, Operation::Update);
        let late = 60 * 60 + 1;
        let a = advance(&r, &obs(present("UPDATE_IN_PROGRESS"), None, late));
        assert_eq!(a.step, Step::CancelUpdate);
        assert_eq!(a.record.phase, Phase::CancellingTimeout);
        assert_eq!(a.record.action, Action::InProgress, "not settled yet");
        assert_eq!(
            a.hanging_events_token.as_deref(),
            Some(r.client_token.as_str())
        );

        // The cancel is not visible yet, then the rollback runs: wait.
        let cancelling = a.record;
        for s in [
            "UPDATE_IN_PROGRESS",
            "UPDATE_ROLLBACK_IN_PROGRESS",
            "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
        ] {
            let b = advance(&cancelling, &obs(present(s), None, late + 5));
            assert_eq!(b.step, Step::Wait, "{s}");
            assert_eq!(b.record.phase, Phase::CancellingTimeout);
        }

        // Rolled back: failed with StackTimeout.
        let b = advance(
            &cancelling,
            &obs(present("UPDATE_ROLLBACK_COMPLETE"), None, late + 30),
        );
        assert_eq!(b.record.phase, Phase::Done);
        assert_eq!(b.record.action, Action::Failed);
        assert!(
            b.record.reason.starts_with("StackTimeout:"),
            "{}",
            b.record.reason
        );
        assert!(b.record.reason.contains("cancelled"));
        assert!(b.record.reason.contains("UPDATE_ROLLBACK_COMPLETE"));
        assert!(b.record.reason.contains("raise timeoutMinutes"));
        assert_eq!(
            b.fetch_events_token.as_deref(),
            Some(r.client_token.as_str())
        );

        // The rollback after the cancel failed: failed, events of the cancel.
        let c = advance(
            &cancelling,
            &obs(present("UPDATE_ROLLBACK_FAILED"), None, late + 30),
        );
        assert_eq!(c.record.action, Action::Failed);
        assert!(c.record.reason.starts_with("StackTimeout:"));
        assert!(c.record.reason.contains("UPDATE_ROLLBACK_FAILED"));
        assert_eq!(c.fetch_events_token, Some(client_token_of(&r, OP_CANCEL)));

        // The update finished before the cancel took effect: updated.
        let d = advance(
            &cancelling,
            &obs(present("UPDATE_COMPLETE"), None, late + 30),
        );
        assert_eq!(d.record.action, Action::Updated);

        // A rollback that outlasts a second timeout is settled failed too.
        let e = advance(
            &cancelling,
            &obs(
                present("UPDATE_ROLLBACK_IN_PROGRESS"),
                None,
                2 * 60 * 60 + 1,
            ),
        );
        assert_eq!(e.step, Step::Timeout);
        assert_eq!(e.record.action, Action::Failed);
        assert!(e.record.reason.starts_with("StackTimeout:"));
        assert!(e.record.reason.contains("UPDATE_ROLLBACK_IN_PROGRESS"));
    }

    #[test]
    fn timed_out_update_already_rolling_back_settles_once_rolled_back() {
        let r = record(Phase::Executing, Operation::Update);
        let a = advance(
            &r,
            &obs(present("UPDATE_ROLLBACK_IN_PROGRESS"), None, 60 * 60 + 1),
        );
        assert_eq!(a.step, Step::Wait);
        assert_eq!(a.record.phase, Phase::CancellingTimeout);
        let b = advance(
            &a.record,
            &obs(present("UPDATE_ROLLBACK_COMPLETE"), None, 60 * 60 + 9),
        );
        assert!(b.record.reason.starts_with("StackTimeout:"));
    }

    #[test]
    fn other_timeouts_settle_at_once_naming_the_status() {
        let late = 60 * 60 + 1;
        for (phase, status, needle) in [
            (
                Phase::WaitingForOther,
                "UPDATE_IN_PROGRESS",
                "another operation",
            ),
            (
                Phase::ContinuingRollback,
                "UPDATE_ROLLBACK_IN_PROGRESS",
                "cannot be cancelled",
            ),
            (
                Phase::DeletingLeftover,
                "DELETE_IN_PROGRESS",
                "cannot be cancelled",
            ),
            (
                Phase::Executing,
                "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
                "cannot be cancelled",
            ),
        ] {
            let r = record(phase, Operation::Update);
            let a = advance(&r, &obs(present(status), None, late));
            assert_eq!(a.step, Step::Timeout, "{phase:?}");
            assert_eq!(a.record.action, Action::Failed);
            assert!(
                a.record.reason.starts_with("StackTimeout:"),
                "{}",
                a.record.reason
            );
            assert!(a.record.reason.contains(status), "{}", a.record.reason);
            assert!(a.record.reason.contains(needle), "{}", a.record.reason);
        }
        let r = record(Phase::ChangeSetPending, Operation::Update);
        let a = advance(
            &r,
            &obs(
                StackView::NotObserved,
                Some(cs("CREATE_IN_PROGRESS", None, None)),
                late,
            ),
        );
        assert_eq!(a.step, Step::Timeout);
        assert!(a.record.reason.contains("change set was not ready"));
    }

    #[test]
    fn waiting_for_another_operation_then_starting_ours() {
        let r = record(Phase::WaitingForOther, Operation::Update);
        for s in [
            "UPDATE_IN_PROGRESS",
            "ROLLBACK_IN_PROGRESS",
            "DELETE_IN_PROGRESS",
        ] {
            let a = advance(&r, &obs(present(s), None, 5));
            assert_eq!(a.step, Step::Wait, "{s}");
            assert_eq!(a.record.phase, Phase::WaitingForOther);
            assert_eq!(a.record.status.as_deref(), Some(s));
        }
        let cases = [
            (
                "UPDATE_COMPLETE",
                Step::UpdateChangeSet,
                Phase::ChangeSetPending,
                Operation::Update,
            ),
            (
                "UPDATE_ROLLBACK_COMPLETE",
                Step::UpdateChangeSet,
                Phase::ChangeSetPending,
                Operation::Update,
            ),
            (
                "CREATE_COMPLETE",
                Step::UpdateChangeSet,
                Phase::ChangeSetPending,
                Operation::Update,
            ),
            (
                "DELETE_COMPLETE",
                Step::CreateChangeSet,
                Phase::ChangeSetPending,
                Operation::Create,
            ),
            (
                "REVIEW_IN_PROGRESS",
                Step::CreateChangeSet,
                Phase::ChangeSetPending,
                Operation::Create,
            ),
            (
                "ROLLBACK_COMPLETE",
                Step::DeleteLeftover,
                Phase::DeletingLeftover,
                Operation::Recreate,
            ),
            (
                "UPDATE_ROLLBACK_FAILED",
                Step::ContinueRollback,
                Phase::ContinuingRollback,
                Operation::Update,
            ),
        ];
        for (status, step, phase, op) in cases {
            let a = advance(&r, &obs(present(status), None, 5));
            assert_eq!(a.step, step, "{status}");
            assert_eq!(a.record.phase, phase, "{status}");
            assert_eq!(a.record.operation, op, "{status}");
            assert_eq!(a.record.action, Action::InProgress, "{status}");
        }
        let a = advance(&r, &obs(StackView::Absent, None, 5));
        assert_eq!(a.step, Step::CreateChangeSet);
        assert_eq!(a.record.operation, Operation::Create);
        // Settled into something that cannot be deployed: failed with the fix.
        let a = advance(&r, &obs(present("DELETE_FAILED"), None, 5));
        assert_eq!(a.record.action, Action::Failed);
        assert!(a.record.reason.contains("DELETE_FAILED"));
        assert!(a.record.reason.contains("Fix:"));
    }

    #[test]
    fn continued_rollback_then_update_or_fail_again() {
        let r = record(Phase::ContinuingRollback, Operation::Update);
        for s in [
            "UPDATE_ROLLBACK_IN_PROGRESS",
            "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
        ] {
            let a = advance(&r, &obs(present(s), None, 5));
            assert_eq!(a.step, Step::Wait, "{s}");
        }
        let a = advance(&r, &obs(present("UPDATE_ROLLBACK_COMPLETE"), None, 5));
        assert_eq!(a.step, Step::UpdateChangeSet);
        assert_eq!(a.record.phase, Phase::ChangeSetPending);
        assert_eq!(a.record.operation, Operation::Update);

        let again = StackView::Present(StackState {
            status: "UPDATE_ROLLBACK_FAILED".into(),
            reason: Some("The following resource(s) failed to update: [Bucket].".into()),
            outputs: vec![],
        });
        let a = advance(&r, &obs(again, None, 5));
        assert_eq!(a.record.action, Action::Failed);
        assert!(a.record.reason.contains("UPDATE_ROLLBACK_FAILED again"));
        assert!(a.record.reason.contains("[Bucket]"));
        assert!(a.record.reason.contains("Fix:"));
        assert!(a.record.reason.contains("ResourcesToSkip"));
        assert_eq!(a.fetch_events_token, Some(client_token_of(&r, OP_CONTINUE)));
        assert_ne!(
            client_token_of(&r, OP_CONTINUE),
            client_token_of(&r, OP_CANCEL)
        );

        let a = advance(&r, &obs(StackView::Absent, None, 5));
        assert_eq!(a.record.action, Action::Failed);
    }

    #[test]
    fn hanging_resource_is_the_one_in_progress_the_longest() {
        let ours = Some("tok");
        let events = vec![
            ev("Queue", "UPDATE_IN_PROGRESS", None, 12, ours),
            ev("Bucket", "UPDATE_COMPLETE", None, 11, ours),
            ev("Service", "UPDATE_IN_PROGRESS", None, 10, ours),
            ev("Bucket", "UPDATE_IN_PROGRESS", None, 3, ours),
            ev("Old", "UPDATE_IN_PROGRESS", None, 2, Some("other")),
            ev("App", "UPDATE_IN_PROGRESS", Some("User Initiated"), 1, ours),
        ];
        let cause = hanging_resource(&events, ours, t(0), 30).expect("hanging");
        assert_eq!(cause.logical_id, "Service");
        assert_eq!(cause.status, "UPDATE_IN_PROGRESS");
        assert!(cause.reason.contains("30"), "{}", cause.reason);
        let done = vec![
            ev("Bucket", "UPDATE_COMPLETE", None, 11, ours),
            ev("Bucket", "UPDATE_IN_PROGRESS", None, 3, ours),
        ];
        assert_eq!(hanging_resource(&done, ours, t(0), 30), None);
    }

    #[test]
    fn done_records_do_not_move() {
        let mut r = record(Phase::Done, Operation::Create);
        r.action = Action::Created;
        let a = advance(&r, &obs(present("CREATE_COMPLETE"), None, 10_000));
        assert_eq!(a.step, Step::Wait);
        assert_eq!(a.record.action, Action::Created);
    }

    #[test]
    fn root_cause_is_first_failure_of_this_operation() {
        let ours = Some("tok");
        // Newest first, as AWS lists them.
        let events = vec![
            ev("App", "ROLLBACK_COMPLETE", None, 20, ours),
            ev("Queue", "DELETE_COMPLETE", None, 18, ours),
            ev(
                "App",
                "ROLLBACK_IN_PROGRESS",
                Some("The following resource(s) failed to create: [Bucket, Queue]."),
                15,
                ours,
            ),
            ev(
                "Queue",
                "CREATE_FAILED",
                Some("Resource creation cancelled"),
                14,
                ours,
            ),
            ev(
                "Bucket",
                "CREATE_FAILED",
                Some("bucket name taken"),
                13,
                ours,
            ),
            ev(
                "Topic",
                "CREATE_FAILED",
                Some("older op failure"),
                5,
                Some("other"),
            ),
            ev("Old", "UPDATE_FAILED", Some("before we started"), -5, None),
            ev("App", "CREATE_IN_PROGRESS", Some("User Initiated"), 1, ours),
        ];
        let cause = root_cause(&events, ours, t(0)).expect("cause");
        assert_eq!(cause.logical_id, "Bucket");
        assert_eq!(cause.resource_type, "AWS::S3::Bucket");
        assert_eq!(cause.status, "CREATE_FAILED");
        assert_eq!(cause.reason, "bucket name taken");
        assert_eq!(settled_at(&events, ours, t(0)), Some(t(20)));
    }

    #[test]
    fn root_cause_skips_cancellations_and_other_operations() {
        let events = vec![
            ev(
                "A",
                "UPDATE_FAILED",
                Some("Resource update cancelled"),
                3,
                Some("tok"),
            ),
            ev(
                "B",
                "CREATE_FAILED",
                Some("Resource creation cancelled"),
                2,
                Some("tok"),
            ),
            ev("C", "CREATE_FAILED", Some("other run"), 1, Some("else")),
        ];
        assert_eq!(root_cause(&events, Some("tok"), t(0)), None);
    }

    #[test]
    fn root_cause_without_tokens_uses_the_start_time() {
        let events = vec![
            ev("New", "UPDATE_FAILED", Some("new failure"), 10, None),
            ev("Old", "UPDATE_FAILED", Some("old failure"), -10, None),
        ];
        let cause = root_cause(&events, Some("tok"), t(0)).expect("cause");
        assert_eq!(cause.logical_id, "New");
        // Same-second ties: AWS's newest-first order decides (the later listed is older).
        let tie = vec![
            ev("Second", "CREATE_FAILED", Some("b"), 10, None),
            ev("First", "CREATE_FAILED", Some("a"), 10, None),
        ];
        assert_eq!(
            root_cause(&tie, None, t(0)).map(|c| c.logical_id),
            Some("First".to_string())
        );
    }

    #[test]
    fn apply_events_sets_cause_and_finish_time() {
        let mut r = record(Phase::Done, Operation::Create);
        r.finished_at = Some(timestamp(t(100)));
        let tok = r.client_token.clone();
        let events = vec![
            ev("App", "ROLLBACK_COMPLETE", None, 30, Some(&tok)),
            ev("Bucket", "CREATE_FAILED", Some("denied"), 12, Some(&tok)),
        ];
        apply_events(&mut r, &events, &tok);
        assert_eq!(
            r.root_cause.as_ref().map(|c| c.logical_id.as_str()),
            Some("Bucket")
        );
        assert_eq!(r.finished_at.as_deref(), Some(timestamp(t(30)).as_str()));
    }

    #[test]
    fn begin_is_the_one_transition_of_each_start() {
        let now = Utc::now();
        let cases = [
            (
                None,
                Step::CreateChangeSet,
                Phase::ChangeSetPending,
                Operation::Create,
            ),
            (
                Some("UPDATE_COMPLETE"),
                Step::UpdateChangeSet,
                Phase::ChangeSetPending,
                Operation::Update,
            ),
            (
                Some("ROLLBACK_COMPLETE"),
                Step::DeleteLeftover,
                Phase::DeletingLeftover,
                Operation::Recreate,
            ),
            (
                Some("DELETE_IN_PROGRESS"),
                Step::Wait,
                Phase::DeletingLeftover,
                Operation::Recreate,
            ),
            (
                Some("UPDATE_ROLLBACK_FAILED"),
                Step::ContinueRollback,
                Phase::ContinuingRollback,
                Operation::Update,
            ),
            (
                Some("CREATE_IN_PROGRESS"),
                Step::Wait,
                Phase::WaitingForOther,
                Operation::Update,
            ),
        ];
        for (status, step, phase, operation) in cases {
            let mut rec = record(Phase::ChangeSetPending, Operation::Create);
            assert_eq!(begin(&mut rec, start(status), now), step, "{status:?}");
            assert_eq!(rec.phase, phase, "{status:?}");
            assert_eq!(rec.operation, operation, "{status:?}");
            assert_eq!(rec.action, Action::InProgress, "{status:?}");
        }
        let mut rec = record(Phase::ChangeSetPending, Operation::Create);
        begin(&mut rec, start(Some("DELETE_FAILED")), now);
        assert_eq!((rec.phase, rec.action), (Phase::Done, Action::Failed));
        assert!(rec.reason.contains("DELETE_FAILED"), "{}", rec.reason);
        assert!(rec.reason.contains("Fix:"), "{}", rec.reason);
    }
}
