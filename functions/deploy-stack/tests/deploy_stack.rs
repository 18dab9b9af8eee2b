//! deploy-stack's reactions to AWS answers, with scripted SDK responses.

mod support;

use std::sync::{Arc, Mutex};

use aws_sdk_cloudformation::operation::continue_update_rollback::{
    ContinueUpdateRollbackError, ContinueUpdateRollbackInput, ContinueUpdateRollbackOutput,
};
use aws_sdk_cloudformation::operation::create_change_set::{
    CreateChangeSetError, CreateChangeSetInput, CreateChangeSetOutput,
};
use aws_sdk_cloudformation::operation::delete_stack::{DeleteStackInput, DeleteStackOutput};
use aws_sdk_cloudformation::operation::describe_stacks::{
    DescribeStacksError, DescribeStacksOutput,
};
use aws_sdk_cloudformation::operation::get_template::GetTemplateOutput;
use aws_sdk_cloudformation::types::{Capability, ChangeSetType, TemplateStage};
use aws_sdk_cloudformation::Client as Cfn;
use aws_sdk_ssm::operation::get_parameter::{GetParameterError, GetParameterOutput};
use aws_sdk_ssm::Client as Ssm;
use aws_smithy_mocks::{mock, Rule};
use stackwave_core::io::DeployStackInput;
use stackwave_core::manifest::ParamValue;
use stackwave_core::reconcile;
use stackwave_core::record::{Action, Operation, Phase};
use stackwave_core::Error;
use stackwave_deploy_stack::handle;
use support::*;

fn input(stack: &str) -> DeployStackInput {
    DeployStackInput {
        run: run(),
        stack: stack.into(),
    }
}

fn describe(name: &'static str, stack: aws_sdk_cloudformation::types::Stack) -> Rule {
    mock!(Cfn::describe_stacks)
        .match_requests(move |r| r.stack_name() == Some(name))
        .then_output(move || {
            DescribeStacksOutput::builder()
                .stacks(stack.clone())
                .build()
        })
}

fn absent(name: &'static str) -> Rule {
    mock!(Cfn::describe_stacks)
        .match_requests(move |r| r.stack_name() == Some(name))
        .then_error(move || DescribeStacksError::generic(does_not_exist(name)))
}

type Captured<T> = Arc<Mutex<Vec<T>>>;

fn capture_create() -> (Rule, Captured<CreateChangeSetInput>) {
    let seen: Captured<CreateChangeSetInput> = Arc::default();
    let s = seen.clone();
    let rule = mock!(Cfn::create_change_set).then_compute_output(move |req| {
        s.lock().expect("lock").push(req.clone());
        CreateChangeSetOutput::builder()
            .id(format!(
                "arn:aws:cloudformation:us-east-1:123456789012:changeSet/{}/1",
                req.change_set_name().unwrap_or_default()
            ))
            .build()
    });
    (rule, seen)
}

fn ssm_value(name: &'static str, value: &'static str) -> Rule {
    mock!(Ssm::get_parameter)
        .match_requests(move |r| r.name() == Some(name))
        .then_output(move || {
            GetParameterOutput::builder()
                .parameter(
                    aws_sdk_ssm::types::Parameter::builder()
                        .name(name)
                        .value(value)
                        .build(),
                )
                .build()
        })
}

fn app_plan() -> stackwave_core::plan::Plan {
    plan(vec![
        planned("Net", "net.yaml", vec![]),
        planned(
            "App",
            "app.yaml",
            vec![
                ("Env", ParamValue::Literal("dev".into())),
                (
                    "VpcId",
                    ParamValue::Output {
                        output: "Net.VpcId".into(),
                    },
                ),
                (
                    "Image",
                    ParamValue::Ssm {
                        ssm: "/app/image".into(),
                    },
                ),
            ],
        ),
    ])
}

