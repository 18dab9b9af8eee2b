//! The plan function: validate the execution input (the console input or an EventBridge event,
//! see `stackwave_core::trigger`), claim the event so that a redelivery deploys nothing, load the
//! manifest from S3, validate and plan it, and store the plan in the run's S3 prefix. The state
//! machine carries only the small [`PlanOutput`]; the full plan (templates as S3 keys,
//! parameters, tags) stays in S3.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use aws_sdk_ssm::types::{ParameterTier, ParameterType};
use stackwave_aws::{aws_error, lock, Ctx, RunStore};
use stackwave_core::io::{
    ExecutionInput, ExecutionRef, PlanInput, PlanOutput, PollSeconds, RunContext,
    DEFAULT_MAX_CONCURRENCY,
};
use stackwave_core::lock::Lease;
use stackwave_core::manifest::ValidationIssue;
use stackwave_core::trigger::{self, Trigger, TriggerEvent};
use stackwave_core::Error;
use stackwave_core::{secret, template};
use tracing::{info, warn};

/// The input shape, shown in `InvalidInput` errors.
pub const ACCEPTED: &str = "{\"input\": {\"manifest\": \"s3://bucket/key/manifest.yaml\", \"environment\": \"dev\", \"pollSeconds\": {\"min\": 5, \"max\": 60}}, \"execution\": {\"arn\": \"...\", \"name\": \"...\"}}";

/// The console input's accepted shape (what a person types in the console), shown in
/// `InvalidInput` errors about its values. Errors about the input's shape show every accepted
/// shape ([`trigger::ACCEPTED_SHAPES`]: the console input and the two EventBridge events).
pub const EXECUTION_ACCEPTED: &str = trigger::CONSOLE_SHAPE;

/// Largest poll interval accepted, in seconds.
pub const MAX_POLL_SECONDS: u32 = 3600;

/// Largest `maxConcurrency`: an inline Map runs at most 40 iterations at once.
pub const MAX_CONCURRENCY_LIMIT: u32 = 40;

/// Environment variable with the deployment's default `maxConcurrency`.
pub const DEFAULT_MAX_CONCURRENCY_VAR: &str = "STACKWAVE_DEFAULT_MAX_CONCURRENCY";

/// SSM parameter holding the environment's current manifest location.
pub fn manifest_uri_parameter(environment: &str) -> String {
    format!("/stackwave/{environment}/manifest-uri")
}

