"""The callback pattern (``arn:aws:states:::lambda:invoke.waitForTaskToken``) on moto's Step
Functions executor, and the task token answers of stepfunctions.py: SendTaskFailure's cause,
TaskTimedOut for a closed or timed-out task, InvalidToken, a new token per Retry attempt."""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import pytest
from botocore.exceptions import ClientError
from conftest import StubLambda, client

ROLE = "arn:aws:iam::123456789012:role/sfn"
LAMBDA = "arn:aws:lambda:us-east-1:123456789012:function:{}"


@pytest.fixture
def sfn(endpoint):
    return client(endpoint, "stepfunctions")


def callback_machine(sfn, name: str, function: str, retry: list | None = None) -> str:
    """Invoke `function` with a token and wait for it; then hold the execution $.hold seconds."""
    wait: dict = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {"FunctionName": function, "Payload": {"token.$": "$$.Task.Token", "stack.$": "$.stack", "fixed": 1}},
        "TimeoutSecondsPath": "$.timeout",
        "ResultPath": "$.result",
        "Catch": [
            {"ErrorEquals": ["States.Timeout"], "ResultPath": "$.timedOut", "Next": "Hold"},
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Hold"},
        ],
        "Next": "Hold",
    }
    if retry:
        wait["Retry"] = retry
    definition = {
        "StartAt": "Wait for callback",
        "States": {"Wait for callback": wait, "Hold": {"Type": "Wait", "SecondsPath": "$.hold", "End": True}},
    }
    return sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)["stateMachineArn"]


def invocations(function: str) -> list[tuple[str, dict, dict]]:
    return [r for r in StubLambda.requests if r[0].startswith(f"/2015-03-31/functions/{quote(function, safe='')}/")]


def next_invocation(function: str, seen: int, timeout: float = 10) -> tuple[str, dict, dict]:
    deadline = time.time() + timeout
    while len(invocations(function)) <= seen:
        assert time.time() < deadline, f"{function} was not invoked"
        time.sleep(0.05)
    return invocations(function)[seen]


def status(sfn, execution: str) -> str:
    return sfn.describe_execution(executionArn=execution)["status"]


def finished(sfn, execution: str, timeout: float = 20) -> dict:
    deadline = time.time() + timeout
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.time() < deadline, "execution did not finish"
        time.sleep(0.1)
    return described


def code(call) -> str:
    try:
        call()
    except ClientError as err:
        return err.response["Error"]["Code"]
    return "OK"


def test_wait_for_task_token_invokes_the_lambda_and_takes_send_task_success_output(sfn, name):
    function = LAMBDA.format(f"{name}-worker")
    arn = callback_machine(sfn, name, function)
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"stack": "a", "timeout": 30, "hold": 2}))["executionArn"]

    path, headers, payload = next_invocation(function, 0)
    # Invoke through MOTO_PORT's gateway, synchronously, with Parameters.Payload as the event.
    assert path == f"/2015-03-31/functions/{quote(function, safe='')}/invocations"
    assert headers.get("X-Amz-Invocation-Type", "RequestResponse") == "RequestResponse"
    token = payload.pop("token")
    assert isinstance(token, str) and token, "$$.Task.Token resolves in Parameters"
    assert payload == {"stack": "a", "fixed": 1}

    time.sleep(0.5)
    assert status(sfn, execution) == "RUNNING", "the task waits for the token, not for the Lambda's answer"
    assert code(lambda: sfn.send_task_heartbeat(taskToken=token)) == "OK"
    assert code(lambda: sfn.send_task_success(taskToken=token, output="not json")) == "InvalidOutput"
    assert code(lambda: sfn.send_task_success(taskToken=token, output=json.dumps({"deployed": "a"}))) == "OK"
    # The task is closed; the execution still runs (Hold).
    time.sleep(0.3)
    assert status(sfn, execution) == "RUNNING"
    assert code(lambda: sfn.send_task_success(taskToken=token, output="{}")) == "TaskTimedOut"
    assert code(lambda: sfn.send_task_failure(taskToken=token, error="Late")) == "TaskTimedOut"
    assert code(lambda: sfn.send_task_heartbeat(taskToken=token)) == "TaskTimedOut"
    assert code(lambda: sfn.send_task_success(taskToken="not-a-token", output="{}")) == "InvalidToken"

    done = finished(sfn, execution)
    assert done["status"] == "SUCCEEDED"
    assert json.loads(done["output"]) == {"stack": "a", "timeout": 30, "hold": 2, "result": {"deployed": "a"}}
    assert code(lambda: sfn.send_task_success(taskToken=token, output="{}")) == "TaskTimedOut"
    assert code(lambda: sfn.send_task_failure(taskToken=token, error="Late")) == "TaskTimedOut"
    assert len(invocations(function)) == 1


def test_timeout_seconds_path_times_the_task_out(sfn, name):
    function = LAMBDA.format(f"{name}-worker")
    arn = callback_machine(sfn, name, function)
    started = time.time()
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"stack": "b", "timeout": 1, "hold": 3}))["executionArn"]
    token = next_invocation(function, 0)[2]["token"]
    while "TaskStateExited" not in [e["type"] for e in sfn.get_execution_history(executionArn=execution)["events"]]:
        assert time.time() - started < 10
        time.sleep(0.1)
    assert time.time() - started >= 1.0
    assert status(sfn, execution) == "RUNNING"
    assert code(lambda: sfn.send_task_success(taskToken=token, output="{}")) == "TaskTimedOut"
    assert code(lambda: sfn.send_task_failure(taskToken=token, error="Late")) == "TaskTimedOut"
    done = finished(sfn, execution)
    assert json.loads(done["output"])["timedOut"] == {"Error": "States.Timeout", "Cause": ""}
    assert "result" not in json.loads(done["output"])


