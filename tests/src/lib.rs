//! Shared helpers of the end-to-end tests (`tests/tests/*.rs`).
//!
//! Every test runs the real `statemachine/deploy.asl.json` in moto's Step Functions executor,
//! with the real Rust handlers behind the gateway, against the emulator (moto's server with the
//! project's extension). Tests share one emulator and isolate themselves by environment name:
//! stack names carry `${environment}`, and each test uses a fresh one.

pub mod asl;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::{json, Value};
use stackwave_cli::local::{ensure_started, LocalEnv, LocalOptions};

pub use asl::repo_root;

/// The test endpoint: `STACKWAVE_LOCAL_ENDPOINT` (the Makefile sets a port apart from the demo's).
pub fn endpoint() -> String {
    std::env::var("STACKWAVE_LOCAL_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:4766".to_string())
}

/// Seconds every stack operation takes in the emulator during tests.
pub const STACK_SECONDS: f64 = 1.0;

/// A started emulator and SDK clients pointed at it.
pub struct Local {
    pub env: LocalEnv,
    pub cfn: aws_sdk_cloudformation::Client,
    pub s3: aws_sdk_s3::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sfn: aws_sdk_sfn::Client,
    pub http: reqwest::Client,
}

/// Start the emulator (once; concurrent callers wait for each other) and build clients.
pub async fn local() -> Result<Local> {
    let opts = LocalOptions {
        endpoint: Some(endpoint()),
        stack_seconds: Some(STACK_SECONDS),
        stackwave_bin: Some(stackwave_bin()),
        ..Default::default()
    };
    let env = ensure_started(&opts)
        .await
        .context("start the local emulator")?;
    let sdk = stackwave_aws::sdk_config(Some(&env.endpoint), None).await;
    let s3conf = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(true)
        .build();
    Ok(Local {
        cfn: aws_sdk_cloudformation::Client::new(&sdk),
        s3: aws_sdk_s3::Client::from_conf(s3conf),
        ssm: aws_sdk_ssm::Client::new(&sdk),
        sqs: aws_sdk_sqs::Client::new(&sdk),
        sfn: aws_sdk_sfn::Client::new(&sdk),
        http: reqwest::Client::new(),
        env,
    })
}

/// The `stackwave` binary the Makefile builds before the e2e tests.
pub fn stackwave_bin() -> PathBuf {
    std::env::var_os("STACKWAVE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target").join("debug").join("stackwave"))
}

/// A fresh environment name for one test: `<prefix>-<6 hex>`.
pub fn unique_env(prefix: &str) -> String {
    format!("{prefix}{:06x}", fastrand::u32(..0x0100_0000))
}

