//! `stackwave local fault …`: script faults in the local emulator through its control API
//! (`POST`, `GET` and `DELETE /_stackwave/faults` on the local endpoint; the gateway passes them
//! to the emulator). The emulator drives each fault through CloudFormation's real status
//! sequence (see the emulator's `faults.py`):
//!
//! - `fail --stack S --on create|update|delete|rollback [--resource ID] [--reason TEXT]`: the
//!   next such operation on S fails on the resource (CREATE_FAILED → ROLLBACK_COMPLETE,
//!   UPDATE_FAILED → UPDATE_ROLLBACK_COMPLETE, DELETE_FAILED), or its rollback fails
//!   (ROLLBACK_FAILED / UPDATE_ROLLBACK_FAILED). Applies once.
//! - `hang --stack S --on create|update|delete --seconds N`: the next such operation stays
//!   `*_IN_PROGRESS` for N seconds (CancelUpdateStack ends an update hang). Applies once.
//! - `throttle --api ACTION --rate R`: a share R of the calls to the CloudFormation action answer
//!   `Throttling: Rate exceeded`, until cleared.
//! - `events [--drop-rate R] [--duplicate-rate R] [--delay-seconds S] [--stack S ...]`:
//!   CloudFormation's stack status change events on the default EventBridge bus are lost,
//!   delivered twice, or late (each copy after a random 0..S seconds, so out of order), until
//!   cleared; with `--stack`, only those stacks' events.
//! - `lambda --function F --error E [--times N] [--environment E] [--stack S]`: the next N (default 1) synchronous invocations
//!   of function F through the gateway fail at Lambda level with E, as Lambda reports it
//!   ([`LAMBDA_ERRORS`]): `Sandbox.Timedout` runs the handler and loses its answer (a function
//!   past its timeout), `Lambda.Unknown` answers nothing (out of memory), a `Lambda.*Exception`
//!   fails the Invoke call itself.
//! - `list`, `clear`.
//!
//! The functions here are what the command runs, and what end-to-end tests call.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The Lambda-level errors a `lambda` fault can produce (the emulator accepts the same).
pub const LAMBDA_ERRORS: &[&str] = &[
    "Sandbox.Timedout",
    "Lambda.Unknown",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.ClientExecutionTimeoutException",
];

/// The control API's path on the local endpoint.
pub const FAULTS_PATH: &str = "/_stackwave/faults";

/// Which operation a `fail` fault breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    Create,
    Update,
    Delete,
    /// The rollback of the next failed (or, with no other fault, forced to fail) create or update.
    Rollback,
}

impl FailOn {
    pub fn as_str(self) -> &'static str {
        match self {
            FailOn::Create => "create",
            FailOn::Update => "update",
            FailOn::Delete => "delete",
            FailOn::Rollback => "rollback",
        }
    }
}

/// Which operation a `hang` fault holds in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HangOn {
    Create,
    Update,
    Delete,
}

impl HangOn {
    pub fn as_str(self) -> &'static str {
        match self {
            HangOn::Create => "create",
            HangOn::Update => "update",
            HangOn::Delete => "delete",
        }
    }
}

/// A fault to set.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultRequest {
    Fail {
        stack: String,
        on: FailOn,
        resource: Option<String>,
        reason: Option<String>,
    },
    Hang {
        stack: String,
        on: HangOn,
        seconds: f64,
    },
    Throttle {
        api: String,
        rate: f64,
    },
    Events {
        drop_rate: f64,
        duplicate_rate: f64,
        delay_seconds: f64,
        stacks: Vec<String>,
    },
    Lambda {
        function: String,
        error: String,
        times: u32,
        /// Only the invocations of this environment's runs.
        environment: Option<String>,
        /// Only the invocations about this stack (deploy-stack's).
        stack: Option<String>,
    },
}

