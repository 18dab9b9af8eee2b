"""Change sets as AWS reports them.

AWS behaviour restored (API reference: CreateChangeSet, DescribeChangeSet, ListChangeSets,
DeleteChangeSet; User Guide "Update stacks using change sets"):

* A change set whose template, parameters and tags equal the stack's current ones is created
  anyway and reports ``Status FAILED``, ``ExecutionStatus UNAVAILABLE`` and StatusReason
  "The submitted information didn't contain changes. Submit different information to create a
  change set." moto raised ValidationError "No updates are to be performed." when the template
  was given as TemplateBody, and compared against stale parameters after an execution.
* ChangeSetType CREATE puts a new stack in REVIEW_IN_PROGRESS; a CREATE change set for a
  stack that already exists (other than in REVIEW_IN_PROGRESS) is refused. moto created a
  second stack with the same name.
* An UPDATE change set is refused while the stack cannot be updated (busy or failed).
* A change set name is unique per stack: a second CreateChangeSet with the same name answers
  AlreadyExistsException ("... cannot be created due to a mismatch with existing attribute
  ClientToken"), unless it repeats the same ClientToken and template, when it returns the
  existing change set (an idempotent retry).
* Change sets are looked up within their stack (a name is only unique per stack) and a
  missing one answers ChangeSetNotFound; ListChangeSets lists the named stack's only.
* Optionally (``changeSetSeconds`` > 0) a new change set is CREATE_PENDING, then
  CREATE_IN_PROGRESS, before its final status, as in AWS.
* The new stack's REVIEW_IN_PROGRESS is a stack status change like any other: a
  ``CloudFormation Stack Status Change`` event (see ``cloudformation_async``), without a
  client request token (CreateChangeSet has none).
"""

from __future__ import annotations

import time
import copy
from typing import Any

from moto.cloudformation.exceptions import (
    AlreadyExistsException,
    CloudFormationError,
    ValidationError,
)
from moto.cloudformation.models import Change, ChangeSet, CloudFormationBackend, Stack
from moto.cloudformation.responses import CloudFormationResponse, transform_dict
from moto.cloudformation.utils import generate_changeset_id, generate_stack_id, validate_create_change_set
from moto.core.responses import ActionResult, EmptyResult

from .cloudformation_async import (
    STACK_TYPE,
    _emit,
    _physical_id,
    diff_items,
    effective_parameters,
    ensure_updatable,
    find_live_stack,
    status_changed,
)
from .runtime import CONFIG, SCHEDULER

NO_CHANGES = (
    "The submitted information didn't contain changes. "
    "Submit different information to create a change set."
)


class ChangeSetNotFound(CloudFormationError):
    code = "ChangeSetNotFound"


def find_change_set(backend: CloudFormationBackend, name: str, stack_name: str | None) -> ChangeSet:
    if name in backend.change_sets:  # an ARN
        return backend.change_sets[name]
    if not stack_name:
        raise ValidationError(
            message="StackName must be specified if ChangeSetName is not specified as an ARN."
        )
    stack = find_live_stack(backend, stack_name) or backend.deleted_stacks.get(stack_name)
    if stack is not None:
        for change_set in backend.change_sets.values():
            if change_set.stack_id == stack.stack_id and change_set.change_set_name == name:
                return change_set
    raise ChangeSetNotFound(f"ChangeSet [{name}] does not exist")


def _normalized(template: dict[str, Any]) -> dict[str, Any]:
    """The template as CloudFormation compares it. moto adds ``"Properties": {}`` in place to a
    stored resource that had none, so a resource without Properties equals one with empty ones."""
    out = copy.deepcopy(template or {})
    for resource in (out.get("Resources") or {}).values():
        if isinstance(resource, dict) and not resource.get("Properties"):
            resource.pop("Properties", None)
    return out


def has_changes(stack: Stack, template_dict: dict[str, Any], parameters: dict[str, Any], tags: dict[str, str] | None) -> bool:
    if _normalized(stack.template_dict) != _normalized(template_dict):
        return True
    old = effective_parameters(stack.template_dict, stack.parameters or {})
    new = effective_parameters(template_dict, parameters or {})
    if old != new:
        return True
    return bool(tags) and dict(tags) != dict(stack.tags or {})