/// Copy a directory tree (for tests that edit an example).
pub fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Result<Self> {
        let dir =
            std::env::temp_dir().join(format!("stackwave-{prefix}-{:08x}", fastrand::u32(..)));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The outcome of `stackwave deploy --output json`.
#[derive(Debug)]
pub struct CliRun {
    pub code: i32,
    pub json: Value,
    pub stderr: String,
}

/// `stackwave deploy <dir> --environment <env> --local --output json` with test polls, on the
/// tests' endpoint.
pub fn cli_deploy_command(dir: &Path, environment: &str) -> std::process::Command {
    let mut command = std::process::Command::new(stackwave_bin());
    command
        .args(["deploy"])
        .arg(dir)
        .args([
            "--environment",
            environment,
            "--local",
            "--output",
            "json",
            "--poll-min",
            "1",
            "--poll-max",
            "2",
        ])
        .env("STACKWAVE_LOCAL_ENDPOINT", endpoint());
    command
}

/// Run [`cli_deploy_command`] and parse its JSON report.
pub fn cli_deploy(dir: &Path, environment: &str) -> Result<CliRun> {
    let out = cli_deploy_command(dir, environment)
        .output()
        .with_context(|| format!("run {}", stackwave_bin().display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let json: Value = serde_json::from_str(stdout.trim())
        .with_context(|| format!("stdout is not one JSON object:\n{stdout}\nstderr:\n{stderr}"))?;
    Ok(CliRun {
        code: out.status.code().unwrap_or(-1),
        json,
        stderr,
    })
}

/// The cause of an execution the plan function rejected with `InvalidManifest` (asserted).
pub fn invalid_manifest_cause(exec: &Execution) -> String {
    assert_eq!(exec.status, "FAILED", "{exec:?}");
    assert_eq!(exec.error.as_deref(), Some("InvalidManifest"), "{exec:?}");
    exec.cause.clone().unwrap_or_default()
}

impl Local {
    /// Upload `dir` under `tests/<environment>/` and run it straight on the state machine, as
    /// execution `<environment>-<suffix>` (the CLI would refuse bad input before uploading);
    /// returns the ended execution.
    pub async fn run_dir(&self, dir: &Path, environment: &str, suffix: &str) -> Result<Execution> {
        let uri = self
            .upload_dir(dir, &format!("tests/{environment}"))
            .await?;
        self.run_execution(
            &format!("{environment}-{suffix}"),
            &serde_json::json!({"manifest": uri, "environment": environment}),
            Duration::from_secs(120),
        )
        .await
    }

    /// Names of the state machine's executions that mention `environment` (paginated).
    pub async fn executions_of(&self, environment: &str) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .sfn
                .list_executions()
                .state_machine_arn(&self.env.state_machine_arn)
                .set_next_token(token.take())
                .send()
                .await
                .context("ListExecutions")?;
            names.extend(
                page.executions()
                    .iter()
                    .map(|e| e.name().to_string())
                    .filter(|n| n.contains(environment)),
            );
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                return Ok(names);
            }
        }
    }

    /// Is the environment's lock free (its SSM parameter absent)? Any other answer is an error.
    pub async fn lock_is_free(&self, environment: &str) -> Result<bool> {
        match self
            .ssm
            .get_parameter()
            .name(format!("/stackwave/{environment}/lock"))
            .send()
            .await
        {
            Ok(_) => Ok(false),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_parameter_not_found()) =>
            {
                Ok(true)
            }
            Err(e) => Err(anyhow!("ssm:GetParameter the lock of {environment}: {e:?}")),
        }
    }

    /// Upload every file under `dir` to `s3://bucket/<prefix>/…`; returns the manifest URI.
    pub async fn upload_dir(&self, dir: &Path, prefix: &str) -> Result<String> {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d)? {
                let p = entry?.path();
                if p.is_dir() {
                    stack.push(p);
                    continue;
                }
                let rel = p.strip_prefix(dir)?.to_string_lossy().replace('\\', "/");
                self.s3
                    .put_object()
                    .bucket(&self.env.bucket)
                    .key(format!("{prefix}/{rel}"))
                    .body(std::fs::read(&p)?.into())
                    .send()
                    .await
                    .with_context(|| format!("upload {rel}"))?;
            }
        }
        Ok(format!("s3://{}/{prefix}/manifest.yaml", self.env.bucket))
    }

    /// Start an execution with `input` and wait until it ends (at most `timeout`).
    pub async fn run_execution(
        &self,
        name: &str,
        input: &Value,
        timeout: Duration,
    ) -> Result<Execution> {
        let started = self
            .sfn
            .start_execution()
            .state_machine_arn(&self.env.state_machine_arn)
            .name(name)
            .input(input.to_string())
            .send()
            .await
            .context("StartExecution")?;
        self.wait_execution(started.execution_arn(), timeout).await
    }

    /// Wait for an execution to end.
    pub async fn wait_execution(&self, arn: &str, timeout: Duration) -> Result<Execution> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let d = self
                .sfn
                .describe_execution()
                .execution_arn(arn)
                .send()
                .await
                .context("DescribeExecution")?;
            if d.status() != &ExecutionStatus::Running {
                return Ok(Execution {
                    arn: arn.to_string(),
                    status: d.status().as_str().to_string(),
                    output: d.output().and_then(|o| serde_json::from_str(o).ok()),
                    error: d.error().map(str::to_string),
                    cause: d.cause().map(str::to_string),
                });
            }
            if std::time::Instant::now() > deadline {
                bail!("execution {arn} still running after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Every history event of an execution.
    pub async fn history(&self, arn: &str) -> Result<Vec<aws_sdk_sfn::types::HistoryEvent>> {
        stackwave_cli::aws::execution_history(&self.sfn, arn).await
    }

    /// Every history event of a run: its execution's, then each loop segment's (the child
    /// executions it started), oldest segment first.
    pub async fn run_history(&self, arn: &str) -> Result<Vec<aws_sdk_sfn::types::HistoryEvent>> {
        let machine = stackwave_cli::local::loop_state_machine_arn();
        stackwave_cli::aws::run_history(&self.sfn, &machine, arn).await
    }

    /// Executions of the loop state machine that the run `parent` started, oldest first.
    pub async fn segments_of(&self, parent: &str) -> Result<Vec<String>> {
        let machine = stackwave_cli::local::loop_state_machine_arn();
        stackwave_cli::aws::segments_of(&self.sfn, &machine, parent).await
    }

    /// Names of the stacks that exist (not deleted) whose name ends with `-<environment>`.
    pub async fn stacks_of(
        &self,
        environment: &str,
    ) -> Result<Vec<aws_sdk_cloudformation::types::Stack>> {
        let suffix = format!("-{environment}");
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .cfn
                .describe_stacks()
                .set_next_token(token.clone())
                .send()
                .await
                .context("DescribeStacks")?;
            out.extend(
                page.stacks()
                    .iter()
                    .filter(|s| s.stack_name().is_some_and(|n| n.ends_with(&suffix)))
                    .cloned(),
            );
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// Stack events, oldest first.
    pub async fn stack_events(
        &self,
        stack: &str,
    ) -> Result<Vec<aws_sdk_cloudformation::types::StackEvent>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .cfn
                .describe_stack_events()
                .stack_name(stack)
                .set_next_token(token.clone())
                .send()
                .await
                .with_context(|| format!("DescribeStackEvents {stack}"))?;
            out.extend(page.stack_events().iter().cloned());
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        out.reverse();
        Ok(out)
    }

    /// The alert of `environment` with message attribute `status` (`SUCCEEDED`, `FAILED`,
    /// `ABORTED`, ...), read as [`Local::wait_alert`] reads them.
    pub async fn wait_run_alert(
        &self,
        environment: &str,
        status: &'static str,
        timeout: Duration,
    ) -> Result<Value> {
        let environment = environment.to_string();
        self.wait_alert(timeout, move |m| {
            m["MessageAttributes"]["environment"]["Value"] == environment.as_str()
                && m["MessageAttributes"]["status"]["Value"] == status
        })
        .await
    }

    /// Read alerts from the `stackwave-alerts` queue until one matches `pred` (at most `timeout`).
    /// Returns the SNS envelope (with `Subject`, `Message`, `MessageAttributes`).
    pub async fn wait_alert(
        &self,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let deadline = std::time::Instant::now() + timeout;
        let mut seen = Vec::new();
        while std::time::Instant::now() < deadline {
            let r = self
                .sqs
                .receive_message()
                .queue_url(&self.env.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .visibility_timeout(5)
                .send()
                .await
                .context("ReceiveMessage")?;
            for m in r.messages() {
                let body: Value =
                    serde_json::from_str(m.body().unwrap_or("{}")).unwrap_or(Value::Null);
                if pred(&body) {
                    if let Some(h) = m.receipt_handle() {
                        let _ = self
                            .sqs
                            .delete_message()
                            .queue_url(&self.env.queue_url)
                            .receipt_handle(h)
                            .send()
                            .await;
                    }
                    return Ok(body);
                }
                seen.push(body);
                // Leave other tests' alerts for them, but out of this scan's way for a few
                // seconds, so that the next receive reaches further into a crowded queue.
                if let Some(h) = m.receipt_handle() {
                    let _ = self
                        .sqs
                        .change_message_visibility()
                        .queue_url(&self.env.queue_url)
                        .receipt_handle(h)
                        .visibility_timeout(5)
                        .send()
                        .await;
                }
            }
        }
        Err(anyhow!(
            "no matching alert within {timeout:?}; saw {} other(s): {seen:?}",
            seen.len()
        ))
    }

    /// Set per-stack durations in the emulator (control API).
    pub async fn set_stack_seconds(&self, stacks: &[(String, f64)]) -> Result<()> {
        let map: serde_json::Map<String, Value> =
            stacks.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        let r = self
            .http
            .post(format!("{}/_stackwave/config", self.env.endpoint))
            .json(&json!({"stackSeconds": map}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("emulator config: {}", r.status());
        }
        Ok(())
    }
}

/// An ended execution.
#[derive(Debug, Clone)]
pub struct Execution {
    pub arn: String,
    pub status: String,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// A stack's template body and parameters: what "nothing is lost" compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackState {
    pub template: String,
    pub parameters: std::collections::BTreeMap<String, String>,
    pub status: String,
}

impl Local {
    /// One EventBridge API call (the workspace has no EventBridge SDK client).
    pub async fn events(&self, action: &str, body: &Value) -> Result<Value> {
        let day = chrono::Utc::now().format("%Y%m%d");
        let response = self
            .http
            .post(&self.env.endpoint)
            .header("Content-Type", "application/x-amz-json-1.1")
            .header("X-Amz-Target", format!("AWSEvents.{action}"))
            // The emulator reads the service and region from the credential scope; it does not
            // check signatures.
            .header(
                "Authorization",
                format!("AWS4-HMAC-SHA256 Credential=testing/{day}/{}/events/aws4_request, SignedHeaders=host, Signature=0", self.env.region),
            )
            .body(body.to_string())
            .send()
            .await
            .with_context(|| format!("events:{action}"))?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("events:{action} answered {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("events:{action} answered {text}"))
    }

    /// Add a fault through the emulator's control API; returns its id.
    pub async fn fault(&self, body: Value) -> Result<String> {
        let r = self
            .http
            .post(format!("{}/_stackwave/faults", self.env.endpoint))
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("fault {body} refused: {status} {v}");
        }
        v["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("fault answer has no id: {v}"))
    }

    /// Remove one fault (faults are shared by every test on the emulator: remove only your own).
    pub async fn remove_fault(&self, id: &str) -> Result<()> {
        self.http
            .delete(format!("{}/_stackwave/faults/{id}", self.env.endpoint))
            .send()
            .await?;
        Ok(())
    }

    /// The stack's template, parameters and status; `None` when it does not exist.
    pub async fn stack_state(&self, stack: &str) -> Result<Option<StackState>> {
        let described = match self.cfn.describe_stacks().stack_name(stack).send().await {
            Ok(d) => d,
            Err(e) => {
                let e = e.into_service_error();
                if aws_smithy_types::error::metadata::ProvideErrorMetadata::code(&e)
                    == Some("ValidationError")
                {
                    return Ok(None);
                }
                return Err(anyhow!("DescribeStacks {stack}: {e}"));
            }
        };
        let Some(s) = described.stacks().first() else {
            return Ok(None);
        };
        let status = s
            .stack_status()
            .map(|x| x.as_str().to_string())
            .unwrap_or_default();
        if status == "DELETE_COMPLETE" {
            return Ok(None);
        }
        let parameters = s
            .parameters()
            .iter()
            .filter_map(|p| {
                Some((
                    p.parameter_key()?.to_string(),
                    p.parameter_value()?.to_string(),
                ))
            })
            .collect();
        let template = self
            .cfn
            .get_template()
            .stack_name(stack)
            .send()
            .await
            .with_context(|| format!("GetTemplate {stack}"))?
            .template_body()
            .unwrap_or_default()
            .to_string();
        Ok(Some(StackState {
            template,
            parameters,
            status,
        }))
    }

    /// Wait until a stack is in one of `statuses` (at most `timeout`).
    pub async fn wait_status(
        &self,
        stack: &str,
        statuses: &[&str],
        timeout: Duration,
    ) -> Result<String> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let status = self
                .stack_state(stack)
                .await?
                .map(|s| s.status)
                .unwrap_or_else(|| "GONE".into());
            if statuses.contains(&status.as_str()) {
                return Ok(status);
            }
            if std::time::Instant::now() > deadline {
                bail!("stack {stack} is {status}, not one of {statuses:?}, after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// A manifest directory with the synthetic unit template beside it.
pub fn synthetic_dir(prefix: &str, manifest: &str) -> Result<TempDir> {
    let dir = TempDir::new(prefix)?;
    std::fs::create_dir_all(dir.path().join("templates"))?;
    std::fs::copy(
        repo_root().join("examples/synthetic/templates/unit.yaml"),
        dir.path().join("templates/unit.yaml"),
    )?;
    std::fs::write(dir.path().join("manifest.yaml"), manifest)?;
    Ok(dir)
}

/// The row of `stack` in a JSON summary (`null` when it has none).
pub fn summary_row(summary: &Value, stack: &str) -> Value {
    summary["stacks"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["name"] == stack))
        .cloned()
        .unwrap_or_default()
}

/// `name → action` of a JSON summary.
pub fn summary_actions(summary: &Value) -> std::collections::BTreeMap<String, String> {
    summary_column(summary, "action")
}

/// `name → <field>` of a JSON summary's stack rows (`action`, `stage`, …).
pub fn summary_column(summary: &Value, field: &str) -> std::collections::BTreeMap<String, String> {
    summary["stacks"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        s["name"].as_str().unwrap_or("").to_string(),
                        s[field].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
