"""SQLite: the embedded default (one process on a laptop, or one SCF instance with /tmp)."""

from __future__ import annotations

import os
import sqlite3

__all__ = ["SqliteDialect"]


class SqliteDialect:
    name = "sqlite"
    integrity_errors: tuple[type[BaseException], ...] = (sqlite3.IntegrityError,)
    operational_errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
    placeholder = "?"
    text_type = "TEXT"
    real_type = "REAL"
    key_type = "TEXT"

    def __init__(self, url: str) -> None:
        # sqlite:///relative/path or sqlite:////absolute/path (SPEC 3.1)
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if not path:
            raise ValueError("SESMAIL_DATABASE_URL: a sqlite URL needs a path, e.g. sqlite:///sesmail.db")
        self.path = path

    def connect(self):
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        # Autocommit (a transaction only for migrations, with begin()). A writer waits up to 10 s
        # for another (the local stack runs several functions on one file).
        connection = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
        # WAL with synchronous=NORMAL: a commit costs no fsync, and readers never block writers.
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    def begin(self, connection) -> None:
        # Take the write lock at once, so a read-then-write transaction cannot be overtaken.
        connection.execute("BEGIN IMMEDIATE")
