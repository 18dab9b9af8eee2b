//! The local AWS: stackwave's emulator (moto with patches) behind the gateway.
//!
//! `stackwave local start` runs two detached processes and records them in
//! `<repo>/.stackwave/local/` (`.stackwave/local/<port>/` for an endpoint port other than 4566):
//! - the emulator, `<python> -m stackwave_emulator --host 127.0.0.1 --port <emulator port>`
//!   (log `emulator.log`, pid `emulator.pid`);
//! - the gateway, `stackwave local serve` (log `gateway.log`, pid `gateway.pid`), on the public
//!   endpoint.
//!
//! Then it creates what the functions and the CLI expect there: the artifact bucket, the alert
//! topic with the SQS queue `stackwave-alerts` subscribed to it, and the state machine
//! `stackwave-deploy` from `statemachine/deploy.asl.json` with [`substitutions`].
//!
//! Where things are:
//! - `<repo>`: `STACKWAVE_HOME` when set, else the workspace this binary was built from
//!   (fixed at compile time). The emulator is `<repo>/emulator`, the ASL `<repo>/statemachine`.
//! - python: `STACKWAVE_PYTHON` when set, else `<repo>/.venv/bin/python` (made by `make setup`).
//! - endpoint: `--endpoint`, else `STACKWAVE_LOCAL_ENDPOINT`, else `http://127.0.0.1:4566`.
//! - emulator port: `STACKWAVE_EMULATOR_PORT`, else the endpoint's port + 1.
//! - the `stackwave` binary for the gateway: `STACKWAVE_BIN`, else this executable when it is
//!   `stackwave`, else a `stackwave` beside it or in its parent directory (a test binary in
//!   `target/<profile>/deps/` finds `target/<profile>/stackwave`).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::Serialize;

use crate::aws::{error_code, sdk_error, Aws};

pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4566";
/// The default endpoint's port.
pub const DEFAULT_PORT: u16 = 4566;
pub const REGION: &str = stackwave_aws::LOCAL_REGION;
pub const ACCOUNT: &str = stackwave_aws::LOCAL_ACCOUNT;
pub const BUCKET: &str = "stackwave-artifacts-123456789012";
pub const TOPIC_NAME: &str = "stackwave-alerts";
pub const QUEUE_NAME: &str = "stackwave-alerts";
pub const STATE_MACHINE_NAME: &str = "stackwave-deploy";
/// The loop state machine's name locally (template.yaml's `LoopStateMachine`).
pub const LOOP_STATE_MACHINE_NAME: &str = "stackwave-loop";
pub const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/stackwave-local";
/// How long each stack operation takes in the emulator, for the demo.
pub const DEFAULT_STACK_SECONDS: f64 = 3.0;
/// The emulator's health route (proxied by the gateway).
pub const HEALTH_PATH: &str = "/_stackwave/health";
/// How long `start` waits for the health route.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The function names (`stackwave-<fn>`).
pub const FUNCTIONS: &[&str] = &[
    "plan",
    "deploy-stack",
    "check",
    "notify",
    "finalize",
    "rollback",
    "wake",
];

pub fn topic_arn() -> String {
    format!("arn:aws:sns:{REGION}:{ACCOUNT}:{TOPIC_NAME}")
}

pub fn queue_arn() -> String {
    format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{QUEUE_NAME}")
}

pub fn state_machine_arn() -> String {
    state_machine_arn_of(STATE_MACHINE_NAME)
}

/// The loop state machine: one segment of a stage loop or of the rollback.
pub fn loop_state_machine_arn() -> String {
    state_machine_arn_of(LOOP_STATE_MACHINE_NAME)
}

fn state_machine_arn_of(name: &str) -> String {
    format!("arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}")
}

/// `arn:aws:lambda:us-east-1:123456789012:function:stackwave-<function>`.
pub fn function_arn(function: &str) -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:stackwave-{function}")
}

/// The ASL's `${Name}` substitutions for the local state machine (the same names as
/// template.yaml's `DefinitionSubstitutions`).
pub fn substitutions() -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("PlanFunctionArn".to_string(), function_arn("plan"));
    m.insert(
        "DeployStackFunctionArn".to_string(),
        function_arn("deploy-stack"),
    );
    m.insert("CheckFunctionArn".to_string(), function_arn("check"));
    m.insert("NotifyFunctionArn".to_string(), function_arn("notify"));
    m.insert("FinalizeFunctionArn".to_string(), function_arn("finalize"));
    m.insert("RollbackFunctionArn".to_string(), function_arn("rollback"));
    m.insert("WakeFunctionArn".to_string(), function_arn("wake"));
    m.insert("LoopStateMachineArn".to_string(), loop_state_machine_arn());
    m
}

