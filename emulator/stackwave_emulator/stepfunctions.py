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

5. SendTaskFailure's ``cause`` reaches the task's failure (API reference, SendTaskFailure
   ``error`` and ``cause``): a Catch's ResultPath gets ``{"Error": <error>, "Cause": <cause>}``
   and the TaskFailed event carries both. moto dropped ``cause`` (the Catch saw ``"Cause":
   null``). Without a cause (or an error) the field is ``""``, as AWS binds it.

6. A task token belongs to one task attempt (API reference, SendTaskSuccess, SendTaskFailure,
   SendTaskHeartbeat errors; Developer Guide, "Wait for a Callback with Task Token"): once its
   task has an outcome (the first SendTaskSuccess/SendTaskFailure), has timed out
   (``States.Timeout`` from TimeoutSeconds/TimeoutSecondsPath), or its execution has ended,
   every SendTaskSuccess, SendTaskFailure or SendTaskHeartbeat with it answers ``TaskTimedOut``
   ("The task token has either expired or the task associated with the token has already been
   closed"); a token Step Functions never issued answers ``InvalidToken``. SendTaskSuccess with
   output that is not JSON answers ``InvalidOutput``; SendTaskHeartbeat on an open task answers
   200 (with or without HeartbeatSeconds). moto accepted a second SendTaskSuccess on a task
   whose outcome was in (and any call with a timed-out task's token while the execution ran),
   answered SendTaskFailure with 200 after the execution had ended, InvalidToken for a
   SendTaskSuccess on a closed task, and InvalidToken for a heartbeat without HeartbeatSeconds.
   A Retry attempt of a ``.waitForTaskToken`` task is a new task with a new token (moto
   reused the first attempt's token, whose outcome was already in, so every retry ended at
   once with the first attempt's outcome).

7. StopExecution ends an execution whose task waits for its callback (`.waitForTaskToken`) at
   once, ABORTED, and its token answers ``TaskTimedOut`` from then on. moto left the waiting
   task blocked until its timeout (or forever without one), the execution RUNNING meanwhile.

8. Stopping an execution stops the child executions it started with
   ``states:startExecution.sync`` / ``.sync:2`` and associated with itself through
   ``AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID`` (Developer Guide, "Run a Job (.sync)": when the
   task is stopped Step Functions stops the job, which is why the integration's IAM policy
   grants ``states:StopExecution``; "Start workflow executions from a task": the parameter
   associates the child with its parent). moto left the children running.

9. The optimized Step Functions integration (``arn:aws:states:::states:startExecution``,
   ``.sync``, ``.sync:2``) takes its parameters as the API names them (``StateMachineArn``,
   ``Input``, ``Name``) and answers with the API's fields capitalised (``ExecutionArn``,
   ``StartDate``; with ``.sync``/``.sync:2`` the DescribeExecution output: ``Status``,
   ``Output``, ...), as the Developer Guide's examples show. moto passed the parameters to boto
   unchanged (boto's names are ``stateMachineArn``, ... so every call failed with
   ``States.Runtime: 'StateMachineArn'``) and read the answer with capitalised names it never
   produced.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from datetime import datetime
from typing import Any

log = logging.getLogger("stackwave_emulator.stepfunctions")

STATUS_CHANGE = "Step Functions Execution Status Change"
STARTED_BY = "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID"


def _epoch_ms(value: Any) -> int | None:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


def status_event(execution: Any, started: bool = False) -> dict[str, Any]:
    """The EventBridge event of the execution's current status (moto's internal form), or with
    `started`, of its start: RUNNING even when its worker has already ended it (a run that
    fails in its first state), since AWS sends the RUNNING change of every execution."""
    status = "RUNNING" if started else getattr(execution.exec_status, "value", execution.exec_status)
    output = _text(execution.output) if status == "SUCCEEDED" else None
    detail = {
        "executionArn": execution.exec_arn,
        "stateMachineArn": execution.state_machine_arn,
        "name": execution.name,
        "status": status,
        "startDate": _epoch_ms(execution.start_date),
        "stopDate": None if started else _epoch_ms(execution.stop_date),
        "input": _text(execution.input_data),
        "output": output,
        "inputDetails": {"included": True},
        "outputDetails": {"included": True} if output is not None else None,
        "error": None if started else _text(execution.error),
        "cause": None if started else _text(execution.cause),
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


def send_status_event(execution: Any, started: bool = False) -> None:
    from .eventbridge import send_to_default_bus

    try:
        send_to_default_bus(execution.account_id, execution.region_name, status_event(execution, started))
    except Exception:  # noqa: BLE001 - asynchronous in AWS: the execution goes on regardless
        log.exception("status event of %s not sent to EventBridge", getattr(execution, "exec_arn", "?"))


# -- task tokens (5, 6) -------------------------------------------------------------------------

TASK_CLOSED = "Task Timed Out: 'Provided task does not exist anymore'"
_TOKENS = threading.Lock()  # one check-and-close at a time, so a token is accepted once


def _errors() -> Any:
    """AWS's error answers. moto's own TaskTimedOut class serializes without an error code."""
    from moto.core.exceptions import AWSError

    class InvalidToken(AWSError):
        TYPE = "InvalidToken"

    class TaskTimedOut(AWSError):
        TYPE = "TaskTimedOut"

    class InvalidOutput(AWSError):
        TYPE = "InvalidOutput"

    return InvalidToken, TaskTimedOut, InvalidOutput


_InvalidToken, _TaskTimedOut, _InvalidOutput = _errors()


def _close(endpoint: Any) -> None:
    endpoint.stackwave_closed = True


def _is_closed(endpoint: Any) -> bool:
    return bool(getattr(endpoint, "stackwave_closed", False))


def open_task(backend: Any, token: Any) -> Any:
    """The callback endpoint of an open task; InvalidToken or TaskTimedOut otherwise."""
    from moto.stepfunctions.parser.api import ExecutionStatus

    if isinstance(token, str) and token:
        for execution in backend._get_executions():
            env = getattr(getattr(execution, "exec_worker", None), "env", None)
            manager = getattr(env, "callback_pool_manager", None)
            endpoint = manager.get(token) if manager is not None else None
            if endpoint is None:
                continue
            if _is_closed(endpoint) or execution.exec_status != ExecutionStatus.RUNNING:
                raise _TaskTimedOut(TASK_CLOSED)
            return endpoint
    raise _InvalidToken("Invalid Token: 'Invalid token'")


def _take_task(backend: Any, token: Any) -> Any:
    with _TOKENS:
        endpoint = open_task(backend, token)
        _close(endpoint)
    return endpoint


def send_task_success(self: Any, task_token: Any, outcome: Any = None, *args: Any, **kwargs: Any) -> Any:
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackOutcomeSuccess

    try:
        json.loads(outcome)
    except (TypeError, ValueError):
        raise _InvalidOutput("Invalid Output: the output is not valid JSON") from None
    endpoint = _take_task(self, task_token)
    endpoint.notify(CallbackOutcomeSuccess(callback_id=task_token, output=outcome))


def send_task_failure(self: Any, task_token: Any, error: Any = None, cause: Any = None, *args: Any, **kwargs: Any) -> Any:
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackOutcomeFailure

    endpoint = _take_task(self, task_token)
    endpoint.notify(CallbackOutcomeFailure(callback_id=task_token, error=error, cause=cause))


def send_task_heartbeat(self: Any, task_token: Any, *args: Any, **kwargs: Any) -> Any:
    with _TOKENS:
        endpoint = open_task(self, task_token)
    endpoint.notify_heartbeat()  # False without HeartbeatSeconds: AWS answers 200 all the same


def _task_endpoint(env: Any) -> Any:
    task = env.states.context_object.context_object_data.get("Task")
    token = task.get("Token") if isinstance(task, dict) else None
    return env.callback_pool_manager.get(token) if token else None


_ORIGINAL: dict[str, Any] = {}


def evaluate_with_timeout(self: Any, env: Any) -> Any:
    """One attempt of an execution state; closes a .waitForTaskToken task's token after it."""
    endpoint = _task_endpoint(env)
    if endpoint is not None and _is_closed(endpoint):  # a Retry attempt: a new task, a new token
        endpoint = env.callback_pool_manager.add(env.states.context_object.update_task_token())
    try:
        return _ORIGINAL["_evaluate_with_timeout"](self, env)
    finally:
        if endpoint is not None:
            with _TOKENS:
                _close(endpoint)


def callback_failure_event(self: Any, env: Any, ex: Any) -> Any:
    event = _ORIGINAL["_get_callback_outcome_failure_event"](self, env, ex)
    for details in event.event_details.values():
        if isinstance(details, dict):
            for key in ("error", "cause"):
                if details.get(key) is None:
                    details.pop(key, None)  # AWS binds "" in the error output
    return event


def response_send_task_failure(self: Any) -> Any:
    from moto.core.responses import EmptyResult

    self.stepfunction_backend.send_task_failure(
        self._get_param("taskToken"), error=self._get_param("error"), cause=self._get_param("cause")
    )
    return EmptyResult()


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
        # Its worker runs already, and may have ended it: this is the start's event all the same.
        send_status_event(self, started=True)

    def execution_stop(self: Any, *args: Any, **kwargs: Any) -> Any:
        self.stackwave_stopped = True
        result = _ORIGINAL["execution_stop"](self, *args, **kwargs)
        # A task waiting for its callback ends with the execution (7): wake every waiter, the
        # stopped program then ends instead of starting the next state.
        env = getattr(getattr(self, "exec_worker", None), "env", None)
        manager = getattr(env, "callback_pool_manager", None)
        for endpoint in list(getattr(manager, "_pool", {}).values()):
            with _TOKENS:
                _close(endpoint)
            endpoint.interrupt_all()
        return result

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

    _ORIGINAL["stop_execution"] = StepFunctionsParserBackend.stop_execution

    def stop_execution(self: Any, execution_arn: str, *args: Any, **kwargs: Any) -> Any:
        from moto.stepfunctions.parser.api import ExecutionStatus

        result = _ORIGINAL["stop_execution"](self, execution_arn, *args, **kwargs)
        for child in self._get_executions(ExecutionStatus.RUNNING):
            data = getattr(child, "input_data", None)
            if isinstance(data, dict) and data.get(STARTED_BY) == execution_arn:
                log.info("stopping %s with its parent %s", child.execution_arn, execution_arn)
                stop_execution(self, child.execution_arn)
        return result

    StepFunctionsParserBackend.stop_execution = stop_execution  # type: ignore[method-assign]

    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
        StateTaskServiceSfn,
    )

    _ORIGINAL["sfn_normalise_parameters"] = StateTaskServiceSfn._normalise_parameters

    def sfn_normalise_parameters(self: Any, parameters: dict, *args: Any, **kwargs: Any) -> None:
        _ORIGINAL["sfn_normalise_parameters"](self, parameters, *args, **kwargs)
        for key in list(parameters):
            if key[:1].isupper():
                parameters[key[0].lower() + key[1:]] = parameters.pop(key)

    def sfn_normalise_response(self: Any, response: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(response, dict):
            for key in list(response):
                if key[:1].islower():
                    response[key[0].upper() + key[1:]] = response.pop(key)

    StateTaskServiceSfn._normalise_parameters = sfn_normalise_parameters  # type: ignore[method-assign]
    StateTaskServiceSfn._normalise_response = sfn_normalise_response  # type: ignore[method-assign]

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

    from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
        StateTaskServiceCallback,
    )
    from moto.stepfunctions.responses import StepFunctionResponse

    _ORIGINAL["_evaluate_with_timeout"] = ExecutionState._evaluate_with_timeout
    _ORIGINAL["_get_callback_outcome_failure_event"] = StateTaskServiceCallback._get_callback_outcome_failure_event
    ExecutionState._evaluate_with_timeout = evaluate_with_timeout  # type: ignore[method-assign]
    StateTaskServiceCallback._get_callback_outcome_failure_event = callback_failure_event  # type: ignore[method-assign]
    StepFunctionsParserBackend.send_task_success = send_task_success  # type: ignore[method-assign]
    StepFunctionsParserBackend.send_task_failure = send_task_failure  # type: ignore[method-assign]
    StepFunctionsParserBackend.send_task_heartbeat = send_task_heartbeat  # type: ignore[method-assign]
    StepFunctionResponse.send_task_failure = response_send_task_failure  # type: ignore[method-assign]
