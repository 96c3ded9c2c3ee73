"""The send function's routes: SendEmail with idempotency, message status, suppressions and
erasure (README.md#the-send-function)."""

from __future__ import annotations

import time
from datetime import datetime
from urllib.parse import unquote

from . import config, idempotency, leases, log, policy, rules, topics
from . import events as events_module
from .errors import Forbidden, InvalidInput, NotFound, OutcomeUnknown, StoreUnavailable
from .http import Call, Response
from .store import open_store

__all__ = ["add_suppression", "erase_address", "list_suppressions", "message_status", "remove_suppression",
           "resolve_recipient", "send_email"]

STATUS_PAGE = 100  # GetSendEmailStatus's maximum Limit


def send_email(call: Call) -> Response:
    settings = call.settings
    key = call.header("idempotency-key")
    if key is not None:
        idempotency.check_key(key)
    payload = call.payload()
    params = rules.validate_send_email(payload, settings.default_sender, settings.templates)
    # TemplateData lacking a variable of its template is refused here, before SES, when `make sync`
    # recorded the template's variables (config file `TemplateVariables`).
    rules.check_template_variables(params, settings.template_variables)
    if not call.trusted:
        policy.check_send(settings, call.client, params)  # the client's policy, before anything is stored
    # Topic and one-click unsubscribe (docs/topics.md): what the suppression list is asked.
    marketing = topics.apply_to_send(settings, params)
    # SESMAIL_TRANSPORT=smtp: the same request through SES's SMTP service (sesmail.smtp).
    mail = None
    if settings.transport == "smtp":
        from . import smtp

        mail = smtp.prepare(settings, params)  # refuses what SMTP cannot carry; renders the template
    from .ses import client_for

    ses = client_for(settings)
    store = open_store(settings.database_url)
    recipients = [*params["Destination"], *params.get("Cc", ()), *params.get("Bcc", ())]
    sender = rules.bare_address(params["FromEmailAddress"])
    destination = [rules.bare_address(address) for address in params["Destination"]]
    ref = _ref(call.client, key) if key is not None else None
    lease_keys = leases.keys_for(settings.erasure_key, "send", sender, destination)
    owner = leases.owner_for(ref)
    held: list[leases.Lease] = []

    def operation(claim: idempotency.Claim | None = None) -> dict:
        # Inside the operation, after an Idempotency-Key's replay check: a replay answers as the
        # first request did, and is not counted again by a client's rate policy.
        if not call.trusted:
            policy.count_send(settings, call.client,
                              [(name, params.get(name) or []) for name in ("Destination", "Cc", "Bcc")])
        # The suppression list and the recipients' leases, asked together (one statement on PostgreSQL).
        bare = sorted({rules.bare_address(address) for address in recipients})
        lease = leases.acquire(store, lease_keys, owner, call.deadline.limit_s, call.deadline,
                               float(claim.attempt["Started"]) if claim is not None else None,
                               (bare, marketing, _hashes(settings, bare)))
        if lease.suppressed:
            lease.release()
            refuse_suppressed(params, lease.suppressed)
        held.append(lease)
        with lease.calling(claim):
            if mail is not None:  # no SES MessageId over SMTP: the Message-ID header stands for it
                mail.send(settings, call.deadline)
                # Logged without its domain part: a Message-ID reads like an address.
                log.note(SmtpMessageId=mail.message_id.partition("@")[0], Transport="smtp",
                         To=[log.mask(address) for address in params["Destination"]], Recipients=len(recipients))
                return {"MessageId": mail.message_id}
            reply = ses.call("SendEmail", params, call.deadline)
            message_id = reply.get("MessageId")
            if not isinstance(message_id, str) or not message_id:
                # The SDK's Content-Type trap: an error reply it did not read looks like a success.
                raise OutcomeUnknown("SES SendEmail answered without a MessageId; the outcome is unknown")
        log.note(MessageId=message_id, SesRequestId=reply.get("RequestId"),
                 To=[log.mask(address) for address in params["Destination"]], Recipients=len(recipients))
        return {"MessageId": message_id}

    def record(body: dict) -> None:
        # The answer recorded and the leases given back in one statement (on PostgreSQL).
        store.record_sent(body["MessageId"], call.client, sender, [rules.bare_address(a) for a in recipients],
                          time.time(), ref, release=held[-1].release_with if held else None)

    if key is None:
        body = operation()
        try:
            record(body)
        except StoreUnavailable:
            # SES accepted the mail: the caller gets its MessageId regardless.
            log.error("a sent message could not be recorded", MessageId=body["MessageId"])
        return Response(200, body)

    attempt = {"Action": "SendEmail", "Sender": sender, "Destination": destination}
    if mail is not None:
        attempt["SmtpMessageId"] = mail.message_id  # what a resolved doubt answers
    status, body, replayed = idempotency.run(
        store, call.client, key, idempotency.fingerprint(payload), attempt,
        call.deadline.limit_s, settings.idempotency_ttl, operation,
        lambda doubtful: _resolve_send(call, doubtful, ref), record)
    return Response(status, body, {"Idempotent-Replayed": "true"} if replayed else None)


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
            entry = found.get(rules.bare_address(address))
            if entry:
                # Never why (a bounce, a complaint): that is the recipient's business, not the caller's.
                code = _SUPPRESSED_CODES.get(entry["Scope"].partition(":")[0], _SUPPRESSED_CODES["all"])  # topic:<name>
                raise Forbidden(f"{name}[{index}] is on the suppression list", field=f"{name}[{index}]", code=code)


