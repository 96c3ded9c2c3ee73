"""The statistics' aggregates on every database: kept as mails are logged and events stored, each
mail's event counted once, filed by the Beijing day and hour the mail was sent
(docs/deliverability.md#statistics)."""

from __future__ import annotations

import time
from types import SimpleNamespace

from sesmail import events, stats
from sesmail.store.stats import day_of, hour_of

NOW = float(int(time.time()) // 3600 * 3600 + 1800)  # the middle of an hour: no test straddles one
SETTINGS = SimpleNamespace(erasure_key="k")
COLUMNS = ("Key", "Sent", "Delivered", "HardBounces", "SoftBounces", "Complaints", "Unsubscribes", "Opens", "Clicks")


def ingest(store, callbacks: list[dict], now: float = NOW) -> tuple[int, int]:
    lowered = [{key.lower(): value for key, value in callback.items()} for callback in callbacks]
    rows = [events.normalise(fields, fields, now, 86400) for fields in lowered]
    return store.ingest_events(rows, stats.facts(SETTINGS, lowered, rows, now))


def table(store, by: str, first: int | None = None, last: int | None = None) -> dict:
    today = day_of(NOW)
    rows = store.stats_rows(today - 3 if first is None else first, today + 1 if last is None else last, by)
    return {row[0]: dict(zip(COLUMNS[1:], row[1:])) for row in rows}


def callback(event: str, message_id: str | None, email: str = "r@inbox.example", **fields) -> dict:
    found = {"event": event, "email": email, "timestamp": int(NOW) + len(fields), **fields}
    if message_id is not None:
        found["bulkId"] = message_id
    return found


def test_a_logged_mail_counts_its_recipients_as_sent_under_its_day_sender_and_template(store):
    assert store.record_sent("m-1", "web", "news@shop.example", ["a@x.example", "b@x.example"], NOW, template_id=7)
    assert not store.record_sent("m-1", "web", "news@shop.example", ["a@x.example"], NOW, template_id=7)
    assert table(store, "template")[7]["Sent"] == 2
    assert table(store, "sender")["news@shop.example"]["Sent"] == 2
    assert table(store, "day")[day_of(NOW)]["Sent"] == 2
    assert store.guard_window("shop.example", hour_of(NOW))["shop.example"]["Sent"] == 2


def test_each_mail_s_event_is_counted_once_and_opens_are_unique_per_mail(store):
    store.record_sent("m-1", "web", "news@shop.example", ["r@inbox.example", "s@inbox.example"], NOW, template_id=7)
    batch = [callback("delivered", "m-1"), callback("delivered", "m-1", timestamp=int(NOW) + 9),
             callback("open", "m-1"), callback("open", "m-1", timestamp=int(NOW) + 60),
             callback("open", "m-1", "s@inbox.example"), callback("click", "m-1", link="https://a.example"),
             callback("click", "m-1", link="https://b.example"), callback("unsubscribe", "m-1"),
             callback("deferred", "m-1")]
    assert ingest(store, batch) == (9, 0)
    assert ingest(store, batch) == (0, 0)  # the same callbacks again: nothing new
    assert ingest(store, [callback("open", "m-1", timestamp=int(NOW) + 3600)]) == (1, 0)  # a new event, an old open
    assert table(store, "template")[7] == {"Sent": 2, "Delivered": 1, "HardBounces": 0, "SoftBounces": 0,
                                           "Complaints": 0, "Unsubscribes": 1, "Opens": 2, "Clicks": 1}


def test_bounces_count_hard_or_soft_by_their_type_and_hard_ones_and_reports_fill_the_guard_s_hour(store):
    sent_at = NOW - 5 * 3600
    store.record_sent("m-2", "web", "news@shop.example", ["a@x.example", "b@x.example", "c@x.example"], sent_at,
                      template_id=8)
    counted = ingest(store, [callback("bounce", "m-2", "a@x.example", bounceType="hard_bounce"),
                             callback("bounce", "m-2", "b@x.example", bounceType="soft_bounce"),
                             callback("bounce", "m-2", "c@x.example"),  # no type (a polled bounce): soft
                             callback("spamreport", "m-2", "c@x.example")])
    assert counted == (4, 2)
    assert table(store, "template")[8] == {"Sent": 3, "Delivered": 0, "HardBounces": 1, "SoftBounces": 2,
                                           "Complaints": 1, "Unsubscribes": 0, "Opens": 0, "Clicks": 0}
    # filed by the hour the mail was sent, not the hour the callback came
    assert store.guard_window("shop.example", hour_of(sent_at))["shop.example"] == {
        "Sent": 3, "HardBounces": 1, "Complaints": 1, "LiftedUntil": 0.0, "Tripped": False}
    assert store.guard_window("shop.example", hour_of(sent_at) + 1)["shop.example"]["Sent"] == 0


def test_an_event_of_a_mail_the_sent_log_does_not_know_is_filed_under_the_callback_s_own_fields(store):
    sent = int(NOW) - 86400
    ingest(store, [callback("delivered", "m-batch", **{"from": "Shop <deals@shop.example>", "templateId": 9,
                                                       "sentTimestamp": sent}),
                   callback("spamreport", None, fromDomain="other.example")])
    assert table(store, "sender") == {
        "deals@shop.example": {"Sent": 0, "Delivered": 1, "HardBounces": 0, "SoftBounces": 0, "Complaints": 0,
                               "Unsubscribes": 0, "Opens": 0, "Clicks": 0},
        "@other.example": {"Sent": 0, "Delivered": 0, "HardBounces": 0, "SoftBounces": 0, "Complaints": 1,
                           "Unsubscribes": 0, "Opens": 0, "Clicks": 0}}
    assert set(table(store, "day")) == {day_of(sent), day_of(NOW)}
    assert store.guard_window("other.example", hour_of(NOW))["other.example"]["Complaints"] == 1


def test_mail_is_counted_on_its_beijing_day(store):
    midnight = (day_of(NOW) * 86400) - 8 * 3600  # 00:00 in Beijing, 16:00 UTC the day before
    store.record_sent("m-late", "web", "n@shop.example", ["a@x.example"], midnight - 1)
    store.record_sent("m-early", "web", "n@shop.example", ["a@x.example"], midnight)
    by_day = table(store, "day")
    assert (by_day[day_of(NOW) - 1]["Sent"], by_day[day_of(NOW)]["Sent"]) == (1, 1)


def test_a_batch_s_recipients_are_counted_as_sent_without_a_sent_log_row(store):
    store.count_sent("news@shop.example", 5, 300, NOW)
    assert table(store, "template")[5]["Sent"] == 300
    assert store.guard_window("shop.example", hour_of(NOW))["*"]["Sent"] == 300


def test_the_guard_s_state_flips_once_and_an_admin_lift_is_kept(store):
    assert store.guard_flip("shop.example", True, NOW)
    assert not store.guard_flip("shop.example", True, NOW)  # another instance saw it first
    assert store.guard_lift("shop.example", NOW + 86400, NOW)  # it was tripped
    window = store.guard_window("shop.example", hour_of(NOW))["shop.example"]
    assert (window["Tripped"], window["LiftedUntil"]) == (False, NOW + 86400)
    assert not store.guard_flip("shop.example", False, NOW)  # lifted already
    assert not store.guard_lift("*", NOW + 86400, NOW)
    assert store.guard_overview(hour_of(NOW))[1] == {"shop.example": (False, NOW + 86400), "*": (False, NOW + 86400)}


def test_admit_asks_the_guard_s_window_with_the_suppressions_and_leases(store):
    store.record_sent("m-3", "web", "n@shop.example", ["a@x.example"], NOW)
    store.suppress("b@x.example", "all", "hard_bounce", "callback", NOW)
    found, blocked, window = store.admit(["a@x.example", "b@x.example"], True, {}, ["1" * 64], "me", NOW + 60, NOW,
                                         guard=("shop.example", hour_of(NOW)))
    assert (set(found), blocked) == ({"b@x.example"}, None)
    assert window["shop.example"]["Sent"] == window["*"]["Sent"] == 1
    assert len(store.admit(["a@x.example"], True, {}, ["2" * 64], "me", NOW + 60, NOW)) == 2


def test_purge_lets_go_of_expired_marks_and_hours_no_window_reaches(store, backend):
    store.record_sent("m-4", "web", "n@shop.example", ["r@inbox.example"], NOW - 200 * 3600)
    ingest(store, [callback("open", "m-4")], now=NOW - 100000)  # its mark expires a day later
    counts = store.purge(NOW, NOW - 300 * 86400)
    # SQLite keeps no marks: its one writer asks the events themselves (store.stats._first_by_events)
    assert (counts["StatsMarks"], counts["GuardHours"]) == (0 if backend.name == "sqlite" else 1, 1)
    assert table(store, "day", day_of(NOW) - 10)[day_of(NOW - 200 * 3600)]["Opens"] == 1  # days are kept


def test_concurrent_deliveries_of_the_same_callbacks_are_counted_once(stores):
    """Four instances take the same callbacks at once (SES repeating itself, a retried POST): the
    marks decide, inside each store's statement or transaction, so every mail's event counts once."""
    import threading

    first = stores()
    first.record_sent("m-c", "web", "news@shop.example", [f"r{n}@inbox.example" for n in range(8)], NOW,
                      template_id=3)
    batch = [callback("open", "m-c", f"r{n}@inbox.example", timestamp=int(NOW) + n) for n in range(8)]
    batch += [callback("bounce", "m-c", f"r{n}@inbox.example", bounceType="hard_bounce") for n in range(4)]
    errors: list[BaseException] = []
    workers = [stores() for _ in range(4)]
    start = threading.Barrier(len(workers))

    def deliver(store, shift):
        try:
            start.wait()
            for item in batch[shift:] + batch[:shift]:
                ingest(store, [item])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(store, n * 3)) for n, store in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    counts = table(first, "template")[3]
    assert (counts["Sent"], counts["Opens"], counts["HardBounces"]) == (8, 8, 4)
    assert first.guard_window("shop.example", hour_of(NOW))["shop.example"]["HardBounces"] == 4


def test_an_array_larger_than_one_statement_is_counted_once_per_mail(store):
    """Above 90 events an array is stored in several statements, in one transaction: the same counts."""
    store.record_sent("m-big", "web", "news@shop.example", [f"r{n}@inbox.example" for n in range(150)], NOW,
                      template_id=4)
    batch = [callback("open", "m-big", f"r{n}@inbox.example") for n in range(150)]
    assert ingest(store, batch + batch[:10]) == (150, 0)
    assert ingest(store, batch) == (0, 0)
    assert table(store, "template")[4]["Opens"] == 150
