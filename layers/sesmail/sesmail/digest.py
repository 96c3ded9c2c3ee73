"""Digests: items queued per recipient, sent as one templated mail each when a timer fires.

A digest is declared in the config file (`Digests`): sender, subject, template, and how its
TemplateData is built from a recipient's items (JMESPath over the list of items, e.g.
`{"count": "length(@)", "titles": "join(', ', [].title)"}`). Items are queued with
`POST /digest/items` or `queue()`. Exactly once: before a recipient's mail is sent, its items are
claimed by the run (state `sending`, in one statement); after SES answers they are marked with the
MessageId that carried them. Items a crashed run left `sending` are resolved through
GetSendEmailStatus (docs/reliability.md#doubt) before they are tried again. Suppressed recipients are skipped and
their items marked so; failed ones keep their items for the next run, up to an attempt cap.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from . import config, envelopes, leases, log, rules, topics, validation
from .addresses import address_hash, bare_address
from .errors import InvalidInput, NotFound, OutcomeUnknown, RecipientBusy, SesmailError
from .http import Call, Response
from .store import open_store

if TYPE_CHECKING:
    from .config import Settings
    from .store import DigestStore, SuppressionStore

__all__ = ["queue", "queue_items", "run"]

MAX_ITEM_BYTES = 16 * 1024
MAX_ITEMS_PER_REQUEST = 1000
DEFAULT_WORKERS = 8          # requests in flight: 20 req/s at 50-100 ms latency needs at least 2
RESERVE_S = 10.0             # stop starting sends this long before the function's time limit
DEFAULT_MAX_ATTEMPTS = 5
# Above this many recipients a digest goes through recipient lists and BatchSendEmail: SES fans
# out server-side, a 100,000-recipient digest costs about 10 API calls instead of 100,000.
DEFAULT_BATCH_ABOVE = 5000
SUPPRESSION_CHUNK = 90
_ITEM = validation.Object("A digest item.", {
    "Digest": (validation.Str("digest name from the config file", min_len=1, max_len=64,
                         length_code="InvalidParameterValue"), True),
    "Email": (validation.Address("recipient", "InvalidParameterValue.ReceiverEmailInvalid"), True),
    "Item": (validation.Disused("any JSON object"), True),
}).compile()


def _definition(settings: Settings, name: str) -> dict:
    digests = settings.file.get("Digests") or {}
    definition = digests.get(name) if isinstance(digests, dict) else None
    if not isinstance(definition, dict):
        raise NotFound("no such digest in the config file", field="Digest")
    return definition


def carrier_ref(digest: str, run: str, email: str) -> str:
    """The sent log's reference for the mail carrying a recipient's items in one run: how a later
    run knows that mail was sent even when marking its items was not saved. A hash: the sent log's
    reference column holds no address."""
    return "digest/" + hashlib.sha256(f"{digest}\n{run}\n{email}".encode("utf-8", "surrogatepass")).hexdigest()


def _suppressed(settings: Settings, store: SuppressionStore, emails: list[str], marketing: bool | str) -> dict:
    from .sending import suppressed  # an erased address's suppressions too

    return suppressed(settings, store, emails, marketing)


def queue(settings: Settings, items: list[dict], client: str | None = None, store: DigestStore | None = None) -> int:
    """Queue digest items from Python (what POST /digest/items does after validation), in
    `store`, or without one in the container's store of `settings.database_url`. `client` (an
    HTTP caller's) is held to its policy first: the digests it may queue into, and how many
    distinct addresses one request may name."""
    rows = _rows(settings, items, client)
    (store or open_store(settings.database_url)).queue_digest_items(rows)
    return len(rows)


def _rows(settings: Settings, items: list[dict], client: str | None) -> list[dict]:
    """The store's rows for `items`, each checked (and held to `client`'s policy)."""
    now = time.time()
    checked_items = []
    for index, item in enumerate(items):
        where = f"[{index}]" if len(items) > 1 else ""
        checked_items.append((where, _ITEM(item, where)))
    if client is not None:
        from . import policy

        policy.check_digest_items(settings, client, [(f"{where}." if where else "", checked["Digest"],
                                                       checked["Email"]) for where, checked in checked_items])
    rows = []
    for index, (where, checked) in enumerate(checked_items):
        _definition(settings, checked["Digest"])
        if not isinstance(checked["Item"], dict):
            raise InvalidInput(f"{where + '.' if where else ''}Item must be a JSON object", field=f"{where}Item",
                               code="InvalidParameter")
        body = json.dumps(checked["Item"], ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        if len(body.encode("utf-8")) > MAX_ITEM_BYTES:
            raise InvalidInput(f"Item must be at most {MAX_ITEM_BYTES} bytes of JSON", field=f"{where}Item",
                               code="InvalidParameterValue")
        # created_at keeps the order items were given in (one request's items share a clock tick).
        rows.append({"item_id": uuid.uuid4().hex, "digest": checked["Digest"], "email": checked["Email"].lower(),
                     "item": body, "created_at": now + index * 1e-6, "expires_at": now + settings.event_ttl})
    return rows


def queue_items(call: Call) -> Response:
    """POST /digest/items: one {"Digest", "Email", "Item"} or a list of them."""
    payload = call.payload()
    items = payload if isinstance(payload, list) else [payload]
    if not 1 <= len(items) <= MAX_ITEMS_PER_REQUEST:
        raise InvalidInput(f"between 1 and {MAX_ITEMS_PER_REQUEST} items per request", code="InvalidParameterValue")
    rows = _rows(call.settings, items, None if call.trusted else call.client)
    call.store.queue_digest_items(rows)  # asked for only once every item is valid
    return Response(200, {"Queued": len(rows)})


def _fits_subject(subject: str, data: str) -> bool:
    """Whether TemplateData's values filled into the subject keep it a valid header (sesmail.rules)."""
    if rules.TEMPLATE_VARIABLE.search(subject) is None:
        return True
    try:
        rules.subject_data(subject, envelopes.loads(data), "TemplateData")
    except InvalidInput:
        return False
    return True


