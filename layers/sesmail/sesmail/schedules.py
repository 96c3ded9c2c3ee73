"""Scheduled and recurring topic batches, fired by sesmail's own timer (docs/topics.md#schedules).

SES cannot take a reader out of a recipient list it already holds, so a `TaskType` 2 or 3 batch
with a `Topic` is not handed to SES: sesmail keeps it (its inline recipients included) and the
`schedules` job of the batch function's timer fires it. Each firing builds the list then, without
the readers who unsubscribed since, and sends it as an immediate batch, on the client's policy as
it is at that moment (batching.run_batch).

Exactly once per firing: a firing is the idempotency key `sched:<id>` / `<firing time>`, so a
timer delivered twice, two instances at once, a crash between the SES call and the store, or a
lost reply end with one task per list (docs/reliability.md#schedules). The schedule row moves on
by compare-and-swap once its firing is settled. A firing later than LATE_MAX_S (or the
idempotency TTL, if shorter) is never sent: past that its key may be gone, and a newsletter a
day late is no longer the one that was scheduled. A recurring schedule sends only the latest
firing that fell due while nothing ran, once, and counts the ones before it as missed.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from . import idempotency, log, policy, rules
from .errors import InvalidInput, NotFound, SesmailError
from .http import Call, Response

if TYPE_CHECKING:
    from .store import ScheduleStore

__all__ = ["LATE_MAX_S", "PREFIX", "cancel", "create", "is_schedule_id", "run_due", "status"]

PREFIX = "sched-"  # sesmail's own TaskIds: SES's are integers
_ID = re.compile(r"sched-[0-9a-f]{24}")
LATE_MAX_S = 86_400.0  # a firing later than this is missed, not sent
PAGE = 20  # schedules read per page by the job
RESERVE_S = 20.0  # a firing is not started with less of the function's time left than this
# States of a schedule row; every one but SCHEDULED is an end (store/schedules_sql.py).
SCHEDULED, DONE, CANCELLED, MISSED = "scheduled", "done", "cancelled", "missed"
_STATUS = {SCHEDULED: "Scheduled", DONE: "Done", CANCELLED: "Cancelled", MISSED: "Missed"}


def is_schedule_id(task_id: str) -> bool:
    return task_id.startswith(PREFIX)


def _time_text(when: float | None) -> str | None:
    """A Unix time as SES's BeginTime reads it, with its offset said: `YYYY-MM-DD HH:MM:SS+08:00`."""
    if when is None:
        return None
    return datetime.fromtimestamp(when, timezone.utc).astimezone(rules.BEIJING).strftime("%Y-%m-%d %H:%M:%S+08:00")


# -- POST /batch with a Topic and TaskType 2 or 3 --------------------------------------------------
def create(call: Call, client: str, payload: dict, params: dict, audience: bool | str, scope: str,
           key: str | None, payload_fingerprint: str) -> dict:
    """Keep a validated, policy-checked topic batch (`params`, its raw `payload`) for sesmail's
    timer; the answer names the schedule and its first firing. With an Idempotency-Key the
    schedule's id is derived from the key and the body, so a run that died after storing it and
    is taken over finds it instead of storing a second one."""
    from . import topics

    # What every firing adds (each reader's preferences_url) must fit now, or no firing ever could.
    recipients = params["Recipients"]
    topics.add_to_recipients(call.settings, audience, [dict(r) for r in recipients], list(range(len(recipients))))
    timing = params.get("TimedParam") or params["CycleParam"]
    first = rules.begin_time(timing["BeginTime"]).timestamp()
    hours = params["CycleParam"]["IntervalTime"] if params["TaskType"] == 3 else None
    if params.get("CycleParam", {}).get("TermCycle") == 1:
        hours = None  # "end the recurrence": its first firing is its last
    if key is None:
        schedule_id = PREFIX + uuid.uuid4().hex[:24]
    else:
        seed = "\n".join((scope, key, payload_fingerprint)).encode("utf-8", "surrogatepass")
        schedule_id = PREFIX + hashlib.sha256(seed).hexdigest()[:24]
    # Each firing is this payload sent now, with the recipients as they are then.
    batch = {name: value for name, value in payload.items() if name not in ("Recipients", "TimedParam", "CycleParam")}
    batch["TaskType"] = 1
    now = time.time()
    row = {"schedule_id": schedule_id, "client": client, "task_type": params["TaskType"],
           "interval_s": None if hours is None else hours * 3600.0, "payload": batch, "state": SCHEDULED,
           "next_at": first, "fired": 0, "missed": 0, "failed": 0, "last_fire_at": None, "last_result": None,
           "created_at": now, "updated_at": now}
    from .store.database import ConstraintViolation

    store = call.store
    try:
        store.add_schedule(row, recipients)
    except ConstraintViolation:
        found = store.get_schedule(schedule_id)  # stored by the run this one took over from
        if found is None:
            raise
        row = found
    log.note(TaskIds=[schedule_id], Recipients=len(recipients))
    return {"TaskId": schedule_id, "TaskIds": [schedule_id], "ScheduledBy": "sesmail",
            "NextSendTime": _time_text(row["next_at"])}