def _hashes(settings, bare: list[str]) -> dict[str, str]:
    """Each address's erasure hash: an erased address keeps its suppressions under it."""
    return {address: rules.address_hash(settings.erasure_key, address) for address in bare}


def suppressed(settings, store, addresses: list[str], marketing: bool | str) -> dict[str, dict]:
    """Which of these addresses may not be mailed ({bare address: {"Scope", "Reason"}}), looked up
    as they are and as an erasure keeps them (under a keyed hash), in one query."""
    bare = sorted({rules.bare_address(address) for address in addresses})
    return store.suppressions_for(bare, marketing, hashes=_hashes(settings, bare))


def _ref(client: str, key: str) -> str:
    return f"{client}/{key}"  # client names hold no "/", so this cannot collide


def _resolve_send(call: Call, attempt: dict, ref: str | None) -> idempotency.Decision:
    """Was the in-doubt SendEmail sent? If its MessageId reached our sent log (only the record's
    completion failed), yes. Otherwise SES's status index is asked for the attempt's date(s) and
    recipients: a row from our sender, inside the attempt's window, whose MessageId is not in our
    sent log, is that mail — the recipient leases guarantee no other attempt of ours shares the
    window (README.md#failure-model)."""
    settings = call.settings
    store = open_store(settings.database_url)
    started, ended = float(attempt["Started"]), float(attempt["Ended"])
    logged = store.sent_for_ref(ref, started - leases.CLOCK_SKEW_S) if ref else None
    if logged:
        return idempotency.Decision(idempotency.Decision.SENT, {"MessageId": logged})
    for recipient in attempt["Destination"]:
        for row in _status_rows(call, attempt["Sender"], recipient, started, ended):
            if row.get("SendStatus") not in (0, None):
                return idempotency.Decision(idempotency.Decision.NOT_SENT)
            # Over SMTP the row carries SES's own MessageId, which SMTP never told us: matched by
            # sender, recipient and time only, it answers with the mail's Message-ID.
            message_id = str(attempt.get("SmtpMessageId") or row["MessageId"])
            if _adopt(store, message_id, call.client, attempt["Sender"], attempt["Destination"], ref):
                return idempotency.Decision(idempotency.Decision.SENT, {"MessageId": message_id})
    waited = time.time() - ended
    if waited >= settings.settle_seconds:
        return idempotency.Decision(idempotency.Decision.NOT_SENT)
    return idempotency.Decision(idempotency.Decision.UNKNOWN, retry_after=settings.settle_seconds - waited)


def _adopt(store, message_id: str, client: str, sender: str, recipients: list[str], ref: str | None) -> bool:
    """Claim a status row's MessageId for this attempt: an insert-if-absent into the sent log, so
    two resolvers can never both adopt one mail. True when it is ours (now, or already)."""
    if store.record_sent(message_id, client, sender, recipients, time.time(), ref):
        return True
    return ref is not None and store.sent_ref(message_id) == ref


