"""The store's contract, one suite run against SQLite, PostgreSQL and MariaDB (standing in for MySQL).

Every public method of SqlStore, and what the functions rely on: a duplicate is skipped by a unique
key (also under concurrency), a batch is all or nothing, a lost connection is re-opened, a dead
server answers StoreUnavailable quickly, and migrations can run twice and race.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import threading
import time

import pytest

from sesmail.errors import StoreUnavailable
from sesmail.store import new_store, open_store, reset
from sesmail.store.server import ServerUrl
from sesmail.store.sql import SCHEMA_VERSION, ConstraintViolation

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOW = 1_795_000_000.0
HASH_A, HASH_Z = "a" * 64, "f" * 64  # what rules.address_hash gives: 64 hex digits


def event(n: int, **overrides) -> dict:
    row = {"event_id": f"{n:064x}", "message_id": f"msg-{n % 3}", "email": f"user{n % 5}@example.com",
           "event": "delivered", "event_time": 1_700_000_000 + n, "details": {"BulkId": f"msg-{n % 3}"},
           "raw": json.dumps({"event": "delivered", "n": n}), "polled": False, "stored_at": NOW,
           "expires_at": NOW + 3600}
    row.update(overrides)
    return row


def idem_record(key: str = "key-1", **overrides) -> dict:
    record = {"scope": "web", "idem_key": key, "fingerprint": "f" * 64, "state": "running", "status": None,
              "response": None, "attempt": {"Sender": "from@example.com", "Destination": ["to@example.com"]},
              "created_at": NOW, "updated_at": NOW, "expires_at": NOW + 86400, "version": 1}
    record.update(overrides)
    return record


def digest_item(n: int, **overrides) -> dict:
    row = {"item_id": f"{n:032x}", "digest": "weekly", "email": f"reader{n % 2}@example.com",
           "item": json.dumps({"Title": f"post {n}"}), "created_at": NOW + n, "expires_at": NOW + 86400}
    row.update(overrides)
    return row


def run_threads(count: int, target) -> list:
    """Run target(index) in `count` threads released together; returns results (or exceptions)."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def body(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = target(index)
        except BaseException as exc:  # reported by the test, not lost in the thread
            results[index] = exc

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


# -- idempotency records ------------------------------------------------------------------------
def test_idem_insert_claims_a_key_exactly_once(store):
    assert store.idem_insert(idem_record()) is True
    assert store.idem_insert(idem_record()) is False
    assert store.idem_insert(idem_record(fingerprint="e" * 64)) is False


def test_idem_get_returns_the_record_with_its_attempt_decoded(store):
    assert store.idem_get("web", "key-1") is None
    store.idem_insert(idem_record())
    record = store.idem_get("web", "key-1")
    assert record == idem_record()


def test_idem_keys_differing_in_case_or_scope_are_distinct_records(store):
    # MySQL's default collation would merge these: the tables are created with a binary one.
    assert store.idem_insert(idem_record("Key-A"))
    assert store.idem_insert(idem_record("key-a"))
    assert store.idem_insert(idem_record("Key-A", scope="other"))
    assert store.idem_get("web", "key-a")["idem_key"] == "key-a"


def test_idem_update_applies_only_at_the_expected_version(store):
    store.idem_insert(idem_record())
    assert store.idem_update("web", "key-1", 1, state="done", status=200, response='{"MessageId":"m"}',
                             attempt={"Ended": 5}) is True
    assert store.idem_update("web", "key-1", 1, state="doubt") is False  # a stale version loses
    record = store.idem_get("web", "key-1")
    assert (record["state"], record["status"], record["version"], record["attempt"]) == ("done", 200, 2, {"Ended": 5})


def test_idem_delete_needs_the_current_version(store):
    store.idem_insert(idem_record())
    assert store.idem_delete("web", "key-1", 2) is False
    assert store.idem_delete("web", "key-1", 1) is True
    assert store.idem_get("web", "key-1") is None


def test_concurrent_claims_of_one_key_have_exactly_one_winner(stores, backend):
    made = [stores() for _ in range(6)]
    results = run_threads(6, lambda i: made[i].idem_insert(idem_record("race")))
    assert sorted(results, key=str) == [False] * 5 + [True]
    assert backend.count("sesmail_idempotency") == 1


# -- the sent log ---------------------------------------------------------------------------------
def test_record_sent_twice_keeps_one_row_and_says_the_second_was_not_new(store, backend):
    assert store.record_sent("m-1", "web", "from@example.com", ["a@example.com"], NOW, "web/key") is True
    assert store.record_sent("m-1", "web", "from@example.com", ["a@example.com"], NOW + 1, "web/other") is False
    assert backend.count("sesmail_sent") == 1
    assert store.sent_ref("m-1") == "web/key"


