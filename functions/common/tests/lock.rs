//! The environment lock's reactions to scripted SSM and Step Functions answers.

use std::sync::{Arc, Mutex};

use aws_sdk_sfn::operation::describe_execution::{DescribeExecutionError, DescribeExecutionOutput};
use aws_sdk_sfn::types::ExecutionStatus;
use aws_sdk_ssm::operation::delete_parameter::{DeleteParameterInput, DeleteParameterOutput};
use aws_sdk_ssm::operation::get_parameter::{GetParameterError, GetParameterOutput};
use aws_sdk_ssm::operation::put_parameter::{
    PutParameterError, PutParameterInput, PutParameterOutput,
};
use aws_sdk_ssm::types::error::{ParameterAlreadyExists, ParameterNotFound};
use aws_sdk_ssm::types::Parameter;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use chrono::{Duration, Utc};
use stackwave_aws::lock::{acquire, release, Released};
use stackwave_aws::{Clients, Config, Ctx};
use stackwave_core::lock::Lease;
use stackwave_core::reconcile::timestamp;

const OURS: &str = "arn:aws:states:us-east-1:123456789012:execution:stackwave-deploy:second";
const THEIRS: &str = "arn:aws:states:us-east-1:123456789012:execution:stackwave-deploy:first";
const LOCK: &str = "/stackwave/dev/lock";

type Captured<T> = Arc<Mutex<Vec<T>>>;

async fn ctx(ssm: aws_sdk_ssm::Client, sfn: aws_sdk_sfn::Client) -> Ctx {
    let sdk = stackwave_aws::sdk_config(Some("http://127.0.0.1:9"), None).await;
    let mut clients = Clients::new(&sdk);
    clients.ssm = ssm;
    clients.sfn = sfn;
    Ctx {
        clients,
        config: Config::default(),
    }
}

fn lease(arn: &str, minutes_from_now: i64) -> Lease {
    Lease {
        execution_arn: arn.into(),
        expires: timestamp(Utc::now() + Duration::minutes(minutes_from_now)),
    }
}

/// PutParameter calls, by Overwrite: the first answer of a create-if-absent is scripted.
fn capture_puts(exists: bool) -> (Rule, Rule, Captured<PutParameterInput>) {
    let seen: Captured<PutParameterInput> = Arc::default();
    let s = seen.clone();
    let create = mock!(aws_sdk_ssm::Client::put_parameter)
        .match_requests(|r| r.overwrite() == Some(false))
        .then_compute_response(move |req| {
            s.lock().expect("lock").push(req.clone());
            if exists {
                aws_smithy_mocks::MockResponse::Error(PutParameterError::ParameterAlreadyExists(
                    ParameterAlreadyExists::builder().build(),
                ))
            } else {
                aws_smithy_mocks::MockResponse::Output(
                    PutParameterOutput::builder().version(1).build(),
                )
            }
        });
    let s = seen.clone();
    let overwrite = mock!(aws_sdk_ssm::Client::put_parameter)
        .match_requests(|r| r.overwrite() == Some(true))
        .then_compute_output(move |req| {
            s.lock().expect("lock").push(req.clone());
            PutParameterOutput::builder().version(2).build()
        });
    (create, overwrite, seen)
}

/// GetParameter answering these values in turn (the last one repeats).
fn reads(values: Vec<String>) -> Rule {
    let values = Arc::new(Mutex::new(values));
    mock!(aws_sdk_ssm::Client::get_parameter)
        .match_requests(|r| r.name() == Some(LOCK))
        .then_compute_output(move |_| {
            let mut v = values.lock().expect("lock");
            let value = if v.len() > 1 {
                v.remove(0)
            } else {
                v[0].clone()
            };
            GetParameterOutput::builder()
                .parameter(Parameter::builder().name(LOCK).value(value).build())
                .build()
        })
}

fn not_found() -> Rule {
    mock!(aws_sdk_ssm::Client::get_parameter)
        .then_error(|| GetParameterError::ParameterNotFound(ParameterNotFound::builder().build()))
}

