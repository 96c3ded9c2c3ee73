"""Rate limiting of SES calls, per instance or shared by every instance through Redis.

SES allows 20 requests per second per API action per account, shared by every function instance;
beyond it a call fails with `RequestLimitExceeded` (docs/ses.md#limits; each action's page says
so, e.g. https://cloud.tencent.com/document/api/1288/51034). A digest sends thousands of SendEmail
calls and should run close to that rate with no call refused, so a `Limiter` lets requests go such
that no 1-second window, counted the way SES is assumed to count (a sliding window over arrivals),
ever holds more than `rate` requests. `acquire` does it in two steps:

- pacing: GCRA (a leaky bucket kept as one "theoretical arrival time") hands out start times
  ("slots") spread evenly at `rate / (1 + margin)` with a short burst allowance, so a caller that
  comes back late may catch up on a missed slot instead of losing it. Callers reserve a slot under
  a lock and sleep outside it, so several threads keep requests in flight while the rate holds;
- the cap, when the caller is about to send: a log of the last `rate` requests as they actually
  went out (the moment each caller passed this step, not its slot) is the hard limit. A request
  goes only once the `rate`-th before it went at least `1 + margin` seconds ago, else it waits.
  A caller that starts late (a thread woken late, a stall before its request left) is thereby
  logged when it really sent, so the window counts it where SES does. The margin absorbs that
  much of the rest (signing, the network, SES's own stamp: 25 ms by default).

A reserved slot is never moved: `penalize()` delays only the slots handed out after it.

Without Redis each instance limits itself to its configured share (`ses_rate_share`): with N
instances running at once give each 1/N (a whole number of requests per second each, since the
per-second cap rounds down). With `SESMAIL_REDIS_URL` the same algorithm runs as Lua scripts in
Redis, keyed per account (`SESMAIL_APPID`) and action, on Redis's own clock (`TIME`): two round
trips per request (the slot, then the send), atomic across instances, whatever their clocks say.
If Redis does not answer, sending goes on at the instance share, logged once per outage, and Redis
is tried again later.

The Redis client is `redis_client` (why one of our own: its text); this module holds only the
rate-limiting logic and its Lua scripts.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Callable, Protocol

from . import redis_client
from .redis_client import RedisLink, RedisUnavailable

if TYPE_CHECKING:
    from .config import Settings

__all__ = ["Clock", "Counters", "Limiter", "LocalLimiter", "RedisLimiter", "SharedCounters", "limiter_for",
           "reset", "shared_counters"]

SES_RATE = 20.0  # requests per second per API action per account (docs/ses.md#limits)
WINDOW_S = 1.0  # the window SES counts over
# How much longer than SES's window ours is: absorbs this fraction of a second of jitter between
# the moment we start a request and the moment SES stamps it (25 ms), for 2.4% of the rate.
DEFAULT_MARGIN = 0.025
# Slots a caller may take at once after a quiet spell; the sent log keeps the window cap anyway.
DEFAULT_BURST = 2
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


class Counters(Protocol):
    """Fixed-window counters: `policy.Counters` in this instance, `SharedCounters` in Redis."""

    def hit(self, key: str, window_s: int, limit: int, now: float | None = None) -> float | None: ...


class Limiter(Protocol):
    def acquire(self, deadline_monotonic: float) -> bool:
        """Block until the caller may send one request, and count it as sent now: the caller sends
        at once. False (and nothing counted) when that moment would come after `deadline_monotonic`
        (the clock's `monotonic()`)."""
        ...

    def penalize(self, seconds: float) -> None:
        """SES refused a call with RequestLimitExceeded: no new slot for `seconds`."""
        ...


def _cap(rate: float) -> int:
    # The most requests one window may hold; at least one, or a rate below 1/s could never start.
    return max(1, math.floor(rate * WINDOW_S + 1e-9))


class LocalLimiter:
    """GCRA pacing plus a log of recent sends, in this process only (see the module's text)."""

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
        self._sent: deque[float] = deque(maxlen=self.cap)  # the last `cap` sends, oldest first

    def reserve(self, deadline: float) -> float | None:
        """The next slot (clock time), reserved; None, with nothing reserved, if after `deadline`."""
        with self._lock:
            now = self.clock.monotonic()
            slot = max(now, self._tat - self.tau, self._paused_until)
            if len(self._sent) == self.cap:
                slot = max(slot, self._sent[0] + self.span)  # the cap cannot let it go sooner anyway
            if slot > deadline:
                return None
            self._tat = max(self._tat, slot) + self.interval
            return slot

    def send_now(self, deadline: float) -> float | None:
        """Count a request sent now if the window has room: 0.0. Else the seconds until it has (nothing
        counted), or None when that is after `deadline`."""
        with self._lock:
            now = self.clock.monotonic()
            if len(self._sent) == self.cap:
                due = self._sent[0] + self.span
                if due > now:
                    return None if due > deadline else due - now
            self._sent.append(now)
            return 0.0

    def acquire(self, deadline_monotonic: float) -> bool:
        slot = self.reserve(deadline_monotonic)
        if slot is None:
            return False
        return _wait_then_send(self.clock, slot - self.clock.monotonic(),
                               lambda: self.send_now(deadline_monotonic))

    def penalize(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, self.clock.monotonic() + max(0.0, seconds))


def _wait_then_send(clock: Clock, wait: float, send_now: Callable[[], float | None]) -> bool:
    """Sleep `wait` (the slot), then ask `send_now` until the window has room (True) or the deadline
    comes first (False)."""
    while True:
        if wait > 0:
            clock.sleep(wait)
        more = send_now()
        if more is None:
            return False
        if more == 0:
            return True
        wait = more


# ---- shared through Redis ---------------------------------------------------------------------

# The same two steps as LocalLimiter, on Redis's clock. Times travel as "%.6f" strings: a Lua
# number returned to Redis is truncated to an integer, and tostring() keeps only 14 digits, too few
# for microseconds since 1970.
# Pacing: reserve a slot. KEYS: 1 the state hash {tat, pause}, 2 the sent log (newest first).
# ARGV: 1 interval, 2 burst tolerance, 3 cap, 4 span, 5 longest wait the caller accepts.
_RESERVE = """
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
local ttl = math.ceil((math.max(tat, tonumber(state[2]) or now) - now + span) * 1000) + 60000
redis.call('PEXPIRE', KEYS[1], ttl)
return {1, string.format('%.6f', slot - now)}
"""

# The cap: count a send now if the window has room ({1, "0"}), else the wait ({0, seconds}).
# KEYS: 1 the sent log (newest first). ARGV: 1 cap, 2 span.
_SEND = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local cap, span = tonumber(ARGV[1]), tonumber(ARGV[2])
local oldest = redis.call('LINDEX', KEYS[1], cap - 1)
if oldest and tonumber(oldest) + span > now then
  return {0, string.format('%.6f', tonumber(oldest) + span - now)}
end
redis.call('LPUSH', KEYS[1], string.format('%.6f', now))
redis.call('LTRIM', KEYS[1], 0, cap - 1)
redis.call('PEXPIRE', KEYS[1], math.ceil(span * 1000) + 60000)
return {1, '0'}
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
        self.keys = [f"{key}:gcra", f"{key}:sent"]
        self.span = WINDOW_S * (1.0 + margin)
        self.interval = self.span / (rate * WINDOW_S)
        self.tau = (burst - 1) * self.interval
        self.cap = _cap(rate)

    def acquire(self, deadline_monotonic: float) -> bool:
        longest = deadline_monotonic - self.clock.monotonic()
        if longest < 0:
            return False
        try:
            granted, wait = self.link.script(_RESERVE, self.keys, [
                repr(self.interval), repr(self.tau), self.cap, repr(self.span), repr(longest)])
        except RedisUnavailable:
            return self.fallback.acquire(deadline_monotonic)
        if not granted:
            return False
        # Redis's waits count from its own `now`, which our request reached half a round trip
        # ago: sleeping all of it starts a little late, never early.
        try:
            return _wait_then_send(self.clock, float(wait), lambda: self._send_now(deadline_monotonic))
        except RedisUnavailable:
            return self.fallback.acquire(deadline_monotonic)

    def _send_now(self, deadline: float) -> float | None:
        sent, wait = self.link.script(_SEND, self.keys[1:], [self.cap, repr(self.span)])
        if sent:
            return 0.0
        seconds = max(float(wait), 1e-6)
        return None if self.clock.monotonic() + seconds > deadline else seconds

    def penalize(self, seconds: float) -> None:
        try:
            self.link.script(_PENALIZE, self.keys[:1], [repr(max(0.0, seconds)), repr(self.span)])
        except RedisUnavailable:
            self.fallback.penalize(seconds)


class SharedCounters:
    """Fixed-window counters in Redis, for client policies (requests per minute, mails per
    recipient per hour) across instances. Same `hit()` as `policy.Counters`."""

    def __init__(self, link: RedisLink, prefix: str = KEY_PREFIX, fallback: Counters | None = None) -> None:
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
_limiters: dict[tuple, Limiter] = {}


def _number(settings: Settings, name: str, default: float, low: float, high: float) -> float:
    value = getattr(settings, name, None)
    value = default if value is None else float(value)
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}")
    return value


def limiter_for(settings: Settings, action: str, rate: float | None = None, *, clock: Clock | None = None) -> Limiter:
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
        link = RedisLink(url, clock=clock) if clock is not None else redis_client.link_for(url)
        limiter = RedisLimiter(link, f"{KEY_PREFIX}rate:{{{account}:{action}}}", rate, local,
                               margin=margin, clock=clock)
    if clock is None:
        with _made_lock:
            limiter = _limiters.setdefault(made_key, limiter)
    return limiter


def shared_counters(settings: Settings, fallback: Counters | None = None) -> SharedCounters | None:
    """Counters shared through Redis, or None when `SESMAIL_REDIS_URL` is not set or Redis is in
    its retry pause after a failure (the caller then uses its own per-instance counters)."""
    url = getattr(settings, "redis_url", None)
    if not url:
        return None
    link = redis_client.link_for(url)
    if link.resting():
        return None
    return SharedCounters(link, fallback=fallback)


def reset() -> None:
    """Forget this container's limiters and close its Redis connections (tests)."""
    with _made_lock:
        _limiters.clear()
    redis_client.reset()
