"""BatchSendEmail: on a caller's recipient list, or on lists created for inline recipients (docs/api.md#batch).

SES fans a batch out server-side from a recipient list (`ReceiverId`). For inline `Recipients` we
create the lists: CreateReceiver, then CreateReceiverDetailWithData in chunks (at most 20,000 rows
and 8 MB per call), a new list every 50,000 recipients, wait until SES has processed each list
(ListReceivers status 3), then one task per list. A list is disposable until its task exists: an
upload whose outcome is unknown (SES does not de-duplicate list rows) throws the list away and
builds a new one rather than risk mailing someone twice. Once a task exists it is recorded at
once (idempotency progress), so a run that dies half-way is finished without repeating a list.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable

from . import idempotency, leases, log, policy, rules, topics, validation
from .addresses import bare_address
from .errors import NotFound, OutcomeUnknown, SesmailError, StoreUnavailable, Unavailable
from .http import Call, Response

if TYPE_CHECKING:
    from typing import Protocol

    from .config import Settings
    from .deadline import Deadline
    from .store import LeaseStore, StatsStore, SuppressionStore, TaskStore

    class BatchStore(LeaseStore, TaskStore, StatsStore, Protocol):
        """What a batch run writes: the leases on a caller's list, our lists and tasks, the mails
        its tasks sent (statistics)."""

__all__ = ["LIST_MAX", "ROWS_PER_UPLOAD", "UPLOAD_MAX_BYTES", "BatchRun", "batch_send", "list_chunks", "run_batch",
           "task_status"]

LIST_MAX = 50_000            # recipients per list (CreateReceiverDetail docs)
ROWS_PER_UPLOAD = 20_000     # rows per CreateReceiverDetailWithData call
UPLOAD_MAX_BYTES = 8_000_000  # SES's request limit is 8 MB; keep room for the envelope
LIST_READY = 3               # ReceiversStatus: 1 pending, 2 uploading, 3 done
TASK_PAGE = 100
LIST_PAGE = 100  # ListReceiverDetails' largest Limit
LIST_COUNT_MAX = 5_000  # recipients a list may hold to be counted per recipient (50 calls)
TASK_PAGE_RESERVE_S = 3.0  # a page of ListSendTasks is not asked for with less time left than this
POLL_FIRST_S, POLL_MAX_S = 0.5, 5.0


class PartialBatch(OutcomeUnknown):
    """Some tasks were created before a later step failed: those went out, the rest did not. The
    Idempotency-Key (if any) resumes the rest; TaskIds in the answer say what went out."""

    CODE = "FailedOperation.PartialBatch"

    def __init__(self, message: str, task_ids: list[int], cause: SesmailError | None = None) -> None:
        super().__init__(message, code=cause.code if cause else None)
        self.task_ids = task_ids

    def to_error(self) -> dict:
        error = super().to_error()
        error["TaskIds"] = self.task_ids
        return error


def list_chunks(recipients: list[dict]) -> list[list[dict]]:
    return [recipients[start:start + LIST_MAX] for start in range(0, len(recipients), LIST_MAX)]


def _uploads(rows: list[dict]):
    """Rows for CreateReceiverDetailWithData, cut at 20,000 rows or ~8 MB of JSON, whichever first."""
    part: list[dict] = []
    size = 0
    for row in rows:
        row_size = len(json.dumps(row, ensure_ascii=False).encode("utf-8")) + 2
        if part and (len(part) == ROWS_PER_UPLOAD or size + row_size > UPLOAD_MAX_BYTES):
            yield part
            part, size = [], 0
        part.append(row)
        size += row_size
    if part:
        yield part


class BatchRun:
    """One BatchSendEmail request, executed with progress saved to an idempotency claim."""

    def __init__(self, settings: Settings, deadline: Deadline, store: BatchStore, client: str, params: dict,
                 recipients: list[dict] | None, ref: str | None = None) -> None:
        from .ses import client_for

        self.settings, self.deadline, self.store, self.client = settings, deadline, store, client
        self.owner = leases.owner_for(ref)  # its Idempotency-Key's (or timer run's) reference
        self.params, self.recipients = params, recipients
        self.ses = client_for(settings)
        self.done: dict[int, int] = {}  # list index -> TaskId, from an earlier run being resumed
        self.orphan: int | None = None  # a list an earlier run built but never sent
        # The client's MailsPerRecipientPerHour (policy.count_batch), when it has one: recipients
        # over it are left out. `positions` are the recipients' indexes in the request's `Recipients`.
        self.rate_check: Callable[[list[str]], dict[int, float]] | None = None
        self.rate_limited: list[int] | None = None  # indexes into `recipients`, once counted
        self.positions: list[int] | None = None
        self.list_rate_check: Callable[[], None] | None = None  # the same for a ReceiverId's list

    def attempt(self) -> dict:
        return {"Action": "BatchSendEmail", "Subject": self.params["Subject"],
                "ReceiverId": self.params.get("ReceiverId"),
                "Lists": len(list_chunks(self.recipients)) if self.recipients is not None else None}

    # -- sending ------------------------------------------------------------------------------
    def __call__(self, claim: idempotency.Claim | None = None) -> dict:
        if self.recipients is None:
            if self.list_rate_check is not None:
                self.list_rate_check()  # after the replay check: a replay is not counted again
            return self._send_on_list(claim)
        limited = self._leave_out_rate_limited(claim)
        if self.orphan is not None:
            self._delete_list(self.orphan)
        if self.done and claim is not None:
            # The claim was taken over with a fresh attempt: carry the earlier run's tasks into it
            # before anything else, or a second crash would forget them.
            claim.progress(Tasks={str(index): task for index, task in self.done.items()})
        task_ids: list[int] = []
        for index, chunk in enumerate(list_chunks(self.recipients)):
            if index in self.done:
                task_ids.append(self.done[index])
                continue
            try:
                receiver_id = self._build_list(chunk, claim, index)
                try:
                    task_id = self._send_task(dict(self.params, ReceiverId=receiver_id))
                except OutcomeUnknown:
                    raise  # the task may exist: the list stays for doubt resolution
                except SesmailError:
                    self._abandon_list(receiver_id, claim)  # refused: nothing will ever use this list
                    raise
            except SesmailError as exc:
                if not task_ids:
                    raise
                raise PartialBatch(f"{len(task_ids)} of {len(list_chunks(self.recipients))} recipient lists were sent"
                                   " before a later step failed", task_ids, exc) from exc
            task_ids.append(task_id)
            self._record(task_id, receiver_id, owned=True)
            self._count_sent(len(chunk))
            if claim is not None:
                try:
                    claim.progress(Tasks=dict(claim.attempt.get("Tasks") or {}, **{str(index): task_id}))
                except StoreUnavailable as exc:
                    raise PartialBatch("the batch's progress could not be saved", task_ids, exc) from exc
        return dict({"TaskId": task_ids[0], "TaskIds": task_ids}, **({"RateLimited": limited} if limited else {}))

    def _leave_out_rate_limited(self, claim: idempotency.Claim | None) -> list[str]:
        """MailsPerRecipientPerHour: recipients over it are left out, and named. Counted here, after
        the replay check (a replay is not counted again), once per request: a run that takes over
        a dead one reuses the count it finds in the claim, so its lists come out the same."""
        assert self.recipients is not None
        if self.rate_check is None:
            return []
        if self.rate_limited is None:
            over = self.rate_check([r["Email"] for r in self.recipients])
            self.rate_limited = sorted(over)
            if over and len(over) == len(self.recipients):
                from .errors import RecipientRateLimited

                raise RecipientRateLimited("every recipient has had this client's MailsPerRecipientPerHour this"
                                           " hour", field="Recipients", retry_after=min(over.values()))
        left_out = set(self.rate_limited)
        positions = self.positions or list(range(len(self.recipients)))
        names = [f"Recipients[{positions[index]}]" for index in self.rate_limited]
        self.recipients = [r for index, r in enumerate(self.recipients) if index not in left_out]
        self.positions = [p for index, p in enumerate(positions) if index not in left_out]
        self.rate_limited = []
        if claim is not None:
            # Saved even when empty: a takeover must know the count was taken.
            claim.progress(RateLimited=sorted(left_out), Lists=len(list_chunks(self.recipients)))
        return names

    def _send_on_list(self, claim: idempotency.Claim | None) -> dict:
        """A task on the caller's own list. ListSendTasks tells tasks apart by list, subject and
        creation time only: two attempts with the same list and subject whose windows overlap
        could not be told apart in doubt, so they never overlap (sesmail.leases)."""
        keys = leases.keys_for(self.settings.erasure_key, "list", str(self.params["ReceiverId"]),
                               [self.params["Subject"]])
        lease = leases.acquire(self.store, keys, self.owner, self.deadline.limit_s, self.deadline,
                               float(claim.attempt["Started"]) if claim is not None else None)
        with lease.calling(claim):
            task_id = self._send_task(self.params)
        self._record(task_id, self.params["ReceiverId"], owned=False)
        lease.release()
        return {"TaskId": task_id, "TaskIds": [task_id]}

    def _send_task(self, params: dict) -> int:
        reply = self.ses.call("BatchSendEmail", params, self.deadline)
        task_id = reply.get("TaskId")
        if not isinstance(task_id, int):
            raise OutcomeUnknown("SES BatchSendEmail answered without a TaskId; the outcome is unknown")
        return task_id

    def _record(self, task_id: int, receiver_id: int, owned: bool) -> None:
        try:
            self.store.record_task(task_id, receiver_id, self.client, self.params["Subject"], owned, time.time())
        except StoreUnavailable:
            log.error("a batch task could not be recorded", TaskId=task_id)

    def _count_sent(self, count: int) -> None:
        """A task's recipients in the statistics (the sent log lists no MessageId for them)."""
        try:
            self.store.count_sent(bare_address(self.params["FromEmailAddress"]), self.params["Template"]["TemplateID"],
                                  count, time.time())
        except StoreUnavailable:
            log.error("a batch task's mails could not be counted", Recipients=count)

    def _build_list(self, chunk: list[dict], claim: idempotency.Claim | None, index: int) -> int:
        """A ready recipient list holding exactly `chunk`; rebuilt once if an upload's outcome is
        unknown. Every list is recorded (sesmail_lists) before it is created, and deleted at once
        when this run gives up on it before its task is asked for; what this run cannot delete
        (no time left, a crash, a lost reply) the cleanup job deletes."""
        store = self.store
        for attempt in (1, 2):
            name = f"sesmail-{uuid.uuid4().hex[:20]}"
            store.list_started(name, self.client, time.time(), *((claim.scope, claim.key) if claim else (None, None)))
            try:
                receiver_id = self.ses.call("CreateReceiver", {"ReceiversName": name, "Desc": "created by sesmail"},
                                            self.deadline).get("ReceiverId")
            except OutcomeUnknown:
                raise  # the list may exist: the cleanup job looks for it by its name
            except SesmailError:
                _forget_list(store, name=name)  # refused: no list was made
                raise
            if not isinstance(receiver_id, int):
                raise OutcomeUnknown("SES CreateReceiver answered without a ReceiverId")
            try:
                store.list_created(name, receiver_id)
                if claim is not None:
                    claim.progress(Building={"List": index, "ReceiverId": receiver_id})
                for number, part in enumerate(_uploads(chunk)):
                    if number:
                        # SES refuses changes to a list it is still processing
                        # (OperationDenied.ReceiverIsOperating): each upload waits for the last.
                        self._wait_ready(receiver_id, name, 0)
                    self.ses.call("CreateReceiverDetailWithData", {"ReceiverId": receiver_id, "Datas": part},
                                  self.deadline)
            except OutcomeUnknown:
                self._abandon_list(receiver_id, claim)
                if attempt == 2:
                    raise
                continue
            except Exception:
                self._abandon_list(receiver_id, claim)  # refused, out of time, store down: no task uses it
                raise
            try:
                self._wait_ready(receiver_id, name, len(chunk))
            except Exception:
                self._abandon_list(receiver_id, claim)  # not ready in time: given up before its task
                raise
            return receiver_id
        raise AssertionError("unreachable")  # pragma: no cover

    def _abandon_list(self, receiver_id: int, claim: idempotency.Claim | None) -> None:
        """A list given up on before BatchSendEmail was asked for it: deleted, and no longer the
        list a doubt about this run would look at."""
        self._delete_list(receiver_id)
        if claim is not None and (claim.attempt.get("Building") or {}).get("ReceiverId") == receiver_id:
            try:
                claim.progress(Building=None)
            except StoreUnavailable:
                pass  # a doubt finds no task on it and deletes it once settled

    def _delete_list(self, receiver_id: int) -> None:
        """Delete a list no task uses; if SES cannot be asked now, the cleanup job does it later."""
        try:
            self.ses.call("DeleteReceiver", {"ReceiverId": receiver_id}, self.deadline)
        except SesmailError as exc:
            if not list_missing(exc):
                log.warning("an unused recipient list could not be deleted; cleanup retries", ReceiverId=receiver_id,
                            Code=exc.code)
                return
        _forget_list(self.store, receiver_id=receiver_id)

    def _wait_ready(self, receiver_id: int, name: str, expected: int) -> None:
        """SES processes uploads asynchronously: poll ListReceivers with backoff, inside the deadline."""
        pause = POLL_FIRST_S
        while True:
            reply = self.ses.call("ListReceivers", {"Offset": 0, "Limit": 10, "KeyWord": name}, self.deadline)
            for data in reply.get("Data") or []:
                if data.get("ReceiverId") == receiver_id and data.get("ReceiversStatus") == LIST_READY:
                    return
            if self.deadline.remaining() - pause < 5:
                raise Unavailable("the recipient list was not ready within the function's time limit",
                                  code="ResourceUnavailable.ReceiverNotReady", retry_after=1)
            time.sleep(pause)
            pause = min(POLL_MAX_S, pause * 2)

    # -- resolving doubt ------------------------------------------------------------------------
    def resolve(self, attempt: dict) -> idempotency.Decision:
        """A doubt about BatchSendEmail (docs/reliability.md#doubt): a task on our list(s) with our
        subject, created inside the attempt's window and not yet in our task log, is the one the
        lost reply would have named."""
        started, ended = float(attempt["Started"]), float(attempt["Ended"])
        self.done = {int(k): int(v) for k, v in (attempt.get("Tasks") or {}).items()}
        if isinstance(attempt.get("RateLimited"), list):  # the dead run's count stands
            self.rate_limited = [int(index) for index in attempt["RateLimited"]]
        receiver_ids = [attempt["ReceiverId"]] if attempt.get("ReceiverId") else []
        building = attempt.get("Building") or {}
        if building.get("ReceiverId") and int(building.get("List", -1)) not in self.done:
            receiver_ids.append(building["ReceiverId"])
        for receiver_id in receiver_ids:
            task = self._find_task(receiver_id, attempt["Subject"], started, ended)
            if task is not None:
                if attempt.get("ReceiverId"):
                    return idempotency.Decision(idempotency.Decision.SENT, {"TaskId": task, "TaskIds": [task]})
                self.done[int(building["List"])] = task
        lists = attempt.get("Lists")
        if lists and len(self.done) == lists:
            ids = [self.done[index] for index in range(lists)]
            return idempotency.Decision(idempotency.Decision.SENT, {"TaskId": ids[0], "TaskIds": ids})
        waited = time.time() - ended
        if waited >= self.settings.settle_seconds:
            if building.get("ReceiverId") and int(building.get("List", -1)) not in self.done:
                self.orphan = int(building["ReceiverId"])
            return idempotency.Decision(idempotency.Decision.NOT_SENT)  # __call__ resumes from self.done
        return idempotency.Decision(idempotency.Decision.UNKNOWN, retry_after=self.settings.settle_seconds - waited)

    def _find_task(self, receiver_id: int, subject: str, started: float, ended: float) -> int | None:
        offset = 0
        low, high = int(started) - leases.CLOCK_SKEW_S, int(ended) + 1 + leases.CLOCK_SKEW_S
        while True:
            reply = self.ses.call("ListSendTasks", {"Offset": offset, "Limit": TASK_PAGE, "ReceiverId": receiver_id},
                                  self.deadline)
            tasks = [task for task in reply.get("Data") or [] if isinstance(task, dict)]
            for task in tasks:
                created = _created_at(task.get("CreateTime"))
                if (task.get("Subject") == subject and created is not None and low <= created <= high
                        and isinstance(task.get("TaskId"), int) and not self.store.known_task_ids([task["TaskId"]])):
                    return int(task["TaskId"])
            if len(tasks) < TASK_PAGE:
                return None
            offset += TASK_PAGE


