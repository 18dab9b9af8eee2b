//! The EventBridge triggers, end to end: an S3 upload of a manifest and a custom "Deployment
//! Requested" event start the real state machine, and a twice-delivered event deploys once.
//!
//! The two rules are created on the emulator from `template.yaml`'s own event patterns (only
//! `!Ref ArtifactBucket` is resolved), targeting the local state machine, and the artifact bucket
//! sends its events to EventBridge, as the template configures it.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use aws_sdk_s3::types::{EventBridgeConfiguration, NotificationConfiguration};
use serde_json::{json, Value};
use stackwave_e2e::{local, repo_root, unique_env, Execution, Local, TempDir};

const EXECUTION_TIMEOUT: Duration = Duration::from_secs(240);
/// Role ARN given to the targets (the template's StartExecutionRole; the emulator does not check it).
const START_EXECUTION_ROLE: &str = "arn:aws:iam::123456789012:role/stackwave-start-execution";

/// Three synthetic stacks in two stages.
const MANIFEST: &str = r#"name: triggered
stages:
  - name: first
    stacks:
      - name: TrgA-${environment}
        template: templates/unit.yaml
      - name: TrgB-${environment}
        template: templates/unit.yaml
  - name: second
    stacks:
      - name: TrgC-${environment}
        template: templates/unit.yaml
        parameters:
          Upstream: {output: "TrgA-${environment}.Id"}
"#;

/// The manifest and its template in a temporary directory.
fn manifest_dir() -> Result<TempDir> {
    let dir = TempDir::new("trigger")?;
    std::fs::create_dir_all(dir.path().join("templates"))?;
    std::fs::copy(
        repo_root().join("examples/synthetic/templates/unit.yaml"),
        dir.path().join("templates/unit.yaml"),
    )?;
    std::fs::write(dir.path().join("manifest.yaml"), MANIFEST)?;
    Ok(dir)
}

