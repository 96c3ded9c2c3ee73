"""The send function's routes: SendEmail with idempotency, message status, suppressions and
erasure (docs/api.md#send).

`send_email` reads top to bottom: validate the payload, apply the client's policy, let the
transport refuse what it cannot carry; then, through the Idempotency-Key's record when there is
one, one `_Attempt`: the recipients' leases and suppressions, the transport's call, the sent log.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING, Literal
from urllib.parse import unquote

from . import config, guard, leases, log, policy, rules, topics, validation
from . import events as events_module
from .addresses import address_hash, bare_address
from .errors import Forbidden, InvalidInput, NotFound, StoreUnavailable
from .http import Call, Response
from .store import SentLog, Store, SuppressionStore
from .transport import Outgoing, Transport, doubt_answer, transport_for

if TYPE_CHECKING:
    from .config import Settings
    from .idempotency import Claim, Decision

__all__ = ["add_suppression", "erase_address", "list_suppressions", "message_status", "remove_suppression",
           "resolve_recipient", "send_email"]

STATUS_PAGE = 100  # GetSendEmailStatus's maximum Limit


def send_email(call: Call) -> Response:
    settings = call.settings
    key = call.header("idempotency-key")
    if key is not None:
        from . import idempotency  # only a keyed send pays for it

        idempotency.check_key(key)
    payload = call.payload()
    params = rules.validate_send_email(payload, settings.default_sender, settings.templates)
    # TemplateData lacking a variable of its template is refused here, before SES, when `make sync`
    # recorded the template's variables (config file `TemplateVariables`).
    rules.check_template_variables(params, settings.template_variables)
    if not call.trusted:
        policy.check_send(settings, call.client, params)  # the client's policy, before anything is stored
    # Topic and one-click unsubscribe (docs/topics.md): what the suppression list is asked.
    audience = topics.apply_to_send(settings, params)
    transport = transport_for(settings)  # SES's API, or its SMTP interface (SESMAIL_TRANSPORT)
    mail = transport.prepare(params)  # refuses what the transport cannot carry (SMTP: Cc, Bcc …)
    attempt = _Attempt(call, call.store, transport, mail, key)
    attempt.audience = audience
    if key is None:
        return Response(200, attempt.record(attempt.send()))

    idem = idempotency.Idempotency(attempt.store, call.client, key, call.deadline.limit_s, settings.idempotency_ttl)
    started = idem.begin(idempotency.fingerprint(payload), attempt.described(), attempt.resolve)
    if isinstance(started, idempotency.Record):  # answered before (or a doubt resolved as sent)
        return Response(started.status or 200, started.response or {}, {"Idempotent-Replayed": "true"})
    with idem.running(started):  # an unknown outcome leaves the key in doubt; a refusal frees it
        body = attempt.send(started)
    attempt.record(body)
    idem.settle(started, body)
    return Response(200, body)


class _Attempt:
    """One SendEmail: counted against the client's rate policy, its recipients leased and looked
    up on the suppression list (one statement on PostgreSQL), sent by the transport, then written
    to the sent log with the leases given back (one statement on PostgreSQL)."""

    def __init__(self, call: Call, store: Store, transport: Transport, mail: Outgoing, key: str | None) -> None:
        params = mail.params
        self.call, self.store, self.transport, self.mail = call, store, transport, mail
        self.recipients = [*params["Destination"], *params.get("Cc", ()), *params.get("Bcc", ())]
        self.bare_recipients = [bare_address(address) for address in self.recipients]  # leases and sent log
        self.sender = bare_address(params["FromEmailAddress"])
        self.destination = [bare_address(address) for address in params["Destination"]]
        self.ref = _ref(call.client, key) if key is not None else None
        self.lease_keys = leases.keys_for(call.settings.erasure_key, "send", self.sender, self.destination)
        self.owner = leases.owner_for(self.ref)
        self.lease: leases.Lease | None = None
        # Marketing mail (TriggerType 0) counts unsubscribes too, a topic's its own (sesmail.topics.scope_for).
        self.audience: bool | str = params.get("TriggerType", 0) != 1

    def described(self) -> dict:
        """What the idempotency record keeps of this attempt to resolve a doubt about it."""
        return {"Action": "SendEmail", "Sender": self.sender, "Destination": self.destination,
                "TemplateID": params_template(self.mail.params), **self.mail.remembered()}

    def send(self, claim: Claim | None = None) -> dict:
        call, settings, params = self.call, self.call.settings, self.mail.params
        # After an Idempotency-Key's replay check: a replay answers as the first request did, and
        # is not counted again by a client's rate policy.
        if not call.trusted:
            policy.count_send(settings, call.client,
                              [(name, params.get(name) or []) for name in ("Destination", "Cc", "Bcc")])
        bare = sorted(set(self.bare_recipients))
        # Marketing mail (a topic's too) asks the reputation guard as well, in the same statement
        # (sesmail.guard).
        admission = (bare, self.audience, _hashes(settings, bare),
                     guard.probe(settings, self.sender, bool(self.audience)))
        lease = leases.acquire(self.store, self.lease_keys, self.owner, call.deadline.limit_s, call.deadline,
                               float(claim.attempt["Started"]) if claim is not None else None, admission)
        if lease.suppressed:
            lease.release()
            refuse_suppressed(params, lease.suppressed)
        if lease.guard is not None:
            try:
                guard.enforce(settings, self.store, guard.domain_of(self.sender), lease.guard)
            except BaseException:
                lease.release()  # refused before SES: nothing was sent
                raise
        self.lease = lease
        with lease.calling(claim):
            message_id = self.transport.send(self.mail, call.deadline)
        log.note(To=[log.mask(address) for address in params["Destination"]], Recipients=len(self.recipients))
        return {"MessageId": message_id}

    def record(self, body: dict) -> dict:
        """The MessageId into the sent log, the leases given back with it. SES accepted the mail:
        the caller gets its MessageId even when the store cannot take it."""
        try:
            self.store.record_sent(body["MessageId"], self.call.client, self.sender,
                                   self.bare_recipients, time.time(), self.ref,
                                   release=self.lease.release_with if self.lease is not None else None,
                                   template_id=params_template(self.mail.params))
        except StoreUnavailable:
            log.error("a sent message could not be recorded", MessageId=body["MessageId"])
        return body

    def resolve(self, described: dict) -> Decision:
        return _resolve_send(self.call, self.store, described, self.ref)


def params_template(params: dict) -> int | None:
    """A SendEmail's TemplateID (what its statistics are filed under)."""
    template = params.get("Template")
    return template.get("TemplateID") if isinstance(template, dict) else None


