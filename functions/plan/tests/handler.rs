//! plan's reactions to scripted S3 and SSM answers.

// Helpers outside #[test] functions: clippy does not count them as test code.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use aws_sdk_s3::operation::put_object::PutObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::error::NoSuchKey;
use aws_sdk_s3::types::Object;
use aws_sdk_ssm::operation::get_parameter::{GetParameterError, GetParameterOutput};
use aws_sdk_ssm::operation::put_parameter::PutParameterOutput;
use aws_sdk_ssm::types::error::ParameterNotFound;
use aws_sdk_ssm::types::{Parameter, ParameterType};
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use serde_json::{json, Value};
use stackwave_aws::{Clients, Config, Ctx};
use stackwave_core::io::{ExecutionRef, PlanInput, PollSeconds, StageRef, WaveRef};
use stackwave_core::plan::Plan;

const BUCKET: &str = "artifacts";
const DIR: &str = "deployments/dev/t1/";
const MANIFEST_KEY: &str = "deployments/dev/t1/manifest.yaml";

const MANIFEST: &str = r#"
name: demo
defaults:
  tags: {Project: demo, Environment: "${environment}"}
stages:
  - name: infrastructure
    stacks:
      - name: Network-${environment}
        template: templates/network.yaml
      - name: Ecs-${environment}
        template: ./templates/ecs.yaml
        parameters:
          VpcId: {output: "Network-${environment}.VpcId"}
      - name: Dns-${environment}
        template: templates/dns.yaml
  - name: application
    stacks:
      - name: Api-${environment}
        template: ../shared/api.yaml
        dependsOn: ["Ecs-${environment}"]
"#;

/// A context whose S3 and SSM clients answer from scripts (the other clients are never called).
async fn ctx(s3: aws_sdk_s3::Client, ssm: aws_sdk_ssm::Client, bucket: &str) -> Ctx {
    let sdk = stackwave_aws::sdk_config(Some("http://127.0.0.1:9"), None).await;
    let mut clients = Clients::new(&sdk);
    clients.s3 = s3;
    clients.ssm = ssm;
    Ctx {
        clients,
        config: Config {
            bucket: bucket.to_string(),
            ..Config::default()
        },
    }
}

fn input(exec_input: Value) -> PlanInput {
    PlanInput {
        input: exec_input,
        execution: ExecutionRef {
            arn: "arn:aws:states:us-east-1:123456789012:execution:stackwave-deploy:exec-1".into(),
            name: "exec-1".into(),
            start_time: Some("2026-11-27T10:15:00.000Z".into()),
        },
    }
}

fn get_manifest(key: &'static str, text: &'static str) -> Rule {
    mock!(aws_sdk_s3::Client::get_object)
        .match_requests(move |r| r.bucket() == Some(BUCKET) && r.key() == Some(key))
        .then_output(move || {
            GetObjectOutput::builder()
                .body(ByteStream::from_static(text.as_bytes()))
                .build()
        })
}

/// Every template of the manifests here: one parameter, `VpcId`, with a default.
const TEMPLATE: &str = "Parameters:\n  VpcId:\n    Type: String\n    Default: none\nResources:\n  Topic:\n    Type: AWS::SNS::Topic\n";

fn get_templates() -> Rule {
    mock!(aws_sdk_s3::Client::get_object)
        .match_requests(|r| {
            r.bucket() == Some(BUCKET)
                && r.key()
                    .is_some_and(|k| k.contains("/templates/") || k.contains("/shared/"))
        })
        .then_output(|| {
            GetObjectOutput::builder()
                .body(ByteStream::from_static(TEMPLATE.as_bytes()))
                .build()
        })
}