def list_missing(exc: SesmailError) -> bool:
    """SES's answer that a recipient list does not exist (deleted already, or never made)."""
    return exc.code.endswith("ReceiverNotExist") or exc.code == "ResourceNotFound"


def _forget_list(store: TaskStore, *, name: str | None = None, receiver_id: int | None = None) -> None:
    try:
        store.list_gone(name=name, receiver_id=receiver_id)
    except StoreUnavailable:
        log.warning("a deleted recipient list could not be marked so; cleanup finds it gone", ReceiverId=receiver_id)


def _created_at(value: Any) -> float | None:
    """ListSendTasks' CreateTime, `YYYY-MM-DD HH:MM:SS` in Beijing time, as a Unix time."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=rules.BEIJING).timestamp()
    except ValueError:
        return None


def _drop_suppressed(settings: Settings, store: SuppressionStore, recipients: list[dict],
                     audience: bool | str = True) -> tuple[list[dict], list[str], list[int]]:
    """Inline recipients on the suppression list are left out (a batch is marketing mail, so
    unsubscribes count too) and named by field in the answer, never by address (nor why).
    Returns the kept recipients, the names of those left out, and the kept ones' indexes."""
    from .sending import suppressed

    found = suppressed(settings, store, [r["Email"] for r in recipients], marketing=audience)
    kept, skipped, positions = [], [], []
    for index, recipient in enumerate(recipients):
        if recipient["Email"].lower() in found:
            skipped.append(f"Recipients[{index}]")
        else:
            kept.append(recipient)
            positions.append(index)
    return kept, skipped, positions


