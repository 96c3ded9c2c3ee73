"""The store's part of schedules (docs/topics.md#schedules), on SQLite, PostgreSQL and MariaDB: a
schedule and its recipients are kept together, found when due, moved on by compare-and-swap (two
instances at once: one wins), drop their recipients when they end, lose an erased address, and are
purged once ended and old; and a firing run by two instances at once, each with its own
connection, is sent once."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone

from sesmail import config, schedules
from sesmail import store as stores
from sesmail.deadline import Deadline
from sesmail.http import Call
from sesmail.store import new_store
from tests.conftest import load_function
from tests.events import context, http_event

NOW = 1_795_000_000.0
HASH_A = "a" * 64


def schedule(schedule_id: str = "sched-" + "1" * 24, next_at: float = NOW, **changes) -> dict:
    out = {"schedule_id": schedule_id, "client": "web", "task_type": 3, "interval_s": 86400.0,
           "payload": {"Subject": "News", "Topic": "news", "TaskType": 1, "Template": {"TemplateID": 1}},
           "state": "scheduled", "next_at": next_at, "fired": 0, "missed": 0, "failed": 0, "last_fire_at": None,
           "last_result": None, "created_at": NOW - 100, "updated_at": NOW - 100}
    out.update(changes)
    return out


READERS = [{"Email": f"Reader{n}@example.com", "TemplateData": f'{{"n":"{n}"}}'} for n in range(450)]


def test_a_schedule_and_its_recipients_are_kept_together_in_order(store, backend):
    store.add_schedule(schedule(), READERS)
    found = store.get_schedule("sched-" + "1" * 24)
    assert found is not None and found["version"] == 1
    assert {k: v for k, v in found.items() if k != "version"} == schedule()
    assert store.schedule_recipients("sched-" + "1" * 24) == READERS  # as written, in the request's order
    assert store.get_schedule("sched-" + "2" * 24) is None


def test_a_schedule_is_stored_whole_or_not_at_all(store, backend):
    store.add_schedule(schedule(), READERS[:1])
    from sesmail.store.sql import ConstraintViolation

    try:
        store.add_schedule(schedule(), READERS)
    except ConstraintViolation:
        pass
    else:
        raise AssertionError("a second schedule under the same id was stored")
    assert len(store.schedule_recipients("sched-" + "1" * 24)) == 1
    assert backend.count("sesmail_schedule_recipients") == 1


def test_due_schedules_are_the_scheduled_ones_whose_time_has_come_longest_due_first(store, backend):
    store.add_schedule(schedule("sched-" + "1" * 24, NOW - 10), [])
    store.add_schedule(schedule("sched-" + "2" * 24, NOW - 20), [])
    store.add_schedule(schedule("sched-" + "3" * 24, NOW + 10), [])
    store.add_schedule(schedule("sched-" + "4" * 24, None, state="cancelled"), [])
    store.add_schedule(schedule("sched-" + "5" * 24, NOW - 30, state="done"), [])
    assert [s["schedule_id"][6] for s in store.due_schedules(NOW, 10)] == ["2", "1"]
    assert [s["schedule_id"][6] for s in store.due_schedules(NOW, 1)] == ["2"]


def test_moving_a_schedule_on_is_a_compare_and_swap_two_instances_cannot_both_win(stores, backend):
    first, second = stores(), stores()
    first.add_schedule(schedule(), READERS[:3])
    results: list[bool] = []
    start = threading.Barrier(2)

    def instance(store, fired: int) -> None:
        start.wait()
        results.append(store.update_schedule("sched-" + "1" * 24, 1, next_at=NOW + 86400, fired=fired,
                                             last_fire_at=NOW, last_result={"TaskIds": [fired]}))

    threads = [threading.Thread(target=instance, args=(store, n)) for n, store in ((1, first), (2, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, True]
    found = first.get_schedule("sched-" + "1" * 24)
    assert found["version"] == 2 and found["last_result"] == {"TaskIds": [found["fired"]]}
    assert first.update_schedule("sched-" + "1" * 24, 1, fired=9) is False


def test_a_schedule_that_ends_drops_its_recipients(store, backend):
    store.add_schedule(schedule(), READERS[:3])
    store.add_schedule(schedule("sched-" + "2" * 24), READERS[:2])
    assert store.update_schedule("sched-" + "1" * 24, 1, next_at=NOW + 1) is True
    assert len(store.schedule_recipients("sched-" + "1" * 24)) == 3  # moved on, still scheduled
    assert store.update_schedule("sched-" + "1" * 24, 2, state="cancelled", next_at=None) is True
    assert store.schedule_recipients("sched-" + "1" * 24) == []
    assert len(store.schedule_recipients("sched-" + "2" * 24)) == 2  # another schedule's are untouched


def test_an_erasure_takes_the_address_out_of_every_schedule(store, backend):
    store.add_schedule(schedule(), READERS[:3])
    store.add_schedule(schedule("sched-" + "2" * 24), READERS[1:2])
    counts = store.erase_address("reader1@EXAMPLE.com", HASH_A)
    assert counts["ScheduleRecipients"] == 2
    assert [r["Email"] for r in store.schedule_recipients("sched-" + "1" * 24)] == ["Reader0@example.com",
                                                                                   "Reader2@example.com"]
    assert store.schedule_recipients("sched-" + "2" * 24) == []


def test_ended_schedules_are_purged_with_the_sent_log_and_live_ones_never(store, backend):
    store.add_schedule(schedule("sched-" + "1" * 24, None, state="done", updated_at=NOW - 100), [])
    store.add_schedule(schedule("sched-" + "2" * 24, None, state="cancelled", updated_at=NOW - 10), [])
    store.add_schedule(schedule("sched-" + "3" * 24, NOW - 1000, updated_at=NOW - 1000), READERS[:1])
    assert store.purge(NOW, NOW - 50)["Schedules"] == 1
    assert store.get_schedule("sched-" + "1" * 24) is None
    assert store.get_schedule("sched-" + "2" * 24) is not None and store.get_schedule("sched-" + "3" * 24)


# --- firing, on each database: two instances with connections of their own ---

def test_two_instances_firing_one_schedule_at_once_send_it_once(backend, env, ses_fake, tmp_path, monkeypatch):
    # GIVEN a recurring topic batch kept on this database
    url = backend.database()
    settings_file = tmp_path / "schedules.json"
    settings_file.write_text(json.dumps({"Templates": {"welcome": 100091}, "Topics": {"news": {"DisplayName": "N"}}}))
    monkeypatch.setenv("SESMAIL_CONFIG", str(settings_file))
    monkeypatch.setenv("SESMAIL_DATABASE_URL", url)
    config.reset()
    stores.reset()
    begin = (datetime.now(timezone.utc) + timedelta(minutes=10)).strftime("%Y-%m-%d %H:%M:%S+00:00")
    payload = {"FromEmailAddress": "noreply@mail.example.com", "Subject": "News", "TaskType": 3, "Topic": "news",
               "Template": {"TemplateID": 100091}, "CycleParam": {"BeginTime": begin, "IntervalTime": 24},
               "Recipients": READERS[:3]}
    answer = load_function("batch").main_handler(http_event(payload, path="/batch"), context())
    assert answer["statusCode"] == 200, answer
    schedule_id = json.loads(answer["body"])["TaskId"]
    backend.execute("UPDATE sesmail_schedules SET next_at = ? WHERE schedule_id = ?",
                    (float(int(time.time() - 1)), schedule_id), url=url)
    ses_fake.delay("BatchSendEmail", 0.5)  # the first is still in flight when the second looks
    # WHEN two instances, each with its own connection, run the job at the same moment
    outcomes: list[dict] = []
    start = threading.Barrier(2)

    def instance() -> None:
        call = Call(None, config.load(), Deadline(60_000), "instance")
        call.store = own = new_store(url)
        try:
            start.wait()
            outcomes.append(schedules.run_due(call))
        finally:
            own.close()

    threads = [threading.Thread(target=instance) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stores.reset()
    # THEN one of them sent it, once
    assert len(outcomes) == 2 and sum(outcome["Fired"] for outcome in outcomes) == 1, outcomes
    assert len([c for c in ses_fake.calls if c["Action"] == "BatchSendEmail"]) == 1
    assert backend.execute("SELECT fired, version FROM sesmail_schedules", url=url) == [(1, 2)]
