"""The send function's routes: SendEmail with idempotency, and message status (SPEC 3.3)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from . import idempotency, log, rules
from .errors import NotFound, OutcomeUnknown, StoreUnavailable
from .http import Call, Response
from .store import open_store

__all__ = ["message_status", "send_email"]

# SES's status index is keyed by the Beijing date of the request (GetSendEmailStatus.RequestDate).
BEIJING = timezone(timedelta(hours=8))
# RequestTime is whole seconds on Tencent's clock; ours may differ by a little.
CLOCK_SKEW_S = 2
STATUS_PAGE = 100  # GetSendEmailStatus's maximum Limit


def _bare(address: str) -> str:
    return address.rpartition("<")[2].rstrip(">").strip().lower()


def send_email(call: Call) -> Response:
    settings = call.settings
    payload = call.payload()
    params = rules.validate_send_email(payload, settings.default_sender, settings.templates)
    from .ses import client_for

    ses = client_for(settings)
    recipients = [*params["Destination"], *params.get("Cc", ()), *params.get("Bcc", ())]

    def operation() -> dict:
        reply = ses.call("SendEmail", params, call.deadline)
        message_id = reply.get("MessageId")
        if not isinstance(message_id, str) or not message_id:
            # The SDK's Content-Type trap: an error reply it did not read looks like a success.
            raise OutcomeUnknown("SES SendEmail answered without a MessageId; the outcome is unknown")
        log.note(MessageId=message_id, SesRequestId=reply.get("RequestId"),
                 To=[log.mask(address) for address in params["Destination"]], Recipients=len(recipients))
        return {"MessageId": message_id}

    key = call.header("idempotency-key")
    ref = _ref(call.client, key) if key is not None else None

    def record(body: dict) -> None:
        now = time.time()
        open_store(settings.database_url).record_sent(
            body["MessageId"], call.client, _bare(params["FromEmailAddress"]),
            [_bare(address) for address in recipients], now, ref)

    if key is None:
        body = operation()
        try:
            record(body)
        except StoreUnavailable:
            # SES accepted the mail: the caller gets its MessageId regardless (SPEC 3.2).
            log.error("a sent message could not be recorded", MessageId=body["MessageId"])
        return Response(200, body)

    store = open_store(settings.database_url)
    attempt = {"Action": "SendEmail", "Sender": _bare(params["FromEmailAddress"]),
               "Destination": [_bare(address) for address in params["Destination"]]}
    status, body, replayed = idempotency.run(
        store, call.client, idempotency.check_key(key), idempotency.fingerprint(payload), attempt,
        call.deadline.limit_s, settings.idempotency_ttl, operation,
        lambda doubtful: _resolve_send(call, doubtful, ref), record)
    return Response(status, body, {"Idempotent-Replayed": "true"} if replayed else None)


def _ref(client: str, key: str) -> str:
    return f"{client}/{key}"  # client names hold no "/", so this cannot collide


def _resolve_send(call: Call, attempt: dict, ref: str | None) -> idempotency.Decision:
    """SPEC 5: was the in-doubt SendEmail sent? If its MessageId reached our sent log (only the
    record's completion failed), yes. Otherwise ask SES's status index for the attempt's date(s)
    and recipients: a row from our sender, inside the attempt's window, whose MessageId is not in
    our sent log, is that mail."""
    from .ses import client_for

    settings = call.settings
    store = open_store(settings.database_url)
    started, ended = float(attempt["Started"]), float(attempt["Ended"])
    logged = store.sent_for_ref(ref, started - CLOCK_SKEW_S) if ref else None
    if logged:
        return idempotency.Decision(idempotency.Decision.SENT, {"MessageId": logged})
    ses = client_for(settings)
    low, high = int(started) - CLOCK_SKEW_S, int(ended) + 1 + CLOCK_SKEW_S
    dates = sorted({datetime.fromtimestamp(t, BEIJING).strftime("%Y-%m-%d") for t in (low, high)})
    sender = attempt["Sender"]
    for recipient in attempt["Destination"]:
        rows: list[dict] = []
        for date in dates:
            offset = 0
            while True:
                page = ses.call("GetSendEmailStatus", {"RequestDate": date, "ToEmailAddress": recipient,
                                                       "Offset": offset, "Limit": STATUS_PAGE}, call.deadline)
                found = page.get("EmailStatusList") or []
                rows.extend(row for row in found if isinstance(row, dict)
                            and _bare(str(row.get("FromEmailAddress") or "")) == sender
                            and isinstance(row.get("RequestTime"), int) and low <= row["RequestTime"] <= high)
                if len(found) < STATUS_PAGE:
                    break
                offset += STATUS_PAGE
        known = store.sent_message_ids([str(row.get("MessageId")) for row in rows])
        candidates = sorted((row for row in rows if row.get("MessageId") and row["MessageId"] not in known),
                            key=lambda row: row["RequestTime"])
        if candidates:
            row = candidates[0]
            if row.get("SendStatus") not in (0, None):
                return idempotency.Decision(idempotency.Decision.NOT_SENT)
            message_id = str(row["MessageId"])
            now = time.time()
            store.record_sent(message_id, call.client, sender, attempt["Destination"], now, ref)
            return idempotency.Decision(idempotency.Decision.SENT, {"MessageId": message_id})
    waited = time.time() - ended
    if waited >= settings.settle_seconds:
        return idempotency.Decision(idempotency.Decision.NOT_SENT)
    return idempotency.Decision(idempotency.Decision.UNKNOWN, retry_after=settings.settle_seconds - waited)


def message_status(call: Call) -> Response:
    message_id = call.params["MessageId"]
    store = open_store(call.settings.database_url)
    events = store.message_events(message_id)
    if not events and not store.sent_message_ids([message_id]):
        raise NotFound("nothing is known about this MessageId", field="MessageId")
    state = events[-1]["Event"] if events else "sent"
    return Response(200, {"MessageId": message_id, "State": state, "Events": events})