_SUPPRESSED_CODES = {"all": "FailedOperation.EmailAddrInBlacklist",
                     "marketing": "FailedOperation.ReceiverHasUnsubscribed",
                     "topic": "FailedOperation.ReceiverHasUnsubscribed"}


def refuse_suppressed(params: dict, found: dict[str, dict]) -> None:
    """Refuse before SES when a recipient (To, Cc or Bcc) is suppressed: hard bounces and spam
    reports for every mail, unsubscribes for marketing mail (TriggerType 0, SES's default). The
    refusal names the field, never the address or why. (A store that cannot answer the lookup
    refuses the send with 503: mailing an address that unsubscribed is worse than a retry.)"""
    for name in ("Destination", "Cc", "Bcc"):
        for index, address in enumerate(params.get(name) or ()):
            entry = found.get(bare_address(address))
            if entry:
                # Never why (a bounce, a complaint): that is the recipient's business, not the caller's.
                code = _SUPPRESSED_CODES.get(entry["Scope"].partition(":")[0], _SUPPRESSED_CODES["all"])  # topic:<name>
                raise Forbidden(f"{name}[{index}] is on the suppression list", field=f"{name}[{index}]", code=code)


def _hashes(settings: Settings, bare: list[str]) -> dict[str, str]:
    """Each address's erasure hash: an erased address keeps its suppressions under it."""
    return {address: address_hash(settings.erasure_key, address) for address in bare}


def suppressed(settings: Settings, store: SuppressionStore, addresses: list[str],
               marketing: bool | str) -> dict[str, dict]:
    """Which of these addresses may not be mailed ({bare address: {"Scope", "Reason"}}), looked up
    as they are and as an erasure keeps them (under a keyed hash), in one query."""
    bare = sorted({bare_address(address) for address in addresses})
    return store.suppressions_for(bare, marketing, hashes=_hashes(settings, bare))


def _ref(client: str, key: str) -> str:
    return f"{client}/{key}"  # client names hold no "/", so this cannot collide


