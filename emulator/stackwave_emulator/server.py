"""Entry point: moto's threaded server with the emulator's patches and control API.

    PYTHONPATH=emulator python -m stackwave_emulator --host 127.0.0.1 --port 4567

MOTO_PORT is the port moto's Step Functions executor sends Lambda invokes to
(``http://localhost:$MOTO_PORT/2015-03-31/functions/<arn>/invocations``). Set it to the port of
whatever serves Lambda invokes; left unset it defaults to this server's own port, as with
moto's own server.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import Any

from werkzeug.serving import run_simple

_applied = False


def apply_patches() -> None:
    global _applied
    if _applied:
        return
    from . import change_sets, cloudformation_async, eventbridge, faults, no_echo, ssm, stepfunctions, template_url

    template_url.install()
    cloudformation_async.install()  # the lock around every CloudFormation call
    change_sets.install()
    faults.install()  # throttling, outside the lock
    stepfunctions.install()
    eventbridge.install()
    ssm.install()
    no_echo.install()
    _applied = True


def enable_state_machine_executor() -> None:
    """Same as ``POST /moto-api/config {"stepfunctions": {"execute_state_machine": true}}``."""
    from moto.moto_api._internal.models import moto_api_backend

    moto_api_backend.set_config({"stepfunctions": {"execute_state_machine": True}})


def build_app() -> Any:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from .control import ControlApp

    apply_patches()
    enable_state_machine_executor()
    dispatcher = DomainDispatcherApplication(create_backend_app)
    dispatcher.debug = True  # type: ignore[attr-defined]
    return ControlApp(dispatcher)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stackwave_emulator", description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("-p", "--port", type=int, default=4567, help="port to bind (default 4567)")
    args = parser.parse_args(argv)

    os.environ.setdefault("MOTO_PORT", str(args.port))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    from moto.moto_server.werkzeug_app import MotoRequestHandler

    from .runtime import CONFIG, start_ticker

    app = build_app()
    start_ticker()

    def stop(signum: int, frame: Any) -> None:
        sys.exit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    logging.getLogger("stackwave_emulator").info(
        "emulator on http://%s:%d (Lambda invokes to port %s, stack operations %.2fs)",
        args.host,
        args.port,
        os.environ["MOTO_PORT"],
        CONFIG.default_stack_seconds,
    )
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
