"""CloudFormation stack operations run asynchronously, as they do in AWS.

moto applies every stack operation synchronously and reports the terminal status at once.
AWS behaviour restored here (CloudFormation User Guide, "Stack status codes" and "Stack events";
API reference for CreateStack, UpdateStack, DeleteStack, ExecuteChangeSet, CancelUpdateStack,
ContinueUpdateRollback):

* After CreateStack, UpdateStack, ExecuteChangeSet or DeleteStack the stack reports
  ``*_IN_PROGRESS`` (and ``UPDATE_COMPLETE_CLEANUP_IN_PROGRESS``) for a scripted duration, then
  its terminal status. DescribeStacks, ListStacks, DescribeStackEvents and GetTemplate agree.
* Stack events are recorded as AWS records them: the stack ``*_IN_PROGRESS`` ("User
  Initiated"), each resource ``*_IN_PROGRESS`` then ``*_COMPLETE`` spread over the duration,
  the stack's terminal status last; real timestamps; every event of an operation carries the
  operation's ClientRequestToken.
* Outputs appear when a create completes; during an update the previous outputs are shown,
  and after it (by UpdateStack or by a change set) the new template's outputs.
* A second operation on a stack that is busy is refused ("Stack:<id> is in <STATUS> state and
  can not be updated."); a deleted stack is no longer found by name.
* Repeating CreateStack, UpdateStack, ExecuteChangeSet or DeleteStack with the same
  ClientRequestToken succeeds without starting a second operation.
* Failures (from ``faults`` or from moto failing to create a resource) go through the real
  sequences: CREATE_FAILED -> ROLLBACK_IN_PROGRESS -> ROLLBACK_COMPLETE (or ROLLBACK_FAILED);
  UPDATE_FAILED -> UPDATE_ROLLBACK_IN_PROGRESS -> UPDATE_ROLLBACK_COMPLETE (template,
  parameters and outputs revert), or UPDATE_ROLLBACK_FAILED until ContinueUpdateRollback;
  DELETE_FAILED. CreateStack OnFailure/DisableRollback and ExecuteChangeSet DisableRollback
  (or the change set's OnStackFailure) are honoured.
* CancelUpdateStack and ContinueUpdateRollback, which moto does not implement, exist.
* Every stack status change (the stack's own events above, and REVIEW_IN_PROGRESS of a CREATE
  change set's new stack) is a ``CloudFormation Stack Status Change`` event on the account's
  default EventBridge bus (User Guide, "Stack Status Change event detail"): source
  ``aws.cloudformation``, ``resources`` the stack id, detail ``stack-id``, ``status-details``
  (``status``, ``status-reason``, ``""`` when there is none) and ``client-request-token`` (the
  operation's ClientRequestToken, ``""`` without one). They are delivered asynchronously, in
  order, after the call or scheduled step that changed the status (``eventbridge.send_later``).
  moto sent none.

moto still creates, updates and deletes the resources themselves (at the start of an
operation, or at its end for deletes); only what CloudFormation reports is scheduled.
"""

from __future__ import annotations

import copy
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from moto.cloudformation.exceptions import (
    AlreadyExistsException,
    CloudFormationError,
    ValidationError,
)
from moto.cloudformation.models import CloudFormationBackend, Event, Stack
from moto.cloudformation.parsing import OutputMap
from moto.cloudformation.responses import CloudFormationResponse
from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult, EmptyResult

from .faults import DEFAULT_REASON, DEFAULT_ROLLBACK_REASON, FAULTS, Fault
from .runtime import CONFIG, LOCK, SCHEDULER

log = logging.getLogger("stackwave_emulator")

STACK_TYPE = "AWS::CloudFormation::Stack"
_LIVE = object()  # marker: show moto's live outputs
_SUPPRESS = threading.local()  # moto's own synchronous stack events are dropped while set

#: statuses from which a stack cannot be updated (besides every *_IN_PROGRESS)
NOT_UPDATABLE = {
    "ROLLBACK_COMPLETE",
    "ROLLBACK_FAILED",
    "UPDATE_ROLLBACK_FAILED",
    "DELETE_COMPLETE",
    "DELETE_FAILED",
}


class InvalidChangeSetStatus(CloudFormationError):
    code = "InvalidChangeSetStatus"


# --------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------


def _timestamp(epoch: float) -> datetime:
    # moto keeps naive UTC datetimes
    return datetime.fromtimestamp(epoch, tz=timezone.utc).replace(tzinfo=None)


def _tokens(stack: Stack) -> set[tuple[str, str]]:
    if not hasattr(stack, "_sw_tokens"):
        stack._sw_tokens = set()  # type: ignore[attr-defined]
    return stack._sw_tokens  # type: ignore[attr-defined]


def _record_token(stack: Stack, kind: str, token: str | None) -> None:
    if token:
        _tokens(stack).add((kind, token))


def _seen_token(stack: Stack, kind: str, token: str | None) -> bool:
    return bool(token) and (kind, token) in _tokens(stack)


def find_live_stack(backend: CloudFormationBackend, name_or_id: str) -> Stack | None:
    """A stack that is not deleted, by name or id (AWS: names resolve to live stacks only)."""
    if name_or_id in backend.stacks:
        return backend.stacks[name_or_id]
    for stack in backend.stacks.values():
        if stack.name == name_or_id:
            return stack
    return None


def ensure_updatable(stack: Stack) -> None:
    status = stack.status
    if status.endswith("_IN_PROGRESS") or status in NOT_UPDATABLE:
        raise ValidationError(
            stack.stack_id,
            message=f"Stack:{stack.stack_id} is in {status} state and can not be updated.",
        )


