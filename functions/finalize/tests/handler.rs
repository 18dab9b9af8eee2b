//! finalize against scripted S3 and SSM: summary written, last deployment recorded on success
//! only, and the summary never lost to SSM.

// Helpers outside #[test] functions: clippy does not count them as test code.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_s3::operation::delete_object::DeleteObjectOutput;
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use aws_sdk_s3::operation::put_object::PutObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::Object;
use aws_sdk_ssm::operation::delete_parameter::DeleteParameterOutput;
use aws_sdk_ssm::operation::get_parameter::GetParameterOutput;
use aws_sdk_ssm::operation::put_parameter::{PutParameterError, PutParameterOutput};
use aws_sdk_ssm::types::error::InternalServerError;
use aws_sdk_ssm::types::{Parameter, ParameterType};
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use serde_json::Value;
use stackwave_aws::{Clients, Config, Ctx};
use stackwave_core::io::{
    CaughtError, FinalizeInput, PollSeconds, RunContext, RunStatus, RunSummary,
};
use stackwave_core::manifest::OnFailure;
use stackwave_core::plan::{Plan, PlannedStack, PlannedStage};
use stackwave_core::record::{Action, Operation, Phase, RootCause, StackRecord};
use stackwave_core::secret::SecretRef;

const BUCKET: &str = "artifacts";
const EXECUTION: &str = "arn:aws:states:us-east-1:123456789012:execution:stackwave-deploy:exec-1";

async fn ctx(s3: aws_sdk_s3::Client, ssm: aws_sdk_ssm::Client) -> Ctx {
    let sdk = stackwave_aws::sdk_config(Some("http://127.0.0.1:9"), None).await;
    let mut clients = Clients::new(&sdk);
    clients.s3 = s3;
    clients.ssm = ssm;
    Ctx {
        clients,
        config: Config {
            bucket: BUCKET.into(),
            ..Config::default()
        },
    }
}

fn run() -> RunContext {
    RunContext {
        execution_arn: EXECUTION.into(),
        execution_name: "exec-1".into(),
        environment: "dev".into(),
        bucket: BUCKET.into(),
        run_prefix: "runs/dev/exec-1/".into(),
        poll: PollSeconds { min: 1, max: 2 },
        max_concurrency: 10,
        manifest_uri: "s3://artifacts/deployments/dev/t1/manifest.yaml".into(),
        started_at: "2026-11-27T10:15:00.000Z".into(),
        on_failure: OnFailure::Rollback,
        fallback_poll_seconds: stackwave_core::io::DEFAULT_FALLBACK_POLL_SECONDS,
        segment_events: stackwave_core::budget::SEGMENT_EVENTS,
    }
}

fn planned(name: &str, stage: &str, stage_index: u32) -> PlannedStack {
    PlannedStack {
        name: name.into(),
        stage: stage.into(),
        stage_index,
        wave: 0,
        template: format!("deployments/dev/t1/templates/{name}.yaml"),
        parameters: BTreeMap::new(),
        depends_on: vec![],
        tags: BTreeMap::new(),
        capabilities: vec![],
        timeout_minutes: 60,
        secret_parameters: vec![],
    }
}

fn plan() -> Plan {
    Plan {
        name: "demo".into(),
        environment: "dev".into(),
        on_failure: OnFailure::default(),
        schedule: Default::default(),
        stages: vec![
            PlannedStage {
                index: 0,
                name: "infrastructure".into(),
                waves: vec![vec!["Network-dev".into()]],
            },
            PlannedStage {
                index: 1,
                name: "application".into(),
                waves: vec![vec!["Api-dev".into()]],
            },
        ],
        stacks: vec![
            planned("Network-dev", "infrastructure", 0),
            planned("Api-dev", "application", 1),
        ],
    }
}