pub async fn handle(ctx: &Ctx, input: PlanInput) -> Result<PlanOutput, Error> {
    let PlanInput { input, execution } = input;
    let Trigger { input: exec, event } = trigger::from_value(input)?;
    validate_execution(&execution)?;
    let environment = exec.environment.clone();
    let Settings {
        poll,
        max_concurrency,
        fallback_poll_seconds,
        segment_events,
    } = validate_settings(&exec).map_err(|e| from_event(e, event.as_ref()))?;
    if let Some(event) = &event {
        claim_event(ctx, &environment, event, &execution).await?;
    }

    let (manifest_uri, from_input) = match exec.manifest.as_deref() {
        Some(uri) => (uri.to_string(), true),
        None => (manifest_uri_from_ssm(ctx, &environment).await?, false),
    };
    let location = S3Location::parse(&manifest_uri).map_err(|why| {
        let whence = if from_input {
            "`manifest`".to_string()
        } else {
            format!("SSM parameter {}", manifest_uri_parameter(&environment))
        };
        invalid(format!(
            "{whence} is {manifest_uri:?}: {why}. Fix: give the manifest as s3://<bucket>/<key>"
        ))
    })?;

    let bucket = if ctx.config.bucket.is_empty() {
        location.bucket.clone()
    } else {
        ctx.config.bucket.clone()
    };
    if bucket != location.bucket {
        // deploy-stack reads templates from the run's bucket by key: a manifest elsewhere would
        // plan fine and then fail at deploy time.
        return Err(invalid(format!(
            "manifest {manifest_uri} is outside the artifact bucket {bucket}, where stackwave reads templates from. Fix: upload the manifest and its templates to s3://{bucket}/deployments/{environment}/<timestamp>/ (`stackwave deploy` does)"
        )));
    }

    let source = RunStore::new(ctx.clients.s3.clone(), location.bucket.clone());
    let version = event.as_ref().and_then(|e| e.manifest_version.as_deref());
    let text = read_manifest(&source, &location, &manifest_uri, version).await?;
    let dir = location.dir();
    let known = known_template_keys(&source, &text, &environment, &dir).await?;
    let template_exists = |rel: &str| resolve_key(&dir, rel).is_some_and(|k| known.contains(&k));
    let mut plan = stackwave_core::plan::from_text(&text, &environment, &template_exists)?;
    for stack in &mut plan.stacks {
        stack.template = resolve_key(&dir, &stack.template).ok_or_else(|| {
            Error::Internal(format!(
                "stack {}: template {} passed validation but does not resolve to an S3 key under {manifest_uri}",
                stack.name, stack.template
            ))
        })?;
    }
    check_templates(ctx, &source, &mut plan).await?;
    let limits = stackwave_core::budget::Limits {
        fallback_poll_seconds,
        segment_events,
        max_concurrency,
    };
    stackwave_core::budget::check_history(&plan, limits).map_err(|issue| {
        Error::InvalidManifest {
            issues: vec![issue],
        }
    })?;
    let stack_count = u32::try_from(plan.stacks.len())
        .map_err(|_| Error::Internal(format!("{} stacks do not fit a u32", plan.stacks.len())))?;

    let run = RunContext {
        execution_arn: execution.arn.clone(),
        execution_name: execution.name.clone(),
        environment: environment.clone(),
        bucket: bucket.clone(),
        run_prefix: RunContext::prefix_for(&environment, &execution.name),
        poll,
        max_concurrency,
        manifest_uri: manifest_uri.clone(),
        started_at: started_at(execution.start_time.as_deref()),
        on_failure: plan.on_failure,
        fallback_poll_seconds,
        segment_events,
    };
    // One deployment per environment: the lease is taken once the input and the manifest are
    // valid; finalize releases it (`stackwave_aws::lock`).
    let lease = Lease::new(&execution.arn, &plan, chrono::Utc::now());
    lock::acquire(ctx, &environment, &lease).await?;
    let stored = RunStore::new(ctx.clients.s3.clone(), bucket.clone())
        .put_plan(&run, &plan)
        .await;
    if let Err(e) = stored {
        // A retried plan (transient error) finds its own lease; otherwise the run ends here,
        // without finalize: give the environment back at once.
        if !e.is_transient() {
            if let Err(r) = lock::release(ctx, &environment, &execution.arn).await {
                warn!(environment = %environment, error = %r, "could not release the lock; the next run takes it over once this execution has ended");
            }
        }
        return Err(e);
    }
    info!(
        environment = %environment,
        execution = %execution.name,
        manifest = %manifest_uri,
        stages = plan.stages.len(),
        stacks = stack_count,
        plan_key = %run.plan_key(),
        "plan stored"
    );

    if from_input {
        remember_manifest_uri(ctx, &environment, &manifest_uri).await;
    }

    Ok(PlanOutput {
        stages: plan.stage_refs(),
        stack_count,
        run,
    })
}

/// The JSON entry point used by main.rs and by the local gateway.
pub async fn handle_json(ctx: &Ctx, input: serde_json::Value) -> Result<serde_json::Value, Error> {
    let input: PlanInput = stackwave_aws::parse_input(input, ACCEPTED)?;
    // Boxed: the nested SDK futures would otherwise overflow the compiler's layout depth.
    stackwave_aws::to_output(&Box::pin(handle(ctx, input)).await?)
}

fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidInput {
        message: message.into(),
        accepted: EXECUTION_ACCEPTED.to_string(),
    }
}

/// The raw execution input of any accepted shape (console input or EventBridge envelope) as
/// [`ExecutionInput`]: a wrong shape is `InvalidInput` showing the accepted shapes.
pub fn parse_execution_input(value: serde_json::Value) -> Result<ExecutionInput, Error> {
    trigger::from_value(value).map(|t| t.input)
}

