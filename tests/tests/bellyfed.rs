//! The Bellyfed example end to end: 14 stacks in 5 stages through the real state machine.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Result;
use aws_smithy_types::DateTime;
use serde_json::Value;
use stackwave_e2e::{
    cli_deploy, copy_dir, local, repo_root, summary_actions, summary_column, unique_env, Local,
    TempDir,
};

const STAGES: [&str; 5] = [
    "bootstrap",
    "infrastructure",
    "data",
    "application",
    "frontend",
];

fn secs(t: &DateTime) -> f64 {
    t.as_secs_f64()
}

/// (start, end) of the last create/update operation of a stack, from its stack events.
async fn operation_window(local: &Local, stack: &str) -> Result<(f64, f64)> {
    let events = local.stack_events(stack).await?;
    let own: Vec<_> = events
        .iter()
        .filter(|e| e.logical_resource_id() == Some(stack))
        .collect();
    let start = own
        .iter()
        .filter(|e| e.resource_status().map(|s| s.as_str()) == Some("CREATE_IN_PROGRESS"))
        .filter_map(|e| e.timestamp())
        .map(secs)
        .fold(f64::INFINITY, f64::min);
    let end = own
        .iter()
        .filter(|e| e.resource_status().map(|s| s.as_str()) == Some("CREATE_COMPLETE"))
        .filter_map(|e| e.timestamp())
        .map(secs)
        .fold(f64::NEG_INFINITY, f64::max);
    anyhow::ensure!(
        start.is_finite() && end.is_finite(),
        "stack {stack}: no create window in its events: {events:?}"
    );
    Ok((start, end))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bellyfed_deploys_in_stage_order_then_is_unchanged_then_updates_exactly_the_changed_stack(
) -> Result<()> {
    let local = local().await?;
    let environment = unique_env("bf");
    let dir = TempDir::new("bellyfed")?;
    copy_dir(&repo_root().join("examples/bellyfed"), dir.path())?;

    // ── First run: everything is created ────────────────────────────────────────────────
    let first = cli_deploy(dir.path(), &environment)?;
    assert_eq!(
        first.code, 0,
        "first deploy failed: {:#}\n{}",
        first.json, first.stderr
    );
    assert_eq!(first.json["status"], "SUCCEEDED");
    assert_eq!(first.json["environment"], environment.as_str());
    let created = summary_actions(&first.json);
    assert_eq!(created.len(), 14, "{created:?}");
    assert!(created.values().all(|a| a == "created"), "{created:?}");
    for s in first.json["stacks"].as_array().into_iter().flatten() {
        assert!(s["durationSeconds"].as_f64().unwrap_or(-1.0) >= 0.0, "{s}");
    }

    let stacks = local.stacks_of(&environment).await?;
    assert_eq!(stacks.len(), 14);
    for s in &stacks {
        let name = s.stack_name().unwrap_or_default();
        assert_eq!(
            s.stack_status().map(|x| x.as_str()),
            Some("CREATE_COMPLETE"),
            "{name}"
        );
        // Tagged: the manifest's defaults, with ${environment} substituted.
        let tags: HashMap<&str, &str> = s
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?, t.value()?)))
            .collect();
        assert_eq!(tags.get("Project"), Some(&"bellyfed"), "{name}: {tags:?}");
        assert_eq!(
            tags.get("Environment"),
            Some(&environment.as_str()),
            "{name}: {tags:?}"
        );
        assert_eq!(
            tags.get("ManagedBy"),
            Some(&"stackwave"),
            "{name}: {tags:?}"
        );
    }
    let by_name: HashMap<String, _> = stacks
        .iter()
        .map(|s| (s.stack_name().unwrap_or_default().to_string(), s))
        .collect();
    let output = |stack: &str, key: &str| -> Option<String> {
        by_name
            .get(&format!("{stack}-{environment}"))?
            .outputs()
            .iter()
            .find(|o| o.output_key() == Some(key))?
            .output_value()
            .map(str::to_string)
    };
    let parameter = |stack: &str, key: &str| -> Option<String> {
        by_name
            .get(&format!("{stack}-{environment}"))?
            .parameters()
            .iter()
            .find(|p| p.parameter_key() == Some(key))?
            .parameter_value()
            .map(str::to_string)
    };
    // Outputs arrive as parameters of later stacks; the SSM image URI arrives too.
    let vpc = output("BellyfedNetworkStack", "VpcId");
    assert!(vpc.is_some());
    assert_eq!(parameter("BellyfedEcsInfraStack", "VpcId"), vpc);
    assert_eq!(
        parameter("BellyfedApiGatewayStack", "FunctionArn"),
        output("BellyfedLambdaStack", "FunctionArn")
    );
    assert_eq!(
        parameter("BellyfedTypesenseServiceStack", "TypesenseImage").as_deref(),
        Some("typesense/typesense:28.0")
    );

    // Stages in order: no stack of stage N+1 starts before every stack of stage N settled.
    let stage = summary_column(&first.json, "stage");
    let mut windows: HashMap<String, (f64, f64)> = HashMap::new();
    for name in stage.keys() {
        windows.insert(name.clone(), operation_window(&local, name).await?);
    }
    for pair in STAGES.windows(2) {
        let settled = windows
            .iter()
            .filter(|(n, _)| stage[*n] == pair[0])
            .map(|(_, w)| w.1)
            .fold(f64::NEG_INFINITY, f64::max);
        let next_start = windows
            .iter()
            .filter(|(n, _)| stage[*n] == pair[1])
            .map(|(_, w)| w.0)
            .fold(f64::INFINITY, f64::min);
        assert!(
            next_start >= settled,
            "stage {} started at {next_start} before stage {} settled at {settled}",
            pair[1],
            pair[0]
        );
    }
    // Stacks in a stage overlap in time (the application stage's first wave has three).
    let app_wave = [
        "BellyfedTypesenseServiceStack",
        "BellyfedLambdaStack",
        "BellyfedEcsServiceStack",
    ];
    let w: Vec<(f64, f64)> = app_wave
        .iter()
        .map(|s| windows[&format!("{s}-{environment}")])
        .collect();
    let latest_start = w.iter().map(|x| x.0).fold(f64::NEG_INFINITY, f64::max);
    let earliest_end = w.iter().map(|x| x.1).fold(f64::INFINITY, f64::min);
    assert!(
        latest_start < earliest_end,
        "application stacks did not run in parallel: {w:?}"
    );

    // The success alert, read from the SQS subscriber, filterable by its attributes.
    let alert = local
        .wait_run_alert(&environment, "SUCCEEDED", Duration::from_secs(90))
        .await?;
    let subject = alert["Subject"].as_str().unwrap_or_default();
    assert!(subject.contains(&environment), "subject {subject:?}");

    // The execution history stays within the budget model's count for these durations.
    let arn = first.json["executionArn"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let events = local.run_history(&arn).await?;
    assert!(
        events.len() > 100 && events.len() < 2_000,
        "{} history events",
        events.len()
    );

    // ── Second run: nothing changed, nothing is updated ─────────────────────────────────
    let second = cli_deploy(dir.path(), &environment)?;
    assert_eq!(
        second.code, 0,
        "second deploy failed: {:#}\n{}",
        second.json, second.stderr
    );
    let unchanged = summary_actions(&second.json);
    assert_eq!(unchanged.len(), 14);
    assert!(
        unchanged.values().all(|a| a == "unchanged"),
        "{unchanged:?}"
    );
    for s in local.stacks_of(&environment).await? {
        assert_eq!(
            s.stack_status().map(|x| x.as_str()),
            Some("CREATE_COMPLETE"),
            "{:?} was touched",
            s.stack_name()
        );
    }

    // ── Third run: one template changed, exactly that stack is updated ──────────────────
    let template = dir.path().join("templates/frontend-cicd.yaml");
    let text = std::fs::read_to_string(&template)?;
    let changed = format!("{text}\n  ChangedByTest:\n    Description: added by the e2e test\n    Value: !Ref AWS::StackName\n");
    assert!(
        text.contains("\nOutputs:"),
        "frontend-cicd.yaml has no Outputs section to extend"
    );
    std::fs::write(&template, changed)?;
    let third = cli_deploy(dir.path(), &environment)?;
    assert_eq!(
        third.code, 0,
        "third deploy failed: {:#}\n{}",
        third.json, third.stderr
    );
    let after = summary_actions(&third.json);
    let updated: Vec<_> = after
        .iter()
        .filter(|(_, a)| *a == "updated")
        .map(|(n, _)| n.clone())
        .collect();
    assert_eq!(
        updated,
        vec![format!("BellyfedFrontendCicdStack-{environment}")],
        "{after:?}"
    );
    assert_eq!(
        after.values().filter(|a| *a == "unchanged").count(),
        13,
        "{after:?}"
    );
    let frontend = local
        .cfn
        .describe_stacks()
        .stack_name(format!("BellyfedFrontendCicdStack-{environment}"))
        .send()
        .await?;
    let outs: Vec<Value> = frontend.stacks()[0]
        .outputs()
        .iter()
        .map(|o| serde_json::json!([o.output_key(), o.output_value()]))
        .collect();
    assert!(
        outs.iter().any(|o| o[0] == "ChangedByTest"),
        "the update's new output is missing: {outs:?}"
    );
    Ok(())
}
