//! The local gateway (`stackwave local serve`): the public local endpoint.
//!
//! `POST /2015-03-31/functions/<url-encoded ARN or name>/invocations` runs the matching Rust
//! handler in-process, with Lambda's answer contract: 200 and the JSON result, or 200 with
//! `X-Amz-Function-Error: Unhandled` and `{"errorType", "errorMessage"}` when the handler
//! fails. Every other request is proxied unchanged to moto on the emulator port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::Router;
use serde_json::{json, Value};
use stackwave_aws::Ctx;

use crate::local::{self, LocalConfig, LocalOptions};

/// Lambda's request payload limit (synchronous invokes).
const MAX_PAYLOAD: usize = 6 * 1024 * 1024;

/// A stackwave function the gateway runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Plan,
    DeployStack,
    Check,
    Notify,
    Finalize,
    Rollback,
    Wake,
}

impl Function {
    pub const ALL: [Function; 7] = [
        Function::Plan,
        Function::DeployStack,
        Function::Check,
        Function::Notify,
        Function::Finalize,
        Function::Rollback,
        Function::Wake,
    ];

    /// The Lambda function name, `stackwave-<fn>`.
    pub fn name(self) -> &'static str {
        match self {
            Function::Plan => "stackwave-plan",
            Function::DeployStack => "stackwave-deploy-stack",
            Function::Check => "stackwave-check",
            Function::Notify => "stackwave-notify",
            Function::Finalize => "stackwave-finalize",
            Function::Rollback => "stackwave-rollback",
            Function::Wake => "stackwave-wake",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Run the handler.
    pub async fn invoke(self, ctx: &Ctx, input: Value) -> Result<Value, stackwave_core::Error> {
        match self {
            Function::Plan => stackwave_plan::handle_json(ctx, input).await,
            Function::DeployStack => stackwave_deploy_stack::handle_json(ctx, input).await,
            Function::Check => stackwave_check::handle_json(ctx, input).await,
            Function::Notify => stackwave_notify::handle_json(ctx, input).await,
            Function::Finalize => stackwave_finalize::handle_json(ctx, input).await,
            Function::Rollback => stackwave_rollback::handle_json(ctx, input).await,
            Function::Wake => stackwave_wake::handle_json(ctx, input).await,
        }
    }
}

/// The function name in an invoke path segment (already percent-decoded): a name
/// (`stackwave-plan`, `stackwave-plan:$LATEST`), a partial ARN (`123456789012:function:stackwave-plan`)
/// or a full ARN, qualified or not.
pub fn function_name(target: &str) -> &str {
    let parts: Vec<&str> = target.split(':').collect();
    match parts.iter().position(|p| *p == "function") {
        Some(i) => parts.get(i + 1).copied().unwrap_or_default(),
        None => parts.first().copied().unwrap_or_default(),
    }
}

/// The url-decoded `{fn}` of `/2015-03-31/functions/{fn}/invocations`.
pub fn invoke_target(path: &str) -> Option<String> {
    let raw = path
        .strip_prefix("/2015-03-31/functions/")?
        .strip_suffix("/invocations")?;
    if raw.is_empty() || raw.contains('/') {
        return None;
    }
    Some(
        urlencoding::decode(raw)
            .map(|s| s.into_owned())
            .unwrap_or_else(|_| raw.to_string()),
    )
}

/// What the gateway serves.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The public endpoint (also the handlers' AWS endpoint).
    pub endpoint: String,
    /// Where to listen.
    pub listen: SocketAddr,
    /// moto, e.g. `http://127.0.0.1:4567`.
    pub emulator_url: String,
    pub bucket: String,
    pub topic_arn: String,
}

impl GatewayConfig {
    /// From the local options (`--endpoint`, `STACKWAVE_LOCAL_ENDPOINT`, `STACKWAVE_EMULATOR_PORT`).
    pub fn from_local(opts: &LocalOptions) -> anyhow::Result<Self> {
        let cfg = LocalConfig::resolve(opts)?;
        Self::from_config(&cfg)
    }