impl FaultRequest {
    /// Check the values before asking the emulator; the error names the flag and the fix.
    pub fn validate(&self) -> anyhow::Result<()> {
        let named = |flag: &str, value: &str| -> anyhow::Result<()> {
            if value.trim().is_empty() {
                bail!("{flag} is empty. Fix: give a non-empty {flag}");
            }
            Ok(())
        };
        match self {
            FaultRequest::Fail {
                stack,
                resource,
                reason,
                ..
            } => {
                named("--stack", stack)?;
                if let Some(r) = resource {
                    named("--resource", r)?;
                }
                if let Some(r) = reason {
                    named("--reason", r)?;
                }
            }
            FaultRequest::Hang { stack, seconds, .. } => {
                named("--stack", stack)?;
                if !seconds.is_finite() || *seconds < 0.0 {
                    bail!(
                        "--seconds {seconds} is not a duration. Fix: give a number of seconds >= 0"
                    );
                }
            }
            FaultRequest::Events {
                drop_rate,
                duplicate_rate,
                delay_seconds,
                stacks,
            } => {
                for (flag, rate) in [
                    ("--drop-rate", drop_rate),
                    ("--duplicate-rate", duplicate_rate),
                ] {
                    if !(rate.is_finite() && (0.0..=1.0).contains(rate)) {
                        bail!("{flag} {rate} is not a share of events. Fix: give a number from 0 to 1 (0.3 = 30%)");
                    }
                }
                if !delay_seconds.is_finite() || *delay_seconds < 0.0 {
                    bail!("--delay-seconds {delay_seconds} is not a duration. Fix: give a number of seconds >= 0");
                }
                if *drop_rate == 0.0 && *duplicate_rate == 0.0 && *delay_seconds == 0.0 {
                    bail!("an events fault with no --drop-rate, --duplicate-rate or --delay-seconds changes nothing. Fix: give at least one");
                }
                for s in stacks {
                    named("--stack", s)?;
                }
            }
            FaultRequest::Lambda {
                function,
                error,
                times,
                environment,
                stack,
            } => {
                named("--function", function)?;
                if let Some(e) = environment {
                    named("--environment", e)?;
                }
                if let Some(s) = stack {
                    named("--stack", s)?;
                }
                if !LAMBDA_ERRORS.contains(&error.as_str()) {
                    bail!(
                        "--error {error} is not a Lambda-level error the gateway produces. Fix: give one of {}",
                        LAMBDA_ERRORS.join(", ")
                    );
                }
                if *times == 0 {
                    bail!("--times 0 fails nothing. Fix: give a number of invocations >= 1");
                }
            }
            FaultRequest::Throttle { api, rate } => {
                named("--api", api)?;
                if !(rate.is_finite() && *rate > 0.0 && *rate <= 1.0) {
                    bail!(
                        "--rate {rate} is not a share of calls. Fix: give a number above 0 and at most 1 (0.3 = 30%)"
                    );
                }
            }
        }
        Ok(())
    }

    /// The control API's JSON body.
    pub fn body(&self) -> Value {
        match self {
            FaultRequest::Fail {
                stack,
                on,
                resource,
                reason,
            } => {
                let mut body = json!({"kind": "fail", "stack": stack, "on": on.as_str()});
                if let Some(r) = resource {
                    body["resource"] = json!(r);
                }
                if let Some(r) = reason {
                    body["reason"] = json!(r);
                }
                body
            }
            FaultRequest::Hang { stack, on, seconds } => {
                json!({"kind": "hang", "stack": stack, "on": on.as_str(), "seconds": seconds})
            }
            FaultRequest::Throttle { api, rate } => {
                json!({"kind": "throttle", "api": api, "rate": rate})
            }
            FaultRequest::Lambda {
                function,
                error,
                times,
                environment,
                stack,
            } => {
                let mut body =
                    json!({"kind": "lambda", "function": function, "error": error, "times": times});
                if let Some(e) = environment {
                    body["environment"] = json!(e);
                }
                if let Some(s) = stack {
                    body["stack"] = json!(s);
                }
                body
            }
            FaultRequest::Events {
                drop_rate,
                duplicate_rate,
                delay_seconds,
                stacks,
            } => {
                let mut body = json!({"kind": "events", "dropRate": drop_rate,
                    "duplicateRate": duplicate_rate, "delaySeconds": delay_seconds});
                if !stacks.is_empty() {
                    body["stacks"] = json!(stacks);
                }
                body
            }
        }
    }
}

