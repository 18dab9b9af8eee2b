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
