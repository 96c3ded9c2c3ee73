"""SQLite counts most events in batches (store/stats.py `fold_counts`; docs/deliverability.md#statistics):
what the statistics say never depends on when a batch ran, deleting events never loses or repeats
a count, and two stores on one file never count an event twice."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from sesmail import store as stores_module
from sesmail.store import stats as store_stats
from sesmail.store.stats import day_of, hour_of
from tests.store.test_stats_store import NOW, callback, ingest, table


@pytest.fixture
def db(tmp_path):
    opened = []

    def open_one():
        one = stores_module.new_store(f"sqlite:///{tmp_path / 'stats.sqlite3'}")
        opened.append(one)
        return one

    yield open_one
    for one in opened:
        one.close()


def raw_delivered(path_store) -> int:
    """The daily table's delivered count as it stands (no fold first)."""
    return path_store._run(lambda cursor: (cursor.execute("SELECT COALESCE(SUM(delivered), 0) FROM"
                                                          " sesmail_stats_daily"), cursor.fetchone())[1][0])


def deliveries(count: int, start: int = 0, prefix: str = "m") -> list[dict]:
    return [callback("delivered", f"{prefix}-{i}", f"r{i}@inbox.example") for i in range(start, start + count)]


def test_a_batch_runs_every_fold_every_events_and_reading_the_statistics_counts_the_rest(db):
    store = db()
    ingest(store, deliveries(store_stats.FOLD_EVERY - 1))
    assert raw_delivered(store) == 0  # not counted yet
    ingest(store, deliveries(2, start=store_stats.FOLD_EVERY - 1))
    assert raw_delivered(store) == store_stats.FOLD_EVERY + 1  # the 200th stored event ran the batch
    ingest(store, deliveries(5, start=500))
    assert sum(row["Delivered"] for row in table(store, "day").values()) == store_stats.FOLD_EVERY + 6


def test_hard_bounces_and_reports_count_at_once_for_the_guard(db):
    store = db()
    store.record_sent("m-1", "web", "news@shop.example", ["r@inbox.example"], NOW, template_id=7)
    assert ingest(store, [callback("bounce", "m-1", bounceType="hard_bounce"), callback("delivered", "m-1")]) == (2, 1)
    assert store.guard_window("shop.example", hour_of(NOW))["shop.example"]["HardBounces"] == 1
    assert table(store, "template")[7]["HardBounces"] == 1 and table(store, "template")[7]["Delivered"] == 1


def test_an_event_told_again_after_its_batch_is_not_counted_again(db):
    store = db()
    ingest(store, [callback("open", "m-1")])
    assert table(store, "day")[day_of(NOW)]["Opens"] == 1  # counted by this read's batch
    # a second open of the same mail (another event id) and the first again, in the next batch
    assert ingest(store, [callback("open", "m-1", timestamp=int(NOW) + 60), callback("open", "m-1")]) == (1, 0)
    assert table(store, "day")[day_of(NOW)]["Opens"] == 1


def test_purging_expired_events_counts_them_first(db):
    store = db()
    ingest(store, deliveries(3))
    store.purge(NOW + 86400 + 1, 0)  # every event expired, none counted yet
    assert table(store, "day")[day_of(NOW)]["Delivered"] == 3


def test_after_erasing_the_newest_events_the_next_ones_still_count(db):
    store = db()
    for one in deliveries(3):  # one by one: r2's event has the largest rowid
        ingest(store, [one])
    assert table(store, "day")[day_of(NOW)]["Delivered"] == 3
    # The erased address held the largest rowids: the next event takes the first of them again.
    store.erase_address("r2@inbox.example", "hash")
    ingest(store, deliveries(2, start=10))
    assert table(store, "day")[day_of(NOW)]["Delivered"] == 5


def test_a_database_from_before_batches_counts_nothing_twice(db, tmp_path):
    store = db()
    ingest(store, deliveries(4))
    assert table(store, "day")[day_of(NOW)]["Delivered"] == 4
    store.close()
    # As the previous schema left it: every stored event counted, no fold position.
    raw = sqlite3.connect(tmp_path / "stats.sqlite3")
    raw.execute("DROP TABLE sesmail_stats_folded")
    raw.execute("UPDATE sesmail_schema SET version = 5")
    raw.commit()
    raw.close()
    upgraded = db()
    assert table(upgraded, "day")[day_of(NOW)]["Delivered"] == 4
    ingest(upgraded, deliveries(1, start=9))
    assert table(upgraded, "day")[day_of(NOW)]["Delivered"] == 5


def test_two_stores_on_one_file_folding_at_once_count_each_event_once(db):
    first, second = db(), db()
    ingest(first, deliveries(150))
    ingest(second, deliveries(150, start=150))
    barrier = threading.Barrier(2)
    errors = []

    def fold(one):
        try:
            barrier.wait()
            one.fold_counts()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fold, args=(one,)) for one in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert raw_delivered(first) == 300
    assert table(second, "day")[day_of(NOW)]["Delivered"] == 300


def test_a_batch_that_fails_never_fails_the_events_it_follows(db, monkeypatch):
    store = db()
    real = type(store)._fold_page
    failures = []

    def broken(self, cursor):
        if not failures:
            failures.append(1)
            raise sqlite3.OperationalError("disk I/O error")
        return real(self, cursor)

    monkeypatch.setattr(type(store), "_fold_page", broken)
    assert ingest(store, deliveries(store_stats.FOLD_EVERY))[0] == store_stats.FOLD_EVERY  # stored, no error
    assert failures and raw_delivered(store) == 0
    assert table(store, "day")[day_of(NOW)]["Delivered"] == store_stats.FOLD_EVERY  # the next batch counts them