fn stack_names(environment: &str) -> Vec<String> {
    ["TrgA", "TrgB", "TrgC"]
        .iter()
        .map(|s| format!("{s}-{environment}"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// EventBridge on the emulator (its JSON API; the tests crate has no EventBridge SDK).
// ---------------------------------------------------------------------------------------------

/// A CloudFormation YAML value as JSON, with `!Ref ArtifactBucket` resolved to `bucket`.
fn resolve(value: &serde_yaml::Value, bucket: &str) -> Result<Value> {
    Ok(match value {
        serde_yaml::Value::Null => Value::Null,
        serde_yaml::Value::Bool(b) => json!(b),
        serde_yaml::Value::Number(n) => serde_json::to_value(n)?,
        serde_yaml::Value::String(s) => json!(s),
        serde_yaml::Value::Sequence(items) => Value::Array(
            items
                .iter()
                .map(|v| resolve(v, bucket))
                .collect::<Result<_>>()?,
        ),
        serde_yaml::Value::Mapping(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                let key = k
                    .as_str()
                    .ok_or_else(|| anyhow!("non-string key {k:?} in an event pattern"))?;
                out.insert(key.to_string(), resolve(v, bucket)?);
            }
            Value::Object(out)
        }
        serde_yaml::Value::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            match (tag.as_str(), tagged.value.as_str()) {
                ("!Ref", Some("ArtifactBucket")) => json!(bucket),
                _ => bail!(
                    "cannot resolve {tag} {:?} in an event pattern",
                    tagged.value
                ),
            }
        }
    })
}

/// `template.yaml`'s EventPattern of a rule resource.
fn template_pattern(resource: &str, bucket: &str) -> Result<Value> {
    let text = std::fs::read_to_string(repo_root().join("template.yaml"))?;
    let template: serde_yaml::Value = serde_yaml::from_str(&text)?;
    let pattern = template
        .get("Resources")
        .and_then(|r| r.get(resource))
        .and_then(|r| r.get("Properties"))
        .and_then(|p| p.get("EventPattern"))
        .ok_or_else(|| anyhow!("template.yaml has no {resource}.Properties.EventPattern"))?;
    resolve(pattern, bucket)
}

/// The template's two rules targeting the local state machine, and the artifact bucket's
/// EventBridge notifications. Idempotent (PutRule and PutTargets replace), so tests running at
/// once may all call it.
async fn install_triggers(local: &Local) -> Result<()> {
    local
        .s3
        .put_bucket_notification_configuration()
        .bucket(&local.env.bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .event_bridge_configuration(EventBridgeConfiguration::builder().build())
                .build(),
        )
        .send()
        .await
        .context("s3:PutBucketNotificationConfiguration")?;
    for (rule, resource) in [
        ("stackwave-manifest-uploaded", "ManifestUploadedRule"),
        ("stackwave-deployment-requested", "DeploymentRequestedRule"),
    ] {
        let pattern = template_pattern(resource, &local.env.bucket)?;
        local
            .events(
                "PutRule",
                &json!({"Name": rule, "EventPattern": pattern.to_string(), "State": "ENABLED"}),
            )
            .await?;
        let answer = local
            .events(
                "PutTargets",
                &json!({"Rule": rule, "Targets": [{
                    "Id": "deploy-state-machine",
                    "Arn": local.env.state_machine_arn,
                    "RoleArn": START_EXECUTION_ROLE,
                }]}),
            )
            .await?;
        if answer["FailedEntryCount"].as_u64().unwrap_or(0) != 0 {
            bail!("events:PutTargets failed: {answer}");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------------------

/// Execution ARNs of the state machine.
async fn execution_arns(local: &Local) -> Result<HashSet<String>> {
    let mut out = HashSet::new();
    let mut token: Option<String> = None;
    loop {
        let page = local
            .sfn
            .list_executions()
            .state_machine_arn(&local.env.state_machine_arn)
            .set_next_token(token.take())
            .send()
            .await
            .context("ListExecutions")?;
        out.extend(
            page.executions()
                .iter()
                .map(|e| e.execution_arn().to_string()),
        );
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// Executions started by something else (EventBridge) whose input mentions `needle`: waits
/// until at least one exists, then `settle` longer for others, and returns (ARN, input) pairs.
async fn started_by_event(
    local: &Local,
    before: &HashSet<String>,
    needle: &str,
    settle: Duration,
) -> Result<Vec<(String, Value)>> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut found: Vec<(String, Value)> = Vec::new();
    let mut seen: HashSet<String> = before.clone();
    let mut settle_until: Option<std::time::Instant> = None;
    loop {
        for arn in execution_arns(local).await? {
            if !seen.insert(arn.clone()) {
                continue;
            }
            let described = local
                .sfn
                .describe_execution()
                .execution_arn(&arn)
                .send()
                .await
                .context("DescribeExecution")?;
            let input: Value = serde_json::from_str(described.input().unwrap_or("null"))?;
            if input.to_string().contains(needle) {
                found.push((arn, input));
            }
        }
        let now = std::time::Instant::now();
        if !found.is_empty() && settle_until.is_none() {
            settle_until = Some(now + settle);
        }
        if settle_until.is_some_and(|t| now >= t) {
            return Ok(found);
        }
        if found.is_empty() && now > deadline {
            bail!("no execution with {needle:?} in its input started within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Every stack deployed once, to CREATE_COMPLETE: one change set and one create each, no update.
async fn assert_deployed_once(local: &Local, environment: &str) -> Result<()> {
    let stacks = local.stacks_of(environment).await?;
    let mut names: Vec<String> = stacks
        .iter()
        .filter_map(|s| s.stack_name().map(str::to_string))
        .collect();
    names.sort();
    assert_eq!(names, stack_names(environment), "stacks of {environment}");
    for stack in &stacks {
        assert_eq!(
            stack.stack_status().map(|s| s.as_str()),
            Some("CREATE_COMPLETE"),
            "{:?}",
            stack.stack_name()
        );
    }
    for name in stack_names(environment) {
        let events = local.stack_events(&name).await?;
        let starts: Vec<&str> = events
            .iter()
            .filter(|e| e.logical_resource_id() == Some(name.as_str()))
            .filter_map(|e| e.resource_status().map(|s| s.as_str()))
            .filter(|s| s.ends_with("_IN_PROGRESS") && !s.contains("CLEANUP"))
            .collect();
        // A CREATE change set: REVIEW_IN_PROGRESS, then CREATE_IN_PROGRESS on execution.
        assert_eq!(
            starts,
            vec!["REVIEW_IN_PROGRESS", "CREATE_IN_PROGRESS"],
            "{name} was touched more than once"
        );
    }
    Ok(())
}

async fn ssm_value(local: &Local, name: &str) -> Result<String> {
    let out = local
        .ssm
        .get_parameter()
        .name(name)
        .send()
        .await
        .with_context(|| format!("ssm:GetParameter {name}"))?;
    out.parameter()
        .and_then(|p| p.value())
        .map(str::to_string)
        .ok_or_else(|| anyhow!("{name} has no value"))
}

/// Names of the states an execution entered.
async fn entered_states(local: &Local, arn: &str) -> Result<Vec<String>> {
    Ok(local
        .history(arn)
        .await?
        .iter()
        .filter_map(|e| e.state_entered_event_details())
        .map(|d| d.name().to_string())
        .collect())
}

fn custom_event(id: &str, detail: Value) -> Value {
    json!({
        "version": "0",
        "id": id,
        "detail-type": "Deployment Requested",
        "source": "stackwave",
        "account": "123456789012",
        "time": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "region": "us-east-1",
        "resources": [],
        "detail": detail
    })
}

fn event_id() -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        fastrand::u32(..),
        fastrand::u16(..),
        fastrand::u16(..0x1000),
        fastrand::u16(..0x1000),
        fastrand::u64(..0x1_0000_0000_0000)
    )
}

async fn upload_file(local: &Local, path: &Path, key: &str) -> Result<()> {
    local
        .s3
        .put_object()
        .bucket(&local.env.bucket)
        .key(key)
        .body(std::fs::read(path)?.into())
        .send()
        .await
        .with_context(|| format!("upload {key}"))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn uploading_a_manifest_under_manifests_env_starts_a_deployment() -> Result<()> {
    let local = local().await?;
    install_triggers(&local).await?;
    let environment = unique_env("up");
    let dir = manifest_dir()?;
    let prefix = format!("manifests/{environment}/release-1");
    let before = execution_arns(&local).await?;

    // The template first: only the manifest's upload may start the run, and it must find it.
    upload_file(
        &local,
        &dir.path().join("templates/unit.yaml"),
        &format!("{prefix}/templates/unit.yaml"),
    )
    .await?;
    upload_file(
        &local,
        &dir.path().join("manifest.yaml"),
        &format!("{prefix}/manifest.yaml"),
    )
    .await?;

    let started = started_by_event(
        &local,
        &before,
        &format!("{prefix}/manifest.yaml"),
        Duration::from_secs(2),
    )
    .await?;
    assert_eq!(
        started.len(),
        1,
        "one upload, one execution (the template upload matched no rule): {started:?}"
    );
    let (arn, event) = &started[0];
    assert_eq!(event["source"], "aws.s3", "{event}");
    assert_eq!(event["detail-type"], "Object Created", "{event}");
    // The artifact bucket is versioned (as in template.yaml): the plan reads this version.
    let version = event["detail"]["object"]["version-id"]
        .as_str()
        .unwrap_or_default();
    assert!(!version.is_empty() && version != "null", "{event}");
    let exec = local.wait_execution(arn, EXECUTION_TIMEOUT).await?;
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    assert_deployed_once(&local, &environment).await?;

    let uri = format!("s3://{}/{prefix}/manifest.yaml", local.env.bucket);
    assert_eq!(
        ssm_value(&local, &format!("/stackwave/{environment}/manifest-uri")).await?,
        uri,
        "the S3 trigger keeps the environment's manifest location up to date"
    );

    // EventBridge delivers the same event again: the redelivery deploys nothing.
    let again = local
        .run_execution(
            &format!("{environment}-redelivered"),
            event,
            EXECUTION_TIMEOUT,
        )
        .await?;
    assert_duplicate_of(&local, &again, arn).await?;
    assert_deployed_once(&local, &environment).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_custom_event_envelope_given_as_execution_input_deploys() -> Result<()> {
    let local = local().await?;
    let environment = unique_env("ce");
    let dir = manifest_dir()?;
    let uri = local
        .upload_dir(dir.path(), &format!("deployments/{environment}/t1"))
        .await?;
    let id = event_id();
    let envelope = custom_event(
        &id,
        json!({"manifest": uri, "environment": environment, "pollSeconds": {"min": 1, "max": 2}}),
    );

    let exec = local
        .run_execution(
            &format!("{environment}-custom"),
            &envelope,
            EXECUTION_TIMEOUT,
        )
        .await?;

    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    assert_deployed_once(&local, &environment).await?;
    assert_eq!(
        ssm_value(
            &local,
            &format!("/stackwave/{environment}/events/event-{id}")
        )
        .await?,
        exec.arn,
        "the event is claimed by the execution that deployed it"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn put_events_with_a_deployment_requested_event_deploys() -> Result<()> {
    let local = local().await?;
    install_triggers(&local).await?;
    let environment = unique_env("pe");
    let dir = manifest_dir()?;
    let uri = local
        .upload_dir(dir.path(), &format!("deployments/{environment}/t1"))
        .await?;
    let before = execution_arns(&local).await?;

    // What CI sends: `aws events put-events --entries '[{"Source": "stackwave", ...}]'`.
    let answer = local.events(
        "PutEvents",
        &json!({"Entries": [{
            "Source": "stackwave",
            "DetailType": "Deployment Requested",
            "Detail": json!({"manifest": uri, "environment": environment, "pollSeconds": {"min": 1, "max": 2}}).to_string(),
        }]}),
    )
    .await?;
    assert_eq!(answer["FailedEntryCount"], 0, "{answer}");
    let event_id = answer["Entries"][0]["EventId"]
        .as_str()
        .ok_or_else(|| anyhow!("no EventId in {answer}"))?
        .to_string();

    let started = started_by_event(&local, &before, &uri, Duration::from_secs(2)).await?;
    assert_eq!(started.len(), 1, "{started:?}");
    let (arn, event) = &started[0];
    assert_eq!(event["id"], event_id.as_str(), "{event}");
    let exec = local.wait_execution(arn, EXECUTION_TIMEOUT).await?;
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    assert_deployed_once(&local, &environment).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_event_delivered_twice_deploys_once() -> Result<()> {
    let local = local().await?;
    let environment = unique_env("dup");
    let dir = manifest_dir()?;
    let uri = local
        .upload_dir(dir.path(), &format!("deployments/{environment}/t1"))
        .await?;
    let envelope = custom_event(
        &event_id(),
        json!({"manifest": uri, "environment": environment, "pollSeconds": {"min": 1, "max": 2}}),
    );

    // Two deliveries at once, each an execution with its own name, as EventBridge starts them.
    let mut arns = Vec::new();
    for n in 1..=2 {
        let started = local
            .sfn
            .start_execution()
            .state_machine_arn(&local.env.state_machine_arn)
            .name(format!("{environment}-delivery-{n}"))
            .input(envelope.to_string())
            .send()
            .await
            .context("StartExecution")?;
        arns.push(started.execution_arn().to_string());
    }
    let mut ended: Vec<Execution> = Vec::new();
    for arn in &arns {
        ended.push(local.wait_execution(arn, EXECUTION_TIMEOUT).await?);
    }

    let succeeded: Vec<&Execution> = ended.iter().filter(|e| e.status == "SUCCEEDED").collect();
    let duplicates: Vec<&Execution> = ended.iter().filter(|e| e.status != "SUCCEEDED").collect();
    assert_eq!(
        succeeded.len(),
        1,
        "exactly one delivery deploys: {ended:?}"
    );
    assert_eq!(duplicates.len(), 1, "{ended:?}");
    assert_duplicate_of(&local, duplicates[0], &succeeded[0].arn).await?;
    assert_deployed_once(&local, &environment).await?;
    Ok(())
}

/// `dup` failed with DuplicateEvent naming `first`, went straight from Plan to the Duplicate
/// state, deployed nothing and sent no alert.
async fn assert_duplicate_of(local: &Local, dup: &Execution, first: &str) -> Result<()> {
    assert_eq!(dup.status, "FAILED", "{dup:?}");
    assert_eq!(dup.error.as_deref(), Some("DuplicateEvent"), "{dup:?}");
    let cause = dup.cause.clone().unwrap_or_default();
    assert!(
        cause.contains(first),
        "the cause names the execution that handled the event: {cause}"
    );
    assert!(cause.contains("deployed nothing"), "{cause}");
    let states = entered_states(local, &dup.arn).await?;
    assert_eq!(states, vec!["Plan", "Duplicate"], "{states:?}");
    Ok(())
}

/// Issue 14 §7: the CLI on real AWS finds an installed stackwave from the SSM parameters
/// template.yaml writes, when it is given no bucket or state machine; what it is given wins.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_finds_the_installation_from_ssm_when_not_given_a_bucket_or_state_machine(
) -> Result<()> {
    use stackwave_core::manifest::{INSTALLED_BUCKET_PARAMETER, INSTALLED_STATE_MACHINE_PARAMETER};
    let local = local().await?;
    let template = std::fs::read_to_string(repo_root().join("template.yaml"))?;
    for name in [
        INSTALLED_BUCKET_PARAMETER,
        INSTALLED_STATE_MACHINE_PARAMETER,
    ] {
        assert!(
            template.contains(&format!("Name: {name}\n")),
            "template.yaml writes no {name}"
        );
    }
    let ssm = &local.ssm;
    let from = stackwave_cli::aws::from_installation;
    for name in [
        INSTALLED_BUCKET_PARAMETER,
        INSTALLED_STATE_MACHINE_PARAMETER,
    ] {
        let _ = ssm.delete_parameter().name(name).send().await;
    }
    assert_eq!(
        from(ssm, None, None).await,
        (None, None),
        "nothing installed"
    );

    let arn = stackwave_cli::local::state_machine_arn();
    let bucket = stackwave_cli::local::BUCKET.to_string();
    for (name, value) in [
        (INSTALLED_BUCKET_PARAMETER, &bucket),
        (INSTALLED_STATE_MACHINE_PARAMETER, &arn),
    ] {
        ssm.put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .context("PutParameter")?;
    }
    let found = from(ssm, None, None).await;
    let given = from(ssm, Some("given-bucket".into()), None).await;
    for name in [
        INSTALLED_BUCKET_PARAMETER,
        INSTALLED_STATE_MACHINE_PARAMETER,
    ] {
        let _ = ssm.delete_parameter().name(name).send().await;
    }
    assert_eq!(found, (Some(bucket), Some(arn.clone())));
    assert_eq!(given, (Some("given-bucket".to_string()), Some(arn)));
    Ok(())
}