    pub fn from_config(cfg: &LocalConfig) -> anyhow::Result<Self> {
        let ip: std::net::IpAddr = match cfg.host.as_str() {
            "localhost" => std::net::Ipv4Addr::LOCALHOST.into(),
            h => h
                .parse()
                .with_context(|| format!("endpoint host {h} is not an IP address"))?,
        };
        Ok(GatewayConfig {
            endpoint: cfg.endpoint.clone(),
            listen: SocketAddr::new(ip, cfg.port),
            emulator_url: cfg.emulator_url(),
            bucket: local::BUCKET.to_string(),
            topic_arn: local::topic_arn(),
        })
    }
}

struct Gateway {
    executor: Executor,
    http: reqwest::Client,
    emulator_url: String,
}

/// `(errorType, errorMessage)` of a failed invocation.
type Failure = (String, String);

struct Job {
    function: Function,
    input: Value,
    reply: tokio::sync::oneshot::Sender<Result<Value, Failure>>,
}

/// Runs the handlers on a thread of its own (a current-thread runtime with a `LocalSet`):
/// each invocation is a task there, so a panic is caught and reported as `InternalError`
/// without touching the gateway, and handler futures need not be `Send`. The handlers'
/// context (SDK clients included) is built once, on that thread, and used only there.
#[derive(Clone)]
struct Executor {
    jobs: tokio::sync::mpsc::UnboundedSender<Job>,
}

impl Executor {
    async fn start(sdk_endpoint: String, config: stackwave_aws::Config) -> anyhow::Result<Self> {
        let (jobs, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("build the handlers' runtime")?;
        std::thread::Builder::new()
            .name("stackwave-handlers".to_string())
            .spawn(move || {
                let local = tokio::task::LocalSet::new();
                local.block_on(&runtime, async move {
                    let sdk = stackwave_aws::sdk_config(Some(&sdk_endpoint), None).await;
                    let ctx = Arc::new(Ctx::new(&sdk, config));
                    let _ = ready_tx.send(());
                    while let Some(job) = rx.recv().await {
                        let ctx = ctx.clone();
                        tokio::task::spawn_local(async move {
                            let Job {
                                function,
                                input,
                                reply,
                            } = job;
                            let handle = tokio::task::spawn_local(async move {
                                function.invoke(&ctx, input).await
                            });
                            let _ = reply.send(joined(function, handle.await));
                        });
                    }
                });
            })
            .context("start the handlers' thread")?;
        ready_rx
            .await
            .context("the handlers' thread stopped while starting")?;
        Ok(Executor { jobs })
    }

    async fn run(&self, function: Function, input: Value) -> Result<Value, Failure> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        if self
            .jobs
            .send(Job {
                function,
                input,
                reply,
            })
            .is_err()
        {
            return Err((
                "InternalError".to_string(),
                "internal error: the gateway's handler thread is gone".to_string(),
            ));
        }
        rx.await.unwrap_or_else(|_| {
            Err((
                "InternalError".to_string(),
                format!("internal error: {} did not answer", function.name()),
            ))
        })
    }
}

/// A handler task's end as Lambda reports it.
fn joined(
    function: Function,
    r: Result<Result<Value, stackwave_core::Error>, tokio::task::JoinError>,
) -> Result<Value, Failure> {
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err((e.name().to_string(), e.to_string())),
        Err(join) => {
            let message = if join.is_panic() {
                let payload = join.into_panic();
                let text = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic payload".to_string());
                format!("internal error: {} panicked: {text}", function.name())
            } else {
                format!("internal error: {} was cancelled", function.name())
            };
            Err(("InternalError".to_string(), message))
        }
    }
}

