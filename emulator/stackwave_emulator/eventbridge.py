"""EventBridge delivery to Step Functions, and S3's EventBridge events, as AWS documents them.

1. A rule whose target is a Step Functions state machine starts an execution of it, with the
   matched event as the execution input, or the target's ``Input`` (constant JSON),
   ``InputPath`` or ``InputTransformer`` result instead (EventBridge User Guide, "Event bus
   targets" and "Input transformation"). EventBridge names the execution itself. moto raised
   NotImplementedError ("Expr not defined") for such a target: PutEvents answered HTTP 500 and
   S3 events were dropped without a trace. Delivery is asynchronous, as in AWS: PutEvents and
   PutObject answer first, the execution starts just after (one delivery thread, in order). A
   failed StartExecution is logged (AWS retries it under the target's RetryPolicy).

2. The event a target receives is the EventBridge event: ``version``, ``id``, ``detail-type``,
   ``source``, ``account``, ``time`` as ``YYYY-MM-DDThh:mm:ssZ``, ``region``, ``resources``,
   ``detail`` (User Guide, "Amazon EventBridge events"). moto's internal form has ``time`` as
   epoch seconds and an ``ingestion-time`` field.

3. Disabled rules deliver nothing (moto delivered matched events to their targets anyway).

5. A rule whose target is a Lambda function invokes it asynchronously with the event (or the
   target's ``Input``/``InputPath``/``InputTransformer`` result), as EventBridge does (User
   Guide, "Event bus targets": Lambda is invoked with InvocationType Event). moto only
   delivered to SQS, Logs and other buses. The invoke goes where moto sends every Lambda invoke,
   ``http://localhost:$MOTO_PORT/2015-03-31/functions/<arn>/invocations``; invokes run on a small
   pool, so a slow function does not hold up other deliveries. A failed invoke is logged (AWS
   retries it under the target's RetryPolicy).

6. Any AWS service's event (``send_to_default_bus``) goes to the rules of the account's default
   bus, as S3's do: the emulator's other patches use it for the events AWS services emit.
   ``send_later`` delivers one asynchronously, as AWS services emit their events: on one
   delivery thread, in the order they were produced, each only once the CloudFormation lock
   has been released by the call or scheduled step that produced it (so after that call's
   answer is ready, and never while the lock is held). EventBridge delivers service events at
   least once and not necessarily in order (User Guide, "Amazon EventBridge events"); the
   ``events`` fault (``faults.py``) drops, duplicates (same ``id``) or delays them, to test
   consumers against that.

4. S3 sends events to the account's default event bus when the bucket's EventBridge
   notifications are on, in the form of the S3 User Guide, "EventBridge event message
   structure": a new UUID ``id`` per event (moto: the same fixed id for every event);
   ``detail.object.etag`` (moto: ``eTag``); ``detail.object.version-id`` only for an object
   that has a version, i.e. in a versioned bucket (moto: ``"null"`` for unversioned buckets);
   an increasing ``sequencer``; a fresh ``request-id``; ``reason`` naming the API
   (``PutObject``, ``POST Object``, ``CopyObject``, ``CompleteMultipartUpload``,
   ``DeleteObject``; moto: ``ObjectCreated``); ``deletion-type`` on deletions. moto also sent
   them to the rules of every event bus, not only the default one.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import json
import logging
import queue
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable

log = logging.getLogger("stackwave_emulator.eventbridge")

_ORIGINAL: dict[str, Any] = {}

# reason and deletion-type of S3's EventBridge events, by moto's S3 notification event name.
_S3_REASONS: dict[str, tuple[str, str | None]] = {
    "s3:ObjectCreated:Put": ("PutObject", None),
    "s3:ObjectCreated:Post": ("POST Object", None),
    "s3:ObjectCreated:Copy": ("CopyObject", None),
    "s3:ObjectCreated:CompleteMultipartUpload": ("CompleteMultipartUpload", None),
    "s3:ObjectRemoved:Delete": ("DeleteObject", "Permanently Deleted"),
    "s3:ObjectRemoved:DeleteMarkerCreated": ("DeleteObject", "Delete Marker Created"),
    "s3:LifecycleExpiration:Delete": ("Lifecycle Expiration", "Permanently Deleted"),
    "s3:LifecycleExpiration:DeleteMarkerCreated": ("Lifecycle Expiration", "Delete Marker Created"),
}

_sequence = itertools.count(1)
_sequence_lock = threading.Lock()


def _sequencer() -> str:
    """Hexadecimal, increasing: later events of a key compare greater, as S3's sequencer does."""
    with _sequence_lock:
        n = next(_sequence)
    return f"{time.time_ns() // 1_000_000:012X}{n:06X}"


