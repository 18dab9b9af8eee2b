"""The emulator's control API, served on the emulator's own port under ``/_stackwave/``.

    GET    /_stackwave/health           -> 200 {"ok": true}
    GET    /_stackwave/config           -> {"defaultStackSeconds", "stackSeconds", "changeSetSeconds"}
    POST   /_stackwave/config           merge {"defaultStackSeconds": 1.0, "stackSeconds": {"Name": 15},
                                        "changeSetSeconds": 0}; a null per-stack value removes it
    POST   /_stackwave/reset            config back to the environment's defaults, all faults cleared
                                        (moto's own state is reset with POST /moto-api/reset)
    POST   /_stackwave/faults           add a fault (see faults.py) -> 201 the fault with its "id"
    GET    /_stackwave/faults           -> {"faults": [...]}
    DELETE /_stackwave/faults           clear all -> {"cleared": n}
    DELETE /_stackwave/faults/<id>      remove one -> {"removed": true} or 404
    POST   /_stackwave/faults/lambda/take {"function": name, "environment": env, "stack": S} -> {"error": E or null}: the gateway,
                                        before each invocation (a lambda fault applies once per take)

Errors answer 400 (bad input), 404 (unknown path or fault) or 405 with {"error": "..."}.
Every other request goes to moto. POST /moto-api/reset also drops scheduled operations.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable

from .faults import FAULTS
from .runtime import CONFIG, LOCK, SCHEDULER

PREFIX = "/_stackwave/"

StartResponse = Callable[..., Any]


def _reply(start_response: StartResponse, status: int, body: Any) -> Iterable[bytes]:
    reasons = {200: "OK", 201: "Created", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
    data = json.dumps(body).encode()
    start_response(
        f"{status} {reasons.get(status, 'OK')}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
    )
    return [data]


def _read_json(environ: dict[str, Any]) -> Any:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    raw = environ["wsgi.input"].read(length) if length else b""
    if not raw.strip():
        return {}
    return json.loads(raw)


def handle(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    method = environ.get("REQUEST_METHOD", "GET").upper()
    path = environ.get("PATH_INFO", "")[len(PREFIX):].strip("/")
    try:
        body = _read_json(environ) if method in ("POST", "PUT") else None
    except ValueError as err:
        return _reply(start_response, 400, {"error": f"invalid JSON: {err}"})
    with LOCK:
        SCHEDULER.run_due()
        if path == "health":
            return _reply(start_response, 200, {"ok": True})
        if path == "config":
            if method == "GET":
                return _reply(start_response, 200, CONFIG.to_json())
            if method == "POST":
                if not isinstance(body, dict):
                    return _reply(start_response, 400, {"error": "config is a JSON object"})
                try:
                    CONFIG.update(body)
                except ValueError as err:
                    return _reply(start_response, 400, {"error": str(err)})
                return _reply(start_response, 200, CONFIG.to_json())
            return _reply(start_response, 405, {"error": "use GET or POST"})
        if path == "reset":
            if method != "POST":
                return _reply(start_response, 405, {"error": "use POST"})
            CONFIG.reset()
            cleared = FAULTS.clear()
            return _reply(start_response, 200, {"ok": True, "config": CONFIG.to_json(), "faultsCleared": cleared})
        if path == "faults":
            if method == "GET":
                return _reply(start_response, 200, {"faults": FAULTS.list()})
            if method == "POST":
                try:
                    fault = FAULTS.add(body)
                except ValueError as err:
                    return _reply(start_response, 400, {"error": str(err)})
                return _reply(start_response, 201, fault.to_json())
            if method == "DELETE":
                return _reply(start_response, 200, {"cleared": FAULTS.clear()})
            return _reply(start_response, 405, {"error": "use GET, POST or DELETE"})
        if path == "faults/lambda/take":
            if method != "POST":
                return _reply(start_response, 405, {"error": "use POST"})
            if not isinstance(body, dict) or not isinstance(body.get("function"), str):
                return _reply(start_response, 400, {"error": "give {\"function\": name}"})
            environment = body.get("environment") if isinstance(body.get("environment"), str) else None
            stack = body.get("stack") if isinstance(body.get("stack"), str) else None
            fault = FAULTS.take_lambda(body["function"], environment, stack)
            return _reply(start_response, 200, {"error": fault.error if fault else None, "id": fault.id if fault else None})
        if path.startswith("faults/"):
            if method != "DELETE":
                return _reply(start_response, 405, {"error": "use DELETE"})
            if FAULTS.remove(path[len("faults/"):]):
                return _reply(start_response, 200, {"removed": True})
            return _reply(start_response, 404, {"error": "no such fault"})
    return _reply(start_response, 404, {"error": f"unknown control path /_stackwave/{path}"})


class ControlApp:
    """WSGI middleware: the control API in front of moto's dispatcher."""

    def __init__(self, inner: Callable[..., Iterable[bytes]]) -> None:
        self.inner = inner

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(PREFIX) or path == PREFIX.rstrip("/"):
            return handle(environ, start_response)
        if path.rstrip("/") == "/moto-api/reset" and environ.get("REQUEST_METHOD", "").upper() == "POST":
            with LOCK:
                SCHEDULER.clear()
        return self.inner(environ, start_response)
