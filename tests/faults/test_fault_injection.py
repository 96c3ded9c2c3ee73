"""Fault injection: no mail lost, none sent twice, every unknown outcome resolved (docs/reliability.md).

The functions run in-process against the SES emulator over real HTTP, with the emulator's scripted
faults (`fail`, `drop_before`, `drop_after`, `delay`) and its rate, recipient and quota limits raised
for the run, and a client that retries with the same Idempotency-Key on 409, 429 and 503:

(a) sends under ~30% injected RequestLimitExceeded, latency spikes and connections dropped before
    the request is read (SES provably did not send, so the settle time is 0): exactly one mail per
    send, none twice;
(b) the same with replies lost after the mail was stored: no mail twice, and every "outcome
    unknown" resolved through GetSendEmailStatus by the client's retry (the settle time stays at
    its default, so only a found mail can resolve it); the count of such cases is reported;
(c) a timer event delivered three times (in turn, after a lost reply, and at once) sends once;
(d) a callback delivered three times concurrently, by three "instances" with connections of their
    own, is stored as one row;
(e) the database stopped in the middle of storing a batch of callbacks: 503s, no partial rows, and
    normal service once it is back (SQLite: the driver's connection breaks; PostgreSQL: the
    server terminates our connections and refuses new ones for a while).

`SESMAIL_LONG_TESTS=1` runs 1,000 sends in (a) and (b); the default is 300. The figures (faults
injected, mails lost, duplicated, unknown outcomes resolved and left) are printed at the end.
"""

from __future__ import annotations

import json
import os
import random
import threading
from collections import Counter
from typing import Any, Callable

import pytest

from sesmail import batching, config, digest, policy, store, transport
from tests import db
from tests.conftest import ROOT, load_function
from tests.events import context, fixture, http_event
from tests.fuzz.harness import LONG, check_answer, postgres_admin

N_SENDS = 1000 if LONG else 300
MAX_ATTEMPTS = 25  # the client's bound on retries of one send
SENDER = "Shop <noreply@mail.example.com>"
SEED = int(os.environ.get("SESMAIL_FAULT_SEED", "20261123"))


@pytest.fixture
def limits_raised(ses_fake, monkeypatch):
    """SES's limits far above what the run needs (the faults are the point, not the quotas), and
    the SDK's retry backoff shortened so a run takes seconds."""
    monkeypatch.setattr(ses_fake, "rate_limit", 100_000)
    monkeypatch.setattr(ses_fake, "recipient_hourly_limit", 10)
    monkeypatch.setattr(ses_fake, "daily_quota", 100_000)
    monkeypatch.setattr(transport, "BACKOFF_BASE_S", 0.001)
    monkeypatch.setattr(batching, "POLL_FIRST_S", 0.01)
    return ses_fake


def payload(index: int) -> dict:
    return {"FromEmailAddress": SENDER, "Destination": [f"r{index}@example.com"], "Subject": f"Order {index}",
            "Template": {"TemplateID": 100091, "TemplateData": {"order": str(index)}}}


class Client:
    """A caller that retries one send with the same Idempotency-Key on 409, 429 and 503."""

    def __init__(self, send: Callable, emulator) -> None:
        self.send, self.emulator = send, emulator
        self.first = Counter()  # status of each send's first answer
        self.answers = Counter()  # every answer, by status and code
        self.unknown: set[str] = set()  # keys answered 503 "outcome unknown"
        self.message_ids: dict[str, str] = {}
        self.after_unknown: dict[str, str] = {}  # key -> MessageId, once an unknown outcome was settled
        self.adopted: set[str] = set()
        self.requests = 0

    def deliver(self, key: str, body: dict, before: Callable[[], None] = lambda: None) -> str | None:
        for attempt in range(MAX_ATTEMPTS):
            before()
            seen = len(self.emulator.calls)
            result = self.send(http_event(body, headers={"Idempotency-Key": key}), context())
            self.requests += 1
            answer = check_answer(result, list(self.emulator.calls[seen:]), faults=True)
            status = result["statusCode"]
            code = answer.get("Error", {}).get("Code")
            self.answers[f"{status} {code or ''}".strip()] += 1
            if attempt == 0:
                self.first[status] += 1
            if status == 200:
                self.message_ids[key] = answer["MessageId"]
                if key in self.unknown:
                    self.after_unknown[key] = answer["MessageId"]
                    if result["headers"].get("Idempotent-Replayed") == "true":
                        self.adopted.add(key)  # resolved as "SES did send": its MessageId, no new mail
                return answer["MessageId"]
            assert status in (409, 429, 503), result  # anything else is not worth a retry
            if status == 503 and answer["Error"].get("Outcome") == "Unknown":
                self.unknown.add(key)
        return None