/// Replace every `${Name}` in an ASL definition. A name without a value is an error naming
/// every such name; the result must be JSON.
pub fn render_definition(text: &str, subs: &BTreeMap<String, String>) -> anyhow::Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut missing: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            bail!(
                "unterminated `${{` in the state machine definition near: {}",
                &rest[start..rest.len().min(start + 40)]
            );
        };
        let name = &after[..end];
        match subs.get(name) {
            Some(v) => out.push_str(v),
            None => {
                if !missing.iter().any(|m| m == name) {
                    missing.push(name.to_string());
                }
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    if !missing.is_empty() {
        bail!(
            "the state machine definition uses ${{{}}} but the local setup has no value for {}. \
             Fix: add {} to stackwave_cli::local::substitutions() (and template.yaml's DefinitionSubstitutions)",
            missing.join("}, ${"),
            if missing.len() == 1 { "it" } else { "them" },
            missing.join(", ")
        );
    }
    serde_json::from_str::<serde_json::Value>(&out)
        .context("the state machine definition is not valid JSON after substitution")?;
    Ok(out)
}

/// The repository root: `STACKWAVE_HOME`, else the workspace this binary was built from.
pub fn repo_root() -> PathBuf {
    if let Some(home) = std::env::var_os("STACKWAVE_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(home);
    }
    let built = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    built.canonicalize().unwrap_or(built)
}

/// The local endpoint: the flag, else `STACKWAVE_LOCAL_ENDPOINT`, else the default.
pub fn resolve_endpoint(flag: Option<&str>) -> String {
    let chosen = flag
        .map(str::to_string)
        .filter(|s| !s.is_empty())
        .or_else(|| {
            std::env::var("STACKWAVE_LOCAL_ENDPOINT")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
    chosen.trim_end_matches('/').to_string()
}

/// Host and port of an `http://host:port` endpoint.
pub fn endpoint_host_port(endpoint: &str) -> anyhow::Result<(String, u16)> {
    let url = reqwest::Url::parse(endpoint)
        .with_context(|| format!("endpoint {endpoint} is not a URL"))?;
    if url.scheme() != "http" {
        bail!(
            "endpoint {endpoint}: the local gateway speaks plain http. Fix: use http://host:port"
        );
    }
    let host = url
        .host_str()
        .ok_or_else(|| anyhow!("endpoint {endpoint} has no host"))?
        .to_string();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| anyhow!("endpoint {endpoint} has no port"))?;
    Ok((host, port))
}

/// The emulator's port: `STACKWAVE_EMULATOR_PORT`, else the gateway's port + 1.
pub fn emulator_port(gateway_port: u16) -> anyhow::Result<u16> {
    match std::env::var("STACKWAVE_EMULATOR_PORT")
        .ok()
        .filter(|s| !s.is_empty())
    {
        Some(p) => p
            .parse()
            .with_context(|| format!("STACKWAVE_EMULATOR_PORT={p} is not a port number")),
        None => gateway_port.checked_add(1).ok_or_else(|| {
            anyhow!(
                "no port after {gateway_port} for the emulator. Fix: set STACKWAVE_EMULATOR_PORT"
            )
        }),
    }
}

/// What `start`, `stop` and `status` are given. Everything is optional; see the module docs
/// for the defaults.
#[derive(Debug, Clone, Default)]
pub struct LocalOptions {
    pub endpoint: Option<String>,
    /// Seconds every stack operation takes in the emulator. At start: the emulator's default
    /// (3 when unset). When already running and set: applied through the control API.
    pub stack_seconds: Option<f64>,
    /// The repository root (default [`repo_root`]).
    pub home: Option<PathBuf>,
    /// The python with moto installed (default `STACKWAVE_PYTHON` or `<repo>/.venv/bin/python`).
    pub python: Option<PathBuf>,
    /// The `stackwave` binary to run the gateway with.
    pub stackwave_bin: Option<PathBuf>,
}

/// The resolved local configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalConfig {
    /// The public endpoint (the gateway).
    pub endpoint: String,
    pub host: String,
    pub port: u16,
    /// moto, behind the gateway.
    pub emulator_port: u16,
    pub home: PathBuf,
}

impl LocalConfig {
    pub fn resolve(opts: &LocalOptions) -> anyhow::Result<Self> {
        let endpoint = resolve_endpoint(opts.endpoint.as_deref());
        let (host, port) = endpoint_host_port(&endpoint)?;
        let emulator_port = emulator_port(port)?;
        let home = opts.home.clone().unwrap_or_else(repo_root);
        Ok(LocalConfig {
            endpoint,
            host,
            port,
            emulator_port,
            home,
        })
    }

    /// The emulator's URL (loopback).
    pub fn emulator_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.emulator_port)
    }

    /// Pid files, logs and the start lock: `<repo>/.stackwave/local` for the default endpoint
    /// port (4566), `<repo>/.stackwave/local/<port>` for any other, so a test emulator on
    /// another port and the demo's never touch each other's processes.
    pub fn state_dir(&self) -> PathBuf {
        let base = self.home.join(".stackwave").join("local");
        if self.port == DEFAULT_PORT {
            base
        } else {
            base.join(self.port.to_string())
        }
    }

    /// The command-line arguments that identify our process of this kind, for this endpoint.
    fn identity(&self, process: Process) -> [String; 2] {
        match process {
            Process::Emulator => [
                "stackwave_emulator".to_string(),
                self.emulator_port.to_string(),
            ],
            Process::Gateway => ["serve".to_string(), self.endpoint.clone()],
        }
    }

    pub fn pid_file(&self, process: Process) -> PathBuf {
        self.state_dir().join(format!("{}.pid", process.name()))
    }

    pub fn log_file(&self, process: Process) -> PathBuf {
        self.state_dir().join(format!("{}.log", process.name()))
    }

    pub fn asl_file(&self) -> PathBuf {
        self.home.join("statemachine").join("deploy.asl.json")
    }

    pub fn loop_asl_file(&self) -> PathBuf {
        self.home.join("statemachine").join("loop.asl.json")
    }
}

