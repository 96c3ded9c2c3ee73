"""The schema: versioned migrations, run once per connection when the schema is behind.

Portable on purpose: DOUBLE PRECISION Unix times, VARCHAR keys (MySQL cannot index TEXT without a
length), a unique key wherever a duplicate must be refused. The version table records which steps
ran; a dialect's schema lock makes instances starting together migrate once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .database import Dialect

__all__ = ["DDL", "MIGRATIONS", "SCHEMA_VERSION", "migrate"]

SCHEMA_VERSION = 7

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
        # Idempotency-Key records (docs/reliability.md#idempotency-keys), one per client scope and key.
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
        # Every MessageId SES gave us: resolves doubt (docs/reliability.md#doubt), scopes
        # status queries, and lists the messages whose callbacks may have been lost (reconciliation).
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
        # Addresses SES must not be asked to mail (docs/api.md#send); the key's first column serves the
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
        # Recipient leases (docs/reliability.md#leases): while one attempt to a
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
    [
        # Statistics and the reputation guard (store/stats.py, docs/deliverability.md): the
        # TemplateID in the sent log (what a callback's statistics are filed under); per Beijing day
        # (day number since 1970-01-01 in UTC+8), sender address and TemplateID (0: unknown) what was
        # sent and what became of it; per hour (Unix hour number) and sender domain what the guard
        # weighs; the marks of what was counted (a keyed hash per metric and mail, no address); and
        # per domain (and "*", the account) the guard's announced state and an admin's lift.
        "ALTER TABLE sesmail_sent ADD {add_column}template_id BIGINT",
        """CREATE TABLE IF NOT EXISTS sesmail_stats_daily (
            day INTEGER NOT NULL,
            sender VARCHAR(320) NOT NULL,
            template_id BIGINT NOT NULL,
            sent BIGINT NOT NULL,
            delivered BIGINT NOT NULL,
            hard_bounces BIGINT NOT NULL,
            soft_bounces BIGINT NOT NULL,
            complaints BIGINT NOT NULL,
            unsubscribes BIGINT NOT NULL,
            opens BIGINT NOT NULL,
            clicks BIGINT NOT NULL,
            PRIMARY KEY (day, sender, template_id)){options}""",
        """CREATE TABLE IF NOT EXISTS sesmail_stats_hourly (
            hour BIGINT NOT NULL,
            domain VARCHAR(255) NOT NULL,
            sent BIGINT NOT NULL,
            hard_bounces BIGINT NOT NULL,
            complaints BIGINT NOT NULL,
            PRIMARY KEY (hour, domain)){options}""",
        """CREATE TABLE IF NOT EXISTS sesmail_stats_marks (
            mark CHAR(32) NOT NULL PRIMARY KEY,
            expires_at DOUBLE PRECISION NOT NULL){options}""",
        "CREATE INDEX {if_not_exists}sesmail_stats_marks_expires ON sesmail_stats_marks (expires_at)",
        """CREATE TABLE IF NOT EXISTS sesmail_guard (
            domain VARCHAR(255) NOT NULL PRIMARY KEY,
            tripped INTEGER NOT NULL,
            lifted_until DOUBLE PRECISION NOT NULL,
            changed_at DOUBLE PRECISION NOT NULL){options}""",
    ],
    [
        # SQLite counts most events in batches (store/stats.py, fold_counts): the rowid of the last
        # event counted. Every event already stored was counted as it was stored.
        "{fold_table}",
        "{fold_start}",
    ],
    [
        # Scheduled and recurring topic batches that sesmail fires itself (docs/topics.md#schedules):
        # SES cannot take a reader out of a list it holds, so the list is built at each firing. One
        # row per schedule (its batch without recipients, TaskType 1; `next_at` the firing due next;
        # `version` for compare-and-swap between instances), and its recipients one row each, so an
        # erasure can delete an address and a schedule that ends drops them at once.
        """CREATE TABLE IF NOT EXISTS sesmail_schedules (
            schedule_id VARCHAR(40) NOT NULL PRIMARY KEY,
            client VARCHAR(64) NOT NULL,
            task_type INTEGER NOT NULL,
            interval_s DOUBLE PRECISION,
            payload {text} NOT NULL,
            state VARCHAR(16) NOT NULL,
            next_at DOUBLE PRECISION,
            fired INTEGER NOT NULL,
            missed INTEGER NOT NULL,
            failed INTEGER NOT NULL,
            last_fire_at DOUBLE PRECISION,
            last_result {text},
            version INTEGER NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL){options}""",
        "CREATE INDEX {if_not_exists}sesmail_schedules_due ON sesmail_schedules (state, next_at)",
        """CREATE TABLE IF NOT EXISTS sesmail_schedule_recipients (
            schedule_id VARCHAR(40) NOT NULL,
            seq INTEGER NOT NULL,
            email VARCHAR(320) NOT NULL,
            data {text} NOT NULL,
            PRIMARY KEY (schedule_id, seq)){options}""",
    ],
]

DDL = {
    "sqlite": {"text": "TEXT", "options": "", "if_not_exists": "IF NOT EXISTS ", "add_column": "COLUMN ",
               "widen_scope": "SELECT 1",
               "fold_table": "CREATE TABLE IF NOT EXISTS sesmail_stats_folded (id INTEGER NOT NULL PRIMARY KEY,"
                             " last_event INTEGER NOT NULL)",
               # Only a database that already holds events needs a position (a new one starts at 0).
               "fold_start": "INSERT OR IGNORE INTO sesmail_stats_folded (id, last_event)"
                             " SELECT 1, last FROM (SELECT MAX(rowid) AS last FROM sesmail_events)"
                             " WHERE last IS NOT NULL"},
    "postgresql": {"text": "TEXT", "options": "", "if_not_exists": "IF NOT EXISTS ",
                   "add_column": "COLUMN IF NOT EXISTS ",
                   "widen_scope": "ALTER TABLE sesmail_suppressions ALTER COLUMN scope TYPE VARCHAR(48)",
                   "fold_table": "SELECT 1", "fold_start": "SELECT 1"},
    # utf8mb4_bin: keys compare byte for byte (the server's default collation is case-insensitive,
    # which would merge two Idempotency-Keys differing in case). DYNAMIC rows allow index keys of
    # 3072 bytes: VARCHAR(320) in utf8mb4 is 1280.
    "mysql": {"text": "MEDIUMTEXT", "if_not_exists": "", "add_column": "COLUMN ",
              "widen_scope": "ALTER TABLE sesmail_suppressions MODIFY scope VARCHAR(48) NOT NULL",
              "fold_table": "SELECT 1", "fold_start": "SELECT 1",
              "options": " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC"},
}


def migrate(dialect: Dialect, connection: Any) -> None:
    """Create or upgrade the schema. The common case (already current) costs one SELECT; the rest
    runs under the dialect's schema lock, so instances starting together migrate once."""
    cursor = connection.cursor()
    if (_schema_version(dialect, cursor) or 0) >= SCHEMA_VERSION:
        return  # a newer schema than ours is a later release's, additive: use it
    ddl = DDL[dialect.name]
    dialect.lock_schema(connection)
    done = False
    try:
        cursor.execute(_SCHEMA_TABLE.format(**ddl))
        version = _schema_version(dialect, cursor, missing_ok=False)
        if version is None:
            cursor.execute("INSERT INTO sesmail_schema (id, version) VALUES (1, 0)")
            version = 0
        for step in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[step]:
                try:
                    cursor.execute(statement.format(**ddl))
                except dialect.errors as exc:
                    # Only where DDL is not transactional (MySQL) can a step be half done.
                    if not dialect.already_exists(exc):
                        raise
            cursor.execute(f"UPDATE sesmail_schema SET version = {step + 1}")
        done = True
    finally:
        dialect.unlock_schema(connection, commit=done)


def _schema_version(dialect: Dialect, cursor: Any, missing_ok: bool = True) -> int | None:
    try:
        cursor.execute("SELECT version FROM sesmail_schema")
    except dialect.errors:
        if not missing_ok:
            raise
        return None  # no schema yet (in autocommit, this failure leaves no transaction behind)
    row = cursor.fetchone()
    return None if row is None else int(row[0])