fn list(prefix: &'static str, keys: &'static [&'static str]) -> Rule {
    mock!(aws_sdk_s3::Client::list_objects_v2)
        .match_requests(move |r| r.bucket() == Some(BUCKET) && r.prefix() == Some(prefix))
        .then_output(move || {
            ListObjectsV2Output::builder()
                .set_contents(Some(
                    keys.iter()
                        .map(|k| Object::builder().key(*k).build())
                        .collect(),
                ))
                .key_count(keys.len() as i32)
                .is_truncated(false)
                .build()
        })
}

fn head_ok(key: &'static str) -> Rule {
    mock!(aws_sdk_s3::Client::head_object)
        .match_requests(move |r| r.key() == Some(key))
        .then_output(|| HeadObjectOutput::builder().content_length(10).build())
}

/// PutObject, keeping each (bucket, key, body).
/// PutObject calls: (bucket, key, body).
type Puts = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

fn capture_puts(puts: &Puts) -> Rule {
    let puts = puts.clone();
    mock!(aws_sdk_s3::Client::put_object).then_compute_output(move |r| {
        puts.lock().unwrap().push((
            r.bucket().unwrap_or_default().to_string(),
            r.key().unwrap_or_default().to_string(),
            r.body().bytes().unwrap_or_default().to_vec(),
        ));
        PutObjectOutput::builder().build()
    })
}

/// The environment lock's parameter (see tests/lock.rs).
const LOCK: &str = "/stackwave/dev/lock";

/// The environment lock is free: created at the first try.
fn lock_free() -> Rule {
    mock!(aws_sdk_ssm::Client::put_parameter)
        .match_requests(|r| r.name() == Some(LOCK) && r.overwrite() == Some(false))
        .then_output(|| PutParameterOutput::builder().version(1).build())
}

/// PutParameter (other than the lock's), keeping each (name, value, type, overwrite).
type ParamPut = (String, String, Option<ParameterType>, Option<bool>);
fn capture_params(params: &Arc<Mutex<Vec<ParamPut>>>) -> Rule {
    let params = params.clone();
    mock!(aws_sdk_ssm::Client::put_parameter)
        .match_requests(|r| r.name() != Some(LOCK))
        .then_compute_output(move |r| {
            params.lock().unwrap().push((
                r.name().unwrap_or_default().to_string(),
                r.value().unwrap_or_default().to_string(),
                r.r#type().cloned(),
                r.overwrite(),
            ));
            PutParameterOutput::builder().version(2).build()
        })
}

fn template_keys() -> &'static [&'static str] {
    &[
        MANIFEST_KEY,
        "deployments/dev/t1/templates/network.yaml",
        "deployments/dev/t1/templates/ecs.yaml",
        "deployments/dev/t1/templates/dns.yaml",
    ]
}