/// The execution input's validated settings.
struct Settings {
    poll: PollSeconds,
    max_concurrency: u32,
    fallback_poll_seconds: u32,
    segment_events: u32,
}

/// Environment, poll settings (the fallback poll too), concurrency, the segment budget and
/// the reserved dry-run flag.
fn validate_settings(exec: &ExecutionInput) -> Result<Settings, Error> {
    validate_environment(&exec.environment)?;
    let poll = validate_poll(exec.poll_seconds)?;
    let fallback = validate_fallback_poll(exec.fallback_poll_seconds)?;
    let max_concurrency = validate_max_concurrency(exec.max_concurrency)?;
    let segment_events = validate_segment_events(exec.segment_events)?;
    if exec.dry_run {
        return Err(invalid(
            "`dryRun` is reserved and not supported yet; nothing was deployed. Fix: remove `dryRun` to deploy, or run `stackwave validate` to check a manifest without deploying",
        ));
    }
    Ok(Settings {
        poll,
        max_concurrency,
        fallback_poll_seconds: fallback,
        segment_events,
    })
}

/// The history budget of one loop segment, or the default; `500 <= segmentEvents <= 20000`.
pub fn validate_segment_events(events: Option<u32>) -> Result<u32, Error> {
    use stackwave_core::budget::{MIN_SEGMENT_EVENTS, SEGMENT_EVENTS};
    let events = events.unwrap_or(SEGMENT_EVENTS);
    if (MIN_SEGMENT_EVENTS..=SEGMENT_EVENTS).contains(&events) {
        Ok(events)
    } else {
        Err(invalid(format!(
            "segmentEvents {events} is out of range: need {MIN_SEGMENT_EVENTS} <= segmentEvents <= {SEGMENT_EVENTS} \
             (a segment hands the loop over before one execution's 25,000-event history could fill). \
             Fix: give a number in that range, or leave it out for the default ({SEGMENT_EVENTS})"
        )))
    }
}

/// The schedule's fallback poll, or the default; `1 <= fallbackPollSeconds <= 3600`.
pub fn validate_fallback_poll(seconds: Option<u32>) -> Result<u32, Error> {
    let seconds = seconds.unwrap_or(stackwave_core::io::DEFAULT_FALLBACK_POLL_SECONDS);
    if (1..=MAX_POLL_SECONDS).contains(&seconds) {
        Ok(seconds)
    } else {
        Err(invalid(format!(
            "fallbackPollSeconds {seconds} is out of range: need 1 <= fallbackPollSeconds <= {MAX_POLL_SECONDS}. \
             Fix: give a number of seconds in that range, or leave it out for the default ({})",
            stackwave_core::io::DEFAULT_FALLBACK_POLL_SECONDS
        )))
    }
}

/// An input error in an event's values names the event and shows every accepted shape.
fn from_event(error: Error, event: Option<&TriggerEvent>) -> Error {
    match (error, event) {
        (Error::InvalidInput { message, .. }, Some(event)) => Error::InvalidInput {
            message: format!("{message} (from {})", event.description),
            accepted: trigger::ACCEPTED_SHAPES.to_string(),
        },
        (error, _) => error,
    }
}

