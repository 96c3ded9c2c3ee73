"""Idempotency-Key: one SES call per key and body, whatever the caller retries (SPEC 3.3, 5).

A record moves through these states, written before the SES call and completed after it:
  running -> done      SES answered; the first response is replayed for 24 h
  running -> (gone)    it failed before anything could have been sent: the key is free again
  running -> doubt     the outcome is unknown (reply lost, timeout, InternalError); also a
                       "running" record older than its function's time limit (its run died)
A repeat of an in-doubt key resolves the doubt first (for SendEmail through GetSendEmailStatus):
adopt the MessageId SES did assign, or free the key once SES provably did not send.
Claims are atomic: an INSERT on the (scope, key) primary key, then compare-and-swap updates.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Callable

from . import log
from .errors import (
    IdempotencyConflict,
    IdempotencyInFlight,
    InvalidInput,
    OutcomeInDoubt,
    OutcomeUnknown,
    StoreUnavailable,
)

__all__ = ["MAX_KEY_LENGTH", "Claim", "Decision", "fingerprint", "run"]

MAX_KEY_LENGTH = 255


def fingerprint(payload: Any) -> str:
    """The body as parsed JSON, canonicalised: key order and whitespace do not make a new body."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def check_key(key: str) -> str:
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput(f"must be 1 to {MAX_KEY_LENGTH} printable characters", field="Idempotency-Key",
                           code="InvalidParameterValue.IdempotencyKey")
    return key


class Decision:
    """What resolving an in-doubt attempt concluded."""

    SENT = "sent"          # SES did send: `result` is the response to record and replay
    NOT_SENT = "not_sent"  # SES provably did not send: the key is free
    UNKNOWN = "unknown"    # too early to tell: answer 503 with Retry-After

    def __init__(self, verdict: str, result: dict | None = None, retry_after: float = 0) -> None:
        self.verdict, self.result, self.retry_after = verdict, result, retry_after


class Claim:
    """The record this run owns. An operation of several SES calls (a batch over several
    recipient lists) saves its progress here, so that a run that dies half-way is finished by
    the next one without repeating what already went out."""

    def __init__(self, store: Any, scope: str, key: str, version: int, attempt: dict) -> None:
        self.store, self.scope, self.key, self.version, self.attempt = store, scope, key, version, attempt

    def progress(self, **fields) -> None:
        """Merge `fields` into the attempt; raises StoreUnavailable when it cannot be saved (the
        caller must then stop: an unsaved step could be repeated)."""
        attempt = dict(self.attempt, **fields)
        if not self.store.idem_update(self.scope, self.key, self.version, attempt=attempt, updated_at=time.time()):
            raise StoreUnavailable("the idempotency record changed under this run")
        self.version += 1
        self.attempt = attempt


def run(store: Any, scope: str, key: str, payload_fingerprint: str, attempt: dict, time_limit_s: float,
        ttl_s: int, operation: Callable[[Claim], dict], resolve: Callable[[dict], Decision],
        on_success: Callable[[dict], None] | None = None) -> tuple[int, dict, bool]:
    """Run `operation(claim)` at most once for (scope, key); returns (status, body, replayed).

    `attempt` describes the call (sender, recipients …) for a later doubt resolution; `resolve`
    turns such a description into a Decision (and may leave resume state for the operation).
    """
    now = time.time()
    record: dict[str, Any] = {"scope": scope, "idem_key": key, "fingerprint": payload_fingerprint, "state": "running",
              "status": None, "response": None, "attempt": dict(attempt, Started=now, Limit=time_limit_s),
              "created_at": now, "updated_at": now, "expires_at": now + ttl_s, "version": 1}
    version = _claim(store, record, resolve)
    if isinstance(version, tuple):
        return version  # a replay, or a doubt resolved as "sent"
    claim = Claim(store, scope, key, version, record["attempt"])
    try:
        body = operation(claim)
    except OutcomeUnknown:
        _settle(store, scope, key, claim.version, state="doubt", attempt=dict(claim.attempt, Ended=time.time()))
        raise
    except BaseException:
        # Nothing was sent (SES refused, could not be reached, or we failed before calling it).
        _settle(store, scope, key, claim.version, state=None)
        raise
    version = claim.version
    if on_success is not None:
        try:
            on_success(body)
        except StoreUnavailable:
            log.error("a sent message could not be recorded", Key="present")
    _settle(store, scope, key, version, state="done", status=200,
            response=json.dumps(body, separators=(",", ":")))
    return 200, body, False


def _claim(store: Any, record: dict, resolve: Callable[[dict], Decision]):
    """The version of the record we now own, or (status, body, replayed) to answer at once."""
    scope, key = record["scope"], record["idem_key"]
    for _ in range(5):  # each pass either decides or lost a race that changed the record
        if store.idem_insert(record):
            return 1
        existing = store.idem_get(scope, key)
        if existing is None:
            continue  # freed between our INSERT and SELECT
        now = time.time()
        if existing["expires_at"] <= now:
            if _take_over(store, existing, record):
                return existing["version"] + 1
            continue
        if existing["fingerprint"] != record["fingerprint"]:
            raise IdempotencyConflict("this Idempotency-Key was used with a different body",
                                      field="Idempotency-Key")
        state, attempt = existing["state"], existing["attempt"] or {}
        if state == "done":
            return existing["status"], json.loads(existing["response"]), True
        started = float(attempt.get("Started", existing["created_at"]))
        limit = float(attempt.get("Limit", 0))
        if state == "running" and now < started + limit:
            raise IdempotencyInFlight("the first request with this Idempotency-Key is still running",
                                      field="Idempotency-Key", retry_after=started + limit - now)
        # In doubt, or "running" past its time limit: that run died somewhere around the SES call.
        attempt.setdefault("Ended", started + limit)
        decision = resolve(attempt)
        log.info("idempotency doubt resolved", Verdict=decision.verdict)
        if decision.verdict == Decision.SENT:
            body = decision.result or {}
            if store.idem_update(scope, key, existing["version"], state="done", status=200,
                                 response=json.dumps(body, separators=(",", ":")), updated_at=now):
                return 200, body, True
            continue
        if decision.verdict == Decision.NOT_SENT:
            if _take_over(store, existing, record):
                return existing["version"] + 1
            continue
        raise OutcomeInDoubt("an earlier attempt with this Idempotency-Key may have been sent; SES has not"
                             " settled yet", field="Idempotency-Key", retry_after=decision.retry_after)
    raise IdempotencyInFlight("this Idempotency-Key is contended; retry shortly", field="Idempotency-Key",
                              retry_after=1)


def _take_over(store: Any, existing: dict, record: dict) -> bool:
    return store.idem_update(record["scope"], record["idem_key"], existing["version"],
                             fingerprint=record["fingerprint"], state="running", status=None, response=None,
                             attempt=record["attempt"], created_at=record["created_at"],
                             updated_at=record["updated_at"], expires_at=record["expires_at"])


def _settle(store: Any, scope: str, key: str, version: int, state: str | None, **fields) -> None:
    """Complete, doubt or free the record. A store failure here must not turn a sent mail into an
    error: it is logged and the record stays "running", which a repeat treats as in doubt."""
    try:
        if state is None:
            store.idem_delete(scope, key, version)
        else:
            store.idem_update(scope, key, version, state=state, updated_at=time.time(), **fields)
    except StoreUnavailable:
        log.error("idempotency record could not be updated; the key is left in doubt", State=state)