#[tokio::test]
async fn create_resolves_parameters_and_starts_a_create_change_set_once() {
    let bucket = Bucket::default();
    let run = run();
    bucket.put_json(&run.plan_key(), &app_plan());
    let net = describe(
        "Net",
        with_outputs(
            stack("Net", "CREATE_COMPLETE"),
            &[("VpcId", "vpc-123"), ("Other", "x")],
        ),
    );
    let app = absent("App");
    let (create, seen) = capture_create();
    let image = ssm_value("/app/image", "typesense/typesense:28.0");
    let mut config = config();
    config.cfn_role_arn = Some("arn:aws:iam::123456789012:role/stackwave-cfn".into());
    let ctx = ctx(&bucket, &[&net, &app, &create], &[&image], config);

    let out = handle(&ctx, input("App")).await.expect("started");
    assert_eq!(out.stack, "App");
    assert_eq!(out.operation, "create");

    let calls = seen.lock().expect("lock").clone();
    assert_eq!(calls.len(), 1);
    let req = &calls[0];
    let name = reconcile::change_set_name(EXECUTION, "App");
    assert_eq!(req.stack_name(), Some("App"));
    assert_eq!(req.change_set_name(), Some(name.as_str()));
    assert_eq!(
        req.client_token(),
        Some(name.as_str()),
        "ClientToken is the change set name"
    );
    assert_eq!(req.change_set_type(), Some(&ChangeSetType::Create));
    assert_eq!(
        req.template_url(),
        Some(
            format!(
                "https://{BUCKET}.s3.us-east-1.amazonaws.com/{}",
                template_key("app.yaml")
            )
            .as_str()
        )
    );
    let params: Vec<(&str, &str)> = req
        .parameters()
        .iter()
        .map(|p| {
            (
                p.parameter_key().unwrap_or_default(),
                p.parameter_value().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        params,
        vec![
            ("Env", "dev"),
            ("Image", "typesense/typesense:28.0"),
            ("VpcId", "vpc-123")
        ]
    );
    let tags: Vec<(&str, &str)> = req
        .tags()
        .iter()
        .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()))
        .collect();
    assert_eq!(tags, vec![("Environment", "dev"), ("Project", "bellyfed")]);
    assert_eq!(req.capabilities(), &[Capability::CapabilityNamedIam]);
    assert_eq!(
        req.role_arn(),
        Some("arn:aws:iam::123456789012:role/stackwave-cfn")
    );

    let record = bucket.record(&run, "App").expect("record written");
    assert_eq!(record.phase, Phase::ChangeSetPending);
    assert_eq!(record.operation, Operation::Create);
    assert_eq!(record.action, Action::InProgress);
    assert_eq!(record.change_set_name, name);
    assert_eq!(
        record.client_token,
        reconcile::client_token(EXECUTION, "App", reconcile::OP_EXECUTE)
    );
    assert_eq!(record.timeout_minutes, 30);
    assert_eq!(record.parameters.len(), 3);
    assert!(record.snapshot.is_none());

    // A retried invoke returns the record and starts nothing.
    let again = handle(&ctx, input("App")).await.expect("retried");
    assert_eq!(again, out);
    assert_eq!(create.num_calls(), 1, "no second change set");
    assert_eq!(app.num_calls(), 1, "no second DescribeStacks");
    assert_eq!(image.num_calls(), 1);
    assert_eq!(bucket.record(&run, "App"), Some(record));
}

#[tokio::test]
async fn a_change_set_that_becomes_ready_within_the_wait_is_executed_by_deploy_stack() {
    use aws_sdk_cloudformation::operation::describe_change_set::DescribeChangeSetOutput;
    use aws_sdk_cloudformation::operation::execute_change_set::{
        ExecuteChangeSetInput, ExecuteChangeSetOutput,
    };
    use aws_sdk_cloudformation::types::{ChangeSetStatus, ExecutionStatus};
    let bucket = Bucket::default();
    let run = run();
    bucket.put_json(
        &run.plan_key(),
        &plan(vec![planned("Net", "net.yaml", vec![])]),
    );
    let net = absent("Net");
    let (create, _) = capture_create();
    // CREATE_PENDING once (a 1-s pause), then CREATE_COMPLETE.
    let describe_cs = mock!(Cfn::describe_change_set)
        .sequence()
        .output(|| {
            DescribeChangeSetOutput::builder()
                .status(ChangeSetStatus::CreatePending)
                .execution_status(ExecutionStatus::Unavailable)
                .build()
        })
        .output(|| {
            DescribeChangeSetOutput::builder()
                .status(ChangeSetStatus::CreateComplete)
                .execution_status(ExecutionStatus::Available)
                .build()
        })
        .build();
    let executed: Captured<ExecuteChangeSetInput> = Arc::default();
    let e = executed.clone();
    let execute = mock!(Cfn::execute_change_set).then_compute_output(move |req| {
        e.lock().expect("lock").push(req.clone());
        ExecuteChangeSetOutput::builder().build()
    });
    let config = stackwave_aws::Config {
        change_set_wait: std::time::Duration::from_secs(5),
        ..config()
    };
    let ctx = ctx(
        &bucket,
        &[&net, &create, &describe_cs, &execute],
        &[],
        config,
    );

    handle(&ctx, input("Net")).await.expect("started");
    assert_eq!(describe_cs.num_calls(), 2, "pending, then ready");
    let calls = executed.lock().expect("lock").clone();
    assert_eq!(calls.len(), 1, "executed once");
    let token = reconcile::client_token(EXECUTION, "Net", reconcile::OP_EXECUTE);
    assert_eq!(calls[0].client_request_token(), Some(token.as_str()));
    assert_eq!(
        calls[0].change_set_name(),
        Some(reconcile::change_set_name(EXECUTION, "Net").as_str())
    );
    // The record says so: the scheduling step next observes the stack, not the change set.
    let record = bucket.record(&run, "Net").expect("record");
    assert_eq!(record.phase, Phase::Executing);
    assert_eq!(record.action, Action::InProgress);
}

