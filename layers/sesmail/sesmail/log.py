"""JSON-line logs with a request id; addresses masked, secrets and bodies never written.

SCF ships a function's stdout to CLS line by line, so one JSON object per line is searchable there.
The stdlib `logging` machinery is skipped on purpose: it costs import time and this needs none of it.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from json import encoder as json_encoder
from typing import Any, Callable

__all__ = ["bind", "context", "error", "info", "json_encoder_for", "mask", "note", "summary", "warning"]

# Per thread: SCF runs one invocation per instance at a time, but the local gateway serves several
# at once in threads. A thread that never bound (a digest's sending pool) uses the last binding.
_local = threading.local()
_last: dict = {"context": {}, "notes": {}}


def json_encoder_for(separators: tuple[str, str] = (", ", ": "), default: Callable[[Any], Any] | None = None,
                     allow_nan: bool = True, sort_keys: bool = False) -> Callable[[Any], str]:
    """`json.JSONEncoder(ensure_ascii=False, ...).encode`, same text, with the C encoder made once:
    `encode` makes a new one (and its Python set-up) on every call, a third of a short line's cost
    (docs/benchmarks.md). No circular-reference check: the layer encodes parsed JSON and dicts it
    builds, never a cycle (one would end in RecursionError instead of ValueError)."""
    options = json.JSONEncoder(ensure_ascii=False, separators=separators, default=default, allow_nan=allow_nan,
                               sort_keys=sort_keys)
    make = getattr(json_encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without the _json accelerator
        return options.encode
    run = make(None, options.default, json_encoder.encode_basestring, None, options.key_separator,
               options.item_separator, sort_keys, False, allow_nan)
    join = "".join
    return lambda value: join(run(value, 0))


_encode = json_encoder_for(default=str)


def bind(**fields) -> None:
    """Start an invocation: `fields` (request id, function) go into every line until the next."""
    notes: dict = {}
    _local.context, _local.notes = fields, notes  # `fields` is this call's own dict: nobody else holds it
    _last["context"], _last["notes"] = fields, notes


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
    if None in notes.values():  # most lines have no empty field: no copy for them
        notes = {k: v for k, v in notes.items() if v is not None}
    _write("INFO", message, notes)


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
