"""Client policies: what each API key's client may call and send (the trust boundary).

An HTTP endpoint that sends mail from the user's domain is what spammers look for, so a key is
narrowed by its client's policy in the config file (`Clients`, keyed by the client name of
`SESMAIL_API_KEYS`), and held to it whichever route the mail would leave by:

    {"Clients": {"web": {"Scopes": ["send"], "Templates": ["welcome"],
      "Senders": ["noreply@shop.example", "@mail.shop.example"], "MaxRecipients": 1,
      "RequestsPerMinute": 60, "MailsPerRecipientPerHour": 3, "Origins": ["https://shop.example"]}}}

`Scopes` (required) names the routes: `send`, `batch`, `digest`, `stats`, `admin` (every route,
every client's messages and tasks). `Senders` bounds `FromEmailAddress` and `HeaderFrom`; `ReplyTo`
(default: its `Senders`; `"*"`: any) bounds `ReplyToAddresses`; `Headers` names the `SmtpHeaders`
it may set (default none); `Digests` the digests it may queue into and `Receivers` the recipient
lists made outside sesmail it may send to (default none; lists sesmail made for its own inline
recipients are always its own; an `admin` client: any). A client with no policy is a server-side
client and may do everything.

The checks are split in two. `check_*` are static (the payload against the policy) and run before
anything is stored, so a refusal leaves no trace. `count_*` count mails per recipient per hour (a
batch's inline recipients, or the addresses of its list, read back from SES) and run inside the
operation, after an Idempotency-Key's replay check: a replay is not counted again.
A refusal answers 403 `UnauthorizedOperation.*` naming the field and the rule; a rate answers 429
with Retry-After. Counters are per instance, or shared across instances through Redis when
`SESMAIL_REDIS_URL` is set.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from .addresses import bare_address
from .config import CLIENT_POLICY, SCOPES, Settings
from .errors import (
    ClientRateLimited,
    DigestNotAllowed,
    HeaderNotAllowed,
    OriginNotAllowed,
    ReceiverNotAllowed,
    RecipientRateLimited,
    ReplyToNotAllowed,
    ScopeNotAllowed,
    SenderNotAllowed,
    TemplateNotAllowed,
    TooManyRecipients,
)

if TYPE_CHECKING:
    from . import ratelimit

__all__ = ["KNOWN_RULES", "SCOPES", "Counters", "RateLimited", "check_batch", "check_digest_items", "check_origin",
           "check_request", "check_scope", "check_send", "count_batch", "count_send", "describe_access",
           "policy_for", "rate_address", "sees_everything"]

KNOWN_RULES = tuple(CLIENT_POLICY)
RateLimited = ClientRateLimited  # the name earlier releases exported


def policy_for(settings: Settings, client: str) -> dict | None:
    """The client's policy, or None for a server-side client (the file was checked at load)."""
    clients = settings.file.get("Clients") or {}
    return clients.get(client)


def _admin(policy: dict) -> bool:
    return "admin" in policy["Scopes"]


def sees_everything(settings: Settings, client: str) -> bool:
    """A client without a policy, or with `admin`: every client's messages and tasks."""
    policy = policy_for(settings, client)
    return policy is None or _admin(policy)


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


def _counters_for(settings: Settings) -> ratelimit.Counters:
    if settings.redis_url:
        from .ratelimit import shared_counters

        # Redis failing mid-call counts this instance's way instead of letting the call through.
        return shared_counters(settings, fallback=_counters) or _counters
    return _counters


# -- routes ------------------------------------------------------------------------------------
def check_scope(settings: Settings, client: str, scope: str) -> None:
    """A route needs its scope (or `admin`) from a client with a policy."""
    policy = policy_for(settings, client)
    if policy is not None and scope not in policy["Scopes"] and not _admin(policy):
        raise ScopeNotAllowed(f"this route needs the `{scope}` scope, which this key's client does not have",
                              field="Authorization")


def check_request(settings: Settings, client: str) -> None:
    """RequestsPerMinute, for every route the client calls."""
    policy = policy_for(settings, client)
    limit = policy.get("RequestsPerMinute") if policy else None
    if limit is not None:
        wait = _counters_for(settings).hit(f"rpm:{client}", 60, limit)
        if wait is not None:
            raise ClientRateLimited(f"this client may make {limit} requests per minute", retry_after=wait)


def check_origin(settings: Settings, client: str, origin: str | None) -> bool:
    """A browser key (one with `Origins`) is refused from any other origin. True when the
    response may carry CORS headers for `origin`."""
    policy = policy_for(settings, client)
    origins = policy.get("Origins") if policy else None
    if origin is None:
        return False
    if origins is None:
        return False  # a server key: no CORS headers, so a browser cannot read the answer
    if origin not in origins:
        raise OriginNotAllowed("this key may not be used from this web origin", field="Origin")
    return True


