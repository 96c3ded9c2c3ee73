"""What the fuzz and fault-injection suites share: the invariants every answer must meet (docs/api.md,
docs/security.md), databases of their own on the local PostgreSQL server, and the figures they report.

An answer is checked as an HTTP client would see it: the integrated-response shape, a JSON body,
an error in Tencent Cloud's vocabulary with the status its family says, no value the caller sent
echoed in an error, and no SES call behind anything but a 200.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections import Counter
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

LONG = os.environ.get("SESMAIL_LONG_TESTS") == "1"
IN_CI = os.environ.get("CI") == "true"
POSTGRES_URL = os.environ.get("SESMAIL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

# The error code families each status may carry (docs/api.md).
ERROR_FAMILIES: dict[int, tuple[str, ...]] = {
    400: ("InvalidParameter", "InvalidParameterValue", "MissingParameter", "UnknownParameter", "FailedOperation"),
    401: ("AuthFailure.InvalidAuthorization",),
    403: ("AuthFailure.UnauthorizedOperation", "UnauthorizedOperation", "FailedOperation", "OperationDenied"),
    404: ("ResourceNotFound",),
    405: ("UnsupportedOperation",),
    409: ("ResourceInUse",),
    413: ("RequestSizeLimitExceeded",),
    429: ("RequestLimitExceeded", "LimitExceeded", "FailedOperation.FrequencyLimit",
          "FailedOperation.ExceedSendLimit"),
    502: ("InternalError", "ResourceUnavailable"),
    503: ("InternalError", "ResourceUnavailable", "ResourceInUse.OutcomeInDoubt", "FailedOperation.PartialBatch",
          "FailedOperation.ServiceNotAvailable"),
}
ERROR_KEYS = {"Code", "Message", "Field", "Outcome", "TaskIds"}
# SES actions that only read: GET /batch/tasks/<id> pages ListSendTasks and may then answer 404.
READ_ACTIONS = frozenset({"ListSendTasks", "GetSendEmailStatus", "ListReceivers"})


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def strict_json(text: str) -> Any:
    """JSON as a strict client parses it: no NaN or Infinity."""
    return json.loads(text, parse_constant=_no_constant)


def family_ok(status: int, code: str) -> bool:
    return any(code == family or code.startswith(family + ".") for family in ERROR_FAMILIES.get(status, ()))


def check_answer(result: Any, calls: list[dict], markers: tuple[str, ...] = (), faults: bool = False) -> dict:
    """Every invariant of an answer; returns the parsed body ({} for a 204)."""
    assert isinstance(result, dict), f"the handler returned {type(result).__name__}, not a response"
    assert result.get("isBase64Encoded") is False, result
    status = result.get("statusCode")
    assert type(status) is int, result
    if faults:
        assert status < 500 or status in (502, 503), result
    else:
        assert status < 500, f"a {status} without any injected fault: {result}"
    headers = result.get("headers")
    assert isinstance(headers, dict), result
    for name, value in headers.items():
        assert isinstance(name, str) and isinstance(value, str), headers
        assert not any(c in name + value for c in "\r\n\x00"), f"a response header carries CR/LF/NUL: {headers}"
    actions = [call["Action"] for call in calls]
    # With faults injected, a 429/502/503 may follow an SES call that failed (or whose reply was lost).
    if status != 200 and not (faults and status in (429, 502, 503)):
        assert set(actions) <= READ_ACTIONS, f"SES was called ({actions}) behind a {status}: {result}"
        if status != 404 and not faults:
            assert not actions, f"SES was called ({actions}) behind a {status}: {result}"
    if status == 204:
        assert result.get("body") in ("", None), result
        return {}
    assert headers.get("Content-Type") == "application/json", headers
    body = strict_json(result["body"])
    assert isinstance(body, dict), result
    assert isinstance(body.get("RequestId"), str) and body["RequestId"], result
    if status >= 400:
        assert set(body) == {"Error", "RequestId"}, f"not the error shape of docs/api.md: {body}"
        error = body["Error"]
        assert isinstance(error, dict) and set(error) <= ERROR_KEYS, body
        assert isinstance(error.get("Code"), str) and isinstance(error.get("Message"), str) and error["Message"], body
        assert "Field" not in error or isinstance(error["Field"], str), body
        assert family_ok(status, error["Code"]), f"{error['Code']} is not a code of the {status} family"
        text = json.dumps(error, ensure_ascii=False)
        for marker in markers:
            assert marker not in text, f"the error echoes a value the caller sent ({marker}): {body}"
    else:
        assert status == 200, result
    return body


class Figures:
    """Counts printed at the end of the run (docs/reliability.md#figures)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.notes: dict[str, Any] = {}

    def add(self, name: str, count: int = 1) -> None:
        self.counts[name] += count

    def lines(self) -> list[str]:
        out = [f"{name}: {count}" for name, count in sorted(self.counts.items())]
        out += [f"{name}: {value}" for name, value in sorted(self.notes.items())]
        return out


def figures_of(config: Any, name: str) -> Figures:
    found = getattr(config, name, None)
    if found is None:
        found = Figures()
        setattr(config, name, found)
    return found


def _postgres_admin():
    import pg8000.dbapi

    parts = urlsplit(POSTGRES_URL)
    connection = pg8000.dbapi.connect(user=parts.username or "postgres", password=parts.password,
                                      host=parts.hostname or "127.0.0.1", port=parts.port or 5432,
                                      database=parts.path.lstrip("/") or "postgres", timeout=10)
    connection.autocommit = True
    return connection


def postgres_admin():
    """A raw connection to the server's admin database; skips (fails in CI) when it is down."""
    try:
        return _postgres_admin()
    except Exception as exc:  # the driver missing, the server down, refused credentials
        message = f"PostgreSQL at {POSTGRES_URL} does not answer ({type(exc).__name__}); set SESMAIL_TEST_POSTGRES_URL"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@contextlib.contextmanager
def postgres_database():
    """The URL of a fresh database on the PostgreSQL server, dropped afterwards."""
    admin = postgres_admin()
    name = f"sesmail_fz_{os.getpid()}_{secrets.token_hex(4)}"
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(POSTGRES_URL)
    try:
        yield urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))
    finally:
        from sesmail import store

        store.reset()
        try:
            admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            admin.close()