def _template_data(definition: dict, items: list[dict]) -> str:
    expressions = definition.get("TemplateData") or {}
    data = {name: envelopes.extract(expression, items) for name, expression in expressions.items()}
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class _Sender:
    """Sends one recipient's digest at a time, safely from several threads."""

    def __init__(self, call: Call, definition: dict, name: str, run_key: str) -> None:
        from .ses import SesClient

        self.call, self.definition, self.name, self.run_key = call, definition, name, run_key
        self.settings = call.settings
        self.store = call.store
        self.local = threading.local()
        self.client_class = SesClient
        template = dict(definition.get("Template") or {})
        self.base = rules.validate_send_email({
            "FromEmailAddress": definition.get("FromEmailAddress") or self.settings.default_sender,
            "Destination": ["placeholder@example.com"], "Subject": definition.get("Subject", ""),
            "Template": dict(template, TemplateData={}), "TriggerType": definition.get("TriggerType", 0),
        }, self.settings.default_sender, self.settings.templates)
        self.sender = bare_address(self.base["FromEmailAddress"])
        # Its topic (docs/topics.md): what the suppression list is asked, and each mail's unsubscribe link.
        self.scope = topics.scope_for(self.base.get("TriggerType", 0) != 1, definition.get("Topic"))
        self.max_attempts = int(definition.get("MaxAttempts", DEFAULT_MAX_ATTEMPTS))
        from .ratelimit import limiter_for

        self.limiter = limiter_for(self.settings, "SendEmail")
        self.counts = {"Sent": 0, "Skipped": 0, "Failed": 0, "Deferred": 0}
        # Time kept back at the end of the run: RESERVE_S, or a fifth of a short time limit.
        self.reserve = max(1.0, min(RESERVE_S, 0.2 * call.deadline.limit_s))
        self.lock = threading.Lock()

    def _ses(self):
        # One SDK client per thread: the client's timeout is set per call on shared state.
        client = getattr(self.local, "client", None)
        if client is None:
            client = self.local.client = self.client_class(self.settings)
        return client

    def _count(self, name: str) -> None:
        with self.lock:
            self.counts[name] += 1

    def send(self, email: str) -> None:
        deadline = self.call.deadline
        if deadline.remaining() < self.reserve:
            self._count("Deferred")  # stays queued: the next run continues from here
            return
        # The recipient's lease first (sesmail.leases): a /send to the same address from the same
        # sender must not share this mail's window. The items' claim time starts the window that
        # resolves a doubt, and the lease lasts the run's whole time limit from it.
        # The suppression list is asked in the same statement (on PostgreSQL).
        try:
            lease = leases.acquire(self.store, leases.keys_for(self.settings.erasure_key, "send", self.sender,
                                                               [email]),
                                   leases.owner_for(None), deadline.limit_s, deadline, None,
                                   ([email], self.scope, {email: address_hash(self.settings.erasure_key, email)}))
        except RecipientBusy:
            self._count("Deferred")  # stays queued: the next run takes it
            return
        items = self.store.claim_digest_items(self.name, email, self.run_key, lease.window_start)
        if not items:
            lease.release()
            return
        if lease.suppressed:
            lease.release()
            self.store.finish_digest_items(self.name, email, self.run_key, "skipped", "suppressed")
            self._count("Skipped")
            return
        params = dict(self.base, Destination=[email],
                      Template=dict(self.base["Template"], TemplateData=_template_data(self.definition, items)))
        topics.headers_for(self.settings, email, self.scope, params)  # one-click unsubscribe, when on
        if not _fits_subject(params["Subject"], params["Template"]["TemplateData"]):
            # No retry can change the items: they are marked failed, never sent to SES.
            lease.release()
            self.store.finish_digest_items(self.name, email, self.run_key, "failed", validation.HEADER_CODE)
            log.warning("digest items would put a line break into the subject; not sent", Digest=self.name,
                        Email=log.mask(email), Code=validation.HEADER_CODE)
            self._count("Failed")
            return
        try:
            reply = self._ses().call("SendEmail", params, deadline, self.limiter)
        except OutcomeUnknown:
            # Stays `sending` (resolved before it is tried again). The lease is in doubt (nobody
            # waits for it) until the window that resolution will search has passed: the claim
            # time plus the run's time limit.
            lease.doubt(lease.window_start + deadline.limit_s)
            self._count("Failed")
            return
        except SesmailError as exc:
            lease.release()
            if exc.code in ("ResourceUnavailable.RateLimited", "ResourceUnavailable.Timeout"):
                # No slot before the deadline: nothing was sent, the next run takes it.
                self.store.release_digest_items(self.name, email, self.run_key, failed=False, max_attempts=0)
                self._count("Deferred")
                return
            self.store.release_digest_items(self.name, email, self.run_key, failed=True,
                                            max_attempts=self.max_attempts)
            log.warning("digest send failed; items kept", Digest=self.name, Email=log.mask(email), Code=exc.code)
            self._count("Failed")
            return
        message_id = str(reply.get("MessageId") or "")
        self.store.record_sent(message_id, config.DIGEST_CLIENT, self.sender, [email], time.time(),
                               carrier_ref(self.name, self.run_key, email), release=lease.release_with,
                               template_id=self.base["Template"]["TemplateID"])
        self.store.finish_digest_items(self.name, email, self.run_key, "sent", message_id)
        self._count("Sent")


