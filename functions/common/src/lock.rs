//! The environment lock on AWS: an SSM parameter created only if absent, taken over when stale,
//! deleted by its holder. The rules are `stackwave_core::lock`'s.
//!
//! - [`acquire`] (the plan function, after validation): PutParameter without Overwrite. When the
//!   parameter exists, it is read: this execution's own lease (a retried plan) is fine; an
//!   expired or unreadable lease, or one whose execution is no longer RUNNING (Step Functions
//!   DescribeExecution), is taken over (PutParameter with Overwrite, then read back to confirm it
//!   holds this execution's ARN); otherwise the run fails with `DeploymentLocked` naming the
//!   holder.
//! - [`release`] (the finalize function, on every path: success, failure, run-level rollback):
//!   DeleteParameter, only when the lease holds this execution's ARN.
//!
//! When finalize cannot run (the state machine's NotifyRejected path after a Finalize failure,
//! or an execution stopped by hand) the lease is not deleted, and the environment stays usable
//! all the same: the next plan takes the lease over as soon as this execution is no longer
//! RUNNING, and in any case once the lease has expired.
//!
//! Takeover has no compare-and-swap in SSM: two executions taking over the same stale lease in
//! the same instant could both read back their own ARN. The read-back narrows this to the
//! milliseconds between one's write and the other's, for a lease that was stale to begin with.

use aws_sdk_ssm::types::ParameterType;
use chrono::{DateTime, Utc};
use stackwave_core::lock::{judge, parameter, Lease, Verdict};
use stackwave_core::Error;
use tracing::{info, warn};

use crate::errors::aws_error;
use crate::store::aws_error_meta;
use crate::Ctx;

/// How often [`acquire`] starts over when the parameter vanishes between its write and its read
/// (released by its holder in between).
const ATTEMPTS: usize = 3;

/// What [`release`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// The lease was this execution's and is deleted.
    Deleted,
    /// There was no lock.
    Absent,
    /// The lock is another execution's (this one's lease expired and was taken over): untouched.
    NotOurs { holder: String },
}

/// Acquire the environment's lock for `execution_arn` with `lease` (see the module doc).
pub async fn acquire(ctx: &Ctx, environment: &str, lease: &Lease) -> Result<(), Error> {
    let name = parameter(environment);
    let ours = lease.execution_arn.as_str();
    for _ in 0..ATTEMPTS {
        if put(ctx, &name, lease, false).await? {
            info!(environment = %environment, parameter = %name, execution = %ours, expires = %lease.expires, "environment locked");
            return Ok(());
        }
        let Some(value) = read(ctx, &name).await? else {
            // Released between our write and our read: try again.
            continue;
        };
        let why = match judge(&value, ours, Utc::now()) {
            Verdict::Ours => {
                info!(environment = %environment, parameter = %name, execution = %ours, "the lock is already this execution's (retried plan)");
                return Ok(());
            }
            Verdict::Stale { why } => why,
            Verdict::Held { lease: held } => match holder_state(ctx, &held.execution_arn).await? {
                HolderState::Running => {
                    warn!(environment = %environment, parameter = %name, holder = %held.execution_arn, expires = %held.expires, "environment locked by a running execution");
                    return Err(locked(environment, &held.execution_arn, &held.expires));
                }
                HolderState::Ended(status) => format!(
                    "its holder {} is no longer running ({status})",
                    held.execution_arn
                ),
                HolderState::Unknown(e) => {
                    warn!(environment = %environment, parameter = %name, holder = %held.execution_arn, error = %e, "cannot tell whether the lock's holder still runs; treating it as running");
                    return Err(locked(
                        environment,
                        &format!(
                            "{} (whether it still runs is unknown: {e})",
                            held.execution_arn
                        ),
                        &held.expires,
                    ));
                }
            },
        };
        return take_over(ctx, environment, &name, lease, &why).await;
    }
    Err(Error::Internal(format!(
        "environment {environment}: the lock {name} kept appearing and vanishing while this execution \
         tried to take it {ATTEMPTS} times. Fix: run the deployment again"
    )))
}

