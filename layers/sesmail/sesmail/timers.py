"""Timer invocations of the batch function: what `Message` (the trigger's argument) asks for.

`Message` is a digest's name (a plain string, or `{"Digest": "<name>"}`), a built-in job
(`{"Job": "reconcile"}`, `{"Job": "cleanup"}`), or otherwise a JSON object that is a batch payload.
Timer invocations are asynchronous: SCF retries a failed run (twice by default) and keeps retrying
system errors for up to 6 hours. So a run is keyed by `TriggerName` + `Time`: the same event
delivered again never sends what an earlier run sent, and finishes what a crashed run left undone.
"""

from __future__ import annotations

import time
from typing import Any

from . import envelopes, log
from .errors import InvalidInput, NotFound
from .http import Call, Response

__all__ = ["JOBS", "fire"]


def _reconcile(call: Call) -> dict:
    from . import reconcile

    return reconcile.run(call.settings, call.deadline)


def _cleanup(call: Call) -> dict:
    """Expired records out (SPEC 5: personal data has an end), finished recipient lists deleted."""
    from .store import open_store

    settings = call.settings
    now = time.time()
    store = open_store(settings.database_url)
    counts = store.purge(now, now - settings.idempotency_ttl)
    counts["Lists"] = _delete_finished_lists(call, store)
    return counts


def _delete_finished_lists(call: Call, store: Any) -> int:
    """Lists we created are deleted once SES reports their task done (TaskStatus 10)."""
    from .ses import client_for

    ses = client_for(call.settings)
    deleted = 0
    for task in store.owned_lists(limit=50):
        if call.deadline.remaining() < 5:
            break
        reply = ses.call("ListSendTasks", {"Offset": 0, "Limit": 10, "ReceiverId": task["ReceiverId"]}, call.deadline)
        statuses = {item.get("TaskId"): item.get("TaskStatus") for item in reply.get("Data") or []}
        if statuses.get(task["TaskId"]) == 10:
            ses.call("DeleteReceiver", {"ReceiverId": task["ReceiverId"]}, call.deadline)
            store.list_deleted(task["TaskId"])
            deleted += 1
    return deleted


JOBS = {"reconcile": _reconcile, "cleanup": _cleanup}


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
        return Response(200, run_batch(call.settings, call.deadline, "timer", parsed, f"timer:{trigger}"[:64],
                                       fired_at))
    raise InvalidInput("Message must name a digest, a job, or be a batch payload object", field="Message",
                       code="InvalidParameterValue")