def _resolve_stale(call: Call, sender: _Sender) -> None:
    """Items a dead run left `sending`: was their mail sent? Logged under its carrier reference (only
    marking the items failed), or found in SES's status index; otherwise they are tried again."""
    from .sending import resolve_recipient

    for stale in sender.store.stale_digest_items(sender.name, time.time() - call.deadline.limit_s):
        verdict = resolve_recipient(call, sender.base["FromEmailAddress"], stale["Email"], stale["ClaimedAt"],
                                    stale["ClaimedAt"] + call.deadline.limit_s,
                                    carrier_ref(sender.name, stale["Run"], stale["Email"]))
        if verdict is None:
            continue  # not settled yet: left as is for a later run
        if verdict:
            sender.store.finish_digest_items(sender.name, stale["Email"], stale["Run"], "sent", verdict)
        else:
            sender.store.release_digest_items(sender.name, stale["Email"], stale["Run"], failed=True,
                                              max_attempts=sender.max_attempts)


def _send_through_lists(call: Call, sender: _Sender, definition: dict, name: str, run_key: str) -> dict:
    """A large digest: every queued item claimed in one statement, recipients grouped, suppressed
    ones skipped, the rest sent as BatchSendEmail tasks on lists built for this run (each list's
    task recorded as progress, so a retried timer event resumes without repeating a list).
    Recipients whose TemplateData exceeds SES's 800 bytes per list row go out one by one."""
    from . import batching, idempotency

    settings, store = call.settings, sender.store
    grouped: dict[str, list[dict]] = {}
    for email, item in store.claim_all_digest_items(name, run_key, time.time()):
        grouped.setdefault(email, []).append(item)
    emails = sorted(grouped)
    suppressed: set[str] = set()
    for start in range(0, len(emails), SUPPRESSION_CHUNK):
        suppressed |= set(_suppressed(settings, store, emails[start:start + SUPPRESSION_CHUNK], sender.scope))
    if suppressed:
        store.finish_digest_emails(name, run_key, sorted(suppressed), "skipped", "suppressed")
    recipients, alone = [], []
    subject = sender.base["Subject"]
    for email in emails:
        if email in suppressed:
            continue
        data = topics.recipient_data(settings, email, sender.scope, _template_data(sender.definition, grouped[email]))
        if len(data.encode("utf-8")) > rules.MAX_RECIPIENT_DATA_BYTES or not _fits_subject(subject, data):
            alone.append(email)  # one by one; one whose values break the subject fails alone, not the lists
        else:
            recipients.append({"Email": email, "TemplateData": data})
    counts = {"Sent": 0, "Skipped": len(suppressed), "Failed": 0, "Deferred": 0, "Lists": 0}
    if recipients:
        payload = {"FromEmailAddress": sender.base["FromEmailAddress"], "Subject": sender.base["Subject"],
                   "Template": {"TemplateID": sender.base["Template"]["TemplateID"]}, "TaskType": 1,
                   "Recipients": recipients}
        params = rules.validate_batch_send_email(payload, settings.default_sender, settings.templates)
        batch = batching.BatchRun(settings, call.deadline, store, config.DIGEST_CLIENT, params,
                                  params.pop("Recipients"))
        idem = idempotency.Idempotency(store, f"digest:{name}"[:64], run_key, call.deadline.limit_s,
                                       settings.idempotency_ttl)
        body, _ = idem.once(idempotency.fingerprint(payload), batch.attempt(), batch, batch.resolve)
        for chunk, task_id in zip(batching.list_chunks(recipients), body["TaskIds"]):
            store.finish_digest_emails(name, run_key, [r["Email"] for r in chunk], "sent", f"task:{task_id}")
        counts["Sent"] += len(recipients)
        counts["Lists"] = len(body["TaskIds"])
    for email in alone:
        sender.send(email)
    for key in ("Sent", "Failed", "Deferred"):
        counts[key] += sender.counts[key]
    return dict(counts, Digest=name, Recipients=len(emails))


