"""The store's database as a test reads and writes it: raw SQL through the driver, beside the store.

What a test checks (or backdates) must not go through the code under test, so these helpers open
their own connection from the database URL (`sqlite:///path`, `postgresql://…`, `mysql://…`) with
the driver directly, run one statement and close it. Placeholders are `?` whatever the database.
"""

from __future__ import annotations

import sqlite3
from typing import Any
from urllib.parse import urlsplit

__all__ = ["connect", "count", "execute", "kind_of", "one", "run", "tables"]


def kind_of(url: str) -> str:
    """`sqlite`, `postgresql` or `mysql`, from the URL's scheme."""
    scheme = urlsplit(url).scheme.lower()
    if scheme.startswith("postgres"):
        return "postgresql"
    if scheme.startswith(("mysql", "mariadb")):
        return "mysql"
    if scheme == "sqlite":
        return "sqlite"
    raise ValueError(f"not a database URL this suite knows: {url!r}")


def connect(url: str) -> Any:
    """A new autocommit DB-API connection to the database of `url` (the caller closes it)."""
    parts = urlsplit(url)
    kind = kind_of(url)
    if kind == "sqlite":
        return sqlite3.connect(parts.path, isolation_level=None, timeout=10)
    if kind == "postgresql":
        import pg8000.dbapi

        connection = pg8000.dbapi.connect(user=parts.username or "postgres", password=parts.password,
                                          host=parts.hostname or "127.0.0.1", port=parts.port or 5432,
                                          database=parts.path.lstrip("/") or "postgres", timeout=10)
        connection.autocommit = True
        return connection
    import pymysql

    return pymysql.connect(host=parts.hostname or "127.0.0.1", port=parts.port or 3306, user=parts.username,
                           password=parts.password or "", database=parts.path.lstrip("/") or None,
                           autocommit=True, connect_timeout=5)


def run(connection: Any, kind: str, sql: str, params: tuple | list = ()) -> list[tuple]:
    """One statement on an open connection; the rows it returns, as tuples."""
    if kind != "sqlite":
        sql = sql.replace("?", "%s")
    cursor = connection.cursor()
    try:
        cursor.execute(sql, tuple(params))
        return [tuple(row) for row in cursor.fetchall()] if cursor.description else []
    finally:
        cursor.close()


def execute(url: str, sql: str, params: tuple | list = ()) -> list[tuple]:
    """Run one statement on the database of `url` over a connection of its own."""
    connection = connect(url)
    try:
        return run(connection, kind_of(url), sql, params)
    finally:
        connection.close()


def one(url: str, sql: str, params: tuple | list = ()) -> Any:
    """The first column of the first row (a COUNT, a setting)."""
    return execute(url, sql, params)[0][0]


def tables(url: str) -> list[str]:
    """The names of the database's tables (none before the store first migrated it)."""
    query = {
        "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table'",
        "postgresql": "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()",
        "mysql": "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()",
    }[kind_of(url)]
    return [str(row[0]) for row in execute(url, query)]


def count(url: str, table: str) -> int:
    """The rows of `table`; 0 when the store has not created it yet (it holds nothing then)."""
    if table not in tables(url):
        return 0
    return int(one(url, f"SELECT COUNT(*) FROM {table}"))
