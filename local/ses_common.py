"""What every part of the SES emulator shares: the error answer, time zones, parameter checks.

Below the protocol (`ses_emulator`) and the action families (`ses_account` and the modules
`ses_actions` gathers), which all import it and nothing else of each other's.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

__all__ = [
    "BEIJING",
    "ApiError",
    "answer",
    "bare_address",
    "beijing_time",
    "has_control",
    "int_param",
    "is_address",
    "json_or_none",
    "paging",
    "parse_begin_time",
]

# SES keys GetSendEmailStatus.RequestDate by Beijing date and prints CreateTime in Beijing time.
BEIJING = timezone(timedelta(hours=8))
_BEGIN_RE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", re.ASCII)


class ApiError(Exception):
    """An SES error answer: HTTP 200 with {"Response": {"Error": {...}, "RequestId"}}."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def response(self) -> dict[str, Any]:
        return {"Error": {"Code": self.code, "Message": self.message}}


def answer(response: dict[str, Any]) -> bytes:
    """The API's JSON body: {"Response": {<the fields>, "RequestId"}} (SES's and SCF's alike)."""
    return json.dumps({"Response": dict(response, RequestId=str(uuid.uuid4()))}).encode()


def json_or_none(text: Any) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def has_control(text: str) -> bool:
    """Whether `text` holds a control character (names and descriptions SES refuses)."""
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def is_address(value: Any) -> bool:
    if not isinstance(value, str) or value.count("@") != 1 or any(c.isspace() for c in value):
        return False
    local, domain = value.split("@")
    return bool(local and domain)


def bare_address(sender: Any) -> str:
    """The bare address of "Alias <addr>" (SES's alias form) or of a plain address."""
    sender = str(sender).strip()
    if sender.endswith(">") and "<" in sender:
        alias, _, rest = sender.rpartition("<")
        if ":" in alias:  # SES: the alias must not contain a colon
            raise ApiError("InvalidParameterValue.IllegalSenderName", "The sender alias is not valid.")
        sender = rest[:-1].strip()
    if not is_address(sender):
        raise ApiError("FailedOperation.IncorrectSender", "The sender address format is incorrect.")
    return sender


def int_param(p: dict[str, Any], name: str, code: str = "InvalidParameterValue",
              required: bool = True) -> Optional[int]:
    """An integer field; SES's own examples sometimes quote integers, the SDK never does."""
    value = p.get(name)
    if value is None:
        if required:
            raise ApiError("MissingParameter", f"The request is missing `{name}`.")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(code, f"`{name}` must be an integer.")
    return value


def paging(p: dict[str, Any]) -> tuple[int, int]:
    offset, limit = p.get("Offset", 0), p.get("Limit")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ApiError("InvalidParameterValue", "Offset must be a non-negative integer.")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
        raise ApiError("FailedOperation.InvalidLimit", "Limit must be between 1 and 100.")
    return offset, limit


def beijing_time(unix: float) -> str:
    """SES's time strings (CreateTime, UpdateTime): `YYYY-MM-DD HH:MM:SS` in Beijing time."""
    return datetime.fromtimestamp(unix, BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def parse_begin_time(value: Any) -> Optional[float]:
    """`TimedParam.BeginTime` / `CycleParam.BeginTime` as Unix seconds, or None if malformed.

    Tencent's docs give the format (`2021-09-10 11:10:11`) but not the zone; its console works in
    Beijing time, so the emulator reads it as UTC+08:00 (docs/ses.md).
    """
    if not isinstance(value, str) or not _BEGIN_RE.fullmatch(value):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING).timestamp()
    except ValueError:
        return None