/// Claim the event that started this execution: `/stackwave/<env>/events/<dedup key>`, created
/// only if absent (PutParameter without Overwrite), holding this execution's ARN. Another
/// execution's claim makes this delivery a duplicate (`DuplicateEvent`); this execution's own
/// claim (plan retried after a Lambda service error) is not.
async fn claim_event(
    ctx: &Ctx,
    environment: &str,
    event: &TriggerEvent,
    execution: &ExecutionRef,
) -> Result<(), Error> {
    let Some(name) = event.claim_parameter(environment) else {
        warn!(environment = %environment, event = %event.description, "the event has no id, object version or etag to tell deliveries apart; not deduplicated");
        return Ok(());
    };
    let result = ctx
        .clients
        .ssm
        .put_parameter()
        .name(&name)
        .value(&execution.arn)
        .description(truncate(
            &format!("stackwave: {} started this execution", event.description),
            MAX_PARAMETER_DESCRIPTION,
        ))
        .r#type(ParameterType::String)
        .overwrite(false)
        // Deleted by SSM once no redelivery can come (`trigger::CLAIM_HOURS`): claims do not
        // pile up. Expiration policies need the Advanced tier.
        .tier(ParameterTier::Advanced)
        .policies(trigger::claim_expiration_policy(chrono::Utc::now()))
        .send()
        .await;
    let error = match result {
        Ok(_) => {
            info!(environment = %environment, event = %event.description, parameter = %name, "event claimed");
            return Ok(());
        }
        Err(e) => e.into_service_error(),
    };
    if !error.is_parameter_already_exists() {
        return Err(stackwave_aws::store::aws_error_meta(
            "ssm:PutParameter",
            &error,
        ));
    }
    let holder = match ctx.clients.ssm.get_parameter().name(&name).send().await {
        Ok(out) => out
            .parameter
            .and_then(|p| p.value)
            .unwrap_or_else(|| "(unknown: the parameter has no value)".to_string()),
        Err(e) => {
            let e = aws_error("ssm:GetParameter", e);
            format!("(unknown: could not read {name}: {e})")
        }
    };
    if holder == execution.arn {
        info!(environment = %environment, event = %event.description, parameter = %name, "event already claimed by this execution (retried invoke)");
        return Ok(());
    }
    warn!(environment = %environment, event = %event.description, parameter = %name, holder = %holder, "duplicate event: deploying nothing");
    Err(Error::DuplicateEvent {
        event: event.description.clone(),
        execution: holder,
        parameter: name,
    })
}

/// Longest SSM parameter description.
const MAX_PARAMETER_DESCRIPTION: usize = 1024;

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => text[..i].to_string(),
        None => text.to_string(),
    }
}

fn validate_execution(execution: &ExecutionRef) -> Result<(), Error> {
    if execution.name.is_empty() || execution.name.contains('/') {
        return Err(Error::InvalidInput {
            message: format!(
                "execution name {:?} cannot name the run's S3 prefix. Fix: pass $$.Execution.Name as execution.name",
                execution.name
            ),
            accepted: ACCEPTED.to_string(),
        });
    }
    Ok(())
}

/// `^[A-Za-z0-9][A-Za-z0-9-]{0,31}$`.
pub fn validate_environment(environment: &str) -> Result<(), Error> {
    match stackwave_core::manifest::environment_issue(environment) {
        None => Ok(()),
        Some((message, fix)) => Err(invalid(format!("{message}. Fix: {fix}"))),
    }
}

/// Environment variables with the installation's default `pollSeconds` (template.yaml's
/// `PollSecondsMin` and `PollSecondsMax`).
pub const DEFAULT_POLL_MIN_VAR: &str = "STACKWAVE_DEFAULT_POLL_SECONDS_MIN";
pub const DEFAULT_POLL_MAX_VAR: &str = "STACKWAVE_DEFAULT_POLL_SECONDS_MAX";

fn poll_in_range(poll: PollSeconds) -> bool {
    poll.min >= 1 && poll.min <= poll.max && poll.max <= MAX_POLL_SECONDS
}

/// The poll settings, or the installation's defaults; `1 <= min <= max <= 3600`.
pub fn validate_poll(poll: Option<PollSeconds>) -> Result<PollSeconds, Error> {
    let poll = poll.unwrap_or_else(|| {
        default_poll(
            std::env::var(DEFAULT_POLL_MIN_VAR).ok().as_deref(),
            std::env::var(DEFAULT_POLL_MAX_VAR).ok().as_deref(),
        )
    });
    if poll_in_range(poll) {
        Ok(poll)
    } else {
        Err(invalid(format!(
            "pollSeconds {{\"min\": {}, \"max\": {}}} is out of range: need 1 <= min <= max <= {MAX_POLL_SECONDS}",
            poll.min, poll.max
        )))
    }
}