def outcomes(emulator, action: str = "SendEmail") -> Counter:
    return Counter(call["Outcome"] for call in emulator.calls if call["Action"] == action)


def assert_one_mail_per_send(emulator, client: Client, count: int) -> dict:
    """Exactly `count` mails, one per recipient, each the MessageId its sender was given."""
    mails = emulator.sent
    per_recipient = Counter(mail["Destination"][0] for mail in mails)
    duplicated = sum(n - 1 for n in per_recipient.values() if n > 1)
    expected = {f"r{index}@example.com" for index in range(count)}
    lost = len(expected - set(per_recipient))
    assert duplicated == 0, f"{duplicated} mails sent twice: {[r for r, n in per_recipient.items() if n > 1][:5]}"
    assert lost == 0, f"{lost} sends never became a mail"
    assert len(mails) == count and set(per_recipient) == expected
    by_recipient = {mail["Destination"][0]: mail["MessageId"] for mail in mails}
    for index in range(count):
        assert client.message_ids.get(f"send-{index}") == by_recipient[f"r{index}@example.com"], index
    return {"lost": lost, "duplicated": duplicated}


def test_sends_under_throttling_latency_and_dropped_connections_make_exactly_one_mail_each(
        send, limits_raised, monkeypatch, fault_figures):
    # GIVEN SES that throttles ~30% of SendEmail calls, is slow now and then, and drops ~5% of the
    # connections before reading the request (nothing sent: the settle time may be 0)
    monkeypatch.setenv("SESMAIL_SETTLE_SECONDS", "0")
    config.reset()
    emulator = limits_raised
    rng = random.Random(SEED)
    injected = Counter()

    def faults() -> None:
        throttled = 0
        while rng.random() < 0.3:  # each SendEmail call refused with probability 0.3
            throttled += 1
        if throttled:
            emulator.fail("SendEmail", "RequestLimitExceeded", times=throttled)
            injected["RequestLimitExceeded"] += throttled
        if rng.random() < 0.1:
            emulator.delay("SendEmail", rng.uniform(0.005, 0.03))
            injected["latency spike"] += 1
        if rng.random() < 0.05:
            emulator.drop_before("SendEmail")
            injected["connection dropped before the request was read"] += 1

    client = Client(send, emulator)
    # WHEN N sends are made, each with its own key, by a client that retries
    for index in range(N_SENDS):
        assert client.deliver(f"send-{index}", payload(index), faults) is not None, index
    # THEN exactly N mails, one per send
    figures = assert_one_mail_per_send(emulator, client, N_SENDS)
    seen = outcomes(emulator)
    throttled_share = seen["error:RequestLimitExceeded"] / sum(seen.values())
    assert 0.2 < throttled_share < 0.4, seen
    assert seen["dropped"] > 0 and client.unknown, "no dropped connection was exercised"
    prefix = f"(a) {N_SENDS} sends under throttling, latency and dropped connections"
    fault_figures.notes[prefix] = (
        f"{sum(injected.values())} faults injected ({dict(injected)}); SendEmail calls {sum(seen.values())},"
        f" throttled {throttled_share:.0%}; client requests {client.requests}; first answers {dict(client.first)};"
        f" outcomes unknown {len(client.unknown)}, resolved {len(client.after_unknown)} (not sent at SES: sent"
        f" under the same key); mails {len(emulator.sent)}, lost {figures['lost']},"
        f" duplicated {figures['duplicated']}")
    fault_figures.add("faults injected", sum(injected.values()))
    fault_figures.add("outcomes unknown", len(client.unknown))
    fault_figures.add("outcomes unknown resolved", len(client.after_unknown))
    fault_figures.add("outcomes unknown left", len(client.unknown - set(client.after_unknown)))
    fault_figures.add("mails lost", figures["lost"])
    fault_figures.add("mails duplicated", figures["duplicated"])