fn execution(status: ExecutionStatus) -> Rule {
    mock!(aws_sdk_sfn::Client::describe_execution)
        .match_requests(|r| r.execution_arn() == Some(THEIRS))
        .then_output(move || {
            DescribeExecutionOutput::builder()
                .execution_arn(THEIRS)
                .state_machine_arn(
                    "arn:aws:states:us-east-1:123456789012:stateMachine:stackwave-deploy",
                )
                .status(status.clone())
                .start_date(aws_smithy_types::DateTime::from_secs(1_800_000_000))
                .build()
                .expect("execution")
        })
}

fn none() -> Vec<&'static Rule> {
    Vec::new()
}

#[tokio::test]
async fn a_free_environment_is_locked_with_our_lease() {
    let (create, overwrite, seen) = capture_puts(false);
    let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&create, &overwrite]);
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, none());
    let ctx = ctx(ssm, sfn).await;
    let ours = lease(OURS, 120);
    acquire(&ctx, "dev", &ours).await.expect("acquired");
    let puts = seen.lock().expect("lock").clone();
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].name(), Some(LOCK));
    assert_eq!(puts[0].overwrite(), Some(false), "created only if absent");
    let value: serde_json::Value =
        serde_json::from_str(puts[0].value().unwrap_or_default()).expect("json");
    assert_eq!(value["executionArn"], OURS);
    assert_eq!(value["expires"], ours.expires);
}

#[tokio::test]
async fn a_lock_held_by_a_running_execution_is_deployment_locked_naming_it() {
    let theirs = lease(THEIRS, 60);
    let (create, overwrite, seen) = capture_puts(true);
    let get = reads(vec![theirs.to_value()]);
    let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&create, &overwrite, &get]);
    let running = execution(ExecutionStatus::Running);
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&running]);
    let ctx = ctx(ssm, sfn).await;
    let err = acquire(&ctx, "dev", &lease(OURS, 120))
        .await
        .expect_err("locked");
    assert_eq!(err.name(), "DeploymentLocked");
    let text = err.to_string();
    assert!(text.contains("dev"), "{text}");
    assert!(text.contains(THEIRS), "{text}");
    assert!(text.contains(&theirs.expires), "{text}");
    assert!(text.contains("Fix:"), "{text}");
    assert_eq!(running.num_calls(), 1);
    assert_eq!(overwrite.num_calls(), 0, "nothing taken over");
    assert_eq!(seen.lock().expect("lock").len(), 1);
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_without_asking_about_its_holder() {
    let (create, overwrite, seen) = capture_puts(true);
    let ours = lease(OURS, 120);
    let get = reads(vec![lease(THEIRS, -1).to_value(), ours.to_value()]);
    let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&create, &overwrite, &get]);
    let running = execution(ExecutionStatus::Running);
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&running]);
    let ctx = ctx(ssm, sfn).await;
    acquire(&ctx, "dev", &ours).await.expect("taken over");
    assert_eq!(running.num_calls(), 0, "expiry alone decides");
    assert_eq!(overwrite.num_calls(), 1);
    assert_eq!(get.num_calls(), 2, "read back after the overwrite");
    let puts = seen.lock().expect("lock").clone();
    assert_eq!(puts[1].overwrite(), Some(true));
    assert_eq!(puts[1].value(), Some(ours.to_value().as_str()));
}

#[tokio::test]
async fn a_lease_whose_holder_ended_or_vanished_is_taken_over() {
    for status in [
        Some(ExecutionStatus::Succeeded),
        Some(ExecutionStatus::Failed),
        Some(ExecutionStatus::Aborted),
        None,
    ] {
        let (create, overwrite, _) = capture_puts(true);
        let ours = lease(OURS, 120);
        let get = reads(vec![lease(THEIRS, 60).to_value(), ours.to_value()]);
        let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&create, &overwrite, &get]);
        let describe = match status.clone() {
            Some(s) => execution(s),
            None => mock!(aws_sdk_sfn::Client::describe_execution).then_error(|| {
                DescribeExecutionError::ExecutionDoesNotExist(
                    aws_sdk_sfn::types::error::ExecutionDoesNotExist::builder().build(),
                )
            }),
        };
        let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&describe]);
        let ctx = ctx(ssm, sfn).await;
        acquire(&ctx, "dev", &ours)
            .await
            .unwrap_or_else(|e| panic!("{status:?}: {e}"));
        assert_eq!(describe.num_calls(), 1, "{status:?}");
        assert_eq!(overwrite.num_calls(), 1, "{status:?}");
    }
}

