//! A stack's operations as deploy-stack starts them and check carries them on (docs/design.md,
//! "Stack lifecycle"): resolve parameters, look at the stack, snapshot it, create a change set,
//! delete a ROLLBACK_COMPLETE leftover, continue a failed rollback. Shared by the deploy-stack,
//! check and rollback functions, so that no function crate depends on another.

use std::collections::BTreeMap;

use aws_sdk_cloudformation::types::{
    Capability, ChangeSetType, Parameter, Stack, Tag, TemplateStage,
};
use aws_sdk_ssm::types::ParameterType;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use chrono::Utc;
use stackwave_core::io::RunContext;
use stackwave_core::manifest::ParamValue;
use stackwave_core::plan::PlannedStack;
use stackwave_core::reconcile::{self, Step};
use stackwave_core::record::{Action, Operation, Phase, Snapshot, StackRecord};
use stackwave_core::secret::{self, SecretRef};
use stackwave_core::Error;

use crate::cfn::describe_stack;
use crate::{aws_error, secrets, Ctx, RunStore};

/// A new record of a stack this run starts (phase `change_set_pending`).
pub fn new_record(run: &RunContext, planned: &PlannedStack) -> StackRecord {
    StackRecord {
        stack: planned.name.clone(),
        stage: planned.stage.clone(),
        operation: Operation::Create,
        phase: Phase::ChangeSetPending,
        action: Action::InProgress,
        change_set_name: reconcile::change_set_name(&run.execution_name, &planned.name),
        client_token: reconcile::client_token(
            &run.execution_name,
            &planned.name,
            reconcile::OP_EXECUTE,
        ),
        parameters: vec![],
        secrets: vec![],
        started_at: reconcile::timestamp(Utc::now()),
        finished_at: None,
        status: None,
        reason: String::new(),
        root_cause: None,
        outputs: vec![],
        snapshot: None,
        timeout_minutes: planned.timeout_minutes,
        rollback: None,
    }
}

/// Steps 2 and 3 of the lifecycle: resolve parameters, look at the stack, start the operation.
pub async fn start(
    ctx: &Ctx,
    run: &RunContext,
    store: &RunStore,
    planned: &PlannedStack,
    record: &mut StackRecord,
) -> Result<(), Error> {
    let stack = planned.name.as_str();
    (record.parameters, record.secrets) = resolve_parameters(ctx, planned).await?;
    let current = describe_stack(&ctx.clients.cfn, stack).await?;
    let status = current
        .as_ref()
        .and_then(|s| s.stack_status())
        .map(|s| s.as_str().to_string());
    record.status = status.clone();
    let decision = reconcile::start(status.as_deref());
    tracing::info!(stack = %stack, status = ?status, decision = ?decision, "stack observed");

    // The record transition is core's (`reconcile::begin`); this carries out its step.
    let change_set_type = match reconcile::begin(record, decision, Utc::now()) {
        Step::CreateChangeSet => ChangeSetType::Create,
        Step::UpdateChangeSet => {
            if let Some(current) = &current {
                record.snapshot = Some(snapshot(ctx, run, store, current).await?);
            }
            ChangeSetType::Update
        }
        Step::DeleteLeftover => {
            return delete_leftover(ctx, record, status.as_deref().unwrap_or_default()).await;
        }
        Step::ContinueRollback => return continue_update_rollback(ctx, record).await,
        Step::Settle { reason, .. } => {
            // Refused: handle() keeps the failure in the record and ends the branch with it.
            return Err(Error::StackFailed {
                stack: stack.to_string(),
                cause: reason,
            });
        }
        Step::Wait => {
            tracing::info!(stack = %stack, status = ?status, phase = ?record.phase, timeout_minutes = record.timeout_minutes, "another operation runs on the stack: waiting for it to settle");
            return Ok(());
        }
        other => {
            return Err(Error::Internal(format!(
                "stack {stack}: reconcile::begin asked for {other:?} on a first look; this is a bug"
            )));
        }
    };

    let started = create_change_set(ctx, run, planned, record, change_set_type).await?;
    record_started(record, started);
    Ok(())
}