#[tokio::test]
async fn plans_a_manifest_from_s3_and_stores_the_plan() {
    let puts = Arc::new(Mutex::new(Vec::new()));
    let params = Arc::new(Mutex::new(Vec::new()));
    let get = get_manifest(MANIFEST_KEY, MANIFEST);
    let listing = list(DIR, template_keys());
    let head = head_ok("deployments/dev/shared/api.yaml");
    let put = capture_puts(&puts);
    let put_param = capture_params(&params);
    let templates = get_templates();
    let s3 = mock_client!(
        aws_sdk_s3,
        RuleMode::MatchAny,
        [&get, &templates, &listing, &head, &put]
    );
    let lock = lock_free();
    let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&lock, &put_param]);
    let ctx = ctx(s3, ssm, BUCKET).await;

    let out = stackwave_plan::handle(
        &ctx,
        input(json!({"manifest": "s3://artifacts/deployments/dev/t1/manifest.yaml", "environment": "dev"})),
    )
    .await
    .expect("plan succeeds");

    assert_eq!(out.stack_count, 4);
    assert_eq!(
        out.stages,
        vec![
            StageRef {
                index: 0,
                name: "infrastructure".into(),
                waves: vec![
                    WaveRef {
                        index: 0,
                        stacks: vec!["Network-dev".into(), "Dns-dev".into()]
                    },
                    WaveRef {
                        index: 1,
                        stacks: vec!["Ecs-dev".into()]
                    },
                ],
            },
            StageRef {
                index: 1,
                name: "application".into(),
                waves: vec![WaveRef {
                    index: 0,
                    stacks: vec!["Api-dev".into()]
                }],
            },
        ]
    );
    let run = &out.run;
    assert_eq!(run.bucket, BUCKET);
    assert_eq!(run.environment, "dev");
    assert_eq!(run.execution_name, "exec-1");
    assert_eq!(run.run_prefix, "runs/dev/exec-1/");
    assert_eq!(run.poll, PollSeconds { min: 5, max: 60 });
    assert_eq!(run.max_concurrency, 10);
    assert_eq!(run.started_at, "2026-11-27T10:15:00.000Z");
    assert_eq!(
        run.manifest_uri,
        "s3://artifacts/deployments/dev/t1/manifest.yaml"
    );
    assert_eq!(get.num_calls(), 1);
    assert_eq!(
        listing.num_calls(),
        1,
        "the manifest's directory is listed once"
    );
    assert_eq!(
        head.num_calls(),
        1,
        "only the template outside the directory is checked on its own"
    );

    let puts = puts.lock().unwrap();
    assert_eq!(puts.len(), 1);
    let (bucket, key, body) = &puts[0];
    assert_eq!(bucket, BUCKET);
    assert_eq!(key, "runs/dev/exec-1/plan.json");
    let plan: Plan = serde_json::from_slice(body).expect("plan.json is a Plan");
    assert_eq!(plan.environment, "dev");
    let template = |name: &str| {
        plan.stack(name)
            .map(|s| s.template.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        template("Network-dev"),
        "deployments/dev/t1/templates/network.yaml"
    );
    assert_eq!(template("Ecs-dev"), "deployments/dev/t1/templates/ecs.yaml");
    assert_eq!(template("Api-dev"), "deployments/dev/shared/api.yaml");
    assert_eq!(
        plan.stack("Ecs-dev").map(|s| s.depends_on.clone()),
        Some(vec!["Network-dev".to_string()])
    );

    assert_eq!(lock.num_calls(), 1, "the environment is locked");
    let params = params.lock().unwrap();
    assert_eq!(
        *params,
        vec![(
            "/stackwave/dev/manifest-uri".to_string(),
            "s3://artifacts/deployments/dev/t1/manifest.yaml".to_string(),
            Some(ParameterType::String),
            Some(true),
        )]
    );
}

#[tokio::test]
async fn manifest_location_comes_from_ssm_when_the_input_has_none() {
    let puts = Arc::new(Mutex::new(Vec::new()));
    let params = Arc::new(Mutex::new(Vec::new()));
    let get_param = mock!(aws_sdk_ssm::Client::get_parameter)
        .match_requests(|r| r.name() == Some("/stackwave/dev/manifest-uri"))
        .then_output(|| {
            GetParameterOutput::builder()
                .parameter(
                    Parameter::builder()
                        .name("/stackwave/dev/manifest-uri")
                        .value("s3://artifacts/deployments/dev/t1/manifest.yaml")
                        .build(),
                )
                .build()
        });
    let put_param = capture_params(&params);
    let get = get_manifest(MANIFEST_KEY, MANIFEST);
    let listing = list(DIR, template_keys());
    let head = head_ok("deployments/dev/shared/api.yaml");
    let put = capture_puts(&puts);
    let templates = get_templates();
    let s3 = mock_client!(
        aws_sdk_s3,
        RuleMode::MatchAny,
        [&get, &templates, &listing, &head, &put]
    );
    let lock = lock_free();
    let ssm = mock_client!(
        aws_sdk_ssm,
        RuleMode::MatchAny,
        [&lock, &get_param, &put_param]
    );
    // No configured bucket: the manifest's bucket holds the run.
    let ctx = ctx(s3, ssm, "").await;

    let out = stackwave_plan::handle(
        &ctx,
        input(json!({"environment": "dev", "pollSeconds": {"min": 1, "max": 2}})),
    )
    .await
    .expect("plan succeeds");

    assert_eq!(get_param.num_calls(), 1);
    assert_eq!(
        out.run.manifest_uri,
        "s3://artifacts/deployments/dev/t1/manifest.yaml"
    );
    assert_eq!(out.run.bucket, BUCKET);
    assert_eq!(out.run.poll, PollSeconds { min: 1, max: 2 });
    assert_eq!(out.stack_count, 4);
    assert_eq!(puts.lock().unwrap().len(), 1);
    assert!(
        params.lock().unwrap().is_empty(),
        "the parameter it was read from is not rewritten"
    );
}