def test_concurrent_adoptions_of_one_message_have_exactly_one_winner(stores, backend):
    made = [stores() for _ in range(6)]
    results = run_threads(6, lambda i: made[i].record_sent("m-race", "web", "f@example.com", ["a@example.com"],
                                                           NOW, f"web/key-{i}"))
    assert sorted(results) == [False] * 5 + [True]
    assert backend.count("sesmail_sent") == 1


# -- recipient leases -----------------------------------------------------------------------------
K1, K2, K3 = (f"{n:064x}" for n in (1, 2, 3))  # lease keys are SHA-256 hex digests


def test_a_lease_is_taken_all_or_nothing_and_given_back_with_the_recorded_answer(store, backend):
    assert store.take_leases([K1, K2], "a", NOW + 30, NOW) is None
    # another owner wanting k2 and k3 gets neither, and learns when k2 expires and that it is in flight
    assert store.take_leases([K3, K2], "b", NOW + 30, NOW) == (NOW + 30, True)
    assert backend.execute("SELECT lease_key, owner FROM sesmail_leases WHERE owner <> '' ORDER BY lease_key") == [
        (K1, "a"), (K2, "a")]
    # the owner may take its own leases again (a repeat of its Idempotency-Key)
    assert store.take_leases([K1, K2], "a", NOW + 40, NOW) is None
    assert store.record_sent("m-1", "web", "f@example.com", ["x@example.com"], NOW, "a",
                             release=([K1, K2], "a", NOW - 1))
    # given back: free for any window that begins at or after the holder's began
    assert backend.execute("SELECT owner, expires_at FROM sesmail_leases WHERE lease_key <> ?", (K3,)) == [
        ("", NOW - 1), ("", NOW - 1)]
    assert store.take_leases([K3, K2], "b", NOW + 30, NOW) is None
    # a window that began before the last holder's must begin again: told so by an expiry now past
    assert store.take_leases([K1], "c", NOW + 30, NOW - 2) == (NOW - 1, True)


def test_a_lease_in_doubt_ends_with_its_window_and_is_not_waited_for(store, backend):
    store.take_leases([K1], "a", NOW + 30, NOW)
    store.doubt_leases([K1], "a", NOW + 6)
    assert store.take_leases([K1], "b", NOW + 30, NOW + 1) == (NOW + 6, False)
    # expired by the start of b's window: b takes it over
    assert store.take_leases([K1], "b", NOW + 40, NOW + 6) is None
    assert backend.execute("SELECT owner, in_doubt FROM sesmail_leases") == [("b", 0)]
    # a doubt never lengthens a lease, and a release by another owner gives nothing back
    store.doubt_leases([K1], "b", NOW + 100)
    assert backend.execute("SELECT expires_at FROM sesmail_leases")[0][0] == NOW + 40
    store.release_leases([K1], "a", NOW + 6)
    assert backend.execute("SELECT owner FROM sesmail_leases") == [("b",)]
    store.release_leases([K1], "b", NOW + 6)
    assert backend.execute("SELECT owner, expires_at FROM sesmail_leases") == [("", NOW + 6)]
    # a taker whose window began before b's sees the doubt it outlived, not a free row
    assert store.take_leases([K1], "c", NOW + 50, NOW + 5) == (NOW + 6, True)


def test_a_taker_that_gives_up_leaves_the_leases_it_took_over_free_from_its_own_start(store, backend):
    store.take_leases([K1], "a", NOW + 30, NOW)
    store.doubt_leases([K1], "a", NOW + 6)
    store.take_leases([K2], "x", NOW + 30, NOW)
    # b takes K1 over (expired by its start) but not K2, so gives K1 back: K1 still says NOW + 10
    assert store.take_leases([K1, K2], "b", NOW + 50, NOW + 10) == (NOW + 30, True)
    assert backend.execute("SELECT owner, expires_at FROM sesmail_leases ORDER BY lease_key") == [
        ("", NOW + 10), ("x", NOW + 30)]


def test_admit_answers_the_suppressions_and_takes_the_leases_in_one_call(store, backend):
    store.suppress("gone@example.com", "all", "hard_bounce", "callback", NOW)
    hashes = {"gone@example.com": "a" * 64, "ok@example.com": "b" * 64}
    found, blocked = store.admit(["gone@example.com", "ok@example.com"], True, hashes, [K1, K2], "a", NOW + 30, NOW)
    assert (found, blocked) == ({"gone@example.com": {"Scope": "all", "Reason": "hard_bounce"}}, None)
    assert store.admit(["ok@example.com"], True, hashes, [K2], "b", NOW + 30, NOW) == ({}, (NOW + 30, True))
    assert backend.execute("SELECT lease_key FROM sesmail_leases WHERE owner = 'a' ORDER BY lease_key") == [
        (K1,), (K2,)]


