"""Delivery simulation: which events a recipient produces, and the SES callback each one posts.

Outcomes follow the recipient's local part, in the manner of AWS's mailbox simulator (a `+tag`
is ignored, so `bounce+1@x` bounces too):

| local part      | events                                   | GetSendEmailStatus.DeliverStatus |
|-----------------|------------------------------------------|----------------------------------|
| `bounce`        | bounce (`hard_bounce`)                   | 3                                |
| `softbounce`    | bounce (`soft_bounce`)                   | 3                                |
| `complaint`     | delivered, then spamreport               | 1                                |
| `unsubscribe`   | delivered, then unsubscribe              | 1                                |
| `deferred`      | deferred, then delivered a little later  | 8, then 1                        |
| anything else   | delivered                                | 1                                |

Opens and clicks happen on demand (the page's buttons, `POST /_local/messages/<id>/events`).
Callback bodies carry the fields of SES's "Email Event Notification" samples; Tencent documents
no signature and no retry for them, so the emulator posts each event once, retrying a failed POST
only a few times before dropping it (a receiver must cope with lost callbacks either way).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Optional

from .rendering import encode_subject

__all__ = ["EVENT_IDS", "SIMULATED", "callback_payload", "deliver_status", "planned_events", "post"]

# `eventid` of each event name (callback field table); `processed` never had one.
EVENT_IDS = {"delivered": 1, "dropped": 2, "bounce": 3, "open": 4, "click": 5, "spamreport": 6,
             "unsubscribe": 7, "deferred": 8}
# GetSendEmailStatus.DeliverStatus: 0 queued, 1 delivered, 2 dropped, 3 bounced, 8 deferred.
_DELIVER_STATUS = {"delivered": 1, "dropped": 2, "bounce": 3, "deferred": 8}
HARD_REASON = "550 5.1.1 The email account that you tried to reach does not exist (sesmail local simulator)"
SOFT_REASON = "452 4.2.2 The email account that you tried to reach is over quota (sesmail local simulator)"
DEFER_REASON = "421 4.7.0 Try again later (sesmail local simulator)"
USER_AGENT = "Mozilla/5.0 (sesmail local mail page)"

# What the page's buttons and the API may ask for -> (event, extra fields).
SIMULATED: dict[str, tuple[str, dict[str, str]]] = {
    "open": ("open", {}),
    "click": ("click", {}),
    "bounce": ("bounce", {"bounceType": "hard_bounce", "reason": HARD_REASON}),
    "softbounce": ("bounce", {"bounceType": "soft_bounce", "reason": SOFT_REASON}),
    "complaint": ("spamreport", {}),
    "spamreport": ("spamreport", {}),
    "unsubscribe": ("unsubscribe", {}),
    "delivered": ("delivered", {}),
    "deferred": ("deferred", {"reason": DEFER_REASON}),
    "dropped": ("dropped", {"reason": "dropped (sesmail local simulator)"}),
}


def planned_events(email: str, deferred_seconds: float) -> list[tuple[float, str, dict[str, str]]]:
    """(seconds after the send, event, extra fields) for one recipient."""
    local = email.rpartition("@")[0].lower().partition("+")[0]
    if local == "bounce":
        return [(0.0, "bounce", {"bounceType": "hard_bounce", "reason": HARD_REASON})]
    if local == "softbounce":
        return [(0.0, "bounce", {"bounceType": "soft_bounce", "reason": SOFT_REASON})]
    if local == "complaint":
        return [(0.0, "delivered", {}), (0.0, "spamreport", {})]
    if local == "unsubscribe":
        return [(0.0, "delivered", {}), (0.0, "unsubscribe", {})]
    if local == "deferred":
        return [(0.0, "deferred", {"reason": DEFER_REASON}), (deferred_seconds, "delivered", {})]
    return [(0.0, "delivered", {})]


def callback_payload(*, event: str, email: str, message_id: str, timestamp: float, app_id: str, sender: str,
                     template_id: Optional[int], subject: str, smtp_id: str, task_id: Optional[int],
                     extra: dict[str, str]) -> dict[str, Any]:
    """One callback body, shaped like SES's samples (tests/fixtures/events/ses-callback-*.json)."""
    payload: dict[str, Any] = {
        "event": event,
        "email": email,
        "link": extra.get("link", ""),
        "bulkId": message_id,
        "timestamp": int(timestamp),
        "reason": extra.get("reason", ""),
        "bounceType": extra.get("bounceType", ""),
        "username": app_id,
        "from": sender,
        "fromDomain": sender.rpartition("@")[2],
        "templateId": template_id,
        "subject": encode_subject(subject),
        "messageId": smtp_id,
        "eventid": EVENT_IDS.get(event),
    }
    if event in ("open", "click"):  # documented for opens and clicks only
        payload["useragent"] = extra.get("useragent", USER_AGENT)
    if task_id is not None:  # documented for BatchSendEmail mails
        payload["taskId"] = task_id
    return payload


def deliver_status(events: list[str]) -> int:
    """DeliverStatus after the given events (in time order): the last delivery-state event wins."""
    status = 0
    for event in events:
        status = _DELIVER_STATUS.get(event, status)
    return status


def post(url: str, payload: dict[str, Any], timeout: float = 5.0) -> Optional[str]:
    """POST one callback as JSON; None when the receiver answered 2xx, else what went wrong."""
    request = urllib.request.Request(url, data=json.dumps(payload).encode("utf-8"), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "User-Agent": "sesmail-ses-emulator (callback)"})
    # Callbacks go to the local gateway: never through a proxy from the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as reply:
            reply.read()
            return None if 200 <= reply.status < 300 else f"HTTP {reply.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:  # refused, timeout, bad URL
        return f"{type(exc).__name__}: {exc}"