STATUS_CHANGE = "CloudFormation Stack Status Change"


def status_change_event(stack: Stack, ts: float, status: str, reason: str | None, token: str | None) -> dict[str, Any]:
    """The EventBridge event of a stack status change (moto's internal form: epoch ``time``)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": STATUS_CHANGE,
        "source": "aws.cloudformation",
        "account": stack.account_id,
        "time": ts,
        "region": stack.region_name,
        "resources": [stack.stack_id],
        "detail": {
            "stack-id": stack.stack_id,
            "status-details": {"status": status, "status-reason": reason or ""},
            "client-request-token": token or "",
        },
    }


def status_changed(stack: Stack, ts: float, status: str, reason: str | None = None, token: str | None = None) -> None:
    """Sends the status change to EventBridge once the lock is free (never from under it)."""
    from .eventbridge import send_later

    try:
        send_later(stack.account_id, stack.region_name, status_change_event(stack, ts, status, reason, token))
    except Exception:  # asynchronous in AWS: the operation goes on regardless
        log.exception("status change event of %s not queued", stack.name)


def _emit(
    stack: Stack,
    ts: float,
    logical_id: str,
    resource_type: str,
    status: str,
    reason: str | None = None,
    physical_id: str | None = None,
    token: str | None = None,
) -> None:
    event = Event(
        stack_id=stack.stack_id,
        stack_name=stack.name,
        logical_resource_id=logical_id,
        physical_resource_id=physical_id,  # type: ignore[arg-type]
        resource_type=resource_type,
        resource_status=status,
        resource_status_reason=reason,
        resource_properties=None,
    )
    event.timestamp = _timestamp(ts)
    event.client_request_token = token
    stack.events.append(event)
    if stack.notification_arns:
        try:
            event.sendToSns(stack.account_id, stack.region_name, stack.notification_arns)
        except Exception:  # a missing topic must not break the operation
            log.exception("stack event notification failed")


# --------------------------------------------------------------------------------------
# resources of a template
# --------------------------------------------------------------------------------------


@dataclass
class Item:
    """One resource's part in an operation."""

    logical_id: str
    resource_type: str
    action: str  # CREATE | UPDATE | DELETE | SKIP (a retained resource on delete)
    physical_id: str | None = None

    def statuses(self) -> tuple[str, str, str]:
        verb = "DELETE" if self.action == "SKIP" else self.action
        done = "DELETE_SKIPPED" if self.action == "SKIP" else f"{verb}_COMPLETE"
        return f"{verb}_IN_PROGRESS", done, f"{verb}_FAILED"


_SUB_REF = re.compile(r"\$\{([A-Za-z0-9]+)(?:\.[^}]*)?\}")


def _references(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                target = value[0] if isinstance(value, list) and value else value
                if isinstance(target, str):
                    found.add(target.split(".")[0])
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) and value else value
                if isinstance(text, str):
                    found.update(_SUB_REF.findall(text))
                found |= _references(value)
            else:
                found |= _references(value)
    elif isinstance(node, list):
        for value in node:
            found |= _references(value)
    return found


def dependency_order(resources: dict[str, Any]) -> list[str]:
    """Logical ids so that every resource follows what it depends on (DependsOn, Ref, GetAtt, Sub)."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:  # a cycle: CloudFormation rejects it; keep going here
            return
        state[name] = 1
        body = resources.get(name) or {}
        deps = body.get("DependsOn", [])
        deps = [deps] if isinstance(deps, str) else list(deps or [])
        for dep in sorted(set(deps) | _references(body.get("Properties", {}))):
            if dep in resources and dep != name:
                visit(dep)
        state[name] = 2
        order.append(name)

    for name in resources:
        visit(name)
    return order


def _physical_id(resource: Any) -> str | None:
    if resource is None or isinstance(resource, (str, int, float, list, dict)):
        return None
    try:
        value = getattr(resource, "physical_resource_id", None)
    except Exception:
        return None
    return str(value) if value is not None else None


def existing_items(stack: Stack, action: str) -> list[Item]:
    """The resources moto holds for a stack, in dependency order."""
    resource_map = stack.resource_map
    templates = resource_map._resource_json_map or {}
    parsed = resource_map._parsed_resources
    items = []
    for logical_id in dependency_order(templates):
        if logical_id not in parsed:
            continue  # a false Condition, or never created
        items.append(
            Item(
                logical_id,
                templates[logical_id].get("Type", "AWS::CloudFormation::CustomResource"),
                action,
                _physical_id(parsed[logical_id]),
            )
        )
    return items


def _param_references(node: Any) -> set[str]:
    return _references(node)


def effective_parameters(template: dict[str, Any], parameters: dict[str, Any]) -> dict[str, str]:
    """Parameter values as CloudFormation resolves them: given values, else the template's defaults."""
    out = {}
    for key, spec in ((template or {}).get("Parameters") or {}).items():
        if key in parameters:
            value = parameters[key]
        elif isinstance(spec, dict) and "Default" in spec:
            value = spec["Default"]
        else:
            continue
        out[key] = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    return out


