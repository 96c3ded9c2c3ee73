"""What PostgreSQL and MySQL share: the server URL and its options, TLS, timeouts.

`postgresql://user:password@host:5432/database?sslmode=require&connect_timeout=5` and the same
with `mysql://`. User and password are URL-decoded (a password holding `@`, `/` or `:` is written
`%40`, `%2F`, `%3A`). Options, named as libpq names them so one vocabulary serves both:
  sslmode          disable (default) | require (encrypted, certificate not checked) |
                   verify-ca (certificate checked against sslrootcert, or the system's CAs) |
                   verify-full (verify-ca and the host name)
  sslrootcert      a PEM file of trusted CAs (TencentDB offers its CA for download)
  connect_timeout  seconds to open the connection (default 5): a dead server answers 503 quickly
  timeout          seconds any later read or write may wait (default 10), well inside the function's
                   time limit, so a server that stops answering mid-query is an outage, not a hang
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["ServerUrl"]

_SSLMODES = ("disable", "require", "verify-ca", "verify-full")
_OPTIONS = ("sslmode", "sslrootcert", "connect_timeout", "timeout")


class ServerUrl:
    """A database server URL, parsed and checked once (a typo fails the first call, not later)."""

    def __init__(self, url: str, default_port: int) -> None:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"SESMAIL_DATABASE_URL: a {scheme} URL has an invalid port") from None
        database = unquote(parts.path.lstrip("/"))
        if not parts.hostname or not parts.username or not database or "/" in database:
            raise ValueError(f"SESMAIL_DATABASE_URL: a {scheme} URL needs user, host and database,"
                             f" e.g. {scheme}://user:password@host:{default_port}/database")
        self.scheme = scheme
        self.user = unquote(parts.username)
        self.password = unquote(parts.password) if parts.password is not None else None
        self.host = parts.hostname
        self.port = port or default_port
        self.database = database
        options = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise ValueError(f"SESMAIL_DATABASE_URL: unknown option {unknown[0]!r}; known: {', '.join(_OPTIONS)}")
        self.sslmode = options.get("sslmode") or "disable"
        if self.sslmode not in _SSLMODES:
            raise ValueError(f"SESMAIL_DATABASE_URL: sslmode must be one of {', '.join(_SSLMODES)}")
        self.sslrootcert = options.get("sslrootcert") or None
        self.connect_timeout = _seconds(options, "connect_timeout", 5.0)
        self.timeout = _seconds(options, "timeout", 10.0)

    def tls_context(self) -> Any:
        """An SSLContext for the chosen sslmode, or None for a plain connection."""
        if self.sslmode == "disable":
            return None
        import ssl  # only when TLS is asked for: the webhook's cold start does not pay for it

        context = ssl.create_default_context(cafile=self.sslrootcert)
        if self.sslmode == "require":
            # libpq's meaning: encrypted, but anyone's certificate is accepted.
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif self.sslmode == "verify-ca":
            context.check_hostname = False
        return context

    def __repr__(self) -> str:  # never the password: this may end up in a log line
        return f"{self.scheme}://{self.user}@{self.host}:{self.port}/{self.database}"


def _seconds(options: dict, name: str, default: float) -> float:
    text = options.get(name)
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 300:
        raise ValueError(f"SESMAIL_DATABASE_URL: {name} must be a number of seconds between 0 and 300")
    return value