fn record(name: &str, stage: &str, action: Action) -> StackRecord {
    StackRecord {
        stack: name.into(),
        stage: stage.into(),
        operation: Operation::Create,
        phase: Phase::Done,
        action,
        change_set_name: format!("sw-{name}"),
        client_token: format!("sw-{name}"),
        parameters: vec![],
        secrets: vec![],
        started_at: "2026-11-27T10:15:00.000Z".into(),
        finished_at: Some("2026-11-27T10:15:30.000Z".into()),
        status: Some(
            if action == Action::Failed {
                "ROLLBACK_COMPLETE"
            } else {
                "CREATE_COMPLETE"
            }
            .into(),
        ),
        reason: if action == Action::Failed {
            "Function CREATE_FAILED: bad".into()
        } else {
            String::new()
        },
        root_cause: (action == Action::Failed).then(|| RootCause {
            logical_id: "Function".into(),
            resource_type: "AWS::Lambda::Function".into(),
            status: "CREATE_FAILED".into(),
            reason: "bad".into(),
        }),
        outputs: vec![],
        snapshot: None,
        timeout_minutes: 60,
        rollback: None,
    }
}

/// PutObject calls: (key, body).
type Puts = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// S3 holding the plan and the given records; PutObject calls are kept as (key, body).
struct Bucket {
    rules: Vec<Rule>,
    puts: Puts,
    deletes: Arc<Mutex<Vec<String>>>,
}

fn bucket(records: Vec<StackRecord>) -> Bucket {
    let mut objects: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    objects.insert(
        "runs/dev/exec-1/plan.json".into(),
        serde_json::to_vec(&plan()).unwrap(),
    );
    for r in &records {
        objects.insert(
            format!("runs/dev/exec-1/stacks/{}.json", r.stack),
            serde_json::to_vec(r).unwrap(),
        );
    }
    let objects = Arc::new(objects);
    let puts = Arc::new(Mutex::new(Vec::new()));

    let readable = objects.clone();
    let get = mock!(aws_sdk_s3::Client::get_object)
        .match_requests(move |r| {
            r.bucket() == Some(BUCKET) && r.key().is_some_and(|k| readable.contains_key(k))
        })
        .then_compute_output({
            let objects = objects.clone();
            move |r| {
                let body = objects
                    .get(r.key().unwrap_or_default())
                    .cloned()
                    .unwrap_or_default();
                GetObjectOutput::builder()
                    .body(ByteStream::from(body))
                    .build()
            }
        });
    let listing = mock!(aws_sdk_s3::Client::list_objects_v2)
        .match_requests(|r| {
            r.bucket() == Some(BUCKET) && r.prefix() == Some("runs/dev/exec-1/stacks/")
        })
        .then_compute_output({
            let objects = objects.clone();
            move |r| {
                let prefix = r.prefix().unwrap_or_default();
                let keys: Vec<Object> = objects
                    .keys()
                    .filter(|k| k.starts_with(prefix))
                    .map(|k| Object::builder().key(k).build())
                    .collect();
                ListObjectsV2Output::builder()
                    .key_count(keys.len() as i32)
                    .set_contents(Some(keys))
                    .build()
            }
        });
    let put = mock!(aws_sdk_s3::Client::put_object).then_compute_output({
        let puts = puts.clone();
        move |r| {
            puts.lock().unwrap().push((
                r.key().unwrap_or_default().to_string(),
                r.body().bytes().unwrap_or_default().to_vec(),
            ));
            PutObjectOutput::builder().build()
        }
    });
    let deletes = Arc::new(Mutex::new(Vec::new()));
    let delete = mock!(aws_sdk_s3::Client::delete_object).then_compute_output({
        let deletes = deletes.clone();
        move |r| {
            deletes
                .lock()
                .unwrap()
                .push(r.key().unwrap_or_default().to_string());
            DeleteObjectOutput::builder().build()
        }
    });
    // PutObject last: tests replace it.
    Bucket {
        rules: vec![get, listing, delete, put],
        puts,
        deletes,
    }
}

/// The environment lock, held by this execution: read, then deleted by finalize.
struct Lock {
    get: Rule,
    delete: Rule,
}

