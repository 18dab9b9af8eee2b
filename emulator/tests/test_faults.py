"""Fault injection: each kind through the real CloudFormation status sequences."""

from __future__ import annotations

import time

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from conftest import control, create_and_wait, events, sequence, status, template, wait_gone, wait_settled


def add_fault(endpoint: str, **body: object) -> dict:
    response = control(endpoint, "POST", "faults", body)
    assert response.status_code == 201, response.text
    return response.json()


def outputs(cf, stack: str) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in cf.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])}


def test_fail_on_create_rolls_back_with_the_reason_on_the_resource(cf, endpoint, name):
    add_fault(endpoint, kind="fail", stack=name, on="create", resource="Topic", reason="Topic quota exceeded")
    found = create_and_wait(cf, name, ClientRequestToken="tok-c")
    assert found["StackStatus"] == "ROLLBACK_COMPLETE"
    assert "Outputs" not in found
    assert sequence(cf, name) == ["CREATE_IN_PROGRESS", "ROLLBACK_IN_PROGRESS", "ROLLBACK_COMPLETE"]
    evs = events(cf, name)
    failed = [e for e in evs if e["ResourceStatus"] == "CREATE_FAILED"]
    assert [(e["LogicalResourceId"], e["ResourceType"], e["ResourceStatusReason"]) for e in failed] == [
        ("Topic", "AWS::SNS::Topic", "Topic quota exceeded")
    ]
    rollback = next(e for e in evs if e["ResourceStatus"] == "ROLLBACK_IN_PROGRESS")
    assert rollback["ResourceStatusReason"] == "The following resource(s) failed to create: [Topic]. Rollback requested by user."
    assert ("Topic", "DELETE_COMPLETE") in [(e["LogicalResourceId"], e["ResourceStatus"]) for e in evs]
    assert all(e["ClientRequestToken"] == "tok-c" for e in evs)
    # AWS: a ROLLBACK_COMPLETE stack cannot be updated, only deleted; then it can be created again
    with pytest.raises(ClientError) as err:
        cf.update_stack(StackName=name, TemplateBody=template("b"))
    assert "ROLLBACK_COMPLETE state and can not be updated" in str(err.value)
    cf.delete_stack(StackName=name)
    wait_gone(cf, name)
    assert create_and_wait(cf, name)["StackStatus"] == "CREATE_COMPLETE"
    assert control(endpoint, "GET", "faults").json() == {"faults": []}


def test_fail_on_create_through_a_change_set(cf, endpoint, name):
    add_fault(endpoint, kind="fail", stack=name, on="create")
    cf.create_change_set(StackName=name, ChangeSetName="c", ChangeSetType="CREATE", TemplateBody=template())
    cf.execute_change_set(StackName=name, ChangeSetName="c", ClientRequestToken="tok")
    assert wait_settled(cf, name)["StackStatus"] == "ROLLBACK_COMPLETE"
    assert cf.describe_change_set(StackName=name, ChangeSetName="c")["ExecutionStatus"] == "EXECUTE_FAILED"
    failed = [e for e in events(cf, name) if e["ResourceStatus"] == "CREATE_FAILED"]
    assert failed[0]["LogicalResourceId"] == "Queue0"  # the last resource by default


def test_fail_on_create_with_rollback_disabled(cf, endpoint, name):
    add_fault(endpoint, kind="fail", stack=name, on="create")
    found = create_and_wait(cf, name, DisableRollback=True)
    assert found["StackStatus"] == "CREATE_FAILED"
    assert found["StackStatusReason"] == "The following resource(s) failed to create: [Queue0]. "


