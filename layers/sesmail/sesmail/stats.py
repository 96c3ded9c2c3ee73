"""Statistics: what each stored event adds to the aggregates, `GET /stats`, and the dashboard's
static files (docs/deliverability.md#statistics).

Counted per mail — one recipient of one message — by the Beijing day the mail was sent (SES's own
day): a repeated callback, or an event that polling already told, is counted once, and so is a
second open or click of the same mail. An event is filed under its mail as the sent log has it
(sender, TemplateID, when it was sent); a mail the sent log does not list (a batch task's, or one
whose log row expired) under the callback's own `from` / `fromDomain`, `templateId` and
`sentTimestamp` (else its `timestamp`).
"""

from __future__ import annotations

import hashlib
import os
import time
from datetime import datetime, timedelta
from typing import Any, Callable

from . import validation
from .errors import InvalidInput
from .http import Call, Response

__all__ = ["BY", "MAX_DAYS", "facts", "get_stats", "static_route"]

MAX_DAYS = 90
BY = ("day", "template", "sender", "domain")
_PARAMS = ("Days", "By", "Source")
_COUNTERS = ("Sent", "Delivered", "HardBounces", "SoftBounces", "Complaints", "Unsubscribes", "Opens", "Clicks")


def _mark(secret: str | None, *parts: str) -> str:
    # Keyed like the recipient leases: the table of marks cannot be reversed with a list of addresses.
    from .leases import _mac_key

    return hashlib.blake2b("\n".join(parts).encode("utf-8", "surrogatepass"), key=_mac_key(secret),
                           digest_size=16).hexdigest()


def facts(settings: Any, fields: list[dict], rows: list[dict], now: float) -> Callable[[], list[tuple]]:
    """store.ingest_events' facts for the stored rows (each with its callback's lower-cased
    fields), made when the store asks for them."""
    def made() -> list[tuple]:
        from .store.stats import fact_of, metric_of

        found = []
        for callback, row in zip(fields, rows):
            metric = metric_of(row["event"], row["details"].get("BounceType"))
            if metric is None:
                continue
            message_id = row["message_id"] or row["smtp_message_id"]
            mark = (_mark(settings.erasure_key, metric, message_id, row["email"]) if message_id
                    else _mark(settings.erasure_key, metric, "#" + row["event_id"]))
            found.append((mark, message_id, metric,
                          *fact_of(row["event_time"], row["details"].get("TemplateId"), callback, now),
                          row["expires_at"], row["event_id"], row["email"], row["event"]))
        return found

    return made


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def _bucket(key: Any, counts: list[int]) -> dict:
    bucket = dict(zip(_COUNTERS, counts))
    sent = bucket["Sent"]
    return dict({"Key": key}, **bucket, DeliveryRate=_rate(bucket["Delivered"], sent),
                BounceRate=_rate(bucket["HardBounces"], sent), ComplaintRate=_rate(bucket["Complaints"], sent))


def _date(day: int) -> str:
    return (datetime(1970, 1, 1) + timedelta(days=day)).strftime("%Y-%m-%d")


def get_stats(call: Call) -> Response:
    """GET /stats?Days=N&By=day|template|sender|domain[&Source=ses]."""
    from .store.stats import day_of

    query = call.request.query if call.request else {}
    for name in sorted(query):
        if name not in _PARAMS:
            raise InvalidInput(f"{name} is not a parameter of GET /stats; known: {', '.join(_PARAMS)}", field=name,
                               code="UnknownParameter")
    days = validation.Int("Days", 1, MAX_DAYS).compile()(query.get("Days", "30"), "Days")
    by = query.get("By", "day")
    if by not in BY:
        raise InvalidInput(f"By must be one of {', '.join(BY)}", field="By", code="InvalidParameterValue")
    source = query.get("Source")
    if source is not None and source != "ses":
        raise InvalidInput("Source may only be ses (SES's own GetStatisticsReport beside ours)", field="Source",
                           code="InvalidParameterValue")
    today = day_of(time.time())
    first = today - days + 1
    rows = call.store.stats_rows(first, today, "sender" if by == "domain" else by)
    merged: dict[Any, list[int]] = {}
    for key, *counts in rows:
        if by == "domain":
            key = str(key).rpartition("@")[2].lower()
        elif by == "day":
            key = _date(int(key))
        elif by == "template":
            key = int(key) or None  # 0: a callback that named no template
        total = merged.setdefault(key or None, [0] * len(_COUNTERS))
        for index, count in enumerate(counts):
            total[index] += count
    if by == "day":  # every day of the range, so a series has no holes
        buckets = [_bucket(_date(day), merged.get(_date(day), [0] * len(_COUNTERS))) for day in range(first, today + 1)]
    else:
        buckets = [_bucket(key, counts) for key, counts in sorted(merged.items(), key=lambda item: (-item[1][0],
                                                                                                  str(item[0])))]
    if by == "template":  # the config file's name for each TemplateID, where it has one
        names = {template_id: name for name, template_id in call.settings.templates.items()}
        for bucket in buckets:
            bucket["Name"] = names.get(bucket["Key"])
    body: dict[str, Any] = {"Days": days, "By": by, "Buckets": buckets}
    if source == "ses":
        body["Ses"] = _ses_report(call, _date(first), _date(today))
    return Response(200, body)


def _ses_report(call: Call, start: str, end: str) -> dict:
    """SES's own GetStatisticsReport for the same days (its counts are SES's: every request, every
    open), beside ours, so callbacks that never arrived show as a difference."""
    from .ses import client_for

    reply = client_for(call.settings).call("GetStatisticsReport", {"StartDate": start, "EndDate": end},
                                           call.deadline)
    return {"DailyVolumes": reply.get("DailyVolumes") or [], "OverallVolume": reply.get("OverallVolume") or {}}


# -- the dashboard's static files -----------------------------------------------------------------
# A page with no data in it: its own script fetches /stats and /guard with the key the user types.
# No inline script or style, nothing from another origin (docs/deliverability.md#the-dashboard).
DASHBOARD_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
                 " base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8"}


def static_route(folder: str, name: str) -> Callable[[Call], Response]:
    """A handler serving one file of `folder` (read once per container) with its own type."""
    path = os.path.join(folder, name)
    kind = _TYPES[os.path.splitext(name)[1]]
    cached: list[str] = []

    def serve(call: Call) -> Response:
        if not cached:
            with open(path, encoding="utf-8") as handle:
                cached.append(handle.read())
        headers = {"Content-Type": kind, "Content-Security-Policy": DASHBOARD_CSP, "X-Content-Type-Options": "nosniff",
                   "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}
        return Response(200, cached[0], headers)

    return serve
