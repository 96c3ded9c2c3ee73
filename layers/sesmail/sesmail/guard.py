"""The reputation guard: marketing mail stops when a sender domain, or the account, bounces or
draws spam reports too often (docs/deliverability.md#the-reputation-guard).

Over the last `WindowHours` hourly buckets (sesmail.store.stats), hard bounces ÷ mails sent and
spam reports ÷ mails sent, filed by the hour the mail was sent. A rate trips once the window holds
`MinVolume` mails and `MinEvents` of its events and the rate exceeds its limit. Then marketing
mail (SendEmail with TriggerType 0, batches, digests) from that domain, or from every domain when
the account (`*`) trips, is refused before SES with 403 `FailedOperation.HighRejectionRate`;
transactional mail goes on. It lifts by itself when the rate falls back, or for 24 hours when an
admin lifts it (`DELETE /guard/<domain>`, which also exempts the domain from the account's trip).

What a send asks costs no statement of its own: on PostgreSQL the window rides in the statement
that checks suppressions and takes the recipients' leases (store.admit). Every trip and lift is
announced once, across instances (a compare-and-swap on its stored state): logged, and passed to
the config file's `EventHook` as {"Event": "guard_tripped"|"guard_lifted", "Domain", "Rate",
"Limit", "Timestamp"}.
"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import unquote

from . import log
from .errors import Forbidden, InvalidInput, StoreUnavailable
from .http import Call, Response

__all__ = ["ACCOUNT", "LIFT_S", "check", "enforce", "lift", "overview", "probe", "review", "verdict"]

ACCOUNT = "*"
LIFT_S = 24 * 3600  # how long an admin's lift lasts
CODE = "FailedOperation.HighRejectionRate"  # SES's own code for a sender held back for its rates
_DOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+")


def _since(limits: dict, now: float) -> int:
    return int(now // 3600) - int(limits["WindowHours"]) + 1


def domain_of(sender: str) -> str:
    return sender.rpartition("@")[2].lower()


def verdict(limits: dict, window: dict) -> tuple[bool, str, float, float]:
    """(tripped, "BounceRate"|"ComplaintRate", rate, limit) for one window {"Sent", "HardBounces",
    "Complaints"}: the tripped rate, or else the one nearest its limit. A rate trips when the window
    holds at least MinVolume mails and MinEvents of that rate's own events, and exceeds its limit."""
    sent = window["Sent"]
    worst: tuple[bool, str, float, float] | None = None
    for name, events in (("BounceRate", window["HardBounces"]), ("ComplaintRate", window["Complaints"])):
        limit = float(limits[name])
        rate = events / sent if sent else 0.0
        tripped = sent >= limits["MinVolume"] and events >= limits["MinEvents"] and rate > limit
        candidate = (tripped, name, rate, limit)
        if worst is None or (tripped, rate / limit) > (worst[0], worst[2] / worst[3]):
            worst = candidate
    assert worst is not None
    return worst


def _announce(settings: Any, event: str, domain: str, rate: float, limit: float, now: float) -> None:
    fields = {"Event": event, "Domain": domain, "Rate": round(rate, 6), "Limit": limit, "Timestamp": int(now)}
    (log.warning if event == "guard_tripped" else log.info)("reputation guard " + event.split("_")[1], **fields)
    from .webhook import call_hook

    call_hook(settings, fields)


def _flip(store: Any, domain: str, tripped: bool, now: float) -> bool:
    """Record a trip or lift; a store that cannot is logged, and the next look announces it (the
    decision itself never waits for the record: the window says what it is)."""
    try:
        return store.guard_flip(domain, tripped, now)
    except StoreUnavailable:
        log.warning("the reputation guard's state could not be recorded", Domain=domain, Tripped=tripped)
        return False


def review(settings: Any, store: Any, windows: dict[str, dict], now: float) -> dict[str, dict]:
    """Each window's state ({domain: window + "Tripped", "Rate", "Limit", "RateName", "LiftedUntil"}),
    its trip or lift recorded and announced when it differs from the one stored. A window that an
    admin lifted is not tripped while the lift lasts."""
    limits = settings.guard
    states = {}
    for domain, window in windows.items():
        tripped, name, rate, limit = verdict(limits, window)
        lifted = window.get("LiftedUntil", 0.0) > now
        tripped = tripped and not lifted
        if tripped != bool(window.get("Tripped")) and _flip(store, domain, tripped, now):
            _announce(settings, "guard_tripped" if tripped else "guard_lifted", domain, rate, limit, now)
        states[domain] = dict(window, Tripped=tripped, RateName=name, Rate=rate, Limit=limit,
                              LiftedUntil=window.get("LiftedUntil", 0.0) if lifted else None)
    return states


