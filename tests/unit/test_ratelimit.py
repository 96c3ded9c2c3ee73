"""The SES rate limiter on a virtual clock: the window cap, the sustained rate, deadlines, penalties,
shares, and the pieces of the Redis client that need no server (URL parsing, RESP replies).

SES counts requests per action in a sliding 1-second window (the emulator does the same:
`local/ses_emulator.py`, `_rate_limited`), so every check counts starts in every half-open window
(t - 1 s, t], never per calendar second.
"""

from __future__ import annotations

import bisect
import io
import os
import random
import subprocess
import sys
import threading
from types import SimpleNamespace
from typing import Callable

import pytest

from sesmail import config, ratelimit, redis_client
from sesmail.ratelimit import LocalLimiter, RedisLimiter, limiter_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# Fake clocks start here: years after any boot, far from every reading of time.monotonic() a test
# machine gives, so a test that mixes a fake clock with the real one fails on every machine (not
# only on one booted about as long ago as a small start value), and such a mix cannot creep in.
FAKE_START = 100_000_000.0

class FakeClock:
    """One caller's clock: sleeping moves time on at once."""

    def __init__(self, start: float = FAKE_START) -> None:
        self.now = start
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class VirtualClock:
    """A clock shared by several threads: time stands still while any of them runs and jumps to
    the earliest wake-up once all of them sleep, so threaded runs of minutes take milliseconds and
    never depend on how busy the machine is."""

    def __init__(self, start: float = FAKE_START) -> None:
        self._now = start
        self._cond = threading.Condition()
        self._running = 0
        self._sleeping: dict[object, float] = {}

    def monotonic(self) -> float:
        with self._cond:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._cond:
            token = object()
            self._sleeping[token] = self._now + max(0.0, seconds)
            self._running -= 1
            self._advance()
            while token in self._sleeping:
                self._cond.wait()

    def _advance(self) -> None:
        if self._running or not self._sleeping:
            return
        self._now = max(self._now, min(self._sleeping.values()))
        for token, wake in list(self._sleeping.items()):
            if wake <= self._now:
                del self._sleeping[token]
                self._running += 1  # counted before it wakes, so time cannot jump past it
        self._cond.notify_all()

    def run(self, workers: list[Callable[[], None]]) -> None:
        def participate(work: Callable[[], None]) -> None:
            try:
                work()
            finally:
                with self._cond:
                    self._running -= 1
                    self._advance()

        threads = [threading.Thread(target=participate, args=(work,), daemon=True) for work in workers]
        with self._cond:
            self._running += len(threads)
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
            assert not thread.is_alive(), "a worker is stuck: the virtual clock deadlocked"


def busiest_second(times: list[float], window: float = 1.0) -> int:
    """The most requests in any half-open window (t - window, t], as SES counts them."""
    ordered = sorted(times)
    return max((j + 1 - bisect.bisect_right(ordered, t - window) for j, t in enumerate(ordered)), default=0)


def sustained(times: list[float]) -> float:
    ordered = sorted(times)
    return (len(ordered) - 1) / (ordered[-1] - ordered[0])


def run_workers(limiter, clock: VirtualClock, workers: int, until: float,
                latency: Callable[[random.Random], float], think: Callable[[random.Random], float] | None = None,
                seed: int = 7) -> list[float]:
    """`workers` threads, each: take a slot, hold a request in flight for `latency`, think, repeat."""
    starts: list[float] = []
    lock = threading.Lock()

    def worker(rng: random.Random) -> None:
        while limiter.acquire(until):
            started = clock.monotonic()
            with lock:
                starts.append(started)
            clock.sleep(latency(rng))
            if think is not None:
                clock.sleep(think(rng))

    def worker_with_seed(n: int) -> Callable[[], None]:
        rng = random.Random(seed + n)  # each worker its own sequence: runs repeat exactly
        return lambda: worker(rng)

    clock.run([worker_with_seed(n) for n in range(workers)])
    return starts


# ---- the window cap and the rate --------------------------------------------------------------

