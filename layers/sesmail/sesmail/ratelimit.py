"""Rate limiting of SES calls, per instance or shared by every instance through Redis.

SES allows 20 requests per second per API action per account, shared by every function instance;
beyond it a call fails with `RequestLimitExceeded` (SPEC 4). A digest sends thousands of
SendEmail calls and should run close to that rate with no call refused, so a `Limiter` hands out
start times ("slots") such that no 1-second window, counted the way SES is assumed to count (a
sliding window over arrivals), ever holds more than `rate` requests:

- GCRA spacing (a leaky bucket kept as one "theoretical arrival time") spreads starts evenly at
  `rate / (1 + margin)` with a short burst allowance, so a caller that comes back late may catch
  up on a missed slot instead of losing it;
- a log of the last `rate` slots is the hard cap: a new slot is at least `1 + margin` seconds after
  the `rate`-th slot before it. A burst therefore never adds to the count, and the margin absorbs
  that much jitter between our start and SES's arrival stamp (25 ms by default).

Callers reserve a slot under a lock and sleep outside it, so several threads keep requests in
flight while the limiter holds the rate. A reserved slot is never moved: `penalize()` delays only
the slots handed out after it.

Without Redis each instance limits itself to its configured share (`ses_rate_share`): with N
instances running at once give each 1/N (a whole number of requests per second each, since the
per-second cap rounds down). With `SESMAIL_REDIS_URL` the same algorithm runs as a Lua script in
Redis, keyed per account (`SESMAIL_APPID`) and action, on Redis's own clock (`TIME`): one round
trip per slot, atomic across instances, whatever their clocks say. If Redis does not answer,
sending goes on at the instance share, logged once per outage, and Redis is tried again later.

Redis client: a minimal RESP client of our own, not redis-py, because of what redis-py costs.
Measured here: redis-py 7.0.1 (its last release for Python 3.9) adds 0.85 MB to the 1.3 MB layer
zip (compiled, as the layer ships it; SPEC 6 allows 3 MB with a database driver). Its cold import
takes about 80 ms and 200 modules on 3.9, and still 36-42 ms and 90 modules on top of an
already-loaded SES SDK (3.11), whose own bare import takes 63-78 ms: once a client policy uses
Redis, the send function's cold import would be about 1.5 x the bare SDK against a budget of 1.10
(SPEC 6). And a cross-version `pip --target` install (how the layer is built) evaluates its
`async-timeout` marker on the build host and drops it, so it would not import on 3.9 at all.
This client needs `socket`, `ssl` and `hashlib`, which the SDK has already loaded; the whole
module adds 18 kB to the zip (source and .pyc) and 1.2 ms of import beside the SDK, and speaks
only the commands its scripts need (AUTH, SELECT, EVALSHA, EVAL). None of it runs, and `socket`
is not imported, unless `SESMAIL_REDIS_URL` is set.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import Any, Protocol

from . import log

__all__ = ["Clock", "Limiter", "LocalLimiter", "RedisLimiter", "RedisLink", "RedisUnavailable",
           "SharedCounters", "limiter_for", "link_for", "reset", "shared_counters"]

SES_RATE = 20.0  # requests per second per API action per account (SPEC 4)
WINDOW_S = 1.0  # the window SES counts over
# How much longer than SES's window ours is: absorbs this fraction of a second of jitter between
# the moment we start a request and the moment SES stamps it (25 ms), for 2.4% of the rate.
DEFAULT_MARGIN = 0.025
# Slots a caller may take at once after a quiet spell; the slot log keeps the window cap anyway.
DEFAULT_BURST = 2
REDIS_TIMEOUT_S = 1.0  # connect and read: a slow Redis must not hold sending up for long
REDIS_RETRY_S = 10.0  # after a failure, use the local limiter this long before asking Redis again
KEY_PREFIX = "sesmail:"


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class _SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK: Clock = _SystemClock()


class Limiter(Protocol):
    def acquire(self, deadline_monotonic: float) -> bool:
        """Block until the caller may start one request; False at once (and nothing reserved)
        when that moment would come after `deadline_monotonic` (the clock's `monotonic()`)."""
        ...

    def penalize(self, seconds: float) -> None:
        """SES refused a call with RequestLimitExceeded: no new slot for `seconds`."""
        ...


def _cap(rate: float) -> int:
    # The most requests one window may hold; at least one, or a rate below 1/s could never start.
    return max(1, math.floor(rate * WINDOW_S + 1e-9))


class LocalLimiter:
    """GCRA spacing plus a log of recent slots, in this process only (see the module's text)."""

    def __init__(self, rate: float, *, burst: int = DEFAULT_BURST, margin: float = DEFAULT_MARGIN,
                 clock: Clock | None = None) -> None:
        if rate <= 0 or burst < 1 or margin < 0:
            raise ValueError("rate must be positive, burst at least 1 and margin not negative")
        self.rate = rate
        self.clock = clock or SYSTEM_CLOCK
        self.span = WINDOW_S * (1.0 + margin)  # our window: SES's plus the margin
        self.interval = self.span / (rate * WINDOW_S)
        self.tau = (burst - 1) * self.interval
        self.cap = _cap(rate)
        self._lock = threading.Lock()
        self._tat = -math.inf  # theoretical arrival time of the next request
        self._paused_until = -math.inf
        self._slots: deque[float] = deque(maxlen=self.cap)  # the last `cap` slots, oldest first

    def reserve(self, deadline: float) -> float | None:
        """The next slot (clock time), reserved; None, with nothing reserved, if after `deadline`."""
        with self._lock:
            now = self.clock.monotonic()
            slot = max(now, self._tat - self.tau, self._paused_until)
            if len(self._slots) == self.cap:
                slot = max(slot, self._slots[0] + self.span)
            if slot > deadline:
                return None
            self._tat = max(self._tat, slot) + self.interval
            self._slots.append(slot)
            return slot

    def acquire(self, deadline_monotonic: float) -> bool:
        slot = self.reserve(deadline_monotonic)
        if slot is None:
            return False
        wait = slot - self.clock.monotonic()
        if wait > 0:
            self.clock.sleep(wait)
        return True

    def penalize(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, self.clock.monotonic() + max(0.0, seconds))


# ---- Redis ------------------------------------------------------------------------------------

class RedisUnavailable(Exception):
    """Redis could not be asked (down, unreachable, refused our credentials, or in its retry pause)."""


class _ReplyError(Exception):
    """Redis answered with an error reply (`-ERR …`)."""


class _Resp:
    """One connection speaking RESP2: a command out, its reply in, nothing pipelined.

    Not thread-safe on its own: `RedisLink` holds a lock around each command.
    """

    def __init__(self, url: str, timeout: float) -> None:
        from urllib.parse import parse_qs, unquote, urlsplit

        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError("SESMAIL_REDIS_URL must start with redis:// or rediss:// (TLS)")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 6379
        self.tls = parts.scheme == "rediss"
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password is not None else None
        path = parts.path.strip("/") or (parse_qs(parts.query).get("db") or ["0"])[0]
        if not path.isdigit():
            raise ValueError("SESMAIL_REDIS_URL: the database must be a number (redis://host:6379/0)")
        self.db = int(path)
        # What logs may show: never the user or password.
        self.safe_url = f"{parts.scheme}://{self.host}:{self.port}/{self.db}"
        self.timeout = timeout
        self._sock: Any = None
        self._file: Any = None

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def connect(self) -> None:
        import socket

        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls:
                import ssl

                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
            self._sock, self._file = sock, sock.makefile("rb")
            if self.password is not None:
                # A user other than "default" needs Redis 6's two-argument AUTH (ACL users).
                if self.username and self.username != "default":
                    self.command("AUTH", self.username, self.password)
                else:
                    self.command("AUTH", self.password)
            if self.db:
                self.command("SELECT", self.db)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for thing in (self._file, self._sock):
            if thing is not None:
                try:
                    thing.close()
                except OSError:
                    pass
        self._sock = self._file = None

    def command(self, *args: Any) -> Any:
        if self._sock is None:
            self.connect()
        out = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self._sock.sendall(b"".join(out))
        return self._read()

    def _read(self) -> Any:
        line = self._file.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("Redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise _ReplyError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = self._file.read(size + 2)
            if len(data) != size + 2:
                raise ConnectionError("Redis closed the connection")
            return data[:-2]
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self._read() for _ in range(size)]
        raise ConnectionError("Redis sent something that is not RESP")


class RedisLink:
    """The container's connection to one Redis, shared by every limiter and counter.

    After a failure Redis is left alone for `retry_s` (callers fall back at once instead of each
    waiting out a timeout) and the outage is logged once; its end is logged once too.
    """

    def __init__(self, url: str, *, clock: Clock | None = None, timeout: float = REDIS_TIMEOUT_S,
                 retry_s: float = REDIS_RETRY_S) -> None:
        self._resp = _Resp(url, timeout)
        self.safe_url = self._resp.safe_url
        self.clock = clock or SYSTEM_CLOCK
        self.retry_s = retry_s
        self._lock = threading.Lock()
        self._retry_at = -math.inf
        self._down = False
        self._shas: dict[str, str] = {}

    @property
    def down(self) -> bool:
        return self._down

    def resting(self) -> bool:
        """True while Redis is in its retry pause after a failure."""
        return self.clock.monotonic() < self._retry_at

    def script(self, source: str, keys: list[str], args: list[Any]) -> Any:
        """Run a Lua script: EVALSHA (one round trip), EVAL the first time Redis lacks it."""
        with self._lock:
            if self.resting():
                raise RedisUnavailable(f"Redis at {self.safe_url} is in its retry pause")
            sha = self._shas.get(source)
            if sha is None:
                import hashlib

                sha = self._shas[source] = hashlib.sha1(source.encode()).hexdigest()
            # A connection kept from an earlier call may have been closed by Redis's idle
            # timeout or a failover: one fresh connection is tried before Redis counts as down.
            attempts = 2 if self._resp.connected else 1
            for attempt in range(1, attempts + 1):
                try:
                    try:
                        reply = self._resp.command("EVALSHA", sha, len(keys), *keys, *args)
                    except _ReplyError as exc:
                        if not str(exc).startswith("NOSCRIPT"):
                            raise
                        reply = self._resp.command("EVAL", source, len(keys), *keys, *args)
                except (OSError, ValueError, _ReplyError) as exc:  # ValueError: a garbled reply
                    self._resp.close()
                    if attempt < attempts and not isinstance(exc, _ReplyError):
                        continue
                    self._retry_at = self.clock.monotonic() + self.retry_s
                    if not self._down:
                        self._down = True
                        log.warning("Redis does not answer: rate limits are per instance until it does",
                                    Redis=self.safe_url, Error=f"{type(exc).__name__}: {exc}"[:200],
                                    RetrySeconds=self.retry_s)
                    raise RedisUnavailable(f"Redis at {self.safe_url}: {type(exc).__name__}") from exc
                if self._down:
                    self._down = False
                    log.info("Redis answers again: rate limits are shared", Redis=self.safe_url)
                return reply
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        with self._lock:
            self._resp.close()


# GCRA plus the slot log (the same algorithm as LocalLimiter), on Redis's clock. Times travel as
# "%.6f" strings: a Lua number returned to Redis is truncated to an integer, and tostring() keeps
# only 14 digits, too few for microseconds since 1970.
# KEYS: 1 the state hash {tat, pause}, 2 the slot list (newest first).
# ARGV: 1 interval, 2 burst tolerance, 3 cap, 4 span, 5 longest wait the caller accepts.
_ACQUIRE = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval, tau, cap, span = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tat', 'pause')
local tat = tonumber(state[1]) or now
local slot = math.max(now, tat - tau, tonumber(state[2]) or now)
local oldest = redis.call('LINDEX', KEYS[2], cap - 1)
if oldest then slot = math.max(slot, tonumber(oldest) + span) end
if slot - now > tonumber(ARGV[5]) then return {0, string.format('%.6f', slot - now)} end
tat = math.max(tat, slot) + interval
redis.call('HSET', KEYS[1], 'tat', string.format('%.6f', tat))
redis.call('LPUSH', KEYS[2], string.format('%.6f', slot))
redis.call('LTRIM', KEYS[2], 0, cap - 1)
local ttl = math.ceil((math.max(tat, tonumber(state[2]) or now) - now + span) * 1000) + 60000
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return {1, string.format('%.6f', slot - now)}
"""

# KEYS: 1 the state hash. ARGV: 1 seconds, 2 span.
_PENALIZE = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tat', 'pause')
local pause = math.max(now + tonumber(ARGV[1]), tonumber(state[2]) or now)
redis.call('HSET', KEYS[1], 'pause', string.format('%.6f', pause))
local ttl = math.ceil((math.max(pause, tonumber(state[1]) or now) - now + tonumber(ARGV[2])) * 1000) + 60000
redis.call('PEXPIRE', KEYS[1], ttl)
return string.format('%.6f', pause - now)
"""

# Fixed-window counter in one hash {w: window number, c: count}; nil when counted, else the
# seconds until the window ends. KEYS: 1 the counter. ARGV: 1 window seconds, 2 limit.
_HIT = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local length, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local window = math.floor(now / length)
local state = redis.call('HMGET', KEYS[1], 'w', 'c')
local count = 0
if tonumber(state[1]) == window then count = tonumber(state[2]) or 0 end
local left = (window + 1) * length - now
if count >= limit then return string.format('%.6f', left) end
redis.call('HSET', KEYS[1], 'w', string.format('%d', window))
redis.call('HSET', KEYS[1], 'c', string.format('%d', count + 1))
redis.call('PEXPIRE', KEYS[1], math.ceil(left * 1000) + 1000)
return false
"""


class RedisLimiter:
    """The account-wide limit shared by every instance through Redis; `fallback` (this instance's
    share) while Redis does not answer."""

    def __init__(self, link: RedisLink, key: str, rate: float, fallback: LocalLimiter, *,
                 burst: int = DEFAULT_BURST, margin: float = DEFAULT_MARGIN, clock: Clock | None = None) -> None:
        if rate <= 0 or burst < 1 or margin < 0:
            raise ValueError("rate must be positive, burst at least 1 and margin not negative")
        self.link, self.rate, self.fallback = link, rate, fallback
        self.clock = clock or SYSTEM_CLOCK
        # One hash tag for both keys: Redis Cluster (and TencentDB's cluster edition) run a script
        # only when all its keys live in one slot.
        self.keys = [f"{key}:gcra", f"{key}:slots"]
        self.span = WINDOW_S * (1.0 + margin)
        self.interval = self.span / (rate * WINDOW_S)
        self.tau = (burst - 1) * self.interval
        self.cap = _cap(rate)

    def acquire(self, deadline_monotonic: float) -> bool:
        longest = deadline_monotonic - self.clock.monotonic()
        if longest < 0:
            return False
        try:
            granted, wait = self.link.script(_ACQUIRE, self.keys, [
                repr(self.interval), repr(self.tau), self.cap, repr(self.span), repr(longest)])
        except RedisUnavailable:
            return self.fallback.acquire(deadline_monotonic)
        if not granted:
            return False
        # Redis's wait counts from its own `now`, which our request reached half a round trip
        # ago: sleeping all of it starts a little late, never early.
        seconds = float(wait)
        if seconds > 0:
            self.clock.sleep(seconds)
        return True

    def penalize(self, seconds: float) -> None:
        try:
            self.link.script(_PENALIZE, self.keys[:1], [repr(max(0.0, seconds)), repr(self.span)])
        except RedisUnavailable:
            self.fallback.penalize(seconds)


class SharedCounters:
    """Fixed-window counters in Redis, for client policies (requests per minute, mails per
    recipient per hour) across instances. Same `hit()` as `policy.Counters`."""

    def __init__(self, link: RedisLink, prefix: str = KEY_PREFIX, fallback: Any = None) -> None:
        self.link, self.prefix, self.fallback = link, prefix, fallback

    def hit(self, key: str, window_s: int, limit: int, now: float | None = None) -> float | None:
        """Count one event; None if within `limit` per window, else seconds until the next window.

        `now` is accepted for the same signature and ignored: Redis's clock decides. While Redis
        does not answer the `fallback` counters decide, or (without one) the event is let through:
        a policy counter must not turn a Redis outage into refused mail.
        """
        import hashlib

        # Keys name addresses: hashed, so Redis (and a dump of it) holds no personal data.
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        try:
            reply = self.link.script(_HIT, [f"{self.prefix}count:{digest}"], [int(window_s), int(limit)])
        except RedisUnavailable:
            return self.fallback.hit(key, window_s, limit, now) if self.fallback is not None else None
        return None if reply is None else float(reply)


# ---- one per container ------------------------------------------------------------------------

_made_lock = threading.Lock()
_links: dict[str, RedisLink] = {}
_limiters: dict[tuple, Limiter] = {}


def link_for(url: str) -> RedisLink:
    """The container's link to the Redis at `url` (connected on first use)."""
    with _made_lock:
        link = _links.get(url)
        if link is None:
            link = _links[url] = RedisLink(url)
        return link


def _number(settings: Any, name: str, default: float, low: float, high: float) -> float:
    value = getattr(settings, name, None)
    value = default if value is None else float(value)
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}")
    return value