def diff_items(
    old_template: dict[str, Any],
    old_params: dict[str, Any],
    new_template: dict[str, Any],
    new_params: dict[str, Any],
) -> tuple[list[Item], list[Item]]:
    """(adds and modifications, removals) between two template/parameter sets."""
    old = (old_template or {}).get("Resources") or {}
    new = (new_template or {}).get("Resources") or {}
    old_params = effective_parameters(old_template, old_params)
    new_params = effective_parameters(new_template, new_params)
    changed_params = {
        key
        for key in set(old_params) | set(new_params)
        if str(old_params.get(key)) != str(new_params.get(key))
    }
    main: list[Item] = []
    for name in dependency_order(new):
        rtype = new[name].get("Type", "")
        if name not in old:
            main.append(Item(name, rtype, "CREATE"))
        elif new[name] != old[name] or (_param_references(new[name]) & changed_params):
            main.append(Item(name, rtype, "UPDATE"))
    removed = [
        Item(name, old[name].get("Type", ""), "DELETE")
        for name in reversed(dependency_order(old))
        if name not in new
    ]
    return main, removed


# --------------------------------------------------------------------------------------
# applying templates in moto
# --------------------------------------------------------------------------------------


@dataclass
class Snapshot:
    template: Any
    template_dict: dict[str, Any]
    parameters: dict[str, Any]
    tags: dict[str, str]
    outputs: list[dict[str, Any]] | None
    description: str | None


def visible_outputs(stack: Stack) -> list[dict[str, Any]] | None:
    return stack.outputs


def take_snapshot(stack: Stack) -> Snapshot:
    try:
        outputs = copy.deepcopy(visible_outputs(stack))
    except Exception:
        outputs = None
    return Snapshot(
        template=stack.template,
        template_dict=copy.deepcopy(stack.template_dict),
        parameters=dict(stack.parameters or {}),
        tags=dict(stack.tags or {}),
        outputs=outputs,
        description=stack.description,
    )


def refresh_exports(backend: CloudFormationBackend, stack: Stack) -> None:
    """Replaces the stack's exports in the region's export list (moto never refreshes them)."""
    for name in [n for n, e in backend.exports.items() if e.exporting_stack_id == stack.stack_id]:
        backend.exports.pop(name, None)
    for export in stack.exports:
        if export.name in backend.exports:
            raise ValidationError(
                stack.stack_id, message="Export names must be unique across a given region"
            )
        backend.exports[export.name] = export


def apply_update(
    backend: CloudFormationBackend,
    stack: Stack,
    template: Any,
    parameters: dict[str, Any],
    tags: dict[str, str] | None,
    replace_tags: bool = False,
) -> None:
    """Brings moto's resources, parameters, template, tags and outputs to a new template.

    moto's ExecuteChangeSet only updated the resources and the template text: parameters,
    description and outputs stayed those of the previous template.
    """
    new_dict = Stack.parse_template(template) if isinstance(template, str) else template
    if not isinstance(new_dict, dict) or "Resources" not in new_dict:
        raise ValidationError(
            message="Template format error: At least one Resources member must be defined."
        )
    resource_map = stack.resource_map
    if not parameters:
        resource_map.input_parameters = {}
    resource_map.resolved_parameters = {}
    resource_map.update(new_dict, parameters)
    resource_map.input_parameters = dict(parameters)
    stack.template = template
    stack.template_dict = new_dict
    stack.parameters = dict(parameters)
    stack.description = new_dict.get("Description")
    if replace_tags:
        stack.tags = dict(tags or {})
    elif tags:
        stack.tags = dict(tags)
    stack.output_map = stack._create_output_map()
    refresh_exports(backend, stack)


def materialize_create(backend: CloudFormationBackend, stack: Stack, change_set: Any) -> None:
    """Creates the resources of a CREATE change set's stack (left REVIEW_IN_PROGRESS)."""
    stack.template = change_set.template
    stack._parse_template()
    stack.parameters = dict(change_set.parameters or {})
    if change_set.tags:
        stack.tags = dict(change_set.tags)
    stack.description = stack.template_dict.get("Description")
    stack.cross_stack_resources = backend.exports
    stack.resource_map = stack._create_resource_map()
    stack.output_map = stack._create_output_map()
    backend._validate_export_uniqueness(stack)
    with suppressed_events():
        stack.create_resources()
    for export in stack.exports:
        backend.exports[export.name] = export


def strip_resources(backend: CloudFormationBackend, stack: Stack) -> None:
    """A rolled-back create: resources deleted, no outputs or exports left."""
    try:
        stack.resource_map.delete()
    except Exception:
        log.exception("deleting the resources of %s during rollback", stack.name)
    stack.resource_map._resource_json_map = {}
    stack.output_map = OutputMap(stack.resource_map, {}, stack.stack_id)
    for name in [n for n, e in backend.exports.items() if e.exporting_stack_id == stack.stack_id]:
        backend.exports.pop(name, None)


def finish_delete(backend: CloudFormationBackend, stack: Stack, ts: float) -> None:
    exports = [n for n, e in backend.exports.items() if e.exporting_stack_id == stack.stack_id]
    try:
        stack.resource_map.delete()
    except Exception:
        log.exception("deleting the resources of %s", stack.name)
    backend.stacks.pop(stack.stack_id, None)
    backend.deleted_stacks[stack.stack_id] = stack
    for name in exports:
        backend.exports.pop(name, None)
    for cs_id in [i for i, cs in backend.change_sets.items() if cs.stack_id == stack.stack_id]:
        del backend.change_sets[cs_id]
    stack.deletion_time = _timestamp(ts)


class suppressed_events:
    """Drops the events moto adds while it applies an operation synchronously."""

    def __enter__(self) -> None:
        _SUPPRESS.depth = getattr(_SUPPRESS, "depth", 0) + 1

    def __exit__(self, *exc: Any) -> None:
        _SUPPRESS.depth -= 1