/// Listen on `cfg.listen` and serve until SIGINT or SIGTERM.
pub async fn serve(cfg: GatewayConfig) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("listen on {} (is another local AWS running?)", cfg.listen))?;
    tracing::info!(endpoint = %cfg.endpoint, emulator = %cfg.emulator_url, "gateway listening");
    serve_on(listener, cfg, shutdown_signal()).await
}

/// Serve on a bound listener until `shutdown` completes (tests bind port 0).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    cfg: GatewayConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = router(&cfg).await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("gateway server")
}

/// The gateway's router, its handlers' context built once.
pub async fn router(cfg: &GatewayConfig) -> anyhow::Result<Router> {
    let config = stackwave_aws::Config {
        bucket: cfg.bucket.clone(),
        topic_arn: cfg.topic_arn.clone(),
        cfn_role_arn: None,
        endpoint_url: Some(cfg.endpoint.clone()),
        change_set_wait: std::time::Duration::from_secs(
            stackwave_aws::DEFAULT_CHANGE_SET_WAIT_SECONDS,
        ),
    };
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .build()
        .context("build the proxy client")?;
    let state = Arc::new(Gateway {
        executor: Executor::start(cfg.endpoint.clone(), config).await?,
        http,
        emulator_url: cfg.emulator_url.trim_end_matches('/').to_string(),
    });
    Ok(Router::new().fallback(route).with_state(state))
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("gateway stopping");
}

async fn route(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    if req.method() == Method::POST {
        if let Some(target) = invoke_target(req.uri().path()) {
            return invoke(gw, target, req).await;
        }
    }
    proxy(&gw, req).await
}

fn request_id() -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        fastrand::u32(..),
        fastrand::u16(..),
        fastrand::u16(..0x1000),
        fastrand::u16(..0x1000),
        fastrand::u64(..1 << 48)
    )
}

/// A Lambda-style JSON error answer (`x-amzn-ErrorType` header and `{"Type", "Message"}`).
fn lambda_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    let body = json!({"Type": "User", "Message": message, "message": message});
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(error_type) {
        h.insert("x-amzn-errortype", v);
    }
    if let Ok(v) = HeaderValue::from_str(&request_id()) {
        h.insert("x-amzn-requestid", v);
    }
    resp
}

fn invoke_answer(status: StatusCode, body: Vec<u8>, function_error: bool) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        "x-amz-executed-version",
        HeaderValue::from_static("$LATEST"),
    );
    if function_error {
        h.insert(
            "x-amz-function-error",
            HeaderValue::from_static("Unhandled"),
        );
    }
    if let Ok(v) = HeaderValue::from_str(&request_id()) {
        h.insert("x-amzn-requestid", v);
    }
    resp
}

async fn invoke(gw: Arc<Gateway>, target: String, req: Request) -> Response {
    let name = function_name(&target).to_string();
    let Some(function) = Function::from_name(&name) else {
        tracing::warn!(function = %target, "invoke of an unknown function");
        return lambda_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!(
                "Function not found: {}",
                if target.starts_with("arn:") {
                    target.clone()
                } else {
                    local::function_arn(&name)
                }
            ),
        );
    };
    let invocation_type = req
        .headers()
        .get("x-amz-invocation-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("RequestResponse")
        .to_string();
    let body = match axum::body::to_bytes(req.into_body(), MAX_PAYLOAD).await {
        Ok(b) => b,
        Err(_) => {
            return lambda_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestTooLargeException",
                &format!(
                "Request must be smaller than {MAX_PAYLOAD} bytes for the InvokeFunction operation"
            ),
            )
        }
    };
    let input: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return lambda_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestContentException",
                    &format!("Could not parse request body into json: {e}"),
                )
            }
        }
    };
    if invocation_type == "RequestResponse" {
        if let Some(error) = take_lambda_fault(&gw, &name, &input).await {
            return injected(&gw, function, input, &error).await;
        }
    }
    match invocation_type.as_str() {
        "DryRun" => return invoke_answer(StatusCode::NO_CONTENT, Vec::new(), false),
        "Event" => {
            let executor = gw.executor.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let result = executor.run(function, input).await;
                log_invoke(function, started, "Event", result.as_ref().err());
            });
            return invoke_answer(StatusCode::ACCEPTED, Vec::new(), false);
        }
        _ => {}
    }
    let started = Instant::now();
    let result = gw.executor.run(function, input).await;
    log_invoke(function, started, "RequestResponse", result.as_ref().err());
    match result {
        Ok(v) => invoke_answer(
            StatusCode::OK,
            serde_json::to_vec(&v).unwrap_or_else(|_| b"null".to_vec()),
            false,
        ),
        Err((error_type, message)) => invoke_answer(
            StatusCode::OK,
            json!({"errorType": error_type, "errorMessage": message})
                .to_string()
                .into_bytes(),
            true,
        ),
    }
}

