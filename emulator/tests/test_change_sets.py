"""Change sets: AWS's forms, outputs after execution, idempotency, per-stack names."""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError
from conftest import client, control, create_and_wait, events, status, template, wait_settled

NO_CHANGES = "The submitted information didn't contain changes. Submit different information to create a change set."


def outputs(cf, stack: str) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in cf.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])}


def create_via_change_set(cf, stack: str, body: str | None = None, token: str = "tok-exec", **kwargs: object) -> None:
    cf.create_change_set(StackName=stack, ChangeSetName="create", ChangeSetType="CREATE", TemplateBody=body or template(), **kwargs)
    cf.execute_change_set(StackName=stack, ChangeSetName="create", ClientRequestToken=token)
    assert wait_settled(cf, stack)["StackStatus"] == "CREATE_COMPLETE"


def test_create_change_set_puts_the_stack_in_review_then_creates_it_with_outputs(cf, name):
    cf.create_change_set(
        StackName=name, ChangeSetName="create", ChangeSetType="CREATE", TemplateBody=template(),
        Parameters=[{"ParameterKey": "P", "ParameterValue": "x"}], Tags=[{"Key": "Project", "Value": "demo"}],
    )
    assert status(cf, name) == "REVIEW_IN_PROGRESS"
    described = cf.describe_change_set(StackName=name, ChangeSetName="create")
    assert (described["Status"], described["ExecutionStatus"]) == ("CREATE_COMPLETE", "AVAILABLE")
    assert described["Tags"] == [{"Key": "Project", "Value": "demo"}]
    assert {c["ResourceChange"]["Action"] for c in described["Changes"]} == {"Add"}
    cf.execute_change_set(StackName=name, ChangeSetName="create", ClientRequestToken="tok-exec")
    assert status(cf, name) == "CREATE_IN_PROGRESS"
    assert cf.describe_change_set(StackName=name, ChangeSetName="create")["ExecutionStatus"] == "EXECUTE_IN_PROGRESS"
    found = wait_settled(cf, name)
    assert found["StackStatus"] == "CREATE_COMPLETE"
    assert outputs(cf, name)["P"] == "x"
    assert found["Tags"] == [{"Key": "Project", "Value": "demo"}]
    assert cf.describe_change_set(StackName=name, ChangeSetName="create")["ExecutionStatus"] == "EXECUTE_COMPLETE"
    evs = events(cf, name)
    assert [e["ResourceStatus"] for e in evs if e["LogicalResourceId"] == name] == [
        "REVIEW_IN_PROGRESS", "CREATE_IN_PROGRESS", "CREATE_COMPLETE",
    ]
    assert all(e["ClientRequestToken"] == "tok-exec" for e in evs[1:])


def test_no_change_change_set_has_the_aws_form(cf, name):
    create_via_change_set(cf, name, Parameters=[{"ParameterKey": "P", "ParameterValue": "x"}], Tags=[{"Key": "k", "Value": "v"}])
    cf.create_change_set(
        StackName=name, ChangeSetName="same", ChangeSetType="UPDATE", TemplateBody=template(),
        Parameters=[{"ParameterKey": "P", "ParameterValue": "x"}], Tags=[{"Key": "k", "Value": "v"}],
    )
    described = cf.describe_change_set(StackName=name, ChangeSetName="same")
    assert described["Status"] == "FAILED"
    assert described["ExecutionStatus"] == "UNAVAILABLE"
    assert described["StatusReason"] == NO_CHANGES
    with pytest.raises(ClientError) as err:
        cf.execute_change_set(StackName=name, ChangeSetName="same")
    assert err.value.response["Error"]["Code"] == "InvalidChangeSetStatus"
    # a different tag value is a change
    cf.create_change_set(
        StackName=name, ChangeSetName="tags", ChangeSetType="UPDATE", TemplateBody=template(),
        Parameters=[{"ParameterKey": "P", "ParameterValue": "x"}], Tags=[{"Key": "k", "Value": "w"}],
    )
    assert cf.describe_change_set(StackName=name, ChangeSetName="tags")["Status"] == "CREATE_COMPLETE"