# --------------------------------------------------------------------------------------
# operations
# --------------------------------------------------------------------------------------


@dataclass
class Operation:
    backend: CloudFormationBackend
    stack: Stack
    kind: str  # CREATE | UPDATE | DELETE | ROLLBACK
    token: str | None
    change_set: Any = None
    on_failure: str = "ROLLBACK"  # ROLLBACK | DO_NOTHING | DELETE
    snapshot: Snapshot | None = None
    done: list[Item] = field(default_factory=list)
    current: Item | None = None
    cleanup: list[Item] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return ("stack", self.stack.stack_id)

    @property
    def seconds(self) -> float:
        return CONFIG.seconds_for(self.stack.name)

    def status(self, ts: float, status: str, reason: str | None = None) -> None:
        stack = self.stack
        stack.status = status
        stack.stack_status_reason = reason
        _emit(stack, ts, stack.name, STACK_TYPE, status, reason, stack.stack_id, self.token)
        status_changed(stack, ts, status, reason, self.token)

    def resource(self, ts: float, item: Item, status: str, reason: str | None = None) -> None:
        physical = item.physical_id if not status.endswith("_IN_PROGRESS") else None
        _emit(self.stack, ts, item.logical_id, item.resource_type, status, reason, physical, self.token)

    def execution(self, status: str) -> None:
        if self.change_set is not None:
            self.change_set.execution_status = status

    def schedule(self, steps: list[tuple[float, Callable[[float], None]]]) -> None:
        self.stack._sw_op = self
        SCHEDULER.extend(self.key, steps)

    def finish(self) -> None:
        if getattr(self.stack, "_sw_op", None) is self:
            self.stack._sw_op = None


def _phase(
    op: Operation,
    start: float,
    duration: float,
    items: list[Item],
    on_done: Callable[[float], None],
    fail_item: Item | None = None,
    fail_reason: str | None = None,
    on_fail: Callable[[float, Item], None] | None = None,
    track: bool = True,
) -> list[tuple[float, Callable[[float], None]]]:
    """Steps for resources handled one after another over ``duration``, then ``on_done``.

    When ``fail_item`` is reached it fails with ``fail_reason`` and ``on_fail`` runs instead.
    """
    steps: list[tuple[float, Callable[[float], None]]] = []
    slot = duration / (len(items) + 1)
    for index, item in enumerate(items):
        begin, end = start + slot * (index + 0.5), start + slot * (index + 1)
        in_progress, complete, failed = item.statuses()

        def started(ts: float, item: Item = item, status: str = in_progress) -> None:
            if track:
                op.current = item
            if item.action != "SKIP":
                op.resource(ts, item, status)

        steps.append((begin, started))
        if item is fail_item:

            def failing(ts: float, item: Item = item, status: str = failed) -> None:
                op.current = None
                op.resource(ts, item, status, fail_reason)
                assert on_fail is not None
                on_fail(ts, item)

            steps.append((end, failing))
            return steps

        def completed(ts: float, item: Item = item, status: str = complete) -> None:
            if track:
                op.current = None
                op.done.append(item)
            op.resource(ts, item, status)

        steps.append((end, completed))
    steps.append((start + duration, on_done))
    return steps


def _plan_faults(
    stack_name: str, on: str, rollback_possible: bool
) -> tuple[Fault | None, Fault | None, Fault | None, bool]:
    """(fail fault, hang fault, rollback fault, fails) for an operation starting now."""
    hang = FAULTS.take("hang", stack_name, on)
    fail = FAULTS.take("fail", stack_name, on)
    rollback = None
    fails = fail is not None
    if on in ("create", "update") and rollback_possible:
        if fail is not None:
            rollback = FAULTS.take("fail", stack_name, "rollback")
        elif hang is None and FAULTS.peek("fail", stack_name, "rollback") is not None:
            # "fail the rollback" alone: this operation fails so that its rollback can fail
            rollback = FAULTS.take("fail", stack_name, "rollback")
            fails = True
    return fail, hang, rollback, fails


def _pick(items: list[Item], wanted: str | None) -> Item | None:
    if wanted:
        for item in items:
            if item.logical_id == wanted:
                return item
    return items[-1] if items else None


def _template_item(stack: Stack, wanted: str | None, action: str) -> Item | None:
    resources = (stack.template_dict or {}).get("Resources") or {}
    if not resources:
        return None
    name = wanted if wanted in resources else next(iter(resources))
    return Item(name, resources[name].get("Type", ""), action)


def _resource_list(ids: list[str]) -> str:
    return ", ".join(ids)


# -- create -----------------------------------------------------------------------------


