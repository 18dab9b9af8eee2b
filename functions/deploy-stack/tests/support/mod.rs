//! Test support shared by the deploy-stack and check handler tests: SDK clients answered by
//! aws-smithy-mocks rules, an in-memory artifact bucket served through S3 mock rules, and small
//! builders for plans, records and CloudFormation answers.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use aws_sdk_cloudformation::error::ErrorMetadata;
use aws_sdk_cloudformation::types::{Output, Parameter, Stack, StackStatus, Tag};
use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
use aws_sdk_s3::operation::put_object::PutObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_mocks::{
    create_mock_http_client, mock, MockResponse, MockResponseInterceptor, Rule, RuleMode,
};
use stackwave_aws::{Clients, Config, Ctx};
use stackwave_core::io::{PollSeconds, RunContext};
use stackwave_core::manifest::{OnFailure, ParamValue};
use stackwave_core::plan::{Plan, PlannedStack, PlannedStage};
use stackwave_core::reconcile;
use stackwave_core::record::{Action, Operation, Phase, StackRecord};

pub const BUCKET: &str = "artifacts";
pub const EXECUTION: &str = "exec-20261127T101500Z";

/// A client of `$krate` whose every call is answered by `$rules` (MatchAny: the first
/// non-exhausted matching rule answers; an unmatched call fails the test). No retries, so a
/// scripted throttling error reaches the handler at once.
macro_rules! mocked_client {
    ($krate:ident, $rules:expr) => {{
        let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
        for rule in $rules {
            interceptor = interceptor.with_rule(rule);
        }
        let conf = $krate::Config::builder()
            .behavior_version($krate::config::BehaviorVersion::latest())
            .region($krate::config::Region::new("us-east-1"))
            .credentials_provider($krate::config::Credentials::new(
                "testing", "testing", None, None, "mock",
            ))
            .http_client(create_mock_http_client())
            .interceptor(interceptor)
            .retry_config($krate::config::retry::RetryConfig::disabled())
            .build();
        $krate::Client::from_conf(conf)
    }};
}

/// The artifact bucket, in memory.
#[derive(Clone, Default)]
pub struct Bucket {
    pub objects: Arc<Mutex<HashMap<String, Vec<u8>>>>,
}

impl Bucket {
    pub fn put_json<T: serde::Serialize>(&self, key: &str, value: &T) {
        let body = serde_json::to_vec(value).expect("serialize");
        self.objects
            .lock()
            .expect("lock")
            .insert(key.to_string(), body);
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.objects.lock().expect("lock").get(key).cloned()
    }

    pub fn record(&self, run: &RunContext, stack: &str) -> Option<StackRecord> {
        self.get(&run.record_key(stack))
            .map(|b| serde_json::from_slice(&b).expect("record json"))
    }

    pub fn put_record(&self, run: &RunContext, record: &StackRecord) {
        self.put_json(&run.record_key(&record.stack), record);
    }

    /// GetObject and PutObject answered from the map.
    pub fn rules(&self) -> Vec<Rule> {
        let objects = self.objects.clone();
        let get = mock!(aws_sdk_s3::Client::get_object).then_compute_response(move |req| {
            assert_eq!(req.bucket(), Some(BUCKET));
            match objects
                .lock()
                .expect("lock")
                .get(req.key().unwrap_or_default())
            {
                Some(body) => MockResponse::Output(
                    GetObjectOutput::builder()
                        .body(ByteStream::from(body.clone()))
                        .build(),
                ),
                None => MockResponse::Error(GetObjectError::NoSuchKey(
                    aws_sdk_s3::types::error::NoSuchKey::builder().build(),
                )),
            }
        });
        let objects = self.objects.clone();
        let put = mock!(aws_sdk_s3::Client::put_object).then_compute_output(move |req| {
            assert_eq!(req.bucket(), Some(BUCKET));
            let body = req.body().bytes().expect("in-memory body").to_vec();
            objects
                .lock()
                .expect("lock")
                .insert(req.key().unwrap_or_default().to_string(), body);
            PutObjectOutput::builder().build()
        });
        vec![get, put]
    }
}

/// A handler context whose clients answer from the rules (S3 from the bucket).
pub fn ctx(bucket: &Bucket, cfn: &[&Rule], ssm: &[&Rule], config: Config) -> Ctx {
    let s3_rules = bucket.rules();
    let none: [&Rule; 0] = [];
    let clients = Clients {
        cfn: mocked_client!(aws_sdk_cloudformation, cfn.iter().copied()),
        s3: mocked_client!(aws_sdk_s3, s3_rules.iter()),
        ssm: mocked_client!(aws_sdk_ssm, ssm.iter().copied()),
        sns: mocked_client!(aws_sdk_sns, none.iter().copied()),
        sfn: mocked_client!(aws_sdk_sfn, none.iter().copied()),
    };
    Ctx { clients, config }
}

