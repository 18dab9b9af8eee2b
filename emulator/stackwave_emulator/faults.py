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
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Any

KINDS = {"fail", "hang", "throttle"}
FAIL_ON = {"create", "update", "delete", "rollback"}
HANG_ON = {"create", "update", "delete"}

DEFAULT_REASON = "Resource handler returned message: \"Fault injected by the local emulator\" (HandlerErrorCode: GeneralServiceException)"
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

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind}
        for key in ("stack", "on", "resource", "reason", "seconds", "api", "rate"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out["timesRemaining"] = self.times
        out["applied"] = self.applied
        return out


class FaultRegistry:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)
        self._random = random.Random()

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
        }[kind]
        unknown = set(body) - allowed
        if unknown:
            raise ValueError(f"unknown fields for a {kind} fault: {sorted(unknown)}")
        times = body.get("times", None if kind == "throttle" else 1)
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
        self._faults.append(fault)
        return fault

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

    def peek(self, kind: str, stack: str, on: str) -> Fault | None:
        return self._find(kind, stack, on)

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
