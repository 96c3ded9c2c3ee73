"""State: idempotency records, the log of sent messages, delivery events, suppressions.

One interface (`SqlStore` in `sql.py`, all SQL in that one module) over three dialects: SQLite
(`sqlite.py`, the embedded default), PostgreSQL (`postgres.py`, pg8000) and MySQL or MariaDB
(`mysql.py`, PyMySQL). The database is named by `SESMAIL_DATABASE_URL`; its driver is imported
only when that database is in use, and the layer ships only the driver asked for. One connection
per warm container, re-opened after a failure.
"""

from __future__ import annotations

from typing import Any

from ..errors import StoreUnavailable

__all__ = ["StoreUnavailable", "new_store", "open_store", "reset"]

_stores: dict[str, Any] = {}


def open_store(url: str):
    """The warm container's store for this database URL (created and migrated on first use)."""
    store = _stores.get(url)
    if store is None:
        store = _stores[url] = new_store(url)
    return store


def new_store(url: str):
    """A store with a connection of its own, not the container's shared one (tests, tools). It
    connects on its first call; close() it when done."""
    scheme = url.partition(":")[0].lower()
    dialect: Any
    if scheme == "sqlite":
        from .sqlite import SqliteDialect

        dialect = SqliteDialect(url)
    elif scheme in ("postgresql", "postgres"):
        from .postgres import PostgresDialect

        dialect = PostgresDialect(url)
    elif scheme == "mysql":
        from .mysql import MysqlDialect

        dialect = MysqlDialect(url)
    else:
        raise ValueError("SESMAIL_DATABASE_URL: unsupported database; use sqlite:///path,"
                         " postgresql://user:password@host:5432/database or mysql://user:password@host:3306/database")
    from .sql import SqlStore

    return SqlStore(dialect)


def reset() -> None:
    """Close and forget every open store (tests switch databases between cases)."""
    for store in _stores.values():
        store.close()
    _stores.clear()
