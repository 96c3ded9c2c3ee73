"""Client policies: what each API key's client may send, how often, and from which web origins.

An HTTP endpoint that sends mail from the user's domain is what spammers look for, so a key can
be narrowed in the config file (`Clients`, keyed by the client name of `SESMAIL_API_KEYS`):

    {"Clients": {"web": {"Templates": ["welcome", 100091], "Senders": ["noreply@shop.example",
      "@mail.shop.example"], "MaxRecipients": 1, "RequestsPerMinute": 60,
      "MailsPerRecipientPerHour": 3, "Origins": ["https://shop.example"]}}}

A key whose client has no policy keeps full access (SPEC 3.1). A rule that forbids answers 403
(`UnauthorizedOperation.*`, naming the rule); a rate answers 429 with Retry-After. Counters are
per instance, or shared across instances through Redis when `SESMAIL_REDIS_URL` is set.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from .errors import Forbidden, SesmailError
from .rules import bare_address

__all__ = ["Counters", "RateLimited", "check_origin", "check_request", "check_send", "policy_for"]

KNOWN_RULES = ("Templates", "Senders", "MaxRecipients", "RequestsPerMinute", "MailsPerRecipientPerHour",
               "Origins")


class RateLimited(SesmailError):
    STATUS = 429
    CODE = "RequestLimitExceeded.ClientRate"


def policy_for(settings: Any, client: str) -> dict | None:
    clients = settings.file.get("Clients") or {}
    policy = clients.get(client) if isinstance(clients, dict) else None
    if policy is not None and (not isinstance(policy, dict) or set(policy) - set(KNOWN_RULES)):
        raise ValueError(f"config file: Clients.{client} may only hold {', '.join(KNOWN_RULES)}")
    return policy


class Counters:
    """Fixed-window counters; in memory for this instance (Redis-backed when configured)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, int]] = {}  # key -> (window number, count)

    def hit(self, key: str, window_s: int, limit: int, now: float | None = None) -> float | None:
        """Count one event; None if within `limit` per window, else seconds until the next window."""
        now = time.time() if now is None else now
        window = int(now // window_s)
        with self._lock:
            if len(self._counts) > 100_000:  # bounded memory in a long-lived warm instance
                self._counts = {k: v for k, v in self._counts.items() if v[0] >= window}
            seen_window, count = self._counts.get(key, (window, 0))
            if seen_window != window:
                count = 0
            if count >= limit:
                return (window + 1) * window_s - now
            self._counts[key] = (window, count + 1)
        return None


_counters = Counters()


def reset() -> None:
    """Forget this instance's counters (tests)."""
    global _counters
    _counters = Counters()


def _counters_for(settings: Any) -> Any:
    if getattr(settings, "redis_url", None):
        from .ratelimit import shared_counters

        # Redis failing mid-call counts this instance's way instead of letting the call through.
        return shared_counters(settings, fallback=_counters) or _counters
    return _counters


def check_request(settings: Any, client: str) -> None:
    """RequestsPerMinute, for every route the client calls."""
    policy = policy_for(settings, client)
    limit = policy.get("RequestsPerMinute") if policy else None
    if isinstance(limit, int):
        wait = _counters_for(settings).hit(f"rpm:{client}", 60, limit)
        if wait is not None:
            raise RateLimited(f"this client may make {limit} requests per minute", retry_after=wait)


def check_origin(settings: Any, client: str, origin: str | None) -> bool:
    """A browser key (one with `Origins`) is refused from any other origin. True when the
    response may carry CORS headers for `origin`."""
    policy = policy_for(settings, client)
    origins = policy.get("Origins") if policy else None
    if origin is None:
        return False
    if origins is None:
        return False  # a server key: no CORS headers, so a browser cannot read the answer
    if origin not in origins:
        raise Forbidden("this key may not be used from this web origin", field="Origin",
                        code="UnauthorizedOperation.OriginNotAllowed")
    return True


def check_send(settings: Any, client: str, params: dict, recipient_fields: list[tuple[str, list[str]]],
               per_recipient: bool = True) -> None:
    """Templates, senders, recipients per request and (for SendEmail) mails per recipient per hour."""
    policy = policy_for(settings, client)
    if not policy:
        return
    templates = policy.get("Templates")
    if templates is not None:
        allowed = {settings.templates.get(t, t) if isinstance(t, str) else t for t in templates}
        if params["Template"]["TemplateID"] not in allowed:
            raise Forbidden("this client may not use this template", field="Template",
                            code="UnauthorizedOperation.TemplateNotAllowed")
    senders = policy.get("Senders")
    if senders is not None:
        sender = bare_address(params["FromEmailAddress"])
        domain = "@" + sender.partition("@")[2]
        if sender not in {s.lower() for s in senders} and domain not in {s.lower() for s in senders}:
            raise Forbidden("this client may not send from this address", field="FromEmailAddress",
                            code="UnauthorizedOperation.SenderNotAllowed")
    most = policy.get("MaxRecipients")
    count = sum(len(addresses) for _, addresses in recipient_fields)
    if isinstance(most, int) and count > most:
        raise Forbidden(f"this client may send to at most {most} recipients per request",
                        field=recipient_fields[0][0], code="UnauthorizedOperation.TooManyRecipients")
    per_hour = policy.get("MailsPerRecipientPerHour")
    if isinstance(per_hour, int) and per_recipient:
        counters = _counters_for(settings)
        for name, addresses in recipient_fields:
            for index, address in enumerate(addresses):
                wait = counters.hit(f"rcpt:{client}:{bare_address(address)}", 3600, per_hour)
                if wait is not None:
                    raise RateLimited(f"{name}[{index}] has had {per_hour} mails from this client this hour",
                                      field=f"{name}[{index}]", code="FailedOperation.FrequencyLimit",
                                      retry_after=wait)
