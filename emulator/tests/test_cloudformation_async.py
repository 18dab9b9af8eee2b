"""CloudFormation is asynchronous: statuses, events, tokens, busy stacks, deletes."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError
from conftest import (
    STACK_SECONDS,
    control,
    create_and_wait,
    events,
    sequence,
    status,
    template,
    wait_gone,
    wait_settled,
)


def test_create_is_in_progress_then_complete_with_events_in_order(cf, name):
    started = time.time()
    stack_id = cf.create_stack(StackName=name, TemplateBody=template(), ClientRequestToken="tok-create")["StackId"]
    first = cf.describe_stacks(StackName=name)["Stacks"][0]
    assert first["StackStatus"] == "CREATE_IN_PROGRESS"
    assert "Outputs" not in first
    assert cf.list_stacks()["StackSummaries"][0]["StackStatus"] in ("CREATE_IN_PROGRESS", "CREATE_COMPLETE")

    done = wait_settled(cf, name)
    elapsed = time.time() - started
    assert done["StackStatus"] == "CREATE_COMPLETE"
    assert elapsed >= STACK_SECONDS * 0.9
    assert {o["OutputKey"]: o["OutputValue"] for o in done["Outputs"]}["P"] == "a"

    evs = events(cf, name)
    assert [(e["LogicalResourceId"], e["ResourceStatus"]) for e in evs] == [
        (name, "CREATE_IN_PROGRESS"),
        ("Topic", "CREATE_IN_PROGRESS"),
        ("Topic", "CREATE_COMPLETE"),
        ("Queue0", "CREATE_IN_PROGRESS"),
        ("Queue0", "CREATE_COMPLETE"),
        (name, "CREATE_COMPLETE"),
    ]
    assert evs[0]["ResourceStatusReason"] == "User Initiated"
    assert all(e["ClientRequestToken"] == "tok-create" for e in evs)
    assert all(e["StackId"] == stack_id for e in evs)
    stamps = [e["Timestamp"] for e in evs]
    assert stamps == sorted(stamps)
    assert (stamps[-1] - stamps[0]).total_seconds() >= STACK_SECONDS * 0.9
    assert evs[2]["PhysicalResourceId"].startswith("arn:aws:sns:")
    # DescribeStackEvents is newest first
    newest = cf.describe_stack_events(StackName=name)["StackEvents"][0]
    assert newest["ResourceStatus"] == "CREATE_COMPLETE" and newest["LogicalResourceId"] == name


def test_list_stacks_and_get_template_agree(cf, name):
    cf.create_stack(StackName=name, TemplateBody=template())
    summary = next(s for s in cf.list_stacks()["StackSummaries"] if s["StackName"] == name)
    assert summary["StackStatus"] == "CREATE_IN_PROGRESS"
    assert "Topic" in cf.get_template(StackName=name)["TemplateBody"]["Resources"]
    wait_settled(cf, name)
    summary = next(s for s in cf.list_stacks()["StackSummaries"] if s["StackName"] == name)
    assert summary["StackStatus"] == "CREATE_COMPLETE"


def test_second_operation_on_a_busy_stack_is_refused(cf, name):
    cf.create_stack(StackName=name, TemplateBody=template())
    with pytest.raises(ClientError) as err:
        cf.update_stack(StackName=name, TemplateBody=template("b"))
    assert err.value.response["Error"]["Code"] == "ValidationError"
    assert err.value.response["Error"]["Message"].endswith("is in CREATE_IN_PROGRESS state and can not be updated.")
    with pytest.raises(ClientError) as err:
        cf.create_change_set(StackName=name, ChangeSetName="cs", ChangeSetType="UPDATE", TemplateBody=template("b"))
    assert "CREATE_IN_PROGRESS state and can not be updated" in str(err.value)
    with pytest.raises(ClientError) as err:
        cf.create_stack(StackName=name, TemplateBody=template())
    assert err.value.response["Error"]["Code"] == "AlreadyExistsException"
    wait_settled(cf, name)


def test_update_stack_is_asynchronous_and_outputs_change_at_the_end(cf, name):
    create_and_wait(cf, name)
    cf.update_stack(
        StackName=name,
        TemplateBody=template(extra_output=True),
        Parameters=[{"ParameterKey": "P", "ParameterValue": "b"}],
        ClientRequestToken="tok-update",
    )
    during = cf.describe_stacks(StackName=name)["Stacks"][0]
    assert during["StackStatus"] == "UPDATE_IN_PROGRESS"
    assert {o["OutputKey"]: o["OutputValue"] for o in during["Outputs"]} ["P"] == "a"
    seen = set()
    while (found := cf.describe_stacks(StackName=name)["Stacks"][0])["StackStatus"].endswith("_IN_PROGRESS"):
        seen.add(found["StackStatus"])
        time.sleep(0.02)
    assert found["StackStatus"] == "UPDATE_COMPLETE"
    assert "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS" in seen
    outputs = {o["OutputKey"]: o["OutputValue"] for o in found["Outputs"]}
    assert outputs["P"] == "b" and outputs["Extra"] == "extra-b"
    assert "LastUpdatedTime" in found
    update_events = [e for e in events(cf, name) if e.get("ClientRequestToken") == "tok-update"]
    assert [e["ResourceStatus"] for e in update_events if e["LogicalResourceId"] == name] == [
        "UPDATE_IN_PROGRESS",
        "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
        "UPDATE_COMPLETE",
    ]
    assert {e["LogicalResourceId"] for e in update_events} == {name, "Topic", "Queue0"}
    # the same token again starts nothing
    cf.update_stack(StackName=name, TemplateBody=template("c"), ClientRequestToken="tok-update")
    assert status(cf, name) == "UPDATE_COMPLETE"


def test_update_with_nothing_to_change_is_refused_as_aws_does(cf, name):
    create_and_wait(cf, name)
    for params in ([{"ParameterKey": "P", "ParameterValue": "a"}], []):
        with pytest.raises(ClientError) as err:
            cf.update_stack(StackName=name, TemplateBody=template(), Parameters=params)
        assert err.value.response["Error"]["Message"] == "No updates are to be performed."
    assert status(cf, name) == "CREATE_COMPLETE"


def test_delete_then_gone_by_name_but_found_by_id(cf, name):
    stack_id = create_and_wait(cf, name)["StackId"]
    cf.delete_stack(StackName=name, ClientRequestToken="tok-delete")
    assert status(cf, name) == "DELETE_IN_PROGRESS"
    cf.delete_stack(StackName=name, ClientRequestToken="tok-delete")  # idempotent
    wait_gone(cf, name)
    with pytest.raises(ClientError) as err:
        cf.describe_stacks(StackName=name)
    assert err.value.response["Error"]["Message"] == f"Stack with id {name} does not exist"
    by_id = cf.describe_stacks(StackName=stack_id)["Stacks"][0]
    assert by_id["StackStatus"] == "DELETE_COMPLETE"
    assert "DeletionTime" in by_id
    delete_events = [e for e in events(cf, stack_id) if e.get("ClientRequestToken") == "tok-delete"]
    assert [(e["LogicalResourceId"], e["ResourceStatus"]) for e in delete_events] == [
        (name, "DELETE_IN_PROGRESS"),
        ("Queue0", "DELETE_IN_PROGRESS"),
        ("Queue0", "DELETE_COMPLETE"),
        ("Topic", "DELETE_IN_PROGRESS"),
        ("Topic", "DELETE_COMPLETE"),
        (name, "DELETE_COMPLETE"),
    ]
    summary = next(s for s in cf.list_stacks()["StackSummaries"] if s["StackId"] == stack_id)
    assert summary["StackStatus"] == "DELETE_COMPLETE"
    cf.delete_stack(StackName=name)  # deleting a stack that no longer exists succeeds
    # the name can be used again
    assert create_and_wait(cf, name)["StackStatus"] == "CREATE_COMPLETE"


def test_per_stack_duration(cf, endpoint, name):
    assert control(endpoint, "POST", "config", {"stackSeconds": {name: 2.0}}).ok
    started = time.time()
    create_and_wait(cf, name)
    assert time.time() - started >= 1.8
    other = name + "-other"
    started = time.time()
    create_and_wait(cf, other)
    assert time.time() - started < 1.5


def test_create_stack_retry_with_the_same_token_is_idempotent(cf, name):
    first = cf.create_stack(StackName=name, TemplateBody=template(), ClientRequestToken="tok-1")["StackId"]
    again = cf.create_stack(StackName=name, TemplateBody=template(), ClientRequestToken="tok-1")["StackId"]
    assert first == again
    wait_settled(cf, name)
    assert sequence(cf, name) == ["CREATE_IN_PROGRESS", "CREATE_COMPLETE"]


def test_stack_tags_are_reported(cf, name):
    found = create_and_wait(cf, name, Tags=[{"Key": "Project", "Value": "demo"}, {"Key": "Environment", "Value": "dev"}])
    assert found["Tags"] == [{"Key": "Project", "Value": "demo"}, {"Key": "Environment", "Value": "dev"}]


def test_exports_follow_the_stack(cf, name):
    body = template().replace('"TopicArn": {"Value": {"Ref": "Topic"}}', f'"TopicArn": {{"Value": {{"Ref": "Topic"}}, "Export": {{"Name": "{name}-topic"}}}}')
    create_and_wait(cf, name, body)
    assert any(e["Name"] == f"{name}-topic" for e in cf.list_exports()["Exports"])
    cf.delete_stack(StackName=name)
    wait_gone(cf, name)
    assert not any(e["Name"] == f"{name}-topic" for e in cf.list_exports()["Exports"])
