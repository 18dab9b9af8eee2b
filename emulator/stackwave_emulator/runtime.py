"""Shared runtime state: one lock, the emulator's configuration, and a timer queue.

Every CloudFormation request, every control request and every scheduled step runs under
``LOCK``, so moto's models are never touched by two threads at once and a read always sees
every step that was due before it (``SCHEDULER.run_due()`` is called first).
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

LOCK = threading.RLock()

Step = tuple[float, Callable[[float], None]]


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = float(raw)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {raw!r}")
    return value


class Config:
    """Durations of scripted operations. Reset restores the environment's defaults."""

    def __init__(self) -> None:
        self.default_stack_seconds = 1.0
        self.stack_seconds: dict[str, float] = {}
        self.change_set_seconds = 0.0
        self.reset()

    def reset(self) -> None:
        self.default_stack_seconds = _env_seconds("STACKWAVE_EMULATOR_STACK_SECONDS", 1.0)
        self.change_set_seconds = _env_seconds("STACKWAVE_EMULATOR_CHANGE_SET_SECONDS", 0.0)
        self.stack_seconds = {}

    def seconds_for(self, stack_name: str) -> float:
        return self.stack_seconds.get(stack_name, self.default_stack_seconds)

    def to_json(self) -> dict[str, Any]:
        return {
            "defaultStackSeconds": self.default_stack_seconds,
            "stackSeconds": dict(self.stack_seconds),
            "changeSetSeconds": self.change_set_seconds,
        }

    def update(self, body: dict[str, Any]) -> None:
        """Merge a JSON body; raises ValueError (nothing applied) on bad input."""

        def seconds(key: str, value: Any) -> float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{key} must be a number >= 0")
            return float(value)

        unknown = set(body) - {"defaultStackSeconds", "stackSeconds", "changeSetSeconds"}
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        default = self.default_stack_seconds
        change_set = self.change_set_seconds
        per_stack = dict(self.stack_seconds)
        if "defaultStackSeconds" in body:
            default = seconds("defaultStackSeconds", body["defaultStackSeconds"])
        if "changeSetSeconds" in body:
            change_set = seconds("changeSetSeconds", body["changeSetSeconds"])
        if "stackSeconds" in body:
            if not isinstance(body["stackSeconds"], dict):
                raise ValueError("stackSeconds must be an object of stack name to seconds")
            for name, value in body["stackSeconds"].items():
                if value is None:
                    per_stack.pop(name, None)
                else:
                    per_stack[name] = seconds(f"stackSeconds.{name}", value)
        self.default_stack_seconds = default
        self.change_set_seconds = change_set
        self.stack_seconds = per_stack


class Scheduler:
    """Timed steps grouped by key (a stack or a change set). Steps of one key run in order."""

    def __init__(self) -> None:
        self._queues: dict[Any, deque[Step]] = {}

    def set(self, key: Any, steps: list[Step]) -> None:
        self._queues[key] = deque(sorted(steps, key=lambda s: s[0]))

    def extend(self, key: Any, steps: list[Step]) -> None:
        queue = self._queues.setdefault(key, deque())
        queue.extend(steps)
        self._queues[key] = deque(sorted(queue, key=lambda s: s[0]))

    def cancel(self, key: Any) -> None:
        self._queues.pop(key, None)

    def pending(self, key: Any) -> bool:
        return bool(self._queues.get(key))

    def clear(self) -> None:
        self._queues.clear()

    def run_due(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        for key in list(self._queues):
            while True:
                queue = self._queues.get(key)
                if not queue:
                    self._queues.pop(key, None)
                    break
                due, fn = queue[0]
                if due > now:
                    break
                queue.popleft()
                try:
                    fn(due)
                except Exception:  # one broken step must not wedge every later request
                    import traceback

                    traceback.print_exc()


CONFIG = Config()
SCHEDULER = Scheduler()


def advance() -> None:
    with LOCK:
        SCHEDULER.run_due()


def start_ticker(interval: float = 0.05) -> threading.Thread:
    """Runs due steps in the background, so side effects (SNS stack notifications) happen on time."""

    def loop() -> None:
        while True:
            advance()
            time.sleep(interval)

    thread = threading.Thread(target=loop, name="emulator-ticker", daemon=True)
    thread.start()
    return thread