def _list_addresses(settings: Settings, deadline: Deadline, receiver_id: int) -> list[str] | None:
    """The addresses of a recipient list, read back from SES (ListReceiverDetails, 100 a page),
    or None when it holds more than LIST_COUNT_MAX (too many calls to count them)."""
    from .ses import client_for

    ses = client_for(settings)
    addresses: list[str] = []
    offset = 0
    while offset <= LIST_COUNT_MAX:
        reply = ses.call("ListReceiverDetails", {"ReceiverId": receiver_id, "Offset": offset, "Limit": LIST_PAGE},
                         deadline)
        total = reply.get("TotalCount")
        if isinstance(total, int) and total > LIST_COUNT_MAX:
            return None
        rows = [row for row in reply.get("Data") or [] if isinstance(row, dict)]
        addresses.extend(row["Email"] for row in rows if isinstance(row.get("Email"), str))
        if len(rows) < LIST_PAGE:
            return addresses
        offset += LIST_PAGE
    return None


def _count_list(settings: Settings, deadline: Deadline, client: str, receiver_id: int) -> None:
    """MailsPerRecipientPerHour on a batch to a list: its addresses are read back and counted; a
    list cannot leave anyone out, so one recipient over the limit refuses the batch (429)."""
    from .errors import RecipientRateLimited, TooManyRecipients

    addresses = _list_addresses(settings, deadline, receiver_id)
    if addresses is None:
        raise TooManyRecipients(f"this client's MailsPerRecipientPerHour cannot be counted on a list of more than"
                                f" {LIST_COUNT_MAX} recipients", field="ReceiverId")
    over = policy.count_batch(settings, client, addresses)
    if over:
        raise RecipientRateLimited(f"{len(over)} recipient(s) of the list have had this client's"
                                   " MailsPerRecipientPerHour this hour", field="ReceiverId",
                                   retry_after=max(over.values()))


