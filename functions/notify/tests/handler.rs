//! notify's SNS request, inspected on a scripted client.

// Helpers outside #[test] functions: clippy does not count them as test code.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_sns::operation::publish::PublishOutput;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use serde_json::{json, Value};
use stackwave_aws::{Clients, Config, Ctx};
use stackwave_core::io::{
    CaughtError, NotifyInput, PollSeconds, RunContext, RunStatus, RunSummary, StackSummary,
    StageRef, WaveRef,
};
use stackwave_core::record::{Action, RootCause};

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:stackwave-alerts";
const EXECUTION: &str = "arn:aws:states:us-east-1:123456789012:execution:stackwave-deploy:exec-1";

/// What the handler sent to SNS.
#[derive(Debug, Clone, Default)]
struct Sent {
    topic: String,
    structure: String,
    subject: String,
    message: String,
    /// name → (data type, value)
    attributes: HashMap<String, (String, String)>,
}

async fn ctx(sns: aws_sdk_sns::Client, topic: &str) -> Ctx {
    let sdk = stackwave_aws::sdk_config(Some("http://127.0.0.1:9"), None).await;
    let mut clients = Clients::new(&sdk);
    clients.sns = sns;
    Ctx {
        clients,
        config: Config {
            topic_arn: topic.to_string(),
            bucket: "artifacts".into(),
            ..Config::default()
        },
    }
}

