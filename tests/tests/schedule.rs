//! The dependency schedule and the event-driven wake-up, end to end: the real state machine in
//! moto's executor, the real check, deploy-stack and wake handlers behind the gateway, and the
//! emulator's CloudFormation events on the default bus (the local rule targets the wake
//! function, as template.yaml's StackStatusRule does).
//!
//! Nothing here asserts a duration: order (which stack started before which one settled) and
//! the execution history (how each park ended) say what happened. Latencies are in
//! `make bench`.

use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_sfn::types::HistoryEventType;
use serde_json::{json, Value};
use stackwave_e2e::{local, summary_actions, synthetic_dir, unique_env, Execution, Local};

/// Three stacks in one stage: `Net` (1 s) and `Slow` (25 s) are independent, `Db` depends on
/// `Net`. Then one stage after it.
fn manifest() -> String {
    manifest_with("")
}

/// The same manifest with extra top-level lines (e.g. `schedule: dependencies`).
fn manifest_with(extra: &str) -> String {
    format!("name: sched\n{extra}stages:\n  - name: one\n    stacks:\n      - name: Net-${{environment}}\n        template: templates/unit.yaml\n      - name: Slow-${{environment}}\n        template: templates/unit.yaml\n      - name: Db-${{environment}}\n        template: templates/unit.yaml\n        parameters:\n          Upstream: {{output: Net-${{environment}}.Id}}\n  - name: two\n    stacks:\n      - name: Api-${{environment}}\n        template: templates/unit.yaml\n        dependsOn: [Db-${{environment}}]\n")
}

fn names(env: &str) -> [String; 4] {
    ["Net", "Slow", "Db", "Api"].map(|s| format!("{s}-{env}"))
}

/// Run the manifest with `fallback` seconds of fallback poll; returns the ended execution.
async fn run(local: &Local, env: &str, fallback: u32, timeout: Duration) -> Result<Execution> {
    run_manifest(local, env, &manifest(), fallback, timeout).await
}

async fn run_manifest(
    local: &Local,
    env: &str,
    manifest: &str,
    fallback: u32,
    timeout: Duration,
) -> Result<Execution> {
    let [net, slow, db, api] = names(env);
    // Slow is long enough that the run parks while it runs even on a loaded machine, where a
    // step takes seconds and deploy-stack, executing its own change set, lets short stacks
    // settle between steps.
    local
        .set_stack_seconds(&[(net, 1.0), (slow, 25.0), (db, 1.0), (api, 1.0)])
        .await?;
    let dir = synthetic_dir("sched", manifest)?;
    let uri = local
        .upload_dir(dir.path(), &format!("tests/{env}"))
        .await?;
    local
        .run_execution(
            &format!("{env}-run"),
            &json!({"manifest": uri, "environment": env, "fallbackPollSeconds": fallback,
                    "pollSeconds": {"min": 1, "max": 2}}),
            timeout,
        )
        .await
}

/// When the stack's status first became `status` (its stack-level event).
async fn first_event(
    local: &Local,
    stack: &str,
    status: &str,
) -> Result<aws_smithy_types::DateTime> {
    local
        .stack_events(stack)
        .await?
        .into_iter()
        .find(|e| {
            e.logical_resource_id() == Some(stack)
                && e.resource_status().map(|s| s.as_str()) == Some(status)
        })
        .and_then(|e| e.timestamp().copied())
        .with_context(|| format!("{stack} has no {status} event"))
}

fn secs(t: &aws_smithy_types::DateTime) -> f64 {
    t.as_secs_f64()
}