/// The error of the next `lambda` fault set for this function and the run's environment
/// (`stackwave local fault lambda`), used up; `None` when there is none or the emulator does
/// not answer.
async fn take_lambda_fault(gw: &Gateway, function: &str, input: &Value) -> Option<String> {
    // Every function's input names the run's environment: `run.environment`, or the execution
    // input's `environment` (plan).
    let environment = ["/run/environment", "/input/environment", "/environment"]
        .iter()
        .find_map(|p| input.pointer(p).and_then(Value::as_str));
    // deploy-stack's input names its stack.
    let stack = input.pointer("/stack").and_then(Value::as_str);
    let resp = gw
        .http
        .post(format!("{}/_stackwave/faults/lambda/take", gw.emulator_url))
        .json(&json!({ "function": function, "environment": environment, "stack": stack }))
        .send()
        .await
        .ok()?;
    let answer: Value = resp.json().await.ok()?;
    answer.get("error")?.as_str().map(str::to_string)
}

/// A Lambda-level failure a `lambda` fault asked for, answered as Lambda answers it.
async fn injected(gw: &Gateway, function: Function, input: Value, error: &str) -> Response {
    tracing::warn!(
        function = function.name(),
        error,
        "lambda fault: this invocation fails"
    );
    let function_error = |error_type: &str, message: String| {
        invoke_answer(
            StatusCode::OK,
            json!({"errorType": error_type, "errorMessage": message})
                .to_string()
                .into_bytes(),
            true,
        )
    };
    match error {
        "Sandbox.Timedout" => {
            // Past its timeout: what the handler did happened; its answer is lost.
            let _ = gw.executor.run(function, input).await;
            function_error(
                error,
                format!(
                    "RequestId: {} Error: Task timed out after 60.00 seconds",
                    request_id()
                ),
            )
        }
        "Lambda.Unknown" => function_error(
            error,
            "RequestId: the function exited without an answer (out of memory)".to_string(),
        ),
        service => {
            let code = service.strip_prefix("Lambda.").unwrap_or(service);
            let status = if code == "TooManyRequestsException" {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            lambda_error(status, code, "fault injected by the local gateway")
        }
    }
}

fn log_invoke(
    function: Function,
    started: Instant,
    invocation_type: &str,
    failure: Option<&Failure>,
) {
    let duration_ms = started.elapsed().as_millis() as u64;
    match failure {
        None => tracing::info!(
            function = function.name(),
            duration_ms,
            invocation_type,
            "invoke ok"
        ),
        Some((error_type, message)) => tracing::warn!(
            function = function.name(),
            duration_ms,
            invocation_type,
            error_type = %error_type,
            error_message = %message,
            "invoke failed"
        ),
    }
}

/// Headers that belong to one connection, not to the message.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "expect"
    )
}

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap, skip_length: bool) {
    for (name, value) in from {
        if hop_by_hop(name) || (skip_length && name == header::CONTENT_LENGTH) {
            continue;
        }
        to.append(name.clone(), value.clone());
    }
}