def test_threads_never_exceed_the_rate_in_any_sliding_second_and_sustain_97_percent():
    clock = VirtualClock()
    limiter = LocalLimiter(20, clock=clock)
    starts = run_workers(limiter, clock, workers=6, until=clock.monotonic() + 120,
                         latency=lambda rng: rng.uniform(0.05, 0.1))
    assert len(starts) > 2000
    assert busiest_second(starts) <= 20
    assert sustained(starts) >= 0.97 * 20


def test_callers_with_gaps_between_requests_never_exceed_the_rate():
    # Late callers use the burst allowance; the slot log must still hold the window cap.
    clock = VirtualClock()
    limiter = LocalLimiter(20, burst=4, clock=clock)
    starts = run_workers(limiter, clock, workers=5, until=clock.monotonic() + 120,
                         latency=lambda rng: rng.uniform(0.02, 0.15),
                         think=lambda rng: rng.choice([0.0, 0.0, 0.05, 0.3, 1.2]))
    assert len(starts) > 1000
    assert busiest_second(starts) <= 20


def test_start_jitter_up_to_the_margin_stays_within_ses_window():
    # SES stamps a request when it arrives, up to `margin` seconds after we started it.
    clock = VirtualClock()
    limiter = LocalLimiter(20, margin=0.025, clock=clock)
    starts = run_workers(limiter, clock, workers=4, until=clock.monotonic() + 60, latency=lambda rng: 0.05)
    rng = random.Random(3)
    arrivals = [start + rng.uniform(0.0, 0.0249) for start in starts]
    assert busiest_second(arrivals) <= 20


class OversleepingClock(VirtualClock):
    """A VirtualClock whose sleeps now and then end late, as a busy machine's do (a thread woken
    late, a garbage-collector pause): every `every`-th sleep lasts `late` seconds longer."""

    def __init__(self, every: int, late: float) -> None:
        super().__init__()
        self.every, self.late, self.sleeps = every, late, 0

    def sleep(self, seconds: float) -> None:
        with self._cond:
            self.sleeps += 1
            overslept = self.sleeps % self.every == 0
        super().sleep(seconds + (self.late if overslept else 0.0))


@pytest.mark.parametrize("late, every", [(0.03, 7), (0.2, 7), (0.9, 50)])
def test_a_caller_woken_late_is_counted_when_it_sends_not_at_its_slot(late, every):
    # A caller that wakes `late` after its slot sends then, not at the slot: had the limiter counted
    # the slot, 21 requests would reach SES within one second about a second later.
    clock = OversleepingClock(every=every, late=late)
    limiter = LocalLimiter(20, clock=clock)
    starts = run_workers(limiter, clock, workers=8, until=clock.monotonic() + 60, latency=lambda rng: 0.05)
    assert len(starts) > 900
    assert busiest_second(starts) <= 20
    assert sustained(starts) >= 0.95 * 20


def test_zero_margin_spaces_exactly_at_the_rate():
    clock = VirtualClock()
    limiter = LocalLimiter(20, margin=0.0, clock=clock)
    starts = run_workers(limiter, clock, workers=3, until=clock.monotonic() + 30, latency=lambda rng: 0.05)
    assert busiest_second(starts) == 20
    assert sustained(starts) >= 0.995 * 20


def test_a_fractional_rate_caps_each_second_at_its_whole_part():
    clock = FakeClock()
    limiter = LocalLimiter(20 / 3, clock=clock)
    starts = []
    for _ in range(300):
        assert limiter.acquire(clock.now + 10)
        starts.append(clock.now)
    assert limiter.cap == 6
    assert busiest_second(starts) <= 6


def test_a_rate_below_one_per_second_still_lets_requests_through():
    clock = FakeClock()
    limiter = LocalLimiter(0.5, burst=1, clock=clock)
    starts = []
    for _ in range(5):
        assert limiter.acquire(clock.now + 10)
        starts.append(clock.now)
    assert [round(b - a, 6) for a, b in zip(starts, starts[1:])] == [2.05] * 4


# ---- burst, deadline, penalty -----------------------------------------------------------------

