"""Timer invocations of the batch function: what `Message` (the trigger's argument) asks for.

`Message` is a digest's name (a plain string, or `{"Digest": "<name>"}`), a built-in job
(`{"Job": "reconcile"}`, `{"Job": "cleanup"}`, `{"Job": "schedules"}`), or otherwise a JSON object
that is a batch payload.
Timer invocations are asynchronous: SCF retries a failed run (twice by default) and keeps retrying
system errors for up to 6 hours. So a run is keyed by `TriggerName` + `Time`: the same event
delivered again never sends what an earlier run sent, and finishes what a crashed run left undone.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from . import envelopes, log
from .errors import InvalidInput, NotFound
from .http import Call, Response

if TYPE_CHECKING:
    from typing import Protocol

    from .ses import SesClient
    from .store import IdempotencyStore, TaskStore

    class ListStore(TaskStore, IdempotencyStore, Protocol):
        """What the cleanup of unused lists reads and writes: our lists and tasks, and the
        Idempotency-Key records whose doubt may still adopt a task on one."""

__all__ = ["JOBS", "fire"]


def _reconcile(call: Call) -> dict:
    from . import reconcile

    return reconcile.run(call.settings, call.deadline, call.store)


# Rows of the store read per page by the cleanup job, and the time it keeps back to answer.
CLEANUP_PAGE = 50
CLEANUP_RESERVE_S = 5.0
TASK_DONE = 10  # ListSendTasks' TaskStatus of a finished task


def _cleanup(call: Call) -> dict:
    """Expired records out (personal data has an end); recipient lists we made deleted once their
    task finished, or once it is certain no task will ever use them. What the time limit leaves
    undone is counted as `Unfinished`; the next run continues from there."""
    from .ses import client_for

    settings = call.settings
    now = time.time()
    store = call.store
    counts: dict[str, Any] = store.purge(now, now - settings.idempotency_ttl)
    ses = client_for(settings)
    counts["Lists"], finished = _delete_finished_lists(call, store, ses)
    counts["UnusedLists"], complete = (0, False) if not finished else _delete_unused_lists(call, store, ses, now)
    if not (finished and complete):
        counts["Unfinished"] = True
        log.warning("the cleanup job ran out of time; the next run continues", Deleted=counts["Lists"]
                    + counts["UnusedLists"])
    return counts


def _delete_at_ses(call: Call, ses: SesClient, receiver_id: int) -> bool:
    """DeleteReceiver; True once the list is gone (a list already gone counts), False if SES
    refused (the list is left for a later run)."""
    from .batching import list_missing
    from .errors import SesRefused

    try:
        ses.call("DeleteReceiver", {"ReceiverId": receiver_id}, call.deadline)
    except SesRefused as exc:
        if not list_missing(exc):
            log.warning("SES refused to delete a recipient list; a later run tries again", ReceiverId=receiver_id,
                        Code=exc.code)
            return False
    return True


def _tasks_on(call: Call, ses: SesClient, receiver_id: int) -> list[dict]:
    reply = ses.call("ListSendTasks", {"Offset": 0, "Limit": 10, "ReceiverId": receiver_id}, call.deadline)
    return [task for task in reply.get("Data") or [] if isinstance(task, dict) and isinstance(task.get("TaskId"), int)]


def _delete_finished_lists(call: Call, store: TaskStore, ses: SesClient) -> tuple[int, bool]:
    """Lists we created are deleted once SES reports their task done. Returns (deleted, whether
    every list was looked at)."""
    deleted = skipped = 0
    while True:
        rows = store.owned_lists(limit=CLEANUP_PAGE, offset=skipped)
        for task in rows:
            if call.deadline.remaining() < CLEANUP_RESERVE_S:
                return deleted, False
            statuses = {item["TaskId"]: item.get("TaskStatus") for item in _tasks_on(call, ses, task["ReceiverId"])}
            if statuses.get(task["TaskId"]) == TASK_DONE and _delete_at_ses(call, ses, task["ReceiverId"]):
                store.list_deleted(task["TaskId"])
                deleted += 1
            else:
                skipped += 1  # still running (or refused): the next page starts after it
        if len(rows) < CLEANUP_PAGE:
            return deleted, True


def _delete_unused_lists(call: Call, store: ListStore, ses: SesClient, now: float) -> tuple[int, bool]:
    """Lists we created that no recorded task uses, older than a run of this function can last
    plus SES's settle time (so no run is still building or sending on them): a list a pending
    Idempotency-Key doubt may still adopt a task on is kept until that record is settled or
    expires; SES is asked whether a task uses the list (a BatchSendEmail whose reply was lost)
    before it is deleted; a list whose CreateReceiver reply was lost is looked up by its name.
    Returns (deleted, whether every list was looked at)."""
    before = now - call.deadline.limit_s - call.settings.settle_seconds
    deleted = skipped = 0
    seen: set[str] = set()
    while True:
        rows = store.unused_lists(before, CLEANUP_PAGE, skipped)
        for row in rows:
            if call.deadline.remaining() < CLEANUP_RESERVE_S:
                return deleted, False
            if row["Name"] in seen:  # looked at already in this run and still listed: leave it for the next
                skipped += 1
                continue
            seen.add(row["Name"])
            if row["IdemScope"] is not None and row["IdemKey"] is not None:
                record = store.idem_get(row["IdemScope"], row["IdemKey"])
                if record is not None and record["state"] != "done":
                    skipped += 1  # its run is running or in doubt: resolving it may adopt a task on this list
                    continue
            receiver_id = row["ReceiverId"]
            if receiver_id is None:
                reply = ses.call("ListReceivers", {"Offset": 0, "Limit": 10, "KeyWord": row["Name"]}, call.deadline)
                found = [item.get("ReceiverId") for item in reply.get("Data") or []
                         if isinstance(item, dict) and item.get("ReceiversName") == row["Name"]]
                if not found or not isinstance(found[0], int):
                    store.list_gone(name=row["Name"])  # CreateReceiver never made it
                    continue
                receiver_id = found[0]
                store.list_created(row["Name"], receiver_id)
            tasks = _tasks_on(call, ses, receiver_id)
            if tasks:
                # Its BatchSendEmail did create a task (the reply was lost): the list serves it until
                # the task is done, then goes as every finished task's list does.
                store.record_task(tasks[0]["TaskId"], receiver_id, row["Client"], str(tasks[0].get("Subject") or ""),
                                  True, time.time())
                continue
            if _delete_at_ses(call, ses, receiver_id):
                store.list_gone(name=row["Name"])
                deleted += 1
            else:
                skipped += 1
        if len(rows) < CLEANUP_PAGE:
            return deleted, True


def _schedules(call: Call) -> dict:
    from . import schedules

    return schedules.run_due(call)


JOBS = {"reconcile": _reconcile, "cleanup": _cleanup, "schedules": _schedules}


def fire(call: Call, facts: dict) -> Response:
    """Run what a timer event asks for; the answer goes to the log (SCF discards it)."""
    trigger, fired_at, message = facts.get("TriggerName"), facts.get("Time"), facts.get("Message")
    if not isinstance(trigger, str) or not isinstance(fired_at, str):
        raise InvalidInput("a timer event needs TriggerName and Time", code="MissingParameter")
    log.note(TriggerName=trigger, TimerTime=fired_at)  # not "Time": that is the line's own
    parsed = envelopes.extract(envelopes.TIMER_MESSAGE_JSON, facts) if isinstance(message, str) else message
    if isinstance(parsed, dict) and set(parsed) == {"Job"}:
        job = JOBS.get(parsed["Job"]) if isinstance(parsed["Job"], str) else None
        if job is None:
            raise NotFound("no such job; known: " + ", ".join(sorted(JOBS)), field="Message.Job")
        return Response(200, {"Job": parsed["Job"], "Result": job(call)})
    digest = parsed.get("Digest") if isinstance(parsed, dict) and set(parsed) == {"Digest"} else (
        message if isinstance(message, str) and parsed is None else None)
    if digest is not None:
        from . import digest as digests

        return Response(200, digests.run(call, str(digest), trigger, fired_at))
    if isinstance(parsed, dict):
        from .batching import run_batch

        # Scoped per trigger: the same Time on another trigger is another run.
        return Response(200, run_batch(call, "timer", parsed, f"timer:{trigger}"[:64], fired_at))
    raise InvalidInput("Message must name a digest, a job, or be a batch payload object", field="Message",
                       code="InvalidParameterValue")
