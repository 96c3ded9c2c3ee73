"""The SES emulator's state in SQLite: mails, recipients, events, templates, senders, lists, tasks.

A file under the stack's data dir (`make dev`), so sent mail and recipient lists survive a
restart as they would at SES; `:memory:` for in-process tests. One connection shared by the
server threads and the delivery worker, serialised by one lock: the emulator's load is a
developer's laptop, and SQLite serialises writers anyway. Only SQL lives here; what the rows mean
is the action modules' business (`ses_account` and the families `ses_actions` gathers).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Optional

__all__ = ["MailStore"]

SCHEMA_VERSION = 2  # 2: senders.smtp_password, blacklist_changes
SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    action TEXT NOT NULL,
    task_id INTEGER,
    request_time REAL NOT NULL,
    sender TEXT NOT NULL,
    subject TEXT NOT NULL,
    template_id INTEGER,
    smtp_id TEXT NOT NULL,
    params TEXT NOT NULL,
    source TEXT NOT NULL,
    mime BLOB
);
CREATE TABLE IF NOT EXISTS rcpts (
    message_id TEXT NOT NULL,
    email TEXT NOT NULL,
    email_lc TEXT NOT NULL,
    request_time REAL NOT NULL,
    send_status INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS rcpts_email ON rcpts (email_lc, request_time);
CREATE INDEX IF NOT EXISTS rcpts_time ON rcpts (request_time);
CREATE INDEX IF NOT EXISTS rcpts_message ON rcpts (message_id);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL,
    email TEXT NOT NULL,
    event TEXT NOT NULL,
    due REAL NOT NULL,
    payload TEXT NOT NULL,
    callback TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS events_message ON events (message_id);
CREATE INDEX IF NOT EXISTS events_pending ON events (callback, next_try);
CREATE TABLE IF NOT EXISTS templates (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    html TEXT NOT NULL,
    text TEXT NOT NULL,
    origin TEXT NOT NULL,
    created REAL NOT NULL,
    approve_at REAL NOT NULL,
    status INTEGER,
    reason TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS senders (
    address TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created REAL NOT NULL,
    smtp_password TEXT
);
CREATE TABLE IF NOT EXISTS blacklist_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL,
    email_lc TEXT NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS receivers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    created REAL NOT NULL,
    ready_at REAL,
    count INTEGER NOT NULL DEFAULT 0,
    invalid INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS receiver_details (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    receiver_id INTEGER NOT NULL,
    email TEXT NOT NULL,
    template_data TEXT NOT NULL,
    created REAL NOT NULL,
    status INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS receiver_details_list ON receiver_details (receiver_id, id);
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_type INTEGER NOT NULL,
    status INTEGER NOT NULL,
    receiver_id INTEGER NOT NULL,
    receivers_name TEXT NOT NULL,
    params TEXT NOT NULL,
    template TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    next_run REAL,
    cursor INTEGER NOT NULL DEFAULT 0,
    request_count INTEGER NOT NULL DEFAULT 0,
    send_count INTEGER NOT NULL DEFAULT 0,
    cache_count INTEGER NOT NULL DEFAULT 0,
    err TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS tasks_due ON tasks (status, next_run);
"""

# Where API-created templates start numbering, so a repo template added later keeps its ID.
FIRST_API_TEMPLATE_ID = 1000


