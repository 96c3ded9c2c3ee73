"""The send function's routes: SendEmail with idempotency, message status, suppressions and
erasure (SPEC 3.3, 3.5)."""

from __future__ import annotations

import time
from datetime import datetime
from urllib.parse import unquote

from . import events as events_module
from . import idempotency, log, policy, rules
from .errors import Forbidden, InvalidInput, NotFound, OutcomeUnknown, StoreUnavailable
from .http import Call, Response
from .store import open_store

__all__ = ["add_suppression", "erase_address", "list_suppressions", "message_status", "remove_suppression",
           "resolve_recipient", "send_email"]

# RequestTime is whole seconds on Tencent's clock; ours may differ by a little.
CLOCK_SKEW_S = 2
STATUS_PAGE = 100  # GetSendEmailStatus's maximum Limit


def send_email(call: Call) -> Response:
    settings = call.settings
    key = call.header("idempotency-key")
    if key is not None:
        idempotency.check_key(key)
    payload = call.payload()
    params = rules.validate_send_email(payload, settings.default_sender, settings.templates)
    # Issue 6: TemplateData lacking a variable of its template is refused here, before SES, when
    # `make sync` recorded the template's variables (config file `TemplateVariables`).
    rules.check_template_variables(params, settings.template_variables)
    # --- SMTP transport hook (issue 6: SESMAIL_TRANSPORT=smtp, see sesmail.smtp) ---
    mail = None
    if settings.transport == "smtp":
        from . import smtp

        mail = smtp.prepare(settings, params)  # refuses what SMTP cannot carry; renders the template
    # --- end of the hook ---
    from .ses import client_for

    ses = client_for(settings)
    recipients = [*params["Destination"], *params.get("Cc", ()), *params.get("Bcc", ())]

    def operation(claim: idempotency.Claim | None = None) -> dict:
        # Inside the operation, after an Idempotency-Key's replay check: a replay answers as the
        # first request did, and is not counted again by a client's rate policy.
        if not call.trusted:
            policy.check_send(settings, call.client, params,
                              [(name, params.get(name) or []) for name in ("Destination", "Cc", "Bcc")])
        check_suppressions(settings, params)
        if mail is not None:  # SMTP hook: no SES MessageId; the Message-ID header stands for it
            mail.send(settings, call.deadline)
            # Logged without its domain part: a Message-ID reads like an address (SPEC 5: none in logs).
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

    ref = _ref(call.client, key) if key is not None else None

    def record(body: dict) -> None:
        now = time.time()
        open_store(settings.database_url).record_sent(
            body["MessageId"], call.client, rules.bare_address(params["FromEmailAddress"]),
            [rules.bare_address(address) for address in recipients], now, ref)

    if key is None:
        body = operation()
        try:
            record(body)
        except StoreUnavailable:
            # SES accepted the mail: the caller gets its MessageId regardless (SPEC 3.2).
            log.error("a sent message could not be recorded", MessageId=body["MessageId"])
        return Response(200, body)

    store = open_store(settings.database_url)
    attempt = {"Action": "SendEmail", "Sender": rules.bare_address(params["FromEmailAddress"]),
               "Destination": [rules.bare_address(address) for address in params["Destination"]]}
    if mail is not None:
        attempt["SmtpMessageId"] = mail.message_id  # SMTP hook: what a resolved doubt answers
    status, body, replayed = idempotency.run(
        store, call.client, key, idempotency.fingerprint(payload), attempt,
        call.deadline.limit_s, settings.idempotency_ttl, operation,
        lambda doubtful: _resolve_send(call, doubtful, ref), record)
    return Response(status, body, {"Idempotent-Replayed": "true"} if replayed else None)


_SUPPRESSED_CODES = {"all": "FailedOperation.EmailAddrInBlacklist",
                     "marketing": "FailedOperation.ReceiverHasUnsubscribed"}


def check_suppressions(settings, params: dict) -> None:
    """Refuse before SES when a recipient (To, Cc or Bcc) is suppressed: hard bounces and spam
    reports for every mail, unsubscribes for marketing mail (TriggerType 0, SES's default).
    One query; the refusal names the field, never the address. A store that cannot answer
    refuses the send (503): mailing an address that unsubscribed is worse than a retry."""
    fields = [(name, params.get(name) or ()) for name in ("Destination", "Cc", "Bcc")]
    found = open_store(settings.database_url).suppressions_for(
        [rules.bare_address(address) for _, addresses in fields for address in addresses],
        marketing=params.get("TriggerType", 0) != 1)
    if not found:
        return
    for name, addresses in fields:
        for index, address in enumerate(addresses):
            entry = found.get(rules.bare_address(address))
            if entry:
                code = _SUPPRESSED_CODES.get(entry["Scope"], _SUPPRESSED_CODES["all"])
                raise Forbidden(f"{name}[{index}] is on the suppression list ({entry['Reason']})",
                                field=f"{name}[{index}]", code=code)


