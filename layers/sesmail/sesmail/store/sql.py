"""All SQL of the store, written once for SQLite, PostgreSQL and MySQL.

Portable on purpose: plain INSERT (a unique key turns a duplicate into an integrity error, never a
read-then-write race), UPDATE guarded by a version column for compare-and-swap, DOUBLE PRECISION
Unix times, VARCHAR keys (MySQL cannot index TEXT without a length), single statements in
autocommit. Where the three databases have no common syntax (insert-or-skip, upsert) the variants
sit side by side below, keyed by the dialect's name. A dialect supplies the connection, the
placeholder, transactions and the classification of its driver's errors.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Callable

from ..errors import StoreUnavailable

__all__ = ["SCHEMA_VERSION", "ConstraintViolation", "SqlStore"]

SCHEMA_VERSION = 4

# The version table is created outside the numbered steps: it is what records them. One row,
# pinned by its primary key, so two instances bootstrapping at once cannot insert two.
_SCHEMA_TABLE = """CREATE TABLE IF NOT EXISTS sesmail_schema (
    id INTEGER NOT NULL PRIMARY KEY,
    version INTEGER NOT NULL){options}"""

# Versioned schema: MIGRATIONS[n] takes the database from version n to n + 1. `{text}` is TEXT
# (MEDIUMTEXT on MySQL, whose TEXT stops at 64 KiB), `{options}` MySQL's table options, and
# `{if_not_exists}` what CREATE INDEX accepts there. Every statement may run twice: MySQL commits
# each DDL statement by itself, so a migration that died half-way runs again from its step's start
# (MySQL 8 has no CREATE INDEX IF NOT EXISTS: there, "index exists" is the error tolerated).
MIGRATIONS: list[list[str]] = [
    [
        # Idempotency-Key records (SPEC 3.3), one per client scope and key.
        """CREATE TABLE IF NOT EXISTS sesmail_idempotency (
            scope VARCHAR(64) NOT NULL,
            idem_key VARCHAR(255) NOT NULL,
            fingerprint CHAR(64) NOT NULL,
            state VARCHAR(16) NOT NULL,
            status INTEGER,
            response {text},
            attempt {text},
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL,
            version INTEGER NOT NULL,
            PRIMARY KEY (scope, idem_key)){options}""",
        "CREATE INDEX {if_not_exists}sesmail_idempotency_expires ON sesmail_idempotency (expires_at)",
        # Every MessageId SES gave us: resolves doubt (SPEC 5), scopes status queries, and lists
        # the messages whose callbacks may have been lost (reconciliation).
        """CREATE TABLE IF NOT EXISTS sesmail_sent (
            message_id VARCHAR(255) NOT NULL PRIMARY KEY,
            client VARCHAR(64) NOT NULL,
            sender VARCHAR(320) NOT NULL,
            recipients {text} NOT NULL,
            idem_ref VARCHAR(330),
            created_at DOUBLE PRECISION NOT NULL){options}""",
        # One index serves the clean-up, reconciliation's window and the rare lookup by key within
        # an attempt's window: every index is a page written on every send.
        "CREATE INDEX {if_not_exists}sesmail_sent_created ON sesmail_sent (created_at)",
        # Delivery events from SES callbacks (and polled status), one row per distinct event.
        """CREATE TABLE IF NOT EXISTS sesmail_events (
            event_id CHAR(64) NOT NULL PRIMARY KEY,
            message_id VARCHAR(255),
            email VARCHAR(320) NOT NULL,
            event VARCHAR(64) NOT NULL,
            event_time BIGINT,
            details {text} NOT NULL,
            raw {text} NOT NULL,
            polled INTEGER NOT NULL,
            stored_at DOUBLE PRECISION NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL){options}""",
        # (message_id, event): a message's history, and reconciliation's "has a final event?"
        # answered from the index alone.
        "CREATE INDEX {if_not_exists}sesmail_events_message ON sesmail_events (message_id, event)",
        "CREATE INDEX {if_not_exists}sesmail_events_email ON sesmail_events (email)",
        "CREATE INDEX {if_not_exists}sesmail_events_expires ON sesmail_events (expires_at)",
        # Addresses SES must not be asked to mail (SPEC 3.5); the key's first column serves the
        # lookup before a send and erasure.
        """CREATE TABLE IF NOT EXISTS sesmail_suppressions (
            email VARCHAR(320) NOT NULL,
            scope VARCHAR(16) NOT NULL,
            reason VARCHAR(64) NOT NULL,
            source VARCHAR(16) NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (email, scope)){options}""",
        # BatchSendEmail tasks we started: resolves doubt ("not yet in our task log") and tells
        # the clean-up which recipient lists are ours to delete once their task is done.
        """CREATE TABLE IF NOT EXISTS sesmail_tasks (
            task_id BIGINT NOT NULL PRIMARY KEY,
            receiver_id BIGINT NOT NULL,
            client VARCHAR(64) NOT NULL,
            subject VARCHAR(255) NOT NULL,
            owned INTEGER NOT NULL,
            list_deleted INTEGER NOT NULL,
            created_at DOUBLE PRECISION NOT NULL){options}""",
        "CREATE INDEX {if_not_exists}sesmail_tasks_created ON sesmail_tasks (created_at)",
        # Digest items: queued -> sending (claimed by one timer run) -> sent / skipped / failed.
        """CREATE TABLE IF NOT EXISTS sesmail_digest_items (
            item_id CHAR(32) NOT NULL PRIMARY KEY,
            digest VARCHAR(64) NOT NULL,
            email VARCHAR(320) NOT NULL,
            item {text} NOT NULL,
            state VARCHAR(16) NOT NULL,
            attempts INTEGER NOT NULL,
            run VARCHAR(255),
            carrier VARCHAR(255),
            claimed_at DOUBLE PRECISION,
            created_at DOUBLE PRECISION NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL){options}""",
        "CREATE INDEX {if_not_exists}sesmail_digest_pending ON sesmail_digest_items (digest, state, email)",
        "CREATE INDEX {if_not_exists}sesmail_digest_email ON sesmail_digest_items (email)",
        "CREATE INDEX {if_not_exists}sesmail_digest_expires ON sesmail_digest_items (expires_at)",
    ],
    [
        # Mail sent over SMTP has no SES MessageId of ours: its callbacks find it by the Message-ID
        # header they carry (`messageId`), so a message's history is looked up by either.
        "ALTER TABLE sesmail_events ADD {add_column}smtp_message_id VARCHAR(255)",
        "CREATE INDEX {if_not_exists}sesmail_events_smtp ON sesmail_events (smtp_message_id)",
    ],
    [
        # Recipient leases (README.md#failure-model): while one attempt to a
        # recipient is in flight or in doubt, no other attempt from the same sender to that
        # recipient may start, so a doubt can never be resolved with another attempt's mail. The
        # key is a keyed hash of sender and address: no plaintext address is stored here. A row
        # given back keeps, as its expiry, the start of its last holder's window: an attempt whose
        # window began earlier must begin it again, so the row never forgets a doubt it outlived.
        """CREATE TABLE IF NOT EXISTS sesmail_leases (
            lease_key CHAR(64) NOT NULL PRIMARY KEY,
            owner VARCHAR(330) NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL,
            in_doubt INTEGER NOT NULL){options}""",
        # Recipient lists we create (BatchSendEmail on inline recipients), recorded under their
        # unique name before CreateReceiver is called: a list whose task never came (a run that
        # gave up, a refusal, a crash, a lost reply) is found and deleted by the cleanup job.
        # `receiver_id` is set once SES named the list, `task_id` once its task is recorded;
        # idem_scope/idem_key name the Idempotency-Key whose doubt may still adopt a task on it.
        """CREATE TABLE IF NOT EXISTS sesmail_lists (
            name VARCHAR(64) NOT NULL PRIMARY KEY,
            receiver_id BIGINT,
            client VARCHAR(64) NOT NULL,
            idem_scope VARCHAR(64),
            idem_key VARCHAR(255),
            task_id BIGINT,
            deleted INTEGER NOT NULL,
            created_at DOUBLE PRECISION NOT NULL){options}""",
        "CREATE INDEX {if_not_exists}sesmail_lists_created ON sesmail_lists (created_at)",
        "CREATE INDEX {if_not_exists}sesmail_lists_receiver ON sesmail_lists (receiver_id)",
    ],
    [
        # Topic unsubscribes (docs/topics.md) are suppressions under the scope `topic:<name>` (names
        # of up to 32 characters): the scope column grows. SQLite does not enforce VARCHAR lengths.
        "{widen_scope}",
    ],
]

# An erased address's suppressions are kept under this prefix and a keyed hash of the address
# (rules.address_hash): no address can start so (it has no colon), and the table keeps no address.
HASHED_PREFIX = "h:"

_IDEM_COLUMNS = ("scope", "idem_key", "fingerprint", "state", "status", "response", "attempt",
                 "created_at", "updated_at", "expires_at", "version")
_EVENT_COLUMNS = ("event_id", "message_id", "email", "event", "event_time", "details", "raw", "polled",
                  "stored_at", "expires_at", "smtp_message_id")

# Rows per multi-row INSERT: 90 rows x 11 columns stays under 999 parameters, the limit of SQLite
# builds before 3.32; PostgreSQL caches one prepared statement for every full chunk.
_CHUNK = 90

# A duplicate event is skipped by its key, inside the INSERT: never a read-then-write race, and
# other errors (a NULL) still fail the statement. MySQL has no ON CONFLICT; INSERT IGNORE would also
# turn a NULL into "" and hide it, so a no-op ON DUPLICATE KEY UPDATE does the skipping there.
_SKIP_DUPLICATE_EVENT = {
    "sqlite": " ON CONFLICT (event_id) DO NOTHING",
    "postgresql": " ON CONFLICT (event_id) DO NOTHING",
    "mysql": " ON DUPLICATE KEY UPDATE event_id = event_id",
}
# A repeated suppression keeps its first created_at; the latest reason and source win.
_UPSERT_SUPPRESSION = {
    "sqlite": " ON CONFLICT (email, scope) DO UPDATE SET reason = excluded.reason, source = excluded.source",
    "postgresql": " ON CONFLICT (email, scope) DO UPDATE SET reason = EXCLUDED.reason, source = EXCLUDED.source",
    # VALUES() is deprecated in MySQL 8.0.20+ in favour of a row alias MariaDB lacks; both accept it.
    "mysql": " ON DUPLICATE KEY UPDATE reason = VALUES(reason), source = VALUES(source)",
}
_DDL = {
    "sqlite": {"text": "TEXT", "options": "", "if_not_exists": "IF NOT EXISTS ", "add_column": "COLUMN ",
               "widen_scope": "SELECT 1"},
    "postgresql": {"text": "TEXT", "options": "", "if_not_exists": "IF NOT EXISTS ",
                   "add_column": "COLUMN IF NOT EXISTS ",
                   "widen_scope": "ALTER TABLE sesmail_suppressions ALTER COLUMN scope TYPE VARCHAR(48)"},
    # utf8mb4_bin: keys compare byte for byte (the server's default collation is case-insensitive,
    # which would merge two Idempotency-Keys differing in case). DYNAMIC rows allow index keys of
    # 3072 bytes: VARCHAR(320) in utf8mb4 is 1280.
    "mysql": {"text": "MEDIUMTEXT", "if_not_exists": "", "add_column": "COLUMN ",
              "widen_scope": "ALTER TABLE sesmail_suppressions MODIFY scope VARCHAR(48) NOT NULL",
              "options": " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC"},
}

# Keys per suppression lookup (an address and its erasure hash count two): one query for a send.
_SUPPRESSION_CHUNK = 500
# Leases given back: free from the given time on (the UPDATE's IN list is completed by the caller).
_GIVE_BACK = "UPDATE sesmail_leases SET owner = '', in_doubt = 0, expires_at = ? WHERE owner = ? AND lease_key IN ("

# LIKE escape character: not a backslash, which MySQL string literals would themselves unescape.
_LIKE_ESCAPE = "!"


class ConstraintViolation(Exception):
    """A write broke a NOT NULL or key constraint that no duplicate-skipping covers: a caller's bug,
    not an outage. Raised in place of the driver's own class, which differs per database; its
    message never carries the driver's, which quotes the row (addresses are personal data)."""


