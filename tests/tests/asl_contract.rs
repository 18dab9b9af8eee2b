//! The state machine and core agree on error names; retries are for transient errors only;
//! every Choice has a Default.

use serde_json::Value;
use stackwave_core::ERROR_NAMES;
use stackwave_e2e::asl::{all_states, definitions};

/// Names that belong to the Step Functions service or the Lambda service, not to stackwave.
fn is_service_name(name: &str) -> bool {
    name.starts_with("States.")
        || name.starts_with("Lambda.")
        || name.starts_with("StepFunctions.")
        || name == "Sandbox.Timedout"
}

/// Transient errors of the `states:startExecution.sync:2` tasks that run loop segments: the
/// Step Functions API throttled or unreachable. A retry of one entry starts no second segment
/// (the name is the same, and StartExecution with the same name and input is idempotent).
const TRANSIENT_SFN: &[&str] = &[
    "StepFunctions.ThrottlingException",
    "StepFunctions.SdkClientException",
    "StepFunctions.AWSStepFunctionsException",
];

/// The transient errors a task must retry: those of the service it calls.
fn transient_for(task: &Value) -> &'static [&'static str] {
    let resource = task.get("Resource").and_then(Value::as_str).unwrap_or("");
    if resource.starts_with("arn:aws:states:::states:") {
        TRANSIENT_SFN
    } else {
        TRANSIENT
    }
}

/// Transient names: the only ones a Retry may list.
const TRANSIENT: &[&str] = &[
    "Throttled",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    // A function past its timeout (provided runtimes), out of memory, or an invoke whose
    // client timed out: every handler is idempotent, so these are retried too.
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.Unknown",
    "Sandbox.Timedout",
];

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn there_is_a_deploy_state_machine() {
    let defs = definitions();
    assert!(
        defs.iter().any(|(n, _)| n == "deploy.asl.json"),
        "statemachine/deploy.asl.json missing: {defs:?}"
    );
}

#[test]
fn every_error_name_in_the_asl_exists_in_core() {
    let mut checked = 0;
    for (file, def) in definitions() {
        for (state, body) in all_states(&def) {
            let mut names = Vec::new();
            for key in ["Retry", "Catch"] {
                for clause in body
                    .get(key)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                {
                    names.extend(strings(clause.get("ErrorEquals")));
                }
            }
            if let Some(e) = body.get("Error").and_then(Value::as_str) {
                names.push(e.to_string());
            }
            for name in names {
                checked += 1;
                assert!(
                    is_service_name(&name) || ERROR_NAMES.contains(&name.as_str()),
                    "{file}: state {state} uses error name {name:?}, which core's Error enum does not define (core::ERROR_NAMES = {ERROR_NAMES:?})"
                );
            }
        }
    }
    assert!(
        checked > 5,
        "expected Retry/Catch/Fail error names in the ASL, found {checked}"
    );
}

#[test]
fn retries_only_transient_errors() {
    let mut retries = 0;
    for (file, def) in definitions() {
        for (state, body) in all_states(&def) {
            for clause in body
                .get("Retry")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                retries += 1;
                let transient = transient_for(&body);
                for name in strings(clause.get("ErrorEquals")) {
                    assert!(
                        transient.contains(&name.as_str()),
                        "{file}: state {state} retries {name:?}; only transient errors may be retried: {transient:?}"
                    );
                }
                assert!(
                    clause
                        .get("BackoffRate")
                        .and_then(Value::as_f64)
                        .unwrap_or(1.0)
                        > 1.0,
                    "{file}: {state} retry has no backoff"
                );
            }
        }
    }
    assert!(retries > 0, "no Retry clause found");
}

#[test]
fn every_lambda_task_retries_every_transient_error() {
    for (file, def) in definitions() {
        for (state, body) in all_states(&def) {
            if body.get("Type").and_then(Value::as_str) != Some("Task") {
                continue;
            }
            let retried: Vec<String> = body
                .get("Retry")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
                .iter()
                .flat_map(|c| strings(c.get("ErrorEquals")))
                .collect();
            for needed in transient_for(&body) {
                assert!(
                    retried.iter().any(|n| n == needed),
                    "{file}: task {state} does not retry {needed}"
                );
            }
        }
    }
}

