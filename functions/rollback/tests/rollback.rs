//! The rollback function's reactions to AWS answers, with scripted SDK responses.

#[macro_use]
#[path = "../../deploy-stack/tests/support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};

use aws_sdk_cloudformation::error::ErrorMetadata;
use aws_sdk_cloudformation::operation::delete_stack::{
    DeleteStackError, DeleteStackInput, DeleteStackOutput,
};
use aws_sdk_cloudformation::operation::update_stack::{
    UpdateStackError, UpdateStackInput, UpdateStackOutput,
};
use aws_sdk_cloudformation::types::Capability;
use aws_sdk_cloudformation::Client as Cfn;
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use aws_smithy_mocks::{create_mock_http_client, mock, MockResponseInterceptor, Rule, RuleMode};
use serde_json::json;
use stackwave_aws::{Clients, Ctx};
use stackwave_core::io::{RollbackInput, RollbackStackOutput};
use stackwave_core::record::{
    Action, Operation, Phase, RollbackOperation, RollbackPhase, Snapshot, StackRecord,
};
use stackwave_core::rollback;
use stackwave_rollback::{handle, handle_json, RollbackOutput};
use support::*;

type Captured<T> = Arc<Mutex<Vec<T>>>;

const ROLE: &str = "arn:aws:iam::123456789012:role/stackwave-cfn";

fn settled(stack: &str, operation: Operation, action: Action, status: &str) -> StackRecord {
    let mut r = record(stack, operation, Phase::Done, 5);
    r.action = action;
    r.status = Some(status.into());
    r
}

fn updated_with_snapshot(stack: &str) -> StackRecord {
    let mut r = settled(stack, Operation::Update, Action::Updated, "UPDATE_COMPLETE");
    r.snapshot = Some(Snapshot {
        template_key: format!("{}snapshots/{stack}.template", run().run_prefix),
        parameters: vec![
            ("Cidr".into(), "10.0.0.0/16".into()),
            ("DbPassword".into(), "****".into()),
        ],
        tags: vec![
            ("Project".into(), "bellyfed".into()),
            ("Owner".into(), "ops".into()),
        ],
        secrets: vec![],
    });
    r
}

async fn stack(ctx: &Ctx, name: &str) -> Result<RollbackStackOutput, stackwave_core::Error> {
    match handle(
        ctx,
        RollbackInput::Stack {
            run: run(),
            stack: name.into(),
        },
    )
    .await?
    {
        RollbackOutput::Stack(out) => Ok(out),
        other => Err(stackwave_core::Error::Internal(format!(
            "unexpected answer {other:?}"
        ))),
    }
}

fn capture_delete() -> (Rule, Captured<DeleteStackInput>) {
    let seen: Captured<DeleteStackInput> = Arc::default();
    let s = seen.clone();
    let rule = mock!(Cfn::delete_stack).then_compute_output(move |req| {
        s.lock().expect("lock").push(req.clone());
        DeleteStackOutput::builder().build()
    });
    (rule, seen)
}

fn capture_update() -> (Rule, Captured<UpdateStackInput>) {
    let seen: Captured<UpdateStackInput> = Arc::default();
    let s = seen.clone();
    let rule = mock!(Cfn::update_stack).then_compute_output(move |req| {
        s.lock().expect("lock").push(req.clone());
        UpdateStackOutput::builder()
            .stack_id("arn:aws:cloudformation:us-east-1:123456789012:stack/Net/1")
            .build()
    });
    (rule, seen)
}

fn validation(message: &str) -> ErrorMetadata {
    ErrorMetadata::builder()
        .code("ValidationError")
        .message(message)
        .build()
}

fn rollback_of(bucket: &Bucket, stack: &str) -> stackwave_core::record::RollbackState {
    bucket
        .record(&run(), stack)
        .and_then(|r| r.rollback)
        .expect("rollback recorded")
}

