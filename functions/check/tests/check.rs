//! check's reactions to AWS answers, with scripted SDK responses.

#[path = "../../deploy-stack/tests/support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};

use aws_sdk_cloudformation::operation::cancel_update_stack::{
    CancelUpdateStackError, CancelUpdateStackInput, CancelUpdateStackOutput,
};
use aws_sdk_cloudformation::operation::create_change_set::{
    CreateChangeSetInput, CreateChangeSetOutput,
};
use aws_sdk_cloudformation::operation::delete_change_set::{
    DeleteChangeSetInput, DeleteChangeSetOutput,
};
use aws_sdk_cloudformation::operation::delete_stack::{DeleteStackInput, DeleteStackOutput};
use aws_sdk_cloudformation::operation::describe_change_set::DescribeChangeSetOutput;
use aws_sdk_cloudformation::operation::describe_stack_events::DescribeStackEventsOutput;
use aws_sdk_cloudformation::operation::describe_stacks::{
    DescribeStacksError, DescribeStacksOutput,
};
use aws_sdk_cloudformation::operation::execute_change_set::{
    ExecuteChangeSetError, ExecuteChangeSetInput, ExecuteChangeSetOutput,
};
use aws_sdk_cloudformation::operation::get_template::GetTemplateOutput;
use aws_sdk_cloudformation::types::{
    ChangeSetStatus, ChangeSetType, ExecutionStatus, ResourceStatus, StackEvent,
};
use aws_sdk_cloudformation::Client as Cfn;
use aws_smithy_mocks::{mock, Rule};
use chrono::{DateTime, Utc};
use stackwave_check::handle;
use stackwave_core::io::{CheckInput, CheckMode, CheckOutput, DeployStackInput};
use stackwave_core::reconcile;
use stackwave_core::record::{Action, Operation, Phase, StackRecord};
use support::*;

type Captured<T> = Arc<Mutex<Vec<T>>>;

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
            mode: CheckMode::Deploy,
        },
    )
    .await
}

fn change_set(
    status: ChangeSetStatus,
    exec: ExecutionStatus,
    reason: Option<&'static str>,
) -> Rule {
    mock!(Cfn::describe_change_set).then_output(move || {
        let mut b = DescribeChangeSetOutput::builder()
            .status(status.clone())
            .execution_status(exec.clone());
        if let Some(r) = reason {
            b = b.status_reason(r);
        }
        b.build()
    })
}

fn capture_execute() -> (Rule, Captured<ExecuteChangeSetInput>) {
    let seen: Captured<ExecuteChangeSetInput> = Arc::default();
    let s = seen.clone();
    let rule = mock!(Cfn::execute_change_set).then_compute_output(move |req| {
        s.lock().expect("lock").push(req.clone());
        ExecuteChangeSetOutput::builder().build()
    });
    (rule, seen)
}

fn out(s: aws_sdk_cloudformation::types::Stack) -> DescribeStacksOutput {
    DescribeStacksOutput::builder().stacks(s).build()
}

fn secs(t: DateTime<Utc>) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_secs(t.timestamp())
}

fn event(
    logical: &str,
    kind: &str,
    status: ResourceStatus,
    reason: Option<&str>,
    at: DateTime<Utc>,
    token: &str,
) -> StackEvent {
    let mut b = StackEvent::builder()
        .stack_id("arn:aws:cloudformation:us-east-1:123456789012:stack/App/1")
        .event_id(format!("{logical}-{}", at.timestamp()))
        .stack_name("App")
        .logical_resource_id(logical)
        .resource_type(kind)
        .resource_status(status)
        .timestamp(secs(at))
        .client_request_token(token);
    if let Some(r) = reason {
        b = b.resource_status_reason(r);
    }
    b.build()
}

#[tokio::test]
async fn change_set_executes_then_stack_goes_in_progress_then_complete() {
    let bucket = Bucket::default();
    let run = run();
    let rec = record("App", Operation::Create, Phase::ChangeSetPending, 1);
    bucket.put_record(&run, &rec);
    let cs = change_set(
        ChangeSetStatus::CreateComplete,
        ExecutionStatus::Available,
        None,
    );
    let (execute, executed) = capture_execute();
    let stacks = mock!(Cfn::describe_stacks)
        .match_requests(|r| r.stack_name() == Some("App"))
        .sequence()
        .output(|| out(stack("App", "CREATE_IN_PROGRESS")))
        .output(|| {
            out(with_outputs(
                stack("App", "CREATE_COMPLETE"),
                &[("ApiUrl", "https://api")],
            ))
        })
        .build();
    let ctx = ctx(&bucket, &[&cs, &execute, &stacks], &[], config());

    // Check 1: the change set is ready, so it is executed with the record's token.
    let first = check(&ctx, &["App"], 0).await.expect("check 1");
    assert!(!first.settled);
    assert_eq!(first.in_progress, 1);
    assert_eq!(first.attempt, 1);
    assert!(
        (1..=2).contains(&first.next_wait_seconds),
        "{}",
        first.next_wait_seconds
    );
    let calls = executed.lock().expect("lock").clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].stack_name(), Some("App"));
    assert_eq!(
        calls[0].change_set_name(),
        Some(rec.change_set_name.as_str())
    );
    assert_eq!(
        calls[0].client_request_token(),
        Some(rec.client_token.as_str())
    );
    assert_eq!(
        bucket.record(&run, "App").map(|r| r.phase),
        Some(Phase::Executing)
    );
    assert_eq!(
        stacks.num_calls(),
        0,
        "a pending change set needs no DescribeStacks"
    );

    // Check 2: CREATE_IN_PROGRESS.
    let second = check(&ctx, &["App"], 1).await.expect("check 2");
    assert!(!second.settled);
    assert_eq!(second.attempt, 2);
    let r = bucket.record(&run, "App").expect("record");
    assert_eq!(r.status.as_deref(), Some("CREATE_IN_PROGRESS"));
    assert_eq!(r.action, Action::InProgress);

    // Check 3: CREATE_COMPLETE with outputs.
    let third = check(&ctx, &["App"], 2).await.expect("check 3");
    assert!(third.settled);
    assert!(!third.any_failed);
    assert_eq!(
        (third.succeeded, third.failed, third.in_progress),
        (1, 0, 0)
    );
    let r = bucket.record(&run, "App").expect("record");
    assert_eq!(r.phase, Phase::Done);
    assert_eq!(r.action, Action::Created);
    assert_eq!(
        r.outputs,
        vec![("ApiUrl".to_string(), "https://api".to_string())]
    );
    assert!(r.finished_at.is_some());
    assert_eq!(execute.num_calls(), 1, "executed once");
    assert_eq!(cs.num_calls(), 1);
}