fn lock_held_by(holder: &'static str) -> Lock {
    let value =
        format!("{{\"executionArn\":\"{holder}\",\"expires\":\"2099-01-01T00:00:00.000Z\"}}");
    let get = mock!(aws_sdk_ssm::Client::get_parameter)
        .match_requests(|r| r.name() == Some("/stackwave/dev/lock"))
        .then_output(move || {
            GetParameterOutput::builder()
                .parameter(
                    Parameter::builder()
                        .name("/stackwave/dev/lock")
                        .value(value.clone())
                        .build(),
                )
                .build()
        });
    let delete = mock!(aws_sdk_ssm::Client::delete_parameter)
        .match_requests(|r| r.name() == Some("/stackwave/dev/lock"))
        .then_output(|| DeleteParameterOutput::builder().build());
    Lock { get, delete }
}

fn lock_ours() -> Lock {
    lock_held_by(EXECUTION)
}

type ParamPut = (String, String, Option<ParameterType>, Option<bool>);
fn capture_params(params: &Arc<Mutex<Vec<ParamPut>>>) -> Rule {
    let params = params.clone();
    mock!(aws_sdk_ssm::Client::put_parameter).then_compute_output(move |r| {
        params.lock().unwrap().push((
            r.name().unwrap_or_default().to_string(),
            r.value().unwrap_or_default().to_string(),
            r.r#type().cloned(),
            r.overwrite(),
        ));
        PutParameterOutput::builder().version(1).build()
    })
}

fn stored_summary(puts: &[(String, Vec<u8>)]) -> RunSummary {
    let (key, body) = puts
        .iter()
        .find(|(k, _)| k.ends_with("summary.json"))
        .expect("summary written");
    assert_eq!(key, "runs/dev/exec-1/summary.json");
    serde_json::from_slice(body).expect("summary.json is a RunSummary")
}

#[tokio::test]
async fn success_writes_the_summary_and_the_last_deployment() {
    let b = bucket(vec![
        record("Network-dev", "infrastructure", Action::Created),
        record("Api-dev", "application", Action::Unchanged),
    ]);
    let params = Arc::new(Mutex::new(Vec::new()));
    let put_param = capture_params(&params);
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, &b.rules);
    let lock = lock_ours();
    let ssm = mock_client!(
        aws_sdk_ssm,
        RuleMode::MatchAny,
        [&put_param, &lock.get, &lock.delete]
    );
    let ctx = ctx(s3, ssm).await;

    let summary = stackwave_finalize::handle(
        &ctx,
        FinalizeInput {
            run: run(),
            error: None,
            rollback_error: None,
        },
    )
    .await
    .expect("summary");

    assert_eq!(summary.status, RunStatus::Succeeded);
    assert_eq!(summary.execution_arn, EXECUTION);
    let actions: Vec<(&str, Action)> = summary
        .stacks
        .iter()
        .map(|s| (s.name.as_str(), s.action))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("Network-dev", Action::Created),
            ("Api-dev", Action::Unchanged)
        ]
    );
    assert_eq!(stored_summary(&b.puts.lock().unwrap()), summary);

    let params = params.lock().unwrap();
    assert_eq!(params.len(), 1);
    let (name, value, kind, overwrite) = &params[0];
    assert_eq!(name, "/stackwave/dev/last-deployment");
    assert_eq!(kind, &Some(ParameterType::String));
    assert_eq!(overwrite, &Some(true));
    assert!(value.len() < 4096);
    let value: Value = serde_json::from_str(value).expect("JSON value");
    assert_eq!(value["executionArn"], EXECUTION);
    assert_eq!(
        value["manifestUri"],
        "s3://artifacts/deployments/dev/t1/manifest.yaml"
    );
    assert_eq!(value["stacks"], 2);
    assert!(chrono::DateTime::parse_from_rfc3339(value["finishedAt"].as_str().unwrap()).is_ok());
    // A created stack without secrets drops any sources an earlier stack of its name left;
    // an unchanged one is not touched.
    assert_eq!(
        *b.deletes.lock().unwrap(),
        vec!["state/dev/secrets/Network-dev.json".to_string()]
    );
}