def _ref(client: str, key: str) -> str:
    return f"{client}/{key}"  # client names hold no "/", so this cannot collide


def _resolve_send(call: Call, attempt: dict, ref: str | None) -> idempotency.Decision:
    """SPEC 5: was the in-doubt SendEmail sent? If its MessageId reached our sent log (only the
    record's completion failed), yes. Otherwise ask SES's status index for the attempt's date(s)
    and recipients: a row from our sender, inside the attempt's window, whose MessageId is not in
    our sent log, is that mail."""
    settings = call.settings
    store = open_store(settings.database_url)
    started, ended = float(attempt["Started"]), float(attempt["Ended"])
    logged = store.sent_for_ref(ref, started - CLOCK_SKEW_S) if ref else None
    if logged:
        return idempotency.Decision(idempotency.Decision.SENT, {"MessageId": logged})
    for recipient in attempt["Destination"]:
        row = _status_match(call, attempt["Sender"], recipient, started, ended)
        if row is not None:
            if row.get("SendStatus") not in (0, None):
                return idempotency.Decision(idempotency.Decision.NOT_SENT)
            # SMTP hook: an SMTP send is matched by sender, recipient and time only (SES's row has
            # SES's own MessageId, which SMTP never told us); it answers with its Message-ID.
            message_id = str(attempt.get("SmtpMessageId") or row["MessageId"])
            store.record_sent(message_id, call.client, attempt["Sender"], attempt["Destination"], time.time(), ref)
            return idempotency.Decision(idempotency.Decision.SENT, {"MessageId": message_id})
    waited = time.time() - ended
    if waited >= settings.settle_seconds:
        return idempotency.Decision(idempotency.Decision.NOT_SENT)
    return idempotency.Decision(idempotency.Decision.UNKNOWN, retry_after=settings.settle_seconds - waited)


def _status_match(call: Call, sender: str, recipient: str, started: float, ended: float) -> dict | None:
    """The earliest GetSendEmailStatus row for `recipient` from `sender` inside [started, ended]
    (Beijing date(s) of that window, every page) whose MessageId is not in our sent log."""
    from .ses import client_for

    ses = client_for(call.settings)
    low, high = int(started) - CLOCK_SKEW_S, int(ended) + 1 + CLOCK_SKEW_S
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
    candidates = sorted((row for row in rows if row.get("MessageId") and row["MessageId"] not in known),
                        key=lambda row: row["RequestTime"])
    return candidates[0] if candidates else None


def resolve_recipient(call: Call, sender: str, recipient: str, started: float, ended: float) -> str | bool | None:
    """For one recipient's in-doubt SendEmail (a digest's): its MessageId if SES sent it, False if
    it provably did not (refused, or no row once settled), None while SES may still be settling."""
    row = _status_match(call, rules.bare_address(sender), recipient, started, ended)
    if row is not None:
        return str(row["MessageId"]) if row.get("SendStatus") in (0, None) else False
    return False if time.time() - ended >= call.settings.settle_seconds else None


def message_status(call: Call) -> Response:
    message_id = call.params["MessageId"]
    store = open_store(call.settings.database_url)
    if policy.policy_for(call.settings, call.client) and store.sent_owner(message_id) != call.client:
        # A key with a policy sees only its own client's mail (one without sees everything).
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
    return Response(200, {"Suppressions": rows, "Offset": offset, "Limit": limit})


def add_suppression(call: Call) -> Response:
    """PUT /suppressions/<address> with an optional {"Scope": "all"|"marketing", "Reason"}."""
    address = _address(call)
    body = call.payload() if call.request and call.request.body else {}
    if not isinstance(body, dict) or set(body) - {"Scope", "Reason"}:
        raise InvalidInput("the body may only hold Scope and Reason", code="UnknownParameter")
    scope = body.get("Scope", "all")
    if scope not in _SCOPES:
        raise InvalidInput("Scope must be \"all\" or \"marketing\"", field="Scope", code="InvalidParameterValue")
    reason = body.get("Reason", "manual")
    if not isinstance(reason, str) or not 1 <= len(reason) <= 64 or not reason.isprintable():
        raise InvalidInput("Reason must be 1 to 64 printable characters", field="Reason",
                           code="InvalidParameterValue")
    open_store(call.settings.database_url).suppress(address, scope, reason, "api", time.time())
    return Response(200, {"Email": address, "Scope": scope, "Reason": reason})


def remove_suppression(call: Call) -> Response:
    removed = open_store(call.settings.database_url).unsuppress(_address(call))
    if not removed:
        raise NotFound("this address is not suppressed", field="Address")
    return Response(200, {"Removed": removed})


def erase_address(call: Call) -> Response:
    """DELETE /addresses/<address>: everything stored about an address (PIPL, GDPR)."""
    address = _address(call)
    counts = open_store(call.settings.database_url).erase_address(address)
    log.note(Erased=counts)
    return Response(200, {"Erased": counts})