/// The two local processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Process {
    Emulator,
    Gateway,
}

impl Process {
    pub fn name(self) -> &'static str {
        match self {
            Process::Emulator => "emulator",
            Process::Gateway => "gateway",
        }
    }
}

/// The local AWS as the tests and the CLI use it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalEnv {
    pub endpoint: String,
    pub region: String,
    pub account: String,
    pub bucket: String,
    pub topic_arn: String,
    pub queue_url: String,
    pub queue_arn: String,
    pub state_machine_arn: String,
}

/// Start the local AWS unless it is already healthy, then (re)apply its setup. Safe to call
/// from several processes at once: they take turns on an exclusive lock on
/// `.stackwave/local/start.lock`.
pub async fn ensure_started(opts: &LocalOptions) -> anyhow::Result<LocalEnv> {
    let cfg = LocalConfig::resolve(opts)?;
    std::fs::create_dir_all(cfg.state_dir())
        .with_context(|| format!("create {}", cfg.state_dir().display()))?;
    let lock_path = cfg.state_dir().join("start.lock");
    let _lock = tokio::task::spawn_blocking(move || lock_exclusive(&lock_path))
        .await
        .context("waiting for the start lock")??;
    start_locked(&cfg, opts).await
}

/// `stackwave local start`: the same as [`ensure_started`].
pub async fn start(opts: &LocalOptions) -> anyhow::Result<LocalEnv> {
    ensure_started(opts).await
}

fn lock_exclusive(path: &Path) -> anyhow::Result<nix::fcntl::Flock<File>> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("open lock file {}", path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| anyhow!("lock {}: {errno}", path.display()))
}

async fn start_locked(cfg: &LocalConfig, opts: &LocalOptions) -> anyhow::Result<LocalEnv> {
    let emulator_up = health(&cfg.emulator_url()).await;
    let gateway_up = emulator_up && health(&cfg.endpoint).await;
    let mut children: Vec<(Process, Child)> = Vec::new();

    if !emulator_up {
        // A recorded gateway in front of a dead emulator is restarted with it.
        stop_process(cfg, Process::Gateway)?;
        stop_process(cfg, Process::Emulator)?;
        children.push((Process::Emulator, spawn_emulator(cfg, opts)?));
    } else if let Some(seconds) = opts.stack_seconds {
        set_stack_seconds(&cfg.emulator_url(), seconds).await?;
    }
    if !gateway_up {
        stop_process(cfg, Process::Gateway)?;
        children.push((Process::Gateway, spawn_gateway(cfg, opts)?));
    }
    if !children.is_empty() {
        if let Err(e) = wait_healthy(cfg, &mut children).await {
            // Leave nothing half-started behind.
            for (process, _) in &children {
                let _ = stop_process(cfg, *process);
            }
            return Err(e);
        }
    }
    setup(cfg).await
}

const LOG_MARKER: &str = "---- started by stackwave";

fn open_log(path: &Path) -> anyhow::Result<File> {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("open log {}", path.display()))?;
    writeln!(
        f,
        "---- started by stackwave at {} ----",
        chrono::Utc::now().to_rfc3339()
    )?;
    Ok(f)
}