#[tokio::test]
async fn a_stack_this_run_created_is_deleted_once() {
    let bucket = Bucket::default();
    let run = run();
    bucket.put_record(
        &run,
        &settled("Ecs", Operation::Create, Action::Created, "CREATE_COMPLETE"),
    );
    let (delete, seen) = capture_delete();
    let mut config = config();
    config.cfn_role_arn = Some(ROLE.into());
    let ctx = ctx(&bucket, &[&delete], &[], config);

    let out = stack(&ctx, "Ecs").await.expect("started");
    assert_eq!(out.stack, "Ecs");
    assert_eq!(out.operation.as_deref(), Some("delete"));
    assert_eq!(out.outcome, None);

    let calls = seen.lock().expect("lock").clone();
    assert_eq!(calls.len(), 1);
    let token = rollback::client_token(EXECUTION, "Ecs");
    assert_eq!(calls[0].stack_name(), Some("Ecs"));
    assert_eq!(calls[0].client_request_token(), Some(token.as_str()));
    assert_eq!(calls[0].role_arn(), Some(ROLE));

    let state = rollback_of(&bucket, "Ecs");
    assert_eq!(state.operation, RollbackOperation::Delete);
    assert_eq!(state.phase, RollbackPhase::Executing);
    assert_eq!(state.client_token, token);
    assert_eq!(state.outcome, None);
    // the deployment's own record is kept
    let rec = bucket.record(&run, "Ecs").expect("record");
    assert_eq!(rec.action, Action::Created);

    // a retried invoke starts nothing
    let again = stack(&ctx, "Ecs").await.expect("retried");
    assert_eq!(again, out);
    assert_eq!(delete.num_calls(), 1);
}

#[tokio::test]
async fn a_failed_create_that_left_a_stack_is_deleted() {
    let bucket = Bucket::default();
    let run = run();
    bucket.put_record(
        &run,
        &settled("Db", Operation::Create, Action::Failed, "ROLLBACK_COMPLETE"),
    );
    let (delete, seen) = capture_delete();
    let ctx = ctx(&bucket, &[&delete], &[], config());
    let out = stack(&ctx, "Db").await.expect("started");
    assert_eq!(out.operation.as_deref(), Some("delete"));
    assert_eq!(seen.lock().expect("lock")[0].stack_name(), Some("Db"));
    assert_eq!(seen.lock().expect("lock")[0].role_arn(), None);
    assert_eq!(rollback_of(&bucket, "Db").phase, RollbackPhase::Executing);
}

#[tokio::test]
async fn a_stack_this_run_updated_is_restored_from_its_snapshot() {
    let bucket = Bucket::default();
    let run = run();
    bucket.put_json(
        &run.plan_key(),
        &plan(vec![planned("Net", "net.yaml", vec![])]),
    );
    bucket.put_record(&run, &updated_with_snapshot("Net"));
    let (update, seen) = capture_update();
    let mut config = config();
    config.cfn_role_arn = Some(ROLE.into());
    let ctx = ctx(&bucket, &[&update], &[], config);

    let out = stack(&ctx, "Net").await.expect("started");
    assert_eq!(out.operation.as_deref(), Some("restore"));
    assert_eq!(out.outcome, None);

    let calls = seen.lock().expect("lock").clone();
    assert_eq!(calls.len(), 1);
    let req = &calls[0];
    assert_eq!(req.stack_name(), Some("Net"));
    assert_eq!(
        req.template_url(),
        Some(
            format!(
                "https://{BUCKET}.s3.us-east-1.amazonaws.com/{}snapshots/Net.template",
                run.run_prefix
            )
            .as_str()
        )
    );
    assert_eq!(req.template_body(), None);
    let params: Vec<(&str, Option<&str>, Option<bool>)> = req
        .parameters()
        .iter()
        .map(|p| {
            (
                p.parameter_key().unwrap_or_default(),
                p.parameter_value(),
                p.use_previous_value(),
            )
        })
        .collect();
    assert_eq!(
        params,
        vec![
            ("Cidr", Some("10.0.0.0/16"), None),
            // NoEcho: masked by DescribeStacks, so the current value is kept
            ("DbPassword", None, Some(true)),
        ]
    );
    let tags: Vec<(&str, &str)> = req
        .tags()
        .iter()
        .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()))
        .collect();
    assert_eq!(tags, vec![("Project", "bellyfed"), ("Owner", "ops")]);
    assert_eq!(req.capabilities(), &[Capability::CapabilityNamedIam]);
    assert_eq!(req.role_arn(), Some(ROLE));
    let token = rollback::client_token(EXECUTION, "Net");
    assert_eq!(req.client_request_token(), Some(token.as_str()));

    let state = rollback_of(&bucket, "Net");
    assert_eq!(state.operation, RollbackOperation::Restore);
    assert_eq!(state.phase, RollbackPhase::Executing);
}

#[tokio::test]
async fn the_emulator_gets_a_path_style_template_url() {
    let bucket = Bucket::default();
    let run = run();
    bucket.put_json(
        &run.plan_key(),
        &plan(vec![planned("Net", "net.yaml", vec![])]),
    );
    bucket.put_record(&run, &updated_with_snapshot("Net"));
    let (update, seen) = capture_update();
    let mut config = config();
    config.endpoint_url = Some("http://127.0.0.1:4566".into());
    let ctx = ctx(&bucket, &[&update], &[], config);
    stack(&ctx, "Net").await.expect("started");
    assert_eq!(
        seen.lock().expect("lock")[0].template_url(),
        Some(
            format!(
                "http://127.0.0.1:4566/{BUCKET}/{}snapshots/Net.template",
                run.run_prefix
            )
            .as_str()
        )
    );
}