#[tokio::test]
async fn failed_update_carries_the_first_failed_resource_as_root_cause() {
    let bucket = Bucket::default();
    let run = run();
    let rec = record("App", Operation::Update, Phase::Executing, 5);
    bucket.put_record(&run, &rec);
    let start = reconcile::parse_timestamp(&rec.started_at).expect("time");
    let tok = rec.client_token.clone();
    let mut failed = stack("App", "UPDATE_ROLLBACK_COMPLETE");
    failed.stack_status_reason =
        Some("The following resource(s) failed to update: [Table].".into());
    let stacks = mock!(Cfn::describe_stacks).then_output(move || out(failed.clone()));
    let t = tok.clone();
    let events = mock!(Cfn::describe_stack_events).then_output(move || {
        let at = |s: i64| start + chrono::Duration::seconds(s);
        DescribeStackEventsOutput::builder()
            .set_stack_events(Some(vec![
                event(
                    "App",
                    "AWS::CloudFormation::Stack",
                    ResourceStatus::UpdateRollbackComplete,
                    None,
                    at(90),
                    &t,
                ),
                event(
                    "Queue",
                    "AWS::SQS::Queue",
                    ResourceStatus::UpdateFailed,
                    Some("Resource update cancelled"),
                    at(41),
                    &t,
                ),
                event(
                    "Table",
                    "AWS::DynamoDB::Table",
                    ResourceStatus::UpdateFailed,
                    Some("Throughput exceeds the current account limit"),
                    at(40),
                    &t,
                ),
                event(
                    "App",
                    "AWS::CloudFormation::Stack",
                    ResourceStatus::UpdateInProgress,
                    Some("User Initiated"),
                    at(2),
                    &t,
                ),
                event(
                    "Old",
                    "AWS::S3::Bucket",
                    ResourceStatus::CreateFailed,
                    Some("an earlier run"),
                    at(-600),
                    "sw-execute-older",
                ),
            ]))
            .build()
    });
    let ctx = ctx(&bucket, &[&stacks, &events], &[], config());

    let output = check(&ctx, &["App"], 3).await.expect("check");
    assert!(output.settled);
    assert!(output.any_failed);
    assert_eq!(output.failed, 1);
    assert_eq!(output.failed_stacks, vec!["App".to_string()]);
    let r = bucket.record(&run, "App").expect("record");
    assert_eq!(r.action, Action::Failed);
    assert!(
        r.reason.contains("UPDATE_ROLLBACK_COMPLETE") && r.reason.contains("[Table]"),
        "{}",
        r.reason
    );
    let cause = r.root_cause.expect("root cause");
    assert_eq!(cause.logical_id, "Table");
    assert_eq!(cause.resource_type, "AWS::DynamoDB::Table");
    assert_eq!(cause.status, "UPDATE_FAILED");
    assert_eq!(cause.reason, "Throughput exceeds the current account limit");
    // finished_at is the terminal stack event's time, not the time of the check.
    let finished =
        reconcile::parse_timestamp(r.finished_at.as_deref().unwrap_or_default()).expect("finished");
    assert_eq!(
        finished.timestamp(),
        (start + chrono::Duration::seconds(90)).timestamp()
    );
    assert_eq!(events.num_calls(), 1);
}

