"""What every part of the SQL store shares: the dialect, the one connection, statements and
transactions, and the classification of the driver's errors.

Every `*_sql.py` module is a class over `Database`, holding one concern's SQL; `sql.SqlStore`
composes them. A dialect (`sqlite.py`, `postgres.py`, `mysql.py`) supplies the connection, the
placeholder, transactions and what its driver's errors mean; where the three databases have no
common syntax (insert-or-skip, upsert) the variants sit side by side in the concern's module, keyed
by the dialect's name.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Callable, Protocol, TypeVar

from ..errors import StoreUnavailable
from .schema import migrate

__all__ = ["CHUNK", "ConstraintViolation", "Database", "Dialect", "compact_json", "marks"]

T = TypeVar("T")

# Rows per multi-row INSERT: 90 rows x 11 columns stays under 999 parameters, the limit of SQLite
# builds before 3.32; PostgreSQL caches one prepared statement for every full chunk.
CHUNK = 90

compact_json = json.JSONEncoder(separators=(",", ":")).encode  # built once: json.dumps(…, separators) is not


def marks(count: int) -> str:
    """`?, ?, …` for an IN list or a row of `count` values."""
    return ", ".join("?" * count)


class ConstraintViolation(Exception):
    """A write broke a NOT NULL or key constraint that no duplicate-skipping covers: a caller's bug,
    not an outage. Raised in place of the driver's own class, which differs per database; its
    message never carries the driver's, which quotes the row (addresses are personal data)."""


class Dialect(Protocol):
    """One database's driver, as the store uses it."""

    name: str  # "sqlite", "postgresql" or "mysql": the key of every per-dialect SQL variant
    placeholder: str  # the driver's paramstyle marker; the store writes `?` and rewrites it
    errors: tuple[type[BaseException], ...]  # everything the driver raises (an outage unless classified)

    def connect(self) -> Any: ...

    def begin(self, connection: Any) -> None: ...

    def lock_schema(self, connection: Any) -> None: ...

    def unlock_schema(self, connection: Any, commit: bool) -> None: ...

    def is_integrity(self, exc: BaseException) -> bool: ...

    def is_retryable(self, exc: BaseException) -> bool: ...

    def already_exists(self, exc: BaseException) -> bool: ...


class Database:
    """The connection of one store: opened and migrated on first use, re-opened after a failure."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._connection: Any = None
        self._lock = threading.RLock()  # the local gateway serves threads; SCF one call at a time
        self._sql: dict[str, str] = {}

    def _q(self, sql: str) -> str:
        """`?` placeholders rewritten for the dialect's driver (cached)."""
        out = self._sql.get(sql)
        if out is None:
            out = self._sql[sql] = sql if self.dialect.placeholder == "?" else sql.replace(
                "?", self.dialect.placeholder)
        return out

    def _connect(self) -> Any:
        if self._connection is None:
            connection = self.dialect.connect()
            try:
                migrate(self.dialect, connection)
            except BaseException:
                try:
                    connection.close()
                except Exception:
                    pass
                raise
            self._connection = connection
        return self._connection

    @staticmethod
    def _rollback(connection: Any) -> None:
        try:
            connection.rollback()
        except Exception:
            pass

    def _run(self, work: Callable[[Any], T], transaction: bool = False) -> T:
        """Run `work(cursor)` on the connection. Single statements run in autocommit: each is atomic
        by itself, and a BEGIN/COMMIT pair would cost lock round trips on every send. With
        `transaction`, `work` runs between the dialect's BEGIN and a COMMIT (all of it or none).
        Either is run again when the database broke a deadlock by aborting it. A constraint failure
        is ConstraintViolation; any other database failure closes the connection (the next call
        re-opens it) and surfaces as StoreUnavailable (503)."""
        with self._lock:
            for attempt in range(3):
                try:
                    connection = self._connect()
                    cursor = connection.cursor()
                    if not transaction:
                        return work(cursor)
                    self.dialect.begin(connection)
                    try:
                        result = work(cursor)
                        connection.commit()
                    except BaseException:
                        self._rollback(connection)
                        raise
                    return result
                except self.dialect.errors as exc:
                    if self.dialect.is_integrity(exc):
                        raise ConstraintViolation("a constraint of the database refused the write") from exc
                    if attempt < 2 and self.dialect.is_retryable(exc):
                        # The database chose us as a deadlock's victim and rolled the whole of
                        # `work` back: running it again cannot apply anything twice.
                        continue
                    self.close()
                    raise StoreUnavailable("the database is unavailable") from exc
            raise AssertionError("unreachable")

    def _fetch_one(self, sql: str, params: tuple) -> Any:
        """The first column of the first row of one SELECT, or None without a row."""
        def work(cursor: Any) -> Any:
            cursor.execute(self._q(sql), params)
            row = cursor.fetchone()
            return row[0] if row else None

        return self._run(work)

    def _execute(self, sql: str, params: tuple) -> int:
        """One statement in autocommit; the rows it changed."""
        def work(cursor: Any) -> int:
            cursor.execute(self._q(sql), params)
            return max(cursor.rowcount, 0)

        return self._run(work)

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                try:
                    self._connection.close()
                except Exception:
                    pass
                self._connection = None
