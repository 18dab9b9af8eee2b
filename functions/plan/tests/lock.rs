//! plan and the environment lock: the lease is taken after validation, lasts the plan's longest
//! path, and a running holder rejects the run before anything is stored.

// Helpers outside #[test] functions: clippy does not count them as test code.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use aws_sdk_s3::operation::put_object::PutObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::Object;
use aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput;
use aws_sdk_sfn::types::ExecutionStatus;
use aws_sdk_ssm::operation::get_parameter::GetParameterOutput;
use aws_sdk_ssm::operation::put_parameter::{
    PutParameterError, PutParameterInput, PutParameterOutput,
};
use aws_sdk_ssm::types::error::ParameterAlreadyExists;
use aws_sdk_ssm::types::Parameter;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use serde_json::json;
use stackwave_aws::{Clients, Config, Ctx};
use stackwave_core::io::{ExecutionRef, PlanInput};

const BUCKET: &str = "artifacts";
const KEY: &str = "deployments/dev/t1/manifest.yaml";
const OURS: &str = "arn:aws:states:us-east-1:123456789012:execution:stackwave-deploy:exec-2";
const HOLDER: &str = "arn:aws:states:us-east-1:123456789012:execution:stackwave-deploy:exec-1";
const LOCK: &str = "/stackwave/dev/lock";

/// Two waves in stage one (longest 45, then 10), one in stage two (30): 85 + 15 minutes.
const MANIFEST: &str = r#"
name: demo
stages:
  - name: one
    stacks:
      - name: A
        template: a.yaml
        timeoutMinutes: 45
      - name: B
        template: a.yaml
        timeoutMinutes: 20
      - name: C
        template: a.yaml
        timeoutMinutes: 10
        dependsOn: [A]
  - name: two
    stacks:
      - name: D
        template: a.yaml
        timeoutMinutes: 30
"#;

async fn ctx(s3: aws_sdk_s3::Client, ssm: aws_sdk_ssm::Client, sfn: aws_sdk_sfn::Client) -> Ctx {
    let sdk = stackwave_aws::sdk_config(Some("http://127.0.0.1:9"), None).await;
    let mut clients = Clients::new(&sdk);
    clients.s3 = s3;
    clients.ssm = ssm;
    clients.sfn = sfn;
    Ctx {
        clients,
        config: Config {
            bucket: BUCKET.into(),
            ..Config::default()
        },
    }
}

fn input() -> PlanInput {
    PlanInput {
        input: json!({"manifest": format!("s3://{BUCKET}/{KEY}"), "environment": "dev"}),
        execution: ExecutionRef {
            arn: OURS.into(),
            name: "exec-2".into(),
            start_time: None,
        },
    }
}

/// S3 with the manifest and its template; PutObject keys are kept.
fn s3_rules(puts: &Arc<Mutex<Vec<String>>>) -> Vec<Rule> {
    let get = mock!(aws_sdk_s3::Client::get_object)
        .match_requests(|r| r.key() == Some(KEY))
        .then_output(|| {
            GetObjectOutput::builder()
                .body(ByteStream::from_static(MANIFEST.as_bytes()))
                .build()
        });
    let template = mock!(aws_sdk_s3::Client::get_object)
        .match_requests(|r| r.key() == Some("deployments/dev/t1/a.yaml"))
        .then_output(|| {
            GetObjectOutput::builder()
                .body(ByteStream::from_static(
                    b"Resources:\n  T:\n    Type: AWS::SNS::Topic\n",
                ))
                .build()
        });
    let list = mock!(aws_sdk_s3::Client::list_objects_v2).then_output(|| {
        ListObjectsV2Output::builder()
            .set_contents(Some(vec![
                Object::builder().key(KEY).build(),
                Object::builder().key("deployments/dev/t1/a.yaml").build(),
            ]))
            .key_count(2)
            .is_truncated(false)
            .build()
    });
    let puts = puts.clone();
    let put = mock!(aws_sdk_s3::Client::put_object).then_compute_output(move |r| {
        puts.lock()
            .unwrap()
            .push(r.key().unwrap_or_default().to_string());
        PutObjectOutput::builder().build()
    });
    vec![get, template, list, put]
}