def start_create(
    backend: CloudFormationBackend,
    stack: Stack,
    token: str | None,
    on_failure: str = "ROLLBACK",
    change_set: Any = None,
    forced_failure: tuple[str, str] | None = None,
) -> Operation:
    op = Operation(backend, stack, "CREATE", token, change_set, on_failure)
    fail, hang, rollback_fault, fails = _plan_faults(
        stack.name, "create", rollback_possible=on_failure != "DO_NOTHING"
    )
    duration = hang.seconds if hang and hang.seconds is not None else op.seconds
    items = existing_items(stack, "CREATE")
    fail_item: Item | None = None
    reason: str | None = None
    if forced_failure:
        logical_id, reason = forced_failure
        resources = stack.template_dict.get("Resources") or {}
        fail_item = next((i for i in items if i.logical_id == logical_id), None)
        if fail_item is None:
            fail_item = Item(logical_id, (resources.get(logical_id) or {}).get("Type", ""), "CREATE")
            items = [i for i in items] + [fail_item]
    elif fails:
        wanted = fail.resource if fail else None
        fail_item = _pick(items, wanted)
        reason = (fail.reason if fail else None) or DEFAULT_REASON
        if fail_item is None:
            fail_item = _template_item(stack, wanted, "CREATE")
            if fail_item is not None:
                items = items + [fail_item]

    now = time.time()
    stack._sw_outputs = None
    _record_token(stack, "CREATE", token)
    op.status(now, "CREATE_IN_PROGRESS", "User Initiated")
    op.execution("EXECUTE_IN_PROGRESS")

    def complete(ts: float) -> None:
        stack._sw_outputs = _LIVE
        op.status(ts, "CREATE_COMPLETE")
        op.execution("EXECUTE_COMPLETE")
        op.finish()

    def failed(ts: float, item: Item) -> None:
        _create_failed(op, ts, item, rollback_fault)

    op.schedule(_phase(op, now, duration, items, complete, fail_item, reason, failed))
    return op


def _create_failed(op: Operation, ts: float, item: Item, rollback_fault: Fault | None) -> None:
    stack = op.stack
    op.execution("EXECUTE_FAILED")
    failed_list = f"The following resource(s) failed to create: [{item.logical_id}]. "
    if op.on_failure == "DO_NOTHING":
        op.status(ts, "CREATE_FAILED", failed_list)
        op.finish()
        return
    deleting = op.on_failure == "DELETE"
    prefix = "DELETE" if deleting else "ROLLBACK"
    op.status(
        ts,
        f"{prefix}_IN_PROGRESS",
        failed_list + ("Delete requested by user." if deleting else "Rollback requested by user."),
    )
    undo = [Item(i.logical_id, i.resource_type, "DELETE", i.physical_id) for i in reversed(op.done + [item])]
    fail_undo = None
    if rollback_fault is not None:  # the named resource, else the one that failed
        fail_undo = next((i for i in undo if i.logical_id == rollback_fault.resource), undo[0])

    def rolled_back(ts: float) -> None:
        if deleting:
            finish_delete(op.backend, stack, ts)
            op.status(ts, "DELETE_COMPLETE")
        else:
            strip_resources(op.backend, stack)
            stack._sw_outputs = None
            op.status(ts, "ROLLBACK_COMPLETE")
        op.finish()

    def rollback_failed(ts: float, undo_item: Item) -> None:
        op.status(ts, f"{prefix}_FAILED", f"The following resource(s) failed to delete: [{undo_item.logical_id}]. ")
        op.finish()

    reason = (rollback_fault.reason if rollback_fault else None) or DEFAULT_ROLLBACK_REASON
    op.done, op.current = [], None
    op.schedule(_phase(op, ts, op.seconds, undo, rolled_back, fail_undo, reason, rollback_failed, track=False))


# -- update -----------------------------------------------------------------------------


