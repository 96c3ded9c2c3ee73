"""BatchSendEmail: on a caller's recipient list, or on lists created for inline recipients (SPEC 3.4).

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
from typing import Any

from . import idempotency, log, policy, rules
from .errors import NotFound, OutcomeUnknown, SesmailError, StoreUnavailable
from .http import Call, Response
from .store import open_store

__all__ = ["LIST_MAX", "ROWS_PER_UPLOAD", "UPLOAD_MAX_BYTES", "BatchRun", "batch_send", "list_chunks", "run_batch",
           "task_status"]

LIST_MAX = 50_000            # recipients per list (CreateReceiverDetail docs)
ROWS_PER_UPLOAD = 20_000     # rows per CreateReceiverDetailWithData call
UPLOAD_MAX_BYTES = 8_000_000  # SES's request limit is 8 MB; keep room for the envelope
LIST_READY = 3               # ReceiversStatus: 1 pending, 2 uploading, 3 done
TASK_PAGE = 100
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

    def __init__(self, settings: Any, deadline: Any, client: str, params: dict,
                 recipients: list[dict] | None) -> None:
        from .ses import client_for

        self.settings, self.deadline, self.client = settings, deadline, client
        self.params, self.recipients = params, recipients
        self.ses = client_for(settings)
        self.done: dict[int, int] = {}  # list index -> TaskId, from an earlier run being resumed
        self.orphan: int | None = None  # a list an earlier run built but never sent

    def attempt(self) -> dict:
        return {"Action": "BatchSendEmail", "Subject": self.params["Subject"],
                "ReceiverId": self.params.get("ReceiverId"),
                "Lists": len(list_chunks(self.recipients)) if self.recipients is not None else None}

    # -- sending ------------------------------------------------------------------------------
    def __call__(self, claim: idempotency.Claim | None = None) -> dict:
        if self.recipients is None:
            task_id = self._send_task(self.params)
            self._record(task_id, self.params["ReceiverId"], owned=False)
            return {"TaskId": task_id, "TaskIds": [task_id]}
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
                    self._delete_list(receiver_id)  # refused: nothing will ever use this list
                    raise
            except SesmailError as exc:
                if not task_ids:
                    raise
                raise PartialBatch(f"{len(task_ids)} of {len(list_chunks(self.recipients))} recipient lists were sent"
                                   " before a later step failed", task_ids, exc) from exc
            task_ids.append(task_id)
            self._record(task_id, receiver_id, owned=True)
            if claim is not None:
                try:
                    claim.progress(Tasks=dict(claim.attempt.get("Tasks") or {}, **{str(index): task_id}))
                except StoreUnavailable as exc:
                    raise PartialBatch("the batch's progress could not be saved", task_ids, exc) from exc
        return {"TaskId": task_ids[0], "TaskIds": task_ids}

    def _send_task(self, params: dict) -> int:
        reply = self.ses.call("BatchSendEmail", params, self.deadline)
        task_id = reply.get("TaskId")
        if not isinstance(task_id, int):
            raise OutcomeUnknown("SES BatchSendEmail answered without a TaskId; the outcome is unknown")
        return task_id

    def _record(self, task_id: int, receiver_id: int, owned: bool) -> None:
        try:
            open_store(self.settings.database_url).record_task(task_id, receiver_id, self.client,
                                                               self.params["Subject"], owned, time.time())
        except StoreUnavailable:
            log.error("a batch task could not be recorded", TaskId=task_id)

    def _build_list(self, chunk: list[dict], claim: idempotency.Claim | None, index: int) -> int:
        """A ready recipient list holding exactly `chunk`; rebuilt once if an upload's outcome is unknown."""
        for attempt in (1, 2):
            name = f"sesmail-{uuid.uuid4().hex[:20]}"
            receiver_id = self.ses.call("CreateReceiver", {"ReceiversName": name, "Desc": "created by sesmail"},
                                        self.deadline).get("ReceiverId")
            if not isinstance(receiver_id, int):
                raise OutcomeUnknown("SES CreateReceiver answered without a ReceiverId")
            if claim is not None:
                claim.progress(Building={"List": index, "ReceiverId": receiver_id})
            try:
                for number, part in enumerate(_uploads(chunk)):
                    if number:
                        # SES refuses changes to a list it is still processing
                        # (OperationDenied.ReceiverIsOperating): each upload waits for the last.
                        self._wait_ready(receiver_id, name, 0)
                    self.ses.call("CreateReceiverDetailWithData", {"ReceiverId": receiver_id, "Datas": part},
                                  self.deadline)
            except OutcomeUnknown:
                self._delete_list(receiver_id)
                if attempt == 2:
                    raise
                continue
            self._wait_ready(receiver_id, name, len(chunk))
            return receiver_id
        raise AssertionError("unreachable")  # pragma: no cover

    def _delete_list(self, receiver_id: int) -> None:
        try:
            self.ses.call("DeleteReceiver", {"ReceiverId": receiver_id}, self.deadline)
        except SesmailError as exc:
            log.warning("an unused recipient list could not be deleted; cleanup retries", ReceiverId=receiver_id,
                        Code=exc.code)

    def _wait_ready(self, receiver_id: int, name: str, expected: int) -> None:
        """SES processes uploads asynchronously: poll ListReceivers with backoff, inside the deadline."""
        pause = POLL_FIRST_S
        while True:
            reply = self.ses.call("ListReceivers", {"Offset": 0, "Limit": 10, "KeyWord": name}, self.deadline)
            for data in reply.get("Data") or []:
                if data.get("ReceiverId") == receiver_id and data.get("ReceiversStatus") == LIST_READY:
                    return
            if self.deadline.remaining() - pause < 5:
                from .errors import Unavailable

                raise Unavailable("the recipient list was not ready within the function's time limit",
                                  code="ResourceUnavailable.ReceiverNotReady")
            time.sleep(pause)
            pause = min(POLL_MAX_S, pause * 2)

    # -- resolving doubt ------------------------------------------------------------------------
    def resolve(self, attempt: dict) -> idempotency.Decision:
        """SPEC 5 for BatchSendEmail: a task on our list(s) with our subject, created inside the
        attempt's window and not yet in our task log, is the one the lost reply would have named."""
        started, ended = float(attempt["Started"]), float(attempt["Ended"])
        store = open_store(self.settings.database_url)
        self.done = {int(k): int(v) for k, v in (attempt.get("Tasks") or {}).items()}
        receiver_ids = [attempt["ReceiverId"]] if attempt.get("ReceiverId") else []
        building = attempt.get("Building") or {}
        if building.get("ReceiverId") and int(building.get("List", -1)) not in self.done:
            receiver_ids.append(building["ReceiverId"])
        for receiver_id in receiver_ids:
            task = self._find_task(receiver_id, attempt["Subject"], started, ended, store)
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

    def _find_task(self, receiver_id: int, subject: str, started: float, ended: float, store: Any) -> int | None:
        offset = 0
        low, high = started - 2, ended + 2
        while True:
            reply = self.ses.call("ListSendTasks", {"Offset": offset, "Limit": TASK_PAGE, "ReceiverId": receiver_id},
                                  self.deadline)
            tasks = [task for task in reply.get("Data") or [] if isinstance(task, dict)]
            for task in tasks:
                created = _created_at(task.get("CreateTime"))
                if (task.get("Subject") == subject and created is not None and low <= created <= high
                        and isinstance(task.get("TaskId"), int) and not store.known_task_ids([task["TaskId"]])):
                    return int(task["TaskId"])
            if len(tasks) < TASK_PAGE:
                return None
            offset += TASK_PAGE