#[tokio::test]
async fn update_snapshots_the_stack_then_starts_an_update_change_set() {
    let bucket = Bucket::default();
    let run = run();
    bucket.put_json(
        &run.plan_key(),
        &plan(vec![planned(
            "Net",
            "net.yaml",
            vec![("Cidr", ParamValue::Literal("10.1.0.0/16".into()))],
        )]),
    );
    let current = with_parameters_and_tags(
        stack("Net", "UPDATE_COMPLETE"),
        &[("Cidr", "10.0.0.0/16")],
        &[("Project", "bellyfed"), ("Owner", "ops")],
    );
    let net = describe("Net", current);
    let template = mock!(Cfn::get_template)
        .match_requests(|r| {
            r.stack_name() == Some("Net") && r.template_stage() == Some(&TemplateStage::Original)
        })
        .then_output(|| {
            GetTemplateOutput::builder()
                .template_body("Resources:\n  Vpc:\n    Type: AWS::EC2::VPC\n")
                .build()
        });
    let (create, seen) = capture_create();
    let mut config = config();
    config.endpoint_url = Some("http://127.0.0.1:4566".into());
    let ctx = ctx(&bucket, &[&net, &template, &create], &[], config);

    let out = handle(&ctx, input("Net")).await.expect("started");
    assert_eq!(out.operation, "update");
    assert_eq!(template.num_calls(), 1);

    let key = format!("{}snapshots/Net.template", run.run_prefix);
    assert_eq!(
        bucket.get(&key).as_deref(),
        Some(b"Resources:\n  Vpc:\n    Type: AWS::EC2::VPC\n".as_slice())
    );
    let record = bucket.record(&run, "Net").expect("record");
    assert_eq!(record.operation, Operation::Update);
    assert_eq!(record.phase, Phase::ChangeSetPending);
    assert_eq!(record.status.as_deref(), Some("UPDATE_COMPLETE"));
    let snapshot = record.snapshot.expect("snapshot");
    assert_eq!(snapshot.template_key, key);
    assert_eq!(
        snapshot.parameters,
        vec![("Cidr".to_string(), "10.0.0.0/16".to_string())]
    );
    assert_eq!(
        snapshot.tags,
        vec![
            ("Project".to_string(), "bellyfed".to_string()),
            ("Owner".to_string(), "ops".to_string())
        ]
    );

    let req = seen.lock().expect("lock")[0].clone();
    assert_eq!(req.change_set_type(), Some(&ChangeSetType::Update));
    // Endpoint override: path style on the endpoint.
    assert_eq!(
        req.template_url(),
        Some(
            format!(
                "http://127.0.0.1:4566/{BUCKET}/{}",
                template_key("net.yaml")
            )
            .as_str()
        )
    );
    assert_eq!(req.role_arn(), None);
}

