"""JSON-line logs with a request id; addresses masked, secrets and bodies never written.

SCF ships a function's stdout to CLS line by line, so one JSON object per line is searchable there.
The stdlib `logging` machinery is skipped on purpose: it costs import time and this needs none of it.
"""

from __future__ import annotations

import json
import sys
import time

__all__ = ["bind", "error", "info", "mask", "warning"]

_context: dict = {}
_encode = json.JSONEncoder(ensure_ascii=False, default=str).encode


def bind(**fields) -> None:
    """Replace the per-invocation fields (request id, function, route) carried by every line."""
    _context.clear()
    _context.update({k: v for k, v in fields.items() if v is not None})


def mask(address: str | None) -> str | None:
    """`alice@example.com` -> `a***@example.com`: enough to correlate, not enough to contact."""
    if not address or not isinstance(address, str):
        return address
    local, at, domain = address.rpartition("<")[2].rstrip(">").partition("@")
    if not at:
        return "***"
    return (local[:1] or "") + "***@" + domain


def _write(level: str, message: str, fields: dict) -> None:
    record = {"Time": round(time.time(), 3), "Level": level, "Message": message}
    record.update(_context)
    record.update(fields)
    sys.stdout.write(_encode(record) + "\n")


def info(message: str, **fields) -> None:
    _write("INFO", message, fields)


def warning(message: str, **fields) -> None:
    _write("WARNING", message, fields)


def error(message: str, **fields) -> None:
    _write("ERROR", message, fields)
