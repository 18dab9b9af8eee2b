"""CloudFormation stack status changes as EventBridge events (cloudformation_async.py,
change_sets.py), and the ``events`` fault that loses, duplicates or delays them (faults.py)."""

from __future__ import annotations

import json
import re
import time

import pytest
from conftest import client, control, create_and_wait, events, template, wait_gone, wait_settled

STATUS_CHANGE = "CloudFormation Stack Status Change"
ISO_SECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
STACK_ARN = "arn:aws:cloudformation:us-east-1:123456789012:stack/"


@pytest.fixture
def sqs(endpoint):
    return client(endpoint, "sqs")


@pytest.fixture
def eb(endpoint):
    return client(endpoint, "events")


def status_queue(eb, sqs, name: str) -> str:
    """A queue that receives the status change events of every stack whose name starts with `name`."""
    url = sqs.create_queue(QueueName=f"{name}-status")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    eb.put_rule(
        Name=f"{name}-status",
        EventPattern=json.dumps({
            "source": ["aws.cloudformation"],
            "detail-type": [STATUS_CHANGE],
            "detail": {"stack-id": [{"prefix": f"{STACK_ARN}{name}"}]},
        }),
    )
    eb.put_targets(Rule=f"{name}-status", Targets=[{"Id": "q", "Arn": arn}])
    return url


def receive(sqs, url: str, want: int, timeout: float = 10) -> list[dict]:
    """Events in the order the queue got them, until `want` arrived (or the timeout)."""
    found: list[dict] = []
    deadline = time.time() + timeout
    while len(found) < want and time.time() < deadline:
        out = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        for message in out:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        if not out:
            time.sleep(0.05)
    return found


def by_stack(received: list[dict]) -> dict[str, list[tuple[str, str, str]]]:
    out: dict[str, list[tuple[str, str, str]]] = {}
    for event in received:
        d = event["detail"]
        name = d["stack-id"][len(STACK_ARN):].split("/")[0]
        out.setdefault(name, []).append((d["status-details"]["status"], d["status-details"]["status-reason"], d["client-request-token"]))
    return out


def stack_sequence(cf, stack: str) -> list[tuple[str, str, str]]:
    """The stack-level DescribeStackEvents, oldest first, as (status, reason, token)."""
    return [
        (e["ResourceStatus"], e.get("ResourceStatusReason") or "", e.get("ClientRequestToken") or "")
        for e in events(cf, stack)
        if e["LogicalResourceId"] == e["StackName"]
    ]


def add_fault(endpoint: str, **body: object) -> dict:
    response = control(endpoint, "POST", "faults", body)
    assert response.status_code == 201, response.text
    return response.json()


def the_fault(endpoint: str, fault_id: str) -> dict:
    return next(f for f in control(endpoint, "GET", "faults").json()["faults"] if f["id"] == fault_id)