/// Publish, recording the request through the matcher.
fn capture(sent: &Arc<Mutex<Vec<Sent>>>) -> Rule {
    let sent = sent.clone();
    mock!(aws_sdk_sns::Client::publish)
        .match_requests(move |r| {
            sent.lock().unwrap().push(Sent {
                topic: r.topic_arn().unwrap_or_default().to_string(),
                structure: r.message_structure().unwrap_or_default().to_string(),
                subject: r.subject().unwrap_or_default().to_string(),
                message: r.message().unwrap_or_default().to_string(),
                attributes: r
                    .message_attributes()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| {
                                (
                                    k.clone(),
                                    (
                                        v.data_type().to_string(),
                                        v.string_value().unwrap_or_default().to_string(),
                                    ),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            });
            true
        })
        .then_output(|| PublishOutput::builder().message_id("msg-1").build())
}

fn run() -> RunContext {
    RunContext {
        execution_arn: EXECUTION.into(),
        execution_name: "exec-1".into(),
        environment: "dev".into(),
        bucket: "artifacts".into(),
        run_prefix: "runs/dev/exec-1/".into(),
        poll: PollSeconds { min: 1, max: 2 },
        max_concurrency: 10,
        manifest_uri: "s3://artifacts/deployments/dev/t1/manifest.yaml".into(),
        started_at: "2026-11-27T10:15:00.000Z".into(),
        on_failure: stackwave_core::manifest::OnFailure::Rollback,
        fallback_poll_seconds: stackwave_core::io::DEFAULT_FALLBACK_POLL_SECONDS,
        segment_events: stackwave_core::budget::SEGMENT_EVENTS,
    }
}

fn stages() -> Vec<StageRef> {
    vec![
        StageRef {
            index: 0,
            name: "infrastructure".into(),
            waves: vec![WaveRef {
                index: 0,
                stacks: vec!["Network-dev".into(), "Dns-dev".into()],
            }],
        },
        StageRef {
            index: 1,
            name: "application".into(),
            waves: vec![WaveRef {
                index: 0,
                stacks: vec!["Api-dev".into()],
            }],
        },
    ]
}

fn failed_summary() -> RunSummary {
    RunSummary {
        status: RunStatus::Failed,
        environment: "dev".into(),
        execution_arn: EXECUTION.into(),
        stacks: vec![
            StackSummary {
                name: "Network-dev".into(),
                stage: "infrastructure".into(),
                action: Action::Created,
                duration_seconds: 31.0,
                reason: String::new(),
            },
            StackSummary {
                name: "Api-dev".into(),
                stage: "application".into(),
                action: Action::Failed,
                duration_seconds: 12.0,
                reason: "Resource handler returned message: \"bad\"".into(),
            },
        ],
        failed_stack: Some("Api-dev".into()),
        root_cause: Some(RootCause {
            logical_id: "Function".into(),
            resource_type: "AWS::Lambda::Function".into(),
            status: "CREATE_FAILED".into(),
            reason: "bad".into(),
        }),
        error: None,
        stacks_omitted: 0,
        summary_uri: None,
    }
}

/// The checks every alert passes: JSON structure with the five keys, the human body for
/// default/email, the machine JSON for sqs/lambda/https, both attributes, a valid subject.
fn check_common(sent: &Sent, status: &str, environment: &str) -> Value {
    assert_eq!(sent.topic, TOPIC);
    assert_eq!(sent.structure, "json");
    assert!(
        !sent.subject.is_empty() && sent.subject.len() < 100,
        "{:?}",
        sent.subject
    );
    assert!(
        sent.subject.is_ascii() && !sent.subject.contains('\n'),
        "{:?}",
        sent.subject
    );
    assert_eq!(
        sent.attributes.get("environment"),
        Some(&("String".to_string(), environment.to_string()))
    );
    assert_eq!(
        sent.attributes.get("status"),
        Some(&("String".to_string(), status.to_string()))
    );

    let message: Value = serde_json::from_str(&sent.message).expect("message is JSON");
    let keys: Vec<&str> = message
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for key in ["default", "email", "sqs", "lambda", "https"] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
        assert!(message[key].is_string(), "{key} must be a string");
    }
    assert_eq!(message["default"], message["email"]);
    assert_eq!(message["sqs"], message["lambda"]);
    assert_eq!(message["sqs"], message["https"]);
    let machine: Value =
        serde_json::from_str(message["sqs"].as_str().unwrap()).expect("machine form is JSON");
    assert_eq!(machine["status"], status);
    assert_eq!(machine["environment"], environment);
    assert_eq!(machine["executionArn"], EXECUTION);
    machine
}

#[tokio::test]
async fn started_alert_is_json_structured_with_both_attributes() {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let publish = capture(&sent);
    let ctx = ctx(
        mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&publish]),
        TOPIC,
    )
    .await;

    let out = stackwave_notify::handle(
        &ctx,
        NotifyInput::Started {
            run: run(),
            stack_count: 3,
            stages: stages(),
        },
    )
    .await
    .expect("published");

    assert_eq!(publish.num_calls(), 1);
    assert_eq!(out.message_id, "msg-1");
    let sent = sent.lock().unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(out.subject, sent[0].subject);
    let machine = check_common(&sent[0], "STARTED", "dev");
    assert_eq!(machine["event"], "started");
    assert_eq!(machine["stackCount"], 3);
    assert!(machine.get("summary").is_none());
    assert!(machine.get("error").is_none());
}

#[tokio::test]
async fn finished_alert_carries_the_summary_and_the_failed_status() {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let publish = capture(&sent);
    let ctx = ctx(
        mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&publish]),
        TOPIC,
    )
    .await;

    stackwave_notify::handle(
        &ctx,
        NotifyInput::Finished {
            run: run(),
            summary: failed_summary(),
        },
    )
    .await
    .expect("published");

    let sent = sent.lock().unwrap();
    let machine = check_common(&sent[0], "FAILED", "dev");
    assert_eq!(machine["event"], "finished");
    assert_eq!(machine["summary"]["failedStack"], "Api-dev");
    assert_eq!(machine["summary"]["rootCause"]["logicalId"], "Function");
    assert_eq!(
        machine["summary"]["stacks"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(
        machine["summaryUri"],
        "s3://artifacts/runs/dev/exec-1/summary.json"
    );
}

#[tokio::test]
async fn finished_success_is_succeeded() {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let publish = capture(&sent);
    let ctx = ctx(
        mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&publish]),
        TOPIC,
    )
    .await;
    let mut summary = failed_summary();
    summary.status = RunStatus::Succeeded;
    summary.stacks.truncate(1);
    summary.failed_stack = None;
    summary.root_cause = None;

    stackwave_notify::handle(
        &ctx,
        NotifyInput::Finished {
            run: run(),
            summary,
        },
    )
    .await
    .expect("published");

    let sent = sent.lock().unwrap();
    let machine = check_common(&sent[0], "SUCCEEDED", "dev");
    assert_eq!(machine["summary"]["status"], "SUCCEEDED");
}