pub fn config() -> Config {
    Config {
        bucket: BUCKET.into(),
        topic_arn: String::new(),
        cfn_role_arn: None,
        endpoint_url: None,
        // The tests that script the change set's states set a wait.
        change_set_wait: std::time::Duration::ZERO,
    }
}

pub fn run() -> RunContext {
    RunContext {
        execution_arn: format!(
            "arn:aws:states:us-east-1:123456789012:execution:stackwave-deploy:{EXECUTION}"
        ),
        execution_name: EXECUTION.into(),
        environment: "dev".into(),
        bucket: BUCKET.into(),
        run_prefix: format!("runs/dev/{EXECUTION}/"),
        poll: PollSeconds { min: 1, max: 2 },
        max_concurrency: 10,
        manifest_uri: format!("s3://{BUCKET}/deployments/dev/20261127T101500Z/manifest.yaml"),
        started_at: "2026-11-27T10:15:00Z".into(),
        on_failure: OnFailure::Rollback,
        fallback_poll_seconds: stackwave_core::io::DEFAULT_FALLBACK_POLL_SECONDS,
        segment_events: stackwave_core::budget::SEGMENT_EVENTS,
    }
}

pub fn template_key(file: &str) -> String {
    format!("deployments/dev/20261127T101500Z/templates/{file}")
}

pub fn planned(name: &str, file: &str, parameters: Vec<(&str, ParamValue)>) -> PlannedStack {
    PlannedStack {
        name: name.into(),
        stage: "infrastructure".into(),
        stage_index: 0,
        wave: 0,
        template: template_key(file),
        parameters: parameters
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        depends_on: vec![],
        tags: BTreeMap::from([
            ("Project".to_string(), "bellyfed".to_string()),
            ("Environment".to_string(), "dev".to_string()),
        ]),
        capabilities: vec!["CAPABILITY_NAMED_IAM".into()],
        timeout_minutes: 30,
        secret_parameters: vec![],
    }
}

pub fn plan(stacks: Vec<PlannedStack>) -> Plan {
    Plan {
        name: "bellyfed".into(),
        environment: "dev".into(),
        on_failure: OnFailure::Rollback,
        schedule: Default::default(),
        stages: vec![PlannedStage {
            index: 0,
            name: "infrastructure".into(),
            waves: vec![stacks.iter().map(|s| s.name.clone()).collect()],
        }],
        stacks,
    }
}

/// A record as deploy-stack writes it, started `minutes_ago`.
pub fn record(stack: &str, operation: Operation, phase: Phase, minutes_ago: i64) -> StackRecord {
    StackRecord {
        stack: stack.into(),
        stage: "infrastructure".into(),
        operation,
        phase,
        action: Action::InProgress,
        change_set_name: reconcile::change_set_name(EXECUTION, stack),
        client_token: reconcile::client_token(EXECUTION, stack, reconcile::OP_EXECUTE),
        parameters: vec![("Env".into(), "dev".into())],
        secrets: vec![],
        started_at: reconcile::timestamp(
            chrono::Utc::now() - chrono::Duration::minutes(minutes_ago),
        ),
        finished_at: None,
        status: None,
        reason: String::new(),
        root_cause: None,
        outputs: vec![],
        snapshot: None,
        timeout_minutes: 30,
        rollback: None,
    }
}

/// A DescribeStacks stack.
pub fn stack(name: &str, status: &str) -> Stack {
    Stack::builder()
        .stack_name(name)
        .stack_id(format!(
            "arn:aws:cloudformation:us-east-1:123456789012:stack/{name}/1"
        ))
        .creation_time(aws_smithy_types::DateTime::from_secs(1_800_000_000))
        .stack_status(StackStatus::from(status))
        .build()
}

pub fn with_outputs(s: Stack, outputs: &[(&str, &str)]) -> Stack {
    let mut s = s;
    s.outputs = Some(
        outputs
            .iter()
            .map(|(k, v)| Output::builder().output_key(*k).output_value(*v).build())
            .collect(),
    );
    s
}

pub fn with_parameters_and_tags(s: Stack, params: &[(&str, &str)], tags: &[(&str, &str)]) -> Stack {
    let mut s = s;
    s.parameters = Some(
        params
            .iter()
            .map(|(k, v)| {
                Parameter::builder()
                    .parameter_key(*k)
                    .parameter_value(*v)
                    .build()
            })
            .collect(),
    );
    s.tags = Some(
        tags.iter()
            .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
            .collect(),
    );
    s
}

/// AWS's answer to DescribeStacks for a missing stack.
pub fn does_not_exist(name: &str) -> ErrorMetadata {
    ErrorMetadata::builder()
        .code("ValidationError")
        .message(format!("Stack with id {name} does not exist"))
        .build()
}

/// AWS's throttling answer.
pub fn throttling() -> ErrorMetadata {
    ErrorMetadata::builder()
        .code("Throttling")
        .message("Rate exceeded")
        .build()
}