def _like(term: str) -> str:
    """A LIKE pattern matching `term` anywhere, its own `%`, `_` and `\\` taken literally."""
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class MailStore:
    def __init__(self, path: Optional[str] = None) -> None:
        self.path = path or ":memory:"
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        with self._lock:
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"{self.path} was written by a newer sesmail (schema {version})")
            self._db.executescript(SCHEMA)
            if version < 2:  # a data dir of schema 1 has senders without the SMTP password
                columns = {row[1] for row in self._db.execute("PRAGMA table_info(senders)")}
                if "smtp_password" not in columns:
                    self._db.execute("ALTER TABLE senders ADD COLUMN smtp_password TEXT")
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _all(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    def _one(self, sql: str, args: Iterable[Any] = ()) -> Optional[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchone()

    def _run(self, sql: str, args: Iterable[Any] = ()) -> int:
        with self._lock:
            cursor = self._db.execute(sql, tuple(args))
            return int(cursor.lastrowid or 0) if sql.lstrip().upper().startswith("INSERT") else cursor.rowcount

    # ---- mails ---------------------------------------------------------------------------------

    def add_mails(self, mails: list[dict[str, Any]], task_id: Optional[int] = None,
                  **task_columns: Any) -> None:
        """Store mails with their recipients and planned events in one transaction.

        Each mail: the `messages` columns plus `rcpts` [(email, send_status)] and `events`
        [(email, event, due, payload, callback)]. A batch task's progress (`task_columns`) is
        saved in the same transaction, so a restart never sends a chunk twice.
        """
        with self.transaction() as db:
            if task_id is not None:
                names = ", ".join(f"{name} = ?" for name in task_columns)
                db.execute(f"UPDATE tasks SET {names} WHERE id = ?", [*task_columns.values(), task_id])
            for mail in mails:
                db.execute(
                    "INSERT INTO messages (message_id, action, task_id, request_time, sender, subject, template_id,"
                    " smtp_id, params, source, mime) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (mail["message_id"], mail["action"], mail.get("task_id"), mail["request_time"], mail["sender"],
                     mail["subject"], mail.get("template_id"), mail["smtp_id"], json.dumps(mail["params"]),
                     json.dumps(mail["source"]), mail.get("mime")))
                db.executemany(
                    "INSERT INTO rcpts (message_id, email, email_lc, request_time, send_status) VALUES (?,?,?,?,?)",
                    [(mail["message_id"], email, email.lower(), mail["request_time"], status)
                     for email, status in mail["rcpts"]])
                self._insert_events(db, mail["message_id"], mail["events"])

    @staticmethod
    def _insert_events(db: sqlite3.Connection, message_id: str, events: list[tuple]) -> None:
        db.executemany(
            "INSERT INTO events (message_id, email, event, due, payload, callback, next_try) VALUES (?,?,?,?,?,?,?)",
            [(message_id, email, event, due, json.dumps(payload), callback, due)
             for email, event, due, payload, callback in events])

    def add_events(self, message_id: str, events: list[tuple]) -> None:
        with self.transaction() as db:
            self._insert_events(db, message_id, events)

    def message(self, key: str) -> Optional[sqlite3.Row]:
        """A mail by page id (digits), SES MessageId, or `latest`."""
        if key == "latest":
            return self._one("SELECT * FROM messages ORDER BY id DESC LIMIT 1")
        if key.isdigit():
            return self._one("SELECT * FROM messages WHERE id = ?", (int(key),))
        return self._one("SELECT * FROM messages WHERE message_id = ?", (key,))

    def messages(self, limit: int, offset: int = 0) -> list[sqlite3.Row]:
        return self._all("SELECT * FROM messages ORDER BY id DESC LIMIT ? OFFSET ?", (limit, offset))

    def message_count(self) -> int:
        row = self._one("SELECT COUNT(*) FROM messages")
        return int(row[0]) if row else 0

    def version(self) -> str:
        """Changes whenever a mail or an event is added or removed (the page polls it)."""
        row = self._one("SELECT (SELECT COALESCE(MAX(id), 0) FROM messages), (SELECT COUNT(*) FROM messages),"
                        " (SELECT COALESCE(MAX(id), 0) FROM events), (SELECT COUNT(*) FROM events)")
        return "-".join(str(v) for v in row) if row else "0"

    def version_at(self, now: float) -> str:
        """`version()`, also changed by an event coming due by `now` (a deferred mail's later
        delivery) and by a callback settling (posted, failed)."""
        with self._lock:
            row = self._db.execute("SELECT (SELECT COUNT(*) FROM events WHERE due <= ?),"
                                   " (SELECT COUNT(*) FROM events WHERE callback != 'pending')", (now,)).fetchone()
            return f"{self.version()}-{row[0]}-{row[1]}"

    def search_messages(self, now: float, *, words: Iterable[str] = (), to: Iterable[str] = (),
                        subject: Iterable[str] = (), sender: Iterable[str] = (), events_all: Iterable[str] = (),
                        events_none: Iterable[str] = (), since_id: int = 0, limit: int = 50,
                        offset: int = 0) -> tuple[int, list[sqlite3.Row]]:
        """(how many match, the page of them newest first). Every condition must hold: each of
        `words` is part of the subject, the sender or a recipient; each of `to`, `subject`, `sender`
        part of that field (case-insensitive for ASCII, as SQLite's LIKE); the mail has an event of
        each name in `events_all` and none of `events_none` that happened by `now`; its id is
        above `since_id`."""
        where = ["m.id > ?"]
        args: list[Any] = [since_id]
        rcpt = "EXISTS (SELECT 1 FROM rcpts r WHERE r.message_id = m.message_id AND r.email_lc LIKE ? ESCAPE '\\')"
        for word in words:
            where.append(f"(m.subject LIKE ? ESCAPE '\\' OR m.sender LIKE ? ESCAPE '\\' OR {rcpt})")
            args += [_like(word), _like(word), _like(word.lower())]
        for column, terms in (("m.subject", subject), ("m.sender", sender)):
            for term in terms:
                where.append(f"{column} LIKE ? ESCAPE '\\'")
                args.append(_like(term))
        for term in to:
            where.append(rcpt)
            args.append(_like(term.lower()))
        happened = "SELECT 1 FROM events e WHERE e.message_id = m.message_id AND e.due <= ?"
        for event in events_all:
            where.append(f"EXISTS ({happened} AND e.event = ?)")
            args += [now, event]
        none = list(events_none)
        if none:
            where.append(f"NOT EXISTS ({happened} AND e.event IN ({','.join('?' * len(none))}))")
            args += [now, *none]
        sql = " AND ".join(where)
        with self._lock:
            total = self._db.execute(f"SELECT COUNT(*) FROM messages m WHERE {sql}", args).fetchone()
            rows = self._db.execute(f"SELECT m.* FROM messages m WHERE {sql} ORDER BY m.id DESC LIMIT ? OFFSET ?",
                                    [*args, limit, offset]).fetchall()
        return int(total[0]), rows

    def newest_id(self) -> int:
        row = self._one("SELECT COALESCE(MAX(id), 0) FROM messages")
        return int(row[0]) if row else 0

    def set_mime(self, row_id: int, mime: bytes) -> None:
        self._run("UPDATE messages SET mime = ? WHERE id = ?", (mime, row_id))

    def sent_requests(self) -> list[sqlite3.Row]:
        return self._all("SELECT message_id, request_time, params FROM messages WHERE action = 'SendEmail'"
                         " ORDER BY id")

    def recipients(self, message_id: str) -> list[sqlite3.Row]:
        return self._all("SELECT * FROM rcpts WHERE message_id = ? ORDER BY rowid", (message_id,))

    def clear_mail(self) -> None:
        with self.transaction() as db:
            for table in ("messages", "rcpts", "events", "blacklist_changes"):
                db.execute(f"DELETE FROM {table}")

    def count_to(self, email_lc: str, since: float) -> int:
        row = self._one("SELECT COUNT(*) FROM rcpts WHERE email_lc = ? AND request_time > ? AND send_status = 0",
                        (email_lc, since))
        return int(row[0]) if row else 0

    def count_between(self, start: float, end: float) -> int:
        row = self._one("SELECT COUNT(*) FROM rcpts WHERE request_time >= ? AND request_time < ?"
                        " AND send_status = 0", (start, end))
        return int(row[0]) if row else 0

    def volume_rows(self, start: float, end: float) -> list[sqlite3.Row]:
        """Every recipient of a mail requested in [start, end), with the mail's sender."""
        return self._all("SELECT r.message_id, r.email_lc, r.request_time, r.send_status, m.sender FROM rcpts r"
                         " JOIN messages m ON m.message_id = r.message_id"
                         " WHERE r.request_time >= ? AND r.request_time < ?", (start, end))

    def volume_events(self, start: float, end: float, now: float) -> list[sqlite3.Row]:
        """The events that happened by `now` to mails requested in [start, end)."""
        return self._all("SELECT message_id, email, event FROM events WHERE due <= ? AND message_id IN"
                         " (SELECT message_id FROM rcpts WHERE request_time >= ? AND request_time < ?)",
                         (now, start, end))

    def status_rows(self, start: float, end: float, message_id: Optional[str], to_lc: Optional[str],
                    limit: int, offset: int) -> list[sqlite3.Row]:
        sql = ("SELECT r.message_id, r.email, r.request_time, r.send_status, m.sender FROM rcpts r"
               " JOIN messages m ON m.message_id = r.message_id WHERE r.request_time >= ? AND r.request_time < ?")
        args: list[Any] = [start, end]
        if message_id:
            sql += " AND r.message_id = ?"
            args.append(message_id)
        if to_lc:
            sql += " AND r.email_lc = ?"
            args.append(to_lc)
        sql += " ORDER BY r.request_time, r.rowid LIMIT ? OFFSET ?"
        return self._all(sql, [*args, limit, offset])

    # ---- events and callbacks ----------------------------------------------------------------------

    def events(self, message_ids: list[str]) -> list[sqlite3.Row]:
        if not message_ids:
            return []
        marks = ",".join("?" * len(message_ids))
        return self._all(f"SELECT * FROM events WHERE message_id IN ({marks}) ORDER BY due, id", message_ids)

    def due_callbacks(self, now: float, limit: int = 100) -> list[sqlite3.Row]:
        return self._all("SELECT * FROM events WHERE callback = 'pending' AND next_try <= ? ORDER BY next_try, id"
                         " LIMIT ?", (now, limit))

    def callback_done(self, event_id: int, state: str, attempts: int, error: Optional[str]) -> None:
        self._run("UPDATE events SET callback = ?, attempts = ?, last_error = ? WHERE id = ?",
                  (state, attempts, error, event_id))

    def callback_retry(self, event_id: int, attempts: int, next_try: float, error: str) -> None:
        self._run("UPDATE events SET attempts = ?, next_try = ?, last_error = ? WHERE id = ?",
                  (attempts, next_try, error, event_id))

    # ---- templates --------------------------------------------------------------------------------

    def put_repo_template(self, template_id: int, name: str, html: str, text: str, now: float) -> None:
        """A template from the repo: approved, and replaced by the file's content on every start."""
        self._run("INSERT INTO templates (id, name, html, text, origin, created, approve_at, status)"
                  " VALUES (?,?,?,?,'repo',?,?,0) ON CONFLICT(id) DO UPDATE SET name = excluded.name,"
                  " html = excluded.html, text = excluded.text, origin = 'repo', approve_at = excluded.approve_at,"
                  " status = 0, reason = ''", (template_id, name, html, text, now, now))

    def create_template(self, name: str, html: str, text: str, now: float, approve_at: float) -> int:
        with self.transaction() as db:
            row = db.execute("SELECT MAX(id) FROM templates").fetchone()
            template_id = max(int(row[0] or 0) + 1, FIRST_API_TEMPLATE_ID)
            db.execute("INSERT INTO templates (id, name, html, text, origin, created, approve_at)"
                       " VALUES (?,?,?,?,'api',?,?)", (template_id, name, html, text, now, approve_at))
        return template_id

    def update_template(self, template_id: int, name: str, html: str, text: str, approve_at: float) -> None:
        self._run("UPDATE templates SET name = ?, html = ?, text = ?, approve_at = ?, status = NULL, reason = ''"
                  " WHERE id = ?", (name, html, text, approve_at, template_id))

    def review_template(self, template_id: int, status: int, reason: str) -> int:
        return self._run("UPDATE templates SET status = ?, reason = ? WHERE id = ?", (status, reason, template_id))

    def template(self, template_id: int) -> Optional[sqlite3.Row]:
        return self._one("SELECT * FROM templates WHERE id = ?", (template_id,))

    def templates(self, limit: int = -1, offset: int = 0) -> list[sqlite3.Row]:
        return self._all("SELECT * FROM templates ORDER BY id LIMIT ? OFFSET ?", (limit, offset))

    def template_count(self) -> int:
        row = self._one("SELECT COUNT(*) FROM templates")
        return int(row[0]) if row else 0

    def delete_template(self, template_id: int) -> int:
        return self._run("DELETE FROM templates WHERE id = ?", (template_id,))

    # ---- senders ----------------------------------------------------------------------------------

    def add_sender(self, address: str, name: str, now: float) -> bool:
        with self._lock:
            cursor = self._db.execute("INSERT OR IGNORE INTO senders (address, name, created) VALUES (?,?,?)",
                                      (address.lower(), name, now))
            return cursor.rowcount == 1

    def sender(self, address: str) -> Optional[sqlite3.Row]:
        return self._one("SELECT * FROM senders WHERE address = ?", (address.lower(),))

    def senders(self) -> list[sqlite3.Row]:
        return self._all("SELECT * FROM senders ORDER BY created, address")

    def delete_sender(self, address: str) -> int:
        return self._run("DELETE FROM senders WHERE address = ?", (address.lower(),))

    def clear_senders(self) -> None:
        self._run("DELETE FROM senders")

    def set_smtp_password(self, address: str, password: str) -> int:
        return self._run("UPDATE senders SET smtp_password = ? WHERE address = ?", (password, address.lower()))

    # ---- the blocklist ----------------------------------------------------------------------------

    def bounces(self, now: float) -> list[sqlite3.Row]:
        """Bounce events that happened by `now`, oldest first (their payload tells hard from soft)."""
        return self._all("SELECT email, due, payload FROM events WHERE event = 'bounce' AND due <= ? ORDER BY due, id",
                         (now,))

    def add_blacklist_change(self, email: str, at: float, kind: str, reason: str = "") -> None:
        """`kind` "add" (listed from `at`) or "remove" (off the list from `at`)."""
        self._run("INSERT INTO blacklist_changes (email, email_lc, at, kind, reason) VALUES (?,?,?,?,?)",
                  (email, email.lower(), at, kind, reason))

    def blacklist_changes(self, now: float) -> list[sqlite3.Row]:
        return self._all("SELECT * FROM blacklist_changes WHERE at <= ? ORDER BY at, id", (now,))

    # ---- recipient lists ----------------------------------------------------------------------------

    def create_receiver(self, name: str, description: str, now: float) -> Optional[int]:
        with self._lock:
            try:
                return self._run("INSERT INTO receivers (name, description, created) VALUES (?,?,?)",
                                 (name, description, now))
            except sqlite3.IntegrityError:
                return None  # the name is taken

    def receiver(self, receiver_id: int) -> Optional[sqlite3.Row]:
        return self._one("SELECT * FROM receivers WHERE id = ?", (receiver_id,))

    def receivers(self, keyword: Optional[str]) -> list[sqlite3.Row]:
        if keyword:
            pattern = "%" + keyword.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            return self._all("SELECT * FROM receivers WHERE name LIKE ? ESCAPE '\\' ORDER BY id DESC", (pattern,))
        return self._all("SELECT * FROM receivers ORDER BY id DESC")

    def add_details(self, receiver_id: int, rows: list[tuple[str, str, int, str]], now: float,
                    ready_at: float) -> None:
        """Append (email, template_data, status, reason) rows; the list is "uploading" until ready_at."""
        with self.transaction() as db:
            db.executemany("INSERT INTO receiver_details (receiver_id, email, template_data, created, status, reason)"
                           " VALUES (?,?,?,?,?,?)", [(receiver_id, e, d, now, s, r) for e, d, s, r in rows])
            invalid = sum(1 for row in rows if row[2] != 1)
            db.execute("UPDATE receivers SET count = count + ?, invalid = invalid + ?, ready_at = ? WHERE id = ?",
                       (len(rows) - invalid, invalid, ready_at, receiver_id))

    def details(self, receiver_id: int, after_id: int, limit: int, valid_only: bool = True) -> list[sqlite3.Row]:
        sql = "SELECT * FROM receiver_details WHERE receiver_id = ? AND id > ?"
        if valid_only:
            sql += " AND status = 1"
        return self._all(sql + " ORDER BY id LIMIT ?", (receiver_id, after_id, limit))

    def detail_page(self, receiver_id: int, email: Optional[str], status: Optional[int], limit: int,
                    offset: int) -> tuple[int, list[sqlite3.Row]]:
        where = "receiver_id = ?"
        args: list[Any] = [receiver_id]
        if email:
            where += " AND email LIKE ?"
            args.append(f"%{email}%")
        if status is not None:
            where += " AND status = ?"
            args.append(status)
        total = self._one(f"SELECT COUNT(*) FROM receiver_details WHERE {where}", args)
        rows = self._all(f"SELECT * FROM receiver_details WHERE {where} ORDER BY id LIMIT ? OFFSET ?",
                         [*args, limit, offset])
        return (int(total[0]) if total else 0), rows

    def delete_receiver(self, receiver_id: int) -> int:
        with self.transaction() as db:
            db.execute("DELETE FROM receiver_details WHERE receiver_id = ?", (receiver_id,))
            return db.execute("DELETE FROM receivers WHERE id = ?", (receiver_id,)).rowcount

    def clear_receivers(self) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM receiver_details")
            db.execute("DELETE FROM receivers")

    # ---- batch tasks --------------------------------------------------------------------------------

    def create_task(self, task: dict[str, Any]) -> int:
        return self._run(
            "INSERT INTO tasks (task_type, status, receiver_id, receivers_name, params, template, created, updated,"
            " next_run, request_count, cache_count) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (task["task_type"], task["status"], task["receiver_id"], task["receivers_name"],
             json.dumps(task["params"]), json.dumps(task["template"]), task["created"], task["created"],
             task["next_run"], task["request_count"], task["request_count"]))

    def task(self, task_id: int) -> Optional[sqlite3.Row]:
        return self._one("SELECT * FROM tasks WHERE id = ?", (task_id,))

    def tasks(self, status: Optional[int], receiver_id: Optional[int], task_type: Optional[int], limit: int,
              offset: int) -> tuple[int, list[sqlite3.Row]]:
        where = "1 = 1"
        args: list[Any] = []
        for column, value in (("status", status), ("receiver_id", receiver_id), ("task_type", task_type)):
            if value is not None:
                where += f" AND {column} = ?"
                args.append(value)
        total = self._one(f"SELECT COUNT(*) FROM tasks WHERE {where}", args)
        rows = self._all(f"SELECT * FROM tasks WHERE {where} ORDER BY created DESC, id DESC LIMIT ? OFFSET ?",
                         [*args, limit, offset])
        return (int(total[0]) if total else 0), rows

    def due_tasks(self, now: float) -> list[sqlite3.Row]:
        return self._all("SELECT * FROM tasks WHERE status IN (1, 5) AND next_run <= ? ORDER BY next_run, id",
                         (now,))

    def update_task(self, task_id: int, **columns: Any) -> None:
        names = ", ".join(f"{name} = ?" for name in columns)
        self._run(f"UPDATE tasks SET {names} WHERE id = ?", [*columns.values(), task_id])

    def clear_tasks(self) -> None:
        self._run("DELETE FROM tasks")