fn python_path(cfg: &LocalConfig, opts: &LocalOptions) -> PathBuf {
    opts.python
        .clone()
        .or_else(|| {
            std::env::var_os("STACKWAVE_PYTHON")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| cfg.home.join(".venv").join("bin").join("python"))
}

fn spawn_emulator(cfg: &LocalConfig, opts: &LocalOptions) -> anyhow::Result<Child> {
    let python = python_path(cfg, opts);
    if !python.exists() {
        bail!(
            "no python at {}: the project venv is missing. Fix: run `make setup` in {} (or set STACKWAVE_PYTHON)",
            python.display(),
            cfg.home.display()
        );
    }
    let emulator_dir = cfg.home.join("emulator");
    if !emulator_dir.join("stackwave_emulator").is_dir() {
        bail!(
            "the emulator package is missing at {}. Fix: set STACKWAVE_HOME to the stackwave repository",
            emulator_dir.join("stackwave_emulator").display()
        );
    }
    let log = open_log(&cfg.log_file(Process::Emulator))?;
    let seconds = opts.stack_seconds.unwrap_or(DEFAULT_STACK_SECONDS);
    let mut cmd = Command::new(&python);
    cmd.args(["-m", "stackwave_emulator", "--host", "127.0.0.1", "--port"])
        .arg(cfg.emulator_port.to_string())
        .current_dir(&cfg.home)
        .env("PYTHONPATH", &emulator_dir)
        .env("PYTHONUNBUFFERED", "1")
        .env("MOTO_PORT", cfg.port.to_string())
        .env("STACKWAVE_EMULATOR_STACK_SECONDS", seconds.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    let child = cmd
        .spawn()
        .with_context(|| format!("start the emulator with {}", python.display()))?;
    write_pid(cfg, Process::Emulator, child.id())?;
    tracing::info!(
        pid = child.id(),
        port = cfg.emulator_port,
        "emulator started"
    );
    Ok(child)
}

/// The `stackwave` binary that runs the gateway.
pub fn stackwave_bin(opts: &LocalOptions) -> anyhow::Result<PathBuf> {
    if let Some(p) = &opts.stackwave_bin {
        return Ok(p.clone());
    }
    if let Some(p) = std::env::var_os("STACKWAVE_BIN").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("find the current executable")?;
    if exe.file_stem().is_some_and(|s| s == "stackwave") {
        return Ok(exe);
    }
    let candidates: Vec<PathBuf> = [exe.parent(), exe.parent().and_then(Path::parent)]
        .into_iter()
        .flatten()
        .map(|d| d.join("stackwave"))
        .collect();
    candidates.iter().find(|c| c.is_file()).cloned().ok_or_else(|| {
        anyhow!(
            "cannot find the `stackwave` binary to run the gateway (looked at {}). Fix: `cargo build -p stackwave-cli` or set STACKWAVE_BIN",
            candidates.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    })
}

fn spawn_gateway(cfg: &LocalConfig, opts: &LocalOptions) -> anyhow::Result<Child> {
    let bin = stackwave_bin(opts)?;
    let log = open_log(&cfg.log_file(Process::Gateway))?;
    let mut cmd = Command::new(&bin);
    cmd.args([
        "local",
        "serve",
        "--endpoint",
        &cfg.endpoint,
        "--emulator-port",
    ])
    .arg(cfg.emulator_port.to_string())
    .current_dir(&cfg.home)
    .env("STACKWAVE_HOME", &cfg.home)
    .stdin(Stdio::null())
    .stdout(log.try_clone()?)
    .stderr(log)
    .process_group(0);
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "info");
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("start the gateway with {}", bin.display()))?;
    write_pid(cfg, Process::Gateway, child.id())?;
    tracing::info!(pid = child.id(), endpoint = %cfg.endpoint, "gateway started");
    Ok(child)
}

fn write_pid(cfg: &LocalConfig, process: Process, pid: u32) -> anyhow::Result<()> {
    let path = cfg.pid_file(process);
    std::fs::write(&path, format!("{pid}\n")).with_context(|| format!("write {}", path.display()))
}

fn read_pid(cfg: &LocalConfig, process: Process) -> Option<i32> {
    std::fs::read_to_string(cfg.pid_file(process))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The last lines of a log, for error messages.
fn log_tail(path: &Path, max_bytes: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max_bytes)));
    let mut s = String::new();
    let _ = f.read_to_string(&mut s);
    // Only this start's part of the log.
    match s.rfind(LOG_MARKER) {
        Some(i) => s[i..].to_string(),
        None => s,
    }
}

