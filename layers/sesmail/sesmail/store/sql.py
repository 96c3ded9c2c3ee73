"""The SQL store: one class, `SqlStore`, composed of one module per concern, each written once for
SQLite, PostgreSQL and MySQL.

    database.py          the dialect, the connection, statements and transactions (`_run`)
    schema.py            the versioned migrations
    idempotency_sql.py   Idempotency-Key records            (protocols.IdempotencyStore)
    leases_sql.py        recipient leases                   (protocols.LeaseStore)
    suppressions_sql.py  the suppression list               (protocols.SuppressionStore)
    sent_sql.py          the log of sent messages           (protocols.SentLog)
    events_sql.py        delivery events                    (protocols.EventStore)
    tasks_sql.py         batch tasks and our recipient lists (protocols.TaskStore)
    digest_sql.py        digest items                       (protocols.DigestStore)
    retention_sql.py     purge and erasure                  (protocols.RetentionStore)

Portable on purpose: plain INSERT (a unique key turns a duplicate into an integrity error, never a
read-then-write race), UPDATE guarded by a version column for compare-and-swap, single statements
in autocommit. What spans two concerns in one statement (a send's admission) is here.
"""

from __future__ import annotations

from typing import Any

from .database import ConstraintViolation
from .digest_sql import DigestSql
from .events_sql import EventsSql
from .idempotency_sql import IdempotencySql
from .leases_sql import LeasesSql
from .retention_sql import RetentionSql
from .schema import DDL as _DDL  # noqa: F401  (tests build a version-1 schema with it)
from .schema import MIGRATIONS, SCHEMA_VERSION
from .sent_sql import SentLogSql
from .suppressions_sql import HASHED_PREFIX, SUPPRESSION_CHUNK, SuppressionsSql
from .tasks_sql import TasksSql

__all__ = ["HASHED_PREFIX", "MIGRATIONS", "SCHEMA_VERSION", "ConstraintViolation", "SqlStore"]


class SqlStore(IdempotencySql, LeasesSql, SuppressionsSql, SentLogSql, EventsSql, TasksSql, DigestSql,
               RetentionSql):
    """Every concern of the store over one connection (protocols.Store)."""

    def admit(self, emails: list[str], marketing: bool | str, hashes: dict[str, str], keys: list[str], owner: str,
              until: float, free_before: float) -> tuple[dict[str, dict], tuple[float, bool] | None]:
        """suppressions_for(emails, …) and take_leases(keys, …) together: what a send asks before
        it calls SES. On PostgreSQL one statement (a data-modifying WITH); elsewhere two."""
        wanted = sorted(set(keys))
        if not wanted or 2 * len(emails) > SUPPRESSION_CHUNK:
            return (self.suppressions_for(emails, marketing, hashes=hashes),
                    self.take_leases(wanted, owner, until, free_before))
        select, select_params, by_key = self._suppressions_sql(emails, marketing, hashes)
        take, take_params = self._take_sql(wanted, owner, until, free_before)

        def work(cursor: Any) -> tuple[dict[str, dict], tuple[float, bool] | None]:
            if self.dialect.name == "postgresql":
                cursor.execute("WITH taken AS (" + take + " RETURNING 1) " + select
                               + " UNION ALL SELECT '', '', CAST(COUNT(*) AS VARCHAR) FROM taken",
                               (*take_params, *select_params))
                rows = cursor.fetchall()
                found = self._suppression_result([row for row in rows if row[0] != ""], by_key)
                taken = int(next(row[2] for row in rows if row[0] == ""))
            else:
                cursor.execute(select, select_params)
                found = self._suppression_result(cursor.fetchall(), by_key)
                cursor.execute(take, take_params)
                taken = self._taken(cursor, wanted, owner)
            return found, self._taken_or_blocked(cursor, taken, wanted, owner, free_before)

        return self._run(work)