/// The installation's default poll from its two variables' values; a missing one keeps the
/// built-in default, and an invalid pair is ignored with a warning (the installation cannot
/// check that the minimum does not exceed the maximum).
pub fn default_poll(min: Option<&str>, max: Option<&str>) -> PollSeconds {
    let builtin = PollSeconds::default();
    let parse = |raw: Option<&str>, or: u32| raw.map_or(Some(or), |r| r.trim().parse::<u32>().ok());
    match (parse(min, builtin.min), parse(max, builtin.max)) {
        (Some(min), Some(max)) if poll_in_range(PollSeconds { min, max }) => {
            PollSeconds { min, max }
        }
        _ => {
            warn!(min = ?min, max = ?max, default = ?builtin, "ignoring an invalid default pollSeconds (PollSecondsMin/PollSecondsMax)");
            builtin
        }
    }
}

/// The wave Map's concurrency: the input's, else the function's default
/// (`STACKWAVE_DEFAULT_MAX_CONCURRENCY`), else [`DEFAULT_MAX_CONCURRENCY`]; `1..=40`.
pub fn validate_max_concurrency(requested: Option<u32>) -> Result<u32, Error> {
    match requested {
        Some(n) if (1..=MAX_CONCURRENCY_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(invalid(format!(
            "maxConcurrency {n} is out of range: need 1 to {MAX_CONCURRENCY_LIMIT} (an inline Map runs at most {MAX_CONCURRENCY_LIMIT} stacks at once)"
        ))),
        None => Ok(default_max_concurrency()),
    }
}

fn default_max_concurrency() -> u32 {
    let Ok(raw) = std::env::var(DEFAULT_MAX_CONCURRENCY_VAR) else {
        return DEFAULT_MAX_CONCURRENCY;
    };
    match raw.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_CONCURRENCY_LIMIT).contains(&n) => n,
        _ => {
            warn!(variable = DEFAULT_MAX_CONCURRENCY_VAR, value = %raw, default = DEFAULT_MAX_CONCURRENCY, "ignoring an invalid default max concurrency");
            DEFAULT_MAX_CONCURRENCY
        }
    }
}