async fn wait_healthy(cfg: &LocalConfig, children: &mut [(Process, Child)]) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if health(&cfg.endpoint).await {
            return Ok(());
        }
        for (process, child) in children.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                let log = cfg.log_file(*process);
                bail!(
                    "the {} exited ({status}) while starting. See {}:\n{}",
                    process.name(),
                    log.display(),
                    log_tail(&log, 2000)
                );
            }
        }
        if started.elapsed() > START_TIMEOUT {
            bail!(
                "the local AWS did not answer {}{HEALTH_PATH} within {}s. See the logs: {} and {}",
                cfg.endpoint,
                START_TIMEOUT.as_secs(),
                cfg.log_file(Process::Emulator).display(),
                cfg.log_file(Process::Gateway).display()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn health(base: &str) -> bool {
    let Ok(client) = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()
    else {
        return false;
    };
    matches!(client.get(format!("{base}{HEALTH_PATH}")).send().await, Ok(r) if r.status().is_success())
}

/// Does the local AWS answer at `endpoint` (through the gateway)?
pub async fn is_healthy(endpoint: &str) -> bool {
    health(endpoint).await
}

async fn set_stack_seconds(emulator_url: &str, seconds: f64) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()?;
    let resp = client
        .post(format!("{emulator_url}/_stackwave/config"))
        .json(&serde_json::json!({ "defaultStackSeconds": seconds }))
        .send()
        .await
        .context("set the emulator's stack duration")?;
    if !resp.status().is_success() {
        bail!("the emulator refused /_stackwave/config: {}", resp.status());
    }
    Ok(())
}

/// Create or update what the local AWS needs: bucket, topic, alert queue subscribed to the
/// topic, the state machine, and moto's state machine executor switched on.
pub async fn setup(cfg: &LocalConfig) -> anyhow::Result<LocalEnv> {
    let aws = Aws::local(&cfg.endpoint).await;

    // The state machine executor runs the real ASL and invokes the Lambdas through the gateway.
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()?;
    let resp = http
        .post(format!("{}/moto-api/config", cfg.endpoint))
        .json(&serde_json::json!({"stepfunctions": {"execute_state_machine": true}}))
        .send()
        .await
        .context("enable the state machine executor (POST /moto-api/config)")?;
    if !resp.status().is_success() {
        bail!("POST /moto-api/config answered {}", resp.status());
    }

    match aws.s3.create_bucket().bucket(BUCKET).send().await {
        Ok(_) => {}
        Err(e)
            if matches!(
                error_code(&e).as_deref(),
                Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")
            ) => {}
        Err(e) => return Err(sdk_error("s3:CreateBucket", e)),
    }
    // Versioned, as template.yaml's artifact bucket: an upload's event carries its version id,
    // and the plan reads exactly that version.
    aws.s3
        .put_bucket_versioning()
        .bucket(BUCKET)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .map_err(|e| sdk_error("s3:PutBucketVersioning", e))?;

    let topic_arn = aws
        .sns
        .create_topic()
        .name(TOPIC_NAME)
        .send()
        .await
        .map_err(|e| sdk_error("sns:CreateTopic", e))?
        .topic_arn
        .unwrap_or_else(topic_arn);

    let queue_url = aws
        .sqs
        .create_queue()
        .queue_name(QUEUE_NAME)
        .send()
        .await
        .map_err(|e| sdk_error("sqs:CreateQueue", e))?
        .queue_url
        .ok_or_else(|| anyhow!("sqs:CreateQueue returned no queue URL"))?;
    let queue_arn = aws
        .sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| sdk_error("sqs:GetQueueAttributes", e))?
        .attributes
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .unwrap_or_else(queue_arn);
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "stackwave-alerts-from-sns",
            "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}}
        }]
    });
    aws.sqs
        .set_queue_attributes()
        .queue_url(&queue_url)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::Policy,
            policy.to_string(),
        )
        .send()
        .await
        .map_err(|e| sdk_error("sqs:SetQueueAttributes", e))?;

    let subscribed = list_subscription_endpoints(&aws, &topic_arn).await?;
    if !subscribed.iter().any(|e| e == &queue_arn) {
        aws.sns
            .subscribe()
            .topic_arn(&topic_arn)
            .protocol("sqs")
            .endpoint(&queue_arn)
            .attributes("RawMessageDelivery", "false")
            .return_subscription_arn(true)
            .send()
            .await
            .map_err(|e| sdk_error("sns:Subscribe", e))?;
    }

    // The loop first: the deploy state machine starts its executions.
    put_state_machine(&aws, LOOP_STATE_MACHINE_NAME, &cfg.loop_asl_file()).await?;
    let state_machine_arn = put_state_machine(&aws, STATE_MACHINE_NAME, &cfg.asl_file()).await?;
    put_wake_rule(&http, cfg).await?;

    Ok(LocalEnv {
        endpoint: cfg.endpoint.clone(),
        region: REGION.to_string(),
        account: ACCOUNT.to_string(),
        bucket: BUCKET.to_string(),
        topic_arn,
        queue_url,
        queue_arn,
        state_machine_arn,
    })
}

