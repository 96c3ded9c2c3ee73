"""Lost callbacks: poll SES for recent messages that never got a final event.

SES documents no retry for its callbacks, so one lost POST would leave a message "sent" for ever.
A timer job (`{"Job": "reconcile"}` on the batch function) asks GetSendEmailStatus about the
messages of the last days that have no final event, one Beijing day per query and 100 rows per
page, and stores what it learns as events marked `Polled`.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING

from . import events, log, rules, stats

if TYPE_CHECKING:
    from typing import Protocol

    from .config import Settings
    from .deadline import Deadline
    from .store import EventStore, SentLog, StatsStore

    class ReconcileStore(SentLog, EventStore, StatsStore, Protocol):
        """What reconciliation reads (the sent log) and writes (polled events, counted in the statistics)."""

__all__ = ["run"]

PAGE = 100
# GetSendEmailStatus.DeliverStatus -> the callback event it stands for (0: still in SES's hands).
DELIVER_STATUS = {1: "delivered", 2: "dropped", 3: "bounce", 8: "deferred"}
# Engagement flags of a status row -> callback event.
FLAGS = (("UserOpened", "open"), ("UserClicked", "click"), ("UserUnsubscribed", "unsubscribe"),
         ("UserComplainted", "spamreport"), ("UserComplained", "spamreport"))
# Time left for storing and answering when the deadline nears.
RESERVE_S = 5.0


def _polled_events(row: dict) -> list[dict]:
    """Callback-shaped events for one status row. A polled bounce carries no bounce type, so it
    never suppresses (only a callback's `hard_bounce` does)."""
    base = {"email": str(row.get("ToEmailAddress") or ""), "bulkid": row.get("MessageId"),
            "timestamp": row.get("DeliverTime") or row.get("RequestTime")}
    found = []
    send_status = row.get("SendStatus")
    if isinstance(send_status, int) and send_status != 0:
        found.append(dict(base, event="dropped", reason=f"SendStatus {send_status}"))
    name = DELIVER_STATUS.get(row.get("DeliverStatus"))  # type: ignore[arg-type]
    if name:
        found.append(dict(base, event=name, reason=row.get("DeliverMessage") or ""))
    seen = set()
    for flag, event in FLAGS:
        if row.get(flag) is True and event not in seen:
            seen.add(event)
            found.append(dict(base, event=event))
    # A row without an address still tells the message's state: stored with the address absent.
    return found


def run(settings: Settings, deadline: Deadline, store: ReconcileStore, now: float | None = None) -> dict:
    """Reconcile; returns counts for the log and the timer's answer."""
    from .ses import client_for

    now = time.time() if now is None else now
    unsettled = store.unsettled_messages(now - settings.reconcile_days * 86400, now - settings.reconcile_after,
                                         events.FINAL_EVENTS, settings.reconcile_limit)
    by_day: dict[str, set[str]] = {}
    for message in unsettled:
        day = datetime.fromtimestamp(message["CreatedAt"], rules.BEIJING).strftime("%Y-%m-%d")
        by_day.setdefault(day, set()).add(message["MessageId"])
    ses = client_for(settings)
    counts = {"Messages": len(unsettled), "Queries": 0, "Stored": 0, "Unfinished": 0}
    for day, wanted in sorted(by_day.items()):
        pending = set(wanted)
        offset = 0
        while pending:
            if deadline.remaining() < RESERVE_S:
                counts["Unfinished"] += len(pending)  # the next run picks them up
                break
            page = ses.call("GetSendEmailStatus", {"RequestDate": day, "Offset": offset, "Limit": PAGE}, deadline)
            counts["Queries"] += 1
            rows = [row for row in page.get("EmailStatusList") or [] if isinstance(row, dict)]
            found = [row for row in rows if row.get("MessageId") in pending]
            if found:
                stored_at = time.time()
                callbacks = [event for row in found for event in _polled_events(row)]
                polled = [events.normalise(event, event, stored_at, settings.event_ttl, polled=True)
                          for event in callbacks]
                # Counted in the statistics as callbacks are; a mail a callback already told is not again.
                counts["Stored"] += store.ingest_events(polled, stats.facts(settings, callbacks, polled,
                                                                            stored_at))[0] if polled else 0
                pending -= {row["MessageId"] for row in found
                            if row.get("DeliverStatus") in (1, 2, 3) or row.get("SendStatus") not in (0, None)}
            if len(rows) < PAGE:
                break
            offset += PAGE
    log.note(Reconciled=counts)
    return counts