/// DeleteStack on a ROLLBACK_COMPLETE leftover with the record's delete token. The only delete
/// of the deployment path: refused (an internal error) unless [`reconcile::may_delete`] allows
/// it for `status`.
pub async fn delete_leftover(ctx: &Ctx, record: &StackRecord, status: &str) -> Result<(), Error> {
    let stack = record.stack.as_str();
    if !reconcile::may_delete(status, false) {
        return Err(Error::Internal(format!(
            "stack {stack}: refusing to delete a stack in status {status}: stackwave deletes only \
             ROLLBACK_COMPLETE leftovers (and, in a run-level rollback, stacks the run created). \
             Fix: this is a bug; nothing was deleted"
        )));
    }
    let token = reconcile::client_token_of(record, reconcile::OP_DELETE);
    ctx.clients
        .cfn
        .delete_stack()
        .stack_name(stack)
        .client_request_token(&token)
        .set_role_arn(ctx.config.cfn_role_arn.clone())
        .send()
        .await
        .map_err(|e| aws_error("cloudformation:DeleteStack", e))?;
    tracing::info!(stack = %stack, token = %token, "deleting the ROLLBACK_COMPLETE leftover of an earlier failed create");
    Ok(())
}

/// ContinueUpdateRollback on an UPDATE_ROLLBACK_FAILED stack with the record's continue token
/// (a retry with the same token starts nothing new). A refusal is `StackFailed` with the fix.
pub async fn continue_update_rollback(ctx: &Ctx, record: &StackRecord) -> Result<(), Error> {
    let stack = record.stack.as_str();
    let token = reconcile::client_token_of(record, reconcile::OP_CONTINUE);
    let result = ctx
        .clients
        .cfn
        .continue_update_rollback()
        .stack_name(stack)
        .client_request_token(&token)
        .set_role_arn(ctx.config.cfn_role_arn.clone())
        .send()
        .await;
    match result {
        Ok(_) => {
            tracing::info!(stack = %stack, token = %token, "continuing the failed rollback of an earlier update (UPDATE_ROLLBACK_FAILED)");
            Ok(())
        }
        Err(e) => match aws_error("cloudformation:ContinueUpdateRollback", e) {
            e @ Error::Throttled { .. } => Err(e),
            e => Err(Error::StackFailed {
                stack: stack.to_string(),
                cause: format!(
                    "it is UPDATE_ROLLBACK_FAILED and continuing its rollback failed: {e}. Fix: fix the \
                     resources named in the stack's events (or skip them: ContinueUpdateRollback with \
                     ResourcesToSkip) until the stack is UPDATE_ROLLBACK_COMPLETE, then run the deployment again"
                ),
            }),
        },
    }
}

/// The update of a stable stack: snapshot it as it is now, then CreateChangeSet (UPDATE). Used
/// by check once a stack is free again (after ContinueUpdateRollback, or another operation). The
/// record's phase becomes `change_set_pending`, or `done`/`unchanged` for the emulator's
/// no-change refusal.
pub async fn start_update(
    ctx: &Ctx,
    run: &RunContext,
    store: &RunStore,
    planned: &PlannedStack,
    record: &mut StackRecord,
) -> Result<(), Error> {
    let stack = planned.name.as_str();
    let current = describe_stack(&ctx.clients.cfn, stack)
        .await?
        .ok_or_else(|| Error::StackFailed {
            stack: stack.to_string(),
            cause: "the stack disappeared just before its update (deleted by someone else?). \
                    Fix: run the deployment again to create it"
                .into(),
        })?;
    if record.snapshot.is_none() {
        record.snapshot = Some(snapshot(ctx, run, store, &current).await?);
    }
    record.operation = Operation::Update;
    let started = create_change_set(ctx, run, planned, record, ChangeSetType::Update).await?;
    record_started(record, started);
    Ok(())
}

