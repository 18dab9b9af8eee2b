//! The local emulator as the benchmarks drive it: started on its own endpoint through the CLI's
//! library, deployments started with `deploy::run` (validate, upload, StartExecution), then
//! followed here with DescribeExecution only, so that following a run adds no load.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::{json, Value};
use stackwave_cli::aws::TargetConfig;
use stackwave_cli::deploy;
use stackwave_cli::local::{self, LocalConfig, LocalEnv, LocalOptions, Process};
use stackwave_core::plan::Plan;

use crate::history::Ev;
use crate::schedule::Window;

/// The bench's endpoint: `STACKWAVE_BENCH_ENDPOINT`, else port 4966 (apart from the demo's
/// 4566, the e2e tests' 4766 and 4866).
pub fn endpoint() -> String {
    std::env::var("STACKWAVE_BENCH_ENDPOINT")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "http://127.0.0.1:4966".to_string())
}

pub struct Local {
    pub env: LocalEnv,
    pub opts: LocalOptions,
    pub sfn: aws_sdk_sfn::Client,
    pub cfn: aws_sdk_cloudformation::Client,
    pub http: reqwest::Client,
    pub gateway_log: PathBuf,
}

/// A started deployment.
#[derive(Debug, Clone)]
pub struct Started {
    pub arn: String,
    pub plan: Plan,
}

/// How an execution ended.
#[derive(Debug, Clone)]
pub struct Ended {
    pub status: String,
    pub error: Option<String>,
}