def _list_size(settings: Settings, deadline: Deadline, receiver_id: int) -> int | None:
    """How many addresses a recipient list holds, as SES reports it (ListReceiverDetails' counts;
    ListReceivers cannot be asked for one list), or None when SES's answer carries no count."""
    from .ses import client_for

    reply = client_for(settings).call("ListReceiverDetails", {"ReceiverId": receiver_id, "Offset": 0, "Limit": 1},
                                      deadline)
    counts: list[int] = [count for count in (reply.get("TotalCount"), reply.get("ValidCount"))
                         if isinstance(count, int) and not isinstance(count, bool)]
    return max(counts) if counts else None


def run_batch(call: Call, client: str, payload: Any, scope: str, key: str | None,
              payload_fingerprint: str | None = None) -> dict:
    """Validate and send one batch payload (HTTP, timer or a schedule's firing) for `client`; `key`
    makes it idempotent in `scope` (for the body's fingerprint, or `payload_fingerprint`). The
    call's store is asked for only once the payload is valid. A scheduled or recurring batch with a
    Topic is kept for sesmail's own timer instead (sesmail.schedules)."""
    settings, deadline = call.settings, call.deadline
    params = rules.validate_batch_send_email(payload, settings.default_sender, settings.templates)
    trusted = scope.startswith("timer:")  # a timer's payload is the operator's own
    if not trusted:
        # The client's policy, before anything is stored: template, sender, reply-to, the list
        # (its own, or one its policy names) and MaxRecipients (inline recipients or the list's size).
        policy.check_batch(settings, client, params,
                           lambda receiver_id: call.store.owns_list(receiver_id, client),
                           lambda receiver_id: _list_size(settings, deadline, receiver_id))
    audience = topics.apply_to_batch(settings, params)  # its Topic: what suppressions count (docs/topics.md)
    payload_fingerprint = payload_fingerprint or idempotency.fingerprint(payload)
    if params["TaskType"] != 1 and topics.topic_of(audience) is not None:
        from . import schedules

        # SES cannot leave out a reader who unsubscribes after it took the list: sesmail fires it.
        def keep(claim: idempotency.Claim | None = None) -> dict:
            return schedules.create(call, client, payload, params, audience, scope, key, payload_fingerprint)

        if key is None:
            return keep()
        return idempotency.Idempotency(call.store, scope, key, deadline.limit_s, settings.idempotency_ttl).once(
            payload_fingerprint, {"Action": "Schedule"}, keep)[0]
    # Batches are marketing mail: refused while the reputation guard holds their domain back.
    from . import guard

    guard.check(settings, call.store, bare_address(params["FromEmailAddress"]))
    recipients = params.pop("Recipients", None)
    skipped: list[str] = []
    positions: list[int] | None = None
    if recipients is not None:
        recipients, skipped, positions = _drop_suppressed(settings, call.store, recipients, audience)
        if not recipients:
            from .errors import Forbidden

            raise Forbidden("every recipient is on the suppression list", field="Recipients",
                            code="FailedOperation.EmailAddrInBlacklist")
        topics.add_to_recipients(settings, audience, recipients, positions)  # their preferences_url
    batch = BatchRun(settings, deadline, call.store, client, params, recipients,
                     f"{scope}/{key}" if key is not None else None)
    batch.positions = positions
    if not trusted and policy.limits_recipients(settings, client):
        if recipients is not None:
            batch.rate_check = lambda emails: policy.count_batch(settings, client, emails)
        else:
            batch.list_rate_check = lambda: _count_list(settings, deadline, client, params["ReceiverId"])
    if key is None:
        body = batch()
    else:
        idem = idempotency.Idempotency(call.store, scope, key, deadline.limit_s, settings.idempotency_ttl)
        body, _ = idem.once(payload_fingerprint, batch.attempt(), batch, batch.resolve)
    log.note(TaskIds=body["TaskIds"], Recipients=len(recipients) if recipients is not None else None,
             Suppressed=len(skipped), RateLimited=len(body.get("RateLimited") or ()))
    return dict(body, Suppressed=skipped) if skipped else body


