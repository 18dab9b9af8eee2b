//! check in rollback mode: how it follows deletes and restores, with scripted SDK responses.

#[path = "../../deploy-stack/tests/support/mod.rs"]
mod support;

use aws_sdk_cloudformation::operation::describe_stack_events::DescribeStackEventsOutput;
use aws_sdk_cloudformation::operation::describe_stacks::{
    DescribeStacksError, DescribeStacksOutput,
};
use aws_sdk_cloudformation::types::{ResourceStatus, StackEvent};
use aws_sdk_cloudformation::Client as Cfn;
use aws_smithy_mocks::{mock, Rule};
use chrono::{DateTime, Utc};
use stackwave_check::handle;
use stackwave_core::io::{CheckInput, CheckMode, CheckOutput};
use stackwave_core::reconcile;
use stackwave_core::record::{
    Action, Operation, Phase, RollbackOperation, RollbackPhase, RollbackState, StackRecord,
};
use stackwave_core::rollback;
use support::*;

async fn check(
    ctx: &stackwave_aws::Ctx,
    stacks: &[&str],
    attempt: u32,
) -> Result<CheckOutput, stackwave_core::Error> {
    handle(
        ctx,
        CheckInput {
            run: run(),
            stacks: stacks.iter().map(|s| s.to_string()).collect(),
            attempt,
            mode: CheckMode::Rollback,
        },
    )
    .await
}

/// A record the run created or updated, whose rollback started `minutes_ago`.
fn rolling(stack: &str, operation: RollbackOperation, minutes_ago: i64) -> StackRecord {
    let (op, action) = match operation {
        RollbackOperation::Delete => (Operation::Create, Action::Created),
        RollbackOperation::Restore => (Operation::Update, Action::Updated),
    };
    let mut r = record(stack, op, Phase::Done, 20);
    r.action = action;
    r.rollback = Some(rollback::started(
        operation,
        &rollback::client_token(EXECUTION, stack),
        Utc::now() - chrono::Duration::minutes(minutes_ago),
    ));
    r
}

fn state(bucket: &Bucket, stack: &str) -> RollbackState {
    bucket
        .record(&run(), stack)
        .and_then(|r| r.rollback)
        .expect("rollback state")
}

fn describe(name: &'static str, status: &'static str, reason: Option<&'static str>) -> Rule {
    mock!(Cfn::describe_stacks)
        .match_requests(move |r| r.stack_name() == Some(name))
        .then_output(move || {
            let mut s = stack(name, status);
            s.stack_status_reason = reason.map(str::to_string);
            DescribeStacksOutput::builder().stacks(s).build()
        })
}

fn absent(name: &'static str) -> Rule {
    mock!(Cfn::describe_stacks)
        .match_requests(move |r| r.stack_name() == Some(name))
        .then_error(move || DescribeStacksError::generic(does_not_exist(name)))
}

fn event(
    stack: &str,
    logical: &str,
    kind: &str,
    status: ResourceStatus,
    reason: &str,
    at: DateTime<Utc>,
    token: &str,
) -> StackEvent {
    StackEvent::builder()
        .stack_id(format!(
            "arn:aws:cloudformation:us-east-1:123456789012:stack/{stack}/1"
        ))
        .event_id(format!("{logical}-{}", at.timestamp()))
        .stack_name(stack)
        .logical_resource_id(logical)
        .resource_type(kind)
        .resource_status(status)
        .resource_status_reason(reason)
        .timestamp(aws_smithy_types::DateTime::from_secs(at.timestamp()))
        .client_request_token(token)
        .build()
}

fn events(stack: &'static str, list: Vec<StackEvent>) -> Rule {
    mock!(Cfn::describe_stack_events)
        .match_requests(move |r| r.stack_name() == Some(stack))
        .then_output(move || {
            DescribeStackEventsOutput::builder()
                .set_stack_events(Some(list.clone()))
                .build()
        })
}

