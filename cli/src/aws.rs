//! SDK clients and where a command points: the local endpoint or real AWS.

use anyhow::{anyhow, bail};
use aws_config::SdkConfig;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::local;

/// The clients the CLI uses, from one `SdkConfig`.
#[derive(Debug, Clone)]
pub struct Aws {
    pub s3: aws_sdk_s3::Client,
    pub sfn: aws_sdk_sfn::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub sns: aws_sdk_sns::Client,
    pub sqs: aws_sdk_sqs::Client,
    /// The local endpoint, when pointing at the local AWS.
    pub endpoint: Option<String>,
    pub region: Option<String>,
}

impl Aws {
    /// Clients for the local AWS at `endpoint` (fixed region, account and test credentials).
    pub async fn local(endpoint: &str) -> Self {
        let sdk = stackwave_aws::sdk_config(Some(endpoint), None).await;
        Self::from_sdk(&sdk, Some(endpoint.to_string()))
    }

    /// Clients for real AWS: the default credential chain and region (or `region`).
    pub async fn real(region: Option<&str>) -> Self {
        let sdk = stackwave_aws::sdk_config(None, region).await;
        Self::from_sdk(&sdk, None)
    }

    /// Path-style S3 addressing locally (the emulator serves every bucket on one host),
    /// virtual-hosted style on real AWS.
    pub fn from_sdk(sdk: &SdkConfig, endpoint: Option<String>) -> Self {
        let s3 = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(endpoint.is_some())
            .build();
        Aws {
            s3: aws_sdk_s3::Client::from_conf(s3),
            sfn: aws_sdk_sfn::Client::new(sdk),
            ssm: aws_sdk_ssm::Client::new(sdk),
            sns: aws_sdk_sns::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
            region: sdk.region().map(|r| r.to_string()),
            endpoint,
        }
    }

    pub fn is_local(&self) -> bool {
        self.endpoint.is_some()
    }
}

/// Where a command points, as plain data (the CLI flags, or what a test sets).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetConfig {
    /// The local endpoint; `None` means real AWS.
    pub local_endpoint: Option<String>,
    /// Real AWS: the artifact bucket (`--bucket`, `STACKWAVE_BUCKET`).
    pub bucket: Option<String>,
    /// Real AWS: the state machine (`--state-machine-arn`, `STACKWAVE_STATE_MACHINE_ARN`).
    pub state_machine_arn: Option<String>,
    /// Real AWS: the region, when not the default chain's.
    pub region: Option<String>,
}

impl TargetConfig {
    /// The local AWS at `endpoint` (or the default local endpoint).
    pub fn local(endpoint: Option<&str>) -> Self {
        TargetConfig {
            local_endpoint: Some(local::resolve_endpoint(endpoint)),
            ..Default::default()
        }
    }

    /// Build the clients and fill in the fixed local names. Locally, fails with a hint when
    /// nothing answers at the endpoint.
    pub async fn resolve(&self) -> anyhow::Result<Target> {
        match &self.local_endpoint {
            Some(endpoint) => {
                if !local::is_healthy(endpoint).await {
                    bail!(
                        "the local AWS is not running at {endpoint}. Fix: run `stackwave local start` \
                         (or point --endpoint / STACKWAVE_LOCAL_ENDPOINT at where it runs)"
                    );
                }
                Ok(Target {
                    aws: Aws::local(endpoint).await,
                    bucket: Some(local::BUCKET.to_string()),
                    state_machine_arn: Some(local::state_machine_arn()),
                })
            }
            None => {
                let aws = Aws::real(self.region.as_deref()).await;
                let (bucket, state_machine_arn) = from_installation(
                    &aws.ssm,
                    self.bucket.clone().filter(|b| !b.is_empty()),
                    self.state_machine_arn.clone().filter(|a| !a.is_empty()),
                )
                .await;
                Ok(Target {
                    aws,
                    bucket,
                    state_machine_arn,
                })
            }
        }
    }
}

/// The bucket and state machine given, each missing one read from what the installation in this
/// account and region recorded in SSM (`/stackwave/config/...`, template.yaml). A parameter that
/// cannot be read leaves it missing: the command that needs it says how to give it.
pub async fn from_installation(
    ssm: &aws_sdk_ssm::Client,
    bucket: Option<String>,
    state_machine_arn: Option<String>,
) -> (Option<String>, Option<String>) {
    use stackwave_core::manifest::{INSTALLED_BUCKET_PARAMETER, INSTALLED_STATE_MACHINE_PARAMETER};
    let bucket = match bucket {
        Some(b) => Some(b),
        None => installed(ssm, INSTALLED_BUCKET_PARAMETER).await,
    };
    let state_machine_arn = match state_machine_arn {
        Some(a) => Some(a),
        None => installed(ssm, INSTALLED_STATE_MACHINE_PARAMETER).await,
    };
    (bucket, state_machine_arn)
}

async fn installed(ssm: &aws_sdk_ssm::Client, name: &str) -> Option<String> {
    match ssm.get_parameter().name(name).send().await {
        Ok(out) => out
            .parameter()
            .and_then(|p| p.value())
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        Err(e) => {
            tracing::debug!(parameter = name, error = %sdk_error("ssm:GetParameter", e), "no installed stackwave setting");
            None
        }
    }
}

/// Clients plus the bucket and state machine a command uses.
#[derive(Debug, Clone)]
pub struct Target {
    pub aws: Aws,
    pub bucket: Option<String>,
    pub state_machine_arn: Option<String>,
}