def test_a_caller_back_after_a_quiet_spell_catches_up_within_the_burst():
    clock = FakeClock()
    limiter = LocalLimiter(20, burst=2, clock=clock)
    assert limiter.acquire(clock.now + 1)
    clock.now += 0.2  # nobody asked for three slots
    assert limiter.acquire(clock.now + 1)
    assert limiter.acquire(clock.now + 1)
    assert clock.slept == []  # two at once: the burst
    assert limiter.acquire(clock.now + 1)
    assert clock.slept == [pytest.approx(limiter.interval)]


def test_acquire_refuses_at_once_when_the_slot_comes_after_the_deadline():
    clock = FakeClock()
    limiter = LocalLimiter(20, burst=1, clock=clock)
    assert limiter.acquire(clock.now)
    before = clock.now
    assert limiter.acquire(clock.now + limiter.interval / 2) is False
    assert clock.now == before and clock.slept == []  # refused without waiting
    # Nothing was reserved by the refusal: the next caller gets that same slot.
    assert limiter.acquire(clock.now + 1)
    assert clock.now == pytest.approx(before + limiter.interval)


def test_acquire_refuses_when_the_deadline_has_passed():
    clock = FakeClock()
    assert LocalLimiter(20, clock=clock).acquire(clock.now - 0.001) is False


def test_a_slot_exactly_at_the_deadline_is_granted():
    clock = FakeClock()
    limiter = LocalLimiter(20, burst=1, clock=clock)
    assert limiter.acquire(clock.now)
    assert limiter.acquire(clock.now + limiter.interval)


def test_penalize_delays_every_new_slot_by_the_penalty():
    clock = FakeClock()
    limiter = LocalLimiter(20, clock=clock)
    assert limiter.acquire(clock.now + 1)
    start = clock.now
    limiter.penalize(1.0)
    assert limiter.acquire(start + 0.5) is False
    assert limiter.acquire(start + 5)
    assert clock.now == pytest.approx(start + 1.0)


def test_penalties_do_not_add_up_but_the_longest_wins():
    clock = FakeClock()
    limiter = LocalLimiter(20, clock=clock)
    start = clock.now
    limiter.penalize(2.0)
    limiter.penalize(0.5)
    assert limiter.acquire(start + 10)
    assert clock.now == pytest.approx(start + 2.0)


def test_after_a_penalty_threads_resume_within_the_window_cap():
    clock = VirtualClock()
    limiter = LocalLimiter(20, clock=clock)
    penalized = threading.Event()

    def latency(rng: random.Random) -> float:
        if not penalized.is_set() and clock.monotonic() > FAKE_START + 10:
            penalized.set()
            limiter.penalize(1.0)
        return 0.05

    starts = run_workers(limiter, clock, workers=6, until=clock.monotonic() + 30, latency=latency)
    assert penalized.is_set()
    assert busiest_second(starts) <= 20
    # Slots reserved before the penalty keep them (at most one per worker); then a pause.
    gaps = [b - a for a, b in zip(sorted(starts), sorted(starts)[1:])]
    assert max(gaps) >= 1.0 - 6 * limiter.interval


# ---- limiter_for and settings -----------------------------------------------------------------

def test_limiter_for_defaults_to_20_per_second_locally():
    limiter = limiter_for(SimpleNamespace(), "SendEmail", clock=FakeClock())
    assert isinstance(limiter, LocalLimiter)
    assert limiter.rate == 20 and limiter.cap == 20


def test_limiter_for_reads_the_real_settings_object(monkeypatch):
    settings = config.Settings({})
    assert settings.redis_url is None
    assert isinstance(limiter_for(settings, "SendEmail", clock=FakeClock()), LocalLimiter)


def test_each_instance_takes_its_share_without_redis():
    clock = VirtualClock()
    limiter = limiter_for(SimpleNamespace(ses_rate_share=0.25), "SendEmail", clock=clock)
    starts = run_workers(limiter, clock, workers=3, until=clock.monotonic() + 60, latency=lambda rng: 0.05)
    assert busiest_second(starts) <= 5
    assert sustained(starts) >= 0.97 * 5