# -- static checks: before anything is stored ---------------------------------------------------
def _matches(address: str, allowed: Any) -> bool:
    """`address` (any form) is one of `allowed`'s addresses, or in one of its `@domain`s."""
    bare = bare_address(address)
    domain = "@" + bare.rpartition("@")[2]
    return any(entry.lower() in (bare, domain) for entry in allowed)


def _check_template(settings: Settings, policy: dict, template_id: int) -> None:
    templates = policy.get("Templates")
    if templates is not None and template_id not in {
            settings.templates.get(t) if isinstance(t, str) else t for t in templates}:
        raise TemplateNotAllowed("this client's policy (`Templates`) does not allow this template", field="Template")


def _check_sender(policy: dict, params: dict, fields: tuple[str, ...]) -> None:
    senders = policy.get("Senders")
    if senders is None:
        return
    for name in fields:
        if name in params and not _matches(params[name], senders):
            raise SenderNotAllowed(f"this client's policy (`Senders`) does not allow this {name}", field=name)


def _check_reply_to(policy: dict, params: dict) -> None:
    if "ReplyToAddresses" not in params:
        return
    allowed = policy.get("ReplyTo", policy.get("Senders"))
    if allowed is None or allowed == "*":
        return
    if not _matches(params["ReplyToAddresses"], allowed):
        rule = "`ReplyTo`" if "ReplyTo" in policy else "`Senders`, as it has no `ReplyTo`"
        raise ReplyToNotAllowed(f"this client's policy ({rule}) does not allow this reply-to address",
                                field="ReplyToAddresses")


def _check_headers(policy: dict, params: dict) -> None:
    if "SmtpHeaders" not in params:
        return
    allowed = policy.get("Headers")
    if allowed is None:
        if _admin(policy):
            return
        raise HeaderNotAllowed("this client may not set SmtpHeaders (its policy lists no `Headers`)",
                               field="SmtpHeaders")
    from .envelopes import loads

    raw = params["SmtpHeaders"]
    names = raw if isinstance(raw, dict) else loads(raw)
    permitted = {name.lower() for name in allowed}
    if any(name.lower() not in permitted for name in names):
        raise HeaderNotAllowed("SmtpHeaders sets a header this client's policy (`Headers`) does not list",
                               field="SmtpHeaders")


def _check_count(policy: dict, count: int, field: str, what: str) -> None:
    most = policy.get("MaxRecipients")
    if most is not None and count > most:
        raise TooManyRecipients(f"this client's policy (`MaxRecipients`) allows at most {most} recipients per"
                                f" request ({what})", field=field)


def check_send(settings: Settings, client: str, params: dict) -> None:
    """SendEmail against the policy: template, FromEmailAddress and HeaderFrom, ReplyToAddresses,
    SmtpHeaders, and To + Cc + Bcc against MaxRecipients."""
    policy = policy_for(settings, client)
    if policy is None:
        return
    _check_template(settings, policy, params["Template"]["TemplateID"])
    _check_sender(policy, params, ("FromEmailAddress", "HeaderFrom"))
    _check_reply_to(policy, params)
    _check_headers(policy, params)
    _check_count(policy, sum(len(params.get(name) or ()) for name in ("Destination", "Cc", "Bcc")), "Destination",
                 "Destination, Cc and Bcc together")


def check_batch(settings: Settings, client: str, params: dict, owns_list: Callable[[int], bool],
                list_size: Callable[[int], int | None]) -> None:
    """BatchSendEmail against the policy: template, sender, reply-to, and either the inline
    recipients or the recipient list (one it may use, whose size SES reports) against MaxRecipients.
    `owns_list(id)` says whether sesmail made that list for this client; `list_size(id)` asks SES."""
    policy = policy_for(settings, client)
    if policy is None:
        return
    _check_template(settings, policy, params["Template"]["TemplateID"])
    _check_sender(policy, params, ("FromEmailAddress",))
    _check_reply_to(policy, params)
    if "ReceiverId" not in params:
        _check_count(policy, len(params["Recipients"]), "Recipients", "inline recipients")
        return
    receiver_id = params["ReceiverId"]
    receivers = policy.get("Receivers")
    if not ((receivers is None and _admin(policy)) or receiver_id in (receivers or ()) or owns_list(receiver_id)):
        raise ReceiverNotAllowed("this client may send only to its own recipient lists and those its policy"
                                 " (`Receivers`) lists", field="ReceiverId")
    most = policy.get("MaxRecipients")
    if most is not None:
        size = list_size(receiver_id)
        if size is None:
            raise TooManyRecipients(f"this client's policy (`MaxRecipients`) allows at most {most} recipients per"
                                    " request, and SES did not report this list's size", field="ReceiverId")
        _check_count(policy, size, "ReceiverId", "the recipient list's size")