fn started_at(start_time: Option<&str>) -> String {
    if let Some(raw) = start_time {
        match chrono::DateTime::parse_from_rfc3339(raw) {
            Ok(t) => {
                return t
                    .with_timezone(&chrono::Utc)
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            }
            Err(e) => {
                warn!(start_time = %raw, error = %e, "execution start time is not RFC3339; using now")
            }
        }
    }
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn manifest_uri_from_ssm(ctx: &Ctx, environment: &str) -> Result<String, Error> {
    let name = manifest_uri_parameter(environment);
    let missing = || {
        invalid(format!(
            "no manifest location: the input has no `manifest` and the SSM parameter {name} does not exist. Fix: either pass \"manifest\": \"s3://<bucket>/<key>/manifest.yaml\" in the input, or set {name} to that URI (`stackwave deploy` and the S3 upload trigger keep it up to date)"
        ))
    };
    match ctx.clients.ssm.get_parameter().name(&name).send().await {
        Ok(out) => {
            let value = out
                .parameter
                .and_then(|p| p.value)
                .map(|v| v.trim().to_string())
                .unwrap_or_default();
            if value.is_empty() {
                Err(missing())
            } else {
                info!(environment = %environment, parameter = %name, manifest = %value, "manifest location from SSM");
                Ok(value)
            }
        }
        Err(e) => {
            let e = e.into_service_error();
            if e.is_parameter_not_found() {
                Err(missing())
            } else {
                Err(stackwave_aws::store::aws_error_meta("ssm:GetParameter", &e))
            }
        }
    }
}

/// Keep `/stackwave/<env>/manifest-uri` pointing at the manifest last given explicitly, so that
/// `{"environment": "<env>"}` alone redeploys it. Bookkeeping only: a failure is logged, the run
/// goes on.
async fn remember_manifest_uri(ctx: &Ctx, environment: &str, manifest_uri: &str) {
    let name = manifest_uri_parameter(environment);
    let result = ctx
        .clients
        .ssm
        .put_parameter()
        .name(&name)
        .value(manifest_uri)
        .r#type(ParameterType::String)
        .overwrite(true)
        .send()
        .await;
    match result {
        Ok(_) => {
            info!(environment = %environment, parameter = %name, manifest = %manifest_uri, "manifest location recorded")
        }
        Err(e) => {
            let error = aws_error("ssm:PutParameter", e);
            warn!(environment = %environment, parameter = %name, error = %error, "could not record the manifest location; the run goes on");
        }
    }
}

/// The manifest's text: the version the triggering upload created when there is one (a newer
/// upload of the same key starts its own execution), else the current object.
async fn read_manifest(
    source: &RunStore,
    location: &S3Location,
    uri: &str,
    version: Option<&str>,
) -> Result<String, Error> {
    let not_found = || {
        let what = match version {
            Some(v) => format!("{uri} (version {v})"),
            None => uri.to_string(),
        };
        Error::InvalidManifest {
        issues: vec![ValidationIssue {
            stack: None,
            field: "manifest".to_string(),
            message: format!("no manifest at {what}"),
            fix: "upload the manifest and its templates there (`stackwave deploy` does), or correct the manifest location".to_string(),
        }],
    }
    };
    let bytes = match source.get_version_bytes(&location.key, version).await {
        Ok(Some(b)) => b,
        Ok(None) => return Err(not_found()),
        // S3 answers a version that does not exist (any more) with NoSuchVersion.
        Err(Error::AwsService { code, .. })
            if code == "NoSuchBucket" || code == "NoSuchVersion" =>
        {
            return Err(not_found())
        }
        Err(e) => return Err(e),
    };
    String::from_utf8(bytes).map_err(|e| Error::InvalidManifest {
        issues: vec![ValidationIssue {
            stack: None,
            field: "manifest".to_string(),
            message: format!("{uri} is not UTF-8 text ({e})"),
            fix: "save the manifest as UTF-8 YAML or JSON".to_string(),
        }],
    })
}

/// Each stack against its template, before any change: the template's size and parameters
/// (`stackwave_core::template::check`), and SecureStrings only into `NoEcho` parameters
/// (`stackwave_core::secret::check`). Each template is read once, however many stacks use it.
/// Every problem is listed at once.
async fn check_templates(
    ctx: &Ctx,
    source: &RunStore,
    plan: &mut stackwave_core::plan::Plan,
) -> Result<(), Error> {
    let keys: BTreeSet<&str> = plan.stacks.iter().map(|s| s.template.as_str()).collect();
    let mut templates = BTreeMap::new();
    for key in keys {
        let body = source
            .get_bytes(key)
            .await?
            .ok_or_else(|| "it is not in the artifact bucket".to_string());
        templates.insert(key.to_string(), body);
    }
    let mut issues: Vec<ValidationIssue> = plan
        .stacks
        .iter()
        .flat_map(|s| template::check(s, &templates[&s.template]))
        .collect();
    let secure = stackwave_aws::secrets::secure_names(&ctx.clients.ssm, &plan.stacks).await?;
    issues.extend(secret::check(&mut plan.stacks, &secure, &templates));
    if issues.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidManifest { issues })
    }
}

/// The S3 keys of templates that exist, for `template_exists`: one listing of the manifest's
/// directory, plus a HEAD for each template the manifest places outside it (`../`).
async fn known_template_keys(
    source: &RunStore,
    text: &str,
    environment: &str,
    dir: &str,
) -> Result<HashSet<String>, Error> {
    let mut known: HashSet<String> = source.list_keys(dir).await?.into_iter().collect();
    // The templates as written; a manifest that does not parse is reported by `from_text`.
    let outside: BTreeSet<String> = match stackwave_core::manifest::parse(text, environment) {
        Ok(manifest) => manifest
            .stages
            .iter()
            .flat_map(|stage| stage.stacks.iter())
            .filter_map(|stack| resolve_key(dir, &stack.template))
            .filter(|key| !key.starts_with(dir))
            .collect(),
        Err(_) => BTreeSet::new(),
    };
    for key in outside {
        if source.exists(&key).await? {
            known.insert(key);
        }
    }
    Ok(known)
}

/// `s3://bucket/key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    pub key: String,
}