#[tokio::test]
async fn no_updates_to_perform_means_already_restored() {
    let bucket = Bucket::default();
    let run = run();
    bucket.put_json(
        &run.plan_key(),
        &plan(vec![planned("Net", "net.yaml", vec![])]),
    );
    bucket.put_record(&run, &updated_with_snapshot("Net"));
    let update = mock!(Cfn::update_stack)
        .then_error(|| UpdateStackError::generic(validation("No updates are to be performed.")));
    let ctx = ctx(&bucket, &[&update], &[], config());
    let out = stack(&ctx, "Net").await.expect("settled");
    assert_eq!(out.outcome, Some(Action::RolledBack));
    let state = rollback_of(&bucket, "Net");
    assert_eq!(state.phase, RollbackPhase::Done);
    assert_eq!(state.outcome, Some(Action::RolledBack));
    assert_eq!(state.reason, rollback::ALREADY_RESTORED_REASON);
    assert!(state.finished_at.is_some());
}

#[tokio::test]
async fn a_delete_that_cannot_start_is_recorded_rollback_failed() {
    let bucket = Bucket::default();
    let run = run();
    bucket.put_record(
        &run,
        &settled("Ecs", Operation::Create, Action::Created, "CREATE_COMPLETE"),
    );
    let delete = mock!(Cfn::delete_stack).then_error(|| {
        DeleteStackError::generic(validation(
            "Stack [Ecs] cannot be deleted while TerminationProtection is enabled",
        ))
    });
    let ctx = ctx(&bucket, &[&delete], &[], config());
    let out = stack(&ctx, "Ecs").await.expect("returns normally");
    assert_eq!(out.outcome, Some(Action::RollbackFailed));
    let state = rollback_of(&bucket, "Ecs");
    assert_eq!(state.phase, RollbackPhase::Done);
    assert_eq!(state.outcome, Some(Action::RollbackFailed));
    assert!(
        state.reason.starts_with(
            "deleting the stack (created by this run) could not be started: AWS cloudformation:DeleteStack failed (ValidationError): Stack [Ecs] cannot be deleted while TerminationProtection is enabled. Fix: "
        ),
        "{}",
        state.reason
    );
}

#[tokio::test]
async fn a_restore_that_cannot_start_names_the_snapshot() {
    let bucket = Bucket::default();
    let run = run();
    bucket.put_json(
        &run.plan_key(),
        &plan(vec![planned("Net", "net.yaml", vec![])]),
    );
    bucket.put_record(&run, &updated_with_snapshot("Net"));
    let update = mock!(Cfn::update_stack)
        .then_error(|| UpdateStackError::generic(validation("Template format error: bad")));
    let ctx = ctx(&bucket, &[&update], &[], config());
    let out = stack(&ctx, "Net").await.expect("returns normally");
    assert_eq!(out.outcome, Some(Action::RollbackFailed));
    let reason = rollback_of(&bucket, "Net").reason;
    assert!(reason.contains("Template format error: bad"), "{reason}");
    assert!(
        reason.contains(&format!(
            "previous template (kept at {}snapshots/Net.template",
            run.run_prefix
        )),
        "{reason}"
    );

    // an update without a snapshot cannot be restored: rollback_failed, nothing called
    let bucket = Bucket::default();
    let mut no_snapshot = updated_with_snapshot("Net");
    no_snapshot.snapshot = None;
    bucket.put_record(&run, &no_snapshot);
    let ctx = support::ctx(&bucket, &[], &[], config());
    let out = stack(&ctx, "Net").await.expect("returns normally");
    assert_eq!(out.outcome, Some(Action::RollbackFailed));
    let reason = rollback_of(&bucket, "Net").reason;
    assert!(reason.contains("took no snapshot"), "{reason}");
    assert!(
        reason.contains("Fix: redeploy the previous version"),
        "{reason}"
    );
}

#[tokio::test]
async fn throttling_escapes_for_the_state_machine_to_retry() {
    let bucket = Bucket::default();
    let run = run();
    bucket.put_record(
        &run,
        &settled("Ecs", Operation::Create, Action::Created, "CREATE_COMPLETE"),
    );
    let delete = mock!(Cfn::delete_stack).then_error(|| DeleteStackError::generic(throttling()));
    let ctx = ctx(&bucket, &[&delete], &[], config());
    let err = stack(&ctx, "Ecs").await.expect_err("throttled");
    assert_eq!(err.name(), "Throttled");
    assert!(bucket
        .record(&run, "Ecs")
        .and_then(|r| r.rollback)
        .is_none());
}