#[tokio::test]
async fn change_set_without_changes_is_unchanged_and_deleted() {
    let bucket = Bucket::default();
    let run = run();
    let rec = record("App", Operation::Update, Phase::ChangeSetPending, 1);
    bucket.put_record(&run, &rec);
    let cs = change_set(
        ChangeSetStatus::Failed,
        ExecutionStatus::Unavailable,
        Some("The submitted information didn't contain changes. Submit different information to create a change set."),
    );
    let deleted: Captured<DeleteChangeSetInput> = Arc::default();
    let d = deleted.clone();
    let delete = mock!(Cfn::delete_change_set).then_compute_output(move |req| {
        d.lock().expect("lock").push(req.clone());
        DeleteChangeSetOutput::builder().build()
    });
    let (execute, _) = capture_execute();
    let ctx = ctx(&bucket, &[&cs, &delete, &execute], &[], config());

    let output = check(&ctx, &["App"], 0).await.expect("check");
    assert!(output.settled);
    assert!(!output.any_failed);
    assert_eq!(output.succeeded, 1);
    let r = bucket.record(&run, "App").expect("record");
    assert_eq!(r.action, Action::Unchanged);
    assert_eq!(r.phase, Phase::Done);
    let calls = deleted.lock().expect("lock").clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].change_set_name(),
        Some(rec.change_set_name.as_str())
    );
    assert_eq!(execute.num_calls(), 0, "nothing executed");
}

#[tokio::test]
async fn failed_change_set_fails_the_stack_with_its_reason() {
    let bucket = Bucket::default();
    let run = run();
    bucket.put_record(
        &run,
        &record("App", Operation::Create, Phase::ChangeSetPending, 1),
    );
    let cs = change_set(
        ChangeSetStatus::Failed,
        ExecutionStatus::Unavailable,
        Some(
            "Template format error: Unresolved resource dependencies [Vpc] in the Resources block",
        ),
    );
    let ctx = ctx(&bucket, &[&cs], &[], config());
    let output = check(&ctx, &["App"], 0).await.expect("check");
    assert!(output.settled && output.any_failed);
    let r = bucket.record(&run, "App").expect("record");
    assert_eq!(r.action, Action::Failed);
    assert!(
        r.reason.contains("Unresolved resource dependencies"),
        "{}",
        r.reason
    );
    assert_eq!(
        r.root_cause.map(|c| c.resource_type),
        Some(reconcile::CHANGE_SET_RESOURCE_TYPE.to_string())
    );
}

#[tokio::test]
async fn rollback_complete_leftover_is_deleted_then_created() {
    let bucket = Bucket::default();
    let run = run();
    bucket.put_json(
        &run.plan_key(),
        &plan(vec![planned("App", "app.yaml", vec![])]),
    );
    let stacks = mock!(Cfn::describe_stacks)
        .match_requests(|r| r.stack_name() == Some("App"))
        .sequence()
        .output(|| out(stack("App", "ROLLBACK_COMPLETE"))) // deploy-stack
        .output(|| out(stack("App", "DELETE_IN_PROGRESS"))) // check 1
        .error(|| DescribeStacksError::generic(does_not_exist("App"))) // check 2
        .output(|| out(stack("App", "CREATE_COMPLETE"))) // check 4
        .build();
    let delete = mock!(Cfn::delete_stack).then_output(|| DeleteStackOutput::builder().build());
    let created: Captured<CreateChangeSetInput> = Arc::default();
    let c = created.clone();
    let create = mock!(Cfn::create_change_set).then_compute_output(move |req| {
        c.lock().expect("lock").push(req.clone());
        CreateChangeSetOutput::builder().build()
    });
    let cs = change_set(
        ChangeSetStatus::CreateComplete,
        ExecutionStatus::Available,
        None,
    );
    let (execute, _) = capture_execute();
    let ctx = ctx(
        &bucket,
        &[&stacks, &delete, &create, &cs, &execute],
        &[],
        config(),
    );

    let started = stackwave_deploy_stack::handle(
        &ctx,
        DeployStackInput {
            run: run.clone(),
            stack: "App".into(),
        },
    )
    .await
    .expect("deploy-stack");
    assert_eq!(started.operation, "recreate");
    assert_eq!(delete.num_calls(), 1);

    let phase = |b: &Bucket| b.record(&run, "App").map(|r| r.phase);
    assert!(!check(&ctx, &["App"], 0).await.expect("check 1").settled);
    assert_eq!(phase(&bucket), Some(Phase::DeletingLeftover));
    assert_eq!(create.num_calls(), 0);

    assert!(!check(&ctx, &["App"], 1).await.expect("check 2").settled);
    assert_eq!(phase(&bucket), Some(Phase::ChangeSetPending));
    let calls = created.lock().expect("lock").clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].change_set_type(), Some(&ChangeSetType::Create));
    assert_eq!(calls[0].client_token(), calls[0].change_set_name());
    assert_eq!(
        calls[0].template_url(),
        Some(
            format!(
                "https://{BUCKET}.s3.us-east-1.amazonaws.com/{}",
                template_key("app.yaml")
            )
            .as_str()
        )
    );

    assert!(!check(&ctx, &["App"], 2).await.expect("check 3").settled);
    assert_eq!(phase(&bucket), Some(Phase::Executing));
    assert_eq!(execute.num_calls(), 1);

    let last = check(&ctx, &["App"], 3).await.expect("check 4");
    assert!(last.settled && !last.any_failed);
    let r = bucket.record(&run, "App").expect("record");
    assert_eq!(r.action, Action::Created);
    assert_eq!(r.operation, Operation::Recreate);
    assert_eq!(delete.num_calls(), 1, "deleted once");
}