_json = json.JSONEncoder(separators=(",", ":")).encode  # built once: json.dumps(…, separators) is not


def _like_contains(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its own wildcards taken literally."""
    for char in (_LIKE_ESCAPE, "%", "_"):
        text = text.replace(char, _LIKE_ESCAPE + char)
    return "%" + text + "%"


def _marks(count: int) -> str:
    return ", ".join("?" * count)


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
                try:
                    connection.close()
                except Exception:
                    pass
                raise
            self._connection = connection
        return self._connection

    def _migrate(self, connection) -> None:
        """Create or upgrade the schema. The common case (already current) costs one SELECT; the
        rest runs under the dialect's schema lock, so instances starting together migrate once."""
        cursor = connection.cursor()
        if (self._schema_version(cursor) or 0) >= SCHEMA_VERSION:
            return  # a newer schema than ours is a later release's, additive: use it
        ddl = _DDL[self.dialect.name]
        self.dialect.lock_schema(connection)
        done = False
        try:
            cursor.execute(_SCHEMA_TABLE.format(**ddl))
            version = self._schema_version(cursor, missing_ok=False)
            if version is None:
                cursor.execute("INSERT INTO sesmail_schema (id, version) VALUES (1, 0)")
                version = 0
            for step in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[step]:
                    try:
                        cursor.execute(statement.format(**ddl))
                    except self.dialect.errors as exc:
                        # Only where DDL is not transactional (MySQL) can a step be half done.
                        if not self.dialect.already_exists(exc):
                            raise
                cursor.execute(f"UPDATE sesmail_schema SET version = {step + 1}")
            done = True
        finally:
            self.dialect.unlock_schema(connection, commit=done)

    def _schema_version(self, cursor, missing_ok: bool = True) -> int | None:
        try:
            cursor.execute("SELECT version FROM sesmail_schema")
        except self.dialect.errors:
            if not missing_ok:
                raise
            return None  # no schema yet (in autocommit, this failure leaves no transaction behind)
        row = cursor.fetchone()
        return None if row is None else int(row[0])

    @staticmethod
    def _rollback(connection) -> None:
        try:
            connection.rollback()
        except Exception:
            pass

    def _run(self, work: Callable[[Any], Any], transaction: bool = False):
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
                                   + ") VALUES (" + _marks(len(_IDEM_COLUMNS)) + ")"), values)

        try:
            self._run(work)
        except ConstraintViolation:
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

    # -- recipient leases ---------------------------------------------------------------------
    def take_leases(self, keys: list[str], owner: str, until: float,
                    free_before: float) -> tuple[float, bool] | None:
        """Take every lease in `keys` for `owner` until `until`, all or nothing: a lease is free when
        it is absent, expired by `free_before`, or already `owner`'s. None when all are taken;
        otherwise none is kept and the answer is (when the last lease in the way expires, whether
        one of them is in flight — it may be given back early; one in doubt only expires)."""
        wanted = sorted(set(keys))  # one order for everyone: two takers never wait on each other
        if not wanted:
            return None

        def work(cursor):
            sql, params = self._take_sql(wanted, owner, until, free_before)
            cursor.execute(sql, params)
            # Elsewhere the row count of an upsert counts inserted and updated rows, not the ones
            # its WHERE kept: every row counted is a lease now ours. MySQL counts differently.
            taken = self._count_held(cursor, wanted, owner) if self.dialect.name == "mysql" else cursor.rowcount
            return self._taken_or_blocked(cursor, taken, wanted, owner, free_before)

        return self._run(work)

    def admit(self, emails: list[str], marketing: bool | str, hashes: dict[str, str], keys: list[str], owner: str,
              until: float, free_before: float) -> tuple[dict[str, dict], tuple[float, bool] | None]:
        """suppressions_for(emails, …) and take_leases(keys, …) together: what a send asks before
        it calls SES. On PostgreSQL one statement (a data-modifying WITH); elsewhere two."""
        wanted = sorted(set(keys))
        if not wanted or 2 * len(emails) > _SUPPRESSION_CHUNK:
            return (self.suppressions_for(emails, marketing, hashes=hashes),
                    self.take_leases(wanted, owner, until, free_before))
        select, select_params, by_key = self._suppressions_sql(emails, marketing, hashes)
        take, take_params = self._take_sql(wanted, owner, until, free_before)
        name = self.dialect.name

        def work(cursor):
            if name == "postgresql":
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
                taken = self._count_held(cursor, wanted, owner) if name == "mysql" else cursor.rowcount
            return found, self._taken_or_blocked(cursor, taken, wanted, owner, free_before)

        return self._run(work)

    def _take_sql(self, wanted: list[str], owner: str, until: float, free_before: float) -> tuple[str, tuple]:
        values = tuple(value for key in wanted for value in (key, owner, until, 0))
        rows = ", ".join(["(?, ?, ?, ?)"] * len(wanted))
        if self.dialect.name == "mysql":
            # Assignments run left to right: `owner` is already the new value in the second IF.
            tail = (" ON DUPLICATE KEY UPDATE owner = IF(expires_at <= ? OR owner = VALUES(owner), VALUES(owner),"
                    " owner), expires_at = IF(owner = VALUES(owner), VALUES(expires_at), expires_at),"
                    " in_doubt = IF(owner = VALUES(owner), 0, in_doubt)")
        else:
            tail = (" ON CONFLICT (lease_key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at,"
                    " in_doubt = 0 WHERE sesmail_leases.expires_at <= ? OR sesmail_leases.owner = excluded.owner")
        return (self._q("INSERT INTO sesmail_leases (lease_key, owner, expires_at, in_doubt) VALUES " + rows + tail),
                (*values, free_before))

    def _count_held(self, cursor, wanted: list[str], owner: str) -> int:
        cursor.execute(self._q("SELECT COUNT(*) FROM sesmail_leases WHERE owner = ? AND lease_key IN ("
                               + _marks(len(wanted)) + ")"), (owner, *wanted))
        return int(cursor.fetchone()[0])

    def _taken_or_blocked(self, cursor, taken: int, wanted: list[str], owner: str,
                          free_before: float) -> tuple[float, bool] | None:
        if taken == len(wanted):
            return None
        # Give back what this call took (each was free by `free_before`, so that stays true).
        cursor.execute(self._q(_GIVE_BACK + _marks(len(wanted)) + ")"), (free_before, owner, *wanted))
        cursor.execute(self._q("SELECT MAX(expires_at), MIN(in_doubt) FROM sesmail_leases WHERE owner <> ? AND"
                               " lease_key IN (" + _marks(len(wanted)) + ")"), (owner, *wanted))
        row = cursor.fetchone()
        if not row or row[0] is None:
            return 0.0, True  # purged meanwhile: worth another try at once
        return float(row[0]), not row[1]

    def doubt_leases(self, keys: list[str], owner: str, until: float) -> None:
        """`owner`'s attempt is in doubt: its leases end at `until` (when its window has passed),
        and nobody waits for them to be given back early."""
        if not keys:
            return

        def work(cursor):
            cursor.execute(self._q("UPDATE sesmail_leases SET expires_at = CASE WHEN expires_at > ? THEN ? ELSE"
                                   " expires_at END, in_doubt = 1 WHERE owner = ? AND lease_key IN ("
                                   + _marks(len(keys)) + ")"), (until, until, owner, *keys))

        self._run(work)

    def release_leases(self, keys: list[str], owner: str, window_start: float) -> None:
        """Give `owner`'s leases back after a definite answer; `window_start` is where its window
        began (later attempts' windows must begin after it)."""
        if not keys:
            return

        def work(cursor):
            cursor.execute(self._q(_GIVE_BACK + _marks(len(keys)) + ")"), (window_start, owner, *keys))

        self._run(work)

    # -- the sent log -------------------------------------------------------------------------
    def record_sent(self, message_id: str, client: str, sender: str, recipients: list[str], now: float,
                    idem_ref: str | None = None, release: tuple[list[str], str, float] | None = None) -> bool:
        """Log a MessageId SES assigned, if absent: False when it is logged already (so adopting a
        status row is an insert-if-absent: at most one request adopts it). `idem_ref` ties it to
        the Idempotency-Key that sent it; `release` = (lease keys, owner, window start) are given
        back with it, in the same statement on PostgreSQL."""
        row = (message_id, client, sender, json.dumps(recipients), idem_ref, now)
        insert = ("INSERT INTO sesmail_sent (message_id, client, sender, recipients, idem_ref, created_at)"
                  " VALUES (?, ?, ?, ?, ?, ?)")
        keys, owner, window_start = release if release else ([], "", 0.0)
        release_sql = _GIVE_BACK + _marks(len(keys)) + ")"
        name = self.dialect.name

        def work(cursor):
            if name == "postgresql" and keys:
                cursor.execute(self._q("WITH released AS (" + release_sql + ") " + insert
                                       + " ON CONFLICT (message_id) DO NOTHING"), (window_start, owner, *keys, *row))
                return cursor.rowcount == 1
            if name == "mysql":
                try:
                    cursor.execute(self._q(insert), row)
                    inserted = True
                except self.dialect.errors as exc:
                    if not self.dialect.is_integrity(exc):
                        raise
                    inserted = False
            else:
                cursor.execute(self._q(insert + " ON CONFLICT (message_id) DO NOTHING"), row)
                inserted = cursor.rowcount == 1
            if keys:
                cursor.execute(self._q(release_sql), (window_start, owner, *keys))
            return inserted

        return self._run(work)

    def sent_ref(self, message_id: str) -> str | None:
        """The Idempotency-Key reference a logged MessageId was recorded under, if any."""
        def work(cursor):
            cursor.execute(self._q("SELECT idem_ref FROM sesmail_sent WHERE message_id = ?"), (message_id,))
            row = cursor.fetchone()
            return row[0] if row else None

        return self._run(work)

    def sent_for_ref(self, idem_ref: str, since: float) -> str | None:
        """The MessageId logged for an Idempotency-Key since a time, if its send was recorded."""
        def work(cursor):
            cursor.execute(self._q("SELECT message_id FROM sesmail_sent WHERE created_at >= ? AND idem_ref = ?"
                                   " ORDER BY created_at DESC"), (since, idem_ref))
            row = cursor.fetchone()
            return row[0] if row else None

        return self._run(work)

    def sent_owner(self, message_id: str) -> str | None:
        """The client whose request sent a message, if it is in the sent log."""
        def work(cursor):
            cursor.execute(self._q("SELECT client FROM sesmail_sent WHERE message_id = ?"), (message_id,))
            row = cursor.fetchone()
            return row[0] if row else None

        return self._run(work)

    def sent_message_ids(self, message_ids: list[str]) -> set[str]:
        if not message_ids:
            return set()

        def work(cursor):
            cursor.execute(self._q("SELECT message_id FROM sesmail_sent WHERE message_id IN ("
                                   + _marks(len(message_ids)) + ")"), tuple(message_ids))
            return {row[0] for row in cursor.fetchall()}

        return self._run(work)

    def unsettled_messages(self, since: float, until: float, final_events: tuple[str, ...],
                           limit: int) -> list[dict]:
        """Sent messages created in [since, until) with no event named in `final_events`, oldest
        first: those whose callbacks may have been lost (SPEC 3.5, reconciliation)."""
        finals = tuple(final_events)
        # Mail sent over SMTP is logged under its Message-ID (always `id@domain`; SES's MessageIds
        # never hold an "@"): SES's status rows carry SES's own id for it, so polling cannot find it.
        sql = ("SELECT s.message_id, s.sender, s.recipients, s.created_at FROM sesmail_sent s"
               " WHERE s.created_at >= ? AND s.created_at < ? AND s.message_id NOT LIKE ?")
        if finals:
            sql += (" AND NOT EXISTS (SELECT 1 FROM sesmail_events e WHERE e.message_id = s.message_id"
                    " AND e.event IN (" + _marks(len(finals)) + "))")
        sql += " ORDER BY s.created_at, s.message_id LIMIT ?"

        def work(cursor):
            cursor.execute(self._q(sql), (since, until, "%@%", *finals, int(limit)))
            return cursor.fetchall()

        return [{"MessageId": message_id, "Sender": sender, "Recipients": json.loads(recipients),
                 "CreatedAt": float(created_at)}
                for message_id, sender, recipients, created_at in self._run(work)]

    # -- events -------------------------------------------------------------------------------
    def insert_events(self, rows: list[dict]) -> int:
        """Store events, skipping any whose event_id is already stored (the key decides, so
        concurrent deliveries of one event end as one row). All rows or none: one transaction.
        A callback without an address has `email` "" (the column is NOT NULL; message_events
        gives it back as None). Returns how many rows were new."""
        unique: dict[str, tuple] = {}
        for row in rows:
            if row["event_id"] not in unique:
                email = row["email"]
                unique[row["event_id"]] = (
                    row["event_id"], row["message_id"], email.lower() if isinstance(email, str) else email,
                    row["event"], row["event_time"], _json(row["details"]), row["raw"], int(bool(row["polled"])),
                    row["stored_at"], row["expires_at"], row.get("smtp_message_id"))
        if not unique:
            return 0
        # Key order: two batches sharing events lock them in the same order, so they cannot deadlock.
        values = [unique[event_id] for event_id in sorted(unique)]

        def work(cursor):
            new = 0
            for start in range(0, len(values), _CHUNK):
                chunk = values[start:start + _CHUNK]
                cursor.execute(self._insert_events_sql(len(chunk)), tuple(value for row in chunk for value in row))
                new += max(cursor.rowcount, 0)
            return new

        # A single chunk is one statement, atomic by itself: no BEGIN/COMMIT round trips needed.
        return self._run(work, transaction=len(values) > _CHUNK)

    def _insert_events_sql(self, rows: int) -> str:
        """The multi-row INSERT for `rows` events, built once per size (the webhook's hot path)."""
        key = f"insert_events:{rows}"
        sql = self._sql.get(key)
        if sql is None:
            row_marks = "(" + _marks(len(_EVENT_COLUMNS)) + ")"
            sql = self._sql[key] = self._q("INSERT INTO sesmail_events (" + ", ".join(_EVENT_COLUMNS) + ") VALUES "
                                           + ", ".join([row_marks] * rows) + _SKIP_DUPLICATE_EVENT[self.dialect.name])
        return sql

    def message_events(self, message_id: str) -> list[dict]:
        """A message's events in time order: {"Event", "Email", "Timestamp", **details, "Polled"?};
        `message_id` is SES's MessageId or, for mail sent over SMTP, its Message-ID header."""
        def work(cursor):
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

    # -- suppressions -------------------------------------------------------------------------
    def suppress(self, email: str, scope: str, reason: str, source: str, now: float) -> None:
        """Add (email, scope) to the suppression list; a repeat keeps the first created_at."""
        sql = self._q("INSERT INTO sesmail_suppressions (email, scope, reason, source, created_at)"
                      " VALUES (?, ?, ?, ?, ?)" + _UPSERT_SUPPRESSION[self.dialect.name])
        params = (email.lower(), scope, reason, source, now)

        def work(cursor):
            cursor.execute(sql, params)

        self._run(work)

    def unsuppress(self, email: str, hashed: str) -> int:
        """Remove an address from the suppression list, every scope, and what its erasure kept under
        `hashed` (its rules.address_hash); returns the rows removed."""
        def work(cursor):
            cursor.execute(self._q("DELETE FROM sesmail_suppressions WHERE email IN (?, ?)"),
                           (email.lower(), HASHED_PREFIX + hashed))
            return max(cursor.rowcount, 0)

        return self._run(work)

    def list_suppressions(self, offset: int, limit: int) -> list[dict]:
        """A page of the suppression list; an erased address's entry has no Email (`Erased`)."""
        def work(cursor):
            cursor.execute(self._q("SELECT email, scope, reason, source, created_at FROM sesmail_suppressions"
                                   " ORDER BY email, scope LIMIT ? OFFSET ?"), (int(limit), int(offset)))
            return cursor.fetchall()

        rows = []
        for email, scope, reason, source, created in self._run(work):
            row = {"Email": email, "Scope": scope, "Reason": reason, "Source": source, "CreatedAt": float(created)}
            if email.startswith(HASHED_PREFIX):
                row.update(Email=None, Erased=True)
            rows.append(row)
        return rows

    def suppressions_for(self, emails: list[str], marketing: bool | str, *,
                         hashes: dict[str, str]) -> dict[str, dict]:
        """Which of these addresses may not be mailed: scope "all" always, "marketing" too when the
        mail is marketing, and a topic's scope (`topic:<name>`, given as `marketing`) for marketing
        mail on that topic (docs/topics.md). `hashes` maps each (lower-cased) address to its rules.address_hash, under
        which an erasure keeps its suppressions: both forms are looked up, in one query.
        {email (lower-cased): {"Scope", "Reason"}}; "all" wins over "marketing"."""
        wanted = sorted({email.lower() for email in emails})
        if not wanted:
            return {}

        def work(cursor):
            found: list = []
            by_key: dict[str, str] = {}
            for start in range(0, len(wanted), _SUPPRESSION_CHUNK // 2):  # one query for any real send
                sql, params, owners = self._suppressions_sql(wanted[start:start + _SUPPRESSION_CHUNK // 2],
                                                             marketing, hashes)
                cursor.execute(sql, params)
                found.extend(cursor.fetchall())
                by_key.update(owners)
            return self._suppression_result(found, by_key)

        return self._run(work)

    def _suppressions_sql(self, emails: list[str], marketing: bool | str,
                          hashes: dict[str, str]) -> tuple[str, tuple, dict[str, str]]:
        """The lookup of `emails` and their erasure hashes; with {hashed key: address}."""
        wanted = sorted({email.lower() for email in emails})
        scopes: tuple[str, ...] = ("all", "marketing") if marketing else ("all",)
        if isinstance(marketing, str):  # marketing mail on a topic: its topic's unsubscribes too
            scopes += (marketing,)
        by_key = {HASHED_PREFIX + hashes[email]: email for email in wanted if email in hashes}
        keys = [*wanted, *sorted(by_key)]
        return (self._q("SELECT email, scope, reason FROM sesmail_suppressions WHERE email IN (" + _marks(len(keys))
                        + ") AND scope IN (" + _marks(len(scopes)) + ")"), (*keys, *scopes), by_key)

    @staticmethod
    def _suppression_result(rows: list, by_key: dict[str, str]) -> dict[str, dict]:
        result: dict[str, dict] = {}
        for key, scope, reason in rows:
            email = by_key.get(key, key)
            if email not in result or scope == "all":
                result[email] = {"Scope": scope, "Reason": reason}
        return result

    # -- topics and the preference page (docs/topics.md) ------------------------------------
    def suppression_scopes(self, email: str, hashed: str) -> set[str]:
        """Every scope an address is suppressed under, as itself or as its erasure kept it
        (`hashed`: its rules.address_hash)."""
        def work(cursor):
            cursor.execute(self._q("SELECT scope FROM sesmail_suppressions WHERE email IN (?, ?)"),
                           (email.lower(), HASHED_PREFIX + hashed))
            return {row[0] for row in cursor.fetchall()}

        return self._run(work)

    def unsuppress_scopes(self, email: str, hashed: str, scopes: list[str]) -> int:
        """Lift these scopes of an address (and of what its erasure kept); returns the rows removed."""
        if not scopes:
            return 0

        def work(cursor):
            cursor.execute(self._q("DELETE FROM sesmail_suppressions WHERE email IN (?, ?) AND scope IN ("
                                   + _marks(len(scopes)) + ")"), (email.lower(), HASHED_PREFIX + hashed, *scopes))
            return max(cursor.rowcount, 0)

        return self._run(work)

    def sent_to(self, email: str, since: float, until: float) -> str | None:
        """The first MessageId logged in [since, until] with `email` among its recipients: the mail
        an unsubscribe link made at `since` came in (the sent log is short-lived: None after it)."""
        def work(cursor):
            cursor.execute(self._q("SELECT message_id FROM sesmail_sent WHERE created_at >= ? AND created_at <= ?"
                                   f" AND LOWER(recipients) LIKE ? ESCAPE '{_LIKE_ESCAPE}'"
                                   " ORDER BY created_at LIMIT 1"),
                           (since, until, _like_contains(json.dumps(email.lower()))))
            row = cursor.fetchone()
            return row[0] if row else None

        return self._run(work)

    # -- retention ----------------------------------------------------------------------------
    def purge(self, now: float, sent_before: float) -> dict:
        """Delete what has expired (SPEC 5: personal data has an end). Each DELETE by itself, on
        its own index: one long transaction would hold locks against the webhook's inserts."""
        counts = {}
        for name, sql, bound in (
                ("Idempotency", "DELETE FROM sesmail_idempotency WHERE expires_at < ?", now),
                ("Events", "DELETE FROM sesmail_events WHERE expires_at < ?", now),
                ("Sent", "DELETE FROM sesmail_sent WHERE created_at < ?", sent_before),
                ("DigestItems", "DELETE FROM sesmail_digest_items WHERE expires_at < ?", now),
                # A lease's expiry bounds windows that began at most a function's time limit ago.
                ("Leases", "DELETE FROM sesmail_leases WHERE expires_at < ?", now - 3600)):
            def work(cursor, sql=sql, bound=bound):
                cursor.execute(self._q(sql), (bound,))
                return max(cursor.rowcount, 0)

            counts[name] = self._run(work)
        return counts

    def erase_address(self, email: str, hashed: str) -> dict:
        """Delete everything stored about an address, in one transaction: its events, its queued
        digest items, sent-log rows listing it among recipients, idempotency records whose attempt
        names it. Its suppressions are kept, moved under `hashed` (the address's rules.address_hash,
        a keyed hash), so it is still never mailed. Returns the rows removed per kind, and
        `SuppressionsKept`.
        On SQLite the freed bytes are then scrubbed from the files (the dialect's `scrub`)."""
        address = email.lower()
        # Recipients and attempts are JSON text written by json.dumps: the address appears there as
        # its own JSON string, quotes included, so "a@x.io" cannot match "ba@x.io". LOWER(): LIKE is
        # case-insensitive in SQLite only, and an attempt may keep an address as the caller wrote it.
        pattern = _like_contains(json.dumps(address))
        like = f" LIKE ? ESCAPE '{_LIKE_ESCAPE}'"
        keep = self._q("INSERT INTO sesmail_suppressions (email, scope, reason, source, created_at)"
                       " VALUES (?, ?, ?, ?, ?)" + _UPSERT_SUPPRESSION[self.dialect.name])

        def work(cursor):
            cursor.execute(self._q("SELECT scope, reason, source, created_at FROM sesmail_suppressions"
                                   " WHERE email = ?"), (address,))
            kept = cursor.fetchall()
            for scope, reason, source, created in kept:
                cursor.execute(keep, (HASHED_PREFIX + hashed, scope, reason, source, created))
            cursor.execute(self._q("DELETE FROM sesmail_suppressions WHERE email = ?"), (address,))
            counts = {}
            for name, sql, param in (
                    ("Events", "DELETE FROM sesmail_events WHERE email = ?", address),
                    ("DigestItems", "DELETE FROM sesmail_digest_items WHERE email = ?", address),
                    ("Sent", "DELETE FROM sesmail_sent WHERE LOWER(recipients)" + like, pattern),
                    ("Idempotency", "DELETE FROM sesmail_idempotency WHERE LOWER(attempt)" + like, pattern)):
                cursor.execute(self._q(sql), (param,))
                counts[name] = max(cursor.rowcount, 0)
            counts["SuppressionsKept"] = len(kept)
            return counts

        counts = self._run(work, transaction=True)
        scrub = getattr(self.dialect, "scrub", None)
        if scrub is not None:
            self._run(scrub)
        return counts

    # -- batch tasks ----------------------------------------------------------------------------
    def record_task(self, task_id: int, receiver_id: int, client: str, subject: str, owned: bool,
                    now: float) -> None:
        """Log a task SES created; an `owned` list (one we made) is marked as used by it."""
        def work(cursor):
            cursor.execute(self._q("INSERT INTO sesmail_tasks (task_id, receiver_id, client, subject, owned,"
                                   " list_deleted, created_at) VALUES (?, ?, ?, ?, ?, 0, ?)"),
                           (task_id, receiver_id, client, subject[:255], 1 if owned else 0, now))

        try:
            self._run(work)
        except ConstraintViolation:
            pass  # already recorded (an adopted TaskId)
        if owned:
            def mark(cursor):
                cursor.execute(self._q("UPDATE sesmail_lists SET task_id = ? WHERE receiver_id = ?"
                                       " AND task_id IS NULL"), (task_id, receiver_id))

            self._run(mark)

    def known_task_ids(self, task_ids: list[int]) -> set[int]:
        if not task_ids:
            return set()

        def work(cursor):
            cursor.execute(self._q("SELECT task_id FROM sesmail_tasks WHERE task_id IN ("
                                   + ", ".join("?" * len(task_ids)) + ")"), tuple(task_ids))
            return {int(row[0]) for row in cursor.fetchall()}

        return self._run(work)

    def task_client(self, task_id: int) -> str | None:
        """The client whose request created a task, if it is in our task log."""
        def work(cursor):
            cursor.execute(self._q("SELECT client FROM sesmail_tasks WHERE task_id = ?"), (task_id,))
            row = cursor.fetchone()
            return row[0] if row else None

        return self._run(work)

    def owns_list(self, receiver_id: int, client: str) -> bool:
        """Whether sesmail made this recipient list for `client`'s own inline recipients."""
        def work(cursor):
            cursor.execute(self._q("SELECT 1 FROM sesmail_tasks WHERE receiver_id = ? AND client = ? AND owned = 1"),
                           (receiver_id, client))
            return cursor.fetchone() is not None

        return self._run(work)

    def owned_lists(self, limit: int, offset: int = 0) -> list[dict]:
        """Recipient lists we created whose deletion is still due, oldest first (`offset` skips
        the ones whose task is still running)."""
        def work(cursor):
            cursor.execute(self._q("SELECT task_id, receiver_id FROM sesmail_tasks WHERE owned = 1 AND"
                                   " list_deleted = 0 ORDER BY created_at, task_id LIMIT ? OFFSET ?"),
                           (int(limit), int(offset)))
            return [{"TaskId": int(row[0]), "ReceiverId": int(row[1])} for row in cursor.fetchall()]

        return self._run(work)

    def list_deleted(self, task_id: int) -> None:
        """The list of a finished task was deleted at SES."""
        def work(cursor):
            cursor.execute(self._q("UPDATE sesmail_tasks SET list_deleted = 1 WHERE task_id = ?"), (task_id,))
            cursor.execute(self._q("UPDATE sesmail_lists SET deleted = 1 WHERE task_id = ?"), (task_id,))

        self._run(work, transaction=True)

    # -- recipient lists we create --------------------------------------------------------------
    def list_started(self, name: str, client: str, now: float, idem_scope: str | None = None,
                     idem_key: str | None = None) -> None:
        """Record a list about to be created (CreateReceiver, under this unique name): if the reply
        is lost, the cleanup job still knows to look for it. `idem_scope`/`idem_key`: the
        Idempotency-Key of the run, whose doubt may adopt a task on the list while it is pending."""
        def work(cursor):
            cursor.execute(self._q("INSERT INTO sesmail_lists (name, receiver_id, client, idem_scope, idem_key,"
                                   " task_id, deleted, created_at) VALUES (?, NULL, ?, ?, ?, NULL, 0, ?)"),
                           (name, client, idem_scope, idem_key, now))

        self._run(work)

    def list_created(self, name: str, receiver_id: int) -> None:
        """SES named the list: its ReceiverId."""
        def work(cursor):
            cursor.execute(self._q("UPDATE sesmail_lists SET receiver_id = ? WHERE name = ?"), (receiver_id, name))

        self._run(work)

    def list_gone(self, *, name: str | None = None, receiver_id: int | None = None) -> None:
        """The list (by name or ReceiverId) no longer exists at SES: deleted, or never created."""
        column, value = ("name", name) if name is not None else ("receiver_id", receiver_id)

        def work(cursor):
            cursor.execute(self._q(f"UPDATE sesmail_lists SET deleted = 1 WHERE {column} = ?"), (value,))

        self._run(work)

    def unused_lists(self, created_before: float, limit: int, offset: int = 0) -> list[dict]:
        """Lists we created before a time that no recorded task uses and that still exist (as
        far as we know), oldest first: {"Name", "ReceiverId" (None if CreateReceiver's reply was
        lost), "Client", "IdemScope", "IdemKey", "CreatedAt"}."""
        def work(cursor):
            cursor.execute(self._q("SELECT name, receiver_id, client, idem_scope, idem_key, created_at FROM"
                                   " sesmail_lists WHERE created_at < ? AND task_id IS NULL AND deleted = 0"
                                   " ORDER BY created_at, name LIMIT ? OFFSET ?"),
                           (created_before, int(limit), int(offset)))
            return cursor.fetchall()

        return [{"Name": name, "ReceiverId": None if receiver_id is None else int(receiver_id), "Client": client,
                 "IdemScope": scope, "IdemKey": key, "CreatedAt": float(created_at)}
                for name, receiver_id, client, scope, key, created_at in self._run(work)]

    # -- digest items ---------------------------------------------------------------------------
    def queue_digest_items(self, rows: list[dict]) -> None:
        """rows: item_id, digest, email, item (JSON text), created_at, expires_at; all or none."""
        columns = ("item_id", "digest", "email", "item", "state", "attempts", "created_at", "expires_at")

        def work(cursor):
            for start in range(0, len(rows), _CHUNK):
                chunk = rows[start:start + _CHUNK]
                values = [value for row in chunk for value in (
                    row["item_id"], row["digest"], row["email"], row["item"], "queued", 0, row["created_at"],
                    row["expires_at"])]
                cursor.execute(self._q("INSERT INTO sesmail_digest_items (" + ", ".join(columns) + ") VALUES "
                                       + ", ".join(["(" + ", ".join("?" * len(columns)) + ")"] * len(chunk))),
                               tuple(values))

        self._run(work, transaction=True)

    def digest_recipients(self, digest: str, limit: int = 1_000_000) -> list[str]:
        def work(cursor):
            cursor.execute(self._q("SELECT DISTINCT email FROM sesmail_digest_items WHERE digest = ? AND"
                                   " state = 'queued' ORDER BY email LIMIT ?"), (digest, limit))
            return [row[0] for row in cursor.fetchall()]

        return self._run(work)

    def claim_digest_items(self, digest: str, email: str, run: str, now: float) -> list[dict]:
        """Claim a recipient's queued items for a run (one UPDATE: two runs never share an item)
        and return every item that run holds for the recipient, oldest first."""
        def work(cursor):
            cursor.execute(self._q("UPDATE sesmail_digest_items SET state = 'sending', run = ?, claimed_at = ?"
                                   " WHERE digest = ? AND email = ? AND state = 'queued'"), (run, now, digest, email))
            cursor.execute(self._q("SELECT item FROM sesmail_digest_items WHERE digest = ? AND email = ? AND"
                                   " run = ? AND state = 'sending' ORDER BY created_at, item_id"),
                           (digest, email, run))
            return [json.loads(row[0]) for row in cursor.fetchall()]

        return self._run(work, transaction=True)

    def finish_digest_items(self, digest: str, email: str, run: str, state: str, carrier: str) -> None:
        """Mark the run's items for a recipient `sent` (carrier: the MessageId) or `skipped`."""
        def work(cursor):
            cursor.execute(self._q("UPDATE sesmail_digest_items SET state = ?, carrier = ? WHERE digest = ? AND"
                                   " email = ? AND run = ? AND state = 'sending'"),
                           (state, carrier[:255], digest, email, run))

        self._run(work)

    def release_digest_items(self, digest: str, email: str, run: str, failed: bool, max_attempts: int) -> None:
        """Give a recipient's items back for a later run; a failure counts an attempt, and items
        at the cap become `failed` (kept for inspection until they expire)."""
        def work(cursor):
            if failed:
                cursor.execute(self._q(
                    "UPDATE sesmail_digest_items SET state = CASE WHEN attempts + 1 >= ? THEN 'failed' ELSE"
                    " 'queued' END, attempts = attempts + 1, run = NULL, claimed_at = NULL WHERE digest = ? AND"
                    " email = ? AND run = ? AND state = 'sending'"), (max_attempts, digest, email, run))
            else:
                cursor.execute(self._q("UPDATE sesmail_digest_items SET state = 'queued', run = NULL,"
                                       " claimed_at = NULL WHERE digest = ? AND email = ? AND run = ? AND"
                                       " state = 'sending'"), (digest, email, run))

        self._run(work)

    def stale_digest_items(self, digest: str, claimed_before: float) -> list[dict]:
        """(recipient, run) pairs left `sending` by a run that can no longer be running."""
        def work(cursor):
            cursor.execute(self._q("SELECT email, run, MIN(claimed_at) FROM sesmail_digest_items WHERE"
                                   " digest = ? AND state = 'sending' AND claimed_at < ? GROUP BY email, run"),
                           (digest, claimed_before))
            return [{"Email": row[0], "Run": row[1], "ClaimedAt": float(row[2])} for row in cursor.fetchall()]

        return self._run(work)

    def claim_all_digest_items(self, digest: str, run: str, now: float) -> list[tuple[str, dict]]:
        """Claim every queued item of a digest for a run (a digest large enough for recipient lists);
        returns (email, item) for everything the run holds, by recipient then age."""
        def work(cursor):
            cursor.execute(self._q("UPDATE sesmail_digest_items SET state = 'sending', run = ?, claimed_at = ?"
                                   " WHERE digest = ? AND state = 'queued'"), (run, now, digest))
            cursor.execute(self._q("SELECT email, item FROM sesmail_digest_items WHERE digest = ? AND run = ? AND"
                                   " state = 'sending' ORDER BY email, created_at, item_id"), (digest, run))
            return [(row[0], json.loads(row[1])) for row in cursor.fetchall()]

        return self._run(work, transaction=True)

    def finish_digest_emails(self, digest: str, run: str, emails: list[str], state: str, carrier: str) -> None:
        """finish_digest_items for many recipients at once (a list's worth), in chunks."""
        def work(cursor):
            for start in range(0, len(emails), _CHUNK):
                chunk = emails[start:start + _CHUNK]
                cursor.execute(self._q("UPDATE sesmail_digest_items SET state = ?, carrier = ? WHERE digest = ? AND"
                                       " run = ? AND state = 'sending' AND email IN (" + _marks(len(chunk)) + ")"),
                               (state, carrier[:255], digest, run, *chunk))

        self._run(work, transaction=True)