def resource_changes(stack: Stack, template_dict: dict[str, Any], parameters: dict[str, Any]) -> list[Change]:
    """Add/Modify/Remove per resource, counting parameter changes (moto ignored parameters)."""
    main, removed = diff_items(stack.template_dict or {}, stack.parameters or {}, template_dict, parameters or {})
    changes = []
    parsed = stack.resource_map._parsed_resources
    for item in main + removed:
        action = {"CREATE": "Add", "UPDATE": "Modify", "DELETE": "Remove"}[item.action]
        change = Change(action=action, logical_resource_id=item.logical_id, resource_type=item.resource_type)
        if action != "Add":
            change.physical_resource_id = _physical_id(parsed.get(item.logical_id))  # type: ignore[attr-defined]
        changes.append(change)
    return changes


def _finalize(change_set: ChangeSet, no_changes: bool) -> None:
    if no_changes:
        change_set.status = "FAILED"
        change_set.execution_status = "UNAVAILABLE"
        change_set.status_reason = NO_CHANGES
    else:
        change_set.status = "CREATE_COMPLETE"
        change_set.execution_status = "AVAILABLE"
        change_set.status_reason = None


def create_change_set_model(
    self: CloudFormationBackend,
    stack_name: str,
    change_set_name: str,
    template: str,
    parameters: dict[str, str],
    description: str,
    change_set_type: str,
    notification_arns: list[str] | None = None,
    tags: dict[str, str] | None = None,
    role_arn: str | None = None,
) -> tuple[str, str]:
    """Replaces CloudFormationBackend.create_change_set."""
    validate_create_change_set(change_set_name)
    stack = find_live_stack(self, stack_name)
    if change_set_type == "UPDATE":
        if stack is None:
            raise ValidationError(message=f"Stack [{stack_name}] does not exist")
        ensure_updatable(stack)
    elif change_set_type == "CREATE":
        if stack is not None and stack.status != "REVIEW_IN_PROGRESS":
            raise ValidationError(
                message=f"Stack [{stack_name}] already exists and cannot be created again with the changeSet [{change_set_name}]."
            )
        if stack is None:
            stack = Stack(
                stack_id=generate_stack_id(stack_name, self.region_name, self.account_id),
                name=stack_name,
                template={},
                parameters=parameters,
                account_id=self.account_id,
                region_name=self.region_name,
                notification_arns=notification_arns,
                tags=tags,
                role_arn=role_arn,
            )
            self.stacks[stack.stack_id] = stack
            stack.status = "REVIEW_IN_PROGRESS"
            now = time.time()
            _emit(stack, now, stack.name, STACK_TYPE, "REVIEW_IN_PROGRESS", "User Initiated", stack.stack_id)
            status_changed(stack, now, "REVIEW_IN_PROGRESS", "User Initiated")
    else:
        raise ValidationError(message=f"ChangeSetType {change_set_type} is not supported by this emulator")

    change_set = ChangeSet(
        change_set_type=change_set_type,
        change_set_id=generate_changeset_id(change_set_name, self.region_name, self.account_id),
        change_set_name=change_set_name,
        stack=stack,
        template=template,
        parameters=parameters,
        description=description,
        notification_arns=notification_arns,
        tags=tags,
        role_arn=role_arn,
    )
    change_set.changes = resource_changes(stack, change_set.template_dict, parameters)
    no_changes = change_set_type == "UPDATE" and not has_changes(stack, change_set.template_dict, parameters, tags)
    seconds = CONFIG.change_set_seconds
    if seconds > 0:
        change_set.status = "CREATE_PENDING"
        change_set.execution_status = "UNAVAILABLE"
        change_set.status_reason = None

        def in_progress(ts: float) -> None:
            change_set.status = "CREATE_IN_PROGRESS"

        def done(ts: float) -> None:
            _finalize(change_set, no_changes)

        now = time.time()
        SCHEDULER.set(("changeset", change_set.change_set_id), [(now + seconds * 0.3, in_progress), (now + seconds, done)])
    else:
        _finalize(change_set, no_changes)
    self.change_sets[change_set.change_set_id] = change_set
    return change_set.change_set_id, stack.stack_id


_ORIGINAL: dict[str, Any] = {}


def _request_template(self: CloudFormationResponse, stack: Stack | None) -> Any:
    if self._get_bool_param("UsePreviousTemplate", False) and stack is not None:
        return stack.template
    url = self._get_param("TemplateURL")
    if url:
        return self._get_stack_from_s3_url(url)
    return self._get_param("TemplateBody")