#[tokio::test]
async fn no_manifest_anywhere_is_invalid_input_explaining_both_ways() {
    let get_param = mock!(aws_sdk_ssm::Client::get_parameter)
        .then_error(|| GetParameterError::ParameterNotFound(ParameterNotFound::builder().build()));
    let get = get_manifest(MANIFEST_KEY, MANIFEST);
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&get]);
    let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&get_param]);
    let ctx = ctx(s3, ssm, BUCKET).await;

    let err = stackwave_plan::handle(&ctx, input(json!({"environment": "dev"})))
        .await
        .unwrap_err();

    assert_eq!(err.name(), "InvalidInput");
    let text = err.to_string();
    assert!(text.contains("/stackwave/dev/manifest-uri"), "{text}");
    assert!(text.contains("\"manifest\""), "{text}");
    assert_eq!(get.num_calls(), 0);
}

#[tokio::test]
async fn unknown_input_field_is_invalid_input_and_touches_nothing() {
    let get = get_manifest(MANIFEST_KEY, MANIFEST);
    let get_param = mock!(aws_sdk_ssm::Client::get_parameter)
        .then_output(|| GetParameterOutput::builder().build());
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&get]);
    let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&get_param]);
    let ctx = ctx(s3, ssm, BUCKET).await;

    let err = stackwave_plan::handle(
        &ctx,
        input(json!({"manifest": "s3://artifacts/deployments/dev/t1/manifest.yaml", "environment": "dev", "pollSecs": 5})),
    )
    .await
    .unwrap_err();

    assert_eq!(err.name(), "InvalidInput");
    let text = err.to_string();
    assert!(text.contains("pollSecs"), "{text}");
    assert!(text.contains("Accepted shape"), "{text}");
    assert!(text.contains("\"environment\": \"dev\""), "{text}");
    assert_eq!(get.num_calls(), 0);
    assert_eq!(get_param.num_calls(), 0);

    for (bad, needle) in [
        (
            json!({"manifest": "artifacts/manifest.yaml", "environment": "dev"}),
            "s3://",
        ),
        (
            json!({"manifest": "s3://artifacts/m.yaml", "environment": "dev_1"}),
            "dev_1",
        ),
        (
            json!({"manifest": "s3://artifacts/m.yaml", "environment": "dev", "pollSeconds": {"min": 9, "max": 3}}),
            "pollSeconds",
        ),
        (
            json!({"manifest": "s3://other/deployments/dev/m.yaml", "environment": "dev"}),
            "outside the artifact bucket",
        ),
        (json!({"environment": "dev", "manifest": 7}), "manifest"),
    ] {
        let err = stackwave_plan::handle(&ctx, input(bad.clone()))
            .await
            .unwrap_err();
        assert_eq!(err.name(), "InvalidInput", "{bad}");
        assert!(err.to_string().contains(needle), "{bad}: {err}");
    }
    assert_eq!(get.num_calls(), 0);
}

#[tokio::test]
async fn missing_manifest_object_names_the_uri() {
    let get = mock!(aws_sdk_s3::Client::get_object)
        .then_error(|| GetObjectError::NoSuchKey(NoSuchKey::builder().build()));
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&get]);
    let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, Vec::<&Rule>::new());
    let ctx = ctx(s3, ssm, BUCKET).await;

    let err = stackwave_plan::handle(
        &ctx,
        input(json!({"manifest": "s3://artifacts/deployments/dev/t9/manifest.yaml", "environment": "dev"})),
    )
    .await
    .unwrap_err();

    assert_eq!(err.name(), "InvalidManifest");
    assert!(
        err.to_string()
            .contains("s3://artifacts/deployments/dev/t9/manifest.yaml"),
        "{err}"
    );
}