/// The name of template.yaml's `StackStatusRule` locally.
pub const WAKE_RULE: &str = "stackwave-stack-status";

/// template.yaml's `StackStatusRule` (its `EventPattern`, read from the template) with the
/// local wake function as target: CloudFormation's stack status changes wake parked runs.
async fn put_wake_rule(http: &reqwest::Client, cfg: &LocalConfig) -> anyhow::Result<()> {
    let path = cfg.home.join("template.yaml");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("read {} for the StackStatusRule", path.display()))?;
    let template: serde_yaml::Value =
        serde_yaml::from_str(&text).with_context(|| format!("{} is not YAML", path.display()))?;
    let pattern = template
        .get("Resources")
        .and_then(|r| r.get("StackStatusRule"))
        .and_then(|r| r.get("Properties"))
        .and_then(|p| p.get("EventPattern"))
        .ok_or_else(|| {
            anyhow!(
                "{} has no StackStatusRule.Properties.EventPattern",
                path.display()
            )
        })?;
    let pattern = serde_json::to_value(pattern).context("StackStatusRule's EventPattern")?;
    events_call(
        http,
        cfg,
        "PutRule",
        &serde_json::json!({"Name": WAKE_RULE, "EventPattern": pattern.to_string(), "State": "ENABLED"}),
    )
    .await?;
    let answer = events_call(
        http,
        cfg,
        "PutTargets",
        &serde_json::json!({"Rule": WAKE_RULE, "Targets": [{"Id": "wake", "Arn": function_arn("wake")}]}),
    )
    .await?;
    if answer["FailedEntryCount"].as_u64().unwrap_or(0) != 0 {
        bail!("events:PutTargets for {WAKE_RULE} failed: {answer}");
    }
    Ok(())
}

/// One EventBridge API call (the workspace has no EventBridge SDK client). The emulator reads
/// the service and region from the credential scope; it does not check signatures.
async fn events_call(
    http: &reqwest::Client,
    cfg: &LocalConfig,
    action: &str,
    body: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let day = chrono::Utc::now().format("%Y%m%d");
    let response = http
        .post(&cfg.endpoint)
        .header("Content-Type", "application/x-amz-json-1.1")
        .header("X-Amz-Target", format!("AWSEvents.{action}"))
        .header(
            "Authorization",
            format!("AWS4-HMAC-SHA256 Credential=testing/{day}/{REGION}/events/aws4_request, SignedHeaders=host, Signature=0"),
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

async fn list_subscription_endpoints(aws: &Aws, topic_arn: &str) -> anyhow::Result<Vec<String>> {
    let mut endpoints = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = aws
            .sns
            .list_subscriptions_by_topic()
            .topic_arn(topic_arn)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| sdk_error("sns:ListSubscriptionsByTopic", e))?;
        endpoints.extend(
            page.subscriptions
                .unwrap_or_default()
                .into_iter()
                .filter_map(|s| s.endpoint),
        );
        match page.next_token {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => return Ok(endpoints),
        }
    }
}

/// Create or update the state machine `name` from the ASL at `asl_path`, substituted.
async fn put_state_machine(aws: &Aws, name: &str, asl_path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(asl_path).with_context(|| {
        format!(
            "read the state machine definition {} (is STACKWAVE_HOME the repository?)",
            asl_path.display()
        )
    })?;
    let definition = render_definition(&text, &substitutions())
        .with_context(|| format!("in {}", asl_path.display()))?;
    let definition = definition.as_str();
    let arn = state_machine_arn_of(name);
    match aws
        .sfn
        .describe_state_machine()
        .state_machine_arn(&arn)
        .send()
        .await
    {
        Ok(_) => {
            aws.sfn
                .update_state_machine()
                .state_machine_arn(&arn)
                .definition(definition)
                .role_arn(ROLE_ARN)
                .send()
                .await
                .map_err(|e| sdk_error("states:UpdateStateMachine", e))?;
            Ok(arn)
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_state_machine_does_not_exist()) =>
        {
            Ok(aws
                .sfn
                .create_state_machine()
                .name(name)
                .definition(definition)
                .role_arn(ROLE_ARN)
                .send()
                .await
                .map_err(|e| sdk_error("states:CreateStateMachine", e))?
                .state_machine_arn)
        }
        Err(e) => Err(sdk_error("states:DescribeStateMachine", e)),
    }
}