def probe(settings: Any, sender: str, marketing: bool, now: float | None = None) -> tuple[str, int] | None:
    """What store.admit needs to ask the guard's window for a send: None for transactional mail."""
    if not marketing:
        return None
    return domain_of(sender), _since(settings.guard, time.time() if now is None else now)


def enforce(settings: Any, store: Any, domain: str, window: dict[str, dict], now: float | None = None) -> None:
    """Refuse marketing mail from `domain` when it, or the account, is tripped (store.guard_window's
    answer in `window`); record and announce what changed."""
    now = time.time() if now is None else now
    states = review(settings, store, window, now)
    own, account = states[domain], states[ACCOUNT]
    if own["Tripped"]:  # (the message names the rule, not the caller's domain: messages never echo values)
        who, state = "this sender domain", own
    elif account["Tripped"] and not own["LiftedUntil"]:
        who, state = "this account", account
    else:
        return
    kind = "bounce rate (hard bounces)" if state["RateName"] == "BounceRate" else "complaint rate (spam reports)"
    raise Forbidden(f"marketing mail is paused: the {kind} of {who} over the last {settings.guard['WindowHours']} h"
                    f" is {state['Rate'] * 100:.2f} %, above the limit of {state['Limit'] * 100:.2f} %;"
                    " transactional mail (TriggerType 1) still goes out", field="FromEmailAddress", code=CODE)


def check(settings: Any, store: Any, sender: str) -> None:
    """enforce() with a query of its own: batches and digests, once per request or run."""
    now = time.time()
    domain = domain_of(sender)
    enforce(settings, store, domain, store.guard_window(domain, _since(settings.guard, now)), now)


def overview(settings: Any, store: Any, now: float | None = None) -> list[dict]:
    """Every domain seen in the window, and the account as "*", reviewed (trips and lifts recorded)."""
    now = time.time() if now is None else now
    windows, stored = store.guard_overview(_since(settings.guard, now))
    totals = {"Sent": 0, "HardBounces": 0, "Complaints": 0}
    for window in windows.values():
        for name in totals:
            totals[name] += window[name]
    everything = {ACCOUNT: totals, **windows}
    for domain, (tripped, lifted_until) in stored.items():
        everything.setdefault(domain, {"Sent": 0, "HardBounces": 0, "Complaints": 0})
        everything[domain] = dict(everything[domain], Tripped=tripped, LiftedUntil=lifted_until)
    return [dict(state, Domain=domain) for domain, state in sorted(review(settings, store, everything, now).items())]


# -- routes of the send function ------------------------------------------------------------------
def _shown(state: dict) -> dict:
    sent = state["Sent"]
    return {"Domain": state["Domain"], "Sent": sent, "HardBounces": state["HardBounces"],
            "Complaints": state["Complaints"],
            "BounceRate": round(state["HardBounces"] / sent, 6) if sent else None,
            "ComplaintRate": round(state["Complaints"] / sent, 6) if sent else None,
            "Tripped": state["Tripped"], "TrippedBy": state["RateName"] if state["Tripped"] else None,
            "LiftedUntil": int(state["LiftedUntil"]) if state["LiftedUntil"] else None}


def list_guard(call: Call) -> Response:
    """GET /guard: the limits, and every domain's window (the account as "*")."""
    query = call.request.query if call.request else {}
    if query:
        name = sorted(query)[0]
        raise InvalidInput(f"{name} is not a parameter of GET /guard", field=name, code="UnknownParameter")
    limits = call.settings.guard
    states = overview(call.settings, call.store)
    return Response(200, {"Limits": dict(limits), "Domains": [_shown(state) for state in states]})


def lift(call: Call) -> Response:
    """DELETE /guard/<domain> (or /guard/*): lifted for 24 hours; a domain lifted is also exempt
    from the account's trip for as long."""
    domain = unquote(call.params["Domain"]).strip().lower()
    if domain != ACCOUNT and (len(domain) > 253 or not _DOMAIN.fullmatch(domain)):
        raise InvalidInput("Domain must be a sender domain (example.com) or * for the whole account",
                           field="Domain", code="InvalidParameterValue")
    store = call.store
    now = time.time()
    until = now + LIFT_S
    if store.guard_lift(domain, until, now):
        window = store.guard_window(domain if domain != ACCOUNT else "", _since(call.settings.guard, now))
        _, _, rate, limit = verdict(call.settings.guard, window[ACCOUNT if domain == ACCOUNT else domain])
        _announce(call.settings, "guard_lifted", domain, rate, limit, now)
    log.note(GuardLifted=domain)
    return Response(200, {"Domain": domain, "LiftedUntil": int(until)})