#[tokio::test]
async fn a_cycle_is_invalid_manifest_naming_it_and_nothing_is_stored() {
    const CYCLE: &str = r#"
name: cyclic
stages:
  - name: only
    stacks:
      - name: Alpha-${environment}
        template: a.yaml
        dependsOn: ["Beta-${environment}"]
      - name: Beta-${environment}
        template: b.yaml
        parameters:
          X: {output: "Alpha-${environment}.Out"}
"#;
    let puts = Arc::new(Mutex::new(Vec::new()));
    let get = get_manifest("deployments/dev/c/manifest.yaml", CYCLE);
    let listing = list(
        "deployments/dev/c/",
        &[
            "deployments/dev/c/manifest.yaml",
            "deployments/dev/c/a.yaml",
            "deployments/dev/c/b.yaml",
        ],
    );
    let put = capture_puts(&puts);
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&get, &listing, &put]);
    let put_param = mock!(aws_sdk_ssm::Client::put_parameter)
        .then_output(|| PutParameterOutput::builder().build());
    let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&put_param]);
    let ctx = ctx(s3, ssm, BUCKET).await;

    let err = stackwave_plan::handle(
        &ctx,
        input(json!({"manifest": "s3://artifacts/deployments/dev/c/manifest.yaml", "environment": "dev"})),
    )
    .await
    .unwrap_err();

    assert_eq!(err.name(), "InvalidManifest");
    let text = err.to_string();
    assert!(
        text.contains("Alpha-dev -> Beta-dev -> Alpha-dev")
            || text.contains("Beta-dev -> Alpha-dev -> Beta-dev"),
        "{text}"
    );
    assert!(puts.lock().unwrap().is_empty(), "no plan is stored");
    assert_eq!(
        put_param.num_calls(),
        0,
        "an invalid manifest does not become the environment's default"
    );
}

#[tokio::test]
async fn a_missing_template_is_invalid_manifest_naming_it() {
    let puts = Arc::new(Mutex::new(Vec::new()));
    let get = get_manifest(MANIFEST_KEY, MANIFEST);
    // dns.yaml was not uploaded; ../shared/api.yaml neither.
    let listing = list(
        DIR,
        &[
            MANIFEST_KEY,
            "deployments/dev/t1/templates/network.yaml",
            "deployments/dev/t1/templates/ecs.yaml",
        ],
    );
    let head = mock!(aws_sdk_s3::Client::head_object).then_error(|| {
        aws_sdk_s3::operation::head_object::HeadObjectError::NotFound(
            aws_sdk_s3::types::error::NotFound::builder().build(),
        )
    });
    let put = capture_puts(&puts);
    let templates = get_templates();
    let s3 = mock_client!(
        aws_sdk_s3,
        RuleMode::MatchAny,
        [&get, &templates, &listing, &head, &put]
    );
    let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, Vec::<&Rule>::new());
    let ctx = ctx(s3, ssm, BUCKET).await;

    let err = stackwave_plan::handle(
        &ctx,
        input(json!({"manifest": "s3://artifacts/deployments/dev/t1/manifest.yaml", "environment": "dev"})),
    )
    .await
    .unwrap_err();

    assert_eq!(err.name(), "InvalidManifest");
    let text = err.to_string();
    assert!(
        text.contains("Dns-dev") && text.contains("templates/dns.yaml"),
        "{text}"
    );
    assert!(
        text.contains("Api-dev") && text.contains("../shared/api.yaml"),
        "{text}"
    );
    assert!(puts.lock().unwrap().is_empty());
}