def test_concurrent_takers_of_overlapping_leases_never_both_win(stores, backend):
    made = [stores() for _ in range(6)]
    keys = [[K1, K2], [K2, K3], [K3, K1], [K1], [K2], [K3]]
    results = run_threads(6, lambda i: made[i].take_leases(keys[i], f"o{i}", NOW + 30, NOW))
    winners = [set(keys[i]) for i, result in enumerate(results) if result is None]
    assert winners, results
    for index, first in enumerate(winners):
        for second in winners[index + 1:]:
            assert not first & second, (winners, results)
    held = backend.execute("SELECT lease_key, owner FROM sesmail_leases WHERE owner <> ''")
    assert len(held) == sum(len(w) for w in winners)


def test_sent_for_ref_finds_the_latest_message_since_a_time(store):
    store.record_sent("m-old", "web", "f@example.com", ["a@example.com"], NOW - 100, "web/key")
    store.record_sent("m-new", "web", "f@example.com", ["a@example.com"], NOW, "web/key")
    store.record_sent("m-other", "web", "f@example.com", ["a@example.com"], NOW + 1, "web/other")
    assert store.sent_for_ref("web/key", NOW - 200) == "m-new"
    assert store.sent_for_ref("web/key", NOW + 1) is None
    assert store.sent_for_ref("web/none", 0) is None


def test_sent_message_ids_returns_the_known_ones(store):
    store.record_sent("m-1", "web", "f@example.com", ["a@example.com"], NOW)
    assert store.sent_message_ids([]) == set()
    assert store.sent_message_ids(["m-1", "m-2"]) == {"m-1"}


def test_unsettled_messages_lists_the_window_without_final_events_oldest_first(store):
    for n, created in enumerate((NOW - 10, NOW - 5, NOW - 1, NOW, NOW - 20)):
        store.record_sent(f"m-{n}", "web", "f@example.com", [f"r{n}@example.com", "x@example.com"], created)
    store.insert_events([event(1, message_id="m-1", event="delivered"),
                         event(2, message_id="m-2", event="open"),  # not final: still unsettled
                         event(3, message_id="m-4", event="bounce")])
    found = store.unsettled_messages(NOW - 15, NOW, ("delivered", "bounce", "dropped"), 10)
    assert found == [
        {"MessageId": "m-0", "Sender": "f@example.com", "Recipients": ["r0@example.com", "x@example.com"],
         "CreatedAt": NOW - 10},
        {"MessageId": "m-2", "Sender": "f@example.com", "Recipients": ["r2@example.com", "x@example.com"],
         "CreatedAt": NOW - 1},
    ]  # m-3 is at `until` (excluded), m-4 before `since`
    assert [m["MessageId"] for m in store.unsettled_messages(NOW - 15, NOW, ("delivered",), 1)] == ["m-0"]
    assert len(store.unsettled_messages(NOW - 100, NOW + 1, (), 10)) == 5


# -- events ---------------------------------------------------------------------------------------
def test_insert_events_stores_each_event_once_however_often_delivered(store, backend):
    rows = [event(n) for n in range(5)]
    assert store.insert_events(rows) == 5
    assert store.insert_events(rows) == 0
    assert store.insert_events(rows) == 0
    assert backend.count("sesmail_events") == 5
    assert store.insert_events([*rows, event(5)]) == 1


def test_insert_events_counts_a_duplicate_inside_one_batch_once(store, backend):
    assert store.insert_events([event(1), event(1), event(2)]) == 2
    assert store.insert_events([]) == 0
    assert backend.count("sesmail_events") == 2


def test_insert_events_handles_batches_larger_than_one_statement(store, backend):
    rows = [event(n) for n in range(250)]
    assert store.insert_events(rows[:100]) == 100
    assert store.insert_events(rows) == 150
    assert backend.count("sesmail_events") == 250


