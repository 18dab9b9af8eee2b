//! When a deployment fails: run-level rollback, stuck-stack recovery, the environment lock,
//! throttling, and alerts that name the root cause. Every fault is injected in the emulator;
//! every test checks that nothing is lost: after the run each stack's template and parameters
//! equal its pre-run state, or the stack does not exist if this run created it.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use serde_json::json;
use stackwave_e2e::{
    cli_deploy, copy_dir, local, repo_root, summary_actions, summary_row, synthetic_dir,
    unique_env, Local, StackState, TempDir,
};

async fn states(local: &Local, stacks: &[String]) -> Result<BTreeMap<String, Option<StackState>>> {
    let mut out = BTreeMap::new();
    for s in stacks {
        out.insert(s.clone(), local.stack_state(s).await?);
    }
    Ok(out)
}

/// Template and parameters equal (status aside).
fn same_content(a: &Option<StackState>, b: &Option<StackState>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.template == b.template && a.parameters == b.parameters,
        _ => false,
    }
}

fn append_output(path: &std::path::Path, key: &str) -> Result<()> {
    let text = std::fs::read_to_string(path)?;
    std::fs::write(
        path,
        format!("{text}\n  {key}:\n    Value: changed-by-the-test\n"),
    )?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stage_three_failure_restores_stages_one_and_two_and_deletes_what_the_run_created(
) -> Result<()> {
    let local = local().await?;
    let env = unique_env("rb");
    let dir = TempDir::new("bellyfed-rb")?;
    copy_dir(&repo_root().join("examples/bellyfed"), dir.path())?;
    let full = std::fs::read_to_string(dir.path().join("manifest.yaml"))?;
    let cut = full
        .find("\n  - name: data")
        .expect("the example has a data stage");

    // Before: stages 1–2 deployed.
    std::fs::write(dir.path().join("manifest.yaml"), &full[..cut])?;
    let base = cli_deploy(dir.path(), &env)?;
    assert_eq!(base.code, 0, "baseline failed: {:#}", base.json);
    let all: Vec<String> = {
        std::fs::write(dir.path().join("manifest.yaml"), &full)?;
        let plan =
            stackwave_core::plan::from_text(&full.replace("${environment}", &env), &env, &|_| {
                true
            })?;
        plan.stacks.iter().map(|s| s.name.clone()).collect()
    };
    let before = states(&local, &all).await?;
    assert_eq!(before.values().filter(|s| s.is_some()).count(), 5);

    // This run updates Bootstrap and Network, then the Aurora create fails in stage 3.
    append_output(
        &dir.path().join("templates/bootstrap.yaml"),
        "ChangedByTest",
    )?;
    append_output(&dir.path().join("templates/network.yaml"), "ChangedByTest")?;
    let aurora = format!("BellyfedAuroraStack-{env}");
    local
        .fault(
            json!({"kind": "fail", "stack": aurora, "on": "create", "resource": "Database",
                      "reason": "injected: DB instance quota exceeded"}),
        )
        .await?;
    let run = cli_deploy(dir.path(), &env)?;
    assert_eq!(run.code, 1, "{:#}\n{}", run.json, run.stderr);
    assert_eq!(run.json["status"], "FAILED");
    let actions = summary_actions(&run.json);
    assert_eq!(actions[&aurora], "failed", "{actions:?}");
    assert_eq!(
        actions[&format!("BellyfedBootstrapStack-{env}")],
        "rolled_back",
        "{actions:?}"
    );
    assert_eq!(
        actions[&format!("BellyfedNetworkStack-{env}")],
        "rolled_back",
        "{actions:?}"
    );
    assert_eq!(
        actions[&format!("BellyfedDynamoDBStack-{env}")],
        "rolled_back",
        "{actions:?}"
    );
    assert_eq!(
        actions[&format!("BellyfedDbMigrationStack-{env}")],
        "skipped",
        "{actions:?}"
    );
    for later in [
        "BellyfedLambdaStack",
        "BellyfedApiGatewayStack",
        "BellyfedFrontendCicdStack",
    ] {
        let a = &actions[&format!("{later}-{env}")];
        assert!(a == "skipped" || a == "not_started", "{later}: {a}");
    }

    // Nothing is lost: stages 1–2 are as before, everything this run created is gone.
    let after = states(&local, &all).await?;
    for name in &all {
        assert!(
            same_content(&before[name], &after[name]),
            "{name}: before {:?}\nafter {:?}",
            before[name],
            after[name]
        );
    }

    // The alert names the failed stack, resource and reason.
    let alert = local
        .wait_run_alert(&env, "FAILED", Duration::from_secs(90))
        .await?;
    let subject = alert["Subject"].as_str().unwrap_or_default();
    assert!(subject.contains(&aurora), "subject: {subject}");
    let body = alert["Message"].as_str().unwrap_or_default();
    assert!(
        body.contains("Database") && body.contains("DB instance quota exceeded"),
        "body: {body}"
    );
    Ok(())
}

fn two_siblings(on_failure: &str, version: &str) -> String {
    format!(
        "name: siblings\nonFailure: {on_failure}\nstages:\n  - name: one\n    stacks:\n      - name: SibA-${{environment}}\n        template: templates/unit.yaml\n        parameters: {{Upstream: \"{version}\"}}\n      - name: SibB-${{environment}}\n        template: templates/unit.yaml\n        parameters: {{Upstream: \"{version}\"}}\n"
    )
}

/// Two sibling stacks deployed at v1, the manifest moved to v2, and A's update set to fail.
struct Siblings {
    env: String,
    a: String,
    b: String,
    dir: TempDir,
    before: BTreeMap<String, Option<StackState>>,
}

async fn siblings_whose_update_of_a_fails(local: &Local, prefix: &str) -> Result<Siblings> {
    let env = unique_env(prefix);
    let (a, b) = (format!("SibA-{env}"), format!("SibB-{env}"));
    let dir = synthetic_dir("siblings", &two_siblings("rollback", "v1"))?;
    assert_eq!(cli_deploy(dir.path(), &env)?.code, 0);
    let before = states(local, &[a.clone(), b.clone()]).await?;
    std::fs::write(
        dir.path().join("manifest.yaml"),
        two_siblings("rollback", "v2"),
    )?;
    local.fault(json!({"kind": "fail", "stack": a, "on": "update", "reason": "injected update failure"})).await?;
    Ok(Siblings {
        env,
        a,
        b,
        dir,
        before,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_update_failure_lets_its_sibling_finish_then_both_are_restored() -> Result<()> {
    let local = local().await?;
    let Siblings {
        env,
        a,
        b,
        dir,
        before,
    } = siblings_whose_update_of_a_fails(&local, "sb").await?;
    local.set_stack_seconds(&[(b.clone(), 5.0)]).await?;
    let run = cli_deploy(dir.path(), &env)?;
    assert_eq!(run.code, 1, "{:#}", run.json);
    let actions = summary_actions(&run.json);
    assert_eq!(actions[&a], "failed");
    assert_eq!(actions[&b], "rolled_back");

    // B's own update completed after A had failed, and only then was B restored.
    let events = local.stack_events(&b).await?;
    let own: Vec<(String, f64)> = events
        .iter()
        .filter(|e| e.logical_resource_id() == Some(b.as_str()))
        .filter_map(|e| {
            Some((
                e.resource_status()?.as_str().to_string(),
                e.timestamp()?.as_secs_f64(),
            ))
        })
        .collect();
    let statuses: Vec<&str> = own.iter().map(|(s, _)| s.as_str()).collect();
    let first_update_done = statuses
        .iter()
        .position(|s| *s == "UPDATE_COMPLETE")
        .expect("B's update completed");
    assert!(
        statuses[first_update_done + 1..].contains(&"UPDATE_IN_PROGRESS"),
        "B was not restored after its update completed: {statuses:?}"
    );
    let a_failed = local
        .stack_events(&a)
        .await?
        .iter()
        .filter(|e| e.resource_status().map(|s| s.as_str()) == Some("UPDATE_FAILED"))
        .filter_map(|e| e.timestamp().map(|t| t.as_secs_f64()))
        .fold(f64::INFINITY, f64::min);
    assert!(
        a_failed < own[first_update_done].1,
        "A failed at {a_failed}, after B finished at {}",
        own[first_update_done].1
    );

    let after = states(&local, &[a.clone(), b.clone()]).await?;
    for s in [&a, &b] {
        assert!(
            same_content(&before[s], &after[s]),
            "{s}: {:?} vs {:?}",
            before[s],
            after[s]
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deploy_stack_failing_past_its_retries_fails_its_stack_with_the_error_and_the_rest_goes_on(
) -> Result<()> {
    let local = local().await?;
    let env = unique_env("dse");
    let (a, b) = (format!("SibA-{env}"), format!("SibB-{env}"));
    // Every invocation of deploy-stack for A fails as an out-of-memory function does: no
    // answer, nothing written. Its retries run out; B, started in the same round, goes on.
    let fault = local
        .fault(
            json!({"kind": "lambda", "function": "deploy-stack", "error": "Lambda.Unknown",
                      "times": 50, "environment": env, "stack": a}),
        )
        .await?;
    local.set_stack_seconds(&[(b.clone(), 2.0)]).await?;
    let dir = synthetic_dir("siblings", &two_siblings("rollback", "v1"))?;
    let run = cli_deploy(dir.path(), &env);
    local.remove_fault(&fault).await?;
    let run = run?;
    assert_eq!(run.code, 1, "{:#}", run.json);
    let actions = summary_actions(&run.json);
    assert_eq!(actions[&a], "failed", "{:#}", run.json);
    // B was created in the same round, then deleted by the run-level rollback.
    assert_eq!(actions[&b], "rolled_back", "{:#}", run.json);
    // B's rollback is a delete: it was created while A's deploy-stack failed.
    let b_reason = summary_row(&run.json, &b)["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(b_reason.contains("delete"), "{b_reason}");
    let reason = summary_row(&run.json, &a)["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        reason.starts_with(&format!(
            "deploy-stack failed on stack {a} past its retries with Lambda.Unknown"
        )),
        "{reason}"
    );
    assert!(reason.contains("raise its MemorySize"), "{reason}");
    assert!(
        run.json["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("StackFailed")),
        "{:#}",
        run.json
    );
    // Nothing was left of A, and the rollback deleted B, which this run created.
    assert!(local.stack_state(&a).await?.is_none());
    assert!(local.stack_state(&b).await?.is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rollback_step_that_times_out_twice_is_retried_and_restores_both() -> Result<()> {
    let local = local().await?;
    let Siblings {
        env,
        a,
        b,
        dir,
        before,
    } = siblings_whose_update_of_a_fails(&local, "rbt").await?;
    // The rollback function runs past its timeout twice: what it did happened, its answer is
    // lost, and the state machine retries it (every handler is idempotent).
    let timeouts = local
        .fault(
            json!({"kind": "lambda", "function": "rollback", "error": "Sandbox.Timedout",
                      "times": 2, "environment": env}),
        )
        .await?;
    let run = cli_deploy(dir.path(), &env);
    local.remove_fault(&timeouts).await?;
    let run = run?;
    assert_eq!(run.code, 1, "{:#}", run.json);
    let actions = summary_actions(&run.json);
    assert_eq!(actions[&a], "failed", "{:#}", run.json);
    assert_eq!(actions[&b], "rolled_back", "{:#}", run.json);
    let arn = run.json["executionArn"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let timed_out = local
        .run_history(&arn)
        .await?
        .iter()
        .filter(|e| {
            e.lambda_function_failed_event_details()
                .and_then(|d| d.error())
                == Some("Sandbox.Timedout")
        })
        .count();
    assert_eq!(
        timed_out, 2,
        "both timeouts are in the history, each retried"
    );
    let after = states(&local, &[a.clone(), b.clone()]).await?;
    for s in [&a, &b] {
        assert!(
            same_content(&before[s], &after[s]),
            "{s}: {:?} vs {:?}",
            before[s],
            after[s]
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retain_keeps_what_was_deployed() -> Result<()> {
    let local = local().await?;
    let env = unique_env("rt");
    let manifest = "name: retained\nonFailure: retain\nstages:\n  - name: first\n    stacks:\n      - name: KeepA-${environment}\n        template: templates/unit.yaml\n  - name: second\n    stacks:\n      - name: KeepB-${environment}\n        template: templates/unit.yaml\n";
    let dir = synthetic_dir("retain", manifest)?;
    local
        .fault(json!({"kind": "fail", "stack": format!("KeepB-{env}"), "on": "create"}))
        .await?;
    let run = cli_deploy(dir.path(), &env)?;
    assert_eq!(run.code, 1, "{:#}", run.json);
    let actions = summary_actions(&run.json);
    assert_eq!(actions[&format!("KeepA-{env}")], "created");
    assert_eq!(actions[&format!("KeepB-{env}")], "failed");
    assert!(!actions.values().any(|a| a == "rolled_back"), "{actions:?}");
    let kept = local.stack_state(&format!("KeepA-{env}")).await?;
    assert_eq!(kept.map(|s| s.status).as_deref(), Some("CREATE_COMPLETE"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stuck_stacks_are_recovered() -> Result<()> {
    let local = local().await?;
    let env = unique_env("st");
    let (left, stuck) = (format!("Leftover-{env}"), format!("Stuck-{env}"));
    let body = std::fs::read_to_string(repo_root().join("examples/synthetic/templates/unit.yaml"))?;
    let param = |v: &str| {
        aws_sdk_cloudformation::types::Parameter::builder()
            .parameter_key("Upstream")
            .parameter_value(v)
            .build()
    };

    // A ROLLBACK_COMPLETE leftover of an earlier failed create.
    local
        .fault(json!({"kind": "fail", "stack": left, "on": "create"}))
        .await?;
    local
        .cfn
        .create_stack()
        .stack_name(&left)
        .template_body(&body)
        .send()
        .await?;
    local
        .wait_status(&left, &["ROLLBACK_COMPLETE"], Duration::from_secs(30))
        .await?;

    // An UPDATE_ROLLBACK_FAILED stack: its update failed and so did the rollback.
    local
        .cfn
        .create_stack()
        .stack_name(&stuck)
        .template_body(&body)
        .parameters(param("v1"))
        .send()
        .await?;
    local
        .wait_status(&stuck, &["CREATE_COMPLETE"], Duration::from_secs(30))
        .await?;
    local
        .fault(json!({"kind": "fail", "stack": stuck, "on": "rollback"}))
        .await?;
    local
        .cfn
        .update_stack()
        .stack_name(&stuck)
        .template_body(&body)
        .parameters(param("v9"))
        .send()
        .await?;
    local
        .wait_status(&stuck, &["UPDATE_ROLLBACK_FAILED"], Duration::from_secs(30))
        .await?;

    let manifest = "name: stuck\nstages:\n  - name: only\n    stacks:\n      - name: Leftover-${environment}\n        template: templates/unit.yaml\n      - name: Stuck-${environment}\n        template: templates/unit.yaml\n        parameters: {Upstream: v2}\n";
    let dir = synthetic_dir("stuck", manifest)?;
    let run = cli_deploy(dir.path(), &env)?;
    assert_eq!(run.code, 0, "{:#}\n{}", run.json, run.stderr);
    let actions = summary_actions(&run.json);
    assert_eq!(actions[&left], "created");
    assert_eq!(actions[&stuck], "updated");
    let s = local.stack_state(&stuck).await?.expect("exists");
    assert_eq!(
        (
            s.status.as_str(),
            s.parameters.get("Upstream").map(String::as_str)
        ),
        ("UPDATE_COMPLETE", Some("v2"))
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hang_past_the_timeout_is_cancelled_and_reported_as_stack_timeout() -> Result<()> {
    let local = local().await?;
    let env = unique_env("to");
    let name = format!("Slow-{env}");
    let manifest = |v: &str| {
        format!("name: slow\nstages:\n  - name: only\n    stacks:\n      - name: Slow-${{environment}}\n        template: templates/unit.yaml\n        timeoutMinutes: 1\n        parameters: {{Upstream: {v}}}\n")
    };
    let dir = synthetic_dir("timeout", &manifest("v1"))?;
    assert_eq!(cli_deploy(dir.path(), &env)?.code, 0);
    let before = local.stack_state(&name).await?;
    std::fs::write(dir.path().join("manifest.yaml"), manifest("v2"))?;
    local
        .fault(json!({"kind": "hang", "stack": name, "on": "update", "seconds": 600}))
        .await?;
    let run = cli_deploy(dir.path(), &env)?;
    assert_eq!(run.code, 1, "{:#}", run.json);
    let stack = summary_row(&run.json, &name);
    assert_eq!(stack["action"], "failed", "{stack}");
    assert!(
        stack["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("StackTimeout"),
        "{stack}"
    );
    // Cancelled: CloudFormation rolled the update back, nothing is left half-done.
    let status = local
        .wait_status(
            &name,
            &["UPDATE_ROLLBACK_COMPLETE"],
            Duration::from_secs(30),
        )
        .await?;
    assert_eq!(status, "UPDATE_ROLLBACK_COMPLETE");
    assert!(same_content(&before, &local.stack_state(&name).await?));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_create_hanging_past_the_timeout_is_deleted_by_the_rollback() -> Result<()> {
    let local = local().await?;
    let env = unique_env("tc");
    let name = format!("Hang-{env}");
    let manifest = "name: hang\nstages:\n  - name: only\n    stacks:\n      - name: Hang-${environment}\n        template: templates/unit.yaml\n        timeoutMinutes: 1\n        parameters: {Upstream: v1}\n";
    let dir = synthetic_dir("create-timeout", manifest)?;
    local
        .fault(json!({"kind": "hang", "stack": name, "on": "create", "seconds": 600}))
        .await?;
    let run = cli_deploy(dir.path(), &env)?;
    assert_eq!(run.code, 1, "{:#}", run.json);
    let stack = summary_row(&run.json, &name);
    // What failed stays `failed`; its reason says the timeout and then the delete.
    assert_eq!(stack["action"], "failed", "{stack}");
    let reason = stack["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("StackTimeout") && reason.contains("CREATE_IN_PROGRESS"),
        "{reason}"
    );
    assert!(
        reason.contains("then deleted (created by this run)"),
        "{reason}"
    );
    // Nothing is left half-done: the create was stopped and the stack is gone.
    assert_eq!(local.stack_state(&name).await?, None);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_percent_throttling_slows_the_run_but_never_fails_it() -> Result<()> {
    let local = local().await?;
    let env = unique_env("th");
    let manifest = stackwave_core::synth::manifest_yaml(
        "throttled",
        2,
        3,
        stackwave_core::synth::Shape::Independent,
        "templates/unit.yaml",
    );
    let dir = synthetic_dir("throttle", &manifest)?;
    let id = local
        .fault(json!({"kind": "throttle", "api": "DescribeStacks", "rate": 0.3}))
        .await?;
    let run = cli_deploy(dir.path(), &env);
    local.remove_fault(&id).await?;
    let run = run?;
    assert_eq!(run.code, 0, "{:#}\n{}", run.json, run.stderr);
    let actions = summary_actions(&run.json);
    assert_eq!(actions.len(), 6);
    assert!(actions.values().all(|a| a == "created"), "{actions:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_deploy_per_environment_at_a_time() -> Result<()> {
    let local = local().await?;
    let env = unique_env("lk");
    let manifest = "name: locked\nstages:\n  - name: only\n    stacks:\n      - name: Locked-${environment}\n        template: templates/unit.yaml\n";
    let dir = synthetic_dir("lock", manifest)?;
    local
        .set_stack_seconds(&[(format!("Locked-{env}"), 4.0)])
        .await?;
    let uri = local
        .upload_dir(dir.path(), &format!("tests/{env}"))
        .await?;
    let input = json!({"manifest": uri, "environment": env, "pollSeconds": {"min": 1, "max": 2}});

    // Two executions for one environment: the second fails at once, naming the holder.
    let first = local
        .sfn
        .start_execution()
        .state_machine_arn(&local.env.state_machine_arn)
        .name(format!("{env}-first"))
        .input(input.to_string())
        .send()
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let second = local
        .run_execution(&format!("{env}-second"), &input, Duration::from_secs(60))
        .await?;
    assert_eq!(
        second.error.as_deref(),
        Some("DeploymentLocked"),
        "{second:?}"
    );
    assert!(
        second
            .cause
            .unwrap_or_default()
            .contains(&format!("{env}-first")),
        "the cause does not name the holder"
    );
    let first = local
        .wait_execution(first.execution_arn(), Duration::from_secs(120))
        .await?;
    assert_eq!(first.status, "SUCCEEDED", "{first:?}");

    // Released after the run: the parameter is gone.
    assert!(
        local.lock_is_free(&env).await?,
        "the lock is still held after the run"
    );

    // A lease past its expiry is taken over.
    local
        .ssm
        .put_parameter()
        .name(format!("/stackwave/{env}/lock"))
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .value(json!({"executionArn": format!("{}:ghost", local.env.state_machine_arn.replace(":stateMachine:", ":execution:")), "expires": "2001-01-01T00:00:00Z"}).to_string())
        .send()
        .await?;
    let third = local
        .run_execution(&format!("{env}-third"), &input, Duration::from_secs(120))
        .await?;
    assert_eq!(third.status, "SUCCEEDED", "{third:?}");

    // Released after a failed run too.
    local
        .fault(json!({"kind": "fail", "stack": format!("Locked-{env}"), "on": "update"}))
        .await?;
    let changed = manifest.replace(
        "template: templates/unit.yaml",
        "template: templates/unit.yaml\n        parameters: {Upstream: v2}",
    );
    std::fs::write(dir.path().join("manifest.yaml"), changed)?;
    let uri = local
        .upload_dir(dir.path(), &format!("tests/{env}-2"))
        .await?;
    let failed = local
        .run_execution(
            &format!("{env}-fourth"),
            &json!({"manifest": uri, "environment": env, "pollSeconds": {"min": 1, "max": 2}}),
            Duration::from_secs(120),
        )
        .await?;
    assert_eq!(failed.status, "FAILED", "{failed:?}");
    let lock = local
        .ssm
        .get_parameter()
        .name(format!("/stackwave/{env}/lock"))
        .send()
        .await;
    assert!(lock.is_err(), "the lock is still held after a failed run");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rollback_that_fails_is_reported_and_alerted_as_needing_a_human() -> Result<()> {
    let local = local().await?;
    let env = unique_env("rf");
    let (a, b) = (format!("First-{env}"), format!("Second-{env}"));
    let manifest = "name: rbfail\nstages:\n  - name: first\n    stacks:\n      - name: First-${environment}\n        template: templates/unit.yaml\n  - name: second\n    stacks:\n      - name: Second-${environment}\n        template: templates/unit.yaml\n";
    let dir = synthetic_dir("rbfail", manifest)?;
    local
        .fault(json!({"kind": "fail", "stack": b, "on": "create"}))
        .await?;
    local.fault(json!({"kind": "fail", "stack": a, "on": "delete", "reason": "injected: bucket not empty"})).await?;
    let run = cli_deploy(dir.path(), &env)?;
    assert_eq!(run.code, 1, "{:#}", run.json);
    let actions = summary_actions(&run.json);
    assert_eq!(actions[&b], "failed");
    assert_eq!(actions[&a], "rollback_failed", "{actions:?}");
    assert_eq!(
        local.stack_state(&a).await?.map(|s| s.status).as_deref(),
        Some("DELETE_FAILED")
    );
    let alert = local
        .wait_run_alert(&env, "ROLLBACK_FAILED", Duration::from_secs(90))
        .await?;
    let text = format!("{} {}", alert["Subject"], alert["Message"]);
    assert!(
        text.contains(&a) && text.to_lowercase().contains("human"),
        "{text}"
    );
    Ok(())
}