#[tokio::test]
async fn stacks_the_run_did_not_change_are_not_touched() {
    let bucket = Bucket::default();
    let run = run();
    bucket.put_record(
        &run,
        &settled(
            "Net",
            Operation::Update,
            Action::Unchanged,
            "UPDATE_COMPLETE",
        ),
    );
    bucket.put_record(
        &run,
        &settled(
            "Db",
            Operation::Update,
            Action::Failed,
            "UPDATE_ROLLBACK_COMPLETE",
        ),
    );
    // no CloudFormation rule: any call fails the test
    let ctx = ctx(&bucket, &[], &[], config());
    for name in ["Net", "Db"] {
        let out = stack(&ctx, name).await.expect("nothing to do");
        assert_eq!((out.operation, out.outcome), (None, None));
        assert!(bucket.record(&run, name).and_then(|r| r.rollback).is_none());
    }
    let err = stack(&ctx, "Ghost").await.expect_err("no record");
    assert_eq!(err.name(), "InternalError");
    assert!(err.to_string().contains("stack Ghost has no record"));
}

/// S3 answering GetObject/PutObject from the bucket and ListObjectsV2 from its keys.
fn ctx_with_listing(bucket: &Bucket) -> Ctx {
    let objects = bucket.objects.clone();
    let list = mock!(aws_sdk_s3::Client::list_objects_v2).then_compute_output(move |req| {
        let prefix = req.prefix().unwrap_or_default().to_string();
        let mut keys: Vec<String> = objects
            .lock()
            .expect("lock")
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .cloned()
            .collect();
        keys.sort();
        ListObjectsV2Output::builder()
            .set_contents(Some(
                keys.into_iter()
                    .map(|k| aws_sdk_s3::types::Object::builder().key(k).build())
                    .collect(),
            ))
            .key_count(1)
            .is_truncated(false)
            .build()
    });
    let mut s3_rules = bucket.rules();
    s3_rules.push(list);
    let none: [&Rule; 0] = [];
    Ctx {
        clients: Clients {
            cfn: mocked_client!(aws_sdk_cloudformation, none.iter().copied()),
            s3: mocked_client!(aws_sdk_s3, s3_rules.iter()),
            ssm: mocked_client!(aws_sdk_ssm, none.iter().copied()),
            sns: mocked_client!(aws_sdk_sns, none.iter().copied()),
            sfn: mocked_client!(aws_sdk_sfn, none.iter().copied()),
        },
        config: config(),
    }
}

#[tokio::test]
async fn plan_lists_changed_stacks_dependents_first() {
    let bucket = Bucket::default();
    let run = run();
    let mut app = planned("App", "app.yaml", vec![]);
    app.depends_on = vec!["Net".into()];
    app.wave = 1;
    let mut p = plan(vec![
        planned("Net", "net.yaml", vec![]),
        planned("Logs", "logs.yaml", vec![]),
        app,
    ]);
    p.stages[0].waves = vec![vec!["Net".into(), "Logs".into()], vec!["App".into()]];
    bucket.put_json(&run.plan_key(), &p);
    bucket.put_record(&run, &updated_with_snapshot("Net"));
    bucket.put_record(
        &run,
        &settled(
            "Logs",
            Operation::Update,
            Action::Unchanged,
            "UPDATE_COMPLETE",
        ),
    );
    bucket.put_record(
        &run,
        &settled(
            "App",
            Operation::Create,
            Action::Failed,
            "ROLLBACK_COMPLETE",
        ),
    );
    let ctx = ctx_with_listing(&bucket);

    let out = handle_json(&ctx, json!({"action": "plan", "run": run}))
        .await
        .expect("planned");
    assert_eq!(out, json!({"waves": [["App"], ["Net"]], "count": 2}));
}

#[tokio::test]
async fn wrong_input_shows_the_accepted_shapes() {
    let ctx = ctx_with_listing(&Bucket::default());
    for bad in [
        json!({"action": "undo", "run": run()}),
        json!({"run": run()}),
        json!({"action": "stack", "run": run()}),
        json!({"action": "plan", "run": run(), "extra": 1}),
    ] {
        let err = handle_json(&ctx, bad.clone()).await.expect_err("invalid");
        assert_eq!(err.name(), "InvalidInput", "{bad}");
        assert!(err.to_string().contains("\"action\": \"plan\""), "{err}");
    }
}
