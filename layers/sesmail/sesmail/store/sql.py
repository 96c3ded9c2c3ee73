"""All SQL of the store, written once for SQLite, PostgreSQL and MySQL.

Portable on purpose: plain INSERT (a unique key turns a duplicate into an integrity error, never a
read-then-write race), UPDATE guarded by a version column for compare-and-swap, DOUBLE PRECISION
Unix times, VARCHAR keys (MySQL cannot index TEXT without a length). A dialect supplies the
connection, the placeholder and its driver's error classes.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Callable

from ..errors import StoreUnavailable

__all__ = ["SCHEMA_VERSION", "SqlStore"]

SCHEMA_VERSION = 1

# Versioned schema: MIGRATIONS[n] takes the database from version n to n + 1.
MIGRATIONS: list[list[str]] = [
    [
        "CREATE TABLE sesmail_schema (version INTEGER NOT NULL)",
        "INSERT INTO sesmail_schema (version) VALUES (0)",
        # Idempotency-Key records (SPEC 3.3), one per client scope and key.
        """CREATE TABLE sesmail_idempotency (
            scope VARCHAR(64) NOT NULL,
            idem_key VARCHAR(255) NOT NULL,
            fingerprint CHAR(64) NOT NULL,
            state VARCHAR(16) NOT NULL,
            status INTEGER,
            response TEXT,
            attempt TEXT,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL,
            version INTEGER NOT NULL,
            PRIMARY KEY (scope, idem_key))""",
        "CREATE INDEX sesmail_idempotency_expires ON sesmail_idempotency (expires_at)",
        # Every MessageId SES gave us: resolves doubt (SPEC 5) and scopes status queries.
        """CREATE TABLE sesmail_sent (
            message_id VARCHAR(255) NOT NULL PRIMARY KEY,
            client VARCHAR(64) NOT NULL,
            sender VARCHAR(320) NOT NULL,
            recipients TEXT NOT NULL,
            idem_ref VARCHAR(330),
            created_at DOUBLE PRECISION NOT NULL)""",
        # One index serves both the clean-up (created_at + TTL) and the rare lookup by key within
        # an attempt's window: every index is a page written on every send.
        "CREATE INDEX sesmail_sent_created ON sesmail_sent (created_at)",
        # Delivery events from SES callbacks (and polled status), one row per distinct event.
        """CREATE TABLE sesmail_events (
            event_id CHAR(64) NOT NULL PRIMARY KEY,
            message_id VARCHAR(255),
            email VARCHAR(320) NOT NULL,
            event VARCHAR(64) NOT NULL,
            event_time BIGINT,
            details TEXT NOT NULL,
            raw TEXT NOT NULL,
            polled INTEGER NOT NULL,
            stored_at DOUBLE PRECISION NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL)""",
        "CREATE INDEX sesmail_events_message ON sesmail_events (message_id)",
        "CREATE INDEX sesmail_events_email ON sesmail_events (email)",
        "CREATE INDEX sesmail_events_expires ON sesmail_events (expires_at)",
    ],
]

_IDEM_COLUMNS = ("scope", "idem_key", "fingerprint", "state", "status", "response", "attempt",
                 "created_at", "updated_at", "expires_at", "version")


class SqlStore:
    def __init__(self, dialect: Any) -> None:
        self.dialect = dialect
        self._connection: Any = None
        self._lock = threading.RLock()  # the local gateway serves threads; SCF one call at a time
        self._sql: dict[str, str] = {}

    # -- plumbing ---------------------------------------------------------------------------
    def _q(self, sql: str) -> str:
        """`?` placeholders rewritten for the dialect's driver (cached)."""
        out = self._sql.get(sql)
        if out is None:
            out = self._sql[sql] = sql if self.dialect.placeholder == "?" else sql.replace(
                "?", self.dialect.placeholder)
        return out

    def _connect(self):
        if self._connection is None:
            connection = self.dialect.connect()
            try:
                self._migrate(connection)
            except BaseException:
                connection.close()
                raise
            self._connection = connection
        return self._connection

    def _migrate(self, connection) -> None:
        cursor = connection.cursor()
        try:
            cursor.execute("SELECT version FROM sesmail_schema")
            version = cursor.fetchone()[0]
        except self.dialect.operational_errors:
            self._rollback(connection)
            version = None
        if version == SCHEMA_VERSION:
            return
        self.dialect.begin(connection)
        try:
            for step in MIGRATIONS[version or 0:]:
                for statement in step:
                    cursor.execute(statement)
            cursor.execute(f"UPDATE sesmail_schema SET version = {SCHEMA_VERSION}")
            connection.commit()
        except self.dialect.integrity_errors + self.dialect.operational_errors:
            # Another instance migrated at the same moment: its schema is the one to use.
            self._rollback(connection)
            cursor.execute("SELECT version FROM sesmail_schema")
            if cursor.fetchone()[0] != SCHEMA_VERSION:
                raise

    @staticmethod
    def _rollback(connection) -> None:
        try:
            connection.rollback()
        except Exception:
            pass

    def _run(self, work: Callable[[Any], Any]):
        """Run `work(cursor)` on the connection, in autocommit: every write here is one statement,
        atomic by itself, so no transaction is opened around it (each BEGIN/COMMIT pair costs
        lock round trips on every send). A database failure closes the connection (the next call
        re-opens it) and surfaces as StoreUnavailable (503)."""
        with self._lock:
            try:
                return work(self._connect().cursor())
            except self.dialect.integrity_errors:
                raise
            except self.dialect.operational_errors as exc:
                self.close()
                raise StoreUnavailable("the database is unavailable") from exc

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                try:
                    self._connection.close()
                except Exception:
                    pass
                self._connection = None

    # -- idempotency records ----------------------------------------------------------------
    def idem_get(self, scope: str, key: str) -> dict | None:
        def work(cursor):
            cursor.execute(self._q("SELECT " + ", ".join(_IDEM_COLUMNS)
                                   + " FROM sesmail_idempotency WHERE scope = ? AND idem_key = ?"),
                           (scope, key))
            row = cursor.fetchone()
            return dict(zip(_IDEM_COLUMNS, row)) if row else None

        record = self._run(work)
        if record and record["attempt"]:
            record["attempt"] = json.loads(record["attempt"])
        return record

    def idem_insert(self, record: dict) -> bool:
        """Claim a key: False when a record already exists (the unique key decides, atomically)."""
        values = tuple(json.dumps(record[c]) if c == "attempt" else record[c] for c in _IDEM_COLUMNS)

        def work(cursor):
            cursor.execute(self._q("INSERT INTO sesmail_idempotency (" + ", ".join(_IDEM_COLUMNS)
                                   + ") VALUES (" + ", ".join("?" * len(_IDEM_COLUMNS)) + ")"), values)

        try:
            self._run(work)
        except self.dialect.integrity_errors:
            return False
        return True

    def idem_update(self, scope: str, key: str, version: int, **fields) -> bool:
        """Compare-and-swap: apply `fields` only if the record is still at `version`."""
        if "attempt" in fields:
            fields["attempt"] = json.dumps(fields["attempt"])
        names = sorted(fields)
        sql = self._q("UPDATE sesmail_idempotency SET " + ", ".join(f"{n} = ?" for n in names)
                      + ", version = ? WHERE scope = ? AND idem_key = ? AND version = ?")
        params = (*(fields[n] for n in names), version + 1, scope, key, version)

        def work(cursor):
            cursor.execute(sql, params)
            return cursor.rowcount == 1

        return self._run(work)

    def idem_delete(self, scope: str, key: str, version: int) -> bool:
        def work(cursor):
            cursor.execute(self._q("DELETE FROM sesmail_idempotency WHERE scope = ? AND idem_key = ?"
                                   " AND version = ?"), (scope, key, version))
            return cursor.rowcount == 1

        return self._run(work)

    # -- the sent log -------------------------------------------------------------------------
    def record_sent(self, message_id: str, client: str, sender: str, recipients: list[str],
                    now: float, idem_ref: str | None = None) -> None:
        """Log a MessageId SES assigned; `idem_ref` ties it to the Idempotency-Key that sent it."""
        def work(cursor):
            cursor.execute(self._q("INSERT INTO sesmail_sent (message_id, client, sender, recipients,"
                                   " idem_ref, created_at) VALUES (?, ?, ?, ?, ?, ?)"),
                           (message_id, client, sender, json.dumps(recipients), idem_ref, now))

        try:
            self._run(work)
        except self.dialect.integrity_errors:
            pass  # already recorded (an adopted MessageId): nothing to add

    def sent_for_ref(self, idem_ref: str, since: float) -> str | None:
        """The MessageId logged for an Idempotency-Key since a time, if its send was recorded."""
        def work(cursor):
            cursor.execute(self._q("SELECT message_id FROM sesmail_sent WHERE created_at >= ? AND idem_ref = ?"
                                   " ORDER BY created_at DESC"), (since, idem_ref))
            row = cursor.fetchone()
            return row[0] if row else None

        return self._run(work)

    def sent_message_ids(self, message_ids: list[str]) -> set[str]:
        if not message_ids:
            return set()

        def work(cursor):
            cursor.execute(self._q("SELECT message_id FROM sesmail_sent WHERE message_id IN ("
                                   + ", ".join("?" * len(message_ids)) + ")"), tuple(message_ids))
            return {row[0] for row in cursor.fetchall()}

        return self._run(work)

    # -- events -------------------------------------------------------------------------------
    def message_events(self, message_id: str) -> list[dict]:
        def work(cursor):
            cursor.execute(self._q("SELECT event, email, event_time, details, polled FROM sesmail_events"
                                   " WHERE message_id = ? ORDER BY event_time, stored_at"), (message_id,))
            return cursor.fetchall()

        events = []
        for event, email, event_time, details, polled in self._run(work):
            entry = {"Event": event, "Email": email, "Timestamp": event_time}
            entry.update(json.loads(details))
            if polled:
                entry["Polled"] = True
            events.append(entry)
        return events
