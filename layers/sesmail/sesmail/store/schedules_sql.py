"""Schedules sesmail fires itself: scheduled and recurring topic batches (docs/topics.md#schedules).

A schedule is one row, changed only by compare-and-swap on its `version` (two instances of the
job may look at it at once), and its recipients one row each, in the order of the request. A
schedule that ends (done, cancelled, missed) drops its recipients in the same transaction: what
it no longer needs is not kept.
"""

from __future__ import annotations

import json
from typing import Any

from .database import Database, marks

__all__ = ["SCHEDULED", "SCHEDULE_COLUMNS", "SchedulesSql"]

SCHEDULE_COLUMNS = ("schedule_id", "client", "task_type", "interval_s", "payload", "state", "next_at", "fired",
                    "missed", "failed", "last_fire_at", "last_result", "version", "created_at", "updated_at")
SCHEDULED = "scheduled"  # the one state in which a schedule still fires; every other state is an end
_RECIPIENT_ROWS = 200  # recipients per INSERT: 200 x 4 values stays under SQLite's 999 parameters


def _schedule(row: tuple) -> dict:
    out = dict(zip(SCHEDULE_COLUMNS, row))
    out["payload"] = json.loads(out["payload"])
    out["last_result"] = json.loads(out["last_result"]) if out["last_result"] else None
    return out


class SchedulesSql(Database):
    def add_schedule(self, schedule: dict, recipients: list[dict]) -> None:
        """Store a new schedule (SCHEDULE_COLUMNS but `version`, which starts at 1) and its
        recipients ({"Email", "TemplateData"}), all or nothing."""
        row = dict(schedule, version=1, payload=json.dumps(schedule["payload"], separators=(",", ":")),
                   last_result=None if schedule.get("last_result") is None else json.dumps(schedule["last_result"]))
        insert = self._q("INSERT INTO sesmail_schedules (" + ", ".join(SCHEDULE_COLUMNS) + ") VALUES ("
                         + marks(len(SCHEDULE_COLUMNS)) + ")")
        rows = [(schedule["schedule_id"], seq, recipient["Email"], recipient.get("TemplateData") or "{}")
                for seq, recipient in enumerate(recipients)]

        def work(cursor: Any) -> None:
            cursor.execute(insert, tuple(row.get(column) for column in SCHEDULE_COLUMNS))
            for start in range(0, len(rows), _RECIPIENT_ROWS):
                part = rows[start:start + _RECIPIENT_ROWS]
                cursor.execute(self._q("INSERT INTO sesmail_schedule_recipients (schedule_id, seq, email, data) VALUES "
                                       + ", ".join(["(?, ?, ?, ?)"] * len(part))),
                               tuple(value for values in part for value in values))

        self._run(work, transaction=True)

    def get_schedule(self, schedule_id: str) -> dict | None:
        def work(cursor: Any) -> Any:
            cursor.execute(self._q("SELECT " + ", ".join(SCHEDULE_COLUMNS) + " FROM sesmail_schedules"
                                   " WHERE schedule_id = ?"), (schedule_id,))
            return cursor.fetchone()

        row = self._run(work)
        return _schedule(row) if row else None

    def schedule_recipients(self, schedule_id: str) -> list[dict]:
        """Its recipients as the request listed them: [{"Email", "TemplateData"}]."""
        def work(cursor: Any) -> list:
            cursor.execute(self._q("SELECT email, data FROM sesmail_schedule_recipients WHERE schedule_id = ?"
                                   " ORDER BY seq"), (schedule_id,))
            return cursor.fetchall()

        return [{"Email": email, "TemplateData": data} for email, data in self._run(work)]

    def due_schedules(self, now: float, limit: int) -> list[dict]:
        """Schedules whose next firing is due, the longest due first."""
        def work(cursor: Any) -> list:
            cursor.execute(self._q("SELECT " + ", ".join(SCHEDULE_COLUMNS) + " FROM sesmail_schedules WHERE state = ?"
                                   " AND next_at <= ? ORDER BY next_at, schedule_id LIMIT ?"),
                           (SCHEDULED, now, int(limit)))
            return cursor.fetchall()

        return [_schedule(row) for row in self._run(work)]

    def update_schedule(self, schedule_id: str, version: int, **fields: Any) -> bool:
        """Compare-and-swap: apply `fields` only if the schedule is still at `version` (False
        otherwise). A `state` other than SCHEDULED ends it: its recipients are deleted with it."""
        if "last_result" in fields:
            fields["last_result"] = None if fields["last_result"] is None else json.dumps(fields["last_result"])
        names = sorted(fields)
        update = self._q("UPDATE sesmail_schedules SET " + ", ".join(f"{n} = ?" for n in names)
                         + ", version = ? WHERE schedule_id = ? AND version = ?")
        ends = fields.get("state", SCHEDULED) != SCHEDULED

        def work(cursor: Any) -> bool:
            cursor.execute(update, (*(fields[n] for n in names), version + 1, schedule_id, version))
            if cursor.rowcount != 1:
                return False
            if ends:
                cursor.execute(self._q("DELETE FROM sesmail_schedule_recipients WHERE schedule_id = ?"), (schedule_id,))
            return True

        return self._run(work, transaction=ends)
