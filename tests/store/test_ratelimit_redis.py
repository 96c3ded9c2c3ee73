"""The shared rate limiter against a real Redis (127.0.0.1:6379 here; TencentDB for Redis in production).

Two "function instances" are two RedisLinks (two connections) in threads of this process. Each
run uses keys of its own (`sesmail-test:<pid>:<random>:`), deleted at the end, so parallel runs
never meet. Real time is used only to count acquisitions per sliding second, never to time them.
When `CI=true` these tests must run; elsewhere they skip when Redis does not answer.
The fallback tests (Redis down) need no server and always run.
"""

from __future__ import annotations

import bisect
import json
import os
import secrets
import socket
import threading
import time
from types import SimpleNamespace

import pytest

from sesmail import ratelimit, redis_client
from sesmail.ratelimit import LocalLimiter, RedisLimiter, SharedCounters, limiter_for
from sesmail.redis_client import RedisLink

REDIS_URL = os.environ.get("SESMAIL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
HOW_TO = ("start Redis (redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '') or point "
          f"SESMAIL_TEST_REDIS_URL at one (now {REDIS_URL})")


# Fake clocks start here: years after any boot, far from every reading of time.monotonic() a test
# machine gives, so a test that mixes a fake clock with the real one fails on every machine (not
# only on one booted about as long ago as a small start value), and such a mix cannot creep in.
FAKE_START = 100_000_000.0

class FakeClock:
    def __init__(self, start: float = FAKE_START) -> None:
        self.now = start

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def busiest_second(times: list[float], window: float = 1.0) -> int:
    """The most acquisitions in any half-open window (t - window, t], as SES counts them."""
    ordered = sorted(times)
    return max((j + 1 - bisect.bisect_right(ordered, t - window) for j, t in enumerate(ordered)), default=0)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def redis_url():
    resp = redis_client.Connection(REDIS_URL, 2.0)
    try:
        resp.command("PING")
    except Exception as exc:
        problem = f"Redis unreachable ({type(exc).__name__}: {exc}); to run these tests, {HOW_TO}"
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true requires Redis: " + problem, pytrace=False)
        pytest.skip(problem)
    finally:
        resp.close()
    return REDIS_URL


@pytest.fixture
def prefix(redis_url):
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"sesmail-test:{os.getpid()}:{secrets.token_hex(4)}:"
    yield prefix
    resp = redis_client.Connection(redis_url, 2.0)
    try:
        keys = resp.command("KEYS", prefix.replace("{", "\\{") + "*")
        if keys:
            resp.command("DEL", *keys)
    finally:
        resp.close()


def redis_command(url: str, *args):
    resp = redis_client.Connection(url, 2.0)
    try:
        return resp.command(*args)
    finally:
        resp.close()


def log_lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


class Proxy:
    """A TCP forwarder standing in for a Redis that goes away and comes back."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.port, self.target = port, target
        self.server: socket.socket | None = None
        self.sockets: list[socket.socket] = []

    def open(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(8)
        self.server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target, timeout=5)
            self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for sock in self.sockets:
            try:
                sock.close()
            except OSError:
                pass
        self.sockets.clear()


def run_threads(worker, count: int, instances: list[RedisLimiter]) -> None:
    """`count` threads running `worker(n)` for instances n = 0, 1 in turn; then the links closed."""
    threads = [threading.Thread(target=worker, args=(n % 2,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for limiter in instances:
        limiter.link.close()


# ---- shared through Redis ---------------------------------------------------------------------

def test_two_instances_sharing_one_key_never_exceed_the_rate_together(redis_url, prefix):
    # GIVEN two function instances (own connections, own fallbacks) limiting SendEmail together
    key = prefix + "rate:{acct:SendEmail}"
    instances = []
    for _ in range(2):
        # A margin wider than the default absorbs this machine's oversleeping, which the
        # timestamps taken after `acquire` returns would otherwise count.
        instances.append(RedisLimiter(RedisLink(redis_url), key, 20, LocalLimiter(10), margin=0.1))
    starts: dict[int, list[float]] = {0: [], 1: []}
    stop = time.monotonic() + 2.5

    def worker(n: int) -> None:
        while instances[n].acquire(stop):
            starts[n].append(time.monotonic())

    # WHEN each runs three threads taking slots as fast as they are given, for about 2.5 s
    run_threads(worker, 6, instances)

    # THEN together they never pass 20 in any sliding second, and both got their turns
    together = starts[0] + starts[1]
    assert busiest_second(together) <= 20
    assert busiest_second(together) >= 10  # shared, not starved
    assert starts[0] and starts[1]
    assert not any(limiter.link.down for limiter in instances)


class LateClock:
    """The real clock, but every `every`-th sleep ends `late` seconds late (a thread woken late)."""

    def __init__(self, every: int, late: float) -> None:
        self.every, self.late, self.sleeps = every, late, 0
        self.lock = threading.Lock()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.sleeps += 1
            overslept = self.sleeps % self.every == 0
        time.sleep(seconds + (self.late if overslept else 0.0))


def test_callers_woken_late_are_counted_when_they_send_not_at_their_slots(redis_url, prefix):
    # GIVEN two instances whose threads now and then wake 0.3 s after their slot
    key = prefix + "rate:{acct:SendEmail}"
    clock = LateClock(every=3, late=0.3)
    instances = [RedisLimiter(RedisLink(redis_url), key, 20, LocalLimiter(10), clock=clock)
                 for _ in range(2)]
    starts: list[float] = []
    stop = time.monotonic() + 3.0

    def worker(n: int) -> None:
        while instances[n].acquire(stop):
            starts.append(time.monotonic())
            time.sleep(0.05)  # the request in flight

    # WHEN eight threads send for about 3 s
    run_threads(worker, 8, instances)

    # THEN no second holds more than 20 sends, counted when they went, not at their slots
    assert clock.sleeps > 10 and len(starts) > 40
    assert busiest_second(starts) <= 20
    assert not any(limiter.link.down for limiter in instances)

def test_a_penalty_from_one_instance_holds_back_the_other(redis_url, prefix):
    key = prefix + "rate:{acct:SendEmail}"
    first = RedisLimiter(RedisLink(redis_url), key, 20, LocalLimiter(10))
    second = RedisLimiter(RedisLink(redis_url), key, 20, LocalLimiter(10))
    first.penalize(30.0)
    assert second.acquire(time.monotonic() + 5) is False  # its slot is 30 s away
    pause = float(redis_command(redis_url, "HGET", key + ":gcra", "pause"))
    now = redis_command(redis_url, "TIME")
    assert pause - (int(now[0]) + int(now[1]) / 1e6) > 20
    assert not first.link.down and not second.link.down


def test_a_refused_acquire_reserves_nothing_in_redis(redis_url, prefix):
    key = prefix + "rate:{acct:SendEmail}"
    limiter = RedisLimiter(RedisLink(redis_url), key, 20, LocalLimiter(10), burst=1)
    assert limiter.acquire(time.monotonic() + 5)
    slots = redis_command(redis_url, "LRANGE", key + ":sent", 0, -1)
    assert limiter.acquire(time.monotonic()) is False  # the next slot is about 51 ms away
    assert redis_command(redis_url, "LRANGE", key + ":sent", 0, -1) == slots


def test_limiter_keys_expire_once_idle(redis_url, prefix):
    key = prefix + "rate:{acct:SendEmail}"
    limiter = RedisLimiter(RedisLink(redis_url), key, 20, LocalLimiter(10))
    assert limiter.acquire(time.monotonic() + 5)
    for suffix in (":gcra", ":sent"):
        assert 0 < redis_command(redis_url, "PTTL", key + suffix) <= 62_000


def test_limiter_for_shares_through_the_configured_redis(redis_url, prefix):
    appid = prefix.replace(":", "-")  # the account's name in the key: unique for this run
    settings = SimpleNamespace(redis_url=redis_url, appid=appid)
    clock = FakeClock()
    limiter = limiter_for(settings, "SendEmail", clock=clock)
    assert isinstance(limiter, RedisLimiter)
    assert limiter.acquire(clock.monotonic() + 5)  # a deadline on the limiter's own clock
    assert redis_command(redis_url, "EXISTS", f"sesmail:rate:{{{appid}:SendEmail}}:sent") == 1
    redis_command(redis_url, "DEL", *limiter.keys)


def test_a_connection_closed_by_redis_is_reopened_without_falling_back(redis_url, prefix, capsys):
    link = RedisLink(redis_url)
    limiter = RedisLimiter(link, prefix + "rate:{acct:SendEmail}", 20, LocalLimiter(10))
    assert limiter.acquire(time.monotonic() + 5)
    client_id = link._connection.command("CLIENT", "ID")
    redis_command(redis_url, "CLIENT", "KILL", "ID", client_id)  # Redis's idle timeout, a failover
    assert limiter.acquire(time.monotonic() + 5)
    assert not link.down
    assert not [line for line in log_lines(capsys) if "Redis" in line["Message"]]


def test_shared_counters_count_across_instances(redis_url, prefix):
    first = SharedCounters(RedisLink(redis_url), prefix=prefix)
    second = SharedCounters(RedisLink(redis_url), prefix=prefix)
    answers = [counters.hit("rpm:web", 60, 3) for counters in (first, second, first, second)]
    assert answers[:3] == [None, None, None]
    assert answers[3] is not None and 0 < answers[3] <= 60
    assert first.hit("rpm:other", 60, 3) is None  # another key, another count


def test_shared_counters_keep_no_address_in_redis(redis_url, prefix):
    counters = SharedCounters(RedisLink(redis_url), prefix=prefix)
    assert counters.hit("rcpt:web:alice@example.com", 3600, 10) is None
    keys = redis_command(redis_url, "KEYS", prefix + "*")
    assert keys and not any(b"example" in key for key in keys)


# ---- Redis down -------------------------------------------------------------------------------

def test_redis_down_falls_back_to_the_instance_share_and_still_limits(capsys):
    # GIVEN a Redis URL (with a password) where nothing listens, and a half share per instance
    clock = FakeClock()
    settings = SimpleNamespace(redis_url=f"redis://:hunter2-pw@127.0.0.1:{closed_port()}/0", ses_rate_share=0.5)
    limiter = limiter_for(settings, "SendEmail", clock=clock)
    assert isinstance(limiter, RedisLimiter)
    starts = []
    # WHEN a digest keeps sending for 40 s
    while clock.now < FAKE_START + 40:
        assert limiter.acquire(clock.now + 5)
        starts.append(clock.now)
    # THEN it is paced at its share (10/s), and the outage is logged once, without the password
    assert busiest_second(starts) <= 10
    assert len(starts) >= 0.97 * 10 * 40
    lines = [line for line in log_lines(capsys) if "Redis" in line["Message"]]
    assert len(lines) == 1 and lines[0]["Level"] == "WARNING"
    assert lines[0]["Redis"].startswith("redis://127.0.0.1:")
    assert "hunter2" not in json.dumps(lines)


def test_redis_down_penalize_still_pauses_the_fallback():
    clock = FakeClock()
    limiter = RedisLimiter(RedisLink(f"redis://127.0.0.1:{closed_port()}/0", clock=clock),
                           "sesmail-test:rate:{acct:SendEmail}", 20, LocalLimiter(10, clock=clock), clock=clock)
    limiter.penalize(2.0)
    assert limiter.acquire(clock.now + 5)
    assert clock.now == pytest.approx(FAKE_START + 2.0)


def test_shared_counters_fall_back_while_redis_is_down():
    link = RedisLink(f"redis://127.0.0.1:{closed_port()}/0", clock=FakeClock())
    fallback = SimpleNamespace(hit=lambda key, window_s, limit, now=None: 42.0)
    assert SharedCounters(link, fallback=fallback).hit("rpm:web", 60, 1) == 42.0
    assert SharedCounters(link).hit("rpm:web", 60, 1) is None  # no fallback: let through
    assert ratelimit.shared_counters(SimpleNamespace(redis_url=None)) is None


def test_redis_is_tried_again_after_the_pause_and_shared_again(redis_url, prefix, capsys):
    # GIVEN Redis unreachable when the instance starts sending
    target = redis_client.Connection(redis_url, 1.0)
    proxy = Proxy(closed_port(), (target.host, target.port))
    clock = FakeClock()
    link = RedisLink(f"redis://127.0.0.1:{proxy.port}/{target.db}", clock=clock, retry_s=10.0)
    limiter = RedisLimiter(link, prefix + "rate:{acct:SendEmail}", 20, LocalLimiter(10, clock=clock), clock=clock)
    try:
        assert limiter.acquire(clock.now + 5)
        assert link.down
        # WHEN Redis answers again, but the retry pause has not yet passed
        proxy.open()
        assert limiter.acquire(clock.now + 5)
        assert link.down  # not asked yet: still on the fallback
        # THEN once the pause is over, the next slot comes from Redis again
        clock.now += 10.0
        assert limiter.acquire(clock.now + 5)
        assert not link.down
        assert redis_command(redis_url, "EXISTS", limiter.keys[1]) == 1
        messages = [line["Message"] for line in log_lines(capsys) if "Redis" in line["Message"]]
        assert messages == ["Redis does not answer: rate limits are per instance until it does",
                            "Redis answers again: rate limits are shared"]
    finally:
        link.close()
        proxy.close()
