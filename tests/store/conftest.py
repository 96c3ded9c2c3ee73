"""The store's backends for the contract suite: SQLite, PostgreSQL and MariaDB (standing in for MySQL).

Each test session works in databases of its own (`sesmail_t_<pid>_<random>`), created here and
dropped at the end, so runs by other people and CI on the same servers never meet. The server-backed
backends skip when their server does not answer, except in CI (`CI=true`), where they must run.
"""

from __future__ import annotations

import os
import secrets
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

import pytest

from sesmail.store import new_store
from tests import db

POSTGRES_URL = os.environ.get("SESMAIL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("SESMAIL_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
HOW_TO = {
    "postgresql": ("start PostgreSQL (pg_ctlcluster --skip-systemctl-redirect <version> main start) or point "
                   "SESMAIL_TEST_POSTGRES_URL at a server whose user may create databases "
                   f"(now {POSTGRES_URL})"),
    "mysql": ("start MariaDB or MySQL (start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd) "
              "or point SESMAIL_TEST_MYSQL_URL at a server whose user may create databases "
              f"(now {MYSQL_URL})"),
}
TABLES = ("sesmail_events", "sesmail_suppressions", "sesmail_sent", "sesmail_idempotency", "sesmail_tasks",
          "sesmail_digest_items", "sesmail_leases", "sesmail_lists", "sesmail_stats_daily", "sesmail_stats_hourly",
          "sesmail_stats_marks", "sesmail_guard", "sesmail_schedules", "sesmail_schedule_recipients")


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


class Backend:
    """One database server as the tests see it: URLs of fresh databases, and raw SQL beside the store."""

    def __init__(self, name: str, admin_url: str, prefix: str) -> None:
        self.name = name
        self.admin_url = admin_url
        self.prefix = prefix
        self.created: list[str] = []
        self.url = self.database()

    # raw driver connections, not the store's: what the tests check must not go through it
    def raw(self, url: str | None = None) -> Any:
        return db.connect(url or self.admin_url)

    def execute(self, sql: str, params: tuple = (), url: str | None = None) -> list:
        return db.execute(url or self.url, sql, params)

    def count(self, table: str, url: str | None = None) -> int:
        return int(self.execute(f"SELECT COUNT(*) FROM {table}", url=url)[0][0])

    def database(self) -> str:
        """The URL of a new, empty database, dropped when the session ends."""
        name = f"{self.prefix}_{len(self.created)}"
        if self.name == "sqlite":
            self.created.append(name)
            return f"sqlite:///{os.path.join(self.admin_url, name + '.sqlite3')}"
        self.execute(f"CREATE DATABASE {name}", url=self.admin_url)
        self.created.append(name)
        return _with_database(self.admin_url, name)

    def drop_all(self) -> None:
        if self.name == "sqlite":
            return  # under pytest's tmp_path_factory
        for name in self.created:
            if self.name == "postgresql":
                # Connections a test left open (a thread's store) would block DROP DATABASE.
                self.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ?",
                             (name,), url=self.admin_url)
            self.execute(f"DROP DATABASE IF EXISTS {name}", url=self.admin_url)

    def clear(self) -> None:
        """Empty the session database's tables (they exist once any store has migrated it)."""
        # SQLite's fold position too: the next events stored are the first again.
        for table in TABLES + (("sesmail_stats_folded",) if self.name == "sqlite" else ()):
            try:
                self.execute(f"DELETE FROM {table}")
            except Exception:
                return  # not migrated yet: nothing to clear

    def sessions(self) -> set[int]:
        """The server's ids of the connections to the session database other than this query's own:
        the store's, when it is the one store open on it (None for SQLite, which has no server)."""
        query = {"postgresql": "SELECT pid FROM pg_stat_activity WHERE datname = ? AND pid <> pg_backend_pid()",
                 "mysql": "SELECT id FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()"}
        database = urlsplit(self.url).path.lstrip("/")
        return {int(row[0]) for row in self.execute(query[self.name], (database,), url=self.admin_url)}

    def session_id(self, store) -> int | None:
        """The server's id for a store's connection (None for SQLite, which has no server)."""
        if self.name == "sqlite":
            return None
        store.list_suppressions(0, 1)  # connected
        found = self.sessions()
        assert len(found) == 1, f"one store should be connected to {self.url}: {found}"
        return found.pop()

    def kill(self, store) -> None:
        """End a store's connection from outside, as a server restart or a network cut would."""
        if self.name == "sqlite":
            store._connection.close()  # the store still holds it: its next use fails
            return
        session = self.session_id(store)
        if self.name == "postgresql":
            self.execute("SELECT pg_terminate_backend(?)", (session,), url=self.admin_url)
        else:
            self.execute(f"KILL {int(session)}", url=self.admin_url)


def _server(name: str, url: str) -> Backend:
    prefix = f"sesmail_t_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        return Backend(name, url, prefix)
    except Exception as exc:
        problem = f"{name} unreachable ({type(exc).__name__}: {exc}); to run these tests, {HOW_TO[name]}"
    if os.environ.get("CI") == "true":
        pytest.fail("CI=true requires the store's servers: " + problem, pytrace=False)
    pytest.skip(problem)


@pytest.fixture(scope="session")
def sqlite_server(tmp_path_factory):
    return Backend("sqlite", str(tmp_path_factory.mktemp("sqlite")), "sesmail_t")


@pytest.fixture(scope="session")
def postgresql_server():
    backend = _server("postgresql", POSTGRES_URL)
    yield backend
    backend.drop_all()


@pytest.fixture(scope="session")
def mysql_server():
    backend = _server("mysql", MYSQL_URL)
    yield backend
    backend.drop_all()


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def backend(request) -> Backend:
    return request.getfixturevalue(f"{request.param}_server")


@pytest.fixture
def stores(backend) -> Callable[..., Any]:
    """Make stores (each with its own connection) on the session database, emptied first; all
    closed at the end of the test."""
    backend.clear()
    made: list = []

    def make(url: str | None = None):
        store = new_store(url or backend.url)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def store(stores):
    return stores()