def limiter_for(settings: Any, action: str, rate: float | None = None, *, clock: Clock | None = None) -> Limiter:
    """The container's limiter for one SES action.

    Reads `settings.redis_url`, `ses_rate` (the account's requests per second per action, 20),
    `ses_rate_share` (this instance's fraction of it when there is no Redis, 1.0), `ses_rate_margin`
    (0.025) and `appid` (names the account in the Redis key). A `clock` makes a fresh limiter
    (tests); without one, the same limiter is returned for the same settings and action.
    """
    rate = _number(settings, "ses_rate", SES_RATE, 0.01, 10000) if rate is None else float(rate)
    share = _number(settings, "ses_rate_share", 1.0, 0.001, 1.0)
    margin = _number(settings, "ses_rate_margin", DEFAULT_MARGIN, 0.0, 1.0)
    url = getattr(settings, "redis_url", None) or None
    account = getattr(settings, "appid", None) or "account"
    made_key = (url, account, action, rate, share, margin)
    if clock is None:
        with _made_lock:
            known = _limiters.get(made_key)
        if known is not None:
            return known
    local = LocalLimiter(rate * share, margin=margin, clock=clock)
    limiter: Limiter = local
    if url:
        link = RedisLink(url, clock=clock) if clock is not None else link_for(url)
        limiter = RedisLimiter(link, f"{KEY_PREFIX}rate:{{{account}:{action}}}", rate, local,
                               margin=margin, clock=clock)
    if clock is None:
        with _made_lock:
            limiter = _limiters.setdefault(made_key, limiter)
    return limiter


def shared_counters(settings: Any, fallback: Any = None) -> SharedCounters | None:
    """Counters shared through Redis, or None when `SESMAIL_REDIS_URL` is not set or Redis is in
    its retry pause after a failure (the caller then uses its own per-instance counters)."""
    url = getattr(settings, "redis_url", None)
    if not url:
        return None
    link = link_for(url)
    if link.resting():
        return None
    return SharedCounters(link, fallback=fallback)


def reset() -> None:
    """Forget this container's limiters and close its Redis connections (tests)."""
    with _made_lock:
        for link in _links.values():
            link.close()
        _links.clear()
        _limiters.clear()