def _created_at(value: Any) -> float | None:
    """ListSendTasks' CreateTime, `YYYY-MM-DD HH:MM:SS` in Beijing time, as a Unix time."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=rules.BEIJING).timestamp()
    except ValueError:
        return None


def _drop_suppressed(settings: Any, recipients: list[dict]) -> tuple[list[dict], list[str]]:
    """Inline recipients on the suppression list are left out (a batch is marketing mail, so
    unsubscribes count too) and named by field in the answer, never by address."""
    found = open_store(settings.database_url).suppressions_for([r["Email"].lower() for r in recipients],
                                                               marketing=True)
    if not found:
        return recipients, []
    kept, skipped = [], []
    for index, recipient in enumerate(recipients):
        if recipient["Email"].lower() in found:
            skipped.append(f"Recipients[{index}]")
        else:
            kept.append(recipient)
    return kept, skipped


def run_batch(settings: Any, deadline: Any, client: str, payload: Any, scope: str, key: str | None) -> dict:
    """Validate and send one batch payload (HTTP or timer); `key` makes it idempotent in `scope`."""
    params = rules.validate_batch_send_email(payload, settings.default_sender, settings.templates)
    if not scope.startswith("timer:"):
        # A batch mails many at once: MaxRecipients counts inline recipients; the per-recipient
        # hourly count is SendEmail's (a ReceiverId list at SES is the caller's and not read back).
        policy.check_send(settings, client, params,
                          [("Recipients", [r["Email"] for r in params.get("Recipients") or ()])], per_recipient=False)
    recipients = params.pop("Recipients", None)
    skipped: list[str] = []
    if recipients is not None:
        recipients, skipped = _drop_suppressed(settings, recipients)
        if not recipients:
            from .errors import Forbidden

            raise Forbidden("every recipient is on the suppression list", field="Recipients",
                            code="FailedOperation.EmailAddrInBlacklist")
    batch = BatchRun(settings, deadline, client, params, recipients)
    if key is None:
        body = batch()
    else:
        _, body, _ = idempotency.run(open_store(settings.database_url), scope, key, idempotency.fingerprint(payload),
                                     batch.attempt(), deadline.limit_s, settings.idempotency_ttl, batch,
                                     batch.resolve)
    log.note(TaskIds=body["TaskIds"], Recipients=len(recipients) if recipients is not None else None,
             Suppressed=len(skipped))
    return dict(body, Suppressed=skipped) if skipped else body


def batch_send(call: Call) -> Response:
    """POST /batch."""
    key = call.header("idempotency-key")
    body = run_batch(call.settings, call.deadline, call.client, call.payload(), call.client,
                     idempotency.check_key(key) if key is not None else None)
    return Response(200, body)


def task_status(call: Call) -> Response:
    """GET /batch/tasks/<TaskId>: ListSendTasks cannot filter by task, so page it, newest first."""
    from .ses import client_for

    task_id = rules.Int("TaskId", 1, rules.INT64_MAX, "InvalidParameterValue").compile()(call.params["TaskId"],
                                                                                         "TaskId")
    ses = client_for(call.settings)
    offset = 0
    while call.deadline.remaining() > 3:
        reply = ses.call("ListSendTasks", {"Offset": offset, "Limit": TASK_PAGE}, call.deadline)
        tasks = [task for task in reply.get("Data") or [] if isinstance(task, dict)]
        for task in tasks:
            if task.get("TaskId") == task_id:
                return Response(200, {"Task": task})
        if len(tasks) < TASK_PAGE:
            break
        offset += TASK_PAGE
    raise NotFound("no such task", field="TaskId")