/// A fault as the emulator reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    pub id: String,
    /// `fail`, `hang` or `throttle`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stacks: Option<Vec<String>>,
    /// The function and error of a `lambda` fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Events lost, duplicated and delayed so far (an `events` fault).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicated: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delayed: Option<u64>,
    /// How many more times it applies; `None`: until cleared.
    #[serde(default)]
    pub times_remaining: Option<u64>,
    /// How many times it applied so far.
    #[serde(default)]
    pub applied: u64,
}

fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .context("build the HTTP client")
}

fn url(endpoint: &str) -> String {
    format!("{}{FAULTS_PATH}", endpoint.trim_end_matches('/'))
}

fn unreachable(endpoint: &str, e: reqwest::Error) -> anyhow::Error {
    anyhow!(
        "the local AWS is not running at {endpoint} ({e}). Fix: run `stackwave local start` (or point \
         --endpoint / STACKWAVE_LOCAL_ENDPOINT at where it runs)"
    )
}

/// The answer's JSON, or an error with the emulator's own explanation.
async fn answer(resp: reqwest::Response, what: &str) -> anyhow::Result<Value> {
    let status = resp.status();
    let body: Value = resp
        .json()
        .await
        .with_context(|| format!("{what}: the emulator's answer ({status}) is not JSON"))?;
    if !status.is_success() {
        let why = body
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| body.to_string());
        if status == reqwest::StatusCode::NOT_FOUND {
            bail!(
                "{what}: the endpoint has no fault control API ({why}). Fix: point --endpoint at a \
                 local AWS started by `stackwave local start`"
            );
        }
        bail!("{what}: the emulator refused it ({status}): {why}");
    }
    Ok(body)
}

/// Set a fault; returns it with its id.
pub async fn add(endpoint: &str, request: &FaultRequest) -> anyhow::Result<Fault> {
    request.validate()?;
    let resp = client()?
        .post(url(endpoint))
        .json(&request.body())
        .send()
        .await
        .map_err(|e| unreachable(endpoint, e))?;
    let body = answer(resp, "set the fault").await?;
    serde_json::from_value(body).context("the emulator's fault is not in the expected form")
}

/// Every fault set, in the order they were set.
pub async fn list(endpoint: &str) -> anyhow::Result<Vec<Fault>> {
    let resp = client()?
        .get(url(endpoint))
        .send()
        .await
        .map_err(|e| unreachable(endpoint, e))?;
    let body = answer(resp, "list the faults").await?;
    let faults = body
        .get("faults")
        .cloned()
        .ok_or_else(|| anyhow!("list the faults: the answer has no `faults`: {body}"))?;
    serde_json::from_value(faults).context("the emulator's faults are not in the expected form")
}

/// Remove every fault; returns how many there were.
pub async fn clear(endpoint: &str) -> anyhow::Result<u64> {
    let resp = client()?
        .delete(url(endpoint))
        .send()
        .await
        .map_err(|e| unreachable(endpoint, e))?;
    let body = answer(resp, "clear the faults").await?;
    body.get("cleared")
        .and_then(Value::as_u64)
        .ok_or_else(|| anyhow!("clear the faults: the answer has no `cleared` count: {body}"))
}

/// Remove one fault by id (faults are shared by everything using the emulator); `false` when
/// there was no such fault.
pub async fn remove(endpoint: &str, id: &str) -> anyhow::Result<bool> {
    let resp = client()?
        .delete(format!("{}/{}", url(endpoint), urlencoding::encode(id)))
        .send()
        .await
        .map_err(|e| unreachable(endpoint, e))?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(false);
    }
    answer(resp, "remove the fault").await?;
    Ok(true)
}