def test_fail_on_update_rolls_back_template_parameters_and_outputs(cf, endpoint, name):
    create_and_wait(cf, name, Parameters=[{"ParameterKey": "P", "ParameterValue": "old"}])
    add_fault(endpoint, kind="fail", stack=name, on="update", resource="Topic", reason="Invalid request")
    cf.create_change_set(
        StackName=name, ChangeSetName="u", ChangeSetType="UPDATE", TemplateBody=template(extra_output=True),
        Parameters=[{"ParameterKey": "P", "ParameterValue": "new"}],
    )
    cf.execute_change_set(StackName=name, ChangeSetName="u", ClientRequestToken="tok-u")
    found = wait_settled(cf, name)
    assert found["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert sequence(cf, name)[-4:] == [
        "UPDATE_IN_PROGRESS",
        "UPDATE_ROLLBACK_IN_PROGRESS",
        "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
        "UPDATE_ROLLBACK_COMPLETE",
    ]
    failed = [e for e in events(cf, name) if e["ResourceStatus"] == "UPDATE_FAILED"]
    assert [(e["LogicalResourceId"], e["ResourceStatusReason"], e["ClientRequestToken"]) for e in failed] == [
        ("Topic", "Invalid request", "tok-u")
    ]
    assert outputs(cf, name) == {"P": "old", "TopicArn": outputs(cf, name)["TopicArn"]}
    assert found["Parameters"] == [{"ParameterKey": "P", "ParameterValue": "old"}]
    assert "Extra" not in cf.get_template(StackName=name)["TemplateBody"]["Outputs"]
    assert cf.describe_change_set(StackName=name, ChangeSetName="u")["ExecutionStatus"] == "EXECUTE_FAILED"
    # the stack can be updated again
    cf.update_stack(StackName=name, TemplateBody=template(), Parameters=[{"ParameterKey": "P", "ParameterValue": "newer"}])
    assert wait_settled(cf, name)["StackStatus"] == "UPDATE_COMPLETE"
    assert outputs(cf, name)["P"] == "newer"