def test_stack_status_changes_are_events_on_the_default_bus(cf, endpoint, name, eb, sqs):
    url = status_queue(eb, sqs, name)
    created = create_and_wait(cf, name, ClientRequestToken="tok-create")
    assert created["StackStatus"] == "CREATE_COMPLETE"
    cf.create_change_set(StackName=f"{name}-cs", ChangeSetName="c", ChangeSetType="CREATE", TemplateBody=template())
    cf.execute_change_set(StackName=f"{name}-cs", ChangeSetName="c", ClientRequestToken="tok-cs")
    assert wait_settled(cf, f"{name}-cs")["StackStatus"] == "CREATE_COMPLETE"
    add_fault(endpoint, kind="fail", stack=f"{name}-fail", on="create")
    assert create_and_wait(cf, f"{name}-fail")["StackStatus"] == "ROLLBACK_COMPLETE"
    expected = {
        name: stack_sequence(cf, name),
        f"{name}-cs": stack_sequence(cf, f"{name}-cs"),
        f"{name}-fail": stack_sequence(cf, f"{name}-fail"),
    }
    cf.delete_stack(StackName=name, ClientRequestToken="tok-delete")
    wait_gone(cf, name)

    received = receive(sqs, url, 12)
    got = by_stack(received)
    assert got[name] == [
        ("CREATE_IN_PROGRESS", "User Initiated", "tok-create"),
        ("CREATE_COMPLETE", "", "tok-create"),
        ("DELETE_IN_PROGRESS", "User Initiated", "tok-delete"),
        ("DELETE_COMPLETE", "", "tok-delete"),
    ]
    assert got[f"{name}-cs"] == [
        ("REVIEW_IN_PROGRESS", "User Initiated", ""),
        ("CREATE_IN_PROGRESS", "User Initiated", "tok-cs"),
        ("CREATE_COMPLETE", "", "tok-cs"),
    ]
    assert got[f"{name}-fail"] == [
        ("CREATE_IN_PROGRESS", "User Initiated", ""),
        ("ROLLBACK_IN_PROGRESS", "The following resource(s) failed to create: [Queue0]. Rollback requested by user.", ""),
        ("ROLLBACK_COMPLETE", "", ""),
    ]
    # The events are the stack-level stack events, one for one.
    for stack, sequence in expected.items():
        assert got[stack][: len(sequence)] == sequence
    assert len(received) == 10, received

    event = received[0]
    assert event["source"] == "aws.cloudformation"
    assert event["detail-type"] == STATUS_CHANGE
    assert event["account"] == "123456789012" and event["region"] == "us-east-1"
    assert event["resources"] == [created["StackId"]]
    assert event["detail"]["stack-id"] == created["StackId"]
    assert set(event["detail"]) == {"stack-id", "status-details", "client-request-token"}
    assert ISO_SECONDS.match(event["time"]), event["time"]
    assert len({e["id"] for e in received}) == len(received), "every event has its own id"


def test_events_fault_is_validated_listed_and_cleared(endpoint):
    for body, message in [
        ({"dropRate": 1.5}, "dropRate"),
        ({"duplicateRate": -0.1}, "duplicateRate"),
        ({"dropRate": "half"}, "dropRate"),
        ({"dropRate": True}, "dropRate"),
        ({"delaySeconds": -1}, "delaySeconds"),
        ({"source": ""}, "source"),
        ({"seed": [1]}, "seed"),
        ({"stacks": []}, "stacks"),
        ({"stacks": "S"}, "stacks"),
        ({"times": 2}, "unknown fields"),
    ]:
        response = control(endpoint, "POST", "faults", {"kind": "events", **body})
        assert response.status_code == 400, (body, response.text)
        assert message in response.json()["error"], (body, response.json())
    assert control(endpoint, "GET", "faults").json() == {"faults": []}

    fault = add_fault(endpoint, kind="events", dropRate=0.25, duplicateRate=0.5, delaySeconds=2, seed=3)
    assert fault["kind"] == "events" and fault["id"]
    listed = control(endpoint, "GET", "faults").json()["faults"]
    assert listed == [{
        "id": fault["id"], "kind": "events", "source": "aws.cloudformation", "dropRate": 0.25,
        "duplicateRate": 0.5, "delaySeconds": 2.0, "seed": 3, "dropped": 0, "duplicated": 0, "delayed": 0,
        "timesRemaining": None, "applied": 0,
    }]
    other = add_fault(endpoint, kind="events", source="aws.states")
    assert other["dropRate"] == 0.0 and other["duplicateRate"] == 0.0 and other["delaySeconds"] == 0.0
    assert control(endpoint, "DELETE", "faults").json() == {"cleared": 2}


