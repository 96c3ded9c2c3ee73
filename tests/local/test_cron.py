"""SCF timer cron expressions and the scheduler that fires them (on explicit times, never wall time)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from local.cron import Cron, Scheduler, Timer, zone

UTC = timezone.utc


def at(*args):
    return datetime(*args, tzinfo=UTC)


def nexts(expression, start, count=3):
    cron, out, t = Cron(expression), [], start
    for _ in range(count):
        t = cron.next_after(t)
        out.append(t)
    return out


@pytest.mark.parametrize(("expression", "start", "expected"), [
    # Tencent's own examples (583/9708)
    ("0 */5 * * * * *", at(2026, 1, 1, 0, 3, 7), [at(2026, 1, 1, 0, 5), at(2026, 1, 1, 0, 10), at(2026, 1, 1, 0, 15)]),
    ("*/5 * * * * * *", at(2026, 1, 1, 0, 0, 3), [at(2026, 1, 1, 0, 0, 5), at(2026, 1, 1, 0, 0, 10),
                                                   at(2026, 1, 1, 0, 0, 15)]),
    ("0 0 10,14,16 * * * *", at(2026, 1, 1, 11), [at(2026, 1, 1, 14), at(2026, 1, 1, 16), at(2026, 1, 2, 10)]),
    ("0 */30 9-17 * * * *", at(2026, 1, 1, 17, 10), [at(2026, 1, 1, 17, 30), at(2026, 1, 2, 9), at(2026, 1, 2, 9, 30)]),
    ("0 0 12 ? * WED *", at(2026, 1, 1), [at(2026, 1, 7, 12), at(2026, 1, 14, 12), at(2026, 1, 21, 12)]),
    ("0 15 10 * * MON-FRI *", at(2026, 1, 2, 11), [at(2026, 1, 5, 10, 15), at(2026, 1, 6, 10, 15),
                                                    at(2026, 1, 7, 10, 15)]),
    ("0 0 0 1 JAN,jul ? *", at(2026, 2, 1), [at(2026, 7, 1), at(2027, 1, 1), at(2027, 7, 1)]),
    ("0 0 0 L * ? *", at(2026, 1, 15), [at(2026, 1, 31), at(2026, 2, 28), at(2026, 3, 31)]),
    ("0 0 0 29 2 ? *", at(2026, 1, 1), [at(2028, 2, 29), at(2032, 2, 29), at(2036, 2, 29)]),
    ("0 0 0 * * 0 *", at(2026, 1, 1), [at(2026, 1, 4), at(2026, 1, 11), at(2026, 1, 18)]),  # 0 is Sunday
    ("0 0 0 * * 7 *", at(2026, 1, 1), [at(2026, 1, 4), at(2026, 1, 11), at(2026, 1, 18)]),  # 7 is Sunday too
    ("0 0 8 1/10 * * *", at(2026, 1, 1, 9), [at(2026, 1, 11, 8), at(2026, 1, 21, 8), at(2026, 1, 31, 8)]),
    ("30 1 2 3 4 * 2027-2028", at(2026, 1, 1), [at(2027, 4, 3, 2, 1, 30), at(2028, 4, 3, 2, 1, 30), None]),
    ("*/20 * * * *", at(2026, 1, 1, 0, 1), [at(2026, 1, 1, 0, 20), at(2026, 1, 1, 0, 40), at(2026, 1, 1, 1)]),  # legacy
], ids=lambda v: v if isinstance(v, str) else None)
def test_next_times(expression, start, expected):
    cron, got, t = Cron(expression), [], start
    for _ in expected:
        t = cron.next_after(t) if t is not None else None
        got.append(t)
    assert got == expected


def test_next_after_is_strictly_after():
    assert Cron("0 0 * * * * *").next_after(at(2026, 1, 1, 5)) == at(2026, 1, 1, 6)


def test_day_and_week_both_restricted_match_either():
    cron = Cron("0 0 0 13 * FRI *")
    assert cron.matches(datetime(2026, 2, 13))  # a Friday the 13th
    assert cron.matches(datetime(2026, 2, 6))  # a Friday
    assert cron.matches(datetime(2026, 1, 13))  # a Tuesday the 13th
    assert not cron.matches(datetime(2026, 1, 14))


def test_a_zone_moves_the_wall_clock_times():
    shanghai = zone("Asia/Shanghai")
    start = datetime(2026, 1, 1, tzinfo=UTC).astimezone(shanghai)
    first = Cron("0 0 9 * * * *").next_after(start)
    assert first.astimezone(UTC) == at(2026, 1, 1, 1)  # 09:00 in Shanghai is 01:00 UTC
    assert zone(None) is UTC and zone("UTC") is UTC
    with pytest.raises(ValueError):
        zone("Not/AZone")


@pytest.mark.parametrize("expression", [
    "0 0 0 * *", "61 * * * * * *", "* * 24 * * * *", "0 0 0 * 13 * *", "0 0 0 * FOO * *", "? * * * * * *",
    "0 0 0 W * * *", "0 0 0 * * 5#3 *", "0 0 0 5-1 * * *", "*/0 * * * * * *", "0,,1 * * * * * *",
    "0 0 0 * * * 1969",
])
def test_invalid_expressions_are_refused(expression):
    with pytest.raises(ValueError):
        Cron(expression)


def make_timers(*specs):
    return [Timer(name, "batch", Cron(expression), message, enabled) for name, expression, message, enabled in specs]


def test_the_scheduler_fires_due_timers_once_with_their_scheduled_time():
    fired = []
    scheduler = Scheduler([], lambda timer, when: fired.append((timer.name, timer.argument, when)))
    start = at(2026, 1, 1, 0, 0, 30)
    scheduler.set_timers(make_timers(("every-minute", "0 * * * * * *", "digest", True),
                                     ("off", "0 * * * * * *", "", False)), start)
    assert scheduler.run_pending(at(2026, 1, 1, 0, 0, 59)) == []
    assert scheduler.run_pending(at(2026, 1, 1, 0, 1, 0, 200000)) == [("every-minute", at(2026, 1, 1, 0, 1))]
    assert scheduler.run_pending(at(2026, 1, 1, 0, 1, 30)) == []
    # A sleeping laptop: three missed minutes fire once, not three times.
    assert scheduler.run_pending(at(2026, 1, 1, 0, 5, 10)) == [("every-minute", at(2026, 1, 1, 0, 2))]
    assert fired == [("every-minute", "digest", at(2026, 1, 1, 0, 1)), ("every-minute", "digest", at(2026, 1, 1, 0, 2))]
    assert scheduler.next_times()["every-minute"] == at(2026, 1, 1, 0, 6)


def test_changed_timers_keep_their_schedule_unless_their_cron_changed():
    scheduler = Scheduler([], lambda timer, when: None)
    scheduler.set_timers(make_timers(("a", "0 0 * * * * *", "", True), ("b", "0 0 * * * * *", "", True)),
                         at(2026, 1, 1, 0, 30))
    scheduler.set_timers(make_timers(("a", "0 0 * * * * *", "", True), ("b", "0 */10 * * * * *", "", True)),
                         at(2026, 1, 1, 0, 31))
    assert scheduler.next_times() == {"a": at(2026, 1, 1, 1), "b": at(2026, 1, 1, 0, 40)}


def test_the_scheduler_thread_starts_and_stops():
    scheduler = Scheduler(make_timers(("rare", "0 0 0 1 1 * 2099", "", True)), lambda timer, when: None).start()
    scheduler.stop()
    assert scheduler.next_times()["rare"] - datetime.now(UTC) > timedelta(days=365)