#[tokio::test]
async fn a_delete_is_followed_until_the_stack_is_gone() {
    let bucket = Bucket::default();
    let run = run();
    bucket.put_record(&run, &rolling("Ecs", RollbackOperation::Delete, 1));
    let running = describe("Ecs", "DELETE_IN_PROGRESS", None);
    let ctx = ctx(&bucket, &[&running], &[], config());
    let out = check(&ctx, &["Ecs"], 0).await.expect("checked");
    assert!(!out.settled);
    assert!(!out.any_failed);
    assert_eq!((out.in_progress, out.succeeded, out.failed), (1, 0, 0));
    assert_eq!(out.attempt, 1);
    assert!((1..=2).contains(&out.next_wait_seconds));
    assert_eq!(
        state(&bucket, "Ecs").status.as_deref(),
        Some("DELETE_IN_PROGRESS")
    );
    assert_eq!(state(&bucket, "Ecs").phase, RollbackPhase::Executing);

    let gone = absent("Ecs");
    let ctx = support::ctx(&bucket, &[&gone], &[], config());
    let out = check(&ctx, &["Ecs"], 1).await.expect("checked");
    assert!(out.settled);
    assert!(!out.any_failed);
    assert_eq!((out.in_progress, out.succeeded, out.failed), (0, 1, 0));
    let s = state(&bucket, "Ecs");
    assert_eq!(s.phase, RollbackPhase::Done);
    assert_eq!(s.outcome, Some(Action::RolledBack));
    assert_eq!(s.reason, rollback::DELETED_REASON);
    // the deployment's action is kept; the summary shows the rollback
    assert_eq!(
        bucket.record(&run, "Ecs").map(|r| r.action),
        Some(Action::Created)
    );

    // settled rollbacks are not looked at again
    let ctx = support::ctx(&bucket, &[], &[], config());
    let out = check(&ctx, &["Ecs"], 2).await.expect("checked");
    assert!(out.settled);
}

#[tokio::test]
async fn a_failed_delete_is_rollback_failed_with_the_first_failed_resource() {
    let bucket = Bucket::default();
    let run = run();
    bucket.put_record(&run, &rolling("Ecs", RollbackOperation::Delete, 2));
    let failed = describe(
        "Ecs",
        "DELETE_FAILED",
        Some("The following resource(s) failed to delete: [Logs]"),
    );
    let token = rollback::client_token(EXECUTION, "Ecs");
    let now = Utc::now();
    let evs = events(
        "Ecs",
        vec![
            event(
                "Ecs",
                "Ecs",
                "AWS::CloudFormation::Stack",
                ResourceStatus::DeleteFailed,
                "The following resource(s) failed to delete: [Logs]",
                now,
                &token,
            ),
            event(
                "Ecs",
                "Logs",
                "AWS::S3::Bucket",
                ResourceStatus::DeleteFailed,
                "The bucket you tried to delete is not empty",
                now - chrono::Duration::seconds(5),
                &token,
            ),
            event(
                "Ecs",
                "Logs",
                "AWS::S3::Bucket",
                ResourceStatus::DeleteInProgress,
                "",
                now - chrono::Duration::seconds(60),
                &token,
            ),
        ],
    );
    let ctx = ctx(&bucket, &[&failed, &evs], &[], config());
    let out = check(&ctx, &["Ecs"], 3).await.expect("checked");
    assert!(out.settled);
    assert!(out.any_failed);
    assert_eq!(out.failed_stacks, vec!["Ecs".to_string()]);
    let s = state(&bucket, "Ecs");
    assert_eq!(s.outcome, Some(Action::RollbackFailed));
    let rc = s.root_cause.expect("root cause");
    assert_eq!(
        (rc.logical_id.as_str(), rc.resource_type.as_str()),
        ("Logs", "AWS::S3::Bucket")
    );
    assert!(
        s.reason.contains("Logs (AWS::S3::Bucket) DELETE_FAILED: The bucket you tried to delete is not empty. Fix:"),
        "{}",
        s.reason
    );
}

