"""SES event callbacks: parsing, normalisation, identity, suppression rules (SPEC 3.5, 4).

Tencent's samples and field table disagree (`bulkId` vs `bulkid`), older payloads carry only
`event, email, link, bulkId, timestamp, reason, bounceType`, and the 2020 sample sends
`bounceType: ""` for non-bounces. So: names are read case-insensitively, only `event` and `email`
are required, a field of the wrong type is stored as absent (the raw payload keeps it), and an
event name we do not know is stored under its own name, never dropped.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .errors import InvalidInput

__all__ = [
    "DELIVERY_EVENTS",
    "FINAL_EVENTS",
    "SUPPRESSING",
    "normalise",
    "parse_callbacks",
    "state_of",
    "suppression_for",
]

# Optional callback fields: lower-cased name -> (our name in Events, expected JSON type).
# Source: SES "Email Event Notification" field table (tencent-facts.md 1.1).
OPTIONAL_FIELDS: dict[str, tuple[str, type]] = {
    "bulkid": ("MessageId", str),
    "timestamp": ("Timestamp", int),
    "reason": ("Reason", str),
    "bouncetype": ("BounceType", str),
    "link": ("Link", str),
    "useragent": ("UserAgent", str),
    "templateid": ("TemplateId", int),
    "messageid": ("SmtpMessageId", str),
    "eventid": ("EventId", int),
    "taskid": ("TaskId", int),
    "username": ("Username", str),
    "from": ("From", str),
    "subject": ("Subject", str),
    "senttimestamp": ("SentTimestamp", int),
}
_INT64 = 2**63
# Longest string kept for a detail (the message id is a VARCHAR(255) column; the rest live in JSON).
_MAX_TEXT = {"MessageId": 255}
# json.dumps with options builds an encoder per call; these are built once (the webhook's hot path).
_identity = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
# Kept in the raw payload and the record, not among an event's public details.
_PRIVATE = ("MessageId", "Timestamp", "Username", "From", "Subject", "SentTimestamp")

# Delivery-status events, in the order a message moves through them (`processed` is older).
DELIVERY_EVENTS = ("processed", "deferred", "delivered", "dropped", "bounce")
# Every event name SES documents (tencent-facts.md 1.2).
KNOWN_EVENTS = frozenset(("processed", "deferred", "delivered", "dropped", "bounce", "open", "click",
                          "spamreport", "unsubscribe"))
# After one of these, SES sends no further delivery news: reconciliation skips the message.
FINAL_EVENTS = ("delivered", "dropped", "bounce")
# Which events suppress an address, and for what: (scope, reason). Hard bounces and spam reports
# block every mail; an unsubscribe blocks marketing mail (TriggerType 0) only. Soft bounces,
# deferrals and drops do not suppress.
SUPPRESSING = {
    ("bounce", "hard_bounce"): ("all", "hard_bounce"),
    ("bounce", "hard"): ("all", "hard_bounce"),  # older payloads
    ("spamreport", None): ("all", "spamreport"),
    ("unsubscribe", None): ("marketing", "unsubscribe"),
}


def parse_callbacks(payload: Any) -> list[dict]:
    """One callback object, or an array of them -> lower-cased-key dicts; 400 otherwise."""
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise InvalidInput("the body is an empty array; callback objects are expected", code="MissingParameter")
    out = []
    for index, item in enumerate(items):
        where = f"[{index}]" if isinstance(payload, list) else ""
        if not isinstance(item, dict):
            raise InvalidInput(f"{where or 'the body'} must be a JSON object (an SES event callback)",
                               field=where or None, code="InvalidParameter")
        lowered = {str(key).lower(): value for key, value in item.items()}
        for required, width in (("event", 64), ("email", 320)):
            value = lowered.get(required)
            field = f"{where}.{required}" if where else required
            if not isinstance(value, str) or not value.strip():
                raise InvalidInput(f"{field} is required (a non-empty string)", field=field, code="MissingParameter")
            if len(value.strip()) > width or "\x00" in value:
                raise InvalidInput(f"{field} must be at most {width} characters, without NUL", field=field,
                                   code="InvalidParameterValue")
        out.append(lowered)
    return out


def normalise(fields: dict, raw: dict | str, stored_at: float, ttl_s: int, polled: bool = False) -> dict:
    """A store row for one callback (see store.insert_events); `raw` is the payload, or its JSON
    text as received (kept as is: no second encoding on the hot path)."""
    details: dict[str, Any] = {}
    for name, (ours, kind) in OPTIONAL_FIELDS.items():
        value = fields.get(name)
        # bool is an int in Python but not in JSON; "" is how old payloads say "absent".
        if not isinstance(value, kind) or isinstance(value, bool) or value == "":
            continue
        if isinstance(value, int) and not -_INT64 <= value < _INT64:
            continue  # BIGINT columns; a larger number is not one SES sends
        if isinstance(value, str) and (len(value) > _MAX_TEXT.get(ours, 4096) or "\x00" in value):
            continue  # wider than its column (or holding NUL, which PostgreSQL text refuses): absent
        details[ours] = value
    event = fields["event"].strip()
    email = fields["email"].strip().lower()
    identity = {"Event": event, "Email": email, **details}
    event_id = hashlib.sha256(_identity(identity).encode("utf-8", "surrogatepass")).hexdigest()
    smtp_id = details.get("SmtpMessageId")
    return {
        "event_id": event_id,
        "message_id": details.get("MessageId"),
        # The Message-ID header (SMTP sends have no SES MessageId of ours: it is their handle).
        "smtp_message_id": _smtp_id(smtp_id),
        "email": email,
        "event": event,
        "event_time": details.get("Timestamp"),
        "details": {k: v for k, v in details.items() if k not in _PRIVATE},
        "raw": raw if isinstance(raw, str) else _compact(raw),
        "polled": polled,
        "stored_at": stored_at,
        "expires_at": stored_at + ttl_s,
    }


def _smtp_id(value: str | None) -> str | None:
    """A callback's `messageId` as the store keys it: without angle brackets, at most 255 characters."""
    bare = (value or "").strip().strip("<>").strip()
    return bare if bare and len(bare) <= _MAX_TEXT["MessageId"] else None


def suppression_for(row: dict) -> tuple[str, str] | None:
    """(scope, reason) if this event suppresses its address."""
    event = row["event"].lower()
    bounce_type = row["details"].get("BounceType")
    return SUPPRESSING.get((event, bounce_type.lower() if bounce_type else None)) or SUPPRESSING.get((event, None))


def state_of(events: list[dict]) -> str:
    """A message's summary: its latest delivery-status event (engagement events such as open
    or click do not change it), or `sent` when SES has told nothing yet."""
    state = "sent"
    for entry in events:  # in time order
        if entry["Event"].lower() in DELIVERY_EVENTS:
            state = entry["Event"].lower()
    return state
