//! Bad input gets a clear error, and nothing is deployed.

use std::time::Duration;

use anyhow::Result;
use serde_json::json;
use stackwave_e2e::{
    invalid_manifest_cause, local, stackwave_bin, synthetic_dir, unique_env, TempDir,
};

/// A manifest whose two stacks depend on each other, with a real template beside it.
fn cycle_dir() -> Result<TempDir> {
    synthetic_dir(
        "cycle",
        r#"name: cyclic
stages:
  - name: only
    stacks:
      - name: Alpha-${environment}
        template: templates/unit.yaml
        parameters:
          Upstream: {output: "Beta-${environment}.Id"}
      - name: Beta-${environment}
        template: templates/unit.yaml
        dependsOn: ["Alpha-${environment}"]
"#,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cycle_fails_the_execution_with_invalid_manifest_naming_the_cycle() -> Result<()> {
    let local = local().await?;
    let environment = unique_env("cy");
    let dir = cycle_dir()?;
    // Straight to the state machine (the CLI would refuse it before uploading).
    let exec = local.run_dir(dir.path(), &environment, "cycle").await?;
    let cause = invalid_manifest_cause(&exec);
    let alpha = format!("Alpha-{environment}");
    let beta = format!("Beta-{environment}");
    assert!(
        cause.contains(&format!("{alpha} -> {beta} -> {alpha}"))
            || cause.contains(&format!("{beta} -> {alpha} -> {beta}")),
        "the cause does not print the cycle path: {cause}"
    );
    // Nothing was deployed.
    assert!(local.stacks_of(&environment).await?.is_empty());
    // The rejection is alerted, filterable by environment.
    let env2 = environment.clone();
    let alert = local
        .wait_alert(Duration::from_secs(90), move |m| {
            m["MessageAttributes"]["environment"]["Value"] == env2.as_str()
        })
        .await?;
    assert_eq!(alert["MessageAttributes"]["status"]["Value"], "REJECTED");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_input_field_fails_with_invalid_input_showing_the_accepted_shape() -> Result<()> {
    let local = local().await?;
    let environment = unique_env("in");
    let exec = local
        .run_execution(
            &format!("{environment}-input"),
            &json!({"environment": environment, "manifestUrl": "s3://nowhere/manifest.yaml"}),
            Duration::from_secs(60),
        )
        .await?;
    assert_eq!(exec.status, "FAILED");
    assert_eq!(exec.error.as_deref(), Some("InvalidInput"), "{exec:?}");
    let cause = exec.cause.unwrap_or_default();
    assert!(
        cause.contains("manifestUrl"),
        "the cause does not name the wrong field: {cause}"
    );
    assert!(
        cause.contains("environment") && cause.contains("manifest"),
        "the cause does not show the accepted shape: {cause}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_refuses_an_invalid_manifest_before_uploading_with_exit_code_2() -> Result<()> {
    let local = local().await?;
    let environment = unique_env("cl");
    let dir = cycle_dir()?;
    let out = std::process::Command::new(stackwave_bin())
        .arg("deploy")
        .arg(dir.path())
        .args(["--environment", &environment, "--local"])
        .env("STACKWAVE_LOCAL_ENDPOINT", &local.env.endpoint)
        .output()?;
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("cycle") && text.contains(&format!("Alpha-{environment}")),
        "{text}"
    );
    // No execution was started for it.
    let started = local.executions_of(&environment).await?;
    assert!(started.is_empty(), "an execution was started: {started:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn parameters_the_templates_do_not_declare_or_require_are_refused_before_any_change(
) -> Result<()> {
    let local = local().await?;
    let environment = unique_env("tp");
    let dir = synthetic_dir(
        "template-params",
        "name: params\nstages:\n  - name: only\n    stacks:\n      - name: Typo-${environment}\n        template: templates/unit.yaml\n        parameters:\n          Upstreem: none\n      - name: Needs-${environment}\n        template: templates/needs.yaml\n",
    )?;
    std::fs::write(
        dir.path().join("templates/needs.yaml"),
        "Parameters:\n  Required:\n    Type: String\nResources:\n  Unit:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Type: String\n      Value: !Ref Required\n",
    )?;
    let typo = format!("Typo-{environment}");
    let needs = format!("Needs-{environment}");
    let expect_both = |text: &str| {
        assert!(
            text.contains(&typo)
                && text.contains("declares no parameter Upstreem")
                && text.contains(&needs)
                && text.contains("requires parameter Required"),
            "{text}"
        );
    };

    // The CLI refuses it locally, exit code 2.
    let out = std::process::Command::new(stackwave_bin())
        .arg("validate")
        .arg(dir.path())
        .args(["--environment", &environment])
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    expect_both(&format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ));

    // The plan function refuses it the same way, listing both.
    let exec = local.run_dir(dir.path(), &environment, "params").await?;
    expect_both(&invalid_manifest_cause(&exec));
    assert!(local.stacks_of(&environment).await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_that_could_outgrow_the_execution_history_is_refused_before_the_lock_with_the_fix(
) -> Result<()> {
    let local = local().await?;
    let environment = unique_env("hx");
    // One stack with a day's timeout and 1-s fallback polls: 345,600 polls in the worst case,
    // more segments of 500 events than the parent execution's history can hold tasks for.
    let dir = stackwave_e2e::synthetic_dir(
        "history",
        "name: hx\nstages:\n  - name: one\n    stacks:\n      - name: Long-${environment}\n        template: templates/unit.yaml\n        timeoutMinutes: 1440\n",
    )?;
    let uri = local
        .upload_dir(dir.path(), &format!("tests/{environment}"))
        .await?;
    let exec = local
        .run_execution(
            &format!("{environment}-history"),
            &serde_json::json!({"manifest": uri, "environment": environment,
                                "fallbackPollSeconds": 1, "segmentEvents": 500}),
            std::time::Duration::from_secs(120),
        )
        .await?;
    let cause = invalid_manifest_cause(&exec);
    assert!(
        cause.contains("1 stacks at up to")
            && cause.contains("345600 fallback polls")
            && cause.contains("history events"),
        "the cause does not name the stacks, the polls and the history: {cause}"
    );
    assert!(
        cause.contains("raise fallbackPollSeconds to at least")
            && cause.contains("raise segmentEvents"),
        "the cause does not give the fixes: {cause}"
    );
    // Nothing was deployed and the environment is not locked.
    assert!(local.stacks_of(&environment).await?.is_empty());
    assert!(local.lock_is_free(&environment).await?);
    Ok(())
}

/// Issue 14 §6: a Catch cannot add `$.error` to an input that is not an object; on AWS such an
/// execution failed `States.Runtime` with no alert. Both shapes get InvalidInput and the alert.
#[tokio::test(flavor = "multi_thread")]
async fn an_execution_started_with_a_string_or_a_list_is_rejected_with_invalid_input_and_an_alert(
) -> Result<()> {
    let local = local().await?;
    let environment = unique_env("nob");
    for (suffix, input) in [("string", json!("hello")), ("list", json!([]))] {
        let exec = local
            .run_execution(
                &format!("{environment}-{suffix}"),
                &input,
                Duration::from_secs(60),
            )
            .await?;
        assert_eq!(exec.status, "FAILED", "{exec:?}");
        assert_eq!(exec.error.as_deref(), Some("InvalidInput"), "{exec:?}");
        let cause = exec.cause.clone().unwrap_or_default();
        assert!(cause.contains("JSON object"), "{cause}");
        let arn = exec.arn.clone();
        let alert = local
            .wait_alert(Duration::from_secs(30), move |m| {
                m["MessageAttributes"]["status"]["Value"] == "REJECTED"
                    && m["Message"].as_str().is_some_and(|t| t.contains(&arn))
            })
            .await?;
        assert!(
            alert["Message"]
                .as_str()
                .is_some_and(|t| t.contains("InvalidInput")),
            "{alert:#}"
        );
    }
    Ok(())
}