def test_no_change_from_a_template_url(cf, endpoint, name):
    s3 = client(endpoint, "s3")
    bucket = f"{name}-bucket"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="t/stack.json", Body=template().encode())
    url = f"{endpoint}/{bucket}/t/stack.json"
    cf.create_change_set(StackName=name, ChangeSetName="create", ChangeSetType="CREATE", TemplateURL=url)
    cf.execute_change_set(StackName=name, ChangeSetName="create")
    wait_settled(cf, name)
    cf.create_change_set(StackName=name, ChangeSetName="again", ChangeSetType="UPDATE", TemplateURL=f"https://{bucket}.s3.amazonaws.com/t/stack.json")
    assert cf.describe_change_set(StackName=name, ChangeSetName="again")["StatusReason"] == NO_CHANGES


def test_outputs_after_a_change_set_update_are_the_new_ones(cf, name):
    create_via_change_set(cf, name, Parameters=[{"ParameterKey": "P", "ParameterValue": "x"}])
    assert "Extra" not in outputs(cf, name)
    cf.create_change_set(
        StackName=name, ChangeSetName="update", ChangeSetType="UPDATE", TemplateBody=template(extra_output=True),
        Parameters=[{"ParameterKey": "P", "ParameterValue": "y"}],
    )
    described = cf.describe_change_set(StackName=name, ChangeSetName="update")
    assert described["Status"] == "CREATE_COMPLETE"
    assert {c["ResourceChange"]["LogicalResourceId"] for c in described["Changes"]} == {"Topic", "Queue0"}
    cf.execute_change_set(StackName=name, ChangeSetName="update", ClientRequestToken="tok-up")
    assert status(cf, name) == "UPDATE_IN_PROGRESS"
    assert outputs(cf, name) == {"P": "x", "TopicArn": outputs(cf, name)["TopicArn"]}
    assert wait_settled(cf, name)["StackStatus"] == "UPDATE_COMPLETE"
    assert outputs(cf, name)["P"] == "y"
    assert outputs(cf, name)["Extra"] == "extra-y"
    params = cf.describe_stacks(StackName=name)["Stacks"][0]["Parameters"]
    assert params == [{"ParameterKey": "P", "ParameterValue": "y"}]
    # and now the same inputs are "no changes"
    cf.create_change_set(
        StackName=name, ChangeSetName="same", ChangeSetType="UPDATE", TemplateBody=template(extra_output=True),
        Parameters=[{"ParameterKey": "P", "ParameterValue": "y"}],
    )
    assert cf.describe_change_set(StackName=name, ChangeSetName="same")["Status"] == "FAILED"


def test_execute_change_set_retry_with_the_same_token_starts_nothing(cf, name):
    create_via_change_set(cf, name)
    cf.create_change_set(StackName=name, ChangeSetName="update", ChangeSetType="UPDATE", TemplateBody=template("b"))
    cf.execute_change_set(StackName=name, ChangeSetName="update", ClientRequestToken="tok-1")
    cf.execute_change_set(StackName=name, ChangeSetName="update", ClientRequestToken="tok-1")
    wait_settled(cf, name)
    cf.execute_change_set(StackName=name, ChangeSetName="update", ClientRequestToken="tok-1")
    assert status(cf, name) == "UPDATE_COMPLETE"
    assert [e["ResourceStatus"] for e in events(cf, name) if e["LogicalResourceId"] == name].count("UPDATE_IN_PROGRESS") == 1
    with pytest.raises(ClientError) as err:
        cf.execute_change_set(StackName=name, ChangeSetName="update", ClientRequestToken="tok-2")
    assert err.value.response["Error"]["Code"] == "InvalidChangeSetStatus"
    assert "EXECUTE_COMPLETE" in err.value.response["Error"]["Message"]


def test_change_set_names_repeat_answers_already_exists_unless_an_idempotent_retry(cf, name):
    create_via_change_set(cf, name)
    first = cf.create_change_set(StackName=name, ChangeSetName="cs", ChangeSetType="UPDATE", TemplateBody=template("b"), ClientToken="ct-1")
    retry = cf.create_change_set(StackName=name, ChangeSetName="cs", ChangeSetType="UPDATE", TemplateBody=template("b"), ClientToken="ct-1")
    assert retry["Id"] == first["Id"]
    for kwargs in ({"ClientToken": "ct-2"}, {}):
        with pytest.raises(ClientError) as err:
            cf.create_change_set(StackName=name, ChangeSetName="cs", ChangeSetType="UPDATE", TemplateBody=template("b"), **kwargs)
        assert err.value.response["Error"]["Code"] == "AlreadyExistsException"
        assert "mismatch with existing attribute ClientToken" in err.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as err:
        cf.create_change_set(StackName=name, ChangeSetName="cs", ChangeSetType="UPDATE", TemplateBody=template("c"), ClientToken="ct-1")
    assert "mismatch with existing attribute Template" in err.value.response["Error"]["Message"]