# -- GET and DELETE /batch/tasks/<sched-…> ---------------------------------------------------------
def _owned(call: Call, schedule_id: str) -> dict:
    """The schedule, if this key's client may see it (its own; every one for a client without a
    policy or with `admin`); otherwise 404, as for a task that does not exist."""
    row = call.store.get_schedule(schedule_id) if _ID.fullmatch(schedule_id) else None
    if row is None or (row["client"] != call.client and not policy.sees_everything(call.settings, call.client)):
        raise NotFound("no such task", field="TaskId")
    return row


def _describe(row: dict) -> dict:
    payload = row["payload"]
    out: dict[str, Any] = {
        "TaskId": row["schedule_id"], "ScheduledBy": "sesmail", "TaskType": row["task_type"],
        "Status": _STATUS.get(row["state"], row["state"]), "Subject": payload.get("Subject"),
        "Topic": payload.get("Topic"),
        "NextSendTime": _time_text(row["next_at"]) if row["state"] == SCHEDULED else None,
        "Firings": row["fired"], "Missed": row["missed"], "Failed": row["failed"],
        "CreateTime": _time_text(row["created_at"])}
    if row["interval_s"]:
        out["IntervalTime"] = int(row["interval_s"] // 3600)
    if row["last_result"] is not None:
        out["LastFiring"] = row["last_result"]
    return out


def status(call: Call) -> Response:
    """GET /batch/tasks/<sched-…>: what sesmail knows of its own schedule (SES has never seen it)."""
    return Response(200, {"Task": _describe(_owned(call, call.params["TaskId"]))})


def cancel(call: Call) -> Response:
    """DELETE /batch/tasks/<sched-…>: no further firing. A firing already under way finishes (SES
    cannot be called back); cancelling an ended schedule changes nothing."""
    task_id = call.params["TaskId"]
    if not is_schedule_id(task_id):
        raise InvalidInput("only sesmail's own schedules (TaskIds starting `sched-`) can be cancelled: SES has no call"
                           " that cancels a task", field="TaskId", code="InvalidParameterValue")
    for _ in range(3):  # the job may move the row on between our read and our swap
        row = _owned(call, task_id)
        if row["state"] != SCHEDULED:
            break
        if call.store.update_schedule(task_id, row["version"], state=CANCELLED, next_at=None, updated_at=time.time()):
            row = _owned(call, task_id)
            break
    log.note(TaskIds=[task_id])
    return Response(200, {"Task": _describe(row)})


# -- the `schedules` job -------------------------------------------------------------------------------
def _late_max(call: Call) -> float:
    return min(LATE_MAX_S, float(call.settings.idempotency_ttl))


def _retried(exc: SesmailError) -> bool:
    """Whether a firing's failure is tried again by the next run (within LATE_MAX_S): the service
    or the store unavailable, an outcome in doubt, another instance on the same firing, a rate, or
    marketing mail paused by the reputation guard. Anything else is this firing's refusal."""
    from .guard import CODE as GUARD_PAUSED

    return exc.status >= 500 or exc.status in (409, 429) or exc.code == GUARD_PAUSED


def run_due(call: Call) -> dict:
    """Fire every schedule that is due, as the function's time allows; what is left (or retried)
    the next run finds still due."""
    counts: dict[str, Any] = {"Fired": 0, "Failed": 0, "Missed": 0, "Deferred": 0}
    seen: set[str] = set()
    offset = 0
    while True:
        rows = call.store.due_schedules(time.time(), PAGE + offset)[offset:]
        for row in rows:
            if row["schedule_id"] in seen:
                offset += 1
                continue
            seen.add(row["schedule_id"])
            if call.deadline.remaining() < RESERVE_S:
                counts["Unfinished"] = True
                log.warning("the schedules job ran out of time; the next run continues")
                return counts
            outcome = _fire(call, row["schedule_id"])
            if outcome is not None:
                counts[outcome] += 1
            if outcome in (None, "Deferred"):
                offset += 1  # still due: the next page starts after it
        if len(rows) < PAGE:
            return counts


def _fire(call: Call, schedule_id: str) -> str | None:
    """One due firing of one schedule: "Fired", "Failed", "Missed", "Deferred" (tried again by the
    next run), or None when another instance moved the schedule on first."""
    store = call.store
    row = store.get_schedule(schedule_id)  # fresh: it may have been cancelled or fired since the page was read
    now = time.time()
    if row is None or row["state"] != SCHEDULED or row["next_at"] is None or row["next_at"] > now:
        return None
    due, interval = float(row["next_at"]), row["interval_s"]
    skipped = int((now - due) // interval) if interval else 0
    due += skipped * (interval or 0)  # the latest firing that fell due: the ones before it are missed
    scope, key = f"sched:{schedule_id}", str(int(due))
    found = store.idem_get(scope, key)
    done = found is not None and found["state"] == idempotency.State.DONE
    if (found is not None and found["state"] == idempotency.State.RUNNING
            and now < idempotency.Record.from_row(found).window_end()):
        return "Deferred"  # another instance is sending it: building its list here too would be wasted
    if now - due > _late_max(call) and not done:
        log.warning("a schedule's firing is too late to send: missed", TaskId=schedule_id, Late=round(now - due))
        return _advance(store, row, due, skipped + 1, None, "Missed")
    if skipped:
        log.warning("firings of a schedule fell due while nothing ran: only the latest is sent", TaskId=schedule_id,
                    Missed=skipped)
        if not store.update_schedule(schedule_id, row["version"], next_at=due, missed=row["missed"] + skipped,
                                     updated_at=now):
            return None
        row = dict(row, next_at=due, missed=row["missed"] + skipped, version=row["version"] + 1)
    if found is not None and done:
        from json import loads

        result = _firing(due, loads(found["response"] or "{}"))  # sent; the schedule was not moved on
    else:
        try:
            result = _firing(due, _send(call, row, scope, key))
        except SesmailError as exc:
            if _retried(exc):
                log.warning("a schedule's firing is tried again by the next run", TaskId=schedule_id, Code=exc.code)
                return "Deferred"
            log.warning("a schedule's firing was refused", TaskId=schedule_id, Code=exc.code)
            return _advance(store, row, due, 0, {"Time": _time_text(due), "Error": exc.to_error()}, "Failed")
    return _advance(store, row, due, 0, result, "Fired")


def _send(call: Call, row: dict, scope: str, key: str) -> dict:
    """The firing as an immediate batch of the schedule's client, held to its policy as it is now."""
    from .batching import run_batch

    client = row["client"]
    if client != "timer" and client not in set(call.settings.api_keys.values()):
        from .errors import Forbidden

        raise Forbidden("the schedule's client has no API key any more", field="TaskId",
                        code="UnauthorizedOperation.ClientRetired")
    policy.check_scope(call.settings, client, "batch")
    payload = dict(row["payload"], Recipients=call.store.schedule_recipients(row["schedule_id"]))
    # One firing, one body: the recipients may change (an erasure) between a crashed run and its retry.
    return run_batch(call, client, payload, scope, key, idempotency.fingerprint([scope, key]))


def _firing(due: float, body: dict) -> dict:
    out = {"Time": _time_text(due), "TaskIds": body.get("TaskIds") or []}
    for name in ("Suppressed", "RateLimited"):
        if body.get(name):
            out[name] = body[name]
    return out


def _advance(store: ScheduleStore, row: dict, due: float, missed: int, result: dict | None,
             outcome: str) -> str | None:
    """Record the firing at `due` and move the schedule to its next one (or end it), unless another
    instance recorded it first."""
    interval = row["interval_s"]
    following = due + interval if interval else None
    counter = {"Fired": "fired", "Failed": "failed", "Missed": "missed"}[outcome]
    ended = MISSED if outcome == "Missed" else DONE
    fields: dict[str, Any] = {counter: row[counter] + (missed if outcome == "Missed" else 1), "next_at": following,
                              "updated_at": time.time(), "state": SCHEDULED if following is not None else ended}
    if result is not None:
        fields.update(last_fire_at=due, last_result=result)
    if store.update_schedule(row["schedule_id"], row["version"], **fields):
        return outcome
    # Moved under us: cancelled while this firing ran (recorded, without un-cancelling it), or
    # another instance recorded the firing already.
    fresh = store.get_schedule(row["schedule_id"])
    if (fresh is not None and result is not None and fresh["state"] == CANCELLED
            and (fresh["last_fire_at"] or 0) < due):
        store.update_schedule(row["schedule_id"], fresh["version"], **{counter: fresh[counter] + 1},
                              last_fire_at=due, last_result=result, updated_at=time.time())
        return outcome
    return None
