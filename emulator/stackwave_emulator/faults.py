"""Scripted faults: failed resources, failed rollbacks, hangs and throttling.

Faults are matched by stack name and operation; each applies ``times`` times (default once
for ``fail`` and ``hang``, unlimited for ``throttle``). They drive the real CloudFormation
status sequences implemented in ``cloudformation_async``:

* ``fail`` on ``create``: resource CREATE_FAILED -> ROLLBACK_IN_PROGRESS -> ROLLBACK_COMPLETE
* ``fail`` on ``update``: resource UPDATE_FAILED -> UPDATE_ROLLBACK_IN_PROGRESS -> UPDATE_ROLLBACK_COMPLETE
* ``fail`` on ``delete``: resource DELETE_FAILED -> DELETE_FAILED
* ``fail`` on ``rollback``: the rollback itself fails (ROLLBACK_FAILED / UPDATE_ROLLBACK_FAILED).
  When no other fault or cancel causes a rollback, the stack's next create or update fails
  so that there is a rollback to fail.
* ``hang``: the operation stays *_IN_PROGRESS for ``seconds`` (CancelUpdateStack ends an
  update hang with a rollback).
* ``throttle``: a share (``rate``) of calls to a CloudFormation action answer Throttling.
* ``events``: the events AWS services send to the default EventBridge bus (those of one
  ``source``, ``aws.cloudformation`` unless given) are lost (``dropRate``), delivered twice
  with the same ``id`` (``duplicateRate``) or delivered late (``delaySeconds``: each copy
  independently after a uniformly random 0..S seconds, so they can arrive out of order), as
  EventBridge's at-least-once, unordered delivery allows. It applies until cleared; ``seed``
  makes its choices repeatable; ``stacks`` limits it to the events of those stacks (the
  ``stack-id`` of a CloudFormation event), so tests running at once do not disturb each other.
* ``lambda``: the next ``times`` (default 1) invocations of one function through the gateway
  fail at Lambda level with ``error``, as Lambda reports it: ``Sandbox.Timedout`` (the function
  ran past its timeout: the gateway runs the handler, then answers the timeout, so its side
  effects happen and its answer is lost), ``Lambda.Unknown`` (out of memory, no answer), or a
  Lambda service error such as ``Lambda.ServiceException`` (the Invoke call itself fails, the
  handler does not run). The gateway takes the fault (``POST /_stackwave/faults/lambda/take``)
  before each invocation; ``environment`` limits it to the invocations of that environment's
  runs, so tests running at once do not disturb each other, and ``stack`` to the invocations
  about that stack (deploy-stack's).
"""

from __future__ import annotations

import itertools
import random
import threading
from dataclasses import dataclass, field
from typing import Any

KINDS = {"fail", "hang", "throttle", "events", "lambda"}
LAMBDA_ERRORS = {
    "Sandbox.Timedout",
    "Lambda.Unknown",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.ClientExecutionTimeoutException",
}
FAIL_ON = {"create", "update", "delete", "rollback"}
HANG_ON = {"create", "update", "delete"}

DEFAULT_REASON = "Resource handler returned message: \"Fault injected by the local emulator\" (HandlerErrorCode: GeneralServiceException)"
DEFAULT_EVENT_SOURCE = "aws.cloudformation"
DEFAULT_ROLLBACK_REASON = "Resource handler returned message: \"Rollback fault injected by the local emulator\" (HandlerErrorCode: GeneralServiceException)"


