"""SQLite: the embedded default (one process on a laptop, or one SCF instance with /tmp)."""

from __future__ import annotations

import os
import sqlite3
import time

__all__ = ["SqliteDialect"]

_BUSY_TIMEOUT_S = 10  # a writer waits this long for another (the local stack shares one file)
_SCRUB_S = 2.0  # how long an erasure's checkpoint waits for readers of older snapshots


class SqliteDialect:
    name = "sqlite"
    placeholder = "?"
    # OSError: the file's folder cannot be created (a read-only or full disk) is an outage too.
    errors: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)

    def __init__(self, url: str) -> None:
        # sqlite:///relative/path or sqlite:////absolute/path (docs/configuration.md#environment-variables)
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if not path:
            raise ValueError("SESMAIL_DATABASE_URL: a sqlite URL needs a path, e.g. sqlite:///sesmail.db")
        self.path = path

    def connect(self):
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        # Autocommit (a transaction only where begin() opens one).
        connection = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None,
                                     check_same_thread=False)
        try:
            self._use_wal(connection)
            connection.execute("PRAGMA synchronous=NORMAL")
            # Deleted and overwritten rows are zeroed, not left in free space: an erased address
            # must not stay readable in the file (some builds have this on by default, not all).
            connection.execute("PRAGMA secure_delete=ON")
        except BaseException:
            connection.close()
            raise
        return connection

    @staticmethod
    def _use_wal(connection) -> None:
        """WAL with synchronous=NORMAL: a commit costs no fsync, and readers never block writers.
        The mode is stored in the file, so only the first connection to a new file switches it;
        that switch answers "database is locked" at once, without the busy timeout, while another
        connection holds the file (two instances opening a new file together): try again."""
        deadline = time.monotonic() + _BUSY_TIMEOUT_S
        while True:
            try:
                connection.execute("PRAGMA journal_mode=WAL").fetchone()
                return
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    @staticmethod
    def scrub(cursor) -> None:
        """After an erasure: the write-ahead log still holds the pages as they were before it.
        A TRUNCATE checkpoint copies the current pages into the database file (where secure_delete
        has zeroed the deleted rows) and empties the log. A reader of an older snapshot (another
        process on the same file) holds it back: try for a moment, then say so."""
        deadline = time.monotonic() + _SCRUB_S
        while True:
            busy = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy or not busy[0] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if busy and busy[0]:
            from .. import log

            log.warning("the SQLite write-ahead log could not be emptied after an erasure: another connection"
                        " is reading; the next checkpoint empties it")

    def begin(self, connection) -> None:
        # Take the write lock at once, so a read-then-write transaction cannot be overtaken.
        connection.execute("BEGIN IMMEDIATE")

    # DDL is transactional here: the whole migration runs under one write lock and commits or not.
    def lock_schema(self, connection) -> None:
        self.begin(connection)

    def unlock_schema(self, connection, commit: bool) -> None:
        if commit:
            connection.commit()
        else:
            try:
                connection.rollback()
            except sqlite3.Error:
                pass  # the failure that brought us here is the one to report

    @staticmethod
    def is_integrity(exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError)

    @staticmethod
    def is_retryable(exc: BaseException) -> bool:
        return False  # SQLite waits for its lock (the busy timeout) instead of breaking deadlocks

    @staticmethod
    def already_exists(exc: BaseException) -> bool:
        # Never half-migrated (the migration is one transaction), but a version row reset by hand
        # replays ALTER TABLE … ADD COLUMN, which SQLite cannot make conditional.
        return isinstance(exc, sqlite3.OperationalError) and "duplicate column name" in str(exc)
