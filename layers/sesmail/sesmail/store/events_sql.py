"""Delivery events from SES callbacks (and polled status), one row per distinct event: the webhook's
hot path, so each statement stores up to CHUNK events."""

from __future__ import annotations

import json
from typing import Any

from .database import CHUNK, Database, compact_json, marks

__all__ = ["EVENT_COLUMNS", "EventsSql"]

EVENT_COLUMNS = ("event_id", "message_id", "email", "event", "event_time", "details", "raw", "polled",
                 "stored_at", "expires_at", "smtp_message_id")

# A duplicate event is skipped by its key, inside the INSERT: never a read-then-write race, and
# other errors (a NULL) still fail the statement. MySQL has no ON CONFLICT; INSERT IGNORE would also
# turn a NULL into "" and hide it, so a no-op ON DUPLICATE KEY UPDATE does the skipping there.
_SKIP_DUPLICATE_EVENT = {
    "sqlite": " ON CONFLICT (event_id) DO NOTHING",
    "postgresql": " ON CONFLICT (event_id) DO NOTHING",
    "mysql": " ON DUPLICATE KEY UPDATE event_id = event_id",
}


class EventsSql(Database):
    def insert_events(self, rows: list[dict]) -> int:
        """Store events, skipping any whose event_id is already stored (the key decides, so
        concurrent deliveries of one event end as one row). All rows or none: one transaction.
        A callback without an address has `email` "" (the column is NOT NULL; message_events
        gives it back as None). Returns how many rows were new."""
        values = self._event_values(rows)
        if not values:
            return 0
        # A single chunk is one statement, atomic by itself: no BEGIN/COMMIT round trips needed.
        return self._run(lambda cursor: self._insert_event_values(cursor, values), transaction=len(values) > CHUNK)

    @staticmethod
    def _event_values(rows: list[dict]) -> list[tuple]:
        """insert_events' rows as column values, each event once, in key order: two batches sharing
        events lock them in the same order, so they cannot deadlock."""
        unique: dict[str, tuple] = {}
        for row in rows:
            if row["event_id"] not in unique:
                email = row["email"]
                unique[row["event_id"]] = (
                    row["event_id"], row["message_id"], email.lower() if isinstance(email, str) else email,
                    row["event"], row["event_time"], compact_json(row["details"]), row["raw"],
                    int(bool(row["polled"])), row["stored_at"], row["expires_at"], row.get("smtp_message_id"))
        return [unique[event_id] for event_id in sorted(unique)]

    def _insert_event_values(self, cursor: Any, values: list[tuple]) -> int:
        """Store `values` (_event_values'), CHUNK rows per statement; how many were new."""
        new = 0
        for start in range(0, len(values), CHUNK):
            chunk = values[start:start + CHUNK]
            cursor.execute(self._insert_events_sql(len(chunk)), tuple(value for row in chunk for value in row))
            new += max(cursor.rowcount, 0)
        return new

    def _insert_events_sql(self, rows: int) -> str:
        """The multi-row INSERT for `rows` events, built once per size (the webhook's hot path)."""
        key = f"insert_events:{rows}"
        sql = self._sql.get(key)
        if sql is None:
            row_marks = "(" + marks(len(EVENT_COLUMNS)) + ")"
            sql = self._sql[key] = self._q("INSERT INTO sesmail_events (" + ", ".join(EVENT_COLUMNS) + ") VALUES "
                                           + ", ".join([row_marks] * rows) + _SKIP_DUPLICATE_EVENT[self.dialect.name])
        return sql

    def message_events(self, message_id: str) -> list[dict]:
        """A message's events in time order: {"Event", "Email", "Timestamp", **details, "Polled"?};
        `message_id` is SES's MessageId or, for mail sent over SMTP, its Message-ID header."""
        def work(cursor: Any) -> list:
            # NULL times first on every database (PostgreSQL would sort them last by default).
            cursor.execute(self._q("SELECT event, email, event_time, details, polled FROM sesmail_events"
                                   " WHERE message_id = ? OR smtp_message_id = ?"
                                   " ORDER BY CASE WHEN event_time IS NULL THEN 0 ELSE 1 END,"
                                   " event_time, stored_at, event_id"), (message_id, message_id))
            return cursor.fetchall()

        events = []
        for event, email, event_time, details, polled in self._run(work):
            entry = {"Event": event, "Email": email or None,  # "" is how an absent address is kept
                     "Timestamp": None if event_time is None else int(event_time)}
            entry.update(json.loads(details))
            if polled:
                entry["Polled"] = True
            events.append(entry)
        return events
