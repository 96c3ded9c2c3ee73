"""State: idempotency records, the log of sent messages, delivery events.

One interface (`SqlStore` in `sql.py`, all SQL in that one module) over SQLite, the embedded
default; PostgreSQL and MySQL slot in beside `sqlite.py` as further dialects. The database is
named by `SESMAIL_DATABASE_URL`; its driver is imported only when that database is in use.
One connection per warm container, re-opened after a failure.
"""

from __future__ import annotations

from typing import Any

from ..errors import StoreUnavailable

__all__ = ["StoreUnavailable", "open_store", "reset"]

_stores: dict[str, Any] = {}


def open_store(url: str):
    """The warm container's store for this database URL (created and migrated on first use)."""
    store = _stores.get(url)
    if store is None:
        scheme = url.partition(":")[0].lower()
        if scheme == "sqlite":
            from .sqlite import SqliteDialect

            dialect = SqliteDialect(url)
        else:
            raise ValueError("SESMAIL_DATABASE_URL: unsupported database (sqlite:/// is supported so far)")
        from .sql import SqlStore

        store = _stores[url] = SqlStore(dialect)
    return store


def reset() -> None:
    """Close and forget every open store (tests switch databases between cases)."""
    for store in _stores.values():
        store.close()
    _stores.clear()