def _resolve_send(call: Call, store: SentLog, attempt: dict, ref: str | None) -> Decision:
    """Was the in-doubt SendEmail sent? If its MessageId reached our sent log (only the record's
    completion failed), yes. Otherwise SES's status index is asked for the attempt's date(s) and
    recipients: a row from our sender, inside the attempt's window, whose MessageId is not in our
    sent log, is that mail — the recipient leases guarantee no other attempt of ours shares the
    window (docs/reliability.md#doubt)."""
    from .idempotency import Decision

    settings = call.settings
    started, ended = float(attempt["Started"]), float(attempt["Ended"])
    logged = store.sent_for_ref(ref, started - leases.CLOCK_SKEW_S) if ref else None
    if logged:
        return Decision(Decision.SENT, {"MessageId": logged})
    for recipient in attempt["Destination"]:
        for row in _status_rows(call, store, attempt["Sender"], recipient, started, ended):
            if row.get("SendStatus") not in (0, None):
                return Decision(Decision.NOT_SENT)
            # Matched by sender, recipient and time only; a mail whose id was chosen before sending
            # (SMTP's Message-ID, which SES's row does not carry) answers with that id.
            message_id = doubt_answer(attempt, str(row["MessageId"]))
            if _adopt(store, message_id, call.client, attempt["Sender"], attempt["Destination"], ref,
                      attempt.get("TemplateID")):
                return Decision(Decision.SENT, {"MessageId": message_id})
    waited = time.time() - ended
    if waited >= settings.settle_seconds:
        return Decision(Decision.NOT_SENT)
    return Decision(Decision.UNKNOWN, retry_after=settings.settle_seconds - waited)


def _adopt(store: SentLog, message_id: str, client: str, sender: str, recipients: list[str], ref: str | None,
           template_id: int | None = None) -> bool:
    """Claim a status row's MessageId for this attempt: an insert-if-absent into the sent log, so
    two resolvers can never both adopt one mail. True when it is ours (now, or already)."""
    if store.record_sent(message_id, client, sender, recipients, time.time(), ref, template_id=template_id):
        return True
    return ref is not None and store.sent_ref(message_id) == ref


def _status_rows(call: Call, store: SentLog, sender: str, recipient: str, started: float,
                 ended: float) -> list[dict]:
    """GetSendEmailStatus rows for `recipient` from `sender` inside [started, ended] (the Beijing
    date(s) of that window, every page) whose MessageId is not in our sent log, earliest first.
    Asked of SES's API whichever transport sent the mail."""
    from .ses import client_for

    ses = client_for(call.settings)
    low, high = int(started) - leases.CLOCK_SKEW_S, int(ended) + 1 + leases.CLOCK_SKEW_S
    dates = sorted({datetime.fromtimestamp(t, rules.BEIJING).strftime("%Y-%m-%d") for t in (low, high)})
    rows: list[dict] = []
    for date in dates:
        offset = 0
        while True:
            page = ses.call("GetSendEmailStatus", {"RequestDate": date, "ToEmailAddress": recipient,
                                                   "Offset": offset, "Limit": STATUS_PAGE}, call.deadline)
            found = page.get("EmailStatusList") or []
            rows.extend(row for row in found if isinstance(row, dict)
                        and bare_address(str(row.get("FromEmailAddress") or "")) == sender
                        and isinstance(row.get("RequestTime"), int) and low <= row["RequestTime"] <= high)
            if len(found) < STATUS_PAGE:
                break
            offset += STATUS_PAGE
    known = store.sent_message_ids([str(row.get("MessageId")) for row in rows])
    return sorted((row for row in rows if row.get("MessageId") and row["MessageId"] not in known),
                  key=lambda row: row["RequestTime"])


def resolve_recipient(call: Call, sender: str, recipient: str, started: float, ended: float,
                      ref: str) -> str | Literal[False] | None:
    """For one recipient's in-doubt SendEmail (a digest's, recorded under `ref`): its MessageId if
    SES sent it (logged under `ref` already, or adopted now), False if it provably did not
    (refused, or no row once settled), None while SES may still be settling."""
    store = call.store
    logged = store.sent_for_ref(ref, started - leases.CLOCK_SKEW_S)
    if logged:
        return logged  # sent and logged; only marking its items failed
    for row in _status_rows(call, store, bare_address(sender), recipient, started, ended):
        if row.get("SendStatus") not in (0, None):
            return False
        if _adopt(store, str(row["MessageId"]), config.DIGEST_CLIENT, bare_address(sender), [recipient], ref):
            return str(row["MessageId"])
    return False if time.time() - ended >= call.settings.settle_seconds else None


