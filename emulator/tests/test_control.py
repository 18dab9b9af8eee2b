"""The control API."""

from __future__ import annotations

import requests
from conftest import STACK_SECONDS, control


def test_health(endpoint):
    response = control(endpoint, "GET", "health")
    assert response.status_code == 200
    assert response.json() == {"ok": True}


def test_config_merges_and_reset_restores_the_defaults(endpoint):
    assert control(endpoint, "GET", "config").json() == {
        "defaultStackSeconds": STACK_SECONDS, "stackSeconds": {}, "changeSetSeconds": 0.0,
    }
    assert control(endpoint, "POST", "config", {"defaultStackSeconds": 2, "stackSeconds": {"A": 15}}).ok
    assert control(endpoint, "POST", "config", {"stackSeconds": {"B": 1.5}}).json() == {
        "defaultStackSeconds": 2.0, "stackSeconds": {"A": 15.0, "B": 1.5}, "changeSetSeconds": 0.0,
    }
    assert control(endpoint, "POST", "config", {"stackSeconds": {"A": None}}).json()["stackSeconds"] == {"B": 1.5}
    control(endpoint, "POST", "faults", {"kind": "throttle", "api": "DescribeStacks", "rate": 0.1})
    reset = control(endpoint, "POST", "reset").json()
    assert reset["ok"] is True and reset["faultsCleared"] == 1
    assert control(endpoint, "GET", "config").json()["defaultStackSeconds"] == STACK_SECONDS


def test_bad_config_is_refused_and_nothing_applied(endpoint):
    for body in ({"defaultStackSeconds": -1}, {"stackSeconds": {"A": "x"}}, {"speed": 3}, {"defaultStackSeconds": 3, "stackSeconds": []}):
        response = control(endpoint, "POST", "config", body)
        assert response.status_code == 400, body
    assert control(endpoint, "GET", "config").json()["defaultStackSeconds"] == STACK_SECONDS
    response = requests.post(f"{endpoint}/_stackwave/config", data="{not json", timeout=5)
    assert response.status_code == 400


def test_unknown_control_paths_and_methods(endpoint):
    assert control(endpoint, "GET", "nothing").status_code == 404
    assert control(endpoint, "DELETE", "config").status_code == 405
    assert control(endpoint, "GET", "reset").status_code == 405


def test_moto_api_still_answers(endpoint):
    assert requests.get(f"{endpoint}/moto-api/data.json", timeout=5).ok


def test_a_lambda_fault_is_taken_once_per_invocation_for_its_function_only(endpoint):
    fault = control(endpoint, "POST", "faults", {"kind": "lambda", "function": "stackwave-check", "error": "Sandbox.Timedout", "times": 2})
    assert fault.status_code == 201, fault.text
    assert fault.json()["function"] == "check" and fault.json()["error"] == "Sandbox.Timedout"
    try:
        assert control(endpoint, "POST", "faults/lambda/take", {"function": "stackwave-plan"}).json()["error"] is None
        taken = [control(endpoint, "POST", "faults/lambda/take", {"function": name}).json()["error"] for name in ("stackwave-check", "check", "stackwave-check")]
        assert taken == ["Sandbox.Timedout", "Sandbox.Timedout", None]
        assert all(f["kind"] != "lambda" for f in control(endpoint, "GET", "faults").json()["faults"])
    finally:
        control(endpoint, "DELETE", f"faults/{fault.json()['id']}")
    scoped = control(endpoint, "POST", "faults", {"kind": "lambda", "function": "check", "error": "Lambda.Unknown", "environment": "dev"}).json()
    assert control(endpoint, "POST", "faults/lambda/take", {"function": "check", "environment": "prod"}).json()["error"] is None
    assert control(endpoint, "POST", "faults/lambda/take", {"function": "check"}).json()["error"] is None
    assert control(endpoint, "POST", "faults/lambda/take", {"function": "check", "environment": "dev"}).json()["error"] == "Lambda.Unknown"
    assert all(f["id"] != scoped["id"] for f in control(endpoint, "GET", "faults").json()["faults"])
    for bad in ({"kind": "lambda", "function": "check", "error": "Boom"}, {"kind": "lambda", "error": "Lambda.Unknown"}):
        assert control(endpoint, "POST", "faults", bad).status_code == 400, bad
    assert control(endpoint, "GET", "faults/lambda/take").status_code == 405


def test_a_lambda_fault_with_a_stack_is_taken_only_for_that_stack(endpoint):
    fault = control(endpoint, "POST", "faults", {"kind": "lambda", "function": "deploy-stack", "error": "Lambda.Unknown", "times": 2, "environment": "dev", "stack": "App"})
    assert fault.status_code == 201, fault.text
    assert fault.json()["stack"] == "App"
    try:
        take = lambda **kw: control(endpoint, "POST", "faults/lambda/take", {"function": "deploy-stack", "environment": "dev", **kw}).json()["error"]
        assert take(stack="Db") is None
        assert take() is None
        assert take(stack="App") == "Lambda.Unknown"
        assert take(stack="App") == "Lambda.Unknown"
        assert take(stack="App") is None
    finally:
        control(endpoint, "DELETE", f"faults/{fault.json()['id']}")
    assert control(endpoint, "POST", "faults", {"kind": "lambda", "function": "deploy-stack", "error": "Lambda.Unknown", "stack": ""}).status_code == 400