#[test]
fn every_choice_has_a_default() {
    let mut choices = 0;
    for (file, def) in definitions() {
        for (state, body) in all_states(&def) {
            if body.get("Type").and_then(Value::as_str) == Some("Choice") {
                choices += 1;
                assert!(
                    body.get("Default").and_then(Value::as_str).is_some(),
                    "{file}: Choice {state} has no Default"
                );
            }
        }
    }
    assert!(choices > 0);
}

/// A state of deploy.asl.json by name (at any depth), or null.
fn deploy_state(name: &str) -> Value {
    state_of("deploy.asl.json", name)
}

/// A state of loop.asl.json (one segment of a stage loop or the rollback) by name, or null.
fn loop_state(name: &str) -> Value {
    state_of("loop.asl.json", name)
}

fn state_of(file: &str, name: &str) -> Value {
    let (_, def) = definitions()
        .into_iter()
        .find(|(n, _)| n == file)
        .unwrap_or_else(|| panic!("statemachine/{file} missing"));
    all_states(&def)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, s)| s)
        .unwrap_or(Value::Null)
}

#[test]
fn a_stage_runs_segments_of_the_loop_until_one_ends_it() {
    let get = deploy_state;
    assert_eq!(get("Stages")["MaxConcurrency"], 1, "stages run in order");
    let run = get("RunStage");
    assert_eq!(
        run["Resource"],
        "arn:aws:states:::states:startExecution.sync:2"
    );
    assert_eq!(
        run["Parameters"]["StateMachineArn"],
        "${LoopStateMachineArn}"
    );
    assert_eq!(run["Parameters"]["Input"]["loop"], "deploy");
    assert_eq!(
        run["Parameters"]["Input"]["AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$"],
        "$$.Execution.Id"
    );
    assert_eq!(run["ResultSelector"]["status.$"], "$.Output.status");
    assert_eq!(run["Next"], "StageOutcome");
    let outcome = get("StageOutcome");
    let routes: Vec<(&str, &str)> = outcome["Choices"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|c| Some((c["StringEquals"].as_str()?, c["Next"].as_str()?)))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        routes,
        [
            ("continue", "RunStage"),
            ("failed", "StageFailed"),
            ("done", "StageDone")
        ]
    );
    assert_eq!(get("StageFailed")["Error"], "StackFailed");
    assert_eq!(get("RollbackOutcome")["Choices"][0]["Next"], "RunRollback");
    assert_eq!(get("RollbackOutcome")["Default"], "Finalize");
    // Every status a segment ends with is one the parent routes.
    for end in ["HandOver", "StageFailed", "StageDone", "RollbackDone"] {
        let status = loop_state(end)["Result"]["status"].clone();
        assert!(
            ["continue", "failed", "done"].contains(&status.as_str().unwrap_or_default()),
            "{end}: {status}"
        );
    }
}

