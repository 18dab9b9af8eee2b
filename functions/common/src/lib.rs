//! What stackwave's Lambda functions share on the AWS side: configuration, SDK clients built
//! once, the S3 run store, and the mapping of SDK errors to `stackwave_core::Error`.

pub mod cfn;
pub mod errors;
pub mod lock;
pub mod secrets;
pub mod stacks;
pub mod store;
pub mod telemetry;

use aws_config::{BehaviorVersion, Region, SdkConfig};

pub use errors::{aws_error, classify_code};
pub use store::RunStore;

/// Local emulator identity (the fixed public interface of `--local`).
pub const LOCAL_REGION: &str = "us-east-1";
pub const LOCAL_ACCOUNT: &str = "123456789012";

/// Function configuration, from the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// Artifact bucket (`STACKWAVE_BUCKET`).
    pub bucket: String,
    /// Alert topic (`STACKWAVE_TOPIC_ARN`).
    pub topic_arn: String,
    /// Role CloudFormation assumes for stack operations (`STACKWAVE_CFN_ROLE_ARN`), optional.
    pub cfn_role_arn: Option<String>,
    /// Endpoint override (`STACKWAVE_ENDPOINT_URL`): the local emulator.
    pub endpoint_url: Option<String>,
    /// How long deploy-stack waits for the change set it created before it hands over to the
    /// scheduling step (`STACKWAVE_CHANGE_SET_WAIT_SECONDS`, default 20, at most 60; 0: no wait).
    pub change_set_wait: std::time::Duration,
}

/// The default of [`Config::change_set_wait`].
pub const DEFAULT_CHANGE_SET_WAIT_SECONDS: u64 = 20;
const MAX_CHANGE_SET_WAIT_SECONDS: u64 = 60;

impl Config {
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Config {
            bucket: var("STACKWAVE_BUCKET").unwrap_or_default(),
            topic_arn: var("STACKWAVE_TOPIC_ARN").unwrap_or_default(),
            cfn_role_arn: var("STACKWAVE_CFN_ROLE_ARN"),
            endpoint_url: var("STACKWAVE_ENDPOINT_URL"),
            change_set_wait: std::time::Duration::from_secs(
                var("STACKWAVE_CHANGE_SET_WAIT_SECONDS")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(DEFAULT_CHANGE_SET_WAIT_SECONDS)
                    .min(MAX_CHANGE_SET_WAIT_SECONDS),
            ),
        }
    }
}

/// SDK clients, built once per process from one `SdkConfig`.
#[derive(Debug, Clone)]
pub struct Clients {
    pub cfn: aws_sdk_cloudformation::Client,
    pub s3: aws_sdk_s3::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub sns: aws_sdk_sns::Client,
    pub sfn: aws_sdk_sfn::Client,
}

impl Clients {
    pub fn new(sdk: &SdkConfig) -> Self {
        // Path-style addressing: the emulator serves every bucket on one host.
        let s3 = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build();
        Clients {
            cfn: aws_sdk_cloudformation::Client::new(sdk),
            s3: aws_sdk_s3::Client::from_conf(s3),
            ssm: aws_sdk_ssm::Client::new(sdk),
            sns: aws_sdk_sns::Client::new(sdk),
            sfn: aws_sdk_sfn::Client::new(sdk),
        }
    }
}

/// Everything a handler needs.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub clients: Clients,
    pub config: Config,
}

impl Ctx {
    pub fn new(sdk: &SdkConfig, config: Config) -> Self {
        Ctx {
            clients: Clients::new(sdk),
            config,
        }
    }

    /// Load the SDK config from the default chain (with the endpoint override, if any) and the
    /// function config from the environment. Retries with jittered exponential backoff absorb
    /// throttling before it reaches the state machine's Retry (see [`sdk_config`]).
    pub async fn from_env() -> Self {
        let config = Config::from_env();
        let sdk = sdk_config(config.endpoint_url.as_deref(), None).await;
        Ctx::new(&sdk, config)
    }
}

/// SDK attempts per call (the first and up to 5 retries).
pub const SDK_MAX_ATTEMPTS: u32 = 6;
/// First retry's backoff ceiling; it doubles per retry up to [`SDK_MAX_BACKOFF`].
pub const SDK_INITIAL_BACKOFF: std::time::Duration = std::time::Duration::from_millis(200);
/// Longest backoff between two attempts.
pub const SDK_MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(5);

/// The SDK config: default credential chain and region, or the local emulator's fixed identity
/// when `endpoint_url` is given.
///
/// Retries: the standard mode, full-jitter exponential backoff (200 ms doubling to 5 s, 6
/// attempts: at most about 6 s of backoff per call, so a check of a wave stays far inside its
/// Lambda timeout). Not the adaptive mode: its client-side rate limiter, shared by every call of
/// a warm process, measures stackwave's sparse polling as a rate of about one call a second and,
/// after a throttle, charges a retry 10 tokens at that rate: with 30% of DescribeStacks
/// throttled on the local emulator it slept 6 to 20 s per retry and a 14-stack deployment took
/// 4 to 5 minutes instead of 40 s (the standard mode: 42 s). What the SDK does not absorb, the
/// state machine's Retry on `Throttled` does, and check takes a throttled poll as no news for
/// that stack this round (the next poll asks again).
pub async fn sdk_config(endpoint_url: Option<&str>, region: Option<&str>) -> SdkConfig {
    let retry = aws_config::retry::RetryConfig::standard()
        .with_max_attempts(SDK_MAX_ATTEMPTS)
        .with_initial_backoff(SDK_INITIAL_BACKOFF)
        .with_max_backoff(SDK_MAX_BACKOFF);
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).retry_config(retry);
    if let Some(url) = endpoint_url {
        loader = loader
            .endpoint_url(url)
            .region(Region::new(region.unwrap_or(LOCAL_REGION).to_string()))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "stackwave-local",
            ));
    } else if let Some(r) = region {
        loader = loader.region(Region::new(r.to_string()));
    }
    loader.load().await
}

/// Deserialize a handler's input; a wrong shape is `InvalidInput` showing the accepted shape.
pub fn parse_input<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
    accepted: &str,
) -> Result<T, stackwave_core::Error> {
    serde_json::from_value(value).map_err(|e| stackwave_core::Error::InvalidInput {
        message: e.to_string(),
        accepted: accepted.to_string(),
    })
}

/// Serialize a handler's output.
pub fn to_output<T: serde::Serialize>(
    value: &T,
) -> Result<serde_json::Value, stackwave_core::Error> {
    serde_json::to_value(value)
        .map_err(|e| stackwave_core::Error::Internal(format!("serialize output: {e}")))
}