#[tokio::test]
async fn a_throttled_poll_is_no_news_this_round_and_the_next_poll_asks_again() {
    let bucket = Bucket::default();
    let run = run();
    let rec = record("App", Operation::Create, Phase::Executing, 1);
    bucket.put_record(&run, &rec);
    let stacks = mock!(Cfn::describe_stacks)
        .sequence()
        .error(|| DescribeStacksError::generic(throttling()))
        .output(|| out(stack("App", "CREATE_COMPLETE")))
        .build();
    let ctx = ctx(&bucket, &[&stacks], &[], config());
    let first = check(&ctx, &["App"], 0)
        .await
        .expect("no news is not an error");
    assert!(!first.settled);
    assert_eq!(first.in_progress, 1);
    assert_eq!(bucket.record(&run, "App"), Some(rec), "nothing changed");
    let second = check(&ctx, &["App"], 1).await.expect("next poll");
    assert!(second.settled && !second.any_failed);
    assert_eq!(
        bucket.record(&run, "App").map(|r| r.action),
        Some(Action::Created)
    );
}

#[tokio::test]
async fn a_throttled_change_set_poll_is_no_news_too() {
    let bucket = Bucket::default();
    let run = run();
    let rec = record("App", Operation::Create, Phase::ChangeSetPending, 1);
    bucket.put_record(&run, &rec);
    let cs = mock!(Cfn::describe_change_set).then_error(|| {
        aws_sdk_cloudformation::operation::describe_change_set::DescribeChangeSetError::generic(
            throttling(),
        )
    });
    let ctx = ctx(&bucket, &[&cs], &[], config());
    let out = check(&ctx, &["App"], 0).await.expect("no news");
    assert!(!out.settled);
    assert_eq!(bucket.record(&run, "App"), Some(rec));
}

#[tokio::test]
async fn a_throttled_step_keeps_the_progress_of_the_others_and_is_taken_next_round() {
    let bucket = Bucket::default();
    let run = run();
    let a = record("A", Operation::Create, Phase::Executing, 1);
    let b = record("B", Operation::Create, Phase::ChangeSetPending, 1);
    bucket.put_record(&run, &a);
    bucket.put_record(&run, &b);
    let stacks = mock!(Cfn::describe_stacks)
        .match_requests(|r| r.stack_name() == Some("A"))
        .then_output(|| out(stack("A", "CREATE_COMPLETE")));
    let cs = change_set(
        ChangeSetStatus::CreateComplete,
        ExecutionStatus::Available,
        None,
    );
    let execute = mock!(Cfn::execute_change_set)
        .sequence()
        .error(|| ExecuteChangeSetError::generic(throttling()))
        .output(|| ExecuteChangeSetOutput::builder().build())
        .build();
    let ctx = ctx(&bucket, &[&stacks, &cs, &execute], &[], config());

    let first = check(&ctx, &["A", "B"], 0).await.expect("no error");
    assert_eq!((first.succeeded, first.in_progress), (1, 1));
    assert_eq!(
        bucket.record(&run, "A").map(|r| r.action),
        Some(Action::Created),
        "A's progress is kept"
    );
    assert_eq!(
        bucket.record(&run, "B"),
        Some(b),
        "B is left for the next round"
    );

    // The next poll executes B's change set.
    let output = check(&ctx, &["A", "B"], 1).await.expect("next check");
    assert_eq!((output.succeeded, output.in_progress), (1, 1));
    assert_eq!(
        bucket.record(&run, "B").map(|r| r.phase),
        Some(Phase::Executing)
    );
    assert_eq!(execute.num_calls(), 2);
}

#[tokio::test]
async fn retried_check_after_a_lost_write_does_not_execute_twice() {
    let bucket = Bucket::default();
    let run = run();
    bucket.put_record(
        &run,
        &record("App", Operation::Update, Phase::ChangeSetPending, 1),
    );
    let cs = change_set(
        ChangeSetStatus::CreateComplete,
        ExecutionStatus::ExecuteInProgress,
        None,
    );
    let (execute, _) = capture_execute();
    let ctx = ctx(&bucket, &[&cs, &execute], &[], config());
    let output = check(&ctx, &["App"], 0).await.expect("check");
    assert!(!output.settled);
    assert_eq!(execute.num_calls(), 0);
    assert_eq!(
        bucket.record(&run, "App").map(|r| r.phase),
        Some(Phase::Executing)
    );
}