def test_replies_lost_after_the_mail_was_stored_never_send_twice_and_every_unknown_is_resolved(
        send, limits_raised, fault_figures):
    # GIVEN SES that throttles ~30% of calls, is slow now and then, and loses ~10% of its replies
    # after the mail was stored (the settle time stays at its default: only a found mail resolves)
    emulator = limits_raised
    rng = random.Random(SEED + 1)
    injected = Counter()

    def faults() -> None:
        throttled = 0
        while rng.random() < 0.3:
            throttled += 1
        if throttled:
            emulator.fail("SendEmail", "RequestLimitExceeded", times=throttled)
            injected["RequestLimitExceeded"] += throttled
        if rng.random() < 0.1:
            emulator.delay("SendEmail", rng.uniform(0.005, 0.03))
            injected["latency spike"] += 1
        if rng.random() < 0.1:
            emulator.drop_after("SendEmail")
            injected["reply lost after the mail was stored"] += 1

    client = Client(send, emulator)
    # WHEN N sends are made by a client that retries with the same key
    for index in range(N_SENDS):
        client.deliver(f"send-{index}", payload(index), faults)
    # THEN every unknown outcome was resolved to the MessageId SES assigned, and no mail went twice
    unresolved = client.unknown - client.adopted
    assert client.unknown, "no reply was lost: the run proves nothing"
    assert not unresolved, f"{len(unresolved)} outcomes left unknown: {sorted(unresolved)[:5]}"
    figures = assert_one_mail_per_send(emulator, client, N_SENDS)
    by_recipient = {mail["Destination"][0]: mail["MessageId"] for mail in emulator.sent}
    for key, message_id in client.after_unknown.items():
        assert by_recipient[f"r{key.split('-')[1]}@example.com"] == message_id  # adopted, not re-sent
    assert outcomes(emulator)["dropped"] == len(client.unknown)
    seen = outcomes(emulator)
    prefix = f"(b) {N_SENDS} sends under throttling, latency and lost replies"
    fault_figures.notes[prefix] = (
        f"{sum(injected.values())} faults injected ({dict(injected)}); SendEmail calls {sum(seen.values())};"
        f" GetSendEmailStatus calls {sum(outcomes(emulator, 'GetSendEmailStatus').values())};"
        f" outcomes unknown {len(client.unknown)}, resolved {len(client.adopted)},"
        f" left {len(unresolved)}; mails {len(emulator.sent)}, lost {figures['lost']},"
        f" duplicated {figures['duplicated']}")
    print(f"\n{prefix}: {fault_figures.notes[prefix]}")
    fault_figures.add("faults injected", sum(injected.values()))
    fault_figures.add("outcomes unknown", len(client.unknown))
    fault_figures.add("outcomes unknown resolved", len(client.adopted))
    fault_figures.add("outcomes unknown left", len(unresolved))
    fault_figures.add("mails lost", figures["lost"])
    fault_figures.add("mails duplicated", figures["duplicated"])


# -- (c) timers -------------------------------------------------------------------------------

@pytest.fixture
def batch(env, limits_raised):
    return load_function("batch").main_handler


def timer_event(message: Any, time_: str = "2026-11-23T01:00:00Z") -> dict:
    return {"Type": "Timer", "TriggerName": "nightly", "Time": time_,
            "Message": message if isinstance(message, str) else json.dumps(message)}


def batch_payload() -> dict:
    return {"FromEmailAddress": SENDER, "Subject": "News", "TaskType": 1,
            "Template": {"TemplateID": 100091, "TemplateData": {"code": "1"}},
            "Recipients": [{"Email": f"n{index}@example.com"} for index in range(3)]}


def deliver_timer(batch, event) -> dict | Exception:
    """One SCF delivery: a raised error is what makes SCF retry the event."""
    try:
        result = batch(event, context())
    except Exception as exc:  # SCF sees any exception as a failed run
        return exc
    check_answer(result, [], faults=True)
    return result


def batch_calls(emulator) -> list[dict]:
    return [call for call in emulator.calls if call["Action"] == "BatchSendEmail"]


