"""DescribeStacks masks the value of every ``NoEcho`` parameter as ``****``, as in AWS.

CloudFormation User Guide, "Parameters" (``NoEcho``): "If you set the NoEcho attribute to true,
CloudFormation returns the parameter value masked as asterisks (*****) for any calls that
describe the stack or stack events". moto 5.2.5 means to do this but compares each parameter's
*value* with the list of NoEcho *keys* (``Stack.parameter_list``), so it shows every NoEcho
value in clear text. The mask is now chosen by the parameter's key.
"""

from __future__ import annotations

from typing import Any

MASK = "****"
_ORIGINAL: dict[str, Any] = {}


def install() -> None:
    if _ORIGINAL:
        return
    from moto.cloudformation.models import Stack

    _ORIGINAL["parameter_list"] = Stack.parameter_list

    def parameter_list(self: Any) -> list[dict[str, Any]]:
        hidden = set(self.resource_map.no_echo_parameter_keys)
        return [
            {"ParameterKey": k, "ParameterValue": MASK if k in hidden else v}
            for k, v in self.resource_map.resolved_parameters.items()
        ]

    Stack.parameter_list = property(parameter_list)  # type: ignore[assignment,method-assign]