#[tokio::test]
async fn large_wave_is_observed_with_one_paginated_listing() {
    let bucket = Bucket::default();
    let run = run();
    let names: Vec<String> = (0..12).map(|i| format!("S{i:02}")).collect();
    for n in &names {
        bucket.put_record(&run, &record(n, Operation::Create, Phase::Executing, 1));
    }
    // A settled stack of the wave is not observed again.
    let mut done = record("Done", Operation::Update, Phase::Done, 1);
    done.action = Action::Unchanged;
    bucket.put_record(&run, &done);

    let page = |range: std::ops::Range<usize>, next: Option<&'static str>| {
        let mut b =
            DescribeStacksOutput::builder().stacks(stack("SomeoneElses", "CREATE_COMPLETE"));
        for i in range {
            let status = if i == 11 {
                "CREATE_IN_PROGRESS"
            } else {
                "CREATE_COMPLETE"
            };
            b = b.stacks(stack(&format!("S{i:02}"), status));
        }
        if let Some(n) = next {
            b = b.next_token(n);
        }
        b.build()
    };
    let listing = mock!(Cfn::describe_stacks)
        .match_requests(|r| r.stack_name().is_none())
        .sequence()
        .output(move || page(0..6, Some("page-2")))
        .output(move || page(6..12, None))
        .build();
    let per_stack = mock!(Cfn::describe_stacks)
        .match_requests(|r| r.stack_name().is_some())
        .then_output(|| DescribeStacksOutput::builder().build());
    let ctx = ctx(&bucket, &[&listing, &per_stack], &[], config());

    let mut wave: Vec<&str> = names.iter().map(String::as_str).collect();
    wave.push("Done");
    let output = check(&ctx, &wave, 4).await.expect("check");
    assert_eq!(listing.num_calls(), 2, "two pages");
    assert_eq!(per_stack.num_calls(), 0);
    assert_eq!(
        (output.succeeded, output.in_progress, output.failed),
        (12, 1, 0)
    );
    assert!(!output.settled);
    assert_eq!(
        bucket.record(&run, "S11").map(|r| r.phase),
        Some(Phase::Executing)
    );
    assert_eq!(
        bucket.record(&run, "S00").map(|r| r.action),
        Some(Action::Created)
    );
    assert_eq!(
        bucket.record(&run, "Done").map(|r| r.action),
        Some(Action::Unchanged)
    );
}

#[tokio::test]
async fn a_stack_without_record_is_an_internal_error() {
    let bucket = Bucket::default();
    let ctx = ctx(&bucket, &[], &[], config());
    let err = check(&ctx, &["Ghost"], 0).await.expect_err("no record");
    assert_eq!(err.name(), "InternalError");
    assert!(err.to_string().contains("Ghost"));
}

fn capture_create() -> (Rule, Captured<CreateChangeSetInput>) {
    let seen: Captured<CreateChangeSetInput> = Arc::default();
    let s = seen.clone();
    let rule = mock!(Cfn::create_change_set).then_compute_output(move |req| {
        s.lock().expect("lock").push(req.clone());
        CreateChangeSetOutput::builder().id("cs-1").build()
    });
    (rule, seen)
}

fn template_rule() -> Rule {
    mock!(Cfn::get_template).then_output(|| {
        GetTemplateOutput::builder()
            .template_body("Resources:\n  Queue:\n    Type: AWS::SQS::Queue\n")
            .build()
    })
}

fn one_stack_plan(bucket: &Bucket) {
    bucket.put_json(
        &run().plan_key(),
        &plan(vec![planned("App", "app.yaml", vec![])]),
    );
}

#[tokio::test]
async fn timed_out_update_is_cancelled_and_fails_once_rolled_back() {
    let bucket = Bucket::default();
    let run = run();
    let rec = record("App", Operation::Update, Phase::Executing, 31); // timeout 30 minutes
    bucket.put_record(&run, &rec);
    let start = reconcile::parse_timestamp(&rec.started_at).expect("time");
    let at = move |s: i64| start + chrono::Duration::seconds(s);
    let stacks = mock!(Cfn::describe_stacks)
        .sequence()
        .output(|| out(stack("App", "UPDATE_IN_PROGRESS")))
        .output(|| out(stack("App", "UPDATE_ROLLBACK_IN_PROGRESS")))
        .output(|| out(stack("App", "UPDATE_ROLLBACK_COMPLETE")))
        .build();
    let tok = rec.client_token.clone();
    let events = mock!(Cfn::describe_stack_events).then_output(move || {
        DescribeStackEventsOutput::builder()
            .set_stack_events(Some(vec![
                event(
                    "Service",
                    "AWS::ECS::Service",
                    ResourceStatus::UpdateInProgress,
                    None,
                    at(20),
                    &tok,
                ),
                event(
                    "Queue",
                    "AWS::SQS::Queue",
                    ResourceStatus::UpdateComplete,
                    None,
                    at(10),
                    &tok,
                ),
                event(
                    "Queue",
                    "AWS::SQS::Queue",
                    ResourceStatus::UpdateInProgress,
                    None,
                    at(5),
                    &tok,
                ),
                event(
                    "App",
                    "AWS::CloudFormation::Stack",
                    ResourceStatus::UpdateInProgress,
                    Some("User Initiated"),
                    at(2),
                    &tok,
                ),
            ]))
            .build()
    });
    let cancels: Captured<CancelUpdateStackInput> = Arc::default();
    let c = cancels.clone();
    let cancel = mock!(Cfn::cancel_update_stack).then_compute_output(move |req| {
        c.lock().expect("lock").push(req.clone());
        CancelUpdateStackOutput::builder().build()
    });
    let ctx = ctx(&bucket, &[&stacks, &events, &cancel], &[], config());

    // Check 1: past the timeout while UPDATE_IN_PROGRESS: cancelled, not settled yet.
    let first = check(&ctx, &["App"], 9).await.expect("check 1");
    assert!(!first.settled, "settles only once rolled back");
    let calls = cancels.lock().expect("lock").clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].stack_name(), Some("App"));
    let token = reconcile::client_token_of(&rec, reconcile::OP_CANCEL);
    assert_eq!(calls[0].client_request_token(), Some(token.as_str()));
    let r = bucket.record(&run, "App").expect("record");
    assert_eq!(r.phase, Phase::CancellingTimeout);
    assert_eq!(r.action, Action::InProgress);
    let cause = r.root_cause.clone().expect("what hangs");
    assert_eq!(cause.logical_id, "Service");
    assert_eq!(cause.resource_type, "AWS::ECS::Service");
    assert_eq!(cause.status, "UPDATE_IN_PROGRESS");

    // Check 2: rolling back: wait, nothing called.
    let second = check(&ctx, &["App"], 10).await.expect("check 2");
    assert!(!second.settled);
    assert_eq!(cancel.num_calls(), 1, "cancelled once");

    // Check 3: rolled back: failed with StackTimeout, the hanging resource kept as root cause.
    let third = check(&ctx, &["App"], 11).await.expect("check 3");
    assert!(third.settled && third.any_failed);
    let r = bucket.record(&run, "App").expect("record");
    assert_eq!(r.phase, Phase::Done);
    assert_eq!(r.action, Action::Failed);
    assert!(r.reason.starts_with("StackTimeout:"), "{}", r.reason);
    assert!(r.reason.contains("30"), "{}", r.reason);
    assert!(
        r.reason.contains("UPDATE_ROLLBACK_COMPLETE"),
        "{}",
        r.reason
    );
    assert!(r.reason.contains("raise timeoutMinutes"), "{}", r.reason);
    assert_eq!(
        r.root_cause.map(|c| c.logical_id),
        Some("Service".to_string())
    );
    assert_eq!(cancel.num_calls(), 1);
}