/// Forward a request to moto and stream its answer back.
async fn proxy(gw: &Gateway, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let url = format!("{}{}", gw.emulator_url, path);
    // The request body is read whole so moto gets an exact Content-Length (it does not take
    // chunked request bodies everywhere); the answer is streamed.
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            return gateway_error(
                StatusCode::BAD_REQUEST,
                &format!("reading the request body: {e}"),
            )
        }
    };
    let mut headers = HeaderMap::new();
    copy_headers(&parts.headers, &mut headers, true);
    let sent = gw
        .http
        .request(parts.method.clone(), &url)
        .headers(headers)
        .body(body)
        .send()
        .await;
    let upstream = match sent {
        Ok(r) => r,
        Err(e) => {
            if path.starts_with(local::HEALTH_PATH) {
                // `local start` polls health while the emulator boots.
                tracing::debug!(path, error = %e, "emulator not answering yet");
            } else {
                tracing::warn!(method = %parts.method, path, error = %e, "emulator unreachable");
            }
            return gateway_error(
                StatusCode::BAD_GATEWAY,
                &format!(
                    "the emulator at {} did not answer: {e}. Fix: `stackwave local start` (see .stackwave/local/emulator.log)",
                    gw.emulator_url
                ),
            );
        }
    };
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = upstream.status();
    copy_headers(upstream.headers(), resp.headers_mut(), false);
    *resp.body_mut() = Body::from_stream(upstream.bytes_stream());
    resp
}

fn gateway_error(status: StatusCode, message: &str) -> Response {
    let mut resp = Response::new(Body::from(json!({"message": message}).to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_arns_and_qualifiers() {
        assert_eq!(function_name("stackwave-plan"), "stackwave-plan");
        assert_eq!(function_name("stackwave-plan:$LATEST"), "stackwave-plan");
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:stackwave-check"),
            "stackwave-check"
        );
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:stackwave-check:$LATEST"),
            "stackwave-check"
        );
        assert_eq!(
            function_name("123456789012:function:stackwave-notify"),
            "stackwave-notify"
        );
        for f in Function::ALL {
            assert_eq!(Function::from_name(f.name()), Some(f));
        }
        assert_eq!(Function::from_name("stackwave-nope"), None);
    }

    #[test]
    fn invoke_paths() {
        assert_eq!(
            invoke_target("/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Astackwave-plan/invocations")
                .as_deref(),
            Some("arn:aws:lambda:us-east-1:123456789012:function:stackwave-plan")
        );
        assert_eq!(
            invoke_target("/2015-03-31/functions/stackwave-plan/invocations").as_deref(),
            Some("stackwave-plan")
        );
        assert_eq!(invoke_target("/2015-03-31/functions/stackwave-plan"), None);
        assert_eq!(
            invoke_target("/2015-03-31/functions/stackwave-plan/configuration"),
            None
        );
        assert_eq!(
            invoke_target("/my-bucket/2015-03-31/functions/x/invocations"),
            None
        );
    }

    #[tokio::test]
    async fn a_panicking_handler_is_an_internal_error() {
        fn boom() -> Result<Value, stackwave_core::Error> {
            panic!("boom")
        }
        let handle = tokio::spawn(async { boom() });
        let (error_type, message) = joined(Function::Check, handle.await).unwrap_err();
        assert_eq!(error_type, "InternalError");
        assert!(
            message.contains("stackwave-check panicked: boom"),
            "{message}"
        );
        let ok = tokio::spawn(async { Ok(json!({"a": 1})) });
        assert_eq!(joined(Function::Check, ok.await).unwrap(), json!({"a": 1}));
        let err = tokio::spawn(async { Err(stackwave_core::Error::Internal("x".into())) });
        assert_eq!(
            joined(Function::Check, err.await).unwrap_err().0,
            "InternalError"
        );
    }
}
