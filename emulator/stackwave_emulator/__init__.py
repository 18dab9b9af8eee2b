"""A local AWS emulator: moto's server with patches for documented AWS behaviour moto lacks.

Run with ``PYTHONPATH=emulator python -m stackwave_emulator --host 127.0.0.1 --port 4567``.
See ``emulator/README.md`` for the behaviours restored and the control API.
"""

__all__ = ["apply_patches"]


def apply_patches() -> None:
    """Install every patch (idempotent). Imported lazily so importing the package stays cheap."""
    from .server import apply_patches as _apply

    _apply()