impl Local {
    /// Stop whatever this endpoint's local AWS was (from an earlier bench), then start it
    /// fresh.
    pub async fn start(endpoint: &str) -> anyhow::Result<Local> {
        let opts = LocalOptions {
            endpoint: Some(endpoint.to_string()),
            stack_seconds: Some(1.0),
            ..Default::default()
        };
        local::stop(&opts)
            .await
            .context("stop an earlier bench emulator")?;
        let env = local::ensure_started(&opts)
            .await
            .context("start the local emulator")?;
        let cfg = LocalConfig::resolve(&opts)?;
        let sdk = stackwave_aws::sdk_config(Some(&env.endpoint), None).await;
        Ok(Local {
            sfn: aws_sdk_sfn::Client::new(&sdk),
            cfn: aws_sdk_cloudformation::Client::new(&sdk),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(120))
                .build()?,
            gateway_log: cfg.log_file(Process::Gateway),
            env,
            opts,
        })
    }

    pub async fn stop(&self) -> anyhow::Result<()> {
        local::stop(&self.opts).await.map(|_| ())
    }

    /// Empty moto (every stack, bucket, execution), then set the local AWS up again.
    pub async fn reset(&mut self) -> anyhow::Result<()> {
        self.post("/moto-api/reset", &json!({})).await?;
        self.env = local::ensure_started(&self.opts)
            .await
            .context("set the local AWS up after a reset")?;
        Ok(())
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let r = self
            .http
            .post(format!("{}{path}", self.env.endpoint))
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("POST {path}: {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The emulator's control API: `{"defaultStackSeconds": x, "stackSeconds": {name: s}}`.
    pub async fn config(&self, body: &Value) -> anyhow::Result<()> {
        self.post("/_stackwave/config", body).await.map(|_| ())
    }

    /// Validate, upload and start with this input: `fallbackPollSeconds` and `maxConcurrency`
    /// when given (the CLI sets neither `maxConcurrency` nor lets a caller pick it, so the bench
    /// uploads and starts the execution itself, the way `deploy::run` does).
    pub async fn launch(
        &self,
        dir: &Path,
        environment: &str,
        fallback_poll: Option<u32>,
        max_concurrency: Option<u32>,
    ) -> anyhow::Result<Started> {
        let validated = deploy::validate(dir, environment)?;
        let plan = validated
            .plan
            .clone()
            .map_err(|issues| anyhow::anyhow!("{} is invalid: {issues:?}", dir.display()))?;
        let target = TargetConfig::local(Some(&self.env.endpoint))
            .resolve()
            .await?;
        let bucket = target.bucket()?.to_string();
        let machine = target.state_machine_arn()?.to_string();
        let ts = deploy::timestamp(chrono::Utc::now());
        let prefix = format!("deployments/{environment}/{ts}/");
        for (path, rel) in deploy::files_to_upload(&validated.dir)? {
            let body = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
            target
                .aws
                .s3
                .put_object()
                .bucket(&bucket)
                .key(format!("{prefix}{rel}"))
                .body(aws_sdk_s3::primitives::ByteStream::from(body))
                .send()
                .await
                .with_context(|| format!("upload {rel}"))?;
        }
        let manifest_rel = validated
            .manifest_file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .context("manifest has no file name")?;
        let mut input = json!({
            "manifest": format!("s3://{bucket}/{prefix}{manifest_rel}"),
            "environment": environment,
        });
        if let Some(v) = fallback_poll {
            input["fallbackPollSeconds"] = json!(v);
        }
        if let Some(v) = max_concurrency {
            input["maxConcurrency"] = json!(v);
        }
        let name = deploy::execution_name(environment, &ts, fastrand::u32(..));
        let out = self
            .sfn
            .start_execution()
            .state_machine_arn(&machine)
            .name(&name)
            .input(input.to_string())
            .send()
            .await
            .context("StartExecution")?;
        Ok(Started {
            arn: out.execution_arn().to_string(),
            plan,
        })
    }

    /// Install an emulator fault (`POST /_stackwave/faults`); returns its id.
    pub async fn fault(&self, body: &Value) -> anyhow::Result<String> {
        let v = self.post("/_stackwave/faults", body).await?;
        v["id"]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("fault answer has no id: {v}"))
    }

    /// Remove one fault.
    pub async fn remove_fault(&self, id: &str) -> anyhow::Result<()> {
        self.http
            .delete(format!("{}/_stackwave/faults/{id}", self.env.endpoint))
            .send()
            .await
            .context("DELETE fault")?;
        Ok(())
    }

    /// Wait for an execution to end (DescribeExecution every 500 ms). On timeout it is stopped.
    pub async fn wait(&self, arn: &str, timeout: Duration) -> anyhow::Result<Ended> {
        let started = Instant::now();
        loop {
            let d = self
                .sfn
                .describe_execution()
                .execution_arn(arn)
                .send()
                .await
                .context("DescribeExecution")?;
            if d.status() != &ExecutionStatus::Running {
                return Ok(Ended {
                    status: d.status().as_str().to_string(),
                    error: d
                        .error()
                        .map(|e| format!("{e}: {}", d.cause().unwrap_or_default())),
                });
            }
            if started.elapsed() > timeout {
                let _ = self
                    .sfn
                    .stop_execution()
                    .execution_arn(arn)
                    .error("BenchTimeout")
                    .send()
                    .await;
                return Ok(Ended {
                    status: "TIMED_OUT_IN_BENCH".to_string(),
                    error: Some(format!("still running after {}s", timeout.as_secs())),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Every history event of an execution.
    /// Every history event of a run: its execution's, then each loop segment's (the child
    /// executions it started, oldest first), so the counts cover the whole run.
    pub async fn history(&self, arn: &str) -> anyhow::Result<Vec<Ev>> {
        let machine = stackwave_cli::local::loop_state_machine_arn();
        let events = stackwave_cli::aws::run_history(&self.sfn, &machine, arn).await?;
        Ok(events.iter().map(Ev::from_sdk).collect())
    }

    /// Each stack's operation window from its stack events: the stack's own CREATE_IN_PROGRESS
    /// and CREATE_COMPLETE (or UPDATE_*) times.
    pub async fn windows(&self, stacks: &[String]) -> anyhow::Result<HashMap<String, Window>> {
        let mut out = HashMap::new();
        for stack in stacks {
            let mut start = f64::INFINITY;
            let mut end = f64::NEG_INFINITY;
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
                for e in page.stack_events() {
                    if e.logical_resource_id() != Some(stack.as_str()) {
                        continue;
                    }
                    let Some(t) = e.timestamp().map(|t| t.as_secs_f64()) else {
                        continue;
                    };
                    match e.resource_status().map(|s| s.as_str()) {
                        Some("CREATE_IN_PROGRESS" | "UPDATE_IN_PROGRESS") => start = start.min(t),
                        Some("CREATE_COMPLETE" | "UPDATE_COMPLETE") => end = end.max(t),
                        _ => {}
                    }
                }
                token = page.next_token().map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
            if start.is_finite() && end.is_finite() {
                out.insert(stack.clone(), Window { start, end });
            }
        }
        Ok(out)
    }

    /// The gateway log's length: invocations logged after it belong to what follows.
    pub fn gateway_log_offset(&self) -> u64 {
        std::fs::metadata(&self.gateway_log)
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// `(function, milliseconds)` of every `invoke ok` line after `offset`.
    pub fn gateway_invocations(&self, offset: u64) -> Vec<(String, f64)> {
        let Ok(bytes) = std::fs::read(&self.gateway_log) else {
            return Vec::new();
        };
        let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
        parse_gateway_log(&String::from_utf8_lossy(&bytes[start..]))
    }
}

/// `... INFO invoke ok function="stackwave-check" duration_ms=12 ...` → ("check", 12.0).
pub fn parse_gateway_log(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| l.contains("invoke ok"))
        .filter_map(|l| {
            let field = |key: &str| -> Option<String> {
                let at = l.find(&format!("{key}="))? + key.len() + 1;
                let rest = &l[at..];
                let value = rest.split_whitespace().next()?;
                Some(value.trim_matches('"').to_string())
            };
            let function = crate::history::function_of(&field("function")?);
            let ms: f64 = field("duration_ms")?.parse().ok()?;
            Some((function, ms))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_lines() {
        let text = "2026-11-27T22:59:08.153775Z  INFO invoke ok function=\"stackwave-plan\" duration_ms=369 invocation_type=\"RequestResponse\"\n\
                    2026-11-27T22:59:08.2Z  WARN invoke failed function=\"stackwave-check\" duration_ms=5\n\
                    2026-11-27T22:59:08.3Z  INFO invoke ok function=\"stackwave-deploy-stack\" duration_ms=24 invocation_type=\"RequestResponse\"\n";
        assert_eq!(
            parse_gateway_log(text),
            vec![
                ("plan".to_string(), 369.0),
                ("deploy-stack".to_string(), 24.0)
            ]
        );
    }
}