impl S3Location {
    /// Parse `s3://bucket/key`; the reason is returned when it is not one.
    pub fn parse(uri: &str) -> Result<Self, String> {
        let rest = uri
            .strip_prefix("s3://")
            .ok_or_else(|| "it does not start with s3://".to_string())?;
        let (bucket, key) = rest
            .split_once('/')
            .ok_or_else(|| "it has no object key after the bucket".to_string())?;
        if bucket.is_empty() {
            return Err("the bucket name is empty".to_string());
        }
        if !bucket
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        {
            return Err(format!("{bucket:?} is not a bucket name"));
        }
        if key.is_empty() || key.ends_with('/') {
            return Err("the object key is empty or names a folder".to_string());
        }
        Ok(S3Location {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }

    /// The key's directory, with its trailing `/` (empty at the bucket's root).
    pub fn dir(&self) -> String {
        match self.key.rfind('/') {
            Some(i) => self.key[..=i].to_string(),
            None => String::new(),
        }
    }
}

/// The S3 key of a template written relative to the manifest: `dir` joined with `rel`, with
/// `.`, `..` and repeated `/` resolved. `None` when `rel` is empty, absolute, a URL, or climbs
/// above the bucket's root.
pub fn resolve_key(dir: &str, rel: &str) -> Option<String> {
    let rel = rel.trim().replace('\\', "/");
    if rel.is_empty() || rel.starts_with('/') || rel.contains("://") {
        return None;
    }
    let mut parts: Vec<&str> = dir
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() || rel.ends_with('/') {
        return None;
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_key_normalizes_relative_paths() {
        let dir = "deployments/dev/t1/";
        assert_eq!(
            resolve_key(dir, "templates/network.yaml").as_deref(),
            Some("deployments/dev/t1/templates/network.yaml")
        );
        assert_eq!(
            resolve_key(dir, "./templates//a.yaml").as_deref(),
            Some("deployments/dev/t1/templates/a.yaml")
        );
        assert_eq!(
            resolve_key(dir, "templates/../b.yaml").as_deref(),
            Some("deployments/dev/t1/b.yaml")
        );
        assert_eq!(
            resolve_key(dir, "../shared/c.yaml").as_deref(),
            Some("deployments/dev/shared/c.yaml")
        );
        assert_eq!(
            resolve_key(dir, "templates\\d.yaml").as_deref(),
            Some("deployments/dev/t1/templates/d.yaml")
        );
        assert_eq!(resolve_key("", "x.yaml").as_deref(), Some("x.yaml"));
        assert_eq!(resolve_key(dir, "../../../../x.yaml"), None);
        assert_eq!(resolve_key(dir, "/abs.yaml"), None);
        assert_eq!(resolve_key(dir, "s3://b/k.yaml"), None);
        assert_eq!(resolve_key(dir, ""), None);
        assert_eq!(resolve_key(dir, "templates/"), None);
    }

    #[test]
    fn s3_location_parses_and_rejects() {
        let loc = S3Location::parse("s3://bucket/deployments/dev/t1/manifest.yaml").unwrap();
        assert_eq!(loc.bucket, "bucket");
        assert_eq!(loc.key, "deployments/dev/t1/manifest.yaml");
        assert_eq!(loc.dir(), "deployments/dev/t1/");
        assert_eq!(S3Location::parse("s3://b/manifest.yaml").unwrap().dir(), "");
        for bad in [
            "https://b/k",
            "s3://b",
            "s3:///k",
            "s3://b/",
            "s3://b/dir/",
            "s3://b c/k",
        ] {
            assert!(S3Location::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn the_installation_sets_the_default_poll() {
        let p = |min, max| PollSeconds { min, max };
        assert_eq!(default_poll(None, None), PollSeconds::default());
        assert_eq!(default_poll(Some("2"), Some("30")), p(2, 30));
        assert_eq!(default_poll(Some("10"), None), p(10, 60));
        // Invalid: the built-in default, never a failed run.
        for (min, max) in [("90", "60"), ("0", "5"), ("x", "5"), ("5", "4000")] {
            assert_eq!(
                default_poll(Some(min), Some(max)),
                PollSeconds::default(),
                "{min} {max}"
            );
        }
    }

    #[test]
    fn environment_names() {
        for ok in ["dev", "prod-eu-1", "A", "0abc", &"a".repeat(32)] {
            assert!(validate_environment(ok).is_ok(), "{ok} should be accepted");
        }
        for bad in [
            "",
            "-dev",
            "dev_1",
            "dev/x",
            "dév",
            "config",
            &"a".repeat(33),
        ] {
            let err = validate_environment(bad).unwrap_err();
            assert_eq!(err.name(), "InvalidInput", "{bad}");
        }
    }

    #[test]
    fn fallback_poll_bounds() {
        assert_eq!(
            validate_fallback_poll(None).unwrap(),
            stackwave_core::io::DEFAULT_FALLBACK_POLL_SECONDS
        );
        assert_eq!(validate_fallback_poll(Some(1)).unwrap(), 1);
        assert_eq!(validate_fallback_poll(Some(3600)).unwrap(), 3600);
        for bad in [0, 3601] {
            let err = validate_fallback_poll(Some(bad)).unwrap_err();
            assert_eq!(err.name(), "InvalidInput");
            assert!(err.to_string().contains("fallbackPollSeconds"), "{err}");
            assert!(err.to_string().contains("Fix:"), "{err}");
        }
    }

    #[test]
    fn segment_events_bounds() {
        use stackwave_core::budget::{MIN_SEGMENT_EVENTS, SEGMENT_EVENTS};
        assert_eq!(validate_segment_events(None).unwrap(), SEGMENT_EVENTS);
        assert_eq!(
            validate_segment_events(Some(MIN_SEGMENT_EVENTS)).unwrap(),
            MIN_SEGMENT_EVENTS
        );
        for bad in [0, MIN_SEGMENT_EVENTS - 1, SEGMENT_EVENTS + 1] {
            let err = validate_segment_events(Some(bad)).unwrap_err();
            assert_eq!(err.name(), "InvalidInput");
            assert!(err.to_string().contains("segmentEvents"), "{err}");
            assert!(err.to_string().contains("Fix:"), "{err}");
        }
    }

    #[test]
    fn poll_bounds() {
        assert_eq!(
            validate_poll(None).unwrap(),
            PollSeconds { min: 5, max: 60 }
        );
        assert_eq!(
            validate_poll(Some(PollSeconds { min: 1, max: 2 })).unwrap(),
            PollSeconds { min: 1, max: 2 }
        );
        assert_eq!(
            validate_poll(Some(PollSeconds {
                min: 3600,
                max: 3600
            }))
            .unwrap()
            .max,
            3600
        );
        for (min, max) in [(0, 5), (10, 5), (1, 3601)] {
            let err = validate_poll(Some(PollSeconds { min, max })).unwrap_err();
            assert_eq!(err.name(), "InvalidInput");
            assert!(err.to_string().contains("pollSeconds"), "{err}");
        }
    }

    #[test]
    fn max_concurrency_bounds() {
        assert_eq!(validate_max_concurrency(Some(1)).unwrap(), 1);
        assert_eq!(validate_max_concurrency(Some(40)).unwrap(), 40);
        for bad in [0, 41] {
            assert_eq!(
                validate_max_concurrency(Some(bad)).unwrap_err().name(),
                "InvalidInput"
            );
        }
    }

    #[test]
    fn execution_input_rejects_unknown_fields_with_the_accepted_shape() {
        let err = parse_execution_input(
            serde_json::json!({"environment": "dev", "manifests": "s3://b/k"}),
        )
        .unwrap_err();
        assert_eq!(err.name(), "InvalidInput");
        let text = err.to_string();
        assert!(text.contains("manifests"), "{text}");
        assert!(text.contains("Accepted shape"), "{text}");
        assert!(text.contains("pollSeconds"), "{text}");
        let err = parse_execution_input(serde_json::json!({"environment": 3})).unwrap_err();
        assert_eq!(err.name(), "InvalidInput");
    }

    #[test]
    fn started_at_keeps_the_execution_start_time() {
        assert_eq!(
            started_at(Some("2026-11-27T10:15:00Z")),
            "2026-11-27T10:15:00.000Z"
        );
        assert!(chrono::DateTime::parse_from_rfc3339(&started_at(None)).is_ok());
        assert!(chrono::DateTime::parse_from_rfc3339(&started_at(Some("yesterday"))).is_ok());
    }
}