#[tokio::test]
async fn a_retried_plan_finds_its_own_lease() {
    let (create, overwrite, _) = capture_puts(true);
    let get = reads(vec![lease(OURS, 100).to_value()]);
    let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&create, &overwrite, &get]);
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, none());
    let ctx = ctx(ssm, sfn).await;
    acquire(&ctx, "dev", &lease(OURS, 120))
        .await
        .expect("ours already");
    assert_eq!(overwrite.num_calls(), 0);
}

#[tokio::test]
async fn a_takeover_lost_to_another_execution_is_deployment_locked() {
    const THIRD: &str = "arn:aws:states:us-east-1:123456789012:execution:stackwave-deploy:third";
    let (create, overwrite, _) = capture_puts(true);
    let get = reads(vec![
        lease(THEIRS, -5).to_value(),
        lease(THIRD, 90).to_value(),
    ]);
    let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&create, &overwrite, &get]);
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, none());
    let ctx = ctx(ssm, sfn).await;
    let err = acquire(&ctx, "dev", &lease(OURS, 120))
        .await
        .expect_err("lost");
    assert_eq!(err.name(), "DeploymentLocked");
    assert!(err.to_string().contains(THIRD), "{err}");
}

#[tokio::test]
async fn throttling_is_throttled_for_the_state_machine_retry() {
    let put = mock!(aws_sdk_ssm::Client::put_parameter).then_error(|| {
        PutParameterError::generic(
            aws_sdk_ssm::error::ErrorMetadata::builder()
                .code("ThrottlingException")
                .message("Rate exceeded")
                .build(),
        )
    });
    let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&put]);
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, none());
    let ctx = ctx(ssm, sfn).await;
    let err = acquire(&ctx, "dev", &lease(OURS, 120))
        .await
        .expect_err("throttled");
    assert_eq!(err.name(), "Throttled");
}

fn capture_deletes() -> (Rule, Captured<DeleteParameterInput>) {
    let seen: Captured<DeleteParameterInput> = Arc::default();
    let s = seen.clone();
    let rule = mock!(aws_sdk_ssm::Client::delete_parameter).then_compute_output(move |req| {
        s.lock().expect("lock").push(req.clone());
        DeleteParameterOutput::builder().build()
    });
    (rule, seen)
}

#[tokio::test]
async fn release_deletes_only_our_own_lease() {
    // Ours: deleted.
    let (delete, seen) = capture_deletes();
    let get = reads(vec![lease(OURS, 60).to_value()]);
    let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&get, &delete]);
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, none());
    let c = ctx(ssm, sfn).await;
    assert_eq!(
        release(&c, "dev", OURS).await.expect("released"),
        Released::Deleted
    );
    let calls = seen.lock().expect("lock").clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].name(), Some(LOCK));

    // Another execution's (ours expired and was taken over): untouched.
    let (delete, _) = capture_deletes();
    let get = reads(vec![lease(THEIRS, 60).to_value()]);
    let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&get, &delete]);
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, none());
    let c = ctx(ssm, sfn).await;
    assert_eq!(
        release(&c, "dev", OURS).await.expect("left alone"),
        Released::NotOurs {
            holder: THEIRS.into()
        }
    );
    assert_eq!(delete.num_calls(), 0);

    // No lock at all.
    let (delete, _) = capture_deletes();
    let get = not_found();
    let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&get, &delete]);
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, none());
    let c = ctx(ssm, sfn).await;
    assert_eq!(
        release(&c, "dev", OURS).await.expect("nothing"),
        Released::Absent
    );
    assert_eq!(delete.num_calls(), 0);
}
