"""A small Redis client: one RESP2 connection per Redis, and the container's link that runs Lua
scripts on it and stands back for a while after a failure.

Why not redis-py: what it costs in the layer. Measured here: redis-py 7.0.1 (its last release for
Python 3.9) adds 0.85 MB to the 1.3 MB layer zip (compiled, as the layer ships it), against a
layer budget of 3 MB with a database driver. Its cold import takes about 80 ms and 200 modules on
3.9, and still 36-42 ms and 90 modules on top of an already-loaded SES SDK (3.11), whose own bare
import takes 63-78 ms: once a client policy uses Redis, the send function's cold import would be
about 1.5 x the bare SDK against a budget of 1.10 (both budgets: docs/benchmarks.md). And a
cross-version `pip --target` install (how the layer is built) evaluates its `async-timeout`
marker on the build host and drops it, so it would not import on 3.9 at all.

This client needs `socket`, `ssl` and `hashlib`, which the SDK has already loaded, imported only
once a command is sent: nothing here runs, and `socket` is not imported, unless
`SESMAIL_REDIS_URL` is set. It speaks only the commands the rate limiter's scripts need (AUTH,
SELECT, EVALSHA, EVAL; PING and the rest work too, for tests).

`RedisUnavailable` is the one failure a caller acts on (it falls back to per-instance limits); it
never reaches an HTTP response, so it lives here with the client rather than in `errors.py`.
"""

from __future__ import annotations

import math
import threading
import time
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, Union

from . import log

if TYPE_CHECKING:
    import socket

__all__ = ["Connection", "Monotonic", "RedisLink", "RedisUnavailable", "ReplyError", "link_for", "reset"]

# A reply: str (status), int, bytes or None (bulk string), or a list of replies; as loosely typed
# as JSON, so callers read it as Any.
Reply = Any
Arg = Union[str, int, bytes]  # what a command takes; anything else is sent as str()

TIMEOUT_S = 1.0  # connect and read: a slow Redis must not hold sending up for long
RETRY_S = 10.0  # after a failure, callers fall back this long before Redis is asked again


class RedisUnavailable(Exception):
    """Redis could not be asked (down, unreachable, refused our credentials, or in its retry pause)."""


class ReplyError(Exception):
    """Redis answered with an error reply (`-ERR …`)."""


class Monotonic(Protocol):
    def monotonic(self) -> float: ...


class _SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()


class Connection:
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
        self._sock: socket.socket | None = None  # or an ssl.SSLSocket, once connected
        self._file: BinaryIO | None = None  # its buffered reader

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

    def command(self, *args: Arg) -> Reply:
        """Send one command; its reply as str (status), int, bytes or None (bulk), or a list."""
        if self._sock is None:
            self.connect()
        sock = self._sock
        if sock is None:  # pragma: no cover - connect() either connects or raises
            raise ConnectionError("not connected to Redis")
        out = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
        sock.sendall(b"".join(out))
        return self._read()

    def _read(self) -> Reply:
        file = self._file
        if file is None:
            raise ConnectionError("not connected to Redis")
        line = file.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("Redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise ReplyError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = file.read(size + 2)
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

    def __init__(self, url: str, *, clock: Monotonic | None = None, timeout: float = TIMEOUT_S,
                 retry_s: float = RETRY_S) -> None:
        self._connection = Connection(url, timeout)
        self.safe_url = self._connection.safe_url
        self.clock = clock or _SystemClock()
        self.retry_s = retry_s
        self._lock = threading.Lock()
        self._retry_at = -math.inf
        self._down = False
        self._shas: dict[str, str] = {}

    @property
    def connected(self) -> bool:
        return self._connection.connected

    @property
    def down(self) -> bool:
        return self._down

    def resting(self) -> bool:
        """True while Redis is in its retry pause after a failure."""
        return self.clock.monotonic() < self._retry_at

    def script(self, source: str, keys: list[str], args: list[Arg]) -> Reply:
        """Run a Lua script: EVALSHA (one round trip), EVAL the first time Redis lacks it.
        RedisUnavailable when Redis does not answer, or answers with an error."""
        with self._lock:
            if self.resting():
                raise RedisUnavailable(f"Redis at {self.safe_url} is in its retry pause")
            sha = self._shas.get(source)
            if sha is None:
                import hashlib

                sha = self._shas[source] = hashlib.sha1(source.encode()).hexdigest()
            # A connection kept from an earlier call may have been closed by Redis's idle
            # timeout or a failover: one fresh connection is tried before Redis counts as down.
            attempts = 2 if self._connection.connected else 1
            for attempt in range(1, attempts + 1):
                try:
                    try:
                        reply = self._connection.command("EVALSHA", sha, len(keys), *keys, *args)
                    except ReplyError as exc:
                        if not str(exc).startswith("NOSCRIPT"):
                            raise
                        reply = self._connection.command("EVAL", source, len(keys), *keys, *args)
                except (OSError, ValueError, ReplyError) as exc:  # ValueError: a garbled reply
                    self._connection.close()
                    if attempt < attempts and not isinstance(exc, ReplyError):
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
            self._connection.close()


# ---- one per container ------------------------------------------------------------------------

_links_lock = threading.Lock()
_links: dict[str, RedisLink] = {}


def link_for(url: str) -> RedisLink:
    """The container's link to the Redis at `url` (connected on first use)."""
    with _links_lock:
        link = _links.get(url)
        if link is None:
            link = _links[url] = RedisLink(url)
        return link


def reset() -> None:
    """Close and forget this container's links (tests)."""
    with _links_lock:
        for link in _links.values():
            link.close()
        _links.clear()