def batch_send(call: Call) -> Response:
    """POST /batch."""
    key = call.header("idempotency-key")
    body = run_batch(call, call.client, call.payload(), call.client,
                     idempotency.check_key(key) if key is not None else None)
    return Response(200, body)


def task_status(call: Call) -> Response:
    """GET /batch/tasks/<TaskId>: ListSendTasks cannot filter by task, so page it, newest first.
    A TaskId of sesmail's own (`sched-…`) is a schedule SES has never seen."""
    from .ses import client_for

    if call.params["TaskId"].startswith("sched-"):
        from . import schedules

        return schedules.status(call)

    task_id = validation.Int("TaskId", 1, rules.INT64_MAX, "InvalidParameterValue").compile()(call.params["TaskId"],
                                                                                         "TaskId")
    if not policy.sees_everything(call.settings, call.client) and (
            call.store.task_client(task_id) != call.client):
        # A key with a policy sees only its own client's tasks (one without, or with `admin`, all);
        # a task we have no record of is nobody's: SES is not asked.
        raise NotFound("no such task", field="TaskId")
    ses = client_for(call.settings)
    offset = 0
    while True:
        if call.deadline.remaining() <= TASK_PAGE_RESERVE_S:
            # Pages are left unread: "no such task" would be a guess. A new request gets a new time limit.
            raise Unavailable("the task list could not be read to its end within the function's time limit",
                              field="TaskId", code="ResourceUnavailable.Timeout", retry_after=1)
        reply = ses.call("ListSendTasks", {"Offset": offset, "Limit": TASK_PAGE}, call.deadline)
        tasks = [task for task in reply.get("Data") or [] if isinstance(task, dict)]
        for task in tasks:
            if task.get("TaskId") == task_id:
                return Response(200, {"Task": task})
        if len(tasks) < TASK_PAGE:
            break  # the last page: the whole list was read
        offset += TASK_PAGE
    raise NotFound("no such task", field="TaskId")
