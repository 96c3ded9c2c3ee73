"""The SQL store: one class, `SqlStore`, composed of one module per concern, each written once for
SQLite, PostgreSQL and MySQL.

    database.py          the dialect, the connection, statements and transactions (`_run`)
    schema.py            the versioned migrations
    idempotency_sql.py   Idempotency-Key records            (protocols.IdempotencyStore)
    leases_sql.py        recipient leases                   (protocols.LeaseStore)
    suppressions_sql.py  the suppression list               (protocols.SuppressionStore)
    sent_sql.py          the log of sent messages           (protocols.SentLog)
    events_sql.py        delivery events                    (protocols.EventStore)
    stats.py             statistics and the guard's buckets (protocols.StatsStore)
    tasks_sql.py         batch tasks and our recipient lists (protocols.TaskStore)
    schedules_sql.py     schedules sesmail fires itself     (protocols.ScheduleStore)
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
from .schedules_sql import SchedulesSql
from .schema import DDL as _DDL  # noqa: F401  (tests build a version-1 schema with it)
from .schema import MIGRATIONS, SCHEMA_VERSION
from .sent_sql import SentLogSql
from .stats import StatsSql
from .suppressions_sql import HASHED_PREFIX, SUPPRESSION_CHUNK, SuppressionsSql
from .tasks_sql import TasksSql

__all__ = ["HASHED_PREFIX", "MIGRATIONS", "SCHEMA_VERSION", "ConstraintViolation", "SqlStore"]


class SqlStore(IdempotencySql, LeasesSql, SuppressionsSql, SentLogSql, TasksSql, SchedulesSql, DigestSql, RetentionSql,
               StatsSql, EventsSql):
    """Every concern of the store over one connection (protocols.Store)."""

    def admit(self, emails: list[str], marketing: bool | str, hashes: dict[str, str], keys: list[str], owner: str,
              until: float, free_before: float, guard: tuple[str, int] | None = None) -> tuple:
        """suppressions_for(emails, …) and take_leases(keys, …) together: what a send asks before
        it calls SES. On PostgreSQL one statement (a data-modifying WITH); elsewhere two. With
        `guard` = (sender domain, first hour), the reputation guard's window is asked too (in the
        same statement on PostgreSQL) and comes third: guard_window's answer."""
        wanted = sorted(set(keys))
        if not wanted or 2 * len(emails) > SUPPRESSION_CHUNK:
            answer: tuple = (self.suppressions_for(emails, marketing, hashes=hashes),
                             self.take_leases(wanted, owner, until, free_before))
            return (*answer, self.guard_window(*guard)) if guard else answer
        select, select_params, by_key = self._suppressions_sql(emails, marketing, hashes)
        take, take_params = self._take_sql(wanted, owner, until, free_before)
        guard_sql, guard_params = self._guard_sql(*guard) if guard else ("", ())

        def work(cursor: Any) -> tuple:
            window = None
            if self.dialect.name == "postgresql":
                # The guard's one row rides along as text, its numbers joined by commas.
                cursor.execute("WITH taken AS (" + take + " RETURNING 1) " + select
                               + " UNION ALL SELECT '', '', CAST(COUNT(*) AS VARCHAR) FROM taken"
                               + (" UNION ALL SELECT '', 'guard', CONCAT_WS(',', "
                                  + ", ".join(f"g.g{n}" for n in range(10)) + ") FROM (" + guard_sql + ") g"
                                  if guard else ""),
                               (*take_params, *select_params, *guard_params))
                rows = cursor.fetchall()
                found = self._suppression_result([row for row in rows if row[0] != ""], by_key)
                taken = int(next(row[2] for row in rows if row[0] == "" and row[1] == ""))
                if guard:
                    window = self._guard_window(guard[0], next(row[2] for row in rows
                                                               if row[0] == "" and row[1] == "guard").split(","))
            else:
                cursor.execute(select, select_params)
                found = self._suppression_result(cursor.fetchall(), by_key)
                cursor.execute(take, take_params)
                taken = self._taken(cursor, wanted, owner)
                if guard:
                    cursor.execute(guard_sql, guard_params)
                    window = self._guard_window(guard[0], cursor.fetchone())
            answer = (found, self._taken_or_blocked(cursor, taken, wanted, owner, free_before))
            return (*answer, window) if guard else answer

        return self._run(work)