#[tokio::test]
async fn emulator_no_updates_validation_error_is_unchanged() {
    let bucket = Bucket::default();
    let run = run();
    bucket.put_json(
        &run.plan_key(),
        &plan(vec![planned("Net", "net.yaml", vec![])]),
    );
    let net = describe("Net", stack("Net", "CREATE_COMPLETE"));
    let template = mock!(Cfn::get_template)
        .then_output(|| GetTemplateOutput::builder().template_body("{}").build());
    let create = mock!(Cfn::create_change_set).then_error(|| {
        CreateChangeSetError::generic(
            aws_sdk_cloudformation::error::ErrorMetadata::builder()
                .code("ValidationError")
                .message("No updates are to be performed.")
                .build(),
        )
    });
    let ctx = ctx(&bucket, &[&net, &template, &create], &[], config());

    let out = handle(&ctx, input("Net"))
        .await
        .expect("unchanged is a success");
    assert_eq!(out.operation, "update");
    let record = bucket.record(&run, "Net").expect("record");
    assert_eq!(record.phase, Phase::Done);
    assert_eq!(record.action, Action::Unchanged);
    assert!(record.finished_at.is_some());
    assert_eq!(create.num_calls(), 1);
}

#[tokio::test]
async fn rollback_complete_leftover_is_deleted_with_a_token() {
    let bucket = Bucket::default();
    let run = run();
    bucket.put_json(
        &run.plan_key(),
        &plan(vec![planned("Net", "net.yaml", vec![])]),
    );
    let net = describe("Net", stack("Net", "ROLLBACK_COMPLETE"));
    let deletes: Captured<DeleteStackInput> = Arc::default();
    let d = deletes.clone();
    let delete = mock!(Cfn::delete_stack).then_compute_output(move |req| {
        d.lock().expect("lock").push(req.clone());
        DeleteStackOutput::builder().build()
    });
    let (create, _) = capture_create();
    let ctx = ctx(&bucket, &[&net, &delete, &create], &[], config());

    let out = handle(&ctx, input("Net")).await.expect("started");
    assert_eq!(out.operation, "recreate");
    let record = bucket.record(&run, "Net").expect("record");
    assert_eq!(record.operation, Operation::Recreate);
    assert_eq!(record.phase, Phase::DeletingLeftover);
    let calls = deletes.lock().expect("lock").clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].stack_name(), Some("Net"));
    let token = reconcile::client_token_of(&record, reconcile::OP_DELETE);
    assert_eq!(calls[0].client_request_token(), Some(token.as_str()));
    assert_ne!(token, record.client_token);
    assert_eq!(create.num_calls(), 0, "the create waits for the delete");
}

#[tokio::test]
async fn retried_create_finds_its_change_set_already_made() {
    let bucket = Bucket::default();
    let run = run();
    bucket.put_json(
        &run.plan_key(),
        &plan(vec![planned("Net", "net.yaml", vec![])]),
    );
    // The first try created the change set (the stack is now REVIEW_IN_PROGRESS) but its
    // record write was lost.
    let net = describe("Net", stack("Net", "REVIEW_IN_PROGRESS"));
    let create = mock!(Cfn::create_change_set).then_error(|| {
        CreateChangeSetError::AlreadyExistsException(
            aws_sdk_cloudformation::types::error::AlreadyExistsException::builder()
                .message("exists")
                .build(),
        )
    });
    let ctx = ctx(&bucket, &[&net, &create], &[], config());
    let out = handle(&ctx, input("Net")).await.expect("started");
    assert_eq!(out.operation, "create");
    assert_eq!(
        bucket.record(&run, "Net").map(|r| r.phase),
        Some(Phase::ChangeSetPending)
    );
}

#[tokio::test]
async fn missing_output_is_parameter_not_found_and_recorded() {
    let bucket = Bucket::default();
    let run = run();
    bucket.put_json(&run.plan_key(), &app_plan());
    let net = absent("Net");
    let image = ssm_value("/app/image", "img");
    let ctx = ctx(&bucket, &[&net], &[&image], config());

    let err = handle(&ctx, input("App")).await.expect_err("must fail");
    assert_eq!(err.name(), "ParameterNotFound");
    match &err {
        Error::ParameterNotFound {
            stack,
            parameter,
            cause,
            fix,
        } => {
            assert_eq!(stack, "App");
            assert_eq!(parameter, "VpcId");
            assert!(
                cause.contains("Net") && cause.contains("does not exist"),
                "{cause}"
            );
            assert!(fix.contains("deploy Net first"), "{fix}");
        }
        other => panic!("{other:?}"),
    }
    let record = bucket
        .record(&run, "App")
        .expect("failed record kept for the summary");
    assert_eq!(record.action, Action::Failed);
    assert_eq!(record.phase, Phase::Done);
    assert!(record.reason.contains("VpcId"));
}