/// Is the process alive (a zombie counts as gone)?
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => nix::sys::signal::kill(Pid::from_raw(pid), None).is_ok(),
    }
}

/// Is `pid` the process we recorded (its command line has the process's identifying
/// arguments)? So a recycled pid, or another endpoint's process, is never signalled. Where
/// /proc is not readable, trust the pid file.
fn is_ours(pid: i32, identity: &[String]) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(raw) => {
            let args: Vec<String> = raw
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            identity.iter().all(|id| args.iter().any(|a| a == id))
        }
        Err(_) => true,
    }
}

/// What `stop` did to one process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stopped {
    pub process: Process,
    pub pid: Option<i32>,
    /// `stopped`, `killed`, `not running`.
    pub outcome: String,
}

/// Stop one recorded process: SIGTERM to its process group, SIGKILL after 5 s.
fn stop_process(cfg: &LocalConfig, process: Process) -> anyhow::Result<Stopped> {
    let pid_file = cfg.pid_file(process);
    let pid = read_pid(cfg, process);
    let outcome = match pid {
        Some(pid) if pid > 1 && alive(pid) && is_ours(pid, &cfg.identity(process)) => {
            let group = Pid::from_raw(pid);
            let _ = killpg(group, Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            if alive(pid) {
                let _ = killpg(group, Signal::SIGKILL);
                let deadline = Instant::now() + Duration::from_secs(2);
                while alive(pid) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
                "killed"
            } else {
                "stopped"
            }
        }
        _ => "not running",
    };
    if pid_file.exists() {
        std::fs::remove_file(&pid_file)
            .with_context(|| format!("remove {}", pid_file.display()))?;
    }
    Ok(Stopped {
        process,
        pid,
        outcome: outcome.to_string(),
    })
}

/// `stackwave local stop`: stop the gateway and the emulator started from this repository.
pub async fn stop(opts: &LocalOptions) -> anyhow::Result<Vec<Stopped>> {
    let cfg = LocalConfig::resolve(opts)?;
    tokio::task::spawn_blocking(move || {
        Ok(vec![
            stop_process(&cfg, Process::Gateway)?,
            stop_process(&cfg, Process::Emulator)?,
        ])
    })
    .await
    .context("stopping the local processes")?
}

/// One process in `local status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessStatus {
    pub process: Process,
    pub pid: Option<i32>,
    pub running: bool,
    pub url: String,
    pub log: PathBuf,
}

/// `stackwave local status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalStatus {
    pub home: PathBuf,
    pub endpoint: String,
    pub healthy: bool,
    pub processes: Vec<ProcessStatus>,
    /// Present when healthy and set up.
    pub state_machine_arn: Option<String>,
    pub queue_url: Option<String>,
}

pub async fn status(opts: &LocalOptions) -> anyhow::Result<LocalStatus> {
    let cfg = LocalConfig::resolve(opts)?;
    let processes = [
        (Process::Gateway, cfg.endpoint.clone()),
        (Process::Emulator, cfg.emulator_url()),
    ]
    .into_iter()
    .map(|(process, url)| {
        let pid = read_pid(&cfg, process);
        ProcessStatus {
            process,
            pid,
            running: pid.is_some_and(|p| alive(p) && is_ours(p, &cfg.identity(process))),
            url,
            log: cfg.log_file(process),
        }
    })
    .collect();
    let healthy = health(&cfg.endpoint).await;
    let (mut state_machine_arn, mut queue_url) = (None, None);
    if healthy {
        let aws = Aws::local(&cfg.endpoint).await;
        let arn = self::state_machine_arn();
        if aws
            .sfn
            .describe_state_machine()
            .state_machine_arn(&arn)
            .send()
            .await
            .is_ok()
        {
            state_machine_arn = Some(arn);
        }
        queue_url = aws
            .sqs
            .get_queue_url()
            .queue_name(QUEUE_NAME)
            .send()
            .await
            .ok()
            .and_then(|o| o.queue_url);
    }
    Ok(LocalStatus {
        home: cfg.home,
        endpoint: cfg.endpoint,
        healthy,
        processes,
        state_machine_arn,
        queue_url,
    })
}