def test_send_task_failure_keeps_the_cause(sfn, name):
    function = LAMBDA.format(f"{name}-worker")
    arn = callback_machine(sfn, name, function)
    with_cause = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"stack": "c", "timeout": 30, "hold": 0}))["executionArn"]
    token = next_invocation(function, 0)[2]["token"]
    sfn.send_task_failure(taskToken=token, error="DeployFailed", cause="stack c: CREATE_FAILED")
    without_cause = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"stack": "d", "timeout": 30, "hold": 0}))["executionArn"]
    token = next_invocation(function, 1)[2]["token"]
    sfn.send_task_failure(taskToken=token, error="DeployFailed")

    done = finished(sfn, with_cause)
    assert json.loads(done["output"])["error"] == {"Error": "DeployFailed", "Cause": "stack c: CREATE_FAILED"}
    history = sfn.get_execution_history(executionArn=with_cause)["events"]
    (failed,) = [e["taskFailedEventDetails"] for e in history if e["type"] == "TaskFailed"]
    assert failed["error"] == "DeployFailed" and failed["cause"] == "stack c: CREATE_FAILED"
    assert json.loads(finished(sfn, without_cause)["output"])["error"] == {"Error": "DeployFailed", "Cause": ""}


def test_a_retry_attempt_gets_a_new_token(sfn, name):
    function = LAMBDA.format(f"{name}-worker")
    arn = callback_machine(
        sfn, name, function, retry=[{"ErrorEquals": ["Flaky"], "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 1.0}]
    )
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"stack": "e", "timeout": 30, "hold": 0}))["executionArn"]
    first = next_invocation(function, 0)[2]["token"]
    sfn.send_task_failure(taskToken=first, error="Flaky", cause="try again")
    second = next_invocation(function, 1)[2]["token"]
    assert second != first
    assert status(sfn, execution) == "RUNNING", "the retry waits for its own token"
    assert code(lambda: sfn.send_task_success(taskToken=first, output="{}")) == "TaskTimedOut"
    sfn.send_task_success(taskToken=second, output=json.dumps({"attempt": 2}))
    done = finished(sfn, execution)
    assert done["status"] == "SUCCEEDED"
    assert json.loads(done["output"])["result"] == {"attempt": 2}


def test_stop_execution_ends_a_task_waiting_for_its_callback_inside_a_map(sfn, name):
    function = LAMBDA.format(f"{name}-parked")
    wait = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {"FunctionName": function, "Payload": {"token.$": "$$.Task.Token"}},
        "TimeoutSeconds": 300,
        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "After"}],
        "Next": "After",
    }
    definition = {
        "StartAt": "M",
        "States": {"M": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "Park",
                              "States": {"Park": wait, "After": {"Type": "Pass", "End": True}}},
            "End": True,
        }},
    }
    machine = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine, input='{"items": [1]}')["executionArn"]
    _, _, body = next_invocation(function, len(invocations(function)))
    token = body["token"]
    sfn.stop_execution(executionArn=execution)
    described = finished(sfn, execution, timeout=10)
    assert described["status"] == "ABORTED", described
    assert code(lambda: sfn.send_task_success(taskToken=token, output="{}")) == "TaskTimedOut"


def _segments(sfn, child_machine: str, parent: str) -> list[dict]:
    out = []
    for e in sfn.list_executions(stateMachineArn=child_machine)["executions"]:
        described = sfn.describe_execution(executionArn=e["executionArn"])
        if json.loads(described["input"]).get("AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID") == parent:
            out.append(described)
    return out


def _parent_of(sfn, name: str, child: dict) -> tuple[str, str]:
    child_machine = sfn.create_state_machine(
        name=f"{name}-child", definition=json.dumps(child), roleArn=ROLE
    )["stateMachineArn"]
    parent = {
        "StartAt": "Run",
        "States": {"Run": {
            "Type": "Task",
            "Resource": "arn:aws:states:::states:startExecution.sync:2",
            "Parameters": {
                "StateMachineArn": child_machine,
                "Input": {"value.$": "$.value", "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$": "$$.Execution.Id"},
            },
            "ResultSelector": {"status.$": "$.Output.status", "child.$": "$.ExecutionArn"},
            "End": True,
        }},
    }
    machine = sfn.create_state_machine(name=name, definition=json.dumps(parent), roleArn=ROLE)["stateMachineArn"]
    return machine, child_machine


def test_start_execution_sync_2_takes_the_api_names_and_answers_the_child_output(sfn, name):
    child = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "Result": {"status": "done"}, "End": True}}}
    machine, child_machine = _parent_of(sfn, name, child)
    execution = sfn.start_execution(stateMachineArn=machine, input='{"value": 1}')["executionArn"]
    described = finished(sfn, execution)
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["status"] == "done", output
    [segment] = _segments(sfn, child_machine, execution)
    assert output["child"] == segment["executionArn"]
    assert json.loads(segment["input"])["value"] == 1


def test_stopping_a_parent_stops_the_segment_it_started(sfn, name):
    child = {"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 300, "End": True}}}
    machine, child_machine = _parent_of(sfn, name, child)
    execution = sfn.start_execution(stateMachineArn=machine, input='{"value": 1}')["executionArn"]
    deadline = time.time() + 20
    while not (segments := _segments(sfn, child_machine, execution)):
        assert time.time() < deadline, "the parent started no child"
        time.sleep(0.2)
    sfn.stop_execution(executionArn=execution)
    assert finished(sfn, execution)["status"] == "ABORTED"
    assert finished(sfn, segments[0]["executionArn"])["status"] == "ABORTED"