#[tokio::test]
async fn missing_output_key_names_the_outputs_there_are() {
    let bucket = Bucket::default();
    let run = run();
    bucket.put_json(&run.plan_key(), &app_plan());
    let net = describe(
        "Net",
        with_outputs(stack("Net", "CREATE_COMPLETE"), &[("SubnetIds", "a,b")]),
    );
    let image = ssm_value("/app/image", "img");
    let ctx = ctx(&bucket, &[&net], &[&image], config());
    let err = handle(&ctx, input("App")).await.expect_err("must fail");
    let text = err.to_string();
    assert!(
        text.contains("stack App") && text.contains("VpcId") && text.contains("SubnetIds"),
        "{text}"
    );
    assert!(text.contains("Fix:"), "{text}");
}

#[tokio::test]
async fn missing_ssm_parameter_is_parameter_not_found() {
    let bucket = Bucket::default();
    let run = run();
    bucket.put_json(&run.plan_key(), &app_plan());
    let net = describe(
        "Net",
        with_outputs(stack("Net", "CREATE_COMPLETE"), &[("VpcId", "vpc-1")]),
    );
    let ssm = mock!(Ssm::get_parameter).then_error(|| {
        GetParameterError::ParameterNotFound(
            aws_sdk_ssm::types::error::ParameterNotFound::builder().build(),
        )
    });
    let ctx = ctx(&bucket, &[&net], &[&ssm], config());
    let err = handle(&ctx, input("App")).await.expect_err("must fail");
    match &err {
        Error::ParameterNotFound {
            stack,
            parameter,
            cause,
            ..
        } => {
            assert_eq!(stack, "App");
            assert_eq!(parameter, "Image");
            assert!(cause.contains("/app/image"), "{cause}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn broken_stacks_are_refused_with_the_fix() {
    for (status, fix) in [
        ("ROLLBACK_FAILED", "delete the stack"),
        ("DELETE_FAILED", "delete the stack"),
        ("UPDATE_FAILED", "RollbackStack"),
    ] {
        let bucket = Bucket::default();
        let run = run();
        bucket.put_json(
            &run.plan_key(),
            &plan(vec![planned("Net", "net.yaml", vec![])]),
        );
        let net = describe("Net", stack("Net", status));
        let (create, _) = capture_create();
        let ctx = ctx(&bucket, &[&net, &create], &[], config());
        let err = handle(&ctx, input("Net")).await.expect_err("refused");
        assert_eq!(err.name(), "StackFailed");
        let text = err.to_string();
        assert!(
            text.contains("Net") && text.contains(status) && text.contains(fix),
            "{text}"
        );
        assert_eq!(create.num_calls(), 0);
        assert_eq!(
            bucket.record(&run, "Net").map(|r| r.action),
            Some(Action::Failed)
        );
    }
}

#[tokio::test]
async fn update_rollback_failed_is_continued_with_a_token() {
    let bucket = Bucket::default();
    let run = run();
    bucket.put_json(
        &run.plan_key(),
        &plan(vec![planned("Net", "net.yaml", vec![])]),
    );
    let net = describe("Net", stack("Net", "UPDATE_ROLLBACK_FAILED"));
    let seen: Captured<ContinueUpdateRollbackInput> = Arc::default();
    let s = seen.clone();
    let cont = mock!(Cfn::continue_update_rollback).then_compute_output(move |req| {
        s.lock().expect("lock").push(req.clone());
        ContinueUpdateRollbackOutput::builder().build()
    });
    let (create, _) = capture_create();
    let mut config = config();
    config.cfn_role_arn = Some("arn:aws:iam::123456789012:role/stackwave-cfn".into());
    let ctx = ctx(&bucket, &[&net, &cont, &create], &[], config);

    let out = handle(&ctx, input("Net")).await.expect("started");
    assert_eq!(out.operation, "update");
    let record = bucket.record(&run, "Net").expect("record");
    assert_eq!(record.phase, Phase::ContinuingRollback);
    assert_eq!(record.operation, Operation::Update);
    assert_eq!(record.action, Action::InProgress);
    assert_eq!(record.status.as_deref(), Some("UPDATE_ROLLBACK_FAILED"));
    let calls = seen.lock().expect("lock").clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].stack_name(), Some("Net"));
    let token = reconcile::client_token_of(&record, reconcile::OP_CONTINUE);
    assert_eq!(calls[0].client_request_token(), Some(token.as_str()));
    assert_eq!(
        calls[0].role_arn(),
        Some("arn:aws:iam::123456789012:role/stackwave-cfn")
    );
    assert_eq!(create.num_calls(), 0, "the update waits for the rollback");
    assert!(
        record.snapshot.is_none(),
        "snapshot once the rollback completed"
    );
}

#[tokio::test]
async fn a_refused_continue_is_stack_failed_with_the_fix() {
    let bucket = Bucket::default();
    let run = run();
    bucket.put_json(
        &run.plan_key(),
        &plan(vec![planned("Net", "net.yaml", vec![])]),
    );
    let net = describe("Net", stack("Net", "UPDATE_ROLLBACK_FAILED"));
    let cont = mock!(Cfn::continue_update_rollback).then_error(|| {
        ContinueUpdateRollbackError::generic(
            aws_sdk_cloudformation::error::ErrorMetadata::builder()
                .code("AccessDenied")
                .message("not allowed")
                .build(),
        )
    });
    let ctx = ctx(&bucket, &[&net, &cont], &[], config());
    let err = handle(&ctx, input("Net")).await.expect_err("refused");
    assert_eq!(err.name(), "StackFailed");
    let text = err.to_string();
    assert!(text.contains("Net"), "{text}");
    assert!(text.contains("AccessDenied"), "{text}");
    assert!(text.contains("ResourcesToSkip"), "{text}");
    let record = bucket.record(&run, "Net").expect("record");
    assert_eq!(record.action, Action::Failed);
    assert_eq!(
        record.operation,
        Operation::Update,
        "a run-level rollback never deletes it"
    );
}

#[tokio::test]
async fn a_stack_busy_with_another_operation_is_waited_for() {
    for status in [
        "UPDATE_IN_PROGRESS",
        "CREATE_IN_PROGRESS",
        "UPDATE_ROLLBACK_IN_PROGRESS",
    ] {
        let bucket = Bucket::default();
        let run = run();
        bucket.put_json(
            &run.plan_key(),
            &plan(vec![planned("Net", "net.yaml", vec![])]),
        );
        let net = describe("Net", stack("Net", status));
        let (create, _) = capture_create();
        let ctx = ctx(&bucket, &[&net, &create], &[], config());
        handle(&ctx, input("Net")).await.expect("waiting");
        let record = bucket.record(&run, "Net").expect("record");
        assert_eq!(record.phase, Phase::WaitingForOther, "{status}");
        assert_eq!(record.action, Action::InProgress);
        assert_eq!(record.status.as_deref(), Some(status));
        assert_eq!(
            record.operation,
            Operation::Update,
            "nothing of this run to delete while waiting"
        );
        assert_eq!(create.num_calls(), 0, "{status}: nothing started");
    }
}

#[tokio::test]
async fn throttling_is_throttled_and_writes_nothing() {
    let bucket = Bucket::default();
    let run = run();
    bucket.put_json(
        &run.plan_key(),
        &plan(vec![planned("Net", "net.yaml", vec![])]),
    );
    let net = mock!(Cfn::describe_stacks).then_error(|| DescribeStacksError::generic(throttling()));
    let ctx = ctx(&bucket, &[&net], &[], config());
    let err = handle(&ctx, input("Net")).await.expect_err("throttled");
    assert_eq!(err.name(), "Throttled");
    assert!(err.is_transient());
    assert!(
        bucket.record(&run, "Net").is_none(),
        "the retry must start from scratch"
    );
}

#[tokio::test]
async fn json_entry_rejects_a_wrong_shape() {
    let bucket = Bucket::default();
    let ctx = ctx(&bucket, &[], &[], config());
    let err = stackwave_deploy_stack::handle_json(&ctx, serde_json::json!({"stack": 3}))
        .await
        .expect_err("invalid");
    assert_eq!(err.name(), "InvalidInput");
    assert!(err.to_string().contains(stackwave_deploy_stack::ACCEPTED));
}
