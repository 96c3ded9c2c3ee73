"""Idempotency-Key: one SES call per key and body, whatever the caller retries
(docs/reliability.md#idempotency-keys).

A `Record` moves through these states (`State`), written before the SES call and completed after it:
  RUNNING -> DONE       SES answered; the first response is replayed until the record expires
  RUNNING -> (deleted)  it failed before anything could have been sent: the key is free again
  RUNNING -> IN_DOUBT   the outcome is unknown (reply lost, timeout, InternalError); so is a
                        RUNNING record older than its function's time limit (its run died)
A repeat of an in-doubt key resolves the doubt first (for SendEmail through GetSendEmailStatus,
docs/reliability.md#doubt): adopt the MessageId SES did assign, or free the key once SES provably
did not send. Claims are atomic: an INSERT on the (scope, key) primary key, then compare-and-swap
updates on the record's version.

    idem = Idempotency(store, scope, key, time_limit_s, ttl_s)
    started = idem.begin(fingerprint(payload), attempt, resolve)
    if isinstance(started, Record):
        ...                                 # answered before: replay started.status, started.response
    with idem.running(started):             # unknown outcome -> IN_DOUBT, any other failure -> deleted
        body = operation(started)
    idem.settle(started, body)              # DONE
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from . import log
from .errors import (
    IdempotencyConflict,
    IdempotencyInFlight,
    InvalidInput,
    OutcomeInDoubt,
    OutcomeUnknown,
    StoreUnavailable,
)

if TYPE_CHECKING:
    from .store import IdempotencyStore

__all__ = ["MAX_KEY_LENGTH", "Claim", "Decision", "Idempotency", "Record", "State", "check_key", "fingerprint"]

MAX_KEY_LENGTH = 255
# Claiming loses a race at most this often (the record changed between reading and swapping it).
_PASSES = 5


class State:
    """A record's `state` column."""

    RUNNING = "running"  # a run holds the key: written before the SES call
    DONE = "done"        # SES answered: `response` is replayed
    IN_DOUBT = "doubt"   # SES may or may not have sent: the next repeat resolves it first


@dataclass
class Record:
    """One Idempotency-Key's row. `attempt` describes the call for a later doubt resolution
    (sender, recipients …, with `Started`, `Limit`, and `Ended` once known)."""

    scope: str
    key: str
    fingerprint: str
    state: str
    attempt: dict
    created_at: float
    updated_at: float
    expires_at: float
    version: int = 1
    status: int | None = None
    response: dict | None = None

    @classmethod
    def from_row(cls, row: dict) -> Record:
        raw = row["response"]
        return cls(row["scope"], row["idem_key"], row["fingerprint"], row["state"], row["attempt"] or {},
                   row["created_at"], row["updated_at"], row["expires_at"], row["version"], row["status"],
                   json.loads(raw) if raw else None)

    def row(self) -> dict:
        """The store's form (sesmail.store.IdempotencyStore)."""
        return {"scope": self.scope, "idem_key": self.key, "fingerprint": self.fingerprint, "state": self.state,
                "status": self.status, "response": _encode(self.response), "attempt": self.attempt,
                "created_at": self.created_at, "updated_at": self.updated_at, "expires_at": self.expires_at,
                "version": self.version}

    def window_end(self) -> float:
        """When the run that wrote this record had to be over: its start plus its time limit."""
        return float(self.attempt.get("Started", self.created_at)) + float(self.attempt.get("Limit", 0))


class Decision:
    """What resolving an in-doubt attempt concluded."""

    SENT = "sent"          # SES did send: `result` is the response to record and replay
    NOT_SENT = "not_sent"  # SES provably did not send: the key is free
    UNKNOWN = "unknown"    # too early to tell: answer 503 with Retry-After

    def __init__(self, verdict: str, result: dict | None = None, retry_after: float = 0) -> None:
        self.verdict, self.result, self.retry_after = verdict, result, retry_after


Resolver = Callable[[dict], Decision]


class Claim:
    """The record this run owns. An operation of several SES calls (a batch over several
    recipient lists) saves its progress here, so that a run that dies half-way is finished by
    the next one without repeating what already went out."""

    def __init__(self, store: IdempotencyStore, scope: str, key: str, version: int, attempt: dict) -> None:
        self.store, self.scope, self.key, self.version, self.attempt = store, scope, key, version, attempt

    def progress(self, **fields: Any) -> None:
        """Merge `fields` into the attempt; raises StoreUnavailable when it cannot be saved (the
        caller must then stop: an unsaved step could be repeated)."""
        attempt = dict(self.attempt, **fields)
        if not self.store.idem_update(self.scope, self.key, self.version, attempt=attempt, updated_at=time.time()):
            raise StoreUnavailable("the idempotency record changed under this run")
        self.version += 1
        self.attempt = attempt


