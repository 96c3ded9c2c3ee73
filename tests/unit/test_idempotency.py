"""The Idempotency object over an in-memory store: its states, replays, doubts, races and a store
that fails while a run settles (the SQL stores are checked against the same calls in tests/store)."""

from __future__ import annotations

import copy
import time

import pytest

from sesmail.errors import (
    IdempotencyConflict,
    IdempotencyInFlight,
    OutcomeInDoubt,
    OutcomeUnknown,
    SesRefused,
    StoreUnavailable,
)
from sesmail.idempotency import Claim, Decision, Idempotency, Record, State, fingerprint


class MemoryStore:
    """sesmail.store.IdempotencyStore in a dict, with hooks to lose races and to fail."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict] = {}
        self.down = False
        self.before_get = None  # called once before the next idem_get (another run acting in between)

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("the database is down")

    def idem_get(self, scope: str, key: str) -> dict | None:
        self._check()
        hook, self.before_get = self.before_get, None
        if hook is not None:
            hook()
        row = self.rows.get((scope, key))
        return copy.deepcopy(row) if row is not None else None

    def idem_insert(self, record: dict) -> bool:
        self._check()
        if (record["scope"], record["idem_key"]) in self.rows:
            return False
        self.rows[(record["scope"], record["idem_key"])] = copy.deepcopy(record)
        return True

    def idem_update(self, scope: str, key: str, version: int, **fields) -> bool:
        self._check()
        row = self.rows.get((scope, key))
        if row is None or row["version"] != version:
            return False
        row.update(copy.deepcopy(fields), version=version + 1)
        return True

    def idem_delete(self, scope: str, key: str, version: int) -> bool:
        self._check()
        row = self.rows.get((scope, key))
        if row is None or row["version"] != version:
            return False
        del self.rows[(scope, key)]
        return True

    def state(self, scope: str = "client", key: str = "k") -> str | None:
        row = self.rows.get((scope, key))
        return row["state"] if row else None


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def idem(store: MemoryStore, limit_s: float = 10.0) -> Idempotency:
    return Idempotency(store, "client", "k", limit_s, 86_400)


BODY = fingerprint({"Subject": "hi"})


def test_the_first_run_claims_the_key_and_a_repeat_replays_its_answer(store):
    started = idem(store).begin(BODY, {"Action": "SendEmail"})
    assert isinstance(started, Claim) and store.state() == State.RUNNING
    assert started.attempt["Action"] == "SendEmail" and started.attempt["Limit"] == 10.0
    with idem(store).running(started):
        body = {"MessageId": "m1"}
    idem(store).settle(started, body)
    assert store.state() == State.DONE
    replay = idem(store).begin(fingerprint({"Subject": "hi"}), {"Action": "SendEmail"})
    assert isinstance(replay, Record) and (replay.status, replay.response) == (200, body)


def test_another_body_under_the_same_key_is_a_conflict(store):
    idem(store).begin(BODY, {})
    with pytest.raises(IdempotencyConflict):
        idem(store).begin(fingerprint({"Subject": "other"}), {})


def test_a_repeat_while_the_first_run_is_inside_its_time_limit_is_in_flight(store):
    idem(store).begin(BODY, {})
    with pytest.raises(IdempotencyInFlight) as raised:
        idem(store).begin(BODY, {})
    assert 0 < raised.value.retry_after <= 10.0


def test_a_refusal_frees_the_key_and_an_unknown_outcome_leaves_it_in_doubt(store):
    started = idem(store).begin(BODY, {})
    with pytest.raises(SesRefused), idem(store).running(started):
        raise SesRefused("FailedOperation", "no")
    assert store.state() is None
    started = idem(store).begin(BODY, {})
    with pytest.raises(OutcomeUnknown), idem(store).running(started):
        raise OutcomeUnknown("lost")
    assert store.state() == State.IN_DOUBT
    assert "Ended" in store.rows[("client", "k")]["attempt"]


@pytest.mark.parametrize("verdict", [Decision.SENT, Decision.NOT_SENT, Decision.UNKNOWN])
def test_a_doubt_is_resolved_before_anything_is_sent_again(store, verdict):
    started = idem(store).begin(BODY, {"Sender": "a@shop.example"})
    with pytest.raises(OutcomeUnknown), idem(store).running(started):
        raise OutcomeUnknown("lost")
    asked: list[dict] = []

    def resolve(attempt: dict) -> Decision:
        asked.append(attempt)
        return Decision(verdict, {"MessageId": "adopted"}, retry_after=30)

    if verdict == Decision.UNKNOWN:
        with pytest.raises(OutcomeInDoubt) as raised:
            idem(store).begin(BODY, {"Sender": "a@shop.example"}, resolve)
        assert raised.value.retry_after == 30 and store.state() == State.IN_DOUBT
    else:
        outcome = idem(store).begin(BODY, {"Sender": "a@shop.example"}, resolve)
        if verdict == Decision.SENT:
            assert isinstance(outcome, Record) and outcome.response == {"MessageId": "adopted"}
            assert store.state() == State.DONE
        else:
            assert isinstance(outcome, Claim) and store.state() == State.RUNNING
    assert asked[0]["Sender"] == "a@shop.example" and "Ended" in asked[0]


def test_a_run_that_died_is_in_doubt_once_its_time_limit_has_passed(store):
    idem(store, limit_s=0.0).begin(BODY, {})  # the run dies: its record stays RUNNING
    seen: list[dict] = []
    outcome = idem(store).begin(BODY, {}, lambda attempt: seen.append(attempt) or Decision(Decision.NOT_SENT))
    assert isinstance(outcome, Claim) and seen[0]["Ended"] == pytest.approx(seen[0]["Started"])


def test_without_a_resolver_a_doubt_is_taken_over(store):
    idem(store, limit_s=0.0).begin(BODY, {})
    assert isinstance(idem(store).begin(BODY, {}), Claim)  # the operation's steps carry their own state


def test_an_expired_record_is_taken_over_whatever_its_body(store):
    idem(store).begin(BODY, {})
    store.rows[("client", "k")]["expires_at"] = time.time() - 1
    assert isinstance(idem(store).begin(fingerprint({"Subject": "other"}), {}), Claim)


def test_a_key_freed_between_insert_and_read_is_claimed_on_the_next_pass(store):
    first = idem(store).begin(BODY, {})
    store.before_get = lambda: idem(store).free(first)
    assert isinstance(idem(store).begin(BODY, {}), Claim)


def test_two_resolvers_racing_for_one_doubt_never_both_claim_it(store):
    started = idem(store).begin(BODY, {})
    with pytest.raises(OutcomeUnknown), idem(store).running(started):
        raise OutcomeUnknown("lost")
    won: list[Claim | Record] = []

    def other_resolver_first() -> None:
        won.append(idem(store).begin(BODY, {}, lambda attempt: Decision(Decision.NOT_SENT)))

    store.before_get = other_resolver_first
    with pytest.raises(IdempotencyInFlight):  # the other one now runs it
        idem(store).begin(BODY, {}, lambda attempt: Decision(Decision.NOT_SENT))
    assert isinstance(won[0], Claim)


def test_progress_is_saved_and_a_changed_record_stops_the_run(store):
    started = idem(store).begin(BODY, {})
    assert isinstance(started, Claim)
    started.progress(Tasks={"0": 7})
    assert store.rows[("client", "k")]["attempt"]["Tasks"] == {"0": 7}
    store.rows[("client", "k")]["version"] += 1  # someone else took the record over
    with pytest.raises(StoreUnavailable):
        started.progress(Tasks={"0": 7, "1": 8})


def test_a_dead_store_while_settling_never_turns_an_answer_into_an_error(store):
    started = idem(store).begin(BODY, {})
    store.down = True
    idem(store).settle(started, {"MessageId": "m1"})  # logged, not raised: the key is left in doubt
    store.down = False
    assert store.state() == State.RUNNING


def test_once_runs_begin_run_and_settle(store):
    calls: list[Claim] = []
    body, replayed = idem(store).once(BODY, {}, lambda claim: calls.append(claim) or {"TaskId": 1})
    assert (body, replayed, len(calls)) == ({"TaskId": 1}, False, 1)
    body, replayed = idem(store).once(BODY, {}, lambda claim: calls.append(claim) or {"TaskId": 2})
    assert (body, replayed, len(calls)) == ({"TaskId": 1}, True, 1)