@dataclass
class Fault:
    id: str
    kind: str
    stack: str | None = None
    on: str | None = None
    resource: str | None = None
    reason: str | None = None
    seconds: float | None = None
    api: str | None = None
    rate: float | None = None
    times: int | None = None  # remaining; None = unlimited
    applied: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    # events
    source: str | None = None
    stacks: list[str] | None = None  # events: only these stacks' events (None: every event)
    drop_rate: float | None = None
    duplicate_rate: float | None = None
    delay_seconds: float | None = None
    seed: Any = None
    dropped: int = 0
    duplicated: int = 0
    delayed: int = 0
    rng: random.Random | None = None
    # lambda
    function: str | None = None
    error: str | None = None
    environment: str | None = None  # lambda: only invocations of this run environment

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind}
        for key in ("stack", "on", "resource", "reason", "seconds", "api", "rate", "function", "error", "environment"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.kind == "events":
            out.update(
                source=self.source,
                dropRate=self.drop_rate,
                duplicateRate=self.duplicate_rate,
                delaySeconds=self.delay_seconds,
            )
            if self.seed is not None:
                out["seed"] = self.seed
            if self.stacks is not None:
                out["stacks"] = self.stacks
            out.update(dropped=self.dropped, duplicated=self.duplicated, delayed=self.delayed)
        out["timesRemaining"] = self.times
        out["applied"] = self.applied
        return out


class FaultRegistry:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)
        self._random = random.Random()
        self._events_lock = threading.Lock()  # event deliveries run outside the runtime lock

    # -- control API -------------------------------------------------------------------
    def add(self, body: dict[str, Any]) -> Fault:
        """Validates a JSON body and registers it; raises ValueError on bad input."""
        if not isinstance(body, dict):
            raise ValueError("a fault is a JSON object")
        kind = body.get("kind")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}")
        allowed = {
            "fail": {"kind", "stack", "on", "resource", "reason", "times"},
            "hang": {"kind", "stack", "on", "seconds", "times"},
            "throttle": {"kind", "api", "rate", "times", "seed"},
            "events": {"kind", "dropRate", "duplicateRate", "delaySeconds", "seed", "source", "stacks"},
            "lambda": {"kind", "function", "error", "times", "environment", "stack"},
        }[kind]
        unknown = set(body) - allowed
        if unknown:
            raise ValueError(f"unknown fields for a {kind} fault: {sorted(unknown)}")
        times = body.get("times", None if kind in ("throttle", "events") else 1)
        if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
            raise ValueError("times must be an integer >= 1")
        fault = Fault(id=f"fault-{next(self._ids)}", kind=kind, times=times)
        if kind in ("fail", "hang"):
            stack = body.get("stack")
            if not isinstance(stack, str) or not stack:
                raise ValueError("stack (a stack name) is required")
            on = body.get("on")
            valid_on = FAIL_ON if kind == "fail" else HANG_ON
            if on not in valid_on:
                raise ValueError(f"on must be one of {sorted(valid_on)}")
            fault.stack, fault.on = stack, on
        if kind == "fail":
            for key in ("resource", "reason"):
                value = body.get(key)
                if value is not None and (not isinstance(value, str) or not value):
                    raise ValueError(f"{key} must be a non-empty string")
            fault.resource = body.get("resource")
            fault.reason = body.get("reason")
        if kind == "hang":
            seconds = body.get("seconds")
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
                raise ValueError("seconds must be a number >= 0")
            fault.seconds = float(seconds)
        if kind == "throttle":
            api = body.get("api")
            if not isinstance(api, str) or not api:
                raise ValueError("api (a CloudFormation action name, e.g. DescribeStacks) is required")
            rate = body.get("rate", 1.0)
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1:
                raise ValueError("rate must be a number in (0, 1]")
            fault.api, fault.rate = api, float(rate)
            if "seed" in body:
                self._random.seed(body["seed"])
        if kind == "events":
            self._events_fault(fault, body)
        if kind == "lambda":
            function = body.get("function")
            if not isinstance(function, str) or not function:
                raise ValueError("function (a function name, e.g. check or stackwave-check) is required")
            error = body.get("error")
            if error not in LAMBDA_ERRORS:
                raise ValueError(f"error must be one of {sorted(LAMBDA_ERRORS)}")
            fault.function = function.removeprefix("stackwave-")
            fault.error = error
            environment = body.get("environment")
            if environment is not None and (not isinstance(environment, str) or not environment):
                raise ValueError("environment must be a non-empty string")
            fault.environment = environment
            stack = body.get("stack")
            if stack is not None and (not isinstance(stack, str) or not stack):
                raise ValueError("stack must be a non-empty string")
            fault.stack = stack
        self._faults.append(fault)
        return fault

    @staticmethod
    def _events_fault(fault: Fault, body: dict[str, Any]) -> None:
        def number(key: str, upper: float | None) -> float:
            value = body.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (upper is not None and value > upper):
                raise ValueError(f"{key} must be a number in [0, 1]" if upper is not None else f"{key} must be a number >= 0")
            return float(value)

        fault.drop_rate = number("dropRate", 1)
        fault.duplicate_rate = number("duplicateRate", 1)
        fault.delay_seconds = number("delaySeconds", None)
        source = body.get("source", DEFAULT_EVENT_SOURCE)
        if not isinstance(source, str) or not source:
            raise ValueError("source must be a non-empty string (an event source such as aws.cloudformation)")
        fault.source = source
        stacks = body.get("stacks")
        if stacks is not None and (not isinstance(stacks, list) or not stacks or not all(isinstance(x, str) and x for x in stacks)):
            raise ValueError("stacks must be a non-empty list of stack names")
        fault.stacks = stacks
        seed = body.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, str))):
            raise ValueError("seed must be an integer or a string")
        fault.seed = seed
        fault.rng = random.Random(seed)

    def list(self) -> list[dict[str, Any]]:
        return [f.to_json() for f in self._faults]

    def remove(self, fault_id: str) -> bool:
        before = len(self._faults)
        self._faults = [f for f in self._faults if f.id != fault_id]
        return len(self._faults) != before

    def clear(self) -> int:
        count = len(self._faults)
        self._faults = []
        return count

    # -- matching ----------------------------------------------------------------------
    def _find(self, kind: str, stack: str, on: str) -> Fault | None:
        for fault in self._faults:
            if fault.kind == kind and fault.stack == stack and fault.on == on:
                return fault
        return None

    def _consume(self, fault: Fault) -> Fault:
        fault.applied += 1
        if fault.times is not None:
            fault.times -= 1
            if fault.times <= 0:
                self._faults.remove(fault)
        return fault

    def take(self, kind: str, stack: str, on: str) -> Fault | None:
        fault = self._find(kind, stack, on)
        return self._consume(fault) if fault else None

    def take_lambda(
        self, function: str, environment: str | None = None, stack: str | None = None
    ) -> Fault | None:
        """The next lambda fault of ``function`` (with or without its ``stackwave-`` prefix) for
        an invocation of ``environment``'s run (and, for a fault with a ``stack``, about that
        stack: deploy-stack's input names it), used up. A fault without an environment or a
        stack applies to every invocation."""
        name = function.removeprefix("stackwave-")
        for fault in self._faults:
            if (
                fault.kind == "lambda"
                and fault.function == name
                and fault.environment in (None, environment)
                and fault.stack in (None, stack)
            ):
                return self._consume(fault)
        return None

    def peek(self, kind: str, stack: str, on: str) -> Fault | None:
        return self._find(kind, stack, on)

    def event_deliveries(self, event: dict[str, Any]) -> list[float]:
        """The delays (seconds) of each delivery of one event: [] if it is lost."""
        source = str(event.get("source", ""))
        stack_id = str((event.get("detail") or {}).get("stack-id", ""))
        stack = stack_id.split(":stack/", 1)[1].split("/", 1)[0] if ":stack/" in stack_id else None

        def applies(f: Fault) -> bool:
            return f.kind == "events" and f.source == source and (f.stacks is None or stack in f.stacks)

        fault = next((f for f in list(self._faults) if applies(f)), None)
        if fault is None:
            return [0.0]
        with self._events_lock:
            assert fault.rng is not None
            fault.applied += 1
            if fault.rng.random() < (fault.drop_rate or 0):
                fault.dropped += 1
                return []
            copies = 1
            if fault.rng.random() < (fault.duplicate_rate or 0):
                fault.duplicated += 1
                copies = 2
            if not fault.delay_seconds:
                return [0.0] * copies
            fault.delayed += copies
            return [fault.rng.uniform(0, fault.delay_seconds) for _ in range(copies)]

    def should_throttle(self, api: str) -> bool:
        for fault in self._faults:
            if fault.kind == "throttle" and fault.api == api:
                if self._random.random() < (fault.rate or 0):
                    self._consume(fault)
                    return True
                return False
        return False


