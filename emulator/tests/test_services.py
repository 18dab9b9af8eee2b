"""What the deployment relies on besides CloudFormation, checked against the pinned moto:
TemplateURL styles, SNS -> SQS delivery, SSM parameters, and the Step Functions executor
(Map with MaxConcurrency, Wait SecondsPath, Choice, Retry, Catch with ResultPath, Fail with
ErrorPath/CausePath) invoking Lambdas on MOTO_PORT."""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError
from conftest import StubLambda, client, template, wait_settled


def test_template_url_styles(endpoint, name):
    cf, s3 = client(endpoint, "cloudformation"), client(endpoint, "s3")
    bucket = f"{name}-tpl"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="dir/my stack.json", Body=template().encode())
    urls = [
        f"{endpoint}/{bucket}/dir/my%20stack.json",
        f"https://{bucket}.s3.amazonaws.com/dir/my%20stack.json",
        f"https://{bucket}.s3.us-east-1.amazonaws.com/dir/my%20stack.json",
        f"https://s3.amazonaws.com/{bucket}/dir/my%20stack.json",
        f"https://s3.us-east-1.amazonaws.com/{bucket}/dir/my%20stack.json",
    ]
    for index, url in enumerate(urls):
        cf.create_change_set(StackName=f"{name}-{index}", ChangeSetName="c", ChangeSetType="CREATE", TemplateURL=url)
        assert cf.describe_change_set(StackName=f"{name}-{index}", ChangeSetName="c")["Status"] == "CREATE_COMPLETE"
    cf.execute_change_set(StackName=f"{name}-0", ChangeSetName="c")
    assert wait_settled(cf, f"{name}-0")["StackStatus"] == "CREATE_COMPLETE"
    with pytest.raises(ClientError) as err:
        cf.create_change_set(StackName=f"{name}-x", ChangeSetName="c", ChangeSetType="CREATE", TemplateURL=f"{endpoint}/{bucket}/missing.json")
    assert err.value.response["Error"]["Code"] == "ValidationError"
    assert "S3 error" in err.value.response["Error"]["Message"]


@pytest.mark.parametrize("raw", [False, True])
def test_sns_json_structure_to_sqs_with_attributes(endpoint, name, raw):
    sns, sqs = client(endpoint, "sns"), client(endpoint, "sqs")
    topic = sns.create_topic(Name=f"{name}-topic")["TopicArn"]
    queue = sqs.create_queue(QueueName=f"{name}-q")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": str(raw).lower()})
    attrs = {"environment": {"DataType": "String", "StringValue": "dev"}, "status": {"DataType": "String", "StringValue": "FAILED"}}
    sns.publish(TopicArn=topic, Subject="Deploy failed", MessageStructure="json", MessageAttributes=attrs,
                Message=json.dumps({"default": "plain", "sqs": "{\"status\": \"FAILED\"}", "email": "mail"}))
    sns.publish(TopicArn=topic, Subject="s", MessageStructure="json", MessageAttributes=attrs, Message=json.dumps({"default": "only default"}))
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=1)["Messages"]
    assert len(messages) == 2
    if raw:
        assert [m["Body"] for m in messages] == ['{"status": "FAILED"}', "only default"]
        assert messages[0]["MessageAttributes"]["status"] == {"StringValue": "FAILED", "DataType": "String"}
    else:
        envelopes = [json.loads(m["Body"]) for m in messages]
        assert [e["Message"] for e in envelopes] == ['{"status": "FAILED"}', "only default"]
        assert envelopes[0]["Subject"] == "Deploy failed" and envelopes[0]["Type"] == "Notification"
        assert envelopes[0]["MessageAttributes"]["environment"] == {"Type": "String", "Value": "dev"}


def test_ssm_parameters(endpoint, name):
    ssm = client(endpoint, "ssm")
    path = f"/{name}/image-uri"
    ssm.put_parameter(Name=path, Value="typesense/typesense:28.0", Type="String")
    assert ssm.get_parameter(Name=path)["Parameter"]["Value"] == "typesense/typesense:28.0"
    with pytest.raises(ClientError) as err:
        ssm.put_parameter(Name=path, Value="other", Type="String", Overwrite=False)
    assert err.value.response["Error"]["Code"] == "ParameterAlreadyExists"
    assert ssm.put_parameter(Name=path, Value="v2", Type="String", Overwrite=True)["Version"] == 2
    with pytest.raises(ClientError) as err:
        ssm.get_parameter(Name=f"/{name}/missing")
    assert err.value.response["Error"]["Code"] == "ParameterNotFound"