impl Target {
    pub fn bucket(&self) -> anyhow::Result<&str> {
        self.bucket.as_deref().ok_or_else(|| {
            anyhow!(
                "no artifact bucket: none given, and no stackwave installation recorded one in SSM \
                 ({}) in this account and region. Fix: pass --bucket or set STACKWAVE_BUCKET, \
                 install stackwave with `sam deploy`, or use --local",
                stackwave_core::manifest::INSTALLED_BUCKET_PARAMETER
            )
        })
    }

    pub fn state_machine_arn(&self) -> anyhow::Result<&str> {
        self.state_machine_arn.as_deref().ok_or_else(|| {
            anyhow!(
                "no state machine: none given, and no stackwave installation recorded one in SSM \
                 ({}) in this account and region. Fix: pass --state-machine-arn or set \
                 STACKWAVE_STATE_MACHINE_ARN, install stackwave with `sam deploy`, or use --local",
                stackwave_core::manifest::INSTALLED_STATE_MACHINE_PARAMETER
            )
        })
    }
}

/// The flags that choose where a command points.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TargetArgs {
    /// Use the local AWS (the emulator behind the gateway) instead of real AWS.
    #[arg(long)]
    pub local: bool,
    /// The local endpoint (implies --local) [default: $STACKWAVE_LOCAL_ENDPOINT or http://127.0.0.1:4566].
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Real AWS: the artifact bucket [default: the installation's, from SSM
    /// /stackwave/config/artifact-bucket].
    #[arg(long, env = "STACKWAVE_BUCKET", value_name = "NAME")]
    pub bucket: Option<String>,
    /// Real AWS: the ARN of the deployed stackwave state machine [default: the installation's,
    /// from SSM /stackwave/config/state-machine-arn].
    #[arg(long, env = "STACKWAVE_STATE_MACHINE_ARN", value_name = "ARN")]
    pub state_machine_arn: Option<String>,
    /// Real AWS: the region (default: the SDK's default chain).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
}

impl TargetArgs {
    pub fn config(&self) -> TargetConfig {
        if self.local || self.endpoint.is_some() {
            TargetConfig::local(self.endpoint.as_deref())
        } else {
            TargetConfig {
                local_endpoint: None,
                bucket: self.bucket.clone(),
                state_machine_arn: self.state_machine_arn.clone(),
                region: self.region.clone(),
            }
        }
    }
}

/// An SDK error as a readable `anyhow` error: `operation failed (Code): message` for service
/// errors, the whole error chain otherwise (connection refused, timeouts, credentials).
pub fn sdk_error<E, R>(
    operation: &str,
    err: aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    use aws_smithy_runtime_api::client::result::SdkError;
    match &err {
        SdkError::ServiceError(se) => {
            let e = se.err();
            anyhow!(
                "{operation} failed ({}): {}",
                e.code().unwrap_or("Unknown"),
                e.message()
                    .map(str::to_string)
                    .unwrap_or_else(|| e.to_string())
            )
        }
        _ => anyhow!("{operation} failed: {}", error_chain(&err)),
    }
}

/// `error: its source: ...`, each Display once (no Debug dumps).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}

/// The error code of an SDK error, if AWS sent one.
pub fn error_code<E, R>(
    err: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> Option<String>
where
    E: ProvideErrorMetadata,
{
    err.as_service_error()
        .and_then(|e| e.code())
        .map(str::to_string)
}

/// Every history event of an execution, page after page (GetExecutionHistory, 1,000 a page).
pub async fn execution_history(
    sfn: &aws_sdk_sfn::Client,
    arn: &str,
) -> anyhow::Result<Vec<aws_sdk_sfn::types::HistoryEvent>> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = sfn
            .get_execution_history()
            .execution_arn(arn)
            .max_results(1000)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| sdk_error("states:GetExecutionHistory", e))?;
        out.extend(page.events().iter().cloned());
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// The loop segments (executions of `loop_machine`) that the run `parent` started, oldest
/// first: those whose input names it in `AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID`.
pub async fn segments_of(
    sfn: &aws_sdk_sfn::Client,
    loop_machine: &str,
    parent: &str,
) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = sfn
            .list_executions()
            .state_machine_arn(loop_machine)
            .max_results(1000)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| sdk_error("states:ListExecutions", e))?;
        for e in page.executions() {
            let described = sfn
                .describe_execution()
                .execution_arn(e.execution_arn())
                .send()
                .await
                .map_err(|e| sdk_error("states:DescribeExecution", e))?;
            let input: serde_json::Value =
                serde_json::from_str(described.input().unwrap_or("{}")).unwrap_or_default();
            if input["AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID"] == parent {
                let start = e.start_date();
                out.push((
                    start.secs(),
                    start.subsec_nanos(),
                    e.execution_arn().to_string(),
                ));
            }
        }
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    out.sort();
    Ok(out.into_iter().map(|(_, _, arn)| arn).collect())
}

/// Every history event of a run: its execution's, then each of its loop segments' (oldest
/// first).
pub async fn run_history(
    sfn: &aws_sdk_sfn::Client,
    loop_machine: &str,
    arn: &str,
) -> anyhow::Result<Vec<aws_sdk_sfn::types::HistoryEvent>> {
    let mut events = execution_history(sfn, arn).await?;
    for segment in segments_of(sfn, loop_machine, arn).await? {
        events.extend(execution_history(sfn, &segment).await?);
    }
    Ok(events)
}