def _status_rows(call: Call, sender: str, recipient: str, started: float, ended: float) -> list[dict]:
    """GetSendEmailStatus rows for `recipient` from `sender` inside [started, ended] (the Beijing
    date(s) of that window, every page) whose MessageId is not in our sent log, earliest first."""
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
                        and rules.bare_address(str(row.get("FromEmailAddress") or "")) == sender
                        and isinstance(row.get("RequestTime"), int) and low <= row["RequestTime"] <= high)
            if len(found) < STATUS_PAGE:
                break
            offset += STATUS_PAGE
    known = open_store(call.settings.database_url).sent_message_ids([str(row.get("MessageId")) for row in rows])
    return sorted((row for row in rows if row.get("MessageId") and row["MessageId"] not in known),
                  key=lambda row: row["RequestTime"])


def resolve_recipient(call: Call, sender: str, recipient: str, started: float, ended: float,
                      ref: str) -> str | bool | None:
    """For one recipient's in-doubt SendEmail (a digest's, recorded under `ref`): its MessageId if
    SES sent it (logged under `ref` already, or adopted now), False if it provably did not
    (refused, or no row once settled), None while SES may still be settling."""
    store = open_store(call.settings.database_url)
    logged = store.sent_for_ref(ref, started - leases.CLOCK_SKEW_S)
    if logged:
        return logged  # sent and logged; only marking its items failed
    for row in _status_rows(call, rules.bare_address(sender), recipient, started, ended):
        if row.get("SendStatus") not in (0, None):
            return False
        if _adopt(store, str(row["MessageId"]), config.DIGEST_CLIENT, rules.bare_address(sender), [recipient], ref):
            return str(row["MessageId"])
    return False if time.time() - ended >= call.settings.settle_seconds else None


def message_status(call: Call) -> Response:
    message_id = call.params["MessageId"]
    store = open_store(call.settings.database_url)
    if not policy.sees_everything(call.settings, call.client) and store.sent_owner(message_id) != call.client:
        # A key with a policy sees only its own client's mail (one without, or with `admin`, all).
        raise NotFound("nothing is known about this MessageId", field="MessageId")
    found = store.message_events(message_id)
    if not found and not store.sent_message_ids([message_id]):
        raise NotFound("nothing is known about this MessageId", field="MessageId")
    return Response(200, {"MessageId": message_id, "State": events_module.state_of(found), "Events": found})


_ADDRESS = rules.Address("address", "InvalidParameterValue.ReceiverEmailInvalid").compile()
_SCOPES = ("all", "marketing")


def _address(call: Call) -> str:
    return _ADDRESS(unquote(call.params["Address"]), "Address").lower()


def list_suppressions(call: Call) -> Response:
    query = call.request.query if call.request else {}
    offset = rules.Int("Offset", 0, 2**31 - 1).compile()(query.get("Offset", 0), "Offset")
    limit = rules.Int("Limit", 1, 100, "FailedOperation.InvalidLimit").compile()(query.get("Limit", 100), "Limit")
    rows = open_store(call.settings.database_url).list_suppressions(offset, limit)
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
    open_store(call.settings.database_url).suppress(address, scope, reason, "api", time.time())
    topic = topics.topic_of(scope)
    return Response(200, dict({"Email": address, "Scope": "topic" if topic else scope, "Reason": reason},
                              **({"Topic": topic} if topic else {})))


def remove_suppression(call: Call) -> Response:
    address = _address(call)
    topic = (call.request.query if call.request else {}).get("Topic")
    store = open_store(call.settings.database_url)
    hashed = rules.address_hash(call.settings.erasure_key, address)
    if topic is not None:  # ?Topic=<name>: only that topic's unsubscribe is lifted (docs/topics.md)
        removed = store.unsuppress_scopes(address, hashed, [topics.topic_scope(topics.check_topic(call.settings,
                                                                                                  topic))])
    else:
        # An erased address's entries (kept under its hash) are lifted with it.
        removed = store.unsuppress(address, hashed)
    if not removed:
        raise NotFound("this address is not suppressed", field="Address")
    return Response(200, {"Removed": removed})


def erase_address(call: Call) -> Response:
    """DELETE /addresses/<address>: everything stored about an address (PIPL, GDPR), but its
    suppressions, which are kept under a keyed hash of it: erasure must not make it mailable again."""
    address = _address(call)
    counts = open_store(call.settings.database_url).erase_address(
        address, rules.address_hash(call.settings.erasure_key, address))
    kept = counts.pop("SuppressionsKept")
    log.note(Erased=counts, SuppressionsKept=kept)
    return Response(200, {"Erased": counts, "SuppressionsKept": kept})