def create_change_set(self: CloudFormationResponse) -> Any:
    backend = self.cloudformation_backend
    stack_name = self._get_param("StackName")
    name = self._get_param("ChangeSetName")
    client_token = self._get_param("ClientToken")
    change_set_type = self._get_param("ChangeSetType", "CREATE")
    stack = find_live_stack(backend, stack_name)
    if change_set_type == "UPDATE" and stack is None:
        raise ValidationError(message=f"Stack [{stack_name}] does not exist")
    if stack is not None:
        for existing in backend.change_sets.values():
            if existing.stack_id != stack.stack_id or existing.change_set_name != name:
                continue
            if not client_token or client_token != getattr(existing, "_sw_client_token", None):
                raise AlreadyExistsException(
                    f"ChangeSet {name} cannot be created due to a mismatch with existing attribute ClientToken"
                )
            template = _request_template(self, stack)
            if Stack.parse_template(template) != existing.template_dict:
                raise AlreadyExistsException(
                    f"ChangeSet {name} cannot be created due to a mismatch with existing attribute Template"
                )
            return ActionResult({"Id": existing.change_set_id, "StackId": existing.stack_id})
    on_stack_failure = self._get_param("OnStackFailure")
    if on_stack_failure == "DELETE" and change_set_type != "CREATE":
        raise ValidationError(message="OnStackFailure DELETE is only valid for a change set of type CREATE.")
    result = _ORIGINAL["create_change_set"](self)
    change_set = backend.change_sets[result.result["Id"]]  # type: ignore[index]
    change_set._sw_client_token = client_token
    change_set._sw_on_stack_failure = on_stack_failure
    return result


def _validate_different_update(self: CloudFormationResponse, *args: Any, **kwargs: Any) -> None:
    if self._get_action() == "CreateChangeSet":
        return  # AWS answers with a FAILED change set instead (see has_changes)
    _ORIGINAL["_validate_different_update"](self, *args, **kwargs)


def describe_change_set(self: CloudFormationResponse) -> Any:
    change_set = find_change_set(
        self.cloudformation_backend, self._get_param("ChangeSetName"), self._get_param("StackName")
    )
    return ActionResult(change_set)


def delete_change_set(self: CloudFormationResponse) -> Any:
    backend = self.cloudformation_backend
    change_set = find_change_set(backend, self._get_param("ChangeSetName"), self._get_param("StackName"))
    if change_set.execution_status == "EXECUTE_IN_PROGRESS":
        raise CloudFormationError(
            "InvalidChangeSetStatus",
            f"ChangeSet [{change_set.change_set_id}] cannot be deleted in its current execution status of [EXECUTE_IN_PROGRESS]",
        )
    backend.change_sets.pop(change_set.change_set_id, None)
    SCHEDULER.cancel(("changeset", change_set.change_set_id))
    return EmptyResult()


def list_change_sets(self: CloudFormationResponse) -> Any:
    backend = self.cloudformation_backend
    stack_name = self._get_param("StackName")
    stack = find_live_stack(backend, stack_name) or backend.deleted_stacks.get(stack_name)
    if stack is None:
        raise ValidationError(message=f"Stack [{stack_name}] does not exist")
    summaries = [cs for cs in backend.change_sets.values() if cs.stack_id == stack.stack_id]
    return ActionResult({"Summaries": summaries})


def install() -> None:
    if _ORIGINAL:
        return
    _ORIGINAL["create_change_set"] = CloudFormationResponse.create_change_set
    _ORIGINAL["_validate_different_update"] = CloudFormationResponse._validate_different_update
    CloudFormationBackend.create_change_set = create_change_set_model  # type: ignore[method-assign]
    CloudFormationResponse.create_change_set = create_change_set  # type: ignore[method-assign]
    CloudFormationResponse._validate_different_update = _validate_different_update  # type: ignore[method-assign]
    CloudFormationResponse.describe_change_set = describe_change_set  # type: ignore[method-assign]
    CloudFormationResponse.delete_change_set = delete_change_set  # type: ignore[method-assign]
    CloudFormationResponse.list_change_sets = list_change_sets  # type: ignore[method-assign]
    # DescribeChangeSet's Tags are a list of Key/Value in the API; moto keeps a dict
    CloudFormationResponse.RESPONSE_KEY_PATH_TO_TRANSFORMER.setdefault(
        "DescribeChangeSetOutput.Tags", lambda tags: transform_dict(tags) if isinstance(tags, dict) else tags
    )