/// Human text for `local status`.
pub fn render_status(s: &LocalStatus) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "local AWS at {}: {}\n",
        s.endpoint,
        if s.healthy {
            "healthy"
        } else {
            "not answering"
        }
    ));
    for p in &s.processes {
        let state = match (p.pid, p.running) {
            (Some(pid), true) => format!("running (pid {pid})"),
            (Some(pid), false) => format!("not running (stale pid {pid})"),
            (None, _) => "not started from here".to_string(),
        };
        out.push_str(&format!(
            "  {:<9} {:<30} {}  log {}\n",
            p.process.name(),
            state,
            p.url,
            p.log.display()
        ));
    }
    if let Some(arn) = &s.state_machine_arn {
        out.push_str(&format!("  state machine {arn}\n"));
    }
    if let Some(url) = &s.queue_url {
        out.push_str(&format!("  alert queue   {url}\n"));
    }
    out.push_str(&format!("  repository    {}\n", s.home.display()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_every_name_and_checks_json() {
        let text = r#"{"Resource": "${PlanFunctionArn}", "Next": "${CheckFunctionArn}"}"#;
        let out = render_definition(text, &substitutions()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v["Resource"],
            "arn:aws:lambda:us-east-1:123456789012:function:stackwave-plan"
        );
        assert_eq!(
            v["Next"],
            "arn:aws:lambda:us-east-1:123456789012:function:stackwave-check"
        );
    }

    #[test]
    fn unreplaced_names_are_an_error_naming_them() {
        let text = r#"{"A": "${Nope}", "B": "${AlsoMissing}", "C": "${Nope}", "D": "${CheckFunctionArn}"}"#;
        let err = render_definition(text, &substitutions())
            .unwrap_err()
            .to_string();
        assert!(err.contains("${Nope}"), "{err}");
        assert!(err.contains("AlsoMissing"), "{err}");
        assert!(!err.contains("CheckFunctionArn"), "{err}");
    }

    #[test]
    fn every_function_has_an_arn_substitution() {
        let subs = substitutions();
        for f in FUNCTIONS {
            assert!(subs.values().any(|v| v == &function_arn(f)), "{f}");
        }
    }

    #[test]
    fn endpoint_parts() {
        assert_eq!(
            endpoint_host_port("http://127.0.0.1:4566").unwrap(),
            ("127.0.0.1".to_string(), 4566)
        );
        assert!(endpoint_host_port("https://127.0.0.1:4566").is_err());
        assert!(endpoint_host_port("nonsense").is_err());
    }

    #[test]
    fn lock_is_exclusive_between_holders() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("start.lock");
        let first = lock_exclusive(&path).unwrap();
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        let second = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock);
        assert!(second.is_err(), "a second holder got the lock");
        drop(first);
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        assert!(nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).is_ok());
    }

    #[test]
    fn stop_without_pid_files_reports_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LocalConfig::resolve(&LocalOptions {
            endpoint: Some("http://127.0.0.1:45999".into()),
            home: Some(dir.path().to_path_buf()),
            ..Default::default()
        })
        .unwrap();
        let s = stop_process(&cfg, Process::Emulator).unwrap();
        assert_eq!(s.outcome, "not running");
    }

    #[test]
    fn a_recorded_pid_of_another_program_is_not_signalled() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LocalConfig::resolve(&LocalOptions {
            endpoint: Some("http://127.0.0.1:45999".into()),
            home: Some(dir.path().to_path_buf()),
            ..Default::default()
        })
        .unwrap();
        std::fs::create_dir_all(cfg.state_dir()).unwrap();
        let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
        write_pid(&cfg, Process::Emulator, sleeper.id()).unwrap();
        let s = stop_process(&cfg, Process::Emulator).unwrap();
        assert_eq!(s.outcome, "not running");
        assert!(sleeper.try_wait().unwrap().is_none(), "sleep was signalled");
        assert!(!cfg.pid_file(Process::Emulator).exists());
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
    }

    #[test]
    fn our_recorded_process_group_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LocalConfig::resolve(&LocalOptions {
            endpoint: Some("http://127.0.0.1:45999".into()),
            home: Some(dir.path().to_path_buf()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(cfg.state_dir(), dir.path().join(".stackwave/local/45999"));
        std::fs::create_dir_all(cfg.state_dir()).unwrap();
        // `sh -c CMD NAME ARG`: the command line carries the emulator's identity.
        let mut fake = Command::new("sh")
            .args([
                "-c",
                "sleep 30",
                "stackwave_emulator",
                &cfg.emulator_port.to_string(),
            ])
            .process_group(0)
            .spawn()
            .unwrap();
        // Until the child has exec'd, its command line is still this test binary's: wait for it.
        let cmdline = format!("/proc/{}/cmdline", fake.id());
        for _ in 0..500 {
            if std::fs::read(&cmdline)
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("stackwave_emulator"))
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        write_pid(&cfg, Process::Emulator, fake.id()).unwrap();
        let s = stop_process(&cfg, Process::Emulator).unwrap();
        assert_eq!(s.outcome, "stopped");
        assert!(fake.try_wait().unwrap().is_some(), "still running");
        assert!(!cfg.pid_file(Process::Emulator).exists());
    }
}