/// The record after CreateChangeSet: waiting for its change set, or done and `unchanged`.
fn record_started(record: &mut StackRecord, started: ChangeSetStarted) {
    match started {
        ChangeSetStarted::Started => record.phase = Phase::ChangeSetPending,
        ChangeSetStarted::NoChanges => {
            record.phase = Phase::Done;
            record.action = Action::Unchanged;
            record.reason = "no changes".into();
            record.finished_at = Some(reconcile::timestamp(Utc::now()));
        }
    }
}

/// Step 2: replace `{output}` and `{ssm}` by their values. A SecureString is not resolved to
/// its value: it comes back as a [`SecretRef`] (name and version), and only
/// [`create_change_set`] reads the value, for CloudFormation alone.
async fn resolve_parameters(
    ctx: &Ctx,
    planned: &PlannedStack,
) -> Result<(Vec<(String, String)>, Vec<SecretRef>), Error> {
    let stack = planned.name.as_str();
    let mut outputs_of: BTreeMap<String, Option<Vec<(String, String)>>> = BTreeMap::new();
    let mut resolved = Vec::with_capacity(planned.parameters.len());
    let mut secrets = Vec::new();
    for (name, value) in &planned.parameters {
        let not_found = |cause: String, fix: String| Error::ParameterNotFound {
            stack: stack.to_string(),
            parameter: name.clone(),
            cause,
            fix,
        };
        let v = match value {
            ParamValue::Literal(v) => v.clone(),
            ParamValue::Output { output } => {
                let Some((source, key)) = output.split_once('.') else {
                    return Err(not_found(
                        format!("output reference {output:?} is not of the form Stack.OutputKey"),
                        "write the reference as {output: \"StackName.OutputKey\"} in the manifest"
                            .into(),
                    ));
                };
                if !outputs_of.contains_key(source) {
                    let found = describe_stack(&ctx.clients.cfn, source)
                        .await?
                        .map(|s| stack_outputs(&s));
                    outputs_of.insert(source.to_string(), found);
                }
                match outputs_of.get(source) {
                    Some(Some(outs)) => match outs.iter().find(|(k, _)| k == key) {
                        Some((_, v)) => v.clone(),
                        None => {
                            let have: Vec<&str> = outs.iter().map(|(k, _)| k.as_str()).collect();
                            return Err(not_found(
                                format!("stack {source} has no output {key} (its outputs: {})", have.join(", ")),
                                format!("add the output {key} to {source}'s template, or correct the reference"),
                            ));
                        }
                    },
                    _ => {
                        return Err(not_found(
                            format!("stack {source}, whose output {key} it reads, does not exist"),
                            format!("deploy {source} first (in an earlier stage or wave), or correct the reference"),
                        ))
                    }
                }
            }
            ParamValue::Ssm { ssm } => {
                // Without decryption: a SecureString's value is not read here.
                match ctx.clients.ssm.get_parameter().name(ssm).with_decryption(false).send().await {
                    Ok(out) => {
                        let p = out.parameter();
                        if p.and_then(|p| p.r#type()) == Some(&ParameterType::SecureString) {
                            if !planned.secret_parameters.contains(name) {
                                return Err(Error::StackFailed {
                                    stack: stack.to_string(),
                                    cause: format!(
                                        "parameter {name}: SSM parameter {ssm} was not a SecureString (or did not exist) when this run \
                                         was planned, so nothing checked that {name} is a NoEcho template parameter; nothing was passed to \
                                         CloudFormation. Fix: run the deployment again (the plan checks it)"
                                    ),
                                });
                            }
                            secrets.push(SecretRef {
                                parameter: name.clone(),
                                ssm: ssm.clone(),
                                version: p.map(|p| p.version()).unwrap_or_default(),
                            });
                            continue;
                        }
                        p.and_then(|p| p.value()).unwrap_or_default().to_string()
                    }
                    Err(e) if e.as_service_error().is_some_and(|se| se.is_parameter_not_found()) => {
                        return Err(not_found(
                            format!("SSM parameter {ssm} does not exist"),
                            format!("create the SSM parameter {ssm} in this account and region, or correct the name"),
                        ))
                    }
                    Err(e) => return Err(aws_error("ssm:GetParameter", e)),
                }
            }
        };
        resolved.push((name.clone(), v));
    }
    Ok((resolved, secrets))
}