/// Release the environment's lock if it holds `execution_arn` (see the module doc).
pub async fn release(ctx: &Ctx, environment: &str, execution_arn: &str) -> Result<Released, Error> {
    let name = parameter(environment);
    let Some(value) = read(ctx, &name).await? else {
        info!(environment = %environment, parameter = %name, "no lock to release");
        return Ok(Released::Absent);
    };
    if judge(&value, execution_arn, Utc::now()) != Verdict::Ours {
        let holder = Lease::parse(&value)
            .map(|l| l.execution_arn)
            .unwrap_or(value);
        warn!(environment = %environment, parameter = %name, execution = %execution_arn, holder = %holder, "the lock is not this execution's (its lease expired and was taken over): left alone");
        return Ok(Released::NotOurs { holder });
    }
    match ctx.clients.ssm.delete_parameter().name(&name).send().await {
        Ok(_) => {
            info!(environment = %environment, parameter = %name, execution = %execution_arn, "environment lock released");
            Ok(Released::Deleted)
        }
        Err(e) => {
            let e = e.into_service_error();
            if e.is_parameter_not_found() {
                Ok(Released::Absent)
            } else {
                Err(aws_error_meta("ssm:DeleteParameter", &e))
            }
        }
    }
}

fn locked(environment: &str, holder: &str, expires: &str) -> Error {
    Error::DeploymentLocked {
        environment: environment.to_string(),
        holder: holder.to_string(),
        expires: expires.to_string(),
    }
}

/// PutParameter: `Ok(false)` when it exists and `overwrite` is false.
async fn put(ctx: &Ctx, name: &str, lease: &Lease, overwrite: bool) -> Result<bool, Error> {
    let result = ctx
        .clients
        .ssm
        .put_parameter()
        .name(name)
        .value(lease.to_value())
        .description("stackwave: the execution deploying this environment, and until when")
        .r#type(ParameterType::String)
        .overwrite(overwrite)
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(e) => {
            let e = e.into_service_error();
            if !overwrite && e.is_parameter_already_exists() {
                Ok(false)
            } else {
                Err(aws_error_meta("ssm:PutParameter", &e))
            }
        }
    }
}

/// GetParameter's value, `None` when there is no such parameter.
async fn read(ctx: &Ctx, name: &str) -> Result<Option<String>, Error> {
    match ctx.clients.ssm.get_parameter().name(name).send().await {
        Ok(out) => Ok(Some(
            out.parameter.and_then(|p| p.value).unwrap_or_default(),
        )),
        Err(e) => {
            let e = e.into_service_error();
            if e.is_parameter_not_found() {
                Ok(None)
            } else {
                Err(aws_error_meta("ssm:GetParameter", &e))
            }
        }
    }
}

/// Overwrite a stale lease with ours, then read it back: another execution taking it over in
/// the same moment makes this one `DeploymentLocked`.
async fn take_over(
    ctx: &Ctx,
    environment: &str,
    name: &str,
    lease: &Lease,
    why: &str,
) -> Result<(), Error> {
    put(ctx, name, lease, true).await?;
    let now: DateTime<Utc> = Utc::now();
    match read(ctx, name).await? {
        Some(value) if judge(&value, &lease.execution_arn, now) == Verdict::Ours => {
            warn!(environment = %environment, parameter = %name, execution = %lease.execution_arn, why = %why, "stale environment lock taken over");
            Ok(())
        }
        Some(value) => {
            let other = Lease::parse(&value).unwrap_or(Lease {
                execution_arn: value,
                expires: "(unknown)".into(),
            });
            warn!(environment = %environment, parameter = %name, holder = %other.execution_arn, "another execution took the stale lock over at the same moment");
            Err(locked(environment, &other.execution_arn, &other.expires))
        }
        None => Err(Error::Internal(format!(
            "environment {environment}: the lock {name} vanished right after this execution took it over. \
             Fix: run the deployment again"
        ))),
    }
}

enum HolderState {
    Running,
    /// Ended with this status (or no longer exists).
    Ended(String),
    /// DescribeExecution failed for a reason other than throttling.
    Unknown(Error),
}

/// Whether the execution holding the lease still runs.
async fn holder_state(ctx: &Ctx, execution_arn: &str) -> Result<HolderState, Error> {
    match ctx
        .clients
        .sfn
        .describe_execution()
        .execution_arn(execution_arn)
        .send()
        .await
    {
        Ok(out) => match out.status() {
            aws_sdk_sfn::types::ExecutionStatus::Running => Ok(HolderState::Running),
            status => Ok(HolderState::Ended(status.as_str().to_string())),
        },
        Err(e) => {
            let service = e.as_service_error();
            if service.is_some_and(|se| se.is_execution_does_not_exist()) {
                return Ok(HolderState::Ended("it no longer exists".into()));
            }
            if service.is_some_and(|se| se.is_invalid_arn()) {
                return Ok(HolderState::Ended("its ARN is not an execution's".into()));
            }
            match aws_error("states:DescribeExecution", e) {
                e @ Error::Throttled { .. } => Err(e),
                e => Ok(HolderState::Unknown(e)),
            }
        }
    }
}
