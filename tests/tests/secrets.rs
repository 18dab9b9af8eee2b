//! Secrets (`{ssm: ...}` SecureStrings): refused before any change unless they go into a NoEcho
//! template parameter, and never stored: not in S3, the execution history, alerts, logs or the
//! CLI's output. Records keep the SSM name and version.

use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_ssm::types::ParameterType;
use serde_json::json;
use stackwave_cli::local::{LocalConfig, LocalOptions, Process};
use stackwave_e2e::{
    cli_deploy, endpoint, invalid_manifest_cause, local, stackwave_bin, summary_row, unique_env,
    Local, TempDir,
};

/// A template whose `Password` is NoEcho (and copied into an SSM parameter of the stack, so the
/// test can see that CloudFormation got the value).
const NO_ECHO_TEMPLATE: &str = r#"AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  Password:
    Type: String
    NoEcho: true
  Release:
    Type: String
    Default: "1"
Resources:
  Copy:
    Type: AWS::SSM::Parameter
    Properties:
      Name: !Sub /e2e/${AWS::StackName}/copy
      Type: String
      Value: !Ref Password
      Description: !Sub release ${Release}
"#;

/// The same without `NoEcho`.
const VISIBLE_TEMPLATE: &str = r#"AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  Password:
    Type: String
Resources:
  Copy:
    Type: AWS::SSM::Parameter
    Properties:
      Name: !Sub /e2e/${AWS::StackName}/copy
      Type: String
      Value: !Ref Password
"#;

fn secrets_dir(prefix: &str, manifest: &str) -> Result<TempDir> {
    let dir = TempDir::new(prefix)?;
    std::fs::create_dir_all(dir.path().join("templates"))?;
    std::fs::write(dir.path().join("templates/no-echo.yaml"), NO_ECHO_TEMPLATE)?;
    std::fs::write(dir.path().join("templates/visible.yaml"), VISIBLE_TEMPLATE)?;
    std::fs::write(dir.path().join("manifest.yaml"), manifest)?;
    Ok(dir)
}

async fn put_secret(local: &Local, name: &str, value: &str) -> Result<i64> {
    let out = local
        .ssm
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .context("PutParameter")?;
    Ok(out.version())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secure_string_into_a_parameter_without_no_echo_is_refused_before_any_change(
) -> Result<()> {
    let local = local().await?;
    let env = unique_env("sx");
    let ssm = format!("/e2e/{env}/password");
    put_secret(&local, &ssm, &format!("pw-{env}-never-shown")).await?;
    let manifest = format!(
        "name: secrets\nstages:\n  - name: only\n    stacks:\n      - name: Shown-${{environment}}\n        template: templates/visible.yaml\n        parameters:\n          Password: {{ssm: \"{ssm}\"}}\n      - name: Hidden-${{environment}}\n        template: templates/no-echo.yaml\n        parameters:\n          Password: {{ssm: \"{ssm}\"}}\n"
    );
    let dir = secrets_dir("secret-refused", &manifest)?;
    let shown = format!("Shown-{env}");
    let hidden = format!("Hidden-{env}");

    // The CLI refuses it before uploading, exit code 2, naming stack, parameter and fix.
    let out = std::process::Command::new(stackwave_bin())
        .arg("deploy")
        .arg(dir.path())
        .args(["--environment", &env, "--local"])
        .env("STACKWAVE_LOCAL_ENDPOINT", endpoint())
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains(&shown)
            && text.contains("Password")
            && text.contains("NoEcho: true")
            && text.contains("resolve:ssm-secure"),
        "{text}"
    );
    assert!(
        !text.contains(&hidden),
        "the NoEcho stack is not refused: {text}"
    );
    let started = local.executions_of(&env).await?;
    assert!(
        started.is_empty(),
        "the CLI started an execution: {started:?}"
    );

    // Straight to the state machine: the plan function refuses it the same way.
    let exec = local.run_dir(dir.path(), &env, "secret").await?;
    let cause = invalid_manifest_cause(&exec);
    assert!(
        cause.contains(&format!("stack {shown}, parameters.Password.ssm"))
            && cause.contains(&format!("{ssm} is a SecureString")),
        "{cause}"
    );
    assert!(!cause.contains(&hidden), "{cause}");
    assert!(
        local.stacks_of(&env).await?.is_empty(),
        "a stack was deployed"
    );
    Ok(())
}