/// A stack's outputs as key/value pairs.
pub fn stack_outputs(s: &Stack) -> Vec<(String, String)> {
    s.outputs()
        .iter()
        .filter_map(|o| {
            Some((
                o.output_key()?.to_string(),
                o.output_value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

/// Snapshot the stack as it is before this run changes it: its template (stored in S3 beside
/// the run) and its parameters and tags.
async fn snapshot(
    ctx: &Ctx,
    run: &RunContext,
    store: &RunStore,
    current: &Stack,
) -> Result<Snapshot, Error> {
    let stack = current.stack_name().unwrap_or_default();
    let template = ctx
        .clients
        .cfn
        .get_template()
        .stack_name(stack)
        .template_stage(TemplateStage::Original)
        .send()
        .await
        .map_err(|e| aws_error("cloudformation:GetTemplate", e))?;
    let template_key = snapshot_key(run, stack);
    let body = template
        .template_body()
        .unwrap_or_default()
        .as_bytes()
        .to_vec();
    store.put_bytes(&template_key, body, "text/plain").await?;
    let parameters: Vec<(String, String)> = current
        .parameters()
        .iter()
        .filter_map(|p| {
            Some((
                p.parameter_key()?.to_string(),
                p.parameter_value().unwrap_or_default().to_string(),
            ))
        })
        .collect();
    let tags = current
        .tags()
        .iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect();
    // The SSM sources of its NoEcho parameters, as the last run that deployed it recorded them.
    let previous: Vec<SecretRef> = match store.get_bytes(&run.secret_sources_key(stack)).await? {
        Some(body) => serde_json::from_slice(&body).unwrap_or_else(|e| {
            tracing::warn!(stack = %stack, error = %e, "unreadable secret sources: NoEcho parameters keep this run's value on rollback");
            Vec::new()
        }),
        None => Vec::new(),
    };
    let secrets = secret::masked_sources(&parameters, previous);
    tracing::info!(stack = %stack, key = %template_key, "snapshot taken");
    Ok(Snapshot {
        template_key,
        parameters,
        tags,
        secrets,
    })
}

/// Where a stack's pre-run template is kept.
pub fn snapshot_key(run: &RunContext, stack: &str) -> String {
    format!("{}snapshots/{stack}.template", run.run_prefix)
}

/// The template's URL for CloudFormation. `template` is the plan's S3 key in the run's bucket
/// (or an `s3://bucket/key` URI). With an endpoint override (the emulator) the URL is path
/// style, `<endpoint>/<bucket>/<key>`; on AWS it is `https://<bucket>.s3.<region>.amazonaws.com/<key>`.
pub fn template_url(
    endpoint: Option<&str>,
    region: Option<&str>,
    bucket: &str,
    template: &str,
) -> String {
    let (bucket, key) = match template
        .strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
    {
        Some((b, k)) => (b, k),
        None => (bucket, template.trim_start_matches('/')),
    };
    let key = encode_key(key);
    match (endpoint, region) {
        (Some(ep), _) => format!("{}/{bucket}/{key}", ep.trim_end_matches('/')),
        (None, Some(r)) => format!("https://{bucket}.s3.{r}.amazonaws.com/{key}"),
        (None, None) => format!("https://{bucket}.s3.amazonaws.com/{key}"),
    }
}

/// Percent-encode an S3 key for a URL, keeping `/` between segments.
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What CreateChangeSet did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeSetStarted {
    /// The change set is being created (or was, by an earlier try with the same token).
    Started,
    /// The emulator's form of "no changes": a ValidationError instead of a FAILED change set.
    NoChanges,
}

/// CreateChangeSet for the planned stack with the record's resolved parameters and its secrets'
/// values. The change set's name is its ClientToken, so a retry makes no second change set.
pub async fn create_change_set(
    ctx: &Ctx,
    run: &RunContext,
    planned: &PlannedStack,
    record: &StackRecord,
    change_set_type: ChangeSetType,
) -> Result<ChangeSetStarted, Error> {
    let stack = planned.name.as_str();
    let change_set_name = record.change_set_name.as_str();
    let secrets = secrets::values(&ctx.clients.ssm, stack, &record.secrets).await?;
    let region = ctx
        .clients
        .cfn
        .config()
        .region()
        .map(|r| r.as_ref().to_string());
    let url = template_url(
        ctx.config.endpoint_url.as_deref(),
        region.as_deref(),
        &run.bucket,
        &planned.template,
    );
    let params = record
        .parameters
        .iter()
        .chain(&secrets)
        .map(|(k, v)| {
            Parameter::builder()
                .parameter_key(k)
                .parameter_value(v)
                .build()
        })
        .collect();
    let tags = planned
        .tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    let capabilities = planned
        .capabilities
        .iter()
        .map(|c| Capability::from(c.as_str()))
        .collect();
    let result = ctx
        .clients
        .cfn
        .create_change_set()
        .stack_name(stack)
        .change_set_name(change_set_name)
        .client_token(change_set_name)
        .change_set_type(change_set_type.clone())
        .template_url(&url)
        .set_parameters(Some(params))
        .set_tags(Some(tags))
        .set_capabilities(Some(capabilities))
        .set_role_arn(ctx.config.cfn_role_arn.clone())
        .description(format!("stackwave {}", run.execution_name))
        .send()
        .await;
    match result {
        Ok(out) => {
            tracing::info!(stack = %stack, change_set = %change_set_name, kind = %change_set_type.as_str(), id = ?out.id(), url = %url, "change set requested");
            Ok(ChangeSetStarted::Started)
        }
        Err(e) => match e.as_service_error() {
            Some(se) if se.is_already_exists_exception() => {
                tracing::info!(stack = %stack, change_set = %change_set_name, "change set exists already: an earlier try made it");
                Ok(ChangeSetStarted::Started)
            }
            // The emulator answers an update without changes with this ValidationError; its
            // message is the only thing that tells it from other validation errors.
            Some(se)
                if se.code() == Some("ValidationError")
                    && se.message().is_some_and(reconcile::is_no_change_reason) =>
            {
                tracing::info!(stack = %stack, change_set = %change_set_name, "no changes");
                Ok(ChangeSetStarted::NoChanges)
            }
            _ => Err(aws_error("cloudformation:CreateChangeSet", e)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_url_forms() {
        assert_eq!(
            template_url(
                Some("http://127.0.0.1:4566/"),
                Some("us-east-1"),
                "art",
                "deployments/dev/t/templates/net.yaml"
            ),
            "http://127.0.0.1:4566/art/deployments/dev/t/templates/net.yaml"
        );
        assert_eq!(
            template_url(None, Some("eu-west-1"), "art", "deployments/dev/t/net.yaml"),
            "https://art.s3.eu-west-1.amazonaws.com/deployments/dev/t/net.yaml"
        );
        assert_eq!(
            template_url(None, None, "art", "k.yaml"),
            "https://art.s3.amazonaws.com/k.yaml"
        );
        assert_eq!(
            template_url(None, Some("us-east-1"), "art", "s3://other/a b+c.yaml"),
            "https://other.s3.us-east-1.amazonaws.com/a%20b%2Bc.yaml"
        );
    }
}