#[tokio::test]
async fn handle_json_rejects_a_malformed_wrapper() {
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, Vec::<&Rule>::new());
    let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, Vec::<&Rule>::new());
    let ctx = ctx(s3, ssm, BUCKET).await;
    let err = stackwave_plan::handle_json(&ctx, json!({"environment": "dev"}))
        .await
        .unwrap_err();
    assert_eq!(err.name(), "InvalidInput");
    assert!(err.to_string().contains("execution"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// EventBridge envelopes and deduplication.
// ---------------------------------------------------------------------------------------------

const UPLOAD_KEY: &str = "manifests/dev/t1/manifest.yaml";
const UPLOAD_DIR: &str = "manifests/dev/t1/";
const OTHER_EXECUTION: &str =
    "arn:aws:states:us-east-1:123456789012:execution:stackwave-deploy:first-delivery";

fn s3_upload_event() -> Value {
    json!({
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2026-11-27T10:15:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:s3:::artifacts"],
        "detail": {
            "version": "0",
            "bucket": {"name": BUCKET},
            "object": {"key": UPLOAD_KEY, "size": 512, "etag": "b1946ac92492d2347c6235b4d2611184", "version-id": "v-2", "sequencer": "617f08299329d189"},
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": "123456789012",
            "source-ip-address": "1.2.3.4",
            "reason": "PutObject"
        }
    })
}

fn deployment_requested(detail: Value) -> Value {
    json!({
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "Deployment Requested",
        "source": "stackwave",
        "account": "123456789012",
        "time": "2026-11-27T10:15:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail
    })
}

fn upload_keys() -> &'static [&'static str] {
    &[
        UPLOAD_KEY,
        "manifests/dev/t1/templates/network.yaml",
        "manifests/dev/t1/templates/ecs.yaml",
        "manifests/dev/t1/templates/dns.yaml",
    ]
}

#[tokio::test]
async fn an_s3_upload_event_claims_the_object_version_and_plans_the_uploaded_manifest() {
    let puts = Arc::new(Mutex::new(Vec::new()));
    let params = Arc::new(Mutex::new(Vec::new()));
    // The uploaded version (v-2) is read, not whatever the key holds by now.
    let get = mock!(aws_sdk_s3::Client::get_object)
        .match_requests(|r| r.key() == Some(UPLOAD_KEY) && r.version_id() == Some("v-2"))
        .then_output(|| {
            GetObjectOutput::builder()
                .body(ByteStream::from_static(MANIFEST.as_bytes()))
                .build()
        });
    let listing = list(UPLOAD_DIR, upload_keys());
    let head = head_ok("manifests/dev/shared/api.yaml");
    let put = capture_puts(&puts);
    let put_param = capture_params(&params);
    let templates = get_templates();
    let s3 = mock_client!(
        aws_sdk_s3,
        RuleMode::MatchAny,
        [&get, &templates, &listing, &head, &put]
    );
    let lock = lock_free();
    // The claim expires on its own: an Advanced-tier parameter with an Expiration policy.
    let claim_settings = Arc::new(Mutex::new(Vec::new()));
    let claim_seen = claim_settings.clone();
    let claim_extras = mock!(aws_sdk_ssm::Client::put_parameter)
        .match_requests(|r| {
            r.name()
                .is_some_and(|n| n.starts_with("/stackwave/dev/events/"))
        })
        .then_compute_output(move |r| {
            claim_seen.lock().unwrap().push((
                r.name().unwrap_or_default().to_string(),
                r.value().unwrap_or_default().to_string(),
                r.overwrite(),
                r.tier().cloned(),
                r.policies().map(str::to_string),
            ));
            PutParameterOutput::builder().version(1).build()
        });
    let ssm = mock_client!(
        aws_sdk_ssm,
        RuleMode::MatchAny,
        [&lock, &claim_extras, &put_param]
    );
    let ctx = ctx(s3, ssm, BUCKET).await;

    let out = stackwave_plan::handle(&ctx, input(s3_upload_event()))
        .await
        .expect("plan succeeds");
    assert_eq!(
        get.num_calls(),
        1,
        "the manifest is read at the uploaded version"
    );
    let claim_settings = claim_settings.lock().unwrap();
    assert_eq!(claim_settings.len(), 1, "{claim_settings:?}");
    let (claim, value, overwrite, tier, policy) = &claim_settings[0];
    assert!(claim.starts_with("/stackwave/dev/events/s3-"), "{claim}");
    assert_eq!(
        value,
        "arn:aws:states:us-east-1:123456789012:execution:stackwave-deploy:exec-1"
    );
    assert_eq!(*overwrite, Some(false), "created only if absent");
    assert_eq!(*tier, Some(aws_sdk_ssm::types::ParameterTier::Advanced));
    let policy: Value = serde_json::from_str(policy.as_deref().expect("a policy")).unwrap();
    assert_eq!(policy[0]["Type"], "Expiration", "{policy}");
    let expires = chrono::DateTime::parse_from_rfc3339(
        policy[0]["Attributes"]["Timestamp"].as_str().unwrap(),
    )
    .unwrap();
    let hours =
        (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_minutes() as f64 / 60.0;
    assert!((23.9..=24.0).contains(&hours), "expires in {hours} h");

    assert_eq!(out.run.environment, "dev");
    assert_eq!(
        out.run.manifest_uri,
        "s3://artifacts/manifests/dev/t1/manifest.yaml"
    );
    assert_eq!(out.stack_count, 4);
    let params = params.lock().unwrap();
    assert_eq!(params.len(), 1, "{params:?}");
    assert_eq!(
        params[0],
        (
            "/stackwave/dev/manifest-uri".to_string(),
            "s3://artifacts/manifests/dev/t1/manifest.yaml".to_string(),
            Some(ParameterType::String),
            Some(true),
        ),
        "the S3 trigger keeps the environment's manifest location up to date"
    );
    assert_eq!(puts.lock().unwrap().len(), 1, "the plan is stored");
}

#[tokio::test]
async fn a_second_delivery_is_a_duplicate_naming_the_first_execution_and_reads_nothing() {
    let get = get_manifest(UPLOAD_KEY, MANIFEST);
    let put_param = mock!(aws_sdk_ssm::Client::put_parameter)
        .match_requests(|r| {
            r.name()
                .is_some_and(|n| n.starts_with("/stackwave/dev/events/"))
                && r.overwrite() == Some(false)
        })
        .then_error(|| {
            aws_sdk_ssm::operation::put_parameter::PutParameterError::ParameterAlreadyExists(
                aws_sdk_ssm::types::error::ParameterAlreadyExists::builder().build(),
            )
        });
    let get_param = mock!(aws_sdk_ssm::Client::get_parameter)
        .match_requests(|r| {
            r.name()
                .is_some_and(|n| n.starts_with("/stackwave/dev/events/"))
        })
        .then_output(|| {
            GetParameterOutput::builder()
                .parameter(Parameter::builder().value(OTHER_EXECUTION).build())
                .build()
        });
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&get]);
    let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&put_param, &get_param]);
    let ctx = ctx(s3, ssm, BUCKET).await;

    for event in [
        s3_upload_event(),
        deployment_requested(
            json!({"manifest": "s3://artifacts/deployments/dev/t1/manifest.yaml", "environment": "dev"}),
        ),
    ] {
        let err = stackwave_plan::handle(&ctx, input(event.clone()))
            .await
            .unwrap_err();
        assert_eq!(err.name(), "DuplicateEvent", "{event}");
        let text = err.to_string();
        assert!(text.contains(OTHER_EXECUTION), "{text}");
        assert!(text.contains("/stackwave/dev/events/"), "{text}");
        assert!(text.contains("deployed nothing"), "{text}");
    }
    let err = stackwave_plan::handle(&ctx, input(s3_upload_event()))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("S3 upload s3://artifacts/manifests/dev/t1/manifest.yaml (version v-2)"),
        "{err}"
    );
    let err = stackwave_plan::handle(
        &ctx,
        input(deployment_requested(
            json!({"manifest": "s3://artifacts/m.yaml", "environment": "dev"}),
        )),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("Deployment Requested event 6a7e8feb-b491-4cf7-a9f1-bf3703467718"),
        "{err}"
    );
    assert_eq!(get.num_calls(), 0, "a duplicate reads no manifest");
}