/// What a fault does, in a sentence.
pub fn describe(f: &Fault) -> String {
    let stack = f.stack.as_deref().unwrap_or("?");
    let on = f.on.as_deref().unwrap_or("?");
    let what = match f.kind.as_str() {
        "fail" if on == "rollback" => format!(
            "fail the rollback of stack {stack}{}",
            f.resource
                .as_deref()
                .map(|r| format!(" on resource {r}"))
                .unwrap_or_default()
        ),
        "fail" => format!(
            "fail the next {on} of stack {stack}{}",
            f.resource
                .as_deref()
                .map(|r| format!(" on resource {r}"))
                .unwrap_or_default()
        ),
        "hang" => format!(
            "hang the next {on} of stack {stack} for {}s",
            f.seconds.unwrap_or_default()
        ),
        "throttle" => format!(
            "throttle {:.0}% of {} calls",
            f.rate.unwrap_or_default() * 100.0,
            f.api.as_deref().unwrap_or("?")
        ),
        "events" => format!(
            "CloudFormation events{}: drop {:.0}%, duplicate {:.0}%, delay up to {}s",
            f.stacks
                .as_ref()
                .map(|s| format!(" of {}", s.join(", ")))
                .unwrap_or_default(),
            f.drop_rate.unwrap_or_default() * 100.0,
            f.duplicate_rate.unwrap_or_default() * 100.0,
            f.delay_seconds.unwrap_or_default()
        ),
        "lambda" => format!(
            "fail invocations of {}{}{} with {}",
            f.function.as_deref().unwrap_or("?"),
            f.environment
                .as_deref()
                .map(|e| format!(" in environment {e}"))
                .unwrap_or_default(),
            f.stack
                .as_deref()
                .map(|s| format!(" about stack {s}"))
                .unwrap_or_default(),
            f.error.as_deref().unwrap_or("?")
        ),
        other => format!("{other} fault"),
    };
    let reason = f
        .reason
        .as_deref()
        .map(|r| format!(" (reason: {r})"))
        .unwrap_or_default();
    let times = match f.times_remaining {
        Some(1) => "applies once".to_string(),
        Some(n) => format!("applies {n} times"),
        None => "until cleared".to_string(),
    };
    format!("{what}{reason}; {times}")
}