#[test]
fn a_segment_is_a_schedule_deploy_park_loop() {
    let get = loop_state;
    assert_eq!(get("Loop")["Choices"][0]["Next"], "RollbackSchedule");
    assert_eq!(get("Loop")["Default"], "Schedule");
    let schedule = get("Schedule");
    assert_eq!(schedule["Parameters"]["mode"], "schedule");
    assert_eq!(schedule["Parameters"]["stage.$"], "$.stage.index");
    assert_eq!(schedule["Parameters"]["segment.$"], "$$.Execution.Id");
    assert_eq!(schedule["ResultPath"], "$.schedule");
    assert_eq!(schedule["Next"], "StageState");
    let choice = get("StageState");
    let nexts: Vec<&str> = choice["Choices"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["Next"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        nexts,
        ["HandOver", "StageFailed", "StageDone", "DeployReady"]
    );
    assert_eq!(
        choice["Default"], "Park",
        "nothing ready and not settled: park"
    );
    assert_eq!(get("HandOver")["Result"]["status"], "continue");
    let deploy = get("DeployReady");
    assert_eq!(deploy["ItemsPath"], "$.schedule.ready");
    assert_eq!(deploy["MaxConcurrencyPath"], "$.run.maxConcurrency");
    assert_eq!(
        deploy["Next"], "Schedule",
        "after deploying, schedule again at once"
    );
    // The park: a callback task whose timeout is the fallback poll, caught back to Schedule.
    let park = get("Park");
    assert_eq!(
        park["Resource"],
        "arn:aws:states:::lambda:invoke.waitForTaskToken"
    );
    assert_eq!(park["Parameters"]["FunctionName"], "${WakeFunctionArn}");
    assert_eq!(park["Parameters"]["Payload"]["action"], "park");
    assert_eq!(park["Parameters"]["Payload"]["token.$"], "$$.Task.Token");
    assert_eq!(park["TimeoutSecondsPath"], "$.schedule.waitSeconds");
    assert_eq!(park["Next"], "Schedule");
    let catches = park["Catch"].as_array().cloned().unwrap_or_default();
    assert_eq!(catches[0]["ErrorEquals"][0], "States.Timeout");
    assert!(
        catches.iter().all(|c| c["Next"] == "Schedule"),
        "a timed-out or failed park falls back to a scheduling step: {catches:?}"
    );
}

#[test]
fn the_rollback_is_the_same_loop_on_the_reversed_graph() {
    assert_eq!(deploy_state("PlanRollback")["Next"], "RunRollback");
    assert_eq!(
        deploy_state("RunRollback")["Parameters"]["Input"]["loop"],
        "rollback"
    );
    let get = loop_state;
    let schedule = get("RollbackSchedule");
    assert_eq!(schedule["Parameters"]["mode"], "rollback_schedule");
    assert_eq!(schedule["Parameters"]["waves.$"], "$.rollback.waves");
    assert_eq!(schedule["Parameters"]["segment.$"], "$$.Execution.Id");
    assert_eq!(schedule["Next"], "RollbackState");
    let choice = get("RollbackState");
    assert_eq!(choice["Choices"][0]["Next"], "HandOver");
    assert_eq!(choice["Choices"][1]["Next"], "RollbackDone");
    assert_eq!(choice["Choices"][2]["Next"], "RestoreReady");
    assert_eq!(choice["Default"], "RollbackPark");
    assert_eq!(get("RestoreReady")["ItemsPath"], "$.rollbackSchedule.ready");
    assert_eq!(get("RestoreReady")["Next"], "RollbackSchedule");
    let park = get("RollbackPark");
    assert_eq!(park["TimeoutSecondsPath"], "$.rollbackSchedule.waitSeconds");
    assert_eq!(park["Next"], "RollbackSchedule");
}

/// The ASL's Choice on the scheduling step reads the fields core's ScheduleOutput writes.
#[test]
fn the_stage_choice_reads_schedule_output_fields() {
    let out = serde_json::to_value(stackwave_core::io::ScheduleOutput {
        ready: vec!["A".into()],
        settled: false,
        any_failed: false,
        wait_seconds: 5,
        in_flight: 0,
        succeeded: 0,
        failed: 0,
        failed_stacks: vec![],
        hand_over: false,
    })
    .expect("serialize");
    for field in ["ready", "settled", "anyFailed", "waitSeconds", "handOver"] {
        assert!(
            out.get(field).is_some(),
            "ScheduleOutput has no {field}: {out}"
        );
    }
}

#[test]
fn a_failed_finalize_alerts_a_failed_run_not_a_rejection() {
    let get = deploy_state;
    let target = get("Finalize")["Catch"][0]["Next"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let notify = get(&target);
    assert_eq!(notify["Parameters"]["event"], "summaryFailed", "{notify:#}");
    assert_eq!(notify["Parameters"]["run.$"], "$.run");
    assert_eq!(
        get(notify["Next"].as_str().unwrap_or_default())["Type"],
        "Fail"
    );
}