#[tokio::test]
async fn the_secret_sources_of_stacks_left_changed_are_recorded_for_a_later_rollback() {
    let secret = SecretRef {
        parameter: "DbPassword".into(),
        ssm: "/app/db".into(),
        version: 4,
    };
    let mut created = record("Network-dev", "infrastructure", Action::Created);
    created.secrets = vec![secret.clone()];
    let mut rolled_back = record("Api-dev", "application", Action::Updated);
    rolled_back.operation = Operation::Update;
    rolled_back.secrets = vec![secret.clone()];
    rolled_back.rollback = Some(stackwave_core::rollback::settled(
        stackwave_core::record::RollbackOperation::Restore,
        "t",
        Action::RolledBack,
        "restored".into(),
        chrono::Utc::now(),
    ));
    let b = bucket(vec![created, rolled_back]);
    let params = Arc::new(Mutex::new(Vec::new()));
    let put_param = capture_params(&params);
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, &b.rules);
    let lock = lock_ours();
    let ssm = mock_client!(
        aws_sdk_ssm,
        RuleMode::MatchAny,
        [&put_param, &lock.get, &lock.delete]
    );
    let ctx = ctx(s3, ssm).await;
    stackwave_finalize::handle(
        &ctx,
        FinalizeInput {
            run: run(),
            error: None,
            rollback_error: None,
        },
    )
    .await
    .expect("summary");
    let puts = b.puts.lock().unwrap();
    let sources: Vec<(&str, Vec<SecretRef>)> = puts
        .iter()
        .filter(|(k, _)| k.starts_with("state/"))
        .map(|(k, body)| (k.as_str(), serde_json::from_slice(body).expect("refs")))
        .collect();
    // Only the stack that keeps this run's secrets; the rolled-back one keeps its earlier ones.
    assert_eq!(
        sources,
        vec![("state/dev/secrets/Network-dev.json", vec![secret])]
    );
    assert!(b.deletes.lock().unwrap().is_empty());
}

#[tokio::test]
async fn failure_writes_the_summary_but_not_the_last_deployment() {
    let b = bucket(vec![record(
        "Network-dev",
        "infrastructure",
        Action::Failed,
    )]);
    let params = Arc::new(Mutex::new(Vec::new()));
    let put_param = capture_params(&params);
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, &b.rules);
    let lock = lock_ours();
    let ssm = mock_client!(
        aws_sdk_ssm,
        RuleMode::MatchAny,
        [&put_param, &lock.get, &lock.delete]
    );
    let ctx = ctx(s3, ssm).await;
    let error = CaughtError {
        error: "StackFailed".into(),
        cause: "A stack of this wave failed".into(),
    };

    let summary = stackwave_finalize::handle(
        &ctx,
        FinalizeInput {
            run: run(),
            error: Some(error),
            rollback_error: None,
        },
    )
    .await
    .expect("summary");

    assert_eq!(summary.status, RunStatus::Failed);
    assert_eq!(summary.failed_stack.as_deref(), Some("Network-dev"));
    let actions: Vec<(&str, Action)> = summary
        .stacks
        .iter()
        .map(|s| (s.name.as_str(), s.action))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("Network-dev", Action::Failed),
            ("Api-dev", Action::NotStarted)
        ]
    );
    assert_eq!(stored_summary(&b.puts.lock().unwrap()), summary);
    assert_eq!(put_param.num_calls(), 0);
    assert!(params.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_rollback_that_stopped_is_in_the_summary_and_the_stacks_it_missed_need_a_human() {
    let b = bucket(vec![
        record("Network-dev", "infrastructure", Action::Created),
        record("Api-dev", "application", Action::Failed),
    ]);
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, &b.rules);
    let lock = lock_ours();
    let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&lock.get, &lock.delete]);
    let ctx = ctx(s3, ssm).await;
    // The state machine's input to Finalize after PlanRollback's Catch.
    let input = serde_json::json!({
        "run": run(),
        "error": {"Error": "StackFailed", "Cause": "Api-dev failed"},
        "rollbackError": {"Error": "States.Timeout", "Cause": "the task timed out"},
        "rollback": null
    });

    let out = stackwave_finalize::handle_json(&ctx, input)
        .await
        .expect("summary");
    let summary: RunSummary = serde_json::from_value(out).unwrap();

    assert_eq!(summary.status, RunStatus::Failed);
    let network = &summary.stacks[0];
    assert_eq!(network.name, "Network-dev");
    assert_eq!(network.action, Action::RollbackFailed);
    assert!(
        network.reason.contains("States.Timeout"),
        "{}",
        network.reason
    );
    let error = summary.error.clone().unwrap();
    assert!(
        error.contains("RollbackStopped") && error.contains("Not rolled back: Network-dev"),
        "{error}"
    );
    assert_eq!(stored_summary(&b.puts.lock().unwrap()), summary);
    assert_eq!(lock.delete.num_calls(), 1, "the lock is released");
}