/// The faults as a table (or a line saying there are none).
pub fn render_table(faults: &[Fault]) -> String {
    if faults.is_empty() {
        return "no faults set\n".to_string();
    }
    let rows: Vec<[String; 6]> = faults
        .iter()
        .map(|f| {
            let target = match f.kind.as_str() {
                "throttle" => f.api.clone().unwrap_or_default(),
                "lambda" => f.function.clone().unwrap_or_default(),
                "events" => f
                    .stacks
                    .as_ref()
                    .map(|s| s.join(","))
                    .unwrap_or_else(|| "*".into()),
                _ => f.stack.clone().unwrap_or_default(),
            };
            let detail = match f.kind.as_str() {
                "fail" => [
                    f.resource.as_ref().map(|r| format!("resource {r}")),
                    f.reason.as_ref().map(|r| format!("reason {r:?}")),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", "),
                "hang" => format!("{}s", f.seconds.unwrap_or_default()),
                "throttle" => format!("rate {}", f.rate.unwrap_or_default()),
                "lambda" => f.error.clone().unwrap_or_default(),
                "events" => format!(
                    "drop {} dup {} delay {}s (dropped {}, duplicated {}, delayed {})",
                    f.drop_rate.unwrap_or_default(),
                    f.duplicate_rate.unwrap_or_default(),
                    f.delay_seconds.unwrap_or_default(),
                    f.dropped.unwrap_or_default(),
                    f.duplicated.unwrap_or_default(),
                    f.delayed.unwrap_or_default()
                ),
                _ => String::new(),
            };
            [
                f.id.clone(),
                f.kind.clone(),
                target,
                f.on.clone().unwrap_or_else(|| "-".into()),
                if detail.is_empty() {
                    "-".into()
                } else {
                    detail
                },
                format!(
                    "{}/{}",
                    f.applied,
                    f.times_remaining
                        .map(|n| (n + f.applied).to_string())
                        .unwrap_or_else(|| "∞".into())
                ),
            ]
        })
        .collect();
    let header = ["ID", "KIND", "STACK/API", "ON", "DETAIL", "APPLIED"];
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths.iter())
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(&header.map(str::to_string));
    for row in &rows {
        out.push_str(&line(row));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(v: Value) -> Fault {
        serde_json::from_value(v).expect("fault")
    }

    #[test]
    fn a_lambda_fault_names_a_known_error_and_at_least_one_invocation() {
        let ok = FaultRequest::Lambda {
            function: "check".into(),
            error: "Sandbox.Timedout".into(),
            times: 2,
            environment: None,
            stack: None,
        };
        ok.validate().expect("valid");
        assert_eq!(
            ok.body(),
            json!({"kind": "lambda", "function": "check", "error": "Sandbox.Timedout", "times": 2})
        );
        let bad = FaultRequest::Lambda {
            function: "check".into(),
            error: "Boom".into(),
            times: 1,
            environment: None,
            stack: None,
        };
        let why = bad.validate().expect_err("unknown error").to_string();
        assert!(
            why.contains("--error Boom") && why.contains("Lambda.Unknown"),
            "{why}"
        );
        let none = FaultRequest::Lambda {
            function: "check".into(),
            error: "Lambda.Unknown".into(),
            times: 0,
            environment: Some("dev".into()),
            stack: None,
        };
        assert!(none.validate().is_err());
        let f = fault(
            json!({"id": "fault-3", "kind": "lambda", "function": "check",
            "error": "Sandbox.Timedout", "timesRemaining": 2, "applied": 0}),
        );
        assert_eq!(
            describe(&f),
            "fail invocations of check with Sandbox.Timedout; applies 2 times"
        );
    }

    #[test]
    fn bodies_match_the_control_api() {
        let fail = FaultRequest::Fail {
            stack: "App".into(),
            on: FailOn::Rollback,
            resource: Some("Bucket".into()),
            reason: Some("denied".into()),
        };
        assert_eq!(
            fail.body(),
            json!({"kind": "fail", "stack": "App", "on": "rollback", "resource": "Bucket", "reason": "denied"})
        );
        let bare = FaultRequest::Fail {
            stack: "App".into(),
            on: FailOn::Create,
            resource: None,
            reason: None,
        };
        assert_eq!(
            bare.body(),
            json!({"kind": "fail", "stack": "App", "on": "create"})
        );
        let hang = FaultRequest::Hang {
            stack: "App".into(),
            on: HangOn::Update,
            seconds: 90.0,
        };
        assert_eq!(
            hang.body(),
            json!({"kind": "hang", "stack": "App", "on": "update", "seconds": 90.0})
        );
        let throttle = FaultRequest::Throttle {
            api: "DescribeStacks".into(),
            rate: 0.3,
        };
        assert_eq!(
            throttle.body(),
            json!({"kind": "throttle", "api": "DescribeStacks", "rate": 0.3})
        );
    }

    #[test]
    fn values_are_checked_with_the_flag_and_the_fix() {
        for (bad, flag) in [
            (
                FaultRequest::Throttle {
                    api: "DescribeStacks".into(),
                    rate: 0.0,
                },
                "--rate",
            ),
            (
                FaultRequest::Throttle {
                    api: "DescribeStacks".into(),
                    rate: 1.5,
                },
                "--rate",
            ),
            (
                FaultRequest::Throttle {
                    api: " ".into(),
                    rate: 0.3,
                },
                "--api",
            ),
            (
                FaultRequest::Hang {
                    stack: "App".into(),
                    on: HangOn::Create,
                    seconds: -1.0,
                },
                "--seconds",
            ),
            (
                FaultRequest::Fail {
                    stack: String::new(),
                    on: FailOn::Delete,
                    resource: None,
                    reason: None,
                },
                "--stack",
            ),
        ] {
            let e = bad.validate().expect_err("invalid").to_string();
            assert!(e.contains(flag) && e.contains("Fix:"), "{e}");
        }
        assert!(FaultRequest::Throttle {
            api: "DescribeStacks".into(),
            rate: 1.0
        }
        .validate()
        .is_ok());
    }

    #[test]
    fn events_faults_are_checked_and_sent_with_their_stacks() {
        let events = |drop_rate: f64, duplicate_rate: f64, delay_seconds: f64, stacks: &[&str]| {
            FaultRequest::Events {
                drop_rate,
                duplicate_rate,
                delay_seconds,
                stacks: stacks.iter().map(|s| s.to_string()).collect(),
            }
        };
        for (bad, flag) in [
            (events(1.5, 0.0, 0.0, &[]), "--drop-rate"),
            (events(0.0, -0.1, 0.0, &[]), "--duplicate-rate"),
            (events(0.0, 0.0, f64::NAN, &[]), "--delay-seconds"),
            (events(0.0, 0.0, 0.0, &[]), "--drop-rate"),
            (events(1.0, 0.0, 0.0, &[""]), "--stack"),
        ] {
            let e = bad.validate().expect_err("invalid").to_string();
            assert!(e.contains(flag) && e.contains("Fix:"), "{e}");
        }
        let ok = events(0.5, 0.25, 3.0, &["Net-dev"]);
        ok.validate().expect("valid");
        assert_eq!(
            ok.body(),
            json!({"kind": "events", "dropRate": 0.5, "duplicateRate": 0.25, "delaySeconds": 3.0,
                   "stacks": ["Net-dev"]})
        );
        assert!(events(1.0, 0.0, 0.0, &[]).body().get("stacks").is_none());
    }

    #[test]
    fn descriptions_and_table() {
        let faults = vec![
            fault(
                json!({"id": "fault-1", "kind": "throttle", "api": "DescribeStacks", "rate": 0.3, "timesRemaining": null, "applied": 19}),
            ),
            fault(
                json!({"id": "fault-2", "kind": "fail", "stack": "App", "on": "update", "resource": "Table", "reason": "limit", "timesRemaining": 1, "applied": 0}),
            ),
            fault(
                json!({"id": "fault-3", "kind": "hang", "stack": "Net", "on": "create", "seconds": 120.0, "timesRemaining": 1, "applied": 0}),
            ),
        ];
        assert_eq!(
            describe(&faults[0]),
            "throttle 30% of DescribeStacks calls; until cleared"
        );
        assert_eq!(
            describe(&faults[1]),
            "fail the next update of stack App on resource Table (reason: limit); applies once"
        );
        assert_eq!(
            describe(&faults[2]),
            "hang the next create of stack Net for 120s; applies once"
        );
        let table = render_table(&faults);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(lines[0].starts_with("ID"), "{table}");
        assert!(
            lines[1].contains("fault-1")
                && lines[1].contains("DescribeStacks")
                && lines[1].contains("19/∞"),
            "{table}"
        );
        assert!(
            lines[2].contains("resource Table") && lines[2].contains("0/1"),
            "{table}"
        );
        assert!(lines[3].contains("120s"), "{table}");
        assert_eq!(render_table(&[]), "no faults set\n");
    }

    #[tokio::test]
    async fn an_endpoint_without_the_local_aws_says_how_to_start_it() {
        let e = list("http://127.0.0.1:9")
            .await
            .expect_err("nothing listens")
            .to_string();
        assert!(e.contains("stackwave local start"), "{e}");
    }
}
