"""SSM PutParameter without Overwrite is an atomic create, as in AWS.

AWS creates the parameter only if it is absent and answers ParameterAlreadyExists otherwise
(API reference, PutParameter ``Overwrite``): of concurrent callers creating one name, exactly
one succeeds. Callers use this to claim something once (stackwave claims each EventBridge event
this way). moto checked and then appended without a lock, so with the threaded server two
concurrent creates could both succeed. Every PutParameter now runs under one lock.
"""

from __future__ import annotations

import threading
from typing import Any

_ORIGINAL: dict[str, Any] = {}
_LOCK = threading.Lock()


def install() -> None:
    if _ORIGINAL:
        return
    from moto.ssm.models import SimpleSystemManagerBackend

    _ORIGINAL["put_parameter"] = SimpleSystemManagerBackend.put_parameter

    def put_parameter(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return _ORIGINAL["put_parameter"](self, *args, **kwargs)

    SimpleSystemManagerBackend.put_parameter = put_parameter  # type: ignore[method-assign]