FAULTS = FaultRegistry()


# --------------------------------------------------------------------------------------
# throttling: the CloudFormation query API's own error form
# --------------------------------------------------------------------------------------


def install() -> None:
    """Answers a share of calls to a named CloudFormation action with HTTP 400 Throttling.

    The error is serialized by moto like any CloudFormation error, so it has AWS's query
    protocol form: ``<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>
    <Message>Rate exceeded</Message></Error><RequestId>...</RequestId></ErrorResponse>``.
    """
    from moto.cloudformation.responses import CloudFormationResponse
    from moto.core.exceptions import ServiceException
    from moto.core.utils import camelcase_to_underscores

    if getattr(CloudFormationResponse, "_sw_throttling", False):
        return

    class Throttling(ServiceException):
        code = "Throttling"
        message = "Rate exceeded"

    original = CloudFormationResponse.call_action

    def call_action(self: Any) -> Any:
        from .runtime import LOCK

        action = self._get_action()
        with LOCK:
            throttled = bool(action) and FAULTS.should_throttle(action)
        if throttled:

            def refuse() -> Any:
                raise Throttling()

            setattr(self, camelcase_to_underscores(action), refuse)
        return original(self)

    CloudFormationResponse.call_action = call_action  # type: ignore[method-assign]
    CloudFormationResponse._sw_throttling = True  # type: ignore[attr-defined]