def test_a_timer_event_delivered_three_times_sends_one_batch(batch, limits_raised, fault_figures):
    emulator = limits_raised
    event = timer_event(batch_payload())
    answers = [deliver_timer(batch, event) for _ in range(3)]
    assert all(isinstance(answer, dict) and answer["statusCode"] == 200 for answer in answers), answers
    task_ids = {tuple(json.loads(answer["body"])["TaskIds"]) for answer in answers}
    assert len(task_ids) == 1
    assert len(batch_calls(emulator)) == 1
    fault_figures.add("timer events delivered 3 times, sent once")


def test_a_timer_event_whose_reply_was_lost_is_resolved_by_the_retry_and_sends_one_batch(
        batch, limits_raised, fault_figures):
    # GIVEN a first run whose BatchSendEmail reply is lost after the task was created
    emulator = limits_raised
    emulator.drop_after("BatchSendEmail")
    event = timer_event(batch_payload(), "2026-11-23T02:00:00Z")
    first = deliver_timer(batch, event)
    assert isinstance(first, Exception), first  # raised: SCF retries the event
    # WHEN SCF delivers it twice more
    second, third = deliver_timer(batch, event), deliver_timer(batch, event)
    # THEN the retry adopts the task SES created (ListSendTasks), and nothing is sent again
    assert isinstance(second, dict) and second["statusCode"] == 200, second
    assert isinstance(third, dict) and json.loads(third["body"])["TaskIds"] == json.loads(second["body"])["TaskIds"]
    assert [call["Outcome"] for call in batch_calls(emulator)] == ["dropped"]
    assert any(call["Action"] == "ListSendTasks" for call in emulator.calls)
    fault_figures.add("faults injected")
    fault_figures.add("outcomes unknown")
    fault_figures.add("outcomes unknown resolved")
    fault_figures.add("timer events delivered 3 times, sent once")


