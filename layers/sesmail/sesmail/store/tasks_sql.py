"""BatchSendEmail tasks we started, and the recipient lists we create for them: a task log resolves
doubt ("not yet in our task log") and scopes task queries; a list is recorded under its unique name
before CreateReceiver is called, so the cleanup job can find and delete every list no task uses."""

from __future__ import annotations

from typing import Any

from .database import ConstraintViolation, Database, marks

__all__ = ["TasksSql"]


class TasksSql(Database):
    # -- batch tasks ----------------------------------------------------------------------------
    def record_task(self, task_id: int, receiver_id: int, client: str, subject: str, owned: bool,
                    now: float) -> None:
        """Log a task SES created; an `owned` list (one we made) is marked as used by it."""
        try:
            self._execute("INSERT INTO sesmail_tasks (task_id, receiver_id, client, subject, owned, list_deleted,"
                          " created_at) VALUES (?, ?, ?, ?, ?, 0, ?)",
                          (task_id, receiver_id, client, subject[:255], 1 if owned else 0, now))
        except ConstraintViolation:
            pass  # already recorded (an adopted TaskId)
        if owned:
            self._execute("UPDATE sesmail_lists SET task_id = ? WHERE receiver_id = ? AND task_id IS NULL",
                          (task_id, receiver_id))

    def known_task_ids(self, task_ids: list[int]) -> set[int]:
        """Which of these TaskIds are in our task log."""
        if not task_ids:
            return set()

        def work(cursor: Any) -> set[int]:
            cursor.execute(self._q("SELECT task_id FROM sesmail_tasks WHERE task_id IN (" + marks(len(task_ids))
                                   + ")"), tuple(task_ids))
            return {int(row[0]) for row in cursor.fetchall()}

        return self._run(work)

    def task_client(self, task_id: int) -> str | None:
        """The client whose request created a task, if it is in our task log."""
        return self._fetch_one("SELECT client FROM sesmail_tasks WHERE task_id = ?", (task_id,))

    def owns_list(self, receiver_id: int, client: str) -> bool:
        """Whether sesmail made this recipient list for `client`'s own inline recipients."""
        return self._fetch_one("SELECT 1 FROM sesmail_tasks WHERE receiver_id = ? AND client = ? AND owned = 1",
                               (receiver_id, client)) is not None

    def owned_lists(self, limit: int, offset: int = 0) -> list[dict]:
        """Recipient lists we created whose deletion is still due, oldest first (`offset` skips
        the ones whose task is still running)."""
        def work(cursor: Any) -> list[dict]:
            cursor.execute(self._q("SELECT task_id, receiver_id FROM sesmail_tasks WHERE owned = 1 AND"
                                   " list_deleted = 0 ORDER BY created_at, task_id LIMIT ? OFFSET ?"),
                           (int(limit), int(offset)))
            return [{"TaskId": int(row[0]), "ReceiverId": int(row[1])} for row in cursor.fetchall()]

        return self._run(work)

    def list_deleted(self, task_id: int) -> None:
        """The list of a finished task was deleted at SES."""
        def work(cursor: Any) -> None:
            cursor.execute(self._q("UPDATE sesmail_tasks SET list_deleted = 1 WHERE task_id = ?"), (task_id,))
            cursor.execute(self._q("UPDATE sesmail_lists SET deleted = 1 WHERE task_id = ?"), (task_id,))

        self._run(work, transaction=True)

    # -- recipient lists we create --------------------------------------------------------------
    def list_started(self, name: str, client: str, now: float, idem_scope: str | None = None,
                     idem_key: str | None = None) -> None:
        """Record a list about to be created (CreateReceiver, under this unique name): if the reply
        is lost, the cleanup job still knows to look for it. `idem_scope`/`idem_key`: the
        Idempotency-Key of the run, whose doubt may adopt a task on the list while it is pending."""
        self._execute("INSERT INTO sesmail_lists (name, receiver_id, client, idem_scope, idem_key, task_id, deleted,"
                      " created_at) VALUES (?, NULL, ?, ?, ?, NULL, 0, ?)", (name, client, idem_scope, idem_key, now))

    def list_created(self, name: str, receiver_id: int) -> None:
        """SES named the list: its ReceiverId."""
        self._execute("UPDATE sesmail_lists SET receiver_id = ? WHERE name = ?", (receiver_id, name))

    def list_gone(self, *, name: str | None = None, receiver_id: int | None = None) -> None:
        """The list (by name or ReceiverId) no longer exists at SES: deleted, or never created."""
        column, value = ("name", name) if name is not None else ("receiver_id", receiver_id)
        self._execute(f"UPDATE sesmail_lists SET deleted = 1 WHERE {column} = ?", (value,))

    def unused_lists(self, created_before: float, limit: int, offset: int = 0) -> list[dict]:
        """Lists we created before a time that no recorded task uses and that still exist (as
        far as we know), oldest first: {"Name", "ReceiverId" (None if CreateReceiver's reply was
        lost), "Client", "IdemScope", "IdemKey", "CreatedAt"}."""
        def work(cursor: Any) -> list:
            cursor.execute(self._q("SELECT name, receiver_id, client, idem_scope, idem_key, created_at FROM"
                                   " sesmail_lists WHERE created_at < ? AND task_id IS NULL AND deleted = 0"
                                   " ORDER BY created_at, name LIMIT ? OFFSET ?"),
                           (created_before, int(limit), int(offset)))
            return cursor.fetchall()

        return [{"Name": name, "ReceiverId": None if receiver_id is None else int(receiver_id), "Client": client,
                 "IdemScope": scope, "IdemKey": key, "CreatedAt": float(created_at)}
                for name, receiver_id, client, scope, key, created_at in self._run(work)]