#[tokio::test]
async fn timed_out_create_cannot_be_cancelled_and_fails_at_once() {
    let bucket = Bucket::default();
    let run = run();
    let rec = record("App", Operation::Create, Phase::Executing, 31);
    bucket.put_record(&run, &rec);
    let stacks =
        mock!(Cfn::describe_stacks).then_output(|| out(stack("App", "CREATE_IN_PROGRESS")));
    let events = mock!(Cfn::describe_stack_events)
        .then_output(|| DescribeStackEventsOutput::builder().build());
    let ctx = ctx(&bucket, &[&stacks, &events], &[], config());
    let output = check(&ctx, &["App"], 9).await.expect("check");
    assert!(output.settled && output.any_failed);
    let r: StackRecord = bucket.record(&run, "App").expect("record");
    assert!(r.reason.starts_with("StackTimeout:"), "{}", r.reason);
    assert!(r.reason.contains("CREATE_IN_PROGRESS"), "{}", r.reason);
    assert!(r.reason.contains("cannot be cancelled"), "{}", r.reason);
    assert_eq!(events.num_calls(), 1, "looked for what hangs");
}

#[tokio::test]
async fn a_cancel_refused_by_validation_follows_the_stack() {
    let bucket = Bucket::default();
    let run = run();
    let rec = record("App", Operation::Update, Phase::Executing, 31);
    bucket.put_record(&run, &rec);
    let stacks = mock!(Cfn::describe_stacks)
        .sequence()
        .output(|| out(stack("App", "UPDATE_IN_PROGRESS")))
        .output(|| out(stack("App", "UPDATE_COMPLETE")))
        .build();
    let events = mock!(Cfn::describe_stack_events)
        .then_output(|| DescribeStackEventsOutput::builder().build());
    let cancel = mock!(Cfn::cancel_update_stack).then_error(|| {
        CancelUpdateStackError::generic(
            aws_sdk_cloudformation::error::ErrorMetadata::builder()
                .code("ValidationError")
                .message("CancelUpdateStack cannot be called from current stack status")
                .build(),
        )
    });
    let ctx = ctx(&bucket, &[&stacks, &events, &cancel], &[], config());
    let first = check(&ctx, &["App"], 9).await.expect("check 1");
    assert!(!first.settled);
    let second = check(&ctx, &["App"], 10).await.expect("check 2");
    assert!(second.settled && !second.any_failed);
    let r = bucket.record(&run, "App").expect("record");
    assert_eq!(r.action, Action::Updated);
    assert!(
        r.reason.contains("before the cancel took effect"),
        "{}",
        r.reason
    );
}