#[tokio::test]
async fn rejected_alert_takes_the_environment_from_the_raw_input() {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let publish = capture(&sent);
    let ctx = ctx(
        mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&publish]),
        TOPIC,
    )
    .await;
    let error = CaughtError {
        error: "InvalidManifest".into(),
        cause: "invalid manifest: 1 problem(s):\n- stack A, dependsOn: cycle A -> B -> A. Fix: break it".into(),
    };

    stackwave_notify::handle_json(
        &ctx,
        json!({
            "event": "rejected",
            "executionArn": EXECUTION,
            "input": {"environment": "staging", "manifest": "s3://artifacts/m.yaml"},
            "error": {"Error": error.error, "Cause": error.cause},
        }),
    )
    .await
    .expect("published");

    let sent = sent.lock().unwrap();
    let machine = check_common(&sent[0], "REJECTED", "staging");
    assert_eq!(machine["event"], "rejected");
    assert_eq!(machine["error"]["Error"], "InvalidManifest");
    assert_eq!(machine["error"]["Cause"], error.cause);
}

#[tokio::test]
async fn without_a_topic_it_fails_with_the_fix_and_publishes_nothing() {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let publish = capture(&sent);
    let ctx = ctx(
        mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&publish]),
        "",
    )
    .await;

    let err = stackwave_notify::handle(
        &ctx,
        NotifyInput::Started {
            run: run(),
            stack_count: 3,
            stages: stages(),
        },
    )
    .await
    .unwrap_err();

    assert_eq!(err.name(), "InternalError");
    assert!(err.to_string().contains("STACKWAVE_TOPIC_ARN"), "{err}");
    assert_eq!(publish.num_calls(), 0);
    assert!(sent.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_unknown_event_is_invalid_input() {
    let ctx = ctx(
        mock_client!(aws_sdk_sns, RuleMode::MatchAny, Vec::<&Rule>::new()),
        TOPIC,
    )
    .await;
    let err = stackwave_notify::handle_json(&ctx, json!({"event": "exploded", "run": {}}))
        .await
        .unwrap_err();
    assert_eq!(err.name(), "InvalidInput");
    assert!(err.to_string().contains("started"), "{err}");
}

#[tokio::test]
async fn a_failed_rollback_sends_a_second_alert_for_a_human() {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let publish = capture(&sent);
    let ctx = ctx(
        mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&publish]),
        TOPIC,
    )
    .await;
    let mut summary = failed_summary();
    summary.stacks[0].action = Action::RollbackFailed;
    summary.stacks[0].reason = "deleting the stack (created by this run) ended DELETE_FAILED: Bucket (AWS::S3::Bucket) DELETE_FAILED: The bucket you tried to delete is not empty. Fix: empty or detach the resources that cannot be deleted".into();

    let out = stackwave_notify::handle(
        &ctx,
        NotifyInput::Finished {
            run: run(),
            summary,
        },
    )
    .await
    .expect("published");

    assert_eq!(publish.num_calls(), 2);
    let sent = sent.lock().unwrap();
    // the run's alert first, as usual
    assert_eq!(out.subject, sent[0].subject);
    assert_eq!(sent[0].subject, "stackwave dev: FAILED at Api-dev");
    check_common(&sent[0], "FAILED", "dev");
    // then the rollback-failed alert
    assert_eq!(
        sent[1].subject,
        "stackwave dev: ROLLBACK FAILED - needs a human"
    );
    let machine = check_common(&sent[1], "ROLLBACK_FAILED", "dev");
    assert_eq!(machine["event"], "rollback_failed");
    assert_eq!(machine["summary"]["stacks"][0]["action"], "rollback_failed");
    let message: Value = serde_json::from_str(&sent[1].message).unwrap();
    let body = message["default"].as_str().unwrap();
    assert!(
        body.contains("Stack Network-dev (stage infrastructure):"),
        "{body}"
    );
    assert!(
        body.contains("The bucket you tried to delete is not empty. Fix:"),
        "{body}"
    );
}

