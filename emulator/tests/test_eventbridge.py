"""S3 -> EventBridge -> Step Functions as AWS delivers it (eventbridge.py), and PutParameter's
atomic create (ssm.py)."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest
from botocore.exceptions import ClientError
from conftest import client

ROLE = "arn:aws:iam::123456789012:role/events-start-execution"
PASS_MACHINE = json.dumps({"StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "End": True}}})
ISO_SECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture
def s3(endpoint):
    return client(endpoint, "s3", s3={"addressing_style": "path"})


@pytest.fixture
def events(endpoint):
    return client(endpoint, "events")


@pytest.fixture
def sfn(endpoint):
    return client(endpoint, "stepfunctions")


@pytest.fixture
def sqs(endpoint):
    return client(endpoint, "sqs")


def manifest_pattern(bucket: str) -> str:
    """Rule 1 of template.yaml, for one bucket."""
    return json.dumps({
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [bucket]}, "object": {"key": [{"wildcard": "manifests/*/manifest.yaml"}]}},
    })


def machine(sfn, name: str) -> str:
    return sfn.create_state_machine(name=name, definition=PASS_MACHINE, roleArn=ROLE)["stateMachineArn"]


def queue(sqs, name: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def bucket_with_events(s3, name: str, versioned: bool = False) -> str:
    s3.create_bucket(Bucket=name)
    if versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}})
    return name


def executions(sfn, arn: str, count: int, timeout: float = 10) -> list[dict]:
    """Wait until `count` executions exist and have ended; returns them described, oldest first."""
    deadline = time.time() + timeout
    while True:
        found = sfn.list_executions(stateMachineArn=arn)["executions"]
        if len(found) >= count and all(e["status"] != "RUNNING" for e in found):
            described = [sfn.describe_execution(executionArn=e["executionArn"]) for e in found]
            return sorted(described, key=lambda d: d["startDate"])
        if time.time() > deadline:
            raise AssertionError(f"{len(found)} execution(s) of {arn} after {timeout}s, wanted {count}: {found}")
        time.sleep(0.1)


def messages(sqs, url: str, wait: int = 1) -> list[dict]:
    out = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait).get("Messages", [])
    return [json.loads(m["Body"]) for m in out]


def test_s3_upload_events_have_the_aws_form(endpoint, name, s3, events, sqs):
    plain = bucket_with_events(s3, f"{name}-plain")
    versioned = bucket_with_events(s3, f"{name}-versioned", versioned=True)
    url, arn = queue(sqs, f"{name}-q")
    for bucket in (plain, versioned):
        events.put_rule(Name=f"{name}-{bucket}", EventPattern=manifest_pattern(bucket))
        events.put_targets(Rule=f"{name}-{bucket}", Targets=[{"Id": "q", "Arn": arn}])

    s3.put_object(Bucket=plain, Key="manifests/dev/a/manifest.yaml", Body=b"one")
    s3.put_object(Bucket=plain, Key="manifests/dev/a/manifest.yaml", Body=b"one")
    s3.put_object(Bucket=plain, Key="deployments/dev/a/manifest.yaml", Body=b"not matched")
    put = s3.put_object(Bucket=versioned, Key="manifests/prod/manifest.yaml", Body=b"two")
    received = messages(sqs, url)
    received += messages(sqs, url, wait=0) if len(received) < 3 else []

    assert len(received) == 3, received
    by_bucket = {e["detail"]["bucket"]["name"]: [] for e in received}
    for e in received:
        by_bucket[e["detail"]["bucket"]["name"]].append(e)
    first, second = by_bucket[plain]
    for e in received:
        assert e["source"] == "aws.s3" and e["detail-type"] == "Object Created"
        assert e["account"] == "123456789012" and e["region"] == "us-east-1"
        assert ISO_SECONDS.match(e["time"]), e["time"]
        assert e["detail"]["reason"] == "PutObject"
        assert e["detail"]["requester"] == "123456789012"
        assert "eTag" not in e["detail"]["object"]
    assert first["id"] != second["id"], "every event has its own id"
    assert first["detail"]["object"]["etag"] == second["detail"]["object"]["etag"] == "f97c5d29941bfb1b2fdab0874906ab82"
    assert "version-id" not in first["detail"]["object"], "an unversioned object has no version"
    assert first["detail"]["object"]["sequencer"] < second["detail"]["object"]["sequencer"]
    (upload,) = by_bucket[versioned]
    assert upload["detail"]["object"]["version-id"] == put["VersionId"]
    assert upload["detail"]["object"]["key"] == "manifests/prod/manifest.yaml"
    assert upload["resources"] == [f"arn:aws:s3:::{versioned}"]


def test_no_event_without_eventbridge_notifications(endpoint, name, s3, events, sqs):
    s3.create_bucket(Bucket=f"{name}-quiet")
    url, arn = queue(sqs, f"{name}-q")
    events.put_rule(Name=name, EventPattern=manifest_pattern(f"{name}-quiet"))
    events.put_targets(Rule=name, Targets=[{"Id": "q", "Arn": arn}])
    s3.put_object(Bucket=f"{name}-quiet", Key="manifests/dev/manifest.yaml", Body=b"x")
    assert messages(sqs, url) == []


def test_s3_upload_starts_a_state_machine_with_the_event_as_input(endpoint, name, s3, events, sfn):
    bucket = bucket_with_events(s3, f"{name}-art", versioned=True)
    arn = machine(sfn, name)
    events.put_rule(Name=name, EventPattern=manifest_pattern(bucket))
    events.put_targets(Rule=name, Targets=[{"Id": "deploy", "Arn": arn, "RoleArn": ROLE}])

    put = s3.put_object(Bucket=bucket, Key="manifests/dev/2026/manifest.yaml", Body=b"m")
    s3.put_object(Bucket=bucket, Key="manifests/dev/2026/templates/a.yaml", Body=b"t")

    (execution,) = executions(sfn, arn, 1)
    assert execution["status"] == "SUCCEEDED"
    event = json.loads(execution["input"])
    assert event["source"] == "aws.s3" and event["detail-type"] == "Object Created"
    assert event["detail"]["object"]["key"] == "manifests/dev/2026/manifest.yaml"
    assert event["detail"]["object"]["version-id"] == put["VersionId"]
    assert ISO_SECONDS.match(event["time"])
    assert "ingestion-time" not in event
    assert json.loads(execution["output"]) == event
    time.sleep(0.5)
    assert len(sfn.list_executions(stateMachineArn=arn)["executions"]) == 1, "the template upload matched nothing"


def test_put_events_starts_a_state_machine(endpoint, name, events, sfn):
    arn = machine(sfn, name)
    source = f"{name}.ci"
    events.put_rule(Name=name, EventPattern=json.dumps({"source": [source], "detail-type": ["Deployment Requested"]}))
    events.put_targets(Rule=name, Targets=[{"Id": "deploy", "Arn": arn, "RoleArn": ROLE}])
    detail = {"manifest": "s3://bucket/deployments/dev/t/manifest.yaml", "environment": "dev"}

    answer = events.put_events(Entries=[
        {"Source": source, "DetailType": "Deployment Requested", "Detail": json.dumps(detail)},
        {"Source": source, "DetailType": "Something Else", "Detail": json.dumps(detail)},
    ])

    assert answer["FailedEntryCount"] == 0
    (execution,) = executions(sfn, arn, 1)
    event = json.loads(execution["input"])
    assert event["id"] == answer["Entries"][0]["EventId"]
    assert event["source"] == source and event["detail-type"] == "Deployment Requested"
    assert event["detail"] == detail
    assert event["account"] == "123456789012"
    assert ISO_SECONDS.match(event["time"]), event["time"]


def test_target_input_options_and_disabled_rules(endpoint, name, events, sfn):
    arn = machine(sfn, name)
    source = f"{name}.src"
    pattern = json.dumps({"source": [source]})
    events.put_rule(Name=f"{name}-path", EventPattern=pattern)
    events.put_targets(Rule=f"{name}-path", Targets=[
        {"Id": "path", "Arn": arn, "RoleArn": ROLE, "InputPath": "$.detail"},
        {"Id": "constant", "Arn": arn, "RoleArn": ROLE, "Input": json.dumps({"fixed": True})},
        {"Id": "transformed", "Arn": arn, "RoleArn": ROLE, "InputTransformer": {
            "InputPathsMap": {"env": "$.detail.environment"},
            "InputTemplate": '{"environment": "<env>"}',
        }},
    ])
    events.put_rule(Name=f"{name}-off", EventPattern=pattern, State="DISABLED")
    events.put_targets(Rule=f"{name}-off", Targets=[{"Id": "off", "Arn": arn, "RoleArn": ROLE}])

    events.put_events(Entries=[{"Source": source, "DetailType": "x", "Detail": json.dumps({"environment": "qa"})}])

    inputs = sorted(json.dumps(json.loads(e["input"]), sort_keys=True) for e in executions(sfn, arn, 3))
    time.sleep(0.5)
    assert len(sfn.list_executions(stateMachineArn=arn)["executions"]) == 3, "the disabled rule started nothing"
    assert inputs == sorted([
        json.dumps({"environment": "qa"}),
        json.dumps({"fixed": True}),
        json.dumps({"environment": "qa"}),
    ])


def test_other_targets_of_a_rule_still_get_the_event(endpoint, name, events, sfn, sqs):
    arn = machine(sfn, name)
    url, queue_arn = queue(sqs, f"{name}-q")
    source = f"{name}.both"
    events.put_rule(Name=name, EventPattern=json.dumps({"source": [source]}))
    events.put_targets(Rule=name, Targets=[
        {"Id": "machine", "Arn": arn, "RoleArn": ROLE},
        {"Id": "queue", "Arn": queue_arn},
    ])
    events.put_events(Entries=[{"Source": source, "DetailType": "x", "Detail": "{}"}])
    assert len(executions(sfn, arn, 1)) == 1
    (message,) = messages(sqs, url)
    assert message["source"] == source


def test_put_parameter_without_overwrite_creates_once(endpoint, name):
    ssm = client(endpoint, "ssm", max_pool_connections=16)
    parameter = f"/{name}/events/claim"
    outcomes: list[str] = []
    barrier = threading.Barrier(12)

    def claim(n: int) -> None:
        barrier.wait()
        try:
            ssm.put_parameter(Name=parameter, Value=f"execution-{n}", Type="String", Overwrite=False)
            outcomes.append(f"created by {n}")
        except ClientError as err:
            outcomes.append(err.response["Error"]["Code"])

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    created = [o for o in outcomes if o.startswith("created by ")]
    assert len(created) == 1, outcomes
    assert outcomes.count("ParameterAlreadyExists") == 11, outcomes
    winner = created[0].removeprefix("created by ")
    stored = ssm.get_parameter(Name=parameter)["Parameter"]
    assert stored["Value"] == f"execution-{winner}" and stored["Version"] == 1


STATUS_CHANGE = "Step Functions Execution Status Change"


def status_events(sqs, url: str, want: int, timeout: float = 30) -> list[dict]:
    """Status events until `want` distinct (execution, status) pairs arrived: EventBridge
    delivers at least once, so a copy does not count as another change."""
    deadline = time.time() + timeout
    found: list[dict] = []
    while len({(e["detail"]["executionArn"], e["detail"]["status"]) for e in found}) < want and time.time() < deadline:
        found.extend(messages(sqs, url))
    return found


def test_execution_status_changes_are_events_on_the_default_bus(endpoint, name, events, sfn, sqs):
    waiting = sfn.create_state_machine(
        name=f"{name}-wait",
        definition=json.dumps({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": True}}}),
        roleArn=ROLE,
    )["stateMachineArn"]
    failing = sfn.create_state_machine(
        name=f"{name}-fail",
        definition=json.dumps({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Boom", "Cause": "it broke"}}}),
        roleArn=ROLE,
    )["stateMachineArn"]
    in_map = sfn.create_state_machine(
        name=f"{name}-map",
        definition=json.dumps({
            "StartAt": "M",
            "States": {"M": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "Iterator": {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": True}}},
                "End": True,
            }},
        }),
        roleArn=ROLE,
    )["stateMachineArn"]
    passing = machine(sfn, f"{name}-pass")
    url, queue_arn = queue(sqs, f"{name}-status")
    events.put_rule(
        Name=name,
        EventPattern=json.dumps({
            "source": ["aws.states"],
            "detail-type": [STATUS_CHANGE],
            "detail": {"stateMachineArn": [waiting, failing, passing, in_map]},
        }),
    )
    events.put_targets(Rule=name, Targets=[{"Id": "q", "Arn": queue_arn}])

    stopped_in_map = sfn.start_execution(stateMachineArn=in_map, input='{"items": [1, 2]}')["executionArn"]
    stopped = sfn.start_execution(stateMachineArn=waiting, name=f"{name}-stopped", input='{"a": 1}')["executionArn"]
    time.sleep(0.5)
    sfn.stop_execution(executionArn=stopped)
    sfn.stop_execution(executionArn=stopped_in_map)
    failed = sfn.start_execution(stateMachineArn=failing, input="{}")["executionArn"]
    succeeded = sfn.start_execution(stateMachineArn=passing, input='{"b": 2}')["executionArn"]
    got = status_events(sqs, url, 8)
    by = {(e["detail"]["executionArn"], e["detail"]["status"]): e for e in got}
    names = {stopped_in_map: "stopped in map", stopped: "stopped", failed: "failed", succeeded: "succeeded"}
    seen = sorted((names.get(arn, arn), s) for (arn, s) in by)
    assert sorted(s for (_, s) in by) == ["ABORTED", "ABORTED", "FAILED", "RUNNING", "RUNNING", "RUNNING", "RUNNING", "SUCCEEDED"], seen
    # Stopped inside a Map iteration: ABORTED too, with no error.
    assert by[(stopped_in_map, "ABORTED")]["detail"]["error"] is None
    assert sfn.describe_execution(executionArn=stopped_in_map)["status"] == "ABORTED"

    aborted = by[(stopped, "ABORTED")]
    assert aborted["source"] == "aws.states"
    assert aborted["detail-type"] == STATUS_CHANGE
    assert aborted["resources"] == [stopped]
    assert ISO_SECONDS.match(aborted["time"])
    d = aborted["detail"]
    assert d["stateMachineArn"] == waiting
    assert d["name"] == f"{name}-stopped"
    assert json.loads(d["input"]) == {"a": 1}
    assert isinstance(d["startDate"], int) and isinstance(d["stopDate"], int) and d["stopDate"] >= d["startDate"]
    assert by[(stopped, "RUNNING")]["detail"]["stopDate"] is None
    assert by[(failed, "FAILED")]["detail"]["error"] == "Boom"
    assert by[(failed, "FAILED")]["detail"]["cause"] == "it broke"
    assert json.loads(by[(succeeded, "SUCCEEDED")]["detail"]["output"]) == {"b": 2}


def test_a_lambda_target_is_invoked_with_the_event(endpoint, name, events):
    from conftest import StubLambda

    source = f"{name}.lambda"
    function = "arn:aws:lambda:us-east-1:123456789012:function:echo"
    events.put_rule(Name=name, EventPattern=json.dumps({"source": [source]}))
    events.put_targets(Rule=name, Targets=[{"Id": "fn", "Arn": function}])
    events.put_events(Entries=[{"Source": source, "DetailType": "x", "Detail": json.dumps({"k": name})}])
    deadline = time.time() + 10
    while time.time() < deadline:
        calls = [body for fn, body in StubLambda.calls if fn == "echo" and isinstance(body, dict) and body.get("source") == source]
        if calls:
            break
        time.sleep(0.1)
    assert len(calls) == 1, StubLambda.calls[-5:]
    (event,) = calls
    assert event["detail"] == {"k": name}
    assert event["detail-type"] == "x"
    assert ISO_SECONDS.match(event["time"])