def test_fail_on_rollback_then_continue_update_rollback(cf, endpoint, name):
    create_and_wait(cf, name)
    add_fault(endpoint, kind="fail", stack=name, on="rollback", reason="Rollback blocked")
    cf.update_stack(StackName=name, TemplateBody=template("b"))
    found = wait_settled(cf, name)
    assert found["StackStatus"] == "UPDATE_ROLLBACK_FAILED"
    assert found["StackStatusReason"].startswith("The following resource(s) failed to update: [")
    assert any(e.get("ResourceStatusReason") == "Rollback blocked" for e in events(cf, name))
    with pytest.raises(ClientError) as err:
        cf.update_stack(StackName=name, TemplateBody=template("c"))
    assert "UPDATE_ROLLBACK_FAILED state and can not be updated" in str(err.value)
    cf.continue_update_rollback(StackName=name, ClientRequestToken="tok-continue")
    assert status(cf, name) == "UPDATE_ROLLBACK_IN_PROGRESS"
    assert wait_settled(cf, name)["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert outputs(cf, name)["P"] == "a"
    assert events(cf, name)[-1]["ClientRequestToken"] == "tok-continue"
    with pytest.raises(ClientError):
        cf.continue_update_rollback(StackName=name)


def test_fail_on_rollback_of_a_create(cf, endpoint, name):
    add_fault(endpoint, kind="fail", stack=name, on="create")
    add_fault(endpoint, kind="fail", stack=name, on="rollback", resource="Topic")
    found = create_and_wait(cf, name)
    assert found["StackStatus"] == "ROLLBACK_FAILED"
    assert found["StackStatusReason"] == "The following resource(s) failed to delete: [Topic]. "
    cf.delete_stack(StackName=name)
    wait_gone(cf, name)


def test_fail_on_delete(cf, endpoint, name):
    create_and_wait(cf, name)
    add_fault(endpoint, kind="fail", stack=name, on="delete", resource="Topic", reason="Topic in use")
    cf.delete_stack(StackName=name)
    found = wait_settled(cf, name)
    assert found["StackStatus"] == "DELETE_FAILED"
    assert found["StackStatusReason"] == "The following resource(s) failed to delete: [Topic]. "
    assert any(e["ResourceStatus"] == "DELETE_FAILED" and e["ResourceStatusReason"] == "Topic in use" for e in events(cf, name))
    cf.delete_stack(StackName=name)  # the fault applied once: the retry deletes it
    wait_gone(cf, name)


def test_hang_keeps_the_stack_in_progress(cf, endpoint, name):
    add_fault(endpoint, kind="hang", stack=name, on="create", seconds=1.5)
    started = time.time()
    cf.create_stack(StackName=name, TemplateBody=template())
    time.sleep(1.0)
    assert status(cf, name) == "CREATE_IN_PROGRESS"
    assert wait_settled(cf, name)["StackStatus"] == "CREATE_COMPLETE"
    assert time.time() - started >= 1.4


def test_hang_on_update_until_cancel_update_stack(cf, endpoint, name):
    create_and_wait(cf, name)
    add_fault(endpoint, kind="hang", stack=name, on="update", seconds=60)
    cf.update_stack(StackName=name, TemplateBody=template("b", extra_output=True))
    time.sleep(0.5)
    assert status(cf, name) == "UPDATE_IN_PROGRESS"
    with pytest.raises(ClientError) as err:
        cf.delete_stack(StackName=name)
    assert "cannot be deleted while in status UPDATE_IN_PROGRESS" in str(err.value)
    cf.cancel_update_stack(StackName=name)
    assert status(cf, name) == "UPDATE_ROLLBACK_IN_PROGRESS"
    found = wait_settled(cf, name)
    assert found["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert outputs(cf, name)["P"] == "a"
    reasons = [e.get("ResourceStatusReason") for e in events(cf, name) if e["ResourceStatus"] == "UPDATE_ROLLBACK_IN_PROGRESS"]
    assert reasons == ["Stack update cancelled"]
    with pytest.raises(ClientError) as err:
        cf.cancel_update_stack(StackName=name)
    assert err.value.response["Error"]["Message"] == "CancelUpdateStack cannot be called from current stack status"


def test_hang_on_delete(cf, endpoint, name):
    create_and_wait(cf, name)
    add_fault(endpoint, kind="hang", stack=name, on="delete", seconds=1.0)
    cf.delete_stack(StackName=name)
    time.sleep(0.6)
    assert status(cf, name) == "DELETE_IN_PROGRESS"
    wait_gone(cf, name)


def test_throttle_answers_the_query_protocol_error(cf, endpoint, name):
    add_fault(endpoint, kind="throttle", api="DescribeStacks", rate=1.0, times=2)
    for _ in range(2):
        with pytest.raises(ClientError) as err:
            cf.describe_stacks()
        assert err.value.response["Error"] == {"Type": "Sender", "Code": "Throttling", "Message": "Rate exceeded"}
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    cf.describe_stacks()  # used up

    add_fault(endpoint, kind="throttle", api="ListStacks", rate=1.0, times=1)
    raw = requests.post(
        endpoint,
        data={"Action": "ListStacks", "Version": "2010-05-15"},
        headers={"Authorization": "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/cloudformation/aws4_request, SignedHeaders=host, Signature=0"},
        timeout=5,
    )
    assert raw.status_code == 400
    assert "<Code>Throttling</Code>" in raw.text and "<Message>Rate exceeded</Message>" in raw.text
    assert raw.text.startswith("<ErrorResponse")


def test_throttle_a_share_of_calls_and_sdk_retries_absorb_it(endpoint, name):
    add_fault(endpoint, kind="throttle", api="DescribeStacks", rate=0.3, seed=7)
    cf = boto3.client(
        "cloudformation", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t",
        config=Config(retries={"mode": "standard", "total_max_attempts": 10}),
    )
    for _ in range(20):
        cf.describe_stacks()
    applied = control(endpoint, "GET", "faults").json()["faults"][0]["applied"]
    assert 1 <= applied <= 20


def test_faults_are_listed_and_cleared(endpoint):
    a = add_fault(endpoint, kind="fail", stack="X", on="update", times=2)
    b = add_fault(endpoint, kind="throttle", api="DescribeStacks", rate=0.3)
    listed = control(endpoint, "GET", "faults").json()["faults"]
    assert [f["id"] for f in listed] == [a["id"], b["id"]]
    assert listed[0]["timesRemaining"] == 2 and listed[1]["timesRemaining"] is None
    assert control(endpoint, "DELETE", f"faults/{a['id']}").json() == {"removed": True}
    assert control(endpoint, "DELETE", f"faults/{a['id']}").status_code == 404
    assert control(endpoint, "DELETE", "faults").json() == {"cleared": 1}
    assert control(endpoint, "GET", "faults").json() == {"faults": []}


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "explode", "stack": "X"},
        {"kind": "fail", "stack": "X", "on": "sometimes"},
        {"kind": "fail", "on": "create"},
        {"kind": "hang", "stack": "X", "on": "rollback", "seconds": 1},
        {"kind": "hang", "stack": "X", "on": "update"},
        {"kind": "throttle", "rate": 0.3},
        {"kind": "throttle", "api": "DescribeStacks", "rate": 1.5},
        {"kind": "fail", "stack": "X", "on": "create", "times": 0},
        {"kind": "fail", "stack": "X", "on": "create", "colour": "red"},
    ],
)
def test_bad_faults_are_refused(endpoint, body):
    response = control(endpoint, "POST", "faults", body)
    assert response.status_code == 400
    assert response.json()["error"]