#[tokio::test]
async fn an_ssm_failure_does_not_lose_the_summary() {
    let b = bucket(vec![
        record("Network-dev", "infrastructure", Action::Created),
        record("Api-dev", "application", Action::Updated),
    ]);
    let put_param = mock!(aws_sdk_ssm::Client::put_parameter).then_error(|| {
        PutParameterError::InternalServerError(InternalServerError::builder().build())
    });
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, &b.rules);
    let lock = lock_ours();
    let ssm = mock_client!(
        aws_sdk_ssm,
        RuleMode::MatchAny,
        [&put_param, &lock.get, &lock.delete]
    );
    let ctx = ctx(s3, ssm).await;

    let summary = stackwave_finalize::handle(
        &ctx,
        FinalizeInput {
            run: run(),
            error: None,
            rollback_error: None,
        },
    )
    .await
    .expect("the summary survives an SSM failure");

    assert_eq!(summary.status, RunStatus::Succeeded);
    assert!(put_param.num_calls() >= 1);
    assert!(
        summary.error.is_none(),
        "an SSM failure is a warning, not part of the summary"
    );
    assert_eq!(stored_summary(&b.puts.lock().unwrap()), summary);
}

#[tokio::test]
async fn a_missing_plan_is_an_internal_error() {
    let listing = mock!(aws_sdk_s3::Client::list_objects_v2)
        .then_output(|| ListObjectsV2Output::builder().build());
    let get = mock!(aws_sdk_s3::Client::get_object).then_error(|| {
        aws_sdk_s3::operation::get_object::GetObjectError::NoSuchKey(
            aws_sdk_s3::types::error::NoSuchKey::builder().build(),
        )
    });
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&get, &listing]);
    let lock = lock_ours();
    let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&lock.get, &lock.delete]);
    let ctx = ctx(s3, ssm).await;

    let err = stackwave_finalize::handle(
        &ctx,
        FinalizeInput {
            run: run(),
            error: None,
            rollback_error: None,
        },
    )
    .await
    .unwrap_err();

    assert_eq!(err.name(), "InternalError");
    assert!(
        err.to_string().contains("runs/dev/exec-1/plan.json"),
        "{err}"
    );
}

#[tokio::test]
async fn handle_json_accepts_the_whole_state() {
    // The ASL passes the whole state: plan's output (run, stages, stackCount) and the caught error.
    let b = bucket(vec![record(
        "Network-dev",
        "infrastructure",
        Action::Created,
    )]);
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, &b.rules);
    let lock = lock_ours();
    let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&lock.get, &lock.delete]);
    let ctx = ctx(s3, ssm).await;
    let state = serde_json::json!({
        "run": run(),
        "stages": [],
        "stackCount": 2,
        "error": {"Error": "States.TaskFailed", "Cause": "{\"errorType\":\"AwsServiceError\",\"errorMessage\":\"boom\"}"},
    });

    let out = stackwave_finalize::handle_json(&ctx, state)
        .await
        .expect("summary");

    assert_eq!(out["status"], "FAILED");
    assert_eq!(out["stacks"][1]["action"], "not_started");
    assert!(
        out["error"].as_str().is_some_and(|e| e.contains("boom")),
        "{out}"
    );
}

