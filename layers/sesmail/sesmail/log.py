"""JSON-line logs with a request id; addresses masked, secrets and bodies never written.

SCF ships a function's stdout to CLS line by line, so one JSON object per line is searchable there.
The stdlib `logging` machinery is skipped on purpose: it costs import time and this needs none of it.
"""

from __future__ import annotations

import json
import sys
import threading
import time

__all__ = ["bind", "context", "error", "info", "mask", "note", "summary", "warning"]

# Per thread: SCF runs one invocation per instance at a time, but the local gateway serves several
# at once in threads. A thread that never bound (a digest's sending pool) uses the last binding.
_local = threading.local()
_last: dict = {"context": {}, "notes": {}}
_encode = json.JSONEncoder(ensure_ascii=False, default=str).encode


def bind(**fields) -> None:
    """Start an invocation: `fields` (request id, function) go into every line until the next."""
    _local.context, _local.notes = dict(fields), {}
    _last["context"], _last["notes"] = _local.context, _local.notes


def context() -> dict:
    """The fields every line of this invocation carries."""
    return getattr(_local, "context", None) or _last["context"]


def note(**fields) -> None:
    """Add facts (MessageId, recipient count …) to the invocation's summary line: one line per
    request instead of one per step keeps the log cheap and greppable."""
    notes = getattr(_local, "notes", None)
    (notes if notes is not None else _last["notes"]).update(fields)


def summary(message: str, **fields) -> None:
    notes = getattr(_local, "notes", None)
    notes = notes if notes is not None else _last["notes"]
    notes.update(fields)
    _write("INFO", message, {k: v for k, v in notes.items() if v is not None})


def mask(address: str | None) -> str | None:
    """`alice@example.com` -> `a***@example.com`: enough to correlate, not enough to contact."""
    if not address or not isinstance(address, str):
        return address
    local, at, domain = address.rpartition("<")[2].rstrip(">").partition("@")
    if not at:
        return "***"
    return (local[:1] or "") + "***@" + domain


def _write(level: str, message: str, fields: dict) -> None:
    now = time.time()
    record = {"Time": now, "Level": level, "Message": message, **context(), **fields}
    # Set again: no field may overwrite the line's own keys (their place stays first).
    record["Time"], record["Level"], record["Message"] = now, level, message
    sys.stdout.write(_encode(record) + "\n")


def info(message: str, **fields) -> None:
    _write("INFO", message, fields)


def warning(message: str, **fields) -> None:
    _write("WARNING", message, fields)


def error(message: str, **fields) -> None:
    _write("ERROR", message, fields)