def test_an_explicit_rate_overrides_ses_rate():
    settings = SimpleNamespace(ses_rate=10, ses_rate_share=0.5, ses_rate_margin=0.0)
    limiter = limiter_for(settings, "BatchSendEmail", rate=4, clock=FakeClock())
    assert isinstance(limiter, LocalLimiter)
    assert limiter.rate == 2 and limiter.interval == pytest.approx(0.5)


@pytest.mark.parametrize("name, value", [("ses_rate_share", 0), ("ses_rate_share", 1.5), ("ses_rate", -1),
                                         ("ses_rate_margin", 2)])
def test_limiter_for_refuses_settings_out_of_range(name, value):
    with pytest.raises(ValueError, match=name):
        limiter_for(SimpleNamespace(**{name: value}), "SendEmail", clock=FakeClock())


def test_limiter_for_returns_one_limiter_per_action_per_container():
    ratelimit.reset()
    settings = SimpleNamespace()
    try:
        first = limiter_for(settings, "SendEmail")
        assert limiter_for(settings, "SendEmail") is first
        assert limiter_for(SimpleNamespace(), "SendEmail") is first  # same values, same limiter
        assert limiter_for(settings, "BatchSendEmail") is not first
    finally:
        ratelimit.reset()


def test_limiter_for_with_a_redis_url_connects_only_when_used():
    settings = SimpleNamespace(redis_url="redis://:pw@127.0.0.1:1/0", appid="1250000000", ses_rate_share=0.5)
    limiter = limiter_for(settings, "SendEmail", clock=FakeClock())
    assert isinstance(limiter, RedisLimiter)
    assert limiter.keys == ["sesmail:rate:{1250000000:SendEmail}:gcra", "sesmail:rate:{1250000000:SendEmail}:sent"]
    assert limiter.rate == 20 and limiter.fallback.rate == 10
    assert not limiter.link.connected


def test_importing_the_limiter_loads_no_network_module():
    # Cold start (docs/benchmarks.md): socket, ssl and hashlib are imported only once Redis is used.
    code = ("import sys; import sesmail.ratelimit, sesmail.redis_client; "
            "print(sorted(m for m in ('socket', 'ssl', 'hashlib', 'redis') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=os.path.join(ROOT, "layers", "sesmail")))
    assert out.stdout.strip() == "[]"


# ---- the RESP client's parts that need no server ----------------------------------------------

@pytest.mark.parametrize("url, host, port, db, tls, user, password", [
    ("redis://127.0.0.1:6379/0", "127.0.0.1", 6379, 0, False, None, None),
    ("redis://localhost", "localhost", 6379, 0, False, None, None),
    ("rediss://:p%40ss@cache.example:6380/3", "cache.example", 6380, 3, True, None, "p@ss"),
    ("redis://app:secret@10.0.0.5:6379?db=2", "10.0.0.5", 6379, 2, False, "app", "secret"),
])
def test_redis_urls_are_read_like_redis_py_reads_them(url, host, port, db, tls, user, password):
    resp = redis_client.Connection(url, 1.0)
    assert (resp.host, resp.port, resp.db, resp.tls, resp.username, resp.password) == (
        host, port, db, tls, user, password)
    assert "secret" not in resp.safe_url and "p@ss" not in resp.safe_url and "app" not in resp.safe_url


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379", "redis://127.0.0.1:6379/zero"])
def test_unusable_redis_urls_are_refused(url):
    with pytest.raises(ValueError, match="SESMAIL_REDIS_URL"):
        redis_client.Connection(url, 1.0)


def test_resp_replies_are_decoded():
    resp = redis_client.Connection("redis://127.0.0.1", 1.0)
    resp._file = io.BytesIO(b"*4\r\n:1\r\n$8\r\n0.051250\r\n$4\r\na\r\nb\r\n$-1\r\n+OK\r\n"
                            b"-NOSCRIPT No matching script\r\n$5\r\nab")
    assert resp._read() == [1, b"0.051250", b"a\r\nb", None]  # bulk strings are binary-safe
    assert resp._read() == "OK"
    with pytest.raises(redis_client.ReplyError, match="NOSCRIPT"):
        resp._read()
    with pytest.raises(ConnectionError):
        resp._read()  # a reply cut short: the connection is not trusted any further