def _iso_time(value: Any) -> str:
    if isinstance(value, (int, float)):
        moment = datetime.fromtimestamp(float(value), tz=timezone.utc)
    elif isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    elif isinstance(value, str) and value:
        return value
    else:
        moment = datetime.now(tz=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def delivered_event(event: dict[str, Any]) -> dict[str, Any]:
    """The event as EventBridge hands it to a target (no internal fields, ISO time)."""
    out: dict[str, Any] = {}
    for name in ("version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"):
        if name in event:
            out[name] = event[name]
    out.setdefault("version", "0")
    out["time"] = _iso_time(event.get("time"))
    return out


def target_input(target: dict[str, Any], event: dict[str, Any], internal: dict[str, Any]) -> str:
    """The execution input for one target: Input, InputPath, InputTransformer, else the event."""
    if target.get("Input") is not None:
        return str(target["Input"])
    if target.get("InputPath"):
        from jsonpath_ng.ext import parse

        matches = parse(target["InputPath"]).find(event)  # type: ignore[no-untyped-call]
        return json.dumps(matches[0].value if matches else None)
    transformer = target.get("InputTransformer")
    if transformer:
        from moto.events.utils import EventTemplateParser

        source = dict(event)
        source["ingestion-time"] = internal.get("ingestion-time", time.time())
        return json.dumps(
            EventTemplateParser.parse(
                input_template=transformer.get("InputTemplate"),
                input_paths_map=transformer.get("InputPathsMap", {}),
                event=source,  # type: ignore[arg-type]
            )
        )
    return json.dumps(event)


def is_state_machine(arn: str) -> bool:
    parts = arn.split(":", 6)
    return len(parts) >= 7 and parts[2] == "states" and parts[5] == "stateMachine"


def is_lambda(arn: str) -> bool:
    parts = arn.split(":", 6)
    return len(parts) >= 7 and parts[2] == "lambda" and parts[5] == "function"


def _delivered_here(arn: str) -> bool:
    return is_state_machine(arn) or is_lambda(arn)


# -- asynchronous delivery ---------------------------------------------------------------------

_deliveries: queue.Queue[Callable[[], None]] = queue.Queue()
_worker: threading.Thread | None = None
_worker_lock = threading.Lock()


def _run_deliveries() -> None:
    while True:
        job = _deliveries.get()
        try:
            job()
        except Exception:  # noqa: BLE001 - a failed delivery must not stop the others
            log.exception("EventBridge delivery failed")
        finally:
            _deliveries.task_done()


def _submit(job: Callable[[], None]) -> None:
    global _worker
    with _worker_lock:
        if _worker is None or not _worker.is_alive():
            _worker = threading.Thread(target=_run_deliveries, name="eventbridge-delivery", daemon=True)
            _worker.start()
    _deliveries.put(job)


def wait_for_deliveries() -> None:
    """Block until every queued delivery ran (for in-process callers and tests)."""
    _deliveries.join()


def _start_execution(rule: str, arn: str, execution_input: str, event_id: str) -> None:
    from moto.stepfunctions.responses import get_backend

    parts = arn.split(":")
    region, account = parts[3], parts[4]
    try:
        execution = get_backend(account, region).start_execution(arn, None, execution_input)
    except Exception as err:  # noqa: BLE001 - AWS retries under the target's RetryPolicy; we log
        log.warning("rule %s: StartExecution on %s failed for event %s: %s", rule, arn, event_id, err)
        return
    log.info("rule %s: event %s started %s", rule, event_id, getattr(execution, "execution_arn", "?"))


_invokes: Any = None
_invokes_lock = threading.Lock()


def _invoke_pool() -> Any:
    global _invokes
    from concurrent.futures import ThreadPoolExecutor

    with _invokes_lock:
        if _invokes is None:
            _invokes = ThreadPoolExecutor(max_workers=8, thread_name_prefix="eventbridge-lambda")
    return _invokes


def _invoke_lambda(rule: str, arn: str, payload: str, event_id: str) -> None:
    import os
    import urllib.error
    import urllib.request
    from urllib.parse import quote

    url = f"http://localhost:{os.environ.get('MOTO_PORT', '5000')}/2015-03-31/functions/{quote(arn, safe='')}/invocations"
    request = urllib.request.Request(
        url, data=payload.encode(), method="POST", headers={"X-Amz-Invocation-Type": "Event", "Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=900) as response:
            failed = response.headers.get("X-Amz-Function-Error")
            body = response.read()[:500]
    except urllib.error.HTTPError as err:
        log.warning("rule %s: %s answered %s for event %s: %s", rule, arn, err.code, event_id, err.read()[:500])
        return
    except Exception as err:  # noqa: BLE001 - AWS retries under the target's RetryPolicy; we log
        log.warning("rule %s: invoke of %s failed for event %s: %s", rule, arn, event_id, err)
        return
    if failed:
        log.warning("rule %s: %s failed (%s) for event %s: %s", rule, arn, failed, event_id, body)
    else:
        log.info("rule %s: event %s delivered to %s", rule, event_id, arn)


# -- patches -----------------------------------------------------------------------------------


def send_to_targets(self: Any, original_event: dict[str, Any], transform_input: bool = True) -> None:
    if getattr(self, "state", "ENABLED") != "ENABLED":
        return
    ours = [t for t in self.targets if _delivered_here(str(t.get("Arn", "")))]
    if not ours:
        _ORIGINAL["send_to_targets"](self, original_event, transform_input)
        return
    if not self.event_pattern.matches_event(original_event):
        return
    others = [t for t in self.targets if not _delivered_here(str(t.get("Arn", "")))]
    if others:
        rest = copy.copy(self)
        rest.targets = others
        _ORIGINAL["send_to_targets"](rest, original_event, transform_input)
    event = delivered_event(original_event)
    event_id = str(event.get("id"))
    for target in ours:
        payload = target_input(target, event, original_event)
        arn = str(target["Arn"])
        if is_lambda(arn):
            _submit(lambda arn=arn, payload=payload: _invoke_pool().submit(_invoke_lambda, self.name, arn, payload, event_id))
        else:
            _submit(lambda arn=arn, payload=payload: _start_execution(self.name, arn, payload, event_id))


def s3_event(account_id: str, bucket: Any, event_name: str, key: Any) -> dict[str, Any]:
    """S3's EventBridge event for one object, in moto's internal form (epoch ``time``)."""
    from moto.s3.notifications import _detail_type

    reason, deletion_type = _S3_REASONS.get(event_name, (event_name.split(":")[1], None))
    obj: dict[str, Any] = {"key": key.name}
    if deletion_type is None:
        obj["size"] = key.size
        obj["etag"] = key.etag.replace('"', "")
    version = getattr(key, "_version_id", None)
    if version and version != "null":
        obj["version-id"] = version
    obj["sequencer"] = _sequencer()
    detail: dict[str, Any] = {
        "version": "0",
        "bucket": {"name": bucket.name},
        "object": obj,
        "request-id": uuid.uuid4().hex[:16].upper(),
        "requester": account_id,
        "source-ip-address": "127.0.0.1",
        "reason": reason,
    }
    if deletion_type is not None:
        detail["deletion-type"] = deletion_type
    now = time.time()
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": _detail_type(event_name),
        "source": "aws.s3",
        "account": account_id,
        "time": now,
        "region": bucket.region_name,
        "resources": [bucket.arn],
        "detail": detail,
    }


def _to_default_bus(account_id: str, region: str, event: dict[str, Any]) -> None:
    from moto.events.models import events_backends

    bus = events_backends[account_id][region].event_buses.get("default")
    if bus is None:
        return
    for rule in list(bus.rules.values()):
        rule.send_to_targets(copy.deepcopy(event), transform_input=False)


def send_to_default_bus(account_id: str, region: str, event: dict[str, Any]) -> None:
    """An AWS service's event (moto's internal form) to the rules of the default bus.

    An ``events`` fault for the event's source may drop it, deliver it twice or deliver it
    (each copy) after a delay.
    """
    from .faults import FAULTS

    for delay in FAULTS.event_deliveries(event):
        if delay > 0:
            _delay(delay, lambda: _to_default_bus(account_id, region, event))
        else:
            _to_default_bus(account_id, region, event)


# -- service events produced under the CloudFormation lock ----------------------------------------

_service_events: queue.Queue[tuple[str, str, dict[str, Any]]] = queue.Queue()
_service_worker: threading.Thread | None = None


def _run_service_events() -> None:
    from .runtime import LOCK

    while True:
        account_id, region, event = _service_events.get()
        try:
            with LOCK:  # wait until the call or step that produced the event has let go of it
                pass
            send_to_default_bus(account_id, region, event)
        except Exception:  # noqa: BLE001 - asynchronous in AWS: one lost event must not stop the rest
            log.exception("%s event not sent to EventBridge", event.get("source"))
        finally:
            _service_events.task_done()


def send_later(account_id: str, region: str, event: dict[str, Any]) -> None:
    """Queues an AWS service's event for the default bus; safe to call while holding the lock."""
    global _service_worker
    with _worker_lock:
        if _service_worker is None or not _service_worker.is_alive():
            _service_worker = threading.Thread(target=_run_service_events, name="service-events", daemon=True)
            _service_worker.start()
    _service_events.put((account_id, region, copy.deepcopy(event)))


# -- delayed deliveries (the events fault) --------------------------------------------------------

_delayed: list[tuple[float, int, Callable[[], None]]] = []
_delayed_ready = threading.Condition()
_delayed_order = itertools.count()
_delayed_worker: threading.Thread | None = None


def _run_delayed() -> None:
    while True:
        with _delayed_ready:
            while not _delayed or _delayed[0][0] > time.time():
                _delayed_ready.wait(timeout=(_delayed[0][0] - time.time()) if _delayed else None)
            _, _, job = heapq.heappop(_delayed)
        try:
            job()
        except Exception:  # noqa: BLE001
            log.exception("delayed EventBridge delivery failed")


def _delay(seconds: float, job: Callable[[], None]) -> None:
    global _delayed_worker
    with _worker_lock:
        if _delayed_worker is None or not _delayed_worker.is_alive():
            _delayed_worker = threading.Thread(target=_run_delayed, name="eventbridge-delayed", daemon=True)
            _delayed_worker.start()
    with _delayed_ready:
        heapq.heappush(_delayed, (time.time() + seconds, next(_delayed_order), job))
        _delayed_ready.notify()


def send_s3_event(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
    """Replaces moto.s3.notifications._send_event_bridge_message."""
    try:
        send_to_default_bus(account_id, bucket.region_name, s3_event(account_id, bucket, event_name, key))
    except Exception:  # noqa: BLE001 - asynchronous in AWS: the S3 call succeeds regardless
        log.exception("S3 event for s3://%s/%s not sent to EventBridge", bucket.name, key.name)


def install() -> None:
    if _ORIGINAL:
        return
    import moto.s3.notifications as notifications
    from moto.events.models import Rule

    _ORIGINAL["send_to_targets"] = Rule.send_to_targets
    _ORIGINAL["_send_event_bridge_message"] = notifications._send_event_bridge_message
    Rule.send_to_targets = send_to_targets  # type: ignore[method-assign]
    notifications._send_event_bridge_message = send_s3_event  # type: ignore[assignment]
