"""State: idempotency records, the log of sent messages, delivery events, suppressions, batch
tasks and recipient lists, schedules, digest items, recipient leases.

The layer sees the store through the Protocols of `protocols.py`, one per concern (`Store` is all
of them); a request opens it once (`http.Call.store`) and hands it down. One implementation,
`sql.SqlStore`, composed of a module per concern (all SQL of the layer is in this package), runs
on three dialects: SQLite (`sqlite.py`, the embedded default), PostgreSQL (`postgres.py`, pg8000)
and MySQL or MariaDB (`mysql.py`, PyMySQL). The database is named by `SESMAIL_DATABASE_URL`
(docs/configuration.md#environment-variables); its driver is imported only when that database is in use, and
the layer ships only the driver asked for. One connection per warm container, re-opened after a
failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import StoreUnavailable
from .protocols import (
    DigestStore,
    EventStore,
    IdempotencyStore,
    LeaseStore,
    RetentionStore,
    ScheduleStore,
    SentLog,
    StatsStore,
    Store,
    SuppressionStore,
    TaskStore,
)

if TYPE_CHECKING:
    from .database import Dialect

__all__ = ["DigestStore", "EventStore", "IdempotencyStore", "LeaseStore", "RetentionStore", "ScheduleStore", "SentLog",
           "StatsStore", "Store", "StoreUnavailable", "SuppressionStore", "TaskStore", "new_store", "open_store",
           "reset"]

_stores: dict[str, Store] = {}


def open_store(url: str) -> Store:
    """The warm container's store for this database URL (created and migrated on first use). A
    request asks for it once, through `http.Call.store`."""
    store = _stores.get(url)
    if store is None:
        store = _stores[url] = new_store(url)
    return store


def new_store(url: str) -> Store:
    """A store with a connection of its own, not the container's shared one (tests, tools). It
    connects on its first call; close() it when done."""
    scheme = url.partition(":")[0].lower()
    dialect: Dialect
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
    """Close and forget every open store: the next open_store connects again. Public for tests
    and tools that switch databases between cases (and for a container that must let go of a
    database)."""
    for store in _stores.values():
        store.close()
    _stores.clear()