#[tokio::test]
async fn continued_rollback_completes_then_the_update_starts() {
    let bucket = Bucket::default();
    let run = run();
    one_stack_plan(&bucket);
    let mut rec = record("App", Operation::Update, Phase::ContinuingRollback, 2);
    rec.status = Some("UPDATE_ROLLBACK_FAILED".into());
    bucket.put_record(&run, &rec);
    let stacks = mock!(Cfn::describe_stacks)
        .sequence()
        .output(|| out(stack("App", "UPDATE_ROLLBACK_IN_PROGRESS")))
        .output(|| out(stack("App", "UPDATE_ROLLBACK_COMPLETE")))
        .output(|| {
            out(with_parameters_and_tags(
                stack("App", "UPDATE_ROLLBACK_COMPLETE"),
                &[("Env", "dev")],
                &[("Project", "bellyfed")],
            ))
        })
        .build();
    let template = template_rule();
    let (create, seen) = capture_create();
    let ctx = ctx(&bucket, &[&stacks, &template, &create], &[], config());

    let first = check(&ctx, &["App"], 0).await.expect("check 1");
    assert!(!first.settled);
    assert_eq!(create.num_calls(), 0, "not before the rollback completed");
    let r = bucket.record(&run, "App").expect("record");
    assert_eq!(r.phase, Phase::ContinuingRollback);
    assert_eq!(r.status.as_deref(), Some("UPDATE_ROLLBACK_IN_PROGRESS"));

    let second = check(&ctx, &["App"], 1).await.expect("check 2");
    assert!(!second.settled);
    let calls = seen.lock().expect("lock").clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].change_set_type(), Some(&ChangeSetType::Update));
    assert_eq!(
        calls[0].change_set_name(),
        Some(rec.change_set_name.as_str())
    );
    let r = bucket.record(&run, "App").expect("record");
    assert_eq!(r.phase, Phase::ChangeSetPending);
    assert_eq!(r.operation, Operation::Update);
    let snapshot = r.snapshot.expect("snapshot of the rolled-back stack");
    assert_eq!(
        snapshot.parameters,
        vec![("Env".to_string(), "dev".to_string())]
    );
    assert_eq!(
        bucket.get(&snapshot.template_key).as_deref(),
        Some(b"Resources:\n  Queue:\n    Type: AWS::SQS::Queue\n".as_slice())
    );
}

#[tokio::test]
async fn a_rollback_that_fails_again_fails_the_stack_with_the_root_cause() {
    let bucket = Bucket::default();
    let run = run();
    one_stack_plan(&bucket);
    let rec = record("App", Operation::Update, Phase::ContinuingRollback, 2);
    bucket.put_record(&run, &rec);
    let start = reconcile::parse_timestamp(&rec.started_at).expect("time");
    let mut failed = stack("App", "UPDATE_ROLLBACK_FAILED");
    failed.stack_status_reason =
        Some("The following resource(s) failed to update: [Bucket].".into());
    let stacks = mock!(Cfn::describe_stacks).then_output(move || out(failed.clone()));
    let tok = reconcile::client_token_of(&rec, reconcile::OP_CONTINUE);
    let events = mock!(Cfn::describe_stack_events).then_output(move || {
        DescribeStackEventsOutput::builder()
            .set_stack_events(Some(vec![
                event(
                    "App",
                    "AWS::CloudFormation::Stack",
                    ResourceStatus::UpdateRollbackFailed,
                    None,
                    start + chrono::Duration::seconds(30),
                    &tok,
                ),
                event(
                    "Bucket",
                    "AWS::S3::Bucket",
                    ResourceStatus::UpdateFailed,
                    Some("Access Denied"),
                    start + chrono::Duration::seconds(20),
                    &tok,
                ),
            ]))
            .build()
    });
    let (create, _) = capture_create();
    let ctx = ctx(&bucket, &[&stacks, &events, &create], &[], config());
    let output = check(&ctx, &["App"], 0).await.expect("check");
    assert!(output.settled && output.any_failed);
    let r = bucket.record(&run, "App").expect("record");
    assert_eq!(r.action, Action::Failed);
    assert!(
        r.reason.contains("UPDATE_ROLLBACK_FAILED again"),
        "{}",
        r.reason
    );
    assert!(r.reason.contains("[Bucket]"), "{}", r.reason);
    assert!(r.reason.contains("Fix:"), "{}", r.reason);
    let cause = r.root_cause.expect("root cause");
    assert_eq!(cause.logical_id, "Bucket");
    assert_eq!(cause.reason, "Access Denied");
    assert_eq!(create.num_calls(), 0);
}

#[tokio::test]
async fn waiting_for_another_operation_then_updating() {
    let bucket = Bucket::default();
    let run = run();
    one_stack_plan(&bucket);
    let rec = record("App", Operation::Update, Phase::WaitingForOther, 2);
    bucket.put_record(&run, &rec);
    let stacks = mock!(Cfn::describe_stacks)
        .sequence()
        .output(|| out(stack("App", "UPDATE_IN_PROGRESS")))
        .output(|| out(stack("App", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")))
        .output(|| out(stack("App", "UPDATE_COMPLETE")))
        .output(|| out(stack("App", "UPDATE_COMPLETE")))
        .build();
    let template = template_rule();
    let (create, seen) = capture_create();
    let ctx = ctx(&bucket, &[&stacks, &template, &create], &[], config());

    for attempt in 0..2 {
        let o = check(&ctx, &["App"], attempt).await.expect("check");
        assert!(!o.settled);
        assert_eq!(create.num_calls(), 0, "nothing while the other runs");
        assert_eq!(
            bucket.record(&run, "App").map(|r| r.phase),
            Some(Phase::WaitingForOther)
        );
    }
    let o = check(&ctx, &["App"], 2).await.expect("check");
    assert!(!o.settled);
    let calls = seen.lock().expect("lock").clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].change_set_type(), Some(&ChangeSetType::Update));
    let r = bucket.record(&run, "App").expect("record");
    assert_eq!(r.phase, Phase::ChangeSetPending);
    assert!(r.snapshot.is_some());
}

#[tokio::test]
async fn waiting_for_another_create_that_rolled_back_deletes_the_leftover() {
    let bucket = Bucket::default();
    let run = run();
    one_stack_plan(&bucket);
    let rec = record("App", Operation::Update, Phase::WaitingForOther, 2);
    bucket.put_record(&run, &rec);
    let stacks = mock!(Cfn::describe_stacks).then_output(|| out(stack("App", "ROLLBACK_COMPLETE")));
    let deletes: Captured<DeleteStackInput> = Arc::default();
    let d = deletes.clone();
    let delete = mock!(Cfn::delete_stack).then_compute_output(move |req| {
        d.lock().expect("lock").push(req.clone());
        DeleteStackOutput::builder().build()
    });
    let ctx = ctx(&bucket, &[&stacks, &delete], &[], config());
    let o = check(&ctx, &["App"], 0).await.expect("check");
    assert!(!o.settled);
    let calls = deletes.lock().expect("lock").clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].client_request_token(),
        Some(reconcile::client_token_of(&rec, reconcile::OP_DELETE).as_str())
    );
    let r = bucket.record(&run, "App").expect("record");
    assert_eq!(r.phase, Phase::DeletingLeftover);
    assert_eq!(r.operation, Operation::Recreate);
}