def test_dropped_events_are_never_delivered(cf, endpoint, name, eb, sqs):
    url = status_queue(eb, sqs, name)
    other_source = add_fault(endpoint, kind="events", source="aws.states", dropRate=1)
    create_and_wait(cf, f"{name}-kept")
    assert [s for s, _, _ in by_stack(receive(sqs, url, 2))[f"{name}-kept"]] == ["CREATE_IN_PROGRESS", "CREATE_COMPLETE"]
    assert the_fault(endpoint, other_source["id"])["applied"] == 0, "another source's fault leaves these alone"

    fault = add_fault(endpoint, kind="events", dropRate=1)
    create_and_wait(cf, name)
    assert receive(sqs, url, 1, timeout=1.5) == []
    listed = the_fault(endpoint, fault["id"])
    assert listed["dropped"] == listed["applied"] >= 2

    control(endpoint, "DELETE", "faults")
    # Limited to named stacks: the others' events are untouched.
    only = add_fault(endpoint, kind="events", dropRate=1, stacks=[f"{name}-lost"])
    create_and_wait(cf, f"{name}-lost")
    create_and_wait(cf, f"{name}-other")
    got = by_stack(receive(sqs, url, 2))
    assert f"{name}-lost" not in got, got
    assert [s for s, _, _ in got[f"{name}-other"]] == ["CREATE_IN_PROGRESS", "CREATE_COMPLETE"]
    assert the_fault(endpoint, only["id"])["stacks"] == [f"{name}-lost"]
    assert the_fault(endpoint, only["id"])["dropped"] >= 2

    control(endpoint, "DELETE", "faults")
    cf.delete_stack(StackName=name)
    wait_gone(cf, name)
    assert [s for s, _, _ in by_stack(receive(sqs, url, 2))[name]] == ["DELETE_IN_PROGRESS", "DELETE_COMPLETE"]


def test_some_events_dropped_with_a_seed(cf, endpoint, name, eb, sqs):
    url = status_queue(eb, sqs, name)
    fault = add_fault(endpoint, kind="events", dropRate=0.5, seed=11)
    for i in range(4):
        cf.create_stack(StackName=f"{name}-{i}", TemplateBody=template())
    for i in range(4):
        wait_settled(cf, f"{name}-{i}")
    listed = the_fault(endpoint, fault["id"])
    assert listed["applied"] >= 8
    received = receive(sqs, url, 8, timeout=1.5)
    assert listed["dropped"] > 0, listed
    assert 0 < len(received) < 8, received
    assert len(received) <= listed["applied"] - listed["dropped"]
    assert len({e["id"] for e in received}) == len(received)


def test_duplicated_events_arrive_twice_with_the_same_id(cf, endpoint, name, eb, sqs):
    url = status_queue(eb, sqs, name)
    fault = add_fault(endpoint, kind="events", duplicateRate=1)
    create_and_wait(cf, name, ClientRequestToken="tok")
    received = receive(sqs, url, 4)
    time.sleep(0.3)
    received += receive(sqs, url, 1, timeout=0.2)
    assert [e["detail"]["status-details"]["status"] for e in received] == [
        "CREATE_IN_PROGRESS", "CREATE_IN_PROGRESS", "CREATE_COMPLETE", "CREATE_COMPLETE"
    ]
    assert received[0] == received[1] and received[2] == received[3]
    assert received[0]["id"] != received[2]["id"]
    assert the_fault(endpoint, fault["id"])["duplicated"] >= 2


def test_delayed_events_arrive_late_each_once(cf, endpoint, name, eb, sqs):
    url = status_queue(eb, sqs, name)
    fault = add_fault(endpoint, kind="events", delaySeconds=3, seed=5)
    for i in range(4):
        cf.create_stack(StackName=f"{name}-{i}", TemplateBody=template())
    for i in range(4):
        assert wait_settled(cf, f"{name}-{i}")["StackStatus"] == "CREATE_COMPLETE"
    early = receive(sqs, url, 8, timeout=0.1)
    assert len(early) < 8, "the events were held back"
    received = early + receive(sqs, url, 8 - len(early), timeout=5)
    assert sorted((e["detail"]["stack-id"].split("/")[1], e["detail"]["status-details"]["status"]) for e in received) == sorted(
        (f"{name}-{i}", status) for i in range(4) for status in ("CREATE_IN_PROGRESS", "CREATE_COMPLETE")
    )
    assert len({e["id"] for e in received}) == 8
    assert the_fault(endpoint, fault["id"])["delayed"] >= 8