def test_a_timer_event_delivered_three_times_at_once_sends_one_batch(batch, limits_raised, fault_figures):
    emulator = limits_raised
    emulator.delay("BatchSendEmail", 0.2)  # the first run is still sending when the others arrive
    event = timer_event(batch_payload(), "2026-11-23T03:00:00Z")
    barrier = threading.Barrier(3)
    answers: list[Any] = [None] * 3

    def deliver(slot: int) -> None:
        barrier.wait()
        answers[slot] = deliver_timer(batch, event)

    threads = [threading.Thread(target=deliver, args=(slot,)) for slot in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(batch_calls(emulator)) == 1, answers
    assert any(isinstance(a, dict) and a["statusCode"] == 200 for a in answers), answers
    # The others were told the run is in progress (409): SCF does not retry those, and need not.
    assert all(isinstance(a, dict) and a["statusCode"] in (200, 409) for a in answers), answers
    fault_figures.add("timer events delivered 3 times, sent once")


def test_a_digest_timer_delivered_three_times_sends_one_digest_each(env, batch, limits_raised, tmp_path, monkeypatch,
                                                                     fault_figures):
    settings_file = tmp_path / "digest.json"
    settings_file.write_text(json.dumps({"Templates": {"welcome": 100091}, "Digests": {"daily": {
        "FromEmailAddress": "Digest <digest@mail.example.com>", "Subject": "Your day",
        "Template": {"TemplateName": "welcome"}, "TemplateData": {"count": "length(@)"}}}}))
    monkeypatch.setenv("SESMAIL_CONFIG", str(settings_file))
    config.reset()
    handler = load_function("batch").main_handler
    digest.queue(config.load(os.path.join(ROOT, "functions", "batch")),
                 [{"Digest": "daily", "Email": f"d{index}@example.com", "Item": {"n": index}} for index in range(5)])
    emulator = limits_raised
    emulator.drop_after("SendEmail")  # one recipient's reply lost in the first run
    event = timer_event("daily", "2026-11-23T04:00:00Z")
    for _ in range(3):
        deliver_timer(handler, event)
    per_recipient = Counter(mail["Destination"][0] for mail in emulator.sent)
    assert per_recipient == Counter({f"d{index}@example.com": 1 for index in range(5)})
    fault_figures.add("timer events delivered 3 times, sent once")


# -- (d) callbacks ----------------------------------------------------------------------------

def callback_event(body: Any, token: str = "hook-secret-1") -> dict:
    return http_event(body, path="/webhook", key=None, query={"token": token})


def test_a_callback_delivered_three_times_concurrently_is_stored_once(database, monkeypatch, fault_figures):
    # GIVEN three webhook "instances", each with a database connection of its own
    kind, url = database
    receive = load_function("webhook").main_handler
    instances: dict[int, Any] = {}
    lock = threading.Lock()

    def instance_store(_url: str):
        with lock:
            found = instances.get(threading.get_ident())
            if found is None:
                found = instances[threading.get_ident()] = store.new_store(url)
            return found

    monkeypatch.setattr(store, "open_store", instance_store)  # what http.Call.store opens
    callbacks = []
    for index in range(20):
        callbacks.append(dict(fixture("ses-callback-bounce.json"), bulkId=f"qcloudses-fault-{index}",
                              timestamp=1654064683 + index))
    # WHEN each callback is delivered three times at once
    results: list[list[dict]] = []
    for item in callbacks:
        barrier = threading.Barrier(3)
        answers: list[Any] = [None] * 3

        def deliver(slot: int, item=item, barrier=barrier, answers=answers) -> None:
            barrier.wait()
            answers[slot] = receive(callback_event(item), context())

        threads = [threading.Thread(target=deliver, args=(slot,)) for slot in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        results.append(answers)
    for found in instances.values():
        found.close()
    # THEN every delivery answers 200, one of the three stored it, and there is one row per callback
    for answers in results:
        bodies = [check_answer(answer, []) for answer in answers]
        assert [answer["statusCode"] for answer in answers] == [200, 200, 200]
        assert sorted(body["Stored"] for body in bodies) == [0, 0, 1], bodies
    rows = db.execute(url, "SELECT message_id, COUNT(*) FROM sesmail_events GROUP BY message_id")
    assert sorted(rows) == sorted((item["bulkId"], 1) for item in callbacks)
    fault_figures.add(f"callbacks delivered 3 times concurrently, stored once ({kind})", len(callbacks))


# -- (e) the database stopped mid-ingestion -------------------------------------------------

class Outage:
    """The store's database goes away in the middle of a multi-chunk INSERT of events, and stays
    away until `restore()`. SQLite: the driver's connection breaks and new ones fail. PostgreSQL:
    the server terminates our connections and refuses new ones (ALLOW_CONNECTIONS false)."""

    def __init__(self, kind: str, url: str, the_store) -> None:
        self.kind, self.url, self.store = kind, url, the_store
        self.armed = False
        self.down = False
        self.inserts_seen = 0
        self.broke_mid_transaction = False
        self.database = url.rsplit("/", 1)[1]
        dialect = the_store.dialect
        self._connect = dialect.connect
        dialect.connect = self.connect
        the_store.close()

    def connect(self):
        if self.down and self.kind == "sqlite":
            raise OSError("the database server is down (injected)")
        return _Connection(self._connect(), self)

    def statement(self, sql: str, connection) -> None:
        """Called before each statement: breaks the second INSERT of events of an armed request."""
        if self.down and self.kind == "sqlite":
            self._break(connection)
        if not self.armed or not sql.lstrip().upper().startswith("INSERT INTO SESMAIL_EVENTS"):
            return
        self.inserts_seen += 1
        if self.inserts_seen < 2:
            return
        self.armed = False
        self.down = True
        self.broke_mid_transaction = True
        if self.kind == "sqlite":
            self._break(connection)
        else:  # the real thing: the server ends our session under the open transaction
            admin = postgres_admin()
            try:
                cursor = admin.cursor()
                cursor.execute(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS false')
                # With a timeout, pg_terminate_backend waits until the session has ended.
                cursor.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = %s"
                               " AND pid <> pg_backend_pid()", (self.database,))
            finally:
                admin.close()

    @staticmethod
    def _break(connection) -> None:
        try:
            connection.rollback()  # what a server does with the open transaction of a lost session
        finally:
            connection.close()
        raise OSError("the connection to the database was lost (injected)")

    def arm(self) -> None:
        self.armed, self.inserts_seen = True, 0

    def restore(self) -> None:
        self.down = False
        if self.kind == "postgresql":
            admin = postgres_admin()
            try:
                admin.cursor().execute(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS true')
            finally:
                admin.close()


class _Cursor:
    def __init__(self, cursor, outage: Outage, connection) -> None:
        self._cursor, self._outage, self._connection = cursor, outage, connection

    def execute(self, sql, *args):
        self._outage.statement(sql, self._connection)
        return self._cursor.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._cursor, name)


class _Connection:
    def __init__(self, connection, outage: Outage) -> None:
        self._connection, self._outage = connection, outage

    def cursor(self):
        return _Cursor(self._connection.cursor(), self._outage, self._connection)

    def execute(self, sql, *args):  # sqlite3's shortcut (BEGIN IMMEDIATE)
        self._outage.statement(sql, self._connection)
        return self._connection.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._connection, name)


def event_batch(request: int, size: int) -> list[dict]:
    return [{"event": "delivered", "email": f"e{request}-{index}@example.com", "bulkId": f"qcloudses-r{request}",
             "timestamp": 1700000000 + index} for index in range(size)]


def test_the_database_stopped_mid_ingestion_answers_503_leaves_no_partial_rows_and_recovers(
        database, send, ses_fake, monkeypatch, fault_figures):
    kind, url = database
    receive = load_function("webhook").main_handler
    outage = Outage(kind, url, store.open_store(url))
    # 200 and 300 events: several INSERT chunks in one transaction; request 10 is where it breaks.
    sizes = [1, 200, 5, 200, 1, 300, 200, 2, 200, 1, 200, 1, 300, 5, 200, 1, 2, 200, 1, 90,
             1, 200, 5, 200, 1, 300, 200, 2, 200, 1]
    batches = [event_batch(index, size) for index, size in enumerate(sizes)]
    statuses: dict[int, int] = {}
    try:
        # GIVEN normal service for the first ten requests
        for index in range(10):
            statuses[index] = receive(callback_event(batches[index]), context())["statusCode"]
        # WHEN the database stops in the middle of storing request 11's 200 events, and stays down
        outage.arm()
        during = {}
        for index in range(10, 20):
            result = receive(callback_event(batches[index]), context())
            body = check_answer(result, [], faults=True)
            during[index] = (result["statusCode"], body.get("Error", {}).get("Code"))
        refused = send(http_event({"FromEmailAddress": SENDER, "Destination": ["x@example.com"], "Subject": "Hi",
                                   "Template": {"TemplateID": 100091}}), context())
    finally:
        outage.restore()
    # (read before anything else is written: PostgreSQL refused every connection while it was down)
    rows_during = db.execute(url, "SELECT message_id, COUNT(*) FROM sesmail_events GROUP BY message_id")
    # THEN every request in the outage answered 503, nothing was sent, and no request left part of its rows
    assert outage.broke_mid_transaction
    assert set(during.values()) == {(503, "ResourceUnavailable.Store")}, during
    assert refused["statusCode"] == 503 and ses_fake.calls == [], refused
    assert all(statuses[index] == 200 for index in range(10)), statuses
    stored = dict(rows_during)
    for index in range(20):
        expected = len({json.dumps(item, sort_keys=True) for item in batches[index]}) if index < 10 else 0
        assert stored.get(f"qcloudses-r{index}", 0) == expected, (index, stored.get(f"qcloudses-r{index}"))
    # AND once it is back: normal service, and the refused deliveries (SES's, again) land exactly once
    for index in range(20, 30):
        assert receive(callback_event(batches[index]), context())["statusCode"] == 200, index
    for index in range(10, 20):
        assert receive(callback_event(batches[index]), context())["statusCode"] == 200, index
    for index in range(10):  # a repeat of what had landed stores nothing new
        result = receive(callback_event(batches[index]), context())
        assert json.loads(result["body"])["Stored"] == 0
    rows = dict(db.execute(url, "SELECT message_id, COUNT(*) FROM sesmail_events GROUP BY message_id"))
    assert rows == {f"qcloudses-r{index}": size for index, size in enumerate(sizes)}
    policy.reset()
    fault_figures.add(f"database outages mid-ingestion ({kind})")
    fault_figures.add("503s during database outages", len(during) + 1)
    fault_figures.add("faults injected")