def fingerprint(payload: Any) -> str:
    """The body as parsed JSON, canonicalised: key order and whitespace do not make a new body."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def check_key(key: str) -> str:
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput(f"must be 1 to {MAX_KEY_LENGTH} printable characters", field="Idempotency-Key",
                           code="InvalidParameterValue.IdempotencyKey")
    return key


def _encode(body: dict | None) -> str | None:
    return None if body is None else json.dumps(body, separators=(",", ":"))


def _not_sent(attempt: dict) -> Decision:
    return Decision(Decision.NOT_SENT)


class Idempotency:
    """At most one run of an operation per (scope, key), for `ttl_s` seconds. `time_limit_s` is
    the invocation's: a RUNNING record older than that belongs to a run that died."""

    def __init__(self, store: IdempotencyStore, scope: str, key: str, time_limit_s: float, ttl_s: float) -> None:
        self.store, self.scope, self.key = store, scope, key
        self.time_limit_s, self.ttl_s = time_limit_s, ttl_s

    def begin(self, payload_fingerprint: str, attempt: dict, resolve: Resolver | None = None) -> Claim | Record:
        """A Claim on the key for this run, or the DONE Record whose answer to replay. A record in
        doubt is resolved first with `resolve(attempt)` (by default: provably not sent, for an
        operation whose steps carry their own state). Raises IdempotencyConflict (another body),
        IdempotencyInFlight (the first run is still going) or OutcomeInDoubt (not settled yet)."""
        now = time.time()
        mine = Record(self.scope, self.key, payload_fingerprint, State.RUNNING,
                      dict(attempt, Started=now, Limit=self.time_limit_s), now, now, now + self.ttl_s)
        for _ in range(_PASSES):  # each pass either decides or lost a race that changed the record
            if self.store.idem_insert(mine.row()):
                return Claim(self.store, self.scope, self.key, mine.version, mine.attempt)
            row = self.store.idem_get(self.scope, self.key)
            if row is None:
                continue  # freed between our INSERT and SELECT
            found = Record.from_row(row)
            outcome = self._over(found, mine, resolve or _not_sent)
            if outcome is not None:
                return outcome
        raise IdempotencyInFlight("this Idempotency-Key is contended; retry shortly", field="Idempotency-Key",
                                  retry_after=1)

    def _over(self, found: Record, mine: Record, resolve: Resolver) -> Claim | Record | None:
        """What an existing record means for this run; None when it changed under us (try again)."""
        now = time.time()
        if found.expires_at <= now:
            return self._take_over(found, mine)
        if found.fingerprint != mine.fingerprint:
            raise IdempotencyConflict("this Idempotency-Key was used with a different body", field="Idempotency-Key")
        if found.state == State.DONE:
            return found
        window_end = found.window_end()
        if found.state == State.RUNNING and now < window_end:
            raise IdempotencyInFlight("the first request with this Idempotency-Key is still running",
                                      field="Idempotency-Key", retry_after=window_end - now)
        # In doubt, or RUNNING past its time limit: that run died somewhere around the SES call.
        found.attempt.setdefault("Ended", window_end)
        decision = resolve(found.attempt)
        log.info("idempotency doubt resolved", Verdict=decision.verdict)
        if decision.verdict == Decision.SENT:
            body = decision.result or {}
            if self.store.idem_update(self.scope, self.key, found.version, state=State.DONE, status=200,
                                      response=_encode(body), updated_at=now):
                found.state, found.status, found.response, found.version = State.DONE, 200, body, found.version + 1
                return found
            return None
        if decision.verdict == Decision.NOT_SENT:
            return self._take_over(found, mine)
        raise OutcomeInDoubt("an earlier attempt with this Idempotency-Key may have been sent; SES has not"
                             " settled yet", field="Idempotency-Key", retry_after=decision.retry_after)

    def _take_over(self, found: Record, mine: Record) -> Claim | None:
        if not self.store.idem_update(self.scope, self.key, found.version, fingerprint=mine.fingerprint,
                                      state=State.RUNNING, status=None, response=None, attempt=mine.attempt,
                                      created_at=mine.created_at, updated_at=mine.updated_at,
                                      expires_at=mine.expires_at):
            return None
        return Claim(self.store, self.scope, self.key, found.version + 1, mine.attempt)

    @contextlib.contextmanager
    def running(self, claim: Claim) -> Iterator[Claim]:
        """Around the operation: an unknown outcome leaves the key in doubt, any other failure
        frees it (nothing was sent: SES refused, could not be reached, or was never called)."""
        try:
            yield claim
        except OutcomeUnknown:
            self.in_doubt(claim)
            raise
        except BaseException:
            self.free(claim)
            raise

    def settle(self, claim: Claim, body: dict) -> None:
        """The operation answered: `body` is replayed from now on."""
        self._save(claim, State.DONE, status=200, response=_encode(body))

    def in_doubt(self, claim: Claim) -> None:
        self._save(claim, State.IN_DOUBT, attempt=dict(claim.attempt, Ended=time.time()))

    def free(self, claim: Claim) -> None:
        self._save(claim, None)

    def _save(self, claim: Claim, state: str | None, **fields: Any) -> None:
        """Complete, doubt or free the record. A store failure here must not turn a sent mail into an
        error: it is logged and the record stays RUNNING, which a repeat treats as in doubt."""
        try:
            if state is None:
                self.store.idem_delete(self.scope, self.key, claim.version)
            else:
                self.store.idem_update(self.scope, self.key, claim.version, state=state, updated_at=time.time(),
                                       **fields)
        except StoreUnavailable:
            log.error("idempotency record could not be updated; the key is left in doubt", State=state)

    def once(self, payload_fingerprint: str, attempt: dict, operation: Callable[[Claim], dict],
             resolve: Resolver | None = None) -> tuple[dict, bool]:
        """begin, run and settle, for a caller with nothing to do in between: (body, replayed)."""
        started = self.begin(payload_fingerprint, attempt, resolve)
        if isinstance(started, Record):
            return started.response or {}, True
        with self.running(started):
            body = operation(started)
        self.settle(started, body)
        return body, False
