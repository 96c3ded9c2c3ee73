"""The webhook function's routes: SES event callbacks stored once, feeding suppression.

Tencent documents no signature and no retry policy for SES callbacks, so this receiver is strict
about who may post (a secret token in the URL, compared in constant time; the AppId when
configured) and lenient about what the payload looks like. It never imports the SES SDK.
"""

from __future__ import annotations

import hmac
import importlib
import time
from typing import TYPE_CHECKING, Any, Callable

from . import events, log
from .errors import Forbidden, StoreUnavailable
from .http import Call, Response

if TYPE_CHECKING:
    from .config import Settings

__all__ = ["call_hook", "probe", "receive"]


def _check_token(call: Call) -> None:
    token = call.request.query.get("token") if call.request else None
    candidate = (token if isinstance(token, str) else "").encode("utf-8", "surrogatepass")
    valid = False
    for secret in call.settings.webhook_secrets:  # every secret compared: no early exit to time
        valid |= hmac.compare_digest(candidate, secret.encode("utf-8"))
    if not candidate or not valid:
        raise Forbidden("a valid ?token= is required for SES callbacks", field="token")


def receive(call: Call) -> Response:
    """POST (any path): one callback object or an array of them; 200 once stored. An array is
    taken item by item: its bad items are named in `Rejected` (their indexes), never a reason to
    lose the good ones, since SES documents no retry."""
    _check_token(call)
    settings = call.settings
    payload = call.payload()
    callbacks, rejected = events.parse_callbacks(payload)
    array = isinstance(payload, list)
    if settings.appid:
        kept = []
        for index, fields in callbacks:
            username = fields.get("username")
            # Absent (or "") in older payloads: only a different AppId is refused.
            if username is not None and username != "" and str(username) != settings.appid:
                if not array:
                    raise Forbidden("the callback belongs to another Tencent Cloud account (username)",
                                    field="username")
                rejected.append(index)
            else:
                kept.append((index, fields))
        if len(kept) < len(callbacks):
            callbacks = kept
            rejected.sort()
    now = time.time()
    if array:
        rows = [events.normalise(fields, payload[index], now, settings.event_ttl) for index, fields in callbacks]
    else:  # a single object (what SES sends) is stored as the very text it arrived as
        raw: Any = call.request.body if call.request else payload
        rows = [events.normalise(fields, raw, now, settings.event_ttl) for _, fields in callbacks]
    stored = 0
    if rows:
        store = call.store
        # Suppressions first: both writes are idempotent, so a failure in between is repaired by the
        # next delivery of the same callback (a 503 tells the sender it did not land).
        for row in rows:
            suppression = events.suppression_for(row)
            if suppression:
                store.suppress(row["email"], suppression[0], suppression[1], "callback", now)
        # One statement for the whole array (per 90 rows), the statistics with it (sesmail.stats).
        from . import stats

        stored, counted = store.ingest_events(rows, stats.facts(settings, [f for _, f in callbacks], rows, now))
        if counted:  # hard bounces or spam reports: the reputation guard may trip
            from . import guard

            try:
                guard.overview(settings, store, now)
            except StoreUnavailable:  # the events are stored; the next look at the guard announces it
                log.warning("the reputation guard could not be reviewed after storing events")
    # An unknown event name is the sender's free text (it could be an address): not logged.
    log.note(Events=len(rows), Stored=stored, Rejected=len(rejected),
             Names=sorted({row["event"] if row["event"] in events.KNOWN_EVENTS else "(other)" for row in rows}))
    if stored:
        _run_hook(settings, rows)
    return Response(200, {"Stored": stored, "Duplicates": len(rows) - stored, "Rejected": rejected})


def probe(call: Call) -> Response:
    """HEAD (any path): callers probe a callback URL before saving it."""
    return Response(200, {})


_hooks: dict[str, Callable[[dict], Any] | None] = {}


def _run_hook(settings: Settings, rows: list[dict]) -> None:
    """The user's own reaction (config `EventHook`: "module:function"), called after the events
    are stored, so that its failure can never lose one. At least once: in the rare array that
    mixes new and already-stored events, every event of the array is passed; `EventKey` lets the
    hook tell repeats apart."""
    hook = _hook(settings)
    if hook is None:
        return
    for row in rows:
        event = {"EventKey": row["event_id"], "Event": row["event"], "Email": row["email"] or None,
                 "MessageId": row["message_id"],
                 "Timestamp": row["event_time"], **row["details"]}
        try:
            hook(event)
        except Exception as exc:
            log.error("EventHook failed; the event is stored", Hook=settings.event_hook, Error=type(exc).__name__,
                      Email=log.mask(row["email"]))


def _hook(settings: Any) -> Callable[[dict], Any] | None:
    """The config file's `EventHook`, imported once per container (None when unset or broken)."""
    name = settings.event_hook
    if not name:
        return None
    if name not in _hooks:
        module, _, attribute = name.partition(":")
        try:
            _hooks[name] = getattr(importlib.import_module(module), attribute)
        except Exception as exc:
            log.error("EventHook could not be loaded", Hook=name, Error=type(exc).__name__)
            _hooks[name] = None
    return _hooks[name]


def call_hook(settings: Any, event: dict) -> None:
    """Pass one event of our own (the reputation guard's) to `EventHook`; its failure is logged."""
    hook = _hook(settings)
    if hook is not None:
        try:
            hook(event)
        except Exception as exc:
            log.error("EventHook failed", Hook=settings.event_hook, Error=type(exc).__name__)