def start_update(
    backend: CloudFormationBackend,
    stack: Stack,
    token: str | None,
    snapshot: Snapshot,
    disable_rollback: bool = False,
    change_set: Any = None,
    forced_failure: tuple[str, str] | None = None,
) -> Operation:
    op = Operation(
        backend, stack, "UPDATE", token, change_set, "DO_NOTHING" if disable_rollback else "ROLLBACK", snapshot
    )
    main, removed = diff_items(snapshot.template_dict, snapshot.parameters, stack.template_dict, stack.parameters or {})
    fail, hang, rollback_fault, fails = _plan_faults(stack.name, "update", rollback_possible=not disable_rollback)
    duration = hang.seconds if hang and hang.seconds is not None else op.seconds
    fail_item: Item | None = None
    reason: str | None = None
    wanted: str | None = None
    if forced_failure:
        wanted, reason = forced_failure
        fails = True
    elif fails:
        wanted = fail.resource if fail else None
        reason = (fail.reason if fail else None) or DEFAULT_REASON
    if fails:
        fail_item = next((i for i in main if i.logical_id == wanted), None) if wanted else None
        if fail_item is None and wanted is None and main:
            fail_item = main[-1]
        if fail_item is None:
            fail_item = _template_item(stack, wanted, "UPDATE")
            if fail_item is not None:
                main = main + [fail_item]
    for item in main:
        item.physical_id = _physical_id(stack.resource_map._parsed_resources.get(item.logical_id))
    op.cleanup = removed

    now = time.time()
    stack._sw_outputs = snapshot.outputs
    stack.last_updated_time = _timestamp(now)
    _record_token(stack, "UPDATE", token)
    op.status(now, "UPDATE_IN_PROGRESS", "User Initiated")
    op.execution("EXECUTE_IN_PROGRESS")

    def main_done(ts: float) -> None:
        op.status(ts, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
        op.current = None

        def complete(ts: float) -> None:
            stack._sw_outputs = _LIVE
            op.status(ts, "UPDATE_COMPLETE")
            op.execution("EXECUTE_COMPLETE")
            op.finish()

        op.schedule(_phase(op, ts, duration * 0.2, removed, complete, track=False))

    def failed(ts: float, item: Item) -> None:
        verb = "create" if item.action == "CREATE" else "update"
        failed_list = f"The following resource(s) failed to {verb}: [{item.logical_id}]. "
        op.execution("EXECUTE_FAILED")
        if op.on_failure == "DO_NOTHING":
            stack._sw_outputs = _LIVE
            op.status(ts, "UPDATE_FAILED", failed_list)
            op.finish()
            return
        start_update_rollback(op, ts, op.done + [item], failed_list, rollback_fault)

    op.schedule(_phase(op, now, duration * 0.8, main, main_done, fail_item, reason, failed))
    return op


def start_update_rollback(
    op: Operation, ts: float, revert: list[Item], reason: str, rollback_fault: Fault | None
) -> None:
    """UPDATE_ROLLBACK_IN_PROGRESS -> (cleanup) -> UPDATE_ROLLBACK_COMPLETE, or -> UPDATE_ROLLBACK_FAILED."""
    stack = op.stack
    assert op.snapshot is not None
    snapshot = op.snapshot
    op.kind = "ROLLBACK"
    op.status(ts, "UPDATE_ROLLBACK_IN_PROGRESS", reason)
    stack._sw_outputs = snapshot.outputs
    reverts = [Item(i.logical_id, i.resource_type, "UPDATE", i.physical_id) for i in reversed(revert) if i.action == "UPDATE"]
    deletes = [Item(i.logical_id, i.resource_type, "DELETE", i.physical_id) for i in reversed(revert) if i.action == "CREATE"]
    fail_item = None
    if rollback_fault is not None:
        candidates = reverts + deletes
        fail_item = next((i for i in candidates if i.logical_id == rollback_fault.resource), None)
        if fail_item is None:
            fail_item = candidates[0] if candidates else _template_item(stack, rollback_fault.resource, "UPDATE")
            if fail_item is not None and fail_item not in candidates:
                reverts.append(fail_item)
        if fail_item in deletes:
            deletes.remove(fail_item)
            reverts.append(fail_item)
    fail_reason = (rollback_fault.reason if rollback_fault else None) or DEFAULT_ROLLBACK_REASON
    op.done, op.current = [], None

    def rollback_failed(ts: float, item: Item) -> None:
        verb = "delete" if item.action == "DELETE" else "update"
        stack._sw_pending_rollback = (snapshot, revert)
        op.status(ts, "UPDATE_ROLLBACK_FAILED", f"The following resource(s) failed to {verb}: [{item.logical_id}]. ")
        op.finish()

    def reverted(ts: float) -> None:
        op.status(ts, "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")

        def complete(ts: float) -> None:
            try:
                apply_update(op.backend, stack, snapshot.template, snapshot.parameters, snapshot.tags, replace_tags=True)
            except Exception:
                log.exception("reverting %s to its previous template", stack.name)
            stack._sw_outputs = _LIVE
            stack._sw_pending_rollback = None
            op.status(ts, "UPDATE_ROLLBACK_COMPLETE")
            op.finish()

        op.schedule(_phase(op, ts, op.seconds * 0.2, deletes, complete, track=False))

    op.schedule(_phase(op, ts, op.seconds * 0.8, reverts, reverted, fail_item, fail_reason, rollback_failed, track=False))


def cancel_update(backend: CloudFormationBackend, stack: Stack, token: str | None) -> None:
    op: Operation | None = getattr(stack, "_sw_op", None)
    if stack.status != "UPDATE_IN_PROGRESS" or op is None or op.kind != "UPDATE":
        raise ValidationError(message="CancelUpdateStack cannot be called from current stack status")
    SCHEDULER.cancel(op.key)
    now = time.time()
    if token:
        op.token = token
    revert = list(op.done)
    if op.current is not None:
        op.resource(now, op.current, f"{op.current.action}_FAILED", "Resource update cancelled")
        revert.append(op.current)
        op.current = None
    op.execution("EXECUTE_FAILED")
    rollback_fault = FAULTS.take("fail", stack.name, "rollback")
    start_update_rollback(op, now, revert, "Stack update cancelled", rollback_fault)


def continue_rollback(backend: CloudFormationBackend, stack: Stack, token: str | None) -> None:
    pending = getattr(stack, "_sw_pending_rollback", None)
    if stack.status != "UPDATE_ROLLBACK_FAILED" or pending is None:
        raise ValidationError(message="ContinueUpdateRollback cannot be called from current stack status")
    snapshot, revert = pending
    op = Operation(backend, stack, "ROLLBACK", token, None, "ROLLBACK", snapshot)
    rollback_fault = FAULTS.take("fail", stack.name, "rollback")
    start_update_rollback(op, time.time(), revert, "User Initiated", rollback_fault)


# -- delete -----------------------------------------------------------------------------


def start_delete(
    backend: CloudFormationBackend, stack: Stack, token: str | None, retain: set[str] | None = None
) -> Operation:
    op = Operation(backend, stack, "DELETE", token)
    fail, hang, _, fails = _plan_faults(stack.name, "delete", rollback_possible=False)
    duration = hang.seconds if hang and hang.seconds is not None else op.seconds
    items = list(reversed(existing_items(stack, "DELETE")))
    templates = stack.resource_map._resource_json_map or {}
    for item in items:
        policy = (templates.get(item.logical_id) or {}).get("DeletionPolicy")
        if policy == "Retain" or item.logical_id in (retain or set()):
            item.action = "SKIP"
    deletable = [i for i in items if i.action != "SKIP"]
    fail_item = None
    reason = None
    if fails:
        reason = (fail.reason if fail else None) or DEFAULT_REASON
        fail_item = _pick(deletable, fail.resource if fail else None)

    now = time.time()
    _record_token(stack, "DELETE", token)
    op.status(now, "DELETE_IN_PROGRESS", "User Initiated")

    def complete(ts: float) -> None:
        finish_delete(backend, stack, ts)
        op.status(ts, "DELETE_COMPLETE")
        op.finish()

    def failed(ts: float, item: Item) -> None:
        op.status(ts, "DELETE_FAILED", f"The following resource(s) failed to delete: [{item.logical_id}]. ")
        op.finish()

    if fails and fail_item is None:  # nothing to delete but told to fail: fail the stack itself

        def stack_failed(ts: float) -> None:
            op.status(ts, "DELETE_FAILED", reason)
            op.finish()

        op.schedule([(now + duration, stack_failed)])
        return op
    op.schedule(_phase(op, now, duration, items, complete, fail_item, reason, failed, track=False))
    return op


# --------------------------------------------------------------------------------------
# the response-layer patches
# --------------------------------------------------------------------------------------

_ORIGINAL: dict[str, Any] = {}


def _bool_param(response: CloudFormationResponse, name: str) -> bool | None:
    value = response._get_param(name)
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    return str(value).lower() == "true"


def _first_missing_resource(stack: Stack) -> str | None:
    resources = (stack.template_dict or {}).get("Resources") or {}
    parsed = stack.resource_map._parsed_resources
    for logical_id in dependency_order(resources):
        if logical_id not in parsed:
            return logical_id
    return next(iter(resources), None)


def create_stack(self: CloudFormationResponse) -> Any:
    backend = self.cloudformation_backend
    name = self._get_param("StackName")
    token = self._get_param("ClientRequestToken")
    existing = find_live_stack(backend, name)
    if existing is not None:
        if _seen_token(existing, "CREATE", token):
            return ActionResult({"StackId": existing.stack_id})
        raise AlreadyExistsException(f"Stack [{name}] already exists")
    on_failure = self._get_param("OnFailure")
    disable_rollback = _bool_param(self, "DisableRollback")
    if on_failure and disable_rollback is not None:
        raise ValidationError(message="You cannot specify both DisableRollback and OnFailure.")
    mode = on_failure or ("DO_NOTHING" if disable_rollback else "ROLLBACK")
    forced = None
    try:
        with suppressed_events():
            result = _ORIGINAL["create_stack"](self)
    except ServiceException:
        stack = find_live_stack(backend, name)
        if stack is not None:  # moto registered it before failing validation
            backend.stacks.pop(stack.stack_id, None)
        raise
    except Exception as err:  # a resource moto could not create: AWS fails the stack asynchronously
        stack = find_live_stack(backend, name)
        if stack is None:
            raise
        forced = (_first_missing_resource(stack) or name, f"Resource handler returned message: \"{err}\"")
        result = ActionResult({"StackId": stack.stack_id})
    stack = backend.stacks[result.result["StackId"]]  # type: ignore[index]
    stack.disable_rollback = mode == "DO_NOTHING"
    start_create(backend, stack, token, mode, forced_failure=forced)
    return result


def _unchanged(snapshot: Snapshot, stack: Stack) -> bool:
    return (
        snapshot.template_dict == stack.template_dict
        and effective_parameters(snapshot.template_dict, snapshot.parameters)
        == effective_parameters(stack.template_dict, stack.parameters or {})
        and snapshot.tags == dict(stack.tags or {})
    )


def update_stack(self: CloudFormationResponse) -> Any:
    backend = self.cloudformation_backend
    name = self._get_param("StackName")
    token = self._get_param("ClientRequestToken")
    stack = backend.get_stack(name)
    if _seen_token(stack, "UPDATE", token):
        return ActionResult({"StackId": stack.stack_id})
    ensure_updatable(stack)
    snapshot = take_snapshot(stack)
    previous_status, previous_role = stack.status, stack.role_arn
    disable_rollback = bool(_bool_param(self, "DisableRollback"))
    forced = None
    try:
        with suppressed_events():
            result = _ORIGINAL["update_stack"](self)
        stack.description = stack.template_dict.get("Description")
        refresh_exports(backend, stack)
    except ServiceException:
        raise
    except Exception as err:
        forced = (None, f"Resource handler returned message: \"{err}\"")
        result = ActionResult({"StackId": stack.stack_id})
    if forced is None and _unchanged(snapshot, stack):
        # AWS refuses an update without changes; moto only did when parameters were listed
        stack.status, stack.role_arn = previous_status, previous_role
        raise ValidationError(stack.name, message="No updates are to be performed.")
    for cs in backend.change_sets.values():
        if cs.stack_id == stack.stack_id and cs.execution_status == "AVAILABLE":
            cs.execution_status = "OBSOLETE"
    start_update(backend, stack, token, snapshot, disable_rollback, forced_failure=forced)  # type: ignore[arg-type]
    return result


def execute_change_set(self: CloudFormationResponse) -> Any:
    from .change_sets import find_change_set

    backend = self.cloudformation_backend
    change_set = find_change_set(backend, self._get_param("ChangeSetName"), self._get_param("StackName"))
    token = self._get_param("ClientRequestToken")
    if token and getattr(change_set, "_sw_exec_token", None) == token:
        return EmptyResult()
    if change_set.status != "CREATE_COMPLETE":
        raise InvalidChangeSetStatus(
            f"ChangeSet [{change_set.change_set_id}] cannot be executed in its current status of [{change_set.status}]"
        )
    if change_set.execution_status != "AVAILABLE":
        raise InvalidChangeSetStatus(
            f"ChangeSet [{change_set.change_set_id}] cannot be executed in its current execution status of [{change_set.execution_status}]"
        )
    stack = backend.stacks.get(change_set.stack_id)
    if stack is None:
        raise ValidationError(change_set.stack_name)
    if change_set.change_set_type == "UPDATE":
        ensure_updatable(stack)
    elif stack.status != "REVIEW_IN_PROGRESS":
        raise InvalidChangeSetStatus(
            f"ChangeSet [{change_set.change_set_id}] cannot be executed in its current execution status of [OBSOLETE]"
        )
    disable_rollback = _bool_param(self, "DisableRollback")
    on_stack_failure = getattr(change_set, "_sw_on_stack_failure", None)
    if on_stack_failure and disable_rollback is not None:
        raise ValidationError(
            message="You cannot specify both DisableRollback and OnStackFailure on a change set."
        )
    mode = on_stack_failure or ("DO_NOTHING" if disable_rollback else "ROLLBACK")
    change_set._sw_exec_token = token
    # AWS: executing a change set deletes the stack's other change sets
    for cs_id in [i for i, cs in backend.change_sets.items() if cs.stack_id == stack.stack_id and cs is not change_set]:
        del backend.change_sets[cs_id]

    if change_set.change_set_type == "CREATE":
        forced = None
        try:
            materialize_create(backend, stack, change_set)
        except ServiceException:
            stack.status = "REVIEW_IN_PROGRESS"
            change_set._sw_exec_token = None
            raise
        except Exception as err:
            forced = (_first_missing_resource(stack) or stack.name, f"Resource handler returned message: \"{err}\"")
        stack.disable_rollback = mode == "DO_NOTHING"
        start_create(backend, stack, token, mode, change_set, forced_failure=forced)
    else:
        snapshot = take_snapshot(stack)
        forced = None
        try:
            apply_update(backend, stack, change_set.template, change_set.parameters or {}, change_set.tags)
        except ServiceException:
            change_set._sw_exec_token = None
            raise
        except Exception as err:
            forced = (None, f"Resource handler returned message: \"{err}\"")
        start_update(
            backend, stack, token, snapshot, mode == "DO_NOTHING", change_set, forced_failure=forced  # type: ignore[arg-type]
        )
    return EmptyResult()


def delete_stack(self: CloudFormationResponse) -> Any:
    backend = self.cloudformation_backend
    name = self._get_param("StackName")
    token = self._get_param("ClientRequestToken")
    retain = set(self._get_param("RetainResources", []) or [])
    stack = find_live_stack(backend, name)
    if stack is None:
        return EmptyResult()  # AWS: deleting a stack that does not exist (any more) succeeds
    if stack.status == "DELETE_IN_PROGRESS" or _seen_token(stack, "DELETE", token):
        return EmptyResult()
    if stack.status.endswith("_IN_PROGRESS") and stack.status not in ("CREATE_IN_PROGRESS", "REVIEW_IN_PROGRESS"):
        raise ValidationError(message=f"Stack [{stack.name}] cannot be deleted while in status {stack.status}")
    if stack.status == "CREATE_IN_PROGRESS":  # AWS cancels the create and deletes what exists
        op = getattr(stack, "_sw_op", None)
        if op is not None:
            SCHEDULER.cancel(op.key)
            op.execution("EXECUTE_FAILED")
            op.finish()
    start_delete(backend, stack, token, retain)
    return EmptyResult()


def cancel_update_stack(self: CloudFormationResponse) -> Any:
    backend = self.cloudformation_backend
    stack = backend.get_stack(self._get_param("StackName"))
    cancel_update(backend, stack, self._get_param("ClientRequestToken"))
    return EmptyResult()


def continue_update_rollback(self: CloudFormationResponse) -> Any:
    backend = self.cloudformation_backend
    stack = backend.get_stack(self._get_param("StackName"))
    token = self._get_param("ClientRequestToken")
    if _seen_token(stack, "CONTINUE", token):
        return EmptyResult()
    continue_rollback(backend, stack, token)
    _record_token(stack, "CONTINUE", token)
    return EmptyResult()



def _outputs(self: Stack) -> Any:
    override = getattr(self, "_sw_outputs", _LIVE)
    if override is not _LIVE:
        return copy.deepcopy(override)
    return _ORIGINAL["outputs"].fget(self)


def _add_stack_event(self: Stack, *args: Any, **kwargs: Any) -> None:
    if getattr(_SUPPRESS, "depth", 0):
        return
    _ORIGINAL["_add_stack_event"](self, *args, **kwargs)


def _call_action(self: CloudFormationResponse) -> Any:
    with LOCK:
        SCHEDULER.run_due()
        return _ORIGINAL["call_action"](self)


def install() -> None:
    if _ORIGINAL:
        return
    for name in ("create_stack", "update_stack", "execute_change_set", "delete_stack", "call_action"):
        _ORIGINAL[name] = getattr(CloudFormationResponse, name)
    _ORIGINAL["outputs"] = Stack.__dict__["outputs"]
    _ORIGINAL["_add_stack_event"] = Stack._add_stack_event
    CloudFormationResponse.create_stack = create_stack  # type: ignore[method-assign]
    CloudFormationResponse.update_stack = update_stack  # type: ignore[method-assign]
    CloudFormationResponse.execute_change_set = execute_change_set  # type: ignore[method-assign]
    CloudFormationResponse.delete_stack = delete_stack  # type: ignore[method-assign]
    CloudFormationResponse.cancel_update_stack = cancel_update_stack  # type: ignore[attr-defined]
    CloudFormationResponse.continue_update_rollback = continue_update_rollback  # type: ignore[attr-defined]
    CloudFormationResponse.call_action = _call_action  # type: ignore[method-assign]
    Stack.outputs = property(_outputs)  # type: ignore[assignment,method-assign]
    Stack._add_stack_event = _add_stack_event  # type: ignore[method-assign]