#[tokio::test]
async fn a_retried_plan_of_the_same_execution_keeps_its_own_claim() {
    let puts = Arc::new(Mutex::new(Vec::new()));
    let put_claim = mock!(aws_sdk_ssm::Client::put_parameter)
        .match_requests(|r| r.overwrite() == Some(false))
        .then_error(|| {
            aws_sdk_ssm::operation::put_parameter::PutParameterError::ParameterAlreadyExists(
                aws_sdk_ssm::types::error::ParameterAlreadyExists::builder().build(),
            )
        });
    let put_uri = mock!(aws_sdk_ssm::Client::put_parameter)
        .match_requests(|r| r.overwrite() == Some(true))
        .then_output(|| PutParameterOutput::builder().version(3).build());
    let get_param = mock!(aws_sdk_ssm::Client::get_parameter).then_output(|| {
        GetParameterOutput::builder()
            .parameter(
                Parameter::builder()
                    .value(
                        "arn:aws:states:us-east-1:123456789012:execution:stackwave-deploy:exec-1",
                    )
                    .build(),
            )
            .build()
    });
    let get = get_manifest(MANIFEST_KEY, MANIFEST);
    let listing = list(DIR, template_keys());
    let head = head_ok("deployments/dev/shared/api.yaml");
    let put = capture_puts(&puts);
    let templates = get_templates();
    let s3 = mock_client!(
        aws_sdk_s3,
        RuleMode::MatchAny,
        [&get, &templates, &listing, &head, &put]
    );
    let lock = lock_free();
    let ssm = mock_client!(
        aws_sdk_ssm,
        RuleMode::MatchAny,
        [&lock, &put_claim, &put_uri, &get_param]
    );
    let ctx = ctx(s3, ssm, BUCKET).await;

    let out = stackwave_plan::handle(
        &ctx,
        input(deployment_requested(json!({
            "manifest": "s3://artifacts/deployments/dev/t1/manifest.yaml",
            "environment": "dev",
            "pollSeconds": {"min": 1, "max": 2},
            "maxConcurrency": 4
        }))),
    )
    .await
    .expect("its own claim is not a duplicate");
    assert_eq!(put_claim.num_calls(), 1);
    assert_eq!(get_param.num_calls(), 1);
    assert_eq!(out.run.poll, PollSeconds { min: 1, max: 2 });
    assert_eq!(out.run.max_concurrency, 4);
    assert_eq!(puts.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_wrong_event_is_invalid_input_and_claims_nothing() {
    let put_param = mock!(aws_sdk_ssm::Client::put_parameter)
        .then_output(|| PutParameterOutput::builder().build());
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, Vec::<&Rule>::new());
    let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&put_param]);
    let ctx = ctx(s3, ssm, BUCKET).await;

    let mut outside = s3_upload_event();
    outside["detail"]["object"]["key"] = json!("deployments/dev/t1/manifest.yaml");
    let mut bad_env = s3_upload_event();
    bad_env["detail"]["object"]["key"] = json!("manifests/dev_1/manifest.yaml");
    for (event, needles) in [
        (
            outside,
            vec!["manifests/<environment>/", "Accepted shape: one of"],
        ),
        (
            bad_env,
            vec![
                "dev_1",
                "from S3 upload s3://artifacts/manifests/dev_1/manifest.yaml",
                "Deployment Requested",
            ],
        ),
        (
            deployment_requested(
                json!({"manifest": "s3://artifacts/m.yaml", "environment": "dev", "pollSeconds": {"min": 9, "max": 1}}),
            ),
            vec!["pollSeconds", "from Deployment Requested event"],
        ),
        (
            deployment_requested(json!({"environment": "dev"})),
            vec!["manifest", "Accepted shape: one of"],
        ),
    ] {
        let err = stackwave_plan::handle(&ctx, input(event.clone()))
            .await
            .unwrap_err();
        assert_eq!(err.name(), "InvalidInput", "{event}");
        let text = err.to_string();
        for needle in needles {
            assert!(text.contains(needle), "{needle:?} not in {text}");
        }
    }
    assert_eq!(put_param.num_calls(), 0, "a rejected event claims nothing");
}