#[tokio::test]
async fn no_rollback_failure_no_second_alert() {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let publish = capture(&sent);
    let ctx = ctx(
        mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&publish]),
        TOPIC,
    )
    .await;
    let mut summary = failed_summary();
    summary.stacks[0].action = Action::RolledBack;
    stackwave_notify::handle(
        &ctx,
        NotifyInput::Finished {
            run: run(),
            summary,
        },
    )
    .await
    .expect("published");
    assert_eq!(publish.num_calls(), 1);
    assert!(!sent.lock().unwrap()[0].subject.contains("ROLLBACK"));
}

/// Finalize's output with only the failed row: the other row did not fit the execution's state.
fn bounded_summary() -> RunSummary {
    let mut s = failed_summary();
    s.stacks.retain(|r| r.action == Action::Failed);
    s.stacks_omitted = 1;
    s.summary_uri = Some("s3://artifacts/runs/dev/exec-1/summary.json".into());
    s
}

/// The machine form and the human body of the alert.
async fn finished_with_stored_summary(stored: Option<RunSummary>) -> (Value, String) {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let publish = capture(&sent);
    let mut ctx = ctx(
        mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&publish]),
        TOPIC,
    )
    .await;
    ctx.clients.s3 = match stored {
        Some(full) => {
            let get = mock!(aws_sdk_s3::Client::get_object)
                .match_requests(|r| {
                    r.bucket() == Some("artifacts")
                        && r.key() == Some("runs/dev/exec-1/summary.json")
                })
                .then_compute_output(move |_| {
                    aws_sdk_s3::operation::get_object::GetObjectOutput::builder()
                        .body(aws_sdk_s3::primitives::ByteStream::from(
                            serde_json::to_vec(&full).unwrap(),
                        ))
                        .build()
                });
            mock_client!(aws_sdk_s3, [&get])
        }
        None => {
            let missing = mock!(aws_sdk_s3::Client::get_object).then_error(|| {
                aws_sdk_s3::operation::get_object::GetObjectError::NoSuchKey(
                    aws_sdk_s3::types::error::NoSuchKey::builder().build(),
                )
            });
            mock_client!(aws_sdk_s3, [&missing])
        }
    };
    stackwave_notify::handle(
        &ctx,
        NotifyInput::Finished {
            run: run(),
            summary: bounded_summary(),
        },
    )
    .await
    .expect("published");
    let sent = sent.lock().unwrap();
    let machine = check_common(&sent[0], "FAILED", "dev");
    let message: Value = serde_json::from_str(&sent[0].message).unwrap();
    (machine, message["default"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn a_finished_alert_lists_every_stack_of_summary_json_when_finalize_left_rows_out() {
    let (machine, body) = finished_with_stored_summary(Some(failed_summary())).await;
    assert!(body.contains("Network-dev"), "{body}");
    let rows = machine["summary"]["stacks"].as_array().cloned().unwrap();
    assert_eq!(rows.len(), 2, "{machine:#}");
    assert!(rows.iter().any(|r| r["name"] == "Network-dev"));
    assert!(machine["summary"].get("stacksOmitted").is_none());
}

#[tokio::test]
async fn a_finished_alert_without_summary_json_says_how_many_rows_it_leaves_out() {
    let (machine, body) = finished_with_stored_summary(None).await;
    assert_eq!(machine["summary"]["stacksOmitted"], 1, "{machine:#}");
    assert_eq!(
        machine["summary"]["stacks"].as_array().map(Vec::len),
        Some(1)
    );
    assert!(
        body.contains(
            "... 1 stack not shown: s3://artifacts/runs/dev/exec-1/summary.json lists every stack"
        ),
        "{body}"
    );
}