def run(sfn, definition: dict, payload: dict, timeout: float = 30) -> dict:
    arn = sfn.create_state_machine(
        name=f"sm-{time.time_ns()}", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/sfn"
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps(payload))["executionArn"]
    deadline = time.time() + timeout
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.time() < deadline, "execution did not finish"
        time.sleep(0.1)
    described["history"] = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
    return described


LAMBDA = "arn:aws:lambda:us-east-1:123456789012:function:{}"


def test_state_machine_executor_features(endpoint):
    sfn = client(endpoint, "stepfunctions")
    definition = {
        "StartAt": "Stages",
        "States": {
            "Stages": {
                "Type": "Map", "ItemsPath": "$.stages", "MaxConcurrency": 1, "ResultPath": "$.results",
                "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "Stacks", "States": {
                    "Stacks": {"Type": "Map", "ItemsPath": "$.stacks", "ItemSelector": {"stack.$": "$$.Map.Item.Value"},
                               "ItemProcessor": {"StartAt": "Deploy", "States": {
                                   "Deploy": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                                              "Parameters": {"FunctionName": LAMBDA.format("echo"), "Payload.$": "$"},
                                              "OutputPath": "$.Payload", "End": True}}},
                               "End": True}}},
                "Next": "Wait",
            },
            "Wait": {"Type": "Wait", "SecondsPath": "$.wait", "Next": "Check"},
            "Check": {"Type": "Choice", "Choices": [
                {"And": [{"Variable": "$.wait", "NumericLessThan": 5}, {"Variable": "$.results", "IsPresent": True}], "Next": "Throttled"}],
                "Default": "Wait"},
            "Throttled": {"Type": "Task", "Resource": LAMBDA.format("throttled-2"), "ResultPath": "$.throttled",
                          "Retry": [{"ErrorEquals": ["Lambda.TooManyRequestsException"], "IntervalSeconds": 1, "MaxAttempts": 3,
                                     "BackoffRate": 1.0, "JitterStrategy": "FULL"}],
                          "Next": "Deploy failing"},
            "Deploy failing": {"Type": "Task", "Resource": LAMBDA.format("fail"),
                               "Catch": [{"ErrorEquals": ["DeployFailed"], "ResultPath": "$.error", "Next": "Summarize"}], "End": True},
            "Summarize": {"Type": "Pass", "Parameters": {"error.$": "$.error.Error", "summary.$": "States.JsonToString($.results)"}, "Next": "Failed"},
            "Failed": {"Type": "Fail", "ErrorPath": "$.error", "CausePath": "$.summary"},
        },
    }
    StubLambda.calls.clear()
    started = time.time()
    result = run(sfn, definition, {"wait": 1, "stages": [{"stacks": ["a", "b"]}, {"stacks": ["c"]}]})
    assert time.time() - started >= 1.0  # the Wait waited
    assert result["status"] == "FAILED"
    assert result["error"] == "DeployFailed"
    assert json.loads(result["cause"]) == [[{"stack": "a"}, {"stack": "b"}], [{"stack": "c"}]]
    echo_calls = [body["stack"] for fn, body in StubLambda.calls if fn == "echo"]
    assert sorted(echo_calls[:2]) == ["a", "b"] and echo_calls[2] == "c"  # stage 1 before stage 2
    assert [fn for fn, _ in StubLambda.calls].count("throttled-2") == 3  # two Lambda service errors retried
    assert any(e["type"] == "WaitStateEntered" for e in result["history"])


def test_unnamed_executions_get_distinct_names(endpoint):
    sfn = client(endpoint, "stepfunctions")
    arn = sfn.create_state_machine(
        name=f"sm-{time.time_ns()}", roleArn="arn:aws:iam::123456789012:role/sfn",
        definition=json.dumps({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 1, "End": True}}}),
    )["stateMachineArn"]
    first = sfn.start_execution(stateMachineArn=arn, input="{}")["executionArn"]
    second = sfn.start_execution(stateMachineArn=arn, input="{}")["executionArn"]
    assert first != second
    assert not first.endswith(":None")


def test_describe_stacks_masks_no_echo_parameters(endpoint, name):
    cf = client(endpoint, "cloudformation")
    body = {
        "Parameters": {"Secret": {"Type": "String", "NoEcho": True}, "Plain": {"Type": "String"}},
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic", "Properties": {"DisplayName": {"Ref": "Plain"}}}},
    }
    cf.create_stack(
        StackName=name,
        TemplateBody=json.dumps(body),
        Parameters=[
            {"ParameterKey": "Secret", "ParameterValue": "hunter2"},
            # A value equal to a NoEcho key's name is not masked on its own account.
            {"ParameterKey": "Plain", "ParameterValue": "Secret"},
        ],
    )
    stack = wait_settled(cf, name)
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]} == {
        "Secret": "****",
        "Plain": "Secret",
    }