def check_digest_items(settings: Settings, client: str, items: list[tuple[str, str, str]]) -> None:
    """POST /digest/items against the policy: each item's digest in `Digests`, and the distinct
    addresses of the request against MaxRecipients. `items`: (field prefix, digest, email)."""
    policy = policy_for(settings, client)
    if policy is None:
        return
    digests = policy.get("Digests")
    most = policy.get("MaxRecipients")
    seen: set[str] = set()
    for where, digest, email in items:
        if not (digests is None and _admin(policy)) and digest not in (digests or ()):
            raise DigestNotAllowed("this client's policy (`Digests`) does not allow queueing into this digest",
                                   field=f"{where}Digest")
        seen.add(email.lower())
        if most is not None and len(seen) > most:
            raise TooManyRecipients(f"this client's policy (`MaxRecipients`) allows items for at most {most}"
                                    " distinct addresses per request", field=f"{where}Email")


# -- counting: inside the operation, after the replay check -------------------------------------
def rate_address(address: str) -> str:
    """The mailbox a per-recipient limit counts: lower-cased, a `+tag` taken off the local part
    (`Vic+1@x.example` and `vic+2@x.example` are one mailbox)."""
    local, _, domain = bare_address(address).rpartition("@")
    return f"{local.partition('+')[0]}@{domain}"


def _per_hour(settings: Settings, client: str) -> int | None:
    policy = policy_for(settings, client)
    return policy.get("MailsPerRecipientPerHour") if policy else None


def _hit(counters: ratelimit.Counters, client: str, address: str, limit: int) -> float | None:
    # Redis keeps a hash of this key, never the address (ratelimit.SharedCounters).
    return counters.hit(f"rcpt:{client}:{rate_address(address)}", 3600, limit)


def count_send(settings: Settings, client: str, fields: list[tuple[str, list[str]]]) -> None:
    """MailsPerRecipientPerHour for one SendEmail: 429 naming the first recipient over the limit."""
    limit = _per_hour(settings, client)
    if limit is None:
        return
    counters = _counters_for(settings)
    for name, addresses in fields:
        for index, address in enumerate(addresses):
            wait = _hit(counters, client, address, limit)
            if wait is not None:
                raise RecipientRateLimited(f"{name}[{index}] has had {limit} mails from this client this hour",
                                           field=f"{name}[{index}]", retry_after=wait)


def count_batch(settings: Settings, client: str, addresses: list[str]) -> dict[int, float]:
    """MailsPerRecipientPerHour for a batch's recipients: {index: seconds until it may be mailed
    again} for those over the limit; the others are counted."""
    limit = _per_hour(settings, client)
    if limit is None:
        return {}
    counters = _counters_for(settings)
    over = {}
    for index, address in enumerate(addresses):
        wait = _hit(counters, client, address, limit)
        if wait is not None:
            over[index] = wait
    return over


def limits_recipients(settings: Settings, client: str) -> bool:
    """Whether the client has a MailsPerRecipientPerHour to count."""
    return _per_hour(settings, client) is not None


# -- what make dev and make deploy print ---------------------------------------------------------
def _listing(values: Any, absent: str) -> str:
    if values is None:
        return absent
    return ", ".join(str(value) for value in values) if values else "none"


def describe_access(settings: Settings) -> list[str]:
    """One line per client (those of SESMAIL_API_KEYS and those with a policy): its effective access."""
    keys: dict[str, int] = {}
    for owner in settings.api_keys.values():
        keys[owner] = keys.get(owner, 0) + 1
    clients = settings.file.get("Clients") or {}
    lines = []
    for name in sorted(set(keys) | set(clients)):
        count = keys.get(name, 0)
        head = f"{name} ({count} key{'s' if count != 1 else ''})" if count else f"{name} (no key in SESMAIL_API_KEYS)"
        policy = clients.get(name)
        if policy is None:
            lines.append(f"{head}: full access (no policy)")
            continue
        admin = _admin(policy)
        reply_to = policy.get("ReplyTo")
        limits = [text for key, text in (("MaxRecipients", "recipients/request"),
                                          ("RequestsPerMinute", "requests/minute"),
                                          ("MailsPerRecipientPerHour", "mails/recipient/hour")) if key in policy
                  for text in [f"{policy[key]} {text}"]]
        parts = [
            f"scopes {_listing(policy['Scopes'], '')}",
            f"senders {_listing(policy.get('Senders'), 'any')}",
            f"templates {_listing(policy.get('Templates'), 'any')}",
            "reply-to " + ("any" if reply_to == "*" else _listing(reply_to, "its senders" if "Senders" in policy
                                                                   else "any")),
            f"headers {_listing(policy.get('Headers'), 'any' if admin else 'none')}",
            f"digests {_listing(policy.get('Digests'), 'any' if admin else 'none')}",
            f"receivers {_listing(policy.get('Receivers'), 'any' if admin else 'none')} (and its own lists)",
            f"limits {', '.join(limits) or 'none'}",
            f"origins {_listing(policy.get('Origins'), 'none (server key)')}",
        ]
        lines.append(f"{head}: " + "; ".join(parts))
    return lines