#[tokio::test]
async fn waiting_past_the_timeout_fails_without_touching_the_stack() {
    let bucket = Bucket::default();
    let run = run();
    one_stack_plan(&bucket);
    let rec = record("App", Operation::Update, Phase::WaitingForOther, 31);
    bucket.put_record(&run, &rec);
    let stacks =
        mock!(Cfn::describe_stacks).then_output(|| out(stack("App", "UPDATE_IN_PROGRESS")));
    // No cancel rule: cancelling another's operation would fail the test.
    let ctx = ctx(&bucket, &[&stacks], &[], config());
    let o = check(&ctx, &["App"], 9).await.expect("check");
    assert!(o.settled && o.any_failed);
    let r = bucket.record(&run, "App").expect("record");
    assert!(r.reason.starts_with("StackTimeout:"), "{}", r.reason);
    assert!(r.reason.contains("another operation"), "{}", r.reason);
    assert_eq!(r.operation, Operation::Update);
}

#[tokio::test]
async fn a_throttled_listing_of_a_large_wave_is_no_news_for_all_of_it() {
    let bucket = Bucket::default();
    let run = run();
    let names: Vec<String> = (0..12).map(|i| format!("S{i:02}")).collect();
    for n in &names {
        bucket.put_record(&run, &record(n, Operation::Create, Phase::Executing, 1));
    }
    let listing = mock!(Cfn::describe_stacks)
        .match_requests(|r| r.stack_name().is_none())
        .then_error(|| DescribeStacksError::generic(throttling()));
    let ctx = ctx(&bucket, &[&listing], &[], config());
    let wave: Vec<&str> = names.iter().map(String::as_str).collect();
    let out = check(&ctx, &wave, 0).await.expect("no news");
    assert!(!out.settled);
    assert_eq!(out.in_progress, 12);
    for n in &names {
        assert_eq!(
            bucket.record(&run, n).map(|r| r.phase),
            Some(Phase::Executing)
        );
    }
}

#[tokio::test]
async fn deploy_errored_records_a_stack_without_a_record_and_leaves_one_it_has() {
    let bucket = Bucket::default();
    let run = run();
    bucket.put_json(
        &run.plan_key(),
        &plan(vec![
            planned("App", "app.yaml", vec![]),
            planned("Db", "db.yaml", vec![]),
        ]),
    );
    // Db's deploy-stack wrote its record before its answer was lost.
    let db = record("Db", Operation::Create, Phase::Executing, 1);
    bucket.put_record(&run, &db);
    // No CloudFormation call: the step only reads and writes records.
    let ctx = ctx(&bucket, &[], &[], config());
    let errored = |stack: &str, error: &str, cause: &str| {
        serde_json::json!({
            "mode": "deploy_errored",
            "run": run.clone(),
            "stack": stack,
            "error": {"Error": error, "Cause": cause},
        })
    };

    let answer = stackwave_check::handle_json(
        &ctx,
        errored(
            "App",
            "Lambda.Unknown",
            r#"{"errorMessage":"the function exited without an answer","errorType":"Lambda.Unknown"}"#,
        ),
    )
    .await
    .expect("recorded");
    assert_eq!(
        answer,
        serde_json::json!({"stack": "App", "recordedFailed": true})
    );
    let app = bucket.record(&run, "App").expect("App's record");
    assert_eq!((app.phase, app.action), (Phase::Done, Action::Failed));
    assert!(
        app.reason.starts_with(
            "deploy-stack failed on stack App past its retries with Lambda.Unknown \
             (the function exited without an answer)."
        ),
        "{}",
        app.reason
    );

    let answer = stackwave_check::handle_json(&ctx, errored("Db", "Sandbox.Timedout", ""))
        .await
        .expect("left");
    assert_eq!(
        answer,
        serde_json::json!({"stack": "Db", "recordedFailed": false})
    );
    assert_eq!(bucket.record(&run, "Db"), Some(db));

    // A stack outside the plan is a bug in the input, named as such.
    let err = stackwave_check::handle_json(&ctx, errored("Nope", "Lambda.Unknown", ""))
        .await
        .expect_err("not in the plan");
    assert!(
        err.to_string().contains("stack Nope is not in the plan"),
        "{err}"
    );
}
