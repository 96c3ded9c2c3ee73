"""The store's part of schedules (docs/topics.md#schedules), on SQLite, PostgreSQL and MariaDB: a
schedule and its recipients are kept together, found when due, moved on by compare-and-swap (two
instances at once: one wins), drop their recipients when they end, lose an erased address, and are
purged once ended and old."""

from __future__ import annotations

import threading

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