#[tokio::test]
async fn restores_settle_rolled_back_or_failed_with_their_root_cause() {
    let bucket = Bucket::default();
    let run = run();
    bucket.put_record(&run, &rolling("Net", RollbackOperation::Restore, 1));
    bucket.put_record(&run, &rolling("Api", RollbackOperation::Restore, 1));
    let net = describe("Net", "UPDATE_COMPLETE", None);
    let api = describe("Api", "UPDATE_ROLLBACK_COMPLETE", None);
    let token = rollback::client_token(EXECUTION, "Api");
    let now = Utc::now();
    let evs = events(
        "Api",
        vec![
            event(
                "Api",
                "Api",
                "AWS::CloudFormation::Stack",
                ResourceStatus::UpdateRollbackComplete,
                "",
                now,
                &token,
            ),
            event(
                "Api",
                "Fn",
                "AWS::Lambda::Function",
                ResourceStatus::UpdateFailed,
                "Resource update cancelled",
                now - chrono::Duration::seconds(4),
                &token,
            ),
            event(
                "Api",
                "Role",
                "AWS::IAM::Role",
                ResourceStatus::UpdateFailed,
                "MalformedPolicyDocument",
                now - chrono::Duration::seconds(5),
                &token,
            ),
            // another operation's failure is not this rollback's cause
            event(
                "Api",
                "Old",
                "AWS::SQS::Queue",
                ResourceStatus::UpdateFailed,
                "older",
                now - chrono::Duration::seconds(30),
                "sw-execute-other",
            ),
        ],
    );
    let ctx = ctx(&bucket, &[&net, &api, &evs], &[], config());
    let out = check(&ctx, &["Net", "Api"], 0).await.expect("checked");
    assert!(out.settled);
    assert!(out.any_failed);
    assert_eq!((out.in_progress, out.succeeded, out.failed), (0, 1, 1));
    assert_eq!(out.failed_stacks, vec!["Api".to_string()]);
    let n = state(&bucket, "Net");
    assert_eq!(n.outcome, Some(Action::RolledBack));
    assert_eq!(n.reason, rollback::RESTORED_REASON);
    let a = state(&bucket, "Api");
    assert_eq!(a.outcome, Some(Action::RollbackFailed));
    assert_eq!(a.root_cause.map(|r| r.logical_id), Some("Role".to_string()));
    assert!(
        a.reason
            .contains("Role (AWS::IAM::Role) UPDATE_FAILED: MalformedPolicyDocument"),
        "{}",
        a.reason
    );
    assert!(
        a.reason.contains("still has this run's template"),
        "{}",
        a.reason
    );
}

#[tokio::test]
async fn a_rollback_that_never_started_is_reported_not_dropped() {
    let bucket = Bucket::default();
    let run = run();
    let mut created = record("Ecs", Operation::Create, Phase::Done, 20);
    created.action = Action::Created;
    bucket.put_record(&run, &created);
    let mut unchanged = record("Logs", Operation::Update, Phase::Done, 20);
    unchanged.action = Action::Unchanged;
    bucket.put_record(&run, &unchanged);
    // no CloudFormation rule: nothing is called
    let ctx = ctx(&bucket, &[], &[], config());
    let out = check(&ctx, &["Ecs", "Logs"], 0).await.expect("checked");
    assert!(out.settled);
    assert!(out.any_failed);
    assert_eq!((out.in_progress, out.succeeded, out.failed), (0, 1, 1));
    let s = state(&bucket, "Ecs");
    assert_eq!(s.operation, RollbackOperation::Delete);
    assert_eq!(s.outcome, Some(Action::RollbackFailed));
    assert!(s.reason.contains("never started"), "{}", s.reason);
    assert_eq!(s.client_token, rollback::client_token(EXECUTION, "Ecs"));
    assert!(bucket
        .record(&run, "Logs")
        .and_then(|r| r.rollback)
        .is_none());
}

#[tokio::test]
async fn throttling_is_no_news_this_round_and_leaves_the_record_for_the_next_poll() {
    let bucket = Bucket::default();
    let run = run();
    let rec = rolling("Ecs", RollbackOperation::Delete, 1);
    bucket.put_record(&run, &rec);
    let throttled =
        mock!(Cfn::describe_stacks).then_error(|| DescribeStacksError::generic(throttling()));
    let ctx = ctx(&bucket, &[&throttled], &[], config());
    // As in deploy mode: a throttling storm slows the rollback, it does not stop it.
    let out = check(&ctx, &["Ecs"], 0)
        .await
        .expect("no news is not an error");
    assert!(!out.settled);
    assert_eq!((out.in_progress, out.succeeded, out.failed), (1, 0, 0));
    assert_eq!(out.attempt, 1);
    assert!(throttled.num_calls() >= 1);
    assert_eq!(bucket.record(&run, "Ecs"), Some(rec));
    assert_eq!(
        reconcile::client_token(EXECUTION, "Ecs", rollback::OP_ROLLBACK),
        rollback::client_token(EXECUTION, "Ecs")
    );
}

#[tokio::test]
async fn deploy_mode_is_the_default_on_the_wire() {
    let input: CheckInput = serde_json::from_value(serde_json::json!({
        "run": run(), "stacks": ["A"], "attempt": 2
    }))
    .expect("input");
    assert_eq!(input.mode, CheckMode::Deploy);
    let input: CheckInput = serde_json::from_value(serde_json::json!({
        "run": run(), "stacks": ["A"], "attempt": 0, "mode": "rollback"
    }))
    .expect("input");
    assert_eq!(input.mode, CheckMode::Rollback);
}
