"""Starts the emulator once per test session, on a free port, in a subprocess.

A stub Lambda invoke endpoint runs in this process on MOTO_PORT, so Step Functions tests can
run state machines without the project's gateway.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import boto3
import pytest
import requests
from botocore.config import Config

EMULATOR_DIR = Path(__file__).resolve().parents[1]
STACK_SECONDS = 0.4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class StubLambda(BaseHTTPRequestHandler):
    """Answers Invoke: ``echo`` returns its input, ``fail`` an Unhandled function error,
    ``throttled-<n>`` HTTP 429 TooManyRequestsException for its first n calls."""

    calls: list[tuple[str, object]] = []
    requests: list[tuple[str, dict[str, str], object]] = []  # (raw path, headers, body) of every call
    # Where every other request goes (moto's own service integrations, such as
    # states:startExecution, call MOTO_PORT as the gateway lets them): the emulator.
    upstream: str | None = None

    def proxy(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        answer = requests.post(f"{StubLambda.upstream}{self.path}", data=raw, headers=headers, timeout=30)
        self.send_response(answer.status_code)
        for key, value in answer.headers.items():
            if key.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def do_POST(self) -> None:  # noqa: N802
        if "/functions/" not in self.path:
            self.proxy()
            return
        name = unquote(self.path.split("/functions/")[1].split("/")[0]).split(":")[-1]
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
        StubLambda.requests.append((self.path, dict(self.headers), body))
        StubLambda.calls.append((name, body))
        status, headers, out = 200, {}, body
        if name == "fail":
            headers["X-Amz-Function-Error"] = "Unhandled"
            out = {"errorType": "DeployFailed", "errorMessage": "stack failed"}
        elif name.startswith("throttled-"):
            limit = int(name.split("-")[1])
            if sum(1 for n, _ in StubLambda.calls if n == name) <= limit:
                status, headers, out = 429, {"x-amzn-ErrorType": "TooManyRequestsException"}, {"message": "Rate exceeded"}
        data = json.dumps(out).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def lambda_stub() -> int:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), StubLambda)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


@pytest.fixture(scope="session")
def endpoint(lambda_stub: int, tmp_path_factory: pytest.TempPathFactory) -> str:
    port = free_port()
    log = tmp_path_factory.mktemp("emulator") / "emulator.log"
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(EMULATOR_DIR),
        MOTO_PORT=str(lambda_stub),
        STACKWAVE_EMULATOR_STACK_SECONDS=str(STACK_SECONDS),
    )
    env.pop("STACKWAVE_EMULATOR_CHANGE_SET_SECONDS", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stackwave_emulator", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    StubLambda.upstream = url
    deadline = time.time() + 30
    while True:
        try:
            if requests.get(f"{url}/_stackwave/health", timeout=1).ok:
                break
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"emulator did not start:\n{log.read_text()}")
        time.sleep(0.1)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(autouse=True)
def clean_controls(endpoint: str) -> None:
    requests.post(f"{endpoint}/_stackwave/reset", timeout=5).raise_for_status()
    yield
    requests.post(f"{endpoint}/_stackwave/reset", timeout=5).raise_for_status()


def client(endpoint: str, service: str, **config: object):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}, **config),
    )


@pytest.fixture
def cf(endpoint: str):
    return client(endpoint, "cloudformation")


@pytest.fixture
def name() -> str:
    return f"st-{uuid.uuid4().hex[:10]}"


def control(endpoint: str, method: str, path: str, body: object | None = None) -> requests.Response:
    return requests.request(method, f"{endpoint}/_stackwave/{path}", json=body, timeout=5)


def template(value: str = "a", extra_output: bool = False, resources: int = 2) -> str:
    """Queue(s) and a topic whose properties follow parameter P; outputs P and the topic."""
    body: dict = {
        "Parameters": {"P": {"Type": "String", "Default": value}},
        "Resources": {
            "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"DisplayName": {"Ref": "P"}}},
        },
        "Outputs": {
            "P": {"Value": {"Ref": "P"}},
            "TopicArn": {"Value": {"Ref": "Topic"}},
        },
    }
    for i in range(resources - 1):
        body["Resources"][f"Queue{i}"] = {
            "Type": "AWS::SQS::Queue",
            "Properties": {"Tags": [{"Key": "p", "Value": {"Ref": "P"}}]},
            "DependsOn": "Topic",
        }
    if extra_output:
        body["Outputs"]["Extra"] = {"Value": {"Fn::Sub": "extra-${P}"}}
    return json.dumps(body)


def status(cf, stack: str) -> str:
    return cf.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]


def wait_settled(cf, stack: str, timeout: float = 15) -> dict:
    deadline = time.time() + timeout
    while True:
        found = cf.describe_stacks(StackName=stack)["Stacks"][0]
        if not found["StackStatus"].endswith("_IN_PROGRESS") or time.time() > deadline:
            return found
        time.sleep(0.05)


def wait_gone(cf, stack: str, timeout: float = 15) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            found = cf.describe_stacks(StackName=stack)["Stacks"][0]
        except cf.exceptions.ClientError as err:
            assert "does not exist" in str(err)
            return
        if found["StackStatus"] == "DELETE_FAILED":
            raise AssertionError("delete failed")
        time.sleep(0.05)
    raise AssertionError(f"{stack} still exists")


def events(cf, stack: str) -> list[dict]:
    """Oldest first."""
    return list(reversed(cf.describe_stack_events(StackName=stack)["StackEvents"]))


def sequence(cf, stack: str, resource: str | None = None) -> list[str]:
    stack_events = events(cf, stack)
    wanted = resource or stack_events[0]["StackName"]
    return [e["ResourceStatus"] for e in stack_events if e["LogicalResourceId"] == wanted]


def create_and_wait(cf, stack: str, body: str | None = None, **kwargs: object) -> dict:
    cf.create_stack(StackName=stack, TemplateBody=body or template(), **kwargs)
    return wait_settled(cf, stack)