#[tokio::test]
async fn a_failed_summary_upload_still_returns_the_summary() {
    let mut b = bucket(vec![
        record("Network-dev", "infrastructure", Action::Created),
        record("Api-dev", "application", Action::Created),
    ]);
    b.rules.pop(); // no PutObject answer from the bucket: it fails instead
    let put = mock!(aws_sdk_s3::Client::put_object).then_error(|| {
        aws_sdk_s3::operation::put_object::PutObjectError::unhandled(std::io::Error::other(
            "connection reset",
        ))
    });
    b.rules.push(put);
    let params = Arc::new(Mutex::new(Vec::new()));
    let put_param = capture_params(&params);
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, &b.rules);
    let lock = lock_ours();
    let ssm = mock_client!(
        aws_sdk_ssm,
        RuleMode::MatchAny,
        [&put_param, &lock.get, &lock.delete]
    );
    let ctx = ctx(s3, ssm).await;

    let summary = stackwave_finalize::handle(
        &ctx,
        FinalizeInput {
            run: run(),
            error: None,
            rollback_error: None,
        },
    )
    .await
    .expect("the summary is the execution's output even when S3 refuses it");

    assert_eq!(summary.status, RunStatus::Succeeded);
    assert_eq!(summary.stacks.len(), 2);
    assert!(b.puts.lock().unwrap().is_empty());
    assert_eq!(
        params.lock().unwrap().len(),
        1,
        "the last deployment is still recorded"
    );
}

// ---------------------------------------------------------------------------------------------
// The environment lock is released on every path.
// ---------------------------------------------------------------------------------------------

async fn finalize_with(lock: &Lock, records: Vec<StackRecord>, error: Option<CaughtError>) {
    let b = bucket(records);
    let params = Arc::new(Mutex::new(Vec::new()));
    let put_param = capture_params(&params);
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, &b.rules);
    let ssm = mock_client!(
        aws_sdk_ssm,
        RuleMode::MatchAny,
        [&put_param, &lock.get, &lock.delete]
    );
    let ctx = ctx(s3, ssm).await;
    stackwave_finalize::handle(
        &ctx,
        FinalizeInput {
            run: run(),
            error,
            rollback_error: None,
        },
    )
    .await
    .expect("summary");
}

#[tokio::test]
async fn the_lock_is_released_after_success_failure_and_rollback() {
    let ok = vec![
        record("Network-dev", "infrastructure", Action::Created),
        record("Api-dev", "application", Action::Updated),
    ];
    let failed = vec![
        record("Network-dev", "infrastructure", Action::Created),
        record("Api-dev", "application", Action::Failed),
    ];
    let rolled_back = vec![
        record("Network-dev", "infrastructure", Action::RolledBack),
        record("Api-dev", "application", Action::Failed),
    ];
    let caught = || {
        Some(CaughtError {
            error: "StackFailed".into(),
            cause: "A stack of this wave failed".into(),
        })
    };
    for (records, error) in [(ok, None), (failed, caught()), (rolled_back, caught())] {
        let lock = lock_ours();
        finalize_with(&lock, records, error).await;
        assert_eq!(lock.get.num_calls(), 1);
        assert_eq!(lock.delete.num_calls(), 1, "released");
    }
}

#[tokio::test]
async fn another_executions_lock_is_left_alone() {
    let lock = lock_held_by(
        "arn:aws:states:us-east-1:123456789012:execution:stackwave-deploy:took-it-over",
    );
    finalize_with(
        &lock,
        vec![
            record("Network-dev", "infrastructure", Action::Created),
            record("Api-dev", "application", Action::Created),
        ],
        None,
    )
    .await;
    assert_eq!(lock.get.num_calls(), 1);
    assert_eq!(lock.delete.num_calls(), 0);
}

#[tokio::test]
async fn the_lock_is_released_even_when_the_summary_cannot_be_built() {
    // No plan in the bucket: finalize fails for good, and still gives the environment back.
    let s3 = mock_client!(
        aws_sdk_s3,
        RuleMode::MatchAny,
        [&mock!(aws_sdk_s3::Client::get_object).then_error(|| {
            aws_sdk_s3::operation::get_object::GetObjectError::NoSuchKey(
                aws_sdk_s3::types::error::NoSuchKey::builder().build(),
            )
        })]
    );
    let lock = lock_ours();
    let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&lock.get, &lock.delete]);
    let ctx = ctx(s3, ssm).await;
    let err = stackwave_finalize::handle(
        &ctx,
        FinalizeInput {
            run: run(),
            error: None,
            rollback_error: None,
        },
    )
    .await
    .expect_err("no plan");
    assert!(!err.is_transient());
    assert_eq!(lock.delete.num_calls(), 1, "released");
}