/// Every stored object of the artifact bucket (all versions) whose text contains `needle`.
async fn objects_containing(local: &Local, needle: &str) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let mut key_marker: Option<String> = None;
    let mut version_marker: Option<String> = None;
    loop {
        let page = local
            .s3
            .list_object_versions()
            .bucket(&local.env.bucket)
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(version_marker.clone())
            .send()
            .await
            .context("ListObjectVersions")?;
        for v in page.versions() {
            let (Some(key), Some(version)) = (v.key(), v.version_id()) else {
                continue;
            };
            let body = local
                .s3
                .get_object()
                .bucket(&local.env.bucket)
                .key(key)
                .version_id(version)
                .send()
                .await
                .with_context(|| format!("GetObject {key}"))?
                .body
                .collect()
                .await?
                .into_bytes();
            if String::from_utf8_lossy(&body).contains(needle) {
                found.push(format!("{key}@{version}"));
            }
        }
        if page.is_truncated() != Some(true) {
            return Ok(found);
        }
        key_marker = page.next_key_marker().map(str::to_string);
        version_marker = page.next_version_id_marker().map(str::to_string);
    }
}

/// Assert that none of `secrets` is anywhere stackwave writes: S3 (every object version), the
/// execution's history, the CLI's output, the run's alert and the handlers' logs.
async fn assert_never_stored(
    local: &Local,
    secrets: &[&str],
    execution_arn: &str,
    cli_output: &str,
) -> Result<()> {
    let history = format!("{:?}", local.run_history(execution_arn).await?);
    let arn = execution_arn.to_string();
    let alert = local
        .wait_alert(Duration::from_secs(60), move |m| {
            m.to_string().contains(&arn) && m.to_string().contains("finished")
        })
        .await?
        .to_string();
    let log = LocalConfig::resolve(&LocalOptions {
        endpoint: Some(endpoint()),
        ..Default::default()
    })?
    .log_file(Process::Gateway);
    let logs = std::fs::read_to_string(&log).with_context(|| format!("read {}", log.display()))?;
    assert!(!logs.is_empty(), "no handler logs at {}", log.display());
    for secret in secrets {
        let objects = objects_containing(local, secret).await?;
        assert!(objects.is_empty(), "a secret is stored in S3: {objects:?}");
        assert!(
            !history.contains(secret),
            "a secret is in the execution history"
        );
        assert!(!cli_output.contains(secret), "the CLI printed a secret");
        assert!(!alert.contains(secret), "the alert holds a secret");
        assert!(!logs.contains(secret), "the handlers logged a secret");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secure_string_reaches_cloudformation_masked_is_never_stored_and_is_restored_on_rollback(
) -> Result<()> {
    let local = local().await?;
    let env = unique_env("sv");
    let ssm = format!("/e2e/{env}/db-password");
    let first = format!("first-{env}-Zq8#secret");
    assert_eq!(put_secret(&local, &ssm, &first).await?, 1);
    let manifest = |release: &str| {
        format!(
            "name: secrets\nstages:\n  - name: only\n    stacks:\n      - name: Vault-${{environment}}\n        template: templates/no-echo.yaml\n        parameters:\n          Password: {{ssm: \"{ssm}\"}}\n          Release: \"{release}\"\n      - name: Breaker-${{environment}}\n        template: templates/no-echo.yaml\n        parameters:\n          Password: not-a-secret\n          Release: \"{release}\"\n"
        )
    };
    let dir = secrets_dir("secret-stored", &manifest("1"))?;
    let stack = format!("Vault-{env}");
    let copy = format!("/e2e/{stack}/copy");

    let run = cli_deploy(dir.path(), &env)?;
    assert_eq!(run.code, 0, "{:#}", run.json);
    // CloudFormation got the value; DescribeStacks masks it.
    let got = local.ssm.get_parameter().name(&copy).send().await?;
    assert_eq!(
        got.parameter().and_then(|p| p.value()),
        Some(first.as_str())
    );
    let state = local
        .stack_state(&stack)
        .await?
        .context("the stack exists")?;
    assert_eq!(
        state.parameters.get("Password").map(String::as_str),
        Some("****"),
        "{state:?}"
    );
    // The record keeps where the secret is read: name and version.
    let arn = run.json["executionArn"]
        .as_str()
        .context("executionArn")?
        .to_string();
    let name = arn.rsplit(':').next().unwrap_or_default();
    let record_key = format!("runs/{env}/{name}/stacks/{stack}.json");
    let record: serde_json::Value = serde_json::from_slice(
        &local
            .s3
            .get_object()
            .bucket(&local.env.bucket)
            .key(&record_key)
            .send()
            .await
            .with_context(|| format!("GetObject {record_key}"))?
            .body
            .collect()
            .await?
            .into_bytes(),
    )?;
    assert_eq!(
        record["secrets"],
        json!([{"parameter": "Password", "ssm": ssm, "version": 1}]),
        "{record:#}"
    );
    assert_never_stored(
        &local,
        &[&first],
        &arn,
        &format!("{:#}{}", run.json, run.stderr),
    )
    .await?;

    // A new version of the secret, and an update: CloudFormation gets the new value, and it is
    // not stored either.
    let second = format!("second-{env}-Xw3#secret");
    assert_eq!(put_secret(&local, &ssm, &second).await?, 2);
    std::fs::write(dir.path().join("manifest.yaml"), manifest("2"))?;
    let run = cli_deploy(dir.path(), &env)?;
    assert_eq!(run.code, 0, "{:#}", run.json);
    let got = local.ssm.get_parameter().name(&copy).send().await?;
    assert_eq!(
        got.parameter().and_then(|p| p.value()),
        Some(second.as_str())
    );
    let arn = run.json["executionArn"].as_str().context("executionArn")?;
    assert_never_stored(
        &local,
        &[&second],
        arn,
        &format!("{:#}{}", run.json, run.stderr),
    )
    .await?;

    // A third version, and a run that fails: the run-level rollback restores the NoEcho
    // parameter to its pre-run value (the second version's), read again from SSM.
    let third = format!("third-{env}-Pk5#secret");
    assert_eq!(put_secret(&local, &ssm, &third).await?, 3);
    std::fs::write(dir.path().join("manifest.yaml"), manifest("3"))?;
    let breaker = format!("Breaker-{env}");
    local
        .fault(json!({"kind": "fail", "stack": breaker, "on": "update", "reason": "injected update failure"}))
        .await?;
    let run = cli_deploy(dir.path(), &env)?;
    assert_eq!(run.code, 1, "{:#}", run.json);
    let vault = summary_row(&run.json, &stack);
    assert_eq!(vault["action"], "rolled_back", "{:#}", run.json);
    // All of it restored: no NoEcho parameter kept this run's value.
    assert_eq!(
        vault["reason"],
        stackwave_core::rollback::RESTORED_REASON,
        "{:#}",
        run.json
    );
    let got = local.ssm.get_parameter().name(&copy).send().await?;
    assert_eq!(
        got.parameter().and_then(|p| p.value()),
        Some(second.as_str())
    );
    let arn = run.json["executionArn"].as_str().context("executionArn")?;
    let output = format!("{:#}{}", run.json, run.stderr);
    assert_never_stored(&local, &[&second, &third], arn, &output).await?;
    Ok(())
}