def run(call: Call, name: str, trigger: str, fired_at: str) -> dict:
    """Send digest `name` for the timer event (trigger, fired_at): once per event, whatever SCF
    retries. A run that completed answers from its record; one that died is taken over and
    finishes from the items' own states."""
    from . import idempotency

    definition = _definition(call.settings, name)
    run_key = f"{trigger}@{fired_at}"[:255]
    settings = call.settings

    def operation(claim: idempotency.Claim | None = None) -> dict:
        sender = _Sender(call, definition, name, run_key)
        _resolve_stale(call, sender)
        emails = sender.store.digest_recipients(name)
        if len(emails) > int(definition.get("BatchAbove", DEFAULT_BATCH_ABOVE)):
            return _send_through_lists(call, sender, definition, name, run_key)
        workers = int(definition.get("Workers", DEFAULT_WORKERS))
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            list(pool.map(sender.send, emails))
        return dict(sender.counts, Digest=name, Recipients=len(emails))

    if definition.get("TriggerType", 0) != 1:
        # Marketing mail: refused while the reputation guard holds its domain back (sesmail.guard).
        # The items stay queued for a later run.
        from . import guard

        guard.check(settings, call.store, bare_address(definition.get("FromEmailAddress") or settings.default_sender
                                                       or ""))
    idem = idempotency.Idempotency(call.store, f"timer:{trigger}"[:64], fired_at,
                                   call.deadline.limit_s, settings.idempotency_ttl)
    # No resolver: the items carry their own state, so a dead run is simply taken over and finished.
    body, replayed = idem.once(idempotency.fingerprint(name), {"Action": "Digest", "Digest": name}, operation)
    if replayed:
        log.info("timer run already completed; not repeated", TriggerName=trigger, TimerTime=fired_at)
    log.note(**{key: value for key, value in body.items() if key != "RequestId"})
    return dict(body, Replayed=replayed)