def message_status(call: Call) -> Response:
    message_id = call.params["MessageId"]
    store = call.store
    if not policy.sees_everything(call.settings, call.client) and store.sent_owner(message_id) != call.client:
        # A key with a policy sees only its own client's mail (one without, or with `admin`, all).
        raise NotFound("nothing is known about this MessageId", field="MessageId")
    found = store.message_events(message_id)
    if not found and not store.sent_message_ids([message_id]):
        raise NotFound("nothing is known about this MessageId", field="MessageId")
    return Response(200, {"MessageId": message_id, "State": events_module.state_of(found), "Events": found})


_ADDRESS = validation.Address("address", "InvalidParameterValue.ReceiverEmailInvalid").compile()
_SCOPES = ("all", "marketing")


def _address(call: Call) -> str:
    return _ADDRESS(unquote(call.params["Address"]), "Address").lower()


def list_suppressions(call: Call) -> Response:
    query = call.request.query if call.request else {}
    offset = validation.Int("Offset", 0, 2**31 - 1).compile()(query.get("Offset", 0), "Offset")
    limit = validation.Int("Limit", 1, 100, "FailedOperation.InvalidLimit").compile()(query.get("Limit", 100), "Limit")
    rows = call.store.list_suppressions(offset, limit)
    for row in rows:  # a topic unsubscribe (docs/topics.md): Scope "topic" and its Topic
        if row["Scope"].startswith(topics.TOPIC_SCOPE):
            row.update(Scope="topic", Topic=topics.topic_of(row["Scope"]))
    return Response(200, {"Suppressions": rows, "Offset": offset, "Limit": limit})


def add_suppression(call: Call) -> Response:
    """PUT /suppressions/<address> with an optional {"Scope": "all"|"marketing", "Reason"}, or
    {"Topic": "<name>"} for one topic's marketing mail (docs/topics.md)."""
    address = _address(call)
    body = call.payload() if call.request and call.request.body else {}
    if not isinstance(body, dict) or set(body) - {"Scope", "Reason", "Topic"}:
        raise InvalidInput("the body may only hold Scope, Reason and Topic", code="UnknownParameter")
    scope = body.get("Scope", "all" if "Topic" not in body else "topic")
    if "Topic" in body:
        if scope != "topic":
            raise InvalidInput("Scope must be \"topic\" (or absent) with a Topic", field="Scope",
                               code="InvalidParameterValue")
        scope = topics.topic_scope(topics.check_topic(call.settings, body["Topic"]))
    elif scope not in _SCOPES:
        raise InvalidInput("Scope must be \"all\" or \"marketing\"", field="Scope", code="InvalidParameterValue")
    reason = body.get("Reason", "manual")
    if not isinstance(reason, str) or not 1 <= len(reason) <= 64 or not reason.isprintable():
        raise InvalidInput("Reason must be 1 to 64 printable characters", field="Reason",
                           code="InvalidParameterValue")
    call.store.suppress(address, scope, reason, "api", time.time())
    topic = topics.topic_of(scope)
    return Response(200, dict({"Email": address, "Scope": "topic" if topic else scope, "Reason": reason},
                              **({"Topic": topic} if topic else {})))


def remove_suppression(call: Call) -> Response:
    address = _address(call)
    topic = (call.request.query if call.request else {}).get("Topic")
    hashed = address_hash(call.settings.erasure_key, address)
    if topic is not None:  # ?Topic=<name>: only that topic's unsubscribe is lifted (docs/topics.md)
        removed = call.store.unsuppress_scopes(address, hashed,
                                               [topics.topic_scope(topics.check_topic(call.settings, topic))])
    else:
        # An erased address's entries (kept under its hash) are lifted with it.
        removed = call.store.unsuppress(address, hashed)
    if not removed:
        raise NotFound("this address is not suppressed", field="Address")
    return Response(200, {"Removed": removed})


def erase_address(call: Call) -> Response:
    """DELETE /addresses/<address>: everything stored about an address (PIPL, GDPR), but its
    suppressions, which are kept under a keyed hash of it: erasure must not make it mailable again."""
    address = _address(call)
    counts = call.store.erase_address(address, address_hash(call.settings.erasure_key, address))
    kept = counts.pop("SuppressionsKept")
    log.note(Erased=counts, SuppressionsKept=kept)
    return Response(200, {"Erased": counts, "SuppressionsKept": kept})