/// PutParameter: the lock (created only if absent, or `exists`) and the manifest URI.
fn ssm_puts(exists: bool, seen: &Arc<Mutex<Vec<PutParameterInput>>>) -> Rule {
    let seen = seen.clone();
    mock!(aws_sdk_ssm::Client::put_parameter).then_compute_response(move |r| {
        seen.lock().unwrap().push(r.clone());
        if exists && r.name() == Some(LOCK) && r.overwrite() == Some(false) {
            aws_smithy_mocks::MockResponse::Error(PutParameterError::ParameterAlreadyExists(
                ParameterAlreadyExists::builder().build(),
            ))
        } else {
            aws_smithy_mocks::MockResponse::Output(PutParameterOutput::builder().version(1).build())
        }
    })
}

#[tokio::test]
async fn plan_locks_the_environment_for_the_plans_longest_path() {
    let puts = Arc::new(Mutex::new(Vec::new()));
    let s3_rules = s3_rules(&puts);
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, &s3_rules);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let put = ssm_puts(false, &seen);
    let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&put]);
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, Vec::<&Rule>::new());
    let ctx = ctx(s3, ssm, sfn).await;

    let before = chrono::Utc::now();
    let out = stackwave_plan::handle(&ctx, input())
        .await
        .expect("planned");
    let after = chrono::Utc::now();
    assert_eq!(out.stack_count, 4);

    let seen = seen.lock().unwrap();
    let lock = seen
        .iter()
        .find(|r| r.name() == Some(LOCK))
        .expect("the lock is taken");
    assert_eq!(lock.overwrite(), Some(false), "created only if absent");
    let value: serde_json::Value = serde_json::from_str(lock.value().unwrap()).unwrap();
    assert_eq!(value["executionArn"], OURS);
    let expires = chrono::DateTime::parse_from_rfc3339(value["expires"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    let lease = chrono::Duration::minutes(45 + 10 + 30 + 15);
    assert!(
        expires >= before + lease - chrono::Duration::seconds(1) && expires <= after + lease,
        "{expires}"
    );
    assert_eq!(
        puts.lock().unwrap().as_slice(),
        ["runs/dev/exec-2/plan.json"]
    );
}

#[tokio::test]
async fn a_running_holder_rejects_the_run_before_anything_is_stored() {
    let puts = Arc::new(Mutex::new(Vec::new()));
    let s3_rules = s3_rules(&puts);
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, &s3_rules);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let put = ssm_puts(true, &seen);
    let get = mock!(aws_sdk_ssm::Client::get_parameter)
        .match_requests(|r| r.name() == Some(LOCK))
        .then_output(|| {
            GetParameterOutput::builder()
                .parameter(
                    Parameter::builder()
                        .name(LOCK)
                        .value(format!(
                            "{{\"executionArn\":\"{HOLDER}\",\"expires\":\"2099-01-01T00:00:00.000Z\"}}"
                        ))
                        .build(),
                )
                .build()
        });
    let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&put, &get]);
    let running = mock!(aws_sdk_sfn::Client::describe_execution)
        .match_requests(|r| r.execution_arn() == Some(HOLDER))
        .then_output(|| {
            DescribeExecutionOutput::builder()
                .execution_arn(HOLDER)
                .state_machine_arn(
                    "arn:aws:states:us-east-1:123456789012:stateMachine:stackwave-deploy",
                )
                .status(ExecutionStatus::Running)
                .start_date(aws_smithy_types::DateTime::from_secs(1_800_000_000))
                .build()
                .unwrap()
        });
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&running]);
    let ctx = ctx(s3, ssm, sfn).await;

    let err = stackwave_plan::handle(&ctx, input())
        .await
        .expect_err("locked");
    assert_eq!(err.name(), "DeploymentLocked");
    let text = err.to_string();
    assert!(text.contains("environment dev"), "{text}");
    assert!(text.contains(HOLDER), "{text}");
    assert!(text.contains("2099-01-01"), "{text}");
    assert!(puts.lock().unwrap().is_empty(), "no plan stored");
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "only the lock was tried: the manifest URI is not remembered"
    );
}
