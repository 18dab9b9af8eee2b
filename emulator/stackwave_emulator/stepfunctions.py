"""Two gaps of moto's Step Functions executor, closed as AWS documents the behaviour.

1. StartExecution without a name gets a generated one (API reference, StartExecution
   ``name``: "If you don't provide a name for the execution, Step Functions automatically
   generates a universally unique identifier (UUID) as the execution name"). With its executor
   enabled, moto named such an execution ``None``: its ARN ended in ``:None`` and a second
   unnamed StartExecution on the same state machine answered ExecutionAlreadyExists (or, with
   the same input while the first still ran, returned the first execution).

2. A Task whose Resource is a Lambda function ARN reports a Lambda service error (an error
   answer of the Invoke API itself, such as TooManyRequestsException or ServiceException) as
   ``Lambda.<ErrorCode>`` (Developer Guide, "Handling errors in Step Functions workflows":
   Lambda.ServiceException, Lambda.TooManyRequestsException, ...), so Retry/Catch on those names
   match. moto reported every such error as ``Exception``; the ``arn:aws:states:::lambda:invoke``
   integration already used the ``Lambda.`` names.

3. Every execution status change is an event on the account's default EventBridge bus, as
   AWS sends it (Step Functions Developer Guide, "Automating Step Functions event delivery with
   EventBridge": detail-type ``Step Functions Execution Status Change``, source ``aws.states``,
   ``resources`` the execution ARN, detail ``executionArn``, ``stateMachineArn``, ``name``,
   ``status`` (RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED), ``startDate`` and ``stopDate``
   in epoch milliseconds, ``input``, ``output``, ``error``, ``cause``, ``inputDetails``,
   ``outputDetails``). moto sent none, so rules on execution status never fired.

4. An execution stopped with StopExecution ends ABORTED (API reference, StopExecution), wherever
   it is. moto ended one stopped inside a Map iteration FAILED with ``States.Runtime`` ("Custom
   Error Names MUST NOT begin with the prefix 'States.'"), as if the stop were an error.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import datetime
from typing import Any

log = logging.getLogger("stackwave_emulator.stepfunctions")

STATUS_CHANGE = "Step Functions Execution Status Change"


def _epoch_ms(value: Any) -> int | None:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


def status_event(execution: Any) -> dict[str, Any]:
    """The EventBridge event of the execution's current status (moto's internal form)."""
    status = getattr(execution.exec_status, "value", execution.exec_status)
    output = _text(execution.output) if status == "SUCCEEDED" else None
    detail = {
        "executionArn": execution.exec_arn,
        "stateMachineArn": execution.state_machine_arn,
        "name": execution.name,
        "status": status,
        "startDate": _epoch_ms(execution.start_date),
        "stopDate": _epoch_ms(execution.stop_date),
        "input": _text(execution.input_data),
        "output": output,
        "inputDetails": {"included": True},
        "outputDetails": {"included": True} if output is not None else None,
        "error": _text(execution.error),
        "cause": _text(execution.cause),
    }
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": STATUS_CHANGE,
        "source": "aws.states",
        "account": execution.account_id,
        "time": time.time(),
        "region": execution.region_name,
        "resources": [execution.exec_arn],
        "detail": detail,
    }


def send_status_event(execution: Any) -> None:
    from .eventbridge import send_to_default_bus

    try:
        send_to_default_bus(execution.account_id, execution.region_name, status_event(execution))
    except Exception:  # noqa: BLE001 - asynchronous in AWS: the execution goes on regardless
        log.exception("status event of %s not sent to EventBridge", getattr(execution, "exec_arn", "?"))

_ORIGINAL: dict[str, Any] = {}


def install() -> None:
    if _ORIGINAL:
        return
    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_lambda import StateTaskLambda
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
    from moto.stepfunctions.parser.api import HistoryEventType, LambdaFunctionFailedEventDetails
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication, Execution

    _ORIGINAL["start_execution"] = StepFunctionsParserBackend.start_execution
    _ORIGINAL["_from_error"] = StateTaskLambda._from_error
    _ORIGINAL["execution_start"] = Execution.start
    _ORIGINAL["terminated"] = BaseExecutionWorkerCommunication.terminated

    _ORIGINAL["execution_stop"] = Execution.stop

    def execution_start(self: Any) -> None:
        _ORIGINAL["execution_start"](self)
        send_status_event(self)

    def execution_stop(self: Any, *args: Any, **kwargs: Any) -> Any:
        self.stackwave_stopped = True
        return _ORIGINAL["execution_stop"](self, *args, **kwargs)

    def terminated(self: Any) -> None:
        from moto.stepfunctions.parser.api import ExecutionStatus

        _ORIGINAL["terminated"](self)
        execution = self.execution
        if getattr(execution, "stackwave_stopped", False) and execution.exec_status == ExecutionStatus.FAILED:
            execution.exec_status = ExecutionStatus.ABORTED
            execution.error = None
            execution.cause = None
        send_status_event(execution)

    Execution.start = execution_start  # type: ignore[method-assign]
    Execution.stop = execution_stop  # type: ignore[method-assign]
    BaseExecutionWorkerCommunication.terminated = terminated  # type: ignore[method-assign]

    def start_execution(self: Any, state_machine_arn: str, name: Any = None, *args: Any, **kwargs: Any) -> Any:
        return _ORIGINAL["start_execution"](self, state_machine_arn, name or str(uuid.uuid4()), *args, **kwargs)

    def _from_error(self: Any, env: Any, ex: Exception) -> Any:
        if isinstance(ex, ClientError):
            error = ex.response.get("Error", {})
            name = f"Lambda.{error.get('Code') or 'ServiceException'}"
            return FailureEvent(
                env=env,
                error_name=CustomErrorName(name),
                event_type=HistoryEventType.LambdaFunctionFailed,
                event_details=EventDetails(
                    lambdaFunctionFailedEventDetails=LambdaFunctionFailedEventDetails(
                        error=name, cause=error.get("Message") or str(ex)
                    )
                ),
            )
        return _ORIGINAL["_from_error"](self, env, ex)

    StepFunctionsParserBackend.start_execution = start_execution  # type: ignore[method-assign]
    StateTaskLambda._from_error = _from_error  # type: ignore[method-assign]
