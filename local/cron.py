"""SCF timer cron expressions, and a scheduler that fires timers when they are due.

SCF's recommended form has 7 fields, `sec min hour day month week year` (docs 583/9708):
seconds and minutes 0-59, hour 0-23, day 1-31, month 1-12 or JAN-DEC, week 0-6 or SUN-SAT
(0 = Sunday; 7 is read as Sunday too), year 1970-2099; `*` any, `?` any (day and week), `a-b`
ranges, `a,b` lists, `*/n`, `a/n` and `a-b/n` steps, and `L` in the day field (last day of the
month). The legacy 5-field form `min hour day month week` is accepted as `0 min hour day month
week *`. `W`, `#` and `L` in the week field are refused rather than guessed.

When both day and week are restricted, a time matches if either does (as POSIX cron does);
Tencent's examples always leave one of them `*`. Tencent does not document the zone timers run
in; the local stack evaluates them in UTC unless `TZ` is set, as SCF's runtime does.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Callable, NamedTuple, Optional

__all__ = ["Cron", "Scheduler", "Timer", "zone"]

MONTHS = {name: i for i, name in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1)}
WEEKDAYS = {name: i for i, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
# (name, low, high, names)
FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("second", 0, 59, {}), ("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day", 1, 31, {}),
    ("month", 1, 12, MONTHS), ("week", 0, 7, WEEKDAYS), ("year", 1970, 2099, {}))


class Cron:
    def __init__(self, expression: str) -> None:
        self.expression = expression
        parts = expression.split()
        if len(parts) == 5:
            parts = ["0", *parts, "*"]
        elif len(parts) == 6:
            parts = [*parts, "*"]
        if len(parts) != 7:
            raise ValueError(f"cron {expression!r}: expected 7 fields (sec min hour day month week year)")
        self.last_day = parts[3].upper() == "L"
        sets: list[set[int]] = []
        self.restricted: dict[str, bool] = {}
        for text, (name, low, high, names) in zip(parts, FIELDS):
            if name == "day" and self.last_day:
                sets.append(set())
                self.restricted[name] = True
                continue
            values, restricted = _field(text, name, low, high, names)
            sets.append(values)
            self.restricted[name] = restricted
        self.seconds, self.minutes, self.hours, self.days, self.months, weeks, self.years = sets
        self.weeks = {0 if w == 7 else w for w in weeks}  # 7 is Sunday too

    def _day_ok(self, t: datetime) -> bool:
        day_match = (t + timedelta(days=1)).month != t.month if self.last_day else t.day in self.days
        week_match = (t.isoweekday() % 7) in self.weeks  # isoweekday: Monday 1 .. Sunday 7 -> 0
        day_r, week_r = self.restricted["day"], self.restricted["week"]
        if day_r and week_r:
            return day_match or week_match
        if day_r:
            return day_match
        if week_r:
            return week_match
        return True

    def matches(self, t: datetime) -> bool:
        return (t.second in self.seconds and t.minute in self.minutes and t.hour in self.hours
                and t.month in self.months and t.year in self.years and self._day_ok(t))

    def next_after(self, after: datetime) -> Optional[datetime]:
        """The first matching time strictly after `after`, in `after`'s zone; None if none by 2099."""
        tz = after.tzinfo
        t = after.replace(microsecond=0, tzinfo=None) + timedelta(seconds=1)
        last_year = max(self.years)
        while True:
            if t.year > last_year:
                return None
            if t.year not in self.years:
                t = datetime(t.year + 1, 1, 1)
            elif t.month not in self.months:
                t = datetime(t.year + 1, 1, 1) if t.month == 12 else datetime(t.year, t.month + 1, 1)
            elif not self._day_ok(t):
                t = datetime(t.year, t.month, t.day) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = datetime(t.year, t.month, t.day, t.hour) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t = datetime(t.year, t.month, t.day, t.hour, t.minute) + timedelta(minutes=1)
            elif t.second not in self.seconds:
                t += timedelta(seconds=1)
            else:
                return t.replace(tzinfo=tz)

    def __repr__(self) -> str:
        return f"Cron({self.expression!r})"