def test_create_change_set_for_an_existing_stack_is_refused(cf, name):
    create_and_wait(cf, name)
    with pytest.raises(ClientError) as err:
        cf.create_change_set(StackName=name, ChangeSetName="again", ChangeSetType="CREATE", TemplateBody=template())
    assert err.value.response["Error"]["Message"] == f"Stack [{name}] already exists and cannot be created again with the changeSet [again]."
    assert len([s for s in cf.list_stacks()["StackSummaries"] if s["StackName"] == name]) == 1


def test_update_change_set_for_a_missing_stack(cf, name):
    with pytest.raises(ClientError) as err:
        cf.create_change_set(StackName=name, ChangeSetName="u", ChangeSetType="UPDATE", TemplateBody=template())
    assert err.value.response["Error"]["Message"] == f"Stack [{name}] does not exist"


def test_change_sets_are_per_stack(cf, name):
    other = name + "-b"
    create_via_change_set(cf, name)
    create_via_change_set(cf, other)
    cf.create_change_set(StackName=name, ChangeSetName="run-1", ChangeSetType="UPDATE", TemplateBody=template("b"))
    cf.create_change_set(StackName=other, ChangeSetName="run-1", ChangeSetType="UPDATE", TemplateBody=template("c"))
    assert cf.describe_change_set(StackName=name, ChangeSetName="run-1")["StackName"] == name
    assert cf.describe_change_set(StackName=other, ChangeSetName="run-1")["StackName"] == other
    assert {s["ChangeSetName"] for s in cf.list_change_sets(StackName=name)["Summaries"]} == {"create", "run-1"}
    cf.execute_change_set(StackName=other, ChangeSetName="run-1")
    wait_settled(cf, other)
    assert outputs(cf, other)["P"] == "c"
    assert outputs(cf, name)["P"] == "a"
    with pytest.raises(ClientError) as err:
        cf.describe_change_set(StackName=name, ChangeSetName="missing")
    assert err.value.response["Error"]["Code"] == "ChangeSetNotFound"
    cf.delete_change_set(StackName=name, ChangeSetName="run-1")
    with pytest.raises(ClientError):
        cf.describe_change_set(StackName=name, ChangeSetName="run-1")


def test_executing_a_change_set_deletes_the_stacks_other_change_sets(cf, name):
    create_via_change_set(cf, name)
    cf.create_change_set(StackName=name, ChangeSetName="one", ChangeSetType="UPDATE", TemplateBody=template("b"))
    cf.create_change_set(StackName=name, ChangeSetName="two", ChangeSetType="UPDATE", TemplateBody=template("c"))
    cf.execute_change_set(StackName=name, ChangeSetName="one")
    assert [s["ChangeSetName"] for s in cf.list_change_sets(StackName=name)["Summaries"]] == ["one"]
    wait_settled(cf, name)


def test_change_set_creation_can_take_time(cf, endpoint, name):
    assert control(endpoint, "POST", "config", {"changeSetSeconds": 0.5}).ok
    cf.create_change_set(StackName=name, ChangeSetName="create", ChangeSetType="CREATE", TemplateBody=template())
    described = cf.describe_change_set(StackName=name, ChangeSetName="create")
    assert described["Status"] in ("CREATE_PENDING", "CREATE_IN_PROGRESS")
    with pytest.raises(ClientError) as err:
        cf.execute_change_set(StackName=name, ChangeSetName="create")
    assert err.value.response["Error"]["Code"] == "InvalidChangeSetStatus"
    time.sleep(0.6)
    assert cf.describe_change_set(StackName=name, ChangeSetName="create")["Status"] == "CREATE_COMPLETE"


def test_no_change_for_a_resource_without_properties(cf, name):
    """moto adds ``Properties: {}`` to the stored template in place; that is not a change."""
    body = json.dumps({"Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}}})
    create_via_change_set(cf, name, body=body)
    wait_settled(cf, name)
    cf.create_change_set(StackName=name, ChangeSetName="again", ChangeSetType="UPDATE", TemplateBody=body)
    described = cf.describe_change_set(StackName=name, ChangeSetName="again")
    assert (described["Status"], described["StatusReason"]) == ("FAILED", NO_CHANGES)
