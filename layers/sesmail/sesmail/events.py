"""SES event callbacks: parsing, normalisation, identity, suppression rules, delivery state.

Tencent's samples and field table disagree (`bulkId` vs `bulkid`), older payloads carry only
`event, email, link, bulkId, timestamp, reason, bounceType`, the 2020 sample sends
`bounceType: ""` for non-bounces and the 2021 one `"email": ""`. So: names are read
case-insensitively, only `event` is required, a field of the wrong type (or an address no mailbox
can have) is stored as absent (the raw payload keeps it), and an event name we do not know is
stored under its own name, never dropped. In an array each item is judged alone: SES documents no
retry, so a refused callback is a lost event, and one bad item must not cost the others.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .errors import InvalidInput
from .log import json_encoder_for

__all__ = [
    "DELIVERY_EVENTS",
    "DELIVERY_RANK",
    "FINAL_EVENTS",
    "SUPPRESSING",
    "normalise",
    "parse_callbacks",
    "state_of",
    "suppression_for",
]

# Optional callback fields: lower-cased name -> (our name in Events, expected JSON type).
# Source: SES "Email Event Notification" field table
# (https://www.tencentcloud.com/document/product/1084/39492).
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
# OPTIONAL_FIELDS as the loop in normalise reads them: (field, detail, type, longest string).
_OPTIONAL: tuple[tuple[str, str, type, int], ...] = tuple(
    (name, ours, kind, _MAX_TEXT.get(ours, 4096)) for name, (ours, kind) in OPTIONAL_FIELDS.items())
# json.dumps with options builds an encoder per call; these are built once (the webhook's hot path).
_identity = json_encoder_for(separators=(",", ":"), sort_keys=True)
_compact = json_encoder_for(separators=(",", ":"))
# Kept in the raw payload and the record, not among an event's public details.
_PRIVATE = ("MessageId", "Timestamp", "Username", "From", "Subject", "SentTimestamp")

# Delivery-status events, in the order a message moves through them (`processed` is older).
DELIVERY_EVENTS = ("processed", "deferred", "delivered", "dropped", "bounce")
# A message's State is the furthest of these reached: callbacks arrive out of order and their
# timestamps may disagree with their arrival, so rank decides, never order. `bounce` and `dropped`
# are both final and rank alike (the first one reached stays); engagement events (open, click,
# unsubscribe, spamreport) and names SES does not document never change the State.
DELIVERY_RANK = {"processed": 1, "deferred": 2, "delivered": 3, "bounce": 4, "dropped": 4}
# Every event name SES documents (same page).
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


_MISSING = "is required (a non-empty string)"
_EVENT_WIDTH = 64  # the event column's width
_EMAIL_WIDTH = 320  # the email column's width


def _lowered(item: dict) -> dict:
    return {str(key).lower(): value for key, value in item.items()}


def _event_fault(value: Any) -> str | None:
    """Why `value` cannot be an event name, or None."""
    if not isinstance(value, str) or not value.strip():
        return _MISSING
    if len(value.strip()) > _EVENT_WIDTH or "\x00" in value:
        return f"must be at most {_EVENT_WIDTH} characters, without NUL"
    return None


def _address(value: Any) -> str:
    """A callback's `email` as stored: lower-cased, or "" when absent. Tencent's 2021 sample sends
    `""`; a value no address can be (not a string, wider than the column, holding NUL) is absent
    too, like any other wrongly typed field: the event still tells the message's story."""
    if not isinstance(value, str):
        return ""
    address = value.strip().lower()  # lower() may lengthen a string: measured after it
    return address if len(address) <= _EMAIL_WIDTH and "\x00" not in address else ""


def parse_callbacks(payload: Any) -> tuple[list[tuple[int, dict]], list[int]]:
    """One callback object, or an array of them -> ([(index, lower-cased-key dict)], [rejected
    indexes]). A body holding no object at all, or a single object that is not a callback, is a
    400; in an array, an item that is not an object or has no usable `event` is only named."""
    if isinstance(payload, dict):
        fields = _lowered(payload)
        fault = _event_fault(fields.get("event"))
        if fault:
            raise InvalidInput(f"event {fault}", field="event",
                               code="MissingParameter" if fault == _MISSING else "InvalidParameterValue")
        return [(0, fields)], []
    if not isinstance(payload, list) or not any(isinstance(item, dict) for item in payload):
        if isinstance(payload, list) and not payload:
            raise InvalidInput("the body is an empty array; callback objects are expected", code="MissingParameter")
        raise InvalidInput("the body holds no JSON object (an SES event callback, or an array of them)",
                           code="InvalidParameter")
    accepted: list[tuple[int, dict]] = []
    rejected: list[int] = []
    for index, item in enumerate(payload):
        if isinstance(item, dict):
            fields = _lowered(item)
            if not _event_fault(fields.get("event")):
                accepted.append((index, fields))
                continue
        rejected.append(index)
    return accepted, rejected


def normalise(fields: dict, raw: dict | str, stored_at: float, ttl_s: int, polled: bool = False) -> dict:
    """A store row for one callback (see store.insert_events); `raw` is the payload, or its JSON
    text as received (kept as is: no second encoding on the hot path)."""
    details: dict[str, Any] = {}
    get = fields.get
    for name, ours, kind, width in _OPTIONAL:
        value: Any = get(name)
        # bool is an int in Python but not in JSON; "" is how old payloads say "absent".
        exact = value.__class__ is kind  # (an int or str subclass is no JSON value)
        if value is None or not exact:
            continue
        if kind is int:
            if not -_INT64 <= value < _INT64:
                continue  # BIGINT columns; a larger number is not one SES sends
        elif not value or len(value) > width or "\x00" in value:
            continue  # wider than its column (or holding NUL, which PostgreSQL text refuses): absent
        details[ours] = value
    event = fields["event"].strip()
    # The events table keeps an absent address as "" (its column is NOT NULL on every database);
    # readers give it back as None. An absent address still takes part in the identity.
    email = _address(fields.get("email"))
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
    """(scope, reason) if this event suppresses its address (never without an address)."""
    if not row["email"]:
        return None
    event = row["event"].lower()
    bounce_type = row["details"].get("BounceType")
    return SUPPRESSING.get((event, bounce_type.lower() if bounce_type else None)) or SUPPRESSING.get((event, None))


def state_of(events: list[dict]) -> str:
    """A message's summary: the furthest delivery state it reached (DELIVERY_RANK; of two equal
    ranks, the earlier in its history), or `sent` when SES has told nothing yet. A late, repeated
    or lower-ranked event never moves it back; engagement and unknown events never move it."""
    state, reached = "sent", 0
    for entry in events:  # in time order
        name = entry["Event"].lower()
        rank = DELIVERY_RANK.get(name, 0)
        if rank > reached:
            state, reached = name, rank
    return state