def _value(text: str, name: str, low: int, high: int, names: dict[str, int]) -> int:
    upper = text.upper()
    if upper in names:
        return names[upper]
    if not text.isdigit():
        raise ValueError(f"cron {name} field: {text!r} is not a number" + (" or a name" if names else ""))
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"cron {name} field: {value} is outside {low}-{high}")
    return value


def _field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> tuple[set[int], bool]:
    """The values a field allows, and whether it restricts at all (`*` and `?` do not)."""
    if text in ("*", "?"):
        if text == "?" and name not in ("day", "week"):
            raise ValueError(f"cron {name} field: `?` is only allowed for day and week")
        return set(range(low, high + 1)), False
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise ValueError(f"cron {name} field: empty list item in {text!r}")
        if any(c in item.upper() for c in "LW#") and item.upper() not in names:
            raise ValueError(f"cron {name} field: {item!r} (L, W and # in this field) is not supported locally")
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise ValueError(f"cron {name} field: bad step in {item!r}")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _value(first, name, low, high, names), _value(last, name, low, high, names)
            if start > end:
                raise ValueError(f"cron {name} field: range {base!r} runs backwards")
        else:
            start = _value(base, name, low, high, names)
            end = high if slash else start  # `a/n`: from a to the end, every n
        values.update(range(start, end + 1, step))
    return values, True


def zone(name: Optional[str]) -> tzinfo:
    """The zone timers are evaluated in: `TZ` if set and known, else UTC."""
    if not name or name.upper() in ("UTC", "UTC0", "GMT"):
        return timezone.utc
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name.lstrip(":"))
    except Exception as exc:  # unknown zone or no tz database: say so rather than guess
        raise ValueError(f"TZ={name!r} is not a zone this Python knows") from exc


class Timer(NamedTuple):
    """A timer trigger of serverless.yml."""
    name: str  # TriggerName
    function: str  # which function it invokes
    cron: Cron
    argument: str  # becomes the event's Message
    enabled: bool


class Scheduler:
    """Fires each enabled timer at its next due time (a run missed while asleep fires once)."""

    def __init__(self, timers: list[Timer], fire: Callable[[Timer, datetime], None],
                 tz: tzinfo = timezone.utc) -> None:
        self.fire = fire
        self.tz = tz
        self._lock = threading.Lock()
        self._next: dict[str, Optional[datetime]] = {}
        self._timers: list[Timer] = []
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.set_timers(timers, datetime.now(timezone.utc))

    def set_timers(self, timers: list[Timer], now: datetime) -> None:
        """Replace the timers (serverless.yml changed); unchanged ones keep their next time."""
        local_now = now.astimezone(self.tz)
        with self._lock:
            old = {t.name: t for t in self._timers}
            nexts = {}
            for timer in timers:
                same = old.get(timer.name)
                if same is not None and same.cron.expression == timer.cron.expression and timer.name in self._next:
                    nexts[timer.name] = self._next[timer.name]
                else:
                    nexts[timer.name] = timer.cron.next_after(local_now)
            self._timers, self._next = list(timers), nexts

    def next_times(self) -> dict[str, Optional[datetime]]:
        with self._lock:
            return dict(self._next)

    def timers(self) -> list[Timer]:
        with self._lock:
            return list(self._timers)

    def run_pending(self, now: datetime) -> list[tuple[str, datetime]]:
        """Fire what is due at `now`; returns (TriggerName, scheduled time in UTC) of each."""
        fired = []
        local_now = now.astimezone(self.tz)
        with self._lock:
            due = []
            for timer in self._timers:
                when = self._next.get(timer.name)
                if when is not None and when <= local_now:
                    self._next[timer.name] = timer.cron.next_after(local_now)
                    if timer.enabled:
                        due.append((timer, when))
        for timer, when in due:
            at = when.astimezone(timezone.utc)
            self.fire(timer, at)
            fired.append((timer.name, at))
        return fired

    def start(self) -> Scheduler:
        self._thread = threading.Thread(target=self._loop, name="timers", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_pending(datetime.now(timezone.utc))
            # Wake at the next full second: SCF's finest cron unit is one second.
            self._stop.wait(1.0 - (datetime.now(timezone.utc).microsecond / 1e6) + 0.001)
