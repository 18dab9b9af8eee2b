//! An execution stopped with StopExecution (or past a Step Functions limit) ends outside the
//! state machine's own path. template.yaml's ExecutionEndedRule sends its status event to the
//! notify function, which writes the summary (every stack, those in flight with their live
//! status), releases the lock and alerts ABORTED; `stackwave deploy` exits 1 with it.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use stackwave_e2e::{
    cli_deploy_command, local, repo_root, summary_row, synthetic_dir, unique_env, Local,
};

/// The local notify function, as the gateway serves it.
const NOTIFY_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:stackwave-notify";

/// A CloudFormation YAML value as JSON, `!Ref DeployStateMachine` being `state_machine`.
fn resolve(value: &serde_yaml::Value, state_machine: &str) -> Result<Value> {
    Ok(match value {
        serde_yaml::Value::Tagged(t)
            if t.tag == "!Ref" && t.value.as_str() == Some("DeployStateMachine") =>
        {
            json!(state_machine)
        }
        serde_yaml::Value::Tagged(t) => bail!("unexpected {} in the rule's pattern", t.tag),
        serde_yaml::Value::Sequence(items) => Value::Array(
            items
                .iter()
                .map(|v| resolve(v, state_machine))
                .collect::<Result<_>>()?,
        ),
        serde_yaml::Value::Mapping(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    Ok((
                        k.as_str().unwrap_or_default().to_string(),
                        resolve(v, state_machine)?,
                    ))
                })
                .collect::<Result<_>>()?,
        ),
        other => serde_json::to_value(other)?,
    })
}

/// template.yaml's ExecutionEndedRule on the local bus, targeting the local notify function.
/// Idempotent (PutRule and PutTargets replace).
async fn install_ended_rule(local: &Local) -> Result<()> {
    let text = std::fs::read_to_string(repo_root().join("template.yaml"))?;
    let template: serde_yaml::Value = serde_yaml::from_str(&text)?;
    let pattern = template["Resources"]["ExecutionEndedRule"]["Properties"]
        .get("EventPattern")
        .ok_or_else(|| {
            anyhow!("template.yaml has no ExecutionEndedRule.Properties.EventPattern")
        })?;
    let pattern = resolve(pattern, &local.env.state_machine_arn)?;
    local
        .events(
            "PutRule",
            &json!({"Name": "stackwave-execution-ended", "EventPattern": pattern.to_string(), "State": "ENABLED"}),
        )
        .await?;
    let answer = local
        .events(
            "PutTargets",
            &json!({"Rule": "stackwave-execution-ended", "Targets": [{"Id": "notify", "Arn": NOTIFY_ARN}]}),
        )
        .await?;
    if answer["FailedEntryCount"].as_u64().unwrap_or(0) != 0 {
        bail!("events:PutTargets failed: {answer}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_execution_is_summarised_unlocked_and_alerted_with_what_was_in_flight(
) -> Result<()> {
    let local = local().await?;
    install_ended_rule(&local).await?;
    let env = unique_env("ab");
    let slow = format!("Slow-{env}");
    let dir = synthetic_dir(
        "stopped",
        "name: stopped\nstages:\n  - name: only\n    stacks:\n      - name: Slow-${environment}\n        template: templates/unit.yaml\n  - name: later\n    stacks:\n      - name: Later-${environment}\n        template: templates/unit.yaml\n",
    )?;
    local
        .fault(json!({"kind": "hang", "stack": slow, "on": "create", "seconds": 600}))
        .await?;
    let cli = cli_deploy_command(dir.path(), &env)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;

    // Stop the execution once the slow stack's create runs.
    local
        .wait_status(&slow, &["CREATE_IN_PROGRESS"], Duration::from_secs(90))
        .await?;
    let running = local
        .sfn
        .list_executions()
        .state_machine_arn(&local.env.state_machine_arn)
        .status_filter(aws_sdk_sfn::types::ExecutionStatus::Running)
        .send()
        .await?;
    let arn = running
        .executions()
        .iter()
        .find(|e| e.name().starts_with(&env))
        .map(|e| e.execution_arn().to_string())
        .context("the deploy's execution is running")?;
    local
        .sfn
        .stop_execution()
        .execution_arn(&arn)
        .send()
        .await?;

    // The CLI exits 1 with the summary notify wrote.
    let out = tokio::task::spawn_blocking(move || cli.wait_with_output()).await??;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim()).with_context(|| stdout.clone())?;
    let row = summary_row(&report, &slow);
    assert_eq!(row["action"], "in_progress", "{report:#}");
    assert!(
        row["reason"].as_str().unwrap_or_default().contains(
            "in flight when the execution ended: CloudFormation status CREATE_IN_PROGRESS"
        ),
        "{report:#}"
    );
    assert_eq!(
        summary_row(&report, &format!("Later-{env}"))["action"],
        "not_started"
    );
    assert!(
        report.to_string().contains("ExecutionAborted"),
        "the summary does not say the execution was stopped: {report:#}"
    );

    // The alert: ABORTED, naming the environment, the execution and what was in flight.
    let alert = local
        .wait_run_alert(&env, "ABORTED", Duration::from_secs(60))
        .await?;
    let subject = alert["Subject"].as_str().unwrap_or_default();
    assert!(
        subject.contains(&env)
            && subject.contains("ABORTED")
            && subject.contains("1 stack(s) in flight"),
        "{subject}"
    );
    let message = alert["Message"].as_str().unwrap_or_default();
    assert!(message.contains(&arn), "{message}");

    // The environment is free again.
    assert!(local.lock_is_free(&env).await?, "the lock is still held");
    Ok(())
}