@pytest.mark.parametrize("size", [5, 200])
def test_a_batch_failing_midway_stores_nothing(store, backend, size):
    rows = [event(n) for n in range(size)]
    rows[size * 3 // 4]["email"] = None  # NOT NULL breaks one row late in the batch
    with pytest.raises(ConstraintViolation) as caught:
        store.insert_events(rows)
    assert "example.com" not in str(caught.value)  # the driver's message quotes the row
    assert backend.count("sesmail_events") == 0
    assert store.insert_events([event(1)]) == 1  # the connection is still good


def test_insert_events_stores_the_address_lower_cased(store):
    store.insert_events([event(1, email="Mixed.Case@Example.COM", message_id="m")])
    assert store.message_events("m")[0]["Email"] == "mixed.case@example.com"


def test_message_events_lists_one_message_in_time_order_with_details(store):
    store.insert_events([
        event(1, message_id="m", event="open", event_time=300, details={"UserAgent": "x"}),
        event(2, message_id="m", event="delivered", event_time=200, polled=True, details={}),
        event(3, message_id="m", event="processed", event_time=None, details={}),
        event(4, message_id="other", event="bounce"),
    ])
    assert store.message_events("m") == [
        {"Event": "processed", "Email": "user3@example.com", "Timestamp": None},
        {"Event": "delivered", "Email": "user2@example.com", "Timestamp": 200, "Polled": True},
        {"Event": "open", "Email": "user1@example.com", "Timestamp": 300, "UserAgent": "x"},
    ]
    assert store.message_events("unknown") == []


def test_insert_events_keeps_unicode_and_large_raw_payloads(store):
    raw = json.dumps({"subject": "你好 😀", "pad": "x" * 70_000}, ensure_ascii=False)  # past MySQL's TEXT
    store.insert_events([event(1, message_id="m", raw=raw, details={"Subject": "你好 😀"})])
    assert store.message_events("m")[0]["Subject"] == "你好 😀"


def test_concurrent_deliveries_of_the_same_events_end_as_one_row_each(stores, backend):
    made = [stores() for _ in range(6)]
    rows = [event(n) for n in range(120)]

    def deliver(index: int) -> int:
        batch = rows[index * 10:] + rows[:index * 10]  # overlapping batches, each in its own order
        random.Random(index).shuffle(batch)
        return sum(made[index].insert_events(batch[start:start + 40]) for start in range(0, 120, 40))

    results = run_threads(6, deliver)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert sum(results) == 120
    assert backend.count("sesmail_events") == 120


def test_concurrent_deliveries_from_two_processes_end_as_one_row_each(backend, stores):
    stores().list_suppressions(0, 1)  # migrate first: this test is about the events
    script = (
        "import json, sys, time\n"
        "from sesmail.store import new_store\n"
        "url, start, rows = sys.argv[1], float(sys.argv[2]), json.loads(sys.stdin.read())\n"
        "store = new_store(url)\n"
        "store.list_suppressions(0, 1)\n"
        "time.sleep(max(0.0, start - time.time()))\n"
        "print(sum(store.insert_events([row]) for row in rows) + store.insert_events(rows))\n"
    )
    rows = json.dumps([event(n) for n in range(60)])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "layers", "sesmail"), ROOT]))
    start = str(time.time() + 1.5)
    processes = [subprocess.Popen([sys.executable, "-c", script, backend.url, start], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for _ in range(2)]
    outputs = [process.communicate(rows, timeout=60) for process in processes]
    assert all(process.returncode == 0 for process in processes), outputs
    assert sum(int(out) for out, _ in outputs) == 60
    assert backend.count("sesmail_events") == 60


# -- suppressions ---------------------------------------------------------------------------------
def test_suppress_twice_keeps_the_first_time_and_the_latest_reason(store):
    store.suppress("Someone@Example.com", "all", "hard_bounce", "callback", NOW)
    store.suppress("someone@example.com", "all", "manual", "api", NOW + 10)
    assert store.list_suppressions(0, 10) == [
        {"Email": "someone@example.com", "Scope": "all", "Reason": "manual", "Source": "api", "CreatedAt": NOW}]


def test_unsuppress_removes_every_scope_of_the_address_and_its_erased_form(store):
    store.suppress("a@example.com", "all", "spamreport", "callback", NOW)
    store.suppress("a@example.com", "marketing", "unsubscribe", "callback", NOW)
    store.suppress("b@example.com", "marketing", "unsubscribe", "callback", NOW)
    store.suppress("z@example.com", "all", "manual", "api", NOW)
    store.erase_address("z@example.com", HASH_Z)
    assert store.unsuppress("A@example.com", HASH_A) == 2
    assert store.unsuppress("a@example.com", HASH_A) == 0
    assert store.unsuppress("z@example.com", HASH_Z) == 1
    assert [s["Email"] for s in store.list_suppressions(0, 10)] == ["b@example.com"]


def test_list_suppressions_pages_in_address_then_scope_order(store):
    for email, scope in (("c@example.com", "all"), ("a@example.com", "marketing"), ("a@example.com", "all"),
                         ("b@example.com", "all")):
        store.suppress(email, scope, "manual", "api", NOW)
    keys = [(s["Email"], s["Scope"]) for s in store.list_suppressions(0, 10)]
    assert keys == [("a@example.com", "all"), ("a@example.com", "marketing"), ("b@example.com", "all"),
                    ("c@example.com", "all")]
    assert [(s["Email"], s["Scope"]) for s in store.list_suppressions(1, 2)] == keys[1:3]
    assert store.list_suppressions(4, 10) == []


def test_suppressions_for_applies_marketing_scope_only_to_marketing_mail(store):
    store.suppress("bounced@example.com", "all", "hard_bounce", "callback", NOW)
    store.suppress("left@example.com", "marketing", "unsubscribe", "callback", NOW)
    store.suppress("both@example.com", "marketing", "unsubscribe", "callback", NOW)
    store.suppress("both@example.com", "all", "spamreport", "callback", NOW)
    asked = ["Bounced@example.com", "left@example.com", "both@example.com", "fine@example.com"]
    assert store.suppressions_for(asked, marketing=True, hashes={}) == {
        "bounced@example.com": {"Scope": "all", "Reason": "hard_bounce"},
        "left@example.com": {"Scope": "marketing", "Reason": "unsubscribe"},
        "both@example.com": {"Scope": "all", "Reason": "spamreport"},
    }
    assert store.suppressions_for(asked, marketing=False, hashes={}) == {
        "bounced@example.com": {"Scope": "all", "Reason": "hard_bounce"},
        "both@example.com": {"Scope": "all", "Reason": "spamreport"},
    }
    assert store.suppressions_for([], marketing=True, hashes={}) == {}


def test_suppressions_for_checks_a_full_send_of_90_addresses(store):
    store.suppress("r89@example.com", "all", "hard_bounce", "callback", NOW)
    found = store.suppressions_for([f"r{n}@example.com" for n in range(90)], marketing=True, hashes={})
    assert list(found) == ["r89@example.com"]


# -- retention and erasure ------------------------------------------------------------------------
def test_purge_deletes_only_what_has_expired(store, backend):
    store.idem_insert(idem_record("old", expires_at=NOW - 1))
    store.idem_insert(idem_record("new", expires_at=NOW + 1))
    store.insert_events([event(1, expires_at=NOW - 1), event(2, expires_at=NOW + 1)])
    store.record_sent("m-old", "web", "f@example.com", ["a@example.com"], NOW - 100)
    store.record_sent("m-new", "web", "f@example.com", ["a@example.com"], NOW)
    store.queue_digest_items([digest_item(1, expires_at=NOW - 1), digest_item(2, expires_at=NOW + 1)])
    # a lease is kept an hour past its expiry: windows that began before it may still be open
    store.take_leases([f"{1:064x}"], "a", NOW - 3601, 0)
    store.take_leases([f"{2:064x}"], "a", NOW - 3599, 0)
    assert store.purge(NOW, NOW - 50) == {"Idempotency": 1, "Events": 1, "Sent": 1, "DigestItems": 1, "Leases": 1,
                                          "Schedules": 0, "StatsMarks": 0, "GuardHours": 0}
    assert store.purge(NOW, NOW - 50) == {"Idempotency": 0, "Events": 0, "Sent": 0, "DigestItems": 0, "Leases": 0,
                                          "Schedules": 0, "StatsMarks": 0, "GuardHours": 0}
    assert store.idem_get("web", "new") and store.sent_message_ids(["m-new"]) == {"m-new"}
    assert backend.count("sesmail_events") == 1


def test_erase_address_deletes_everything_about_it_and_nothing_else(store, backend):
    target, other = "a_b%c@example.com", "axbyc@example.com"  # LIKE wildcards must match themselves only
    store.insert_events([event(1, email="A_B%c@Example.com"), event(2, email=other)])
    store.suppress(target, "all", "manual", "api", NOW)
    store.suppress(other, "all", "manual", "api", NOW)
    store.record_sent("m-1", "web", "f@example.com", ["x@example.com", target], NOW)
    store.record_sent("m-2", "web", "f@example.com", [other, "z" + target], NOW)
    store.idem_insert(idem_record("k1", attempt={"Sender": "f@example.com", "Destination": [target]}))
    store.idem_insert(idem_record("k2", attempt={"Sender": "f@example.com", "Destination": [other]}))
    store.queue_digest_items([digest_item(1, email=target), digest_item(2, email=other)])
    assert store.erase_address("A_B%C@example.com", HASH_A) == {
        "Events": 1, "DigestItems": 1, "ScheduleRecipients": 0, "Sent": 1, "Idempotency": 1, "SuppressionsKept": 1}
    assert [s["Email"] for s in store.list_suppressions(0, 10)] == [other, None]  # kept under its hash
    assert store.sent_message_ids(["m-1", "m-2"]) == {"m-2"}
    assert store.idem_get("web", "k1") is None and store.idem_get("web", "k2") is not None
    assert backend.execute("SELECT email FROM sesmail_events") == [(other,)]
    assert store.digest_recipients("weekly") == [other]
    assert store.erase_address(target, HASH_A) == {"Events": 0, "DigestItems": 0, "ScheduleRecipients": 0, "Sent": 0,
                                                   "Idempotency": 0, "SuppressionsKept": 0}
    assert backend.execute("SELECT COUNT(*) FROM sesmail_suppressions WHERE email LIKE ?", ("%example%",)) == [(1,)]


def test_an_erased_address_keeps_its_suppressions_under_its_hash_only(store, backend):
    store.suppress("gone@example.com", "all", "hard_bounce", "callback", NOW)
    store.suppress("gone@example.com", "marketing", "unsubscribe", "callback", NOW + 1)
    store.suppress("kept@example.com", "all", "manual", "api", NOW)
    assert store.erase_address("Gone@example.com", HASH_A)["SuppressionsKept"] == 2
    assert backend.execute("SELECT email, scope, reason FROM sesmail_suppressions ORDER BY email, scope") == [
        ("h:" + HASH_A, "all", "hard_bounce"), ("h:" + HASH_A, "marketing", "unsubscribe"),
        ("kept@example.com", "all", "manual")]
    # Looked up by either form in one query; an address whose hash is not asked for is not found.
    asked = ["gone@example.com", "kept@example.com", "new@example.com"]
    assert store.suppressions_for(asked, marketing=True, hashes={"gone@example.com": HASH_A,
                                                                "new@example.com": HASH_Z}) == {
        "gone@example.com": {"Scope": "all", "Reason": "hard_bounce"},
        "kept@example.com": {"Scope": "all", "Reason": "manual"}}
    assert store.suppressions_for(["gone@example.com"], marketing=True, hashes={}) == {}
    # Listed without an address; erasing again (suppressed anew meanwhile) keeps one entry per scope.
    assert store.list_suppressions(0, 10)[0] == {"Email": None, "Erased": True, "Scope": "all",
                                                 "Reason": "hard_bounce", "Source": "callback", "CreatedAt": NOW}
    store.suppress("gone@example.com", "all", "spamreport", "callback", NOW + 5)
    assert store.erase_address("gone@example.com", HASH_A)["SuppressionsKept"] == 1
    assert backend.count("sesmail_suppressions") == 3


def test_the_task_log_says_whose_task_and_whose_list(store):
    store.record_task(11, 70, "web", "News", True, NOW)
    store.record_task(12, 80, "partner", "News", False, NOW)
    assert (store.task_client(11), store.task_client(12), store.task_client(13)) == ("web", "partner", None)
    assert store.owns_list(70, "web") and not store.owns_list(70, "partner")
    assert not store.owns_list(80, "partner")  # a list made outside sesmail is nobody's own


# -- batch tasks and digest items -----------------------------------------------------------------
def test_record_task_logs_a_task_once_and_tracks_its_list(store):
    store.record_task(2**40, 7, "web", "s" * 300, True, NOW)  # TaskIds are 64-bit; subjects cut to fit
    store.record_task(2**40, 7, "web", "again", True, NOW + 1)
    store.record_task(11, 8, "web", "theirs", False, NOW - 1)
    assert store.known_task_ids([]) == set()
    assert store.known_task_ids([2**40, 11, 12]) == {2**40, 11}
    assert store.owned_lists(10) == [{"TaskId": 2**40, "ReceiverId": 7}]
    store.list_deleted(2**40)
    assert store.owned_lists(10) == []


def test_owned_lists_pages_past_lists_whose_task_is_still_running(store):
    for n in range(3):
        store.record_task(100 + n, 200 + n, "web", "s", True, NOW + n)
    assert [row["TaskId"] for row in store.owned_lists(2)] == [100, 101]
    assert [row["TaskId"] for row in store.owned_lists(2, offset=2)] == [102]


def test_a_list_is_recorded_before_it_exists_then_named_then_used_by_its_task(store, backend):
    # GIVEN a list recorded before CreateReceiver, then named by SES
    store.list_started("sesmail-a", "web", NOW, "web", "campaign-1")
    assert store.unused_lists(NOW + 1, 10) == [{"Name": "sesmail-a", "ReceiverId": None, "Client": "web",
                                                 "IdemScope": "web", "IdemKey": "campaign-1", "CreatedAt": NOW}]
    store.list_created("sesmail-a", 2**40 + 5)  # ReceiverIds are 64-bit
    assert store.unused_lists(NOW + 1, 10)[0]["ReceiverId"] == 2**40 + 5
    # WHEN its task is recorded, it is no longer unused; its task's end deletes it as before
    store.record_task(2**41, 2**40 + 5, "web", "News", True, NOW + 1)
    assert store.unused_lists(NOW + 10, 10) == []
    assert store.owned_lists(10) == [{"TaskId": 2**41, "ReceiverId": 2**40 + 5}]
    store.list_deleted(2**41)
    assert store.owned_lists(10) == []
    assert backend.execute("SELECT task_id, deleted FROM sesmail_lists") == [(2**41, 1)]


def test_unused_lists_are_the_old_live_ones_without_a_task_oldest_first(store):
    store.list_started("sesmail-new", "web", NOW + 50)
    store.list_started("sesmail-old", "web", NOW)  # no Idempotency-Key: scope and key absent
    store.list_started("sesmail-mid", "digest", NOW + 10, "digest:daily", "nightly@2026-11-23T01:00:00Z")
    store.list_started("sesmail-gone", "web", NOW + 1)
    store.list_created("sesmail-gone", 9)
    store.list_gone(receiver_id=9)
    store.list_started("sesmail-never", "web", NOW + 2)
    store.list_gone(name="sesmail-never")  # CreateReceiver refused: no list was made
    store.list_started("sesmail-used", "web", NOW + 3)
    store.list_created("sesmail-used", 10)
    store.record_task(77, 10, "web", "News", True, NOW + 4)
    store.record_task(78, 11, "web", "theirs", False, NOW + 4)  # a caller's own list: never ours to delete
    unused = store.unused_lists(NOW + 20, 10)
    assert [row["Name"] for row in unused] == ["sesmail-old", "sesmail-mid"]
    assert (unused[0]["IdemScope"], unused[0]["IdemKey"]) == (None, None)
    assert (unused[1]["Client"], unused[1]["IdemKey"]) == ("digest", "nightly@2026-11-23T01:00:00Z")
    assert [row["Name"] for row in store.unused_lists(NOW + 20, 1, offset=1)] == ["sesmail-mid"]
    assert [row["Name"] for row in store.unused_lists(NOW + 60, 10)] == ["sesmail-old", "sesmail-mid", "sesmail-new"]


def test_a_list_name_is_recorded_once(store):
    store.list_started("sesmail-a", "web", NOW)
    with pytest.raises(ConstraintViolation):
        store.list_started("sesmail-a", "web", NOW)


def test_digest_items_are_claimed_by_one_run_then_finished_or_released(store):
    store.queue_digest_items([digest_item(n) for n in range(4)])
    assert store.digest_recipients("weekly") == ["reader0@example.com", "reader1@example.com"]
    items = store.claim_digest_items("weekly", "reader0@example.com", "run-1", NOW)
    assert items == [{"Title": "post 0"}, {"Title": "post 2"}]
    assert store.claim_digest_items("weekly", "reader0@example.com", "run-2", NOW) == []
    assert store.stale_digest_items("weekly", NOW + 1) == [
        {"Email": "reader0@example.com", "Run": "run-1", "ClaimedAt": NOW}]
    store.release_digest_items("weekly", "reader0@example.com", "run-1", failed=True, max_attempts=1)
    assert store.digest_recipients("weekly") == ["reader1@example.com"]  # failed at the cap
    store.claim_digest_items("weekly", "reader1@example.com", "run-3", NOW)
    store.release_digest_items("weekly", "reader1@example.com", "run-3", failed=False, max_attempts=1)
    assert store.claim_digest_items("weekly", "reader1@example.com", "run-4", NOW) == [
        {"Title": "post 1"}, {"Title": "post 3"}]
    store.finish_digest_items("weekly", "reader1@example.com", "run-4", "sent", "msg-1")
    assert store.digest_recipients("weekly") == [] and store.stale_digest_items("weekly", NOW + 1) == []


def test_concurrent_runs_claim_each_digest_item_once(stores):
    stores().queue_digest_items([digest_item(n, email="reader@example.com") for n in range(30)])
    made = [stores() for _ in range(4)]
    results = run_threads(4, lambda i: made[i].claim_digest_items("weekly", "reader@example.com", f"run-{i}", NOW))
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert sorted(len(r) for r in results) == [0, 0, 0, 30]


def test_queue_digest_items_is_all_or_none(store):
    rows = [digest_item(n) for n in range(150)]
    rows[120]["email"] = None
    with pytest.raises(ConstraintViolation):
        store.queue_digest_items(rows)
    assert store.digest_recipients("weekly") == []


# -- failures -------------------------------------------------------------------------------------
def test_a_killed_connection_is_reopened_by_the_next_call(store, backend):
    store.suppress("a@example.com", "all", "manual", "api", NOW)
    before = backend.session_id(store)
    backend.kill(store)
    try:
        store.list_suppressions(0, 10)  # may fail: the store learns of the loss here
    except StoreUnavailable:
        pass
    assert [s["Email"] for s in store.list_suppressions(0, 10)] == ["a@example.com"]
    assert store.insert_events([event(1)]) == 1
    if before is not None:
        assert backend.session_id(store) != before


def test_a_transaction_on_a_killed_connection_fails_whole_then_recovers(store, backend):
    store.list_suppressions(0, 1)
    backend.kill(store)
    try:
        store.insert_events([event(n) for n in range(200)])
    except StoreUnavailable:
        assert backend.count("sesmail_events") == 0
    assert store.insert_events([event(n) for n in range(200)]) in (0, 200)
    assert backend.count("sesmail_events") == 200


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_database_is_store_unavailable_at_once(backend, tmp_path):
    if backend.name == "sqlite":
        blocker = tmp_path / "file"
        blocker.write_text("")
        url = f"sqlite:///{blocker}/db.sqlite3"  # its folder cannot be created
    else:
        url = f"{backend.name}://user@127.0.0.1:{_closed_port()}/db"
    store = new_store(url)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        store.list_suppressions(0, 1)
    with pytest.raises(StoreUnavailable):
        store.insert_events([event(1)])
    assert time.monotonic() - started < 2


def test_a_server_that_never_answers_is_store_unavailable_within_the_timeout(backend):
    if backend.name == "sqlite":
        pytest.skip("SQLite has no server")
    with socket.socket() as silent:  # accepts connections (the kernel does) and never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        store = new_store(f"{backend.name}://user@127.0.0.1:{port}/db?connect_timeout=1&timeout=1")
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.idem_get("web", "k")
        assert time.monotonic() - started < 3


# -- migrations -----------------------------------------------------------------------------------
def test_migration_creates_the_schema_once_and_can_run_again(backend):
    url = backend.database()
    first = new_store(url)
    first.suppress("a@example.com", "all", "manual", "api", NOW)
    first.close()
    assert backend.execute("SELECT version FROM sesmail_schema", url=url) == [(SCHEMA_VERSION,)]
    # As if a migration had died after its DDL and before recording its version (MySQL commits DDL).
    backend.execute("UPDATE sesmail_schema SET version = 0", url=url)
    backend.execute("DROP TABLE sesmail_suppressions", url=url)
    second = new_store(url)
    try:
        assert second.list_suppressions(0, 10) == []
        second.insert_events([event(1)])
    finally:
        second.close()
    assert backend.execute("SELECT version FROM sesmail_schema", url=url) == [(SCHEMA_VERSION,)]
    assert backend.count("sesmail_events", url=url) == 1


def test_instances_migrating_a_fresh_database_at_once_all_succeed(backend):
    url = backend.database()
    made = [new_store(url) for _ in range(4)]
    try:
        results = run_threads(4, lambda i: made[i].insert_events([event(i), event(99)]))
    finally:
        for store in made:
            store.close()
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert sum(results) == 5
    assert backend.execute("SELECT version FROM sesmail_schema", url=url) == [(SCHEMA_VERSION,)]


# -- the container's store and URLs -----------------------------------------------------------------
def test_open_store_keeps_one_store_per_url_until_reset(backend):
    first = open_store(backend.url)
    try:
        assert open_store(backend.url) is first
    finally:
        reset()
    assert open_store(backend.url) is not first
    reset()


def test_open_store_refuses_an_unknown_database():
    with pytest.raises(ValueError, match="unsupported database"):
        open_store("oracle://user@host/db")


def test_server_url_decodes_credentials_and_reads_options():
    url = ServerUrl("postgresql://app%40x:p%40ss%2Fw%3Ard@db.example.com/mail%20db?sslmode=require"
                    "&connect_timeout=2&timeout=7.5", default_port=5432)
    assert (url.user, url.password, url.host, url.port, url.database) == (
        "app@x", "p@ss/w:rd", "db.example.com", 5432, "mail db")
    assert (url.sslmode, url.connect_timeout, url.timeout) == ("require", 2.0, 7.5)
    assert "p@ss" not in repr(url)
    plain = ServerUrl("mysql://root@[::1]:3307/test", default_port=3306)
    assert (plain.host, plain.port, plain.password, plain.sslmode, plain.tls_context()) == (
        "::1", 3307, None, "disable", None)
    assert ServerUrl("mysql://u:@h/d", default_port=3306).password == ""


@pytest.mark.parametrize("url", [
    "postgresql://host/db",                     # no user
    "postgresql://user@host/",                  # no database
    "postgresql://user@host:99999/db",          # bad port
    "postgresql://user@host/db?sslmode=maybe",
    "postgresql://user@host/db?connect_timeout=0",
    "postgresql://user@host/db?timeout=soon",
    "postgresql://user@host/db?ssl=true",       # unknown option: a typo must not be ignored
])
def test_server_url_refuses_what_it_cannot_honour(url):
    with pytest.raises(ValueError, match="SESMAIL_DATABASE_URL"):
        ServerUrl(url, default_port=5432)


def test_sslmode_maps_to_certificate_checks():
    import ssl

    require = ServerUrl("postgresql://u@h/d?sslmode=require", 5432).tls_context()
    assert (require.verify_mode, require.check_hostname) == (ssl.CERT_NONE, False)
    verify_ca = ServerUrl("postgresql://u@h/d?sslmode=verify-ca", 5432).tls_context()
    assert (verify_ca.verify_mode, verify_ca.check_hostname) == (ssl.CERT_REQUIRED, False)
    full = ServerUrl("postgresql://u@h/d?sslmode=verify-full", 5432).tls_context()
    assert (full.verify_mode, full.check_hostname) == (ssl.CERT_REQUIRED, True)


def test_sslmode_require_connects_over_tls_when_the_server_offers_it(postgresql_server):
    if postgresql_server.execute("SELECT setting FROM pg_settings WHERE name = 'ssl'")[0][0] != "on":
        pytest.skip("this PostgreSQL server has ssl = off")
    store = new_store(postgresql_server.url + "?sslmode=require")
    try:
        session = postgresql_server.session_id(store)
        assert postgresql_server.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = ?", (session,))[0][0] is True
    finally:
        store.close()