/// How the execution's `Park` tasks ended: (woken by SendTaskSuccess, timed out).
async fn parks(local: &Local, arn: &str) -> Result<(usize, usize)> {
    let history = local.run_history(arn).await?;
    let mut park_ids = std::collections::HashSet::new();
    for e in &history {
        if e.r#type() == &HistoryEventType::TaskStateEntered
            && e.state_entered_event_details().map(|d| d.name()) == Some("Park")
        {
            park_ids.insert(e.id());
        }
    }
    let woken = history
        .iter()
        .filter(|e| {
            e.r#type() == &HistoryEventType::TaskSucceeded
                && e.task_succeeded_event_details()
                    .is_some_and(|d| d.resource_type() == "lambda")
        })
        .count();
    let timed_out = history
        .iter()
        .filter(|e| e.r#type() == &HistoryEventType::TaskTimedOut)
        .count();
    assert!(!park_ids.is_empty(), "the run never parked: {history:?}");
    Ok((woken, timed_out))
}

fn assert_all_created(exec: &Execution, env: &str) {
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    let output = exec.output.clone().unwrap_or(Value::Null);
    let actions = summary_actions(&output);
    for stack in names(env) {
        assert_eq!(
            actions.get(&stack).map(String::as_str),
            Some("created"),
            "{stack}: {output:#}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dependant_starts_when_its_dependency_is_done_not_when_an_unrelated_stack_is(
) -> Result<()> {
    let local = local().await?;
    let env = unique_env("dag");
    // A 600 s fallback: if events did not wake the run, it could not end within the timeout.
    let exec = run(&local, &env, 600, Duration::from_secs(120)).await?;
    assert_all_created(&exec, &env);
    let [net, slow, db, api] = names(&env);

    // Db started (its change set executed) after Net completed and before Slow did.
    let net_done = first_event(&local, &net, "CREATE_COMPLETE").await?;
    let db_started = first_event(&local, &db, "CREATE_IN_PROGRESS").await?;
    let slow_done = first_event(&local, &slow, "CREATE_COMPLETE").await?;
    assert!(
        secs(&db_started) >= secs(&net_done),
        "Db started before Net was done"
    );
    assert!(
        secs(&db_started) < secs(&slow_done),
        "Db waited for the unrelated Slow: Db started {db_started:?}, Slow done {slow_done:?}"
    );
    // Stages are barriers: Api (stage two) started after all of stage one.
    let api_started = first_event(&local, &api, "CREATE_IN_PROGRESS").await?;
    assert!(
        secs(&api_started) >= secs(&slow_done),
        "Api started before stage one settled"
    );

    // Every park ended by an event: none waited out the fallback poll.
    let (woken, timed_out) = parks(&local, &exec.arn).await?;
    assert_eq!(
        timed_out, 0,
        "a park timed out although events were delivered"
    );
    assert!(woken > 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_every_event_lost_the_fallback_poll_still_completes_the_run() -> Result<()> {
    let local = local().await?;
    let env = unique_env("lost");
    let fault = local
        .fault(json!({"kind": "events", "dropRate": 1, "stacks": names(&env)}))
        .await?;
    // A 2-s fallback with the default 60-minute timeouts could poll a hanging stack for hours,
    // past the execution's history: the plan step would refuse it. One-minute timeouts fit.
    let text = manifest().replace(
        "        template: templates/unit.yaml\n",
        "        template: templates/unit.yaml\n        timeoutMinutes: 1\n",
    );
    let exec = run_manifest(&local, &env, &text, 2, Duration::from_secs(120)).await;
    local.remove_fault(&fault).await?;
    let exec = exec?;
    assert_all_created(&exec, &env);
    let (woken, timed_out) = parks(&local, &exec.arn).await?;
    assert!(timed_out > 0, "no park timed out, yet every event was lost");
    assert_eq!(woken, 0, "a park was woken, yet every event was lost");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicated_late_and_reordered_events_change_nothing() -> Result<()> {
    let local = local().await?;
    let env = unique_env("late");
    // Every event twice, each copy up to 3 s late: copies arrive after the run moved on (their
    // token is used or stale) and out of order (a COMPLETE before an IN_PROGRESS).
    let fault = local
        .fault(
            json!({"kind": "events", "duplicateRate": 1, "delaySeconds": 3, "seed": 7,
                      "stacks": names(&env)}),
        )
        .await?;
    let exec = run(&local, &env, 30, Duration::from_secs(180)).await;
    // Let the last late copies arrive before the fault goes, so they meet a finished run.
    tokio::time::sleep(Duration::from_secs(4)).await;
    local.remove_fault(&fault).await?;
    let exec = exec?;
    assert_all_created(&exec, &env);
    // Each stack was deployed once: one create, no second operation from a stale wake-up.
    for stack in names(&env) {
        let creates = local
            .stack_events(&stack)
            .await?
            .iter()
            .filter(|e| {
                e.logical_resource_id() == Some(stack.as_str())
                    && e.resource_status().map(|s| s.as_str()) == Some("CREATE_IN_PROGRESS")
            })
            .count();
        assert_eq!(creates, 1, "{stack} was created {creates} times");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_schedule_dependencies_a_later_stage_stack_starts_before_an_unrelated_earlier_one_ends(
) -> Result<()> {
    let local = local().await?;
    let env = unique_env("full");
    let exec = run_manifest(
        &local,
        &env,
        &manifest_with("schedule: dependencies\n"),
        600,
        Duration::from_secs(120),
    )
    .await?;
    assert_all_created(&exec, &env);
    let [_, slow, db, api] = names(&env);
    let db_done = first_event(&local, &db, "CREATE_COMPLETE").await?;
    let api_started = first_event(&local, &api, "CREATE_IN_PROGRESS").await?;
    let slow_done = first_event(&local, &slow, "CREATE_COMPLETE").await?;
    assert!(
        secs(&api_started) >= secs(&db_done),
        "Api started before its dependency Db was done"
    );
    assert!(
        secs(&api_started) < secs(&slow_done),
        "Api (stage two) waited for Slow (stage one), which it does not depend on"
    );
    // The summary still reads as stages: each stack keeps its stage.
    let output = exec.output.clone().unwrap_or(Value::Null);
    let stages = stackwave_e2e::summary_column(&output, "stage");
    assert_eq!(
        stages.get(&api).map(String::as_str),
        Some("two"),
        "{output:#}"
    );
    Ok(())
}

/// A record of the run, as the handlers wrote it.
async fn record(local: &Local, env: &str, stack: &str) -> Result<Value> {
    json_object(local, &format!("runs/{env}/{env}-run/stacks/{stack}.json")).await
}

/// A JSON object of the artifact bucket.
async fn json_object(local: &Local, key: &str) -> Result<Value> {
    let bytes = local
        .s3
        .get_object()
        .bucket(&local.env.bucket)
        .key(key)
        .send()
        .await
        .with_context(|| format!("GetObject {key}"))?
        .body
        .collect()
        .await?
        .into_bytes();
    Ok(serde_json::from_slice(&bytes)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_rollback_restores_dependants_before_what_they_depend_on() -> Result<()> {
    let local = local().await?;
    let env = unique_env("rrb");
    let [net, _, db, _] = names(&env);
    let boom = format!("Boom-{env}");
    let manifest = "name: rrb\nstages:\n  - name: one\n    stacks:\n      - name: Net-${environment}\n        template: templates/unit.yaml\n      - name: Db-${environment}\n        template: templates/unit.yaml\n        dependsOn: [Net-${environment}]\n      - name: Boom-${environment}\n        template: templates/unit.yaml\n";
    local.set_stack_seconds(&[(boom.clone(), 3.0)]).await?;
    let fault = local
        .fault(json!({"kind": "fail", "stack": boom, "on": "create", "reason": "injected create failure"}))
        .await?;
    let exec = run_manifest(&local, &env, manifest, 600, Duration::from_secs(120)).await;
    local.remove_fault(&fault).await.ok();
    let exec = exec?;
    assert_eq!(exec.status, "FAILED", "{exec:?}");
    // A failed execution has no output: the summary is in S3.
    let output = json_object(&local, &format!("runs/{env}/{env}-run/summary.json")).await?;
    let actions = summary_actions(&output);
    // The failed stack stays `failed` (its leftover deleted); what it created is rolled back.
    assert_eq!(
        actions.get(boom.as_str()).map(String::as_str),
        Some("failed"),
        "{output:#}"
    );
    for stack in [&net, &db] {
        assert_eq!(
            actions.get(stack.as_str()).map(String::as_str),
            Some("rolled_back"),
            "{stack}: {output:#}"
        );
    }
    for stack in [&net, &db, &boom] {
        assert!(
            local.stack_state(stack).await?.is_none(),
            "{stack} was not deleted"
        );
    }
    // Db (depends on Net) was deleted before Net's delete started.
    let db_done = record(&local, &env, &db).await?["rollback"]["finishedAt"]
        .as_str()
        .map(str::to_string)
        .context("Db's rollback has no finishedAt")?;
    let net_started = record(&local, &env, &net).await?["rollback"]["startedAt"]
        .as_str()
        .map(str::to_string)
        .context("Net's rollback has no startedAt")?;
    assert!(
        db_done <= net_started,
        "Net's delete started at {net_started}, before Db's ended at {db_done}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scheduling_step_that_times_out_twice_is_retried_and_the_run_completes() -> Result<()> {
    let local = local().await?;
    let env = unique_env("tmo");
    // The gateway runs check, then answers as Lambda does for a function past its timeout:
    // what the step did happened, its answer is lost. Every handler is idempotent.
    let fault = local
        .fault(
            json!({"kind": "lambda", "function": "check", "error": "Sandbox.Timedout",
            "times": 2, "environment": env}),
        )
        .await?;
    let exec = run(&local, &env, 600, Duration::from_secs(180)).await;
    local.remove_fault(&fault).await?;
    let exec = exec?;
    assert_all_created(&exec, &env);
    let history = local.run_history(&exec.arn).await?;
    let timed_out = history
        .iter()
        .filter(|e| {
            e.r#type() == &HistoryEventType::LambdaFunctionFailed
                && e.lambda_function_failed_event_details()
                    .and_then(|d| d.error())
                    == Some("Sandbox.Timedout")
        })
        .count();
    assert_eq!(
        timed_out, 2,
        "the two timeouts are in the history, each retried"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_loop_whose_segment_is_spent_hands_over_and_the_run_completes() -> Result<()> {
    let local = local().await?;
    let env = unique_env("seg");
    // A chain of twenty 1-s stacks in one stage and segments of 500 events: each stack costs
    // about two cycles (its start, then the park its event ends), some 30 events, so the stage
    // needs two segments or more.
    let chain: String = (1..=20)
        .map(|i| {
            let depends = if i == 1 {
                String::new()
            } else {
                format!("\n        dependsOn: [C{}-${{environment}}]", i - 1)
            };
            format!("      - name: C{i}-${{environment}}\n        template: templates/unit.yaml{depends}\n")
        })
        .collect();
    let manifest = format!("name: seg\nstages:\n  - name: one\n    stacks:\n{chain}");
    let stacks: Vec<(String, f64)> = (1..=20).map(|i| (format!("C{i}-{env}"), 1.0)).collect();
    local.set_stack_seconds(&stacks).await?;
    let dir = synthetic_dir("seg", &manifest)?;
    let uri = local
        .upload_dir(dir.path(), &format!("tests/{env}"))
        .await?;
    let exec = local
        .run_execution(
            &format!("{env}-run"),
            &json!({"manifest": uri, "environment": env, "segmentEvents": 500,
                    "pollSeconds": {"min": 1, "max": 2}}),
            Duration::from_secs(600),
        )
        .await?;
    assert_eq!(exec.status, "SUCCEEDED", "{exec:?}");
    let summary = exec.output.clone().context("no summary")?;
    let actions = summary_actions(&summary);
    for (name, _) in &stacks {
        assert_eq!(
            actions.get(name).map(String::as_str),
            Some("created"),
            "{name}: {actions:?}"
        );
    }
    let segments = local.segments_of(&exec.arn).await?;
    assert!(
        segments.len() >= 2,
        "the stage ran in one segment; a 500-event segment should have handed over: {segments:?}"
    );
    // Every segment but the last handed over; the last ended the loop.
    for (i, arn) in segments.iter().enumerate() {
        let described = local
            .sfn
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await?;
        assert_eq!(described.status().as_str(), "SUCCEEDED", "{arn}");
        let output: Value = serde_json::from_str(described.output().unwrap_or("{}"))?;
        let want = if i + 1 == segments.len() {
            "done"
        } else {
            "continue"
        };
        assert_eq!(output["status"], want, "segment {i} of {}", segments.len());
        // No segment came near the history limit.
        let history = local.history(arn).await?;
        assert!(history.len() < 600, "segment {i}: {} events", history.len());
    }
    Ok(())
}
