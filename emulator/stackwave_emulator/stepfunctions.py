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
"""

from __future__ import annotations

import uuid
from typing import Any

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

    _ORIGINAL["start_execution"] = StepFunctionsParserBackend.start_execution
    _ORIGINAL["_from_error"] = StateTaskLambda._from_error

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
