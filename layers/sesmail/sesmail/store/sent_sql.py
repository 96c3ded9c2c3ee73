"""The sent log: every MessageId SES gave us. It resolves doubt (an adopted status row is an
insert-if-absent), scopes status queries to their client, and lists the messages whose callbacks
may have been lost (docs/reliability.md#callbacks)."""

from __future__ import annotations

import json
from typing import Any

from .database import marks
from .leases_sql import GIVE_BACK
from .retention_sql import _LIKE_ESCAPE, _like_contains
from .stats import StatsSql

__all__ = ["SentLogSql"]

_INSERT = ("INSERT INTO sesmail_sent (message_id, client, sender, recipients, idem_ref, created_at, template_id)"
           " VALUES (?, ?, ?, ?, ?, ?, ?)")


class SentLogSql(StatsSql):
    def record_sent(self, message_id: str, client: str, sender: str, recipients: list[str], now: float,
                    idem_ref: str | None = None, release: tuple[list[str], str, float] | None = None,
                    template_id: int | None = None) -> bool:
        """Log a MessageId SES assigned, if absent: False when it is logged already (so adopting a
        status row is an insert-if-absent: at most one request adopts it). `idem_ref` ties it to
        the Idempotency-Key that sent it; `release` = (lease keys, owner, window start) are given
        back with it, in the same statement on PostgreSQL. A mail logged is counted in the
        statistics (store/stats.py), in the same statement on PostgreSQL."""
        row = (message_id, client, sender, json.dumps(recipients), idem_ref, now, template_id)
        keys, owner, window_start = release if release else ([], "", 0.0)
        release_sql = GIVE_BACK + marks(len(keys)) + ")"
        name = self.dialect.name

        def work(cursor: Any) -> bool:
            if name == "postgresql":
                released = ("released AS (" + release_sql + "), ") if keys else ""
                counted, counted_params = self._sent_stats_sql("logged", sender, template_id, len(recipients), now)
                cursor.execute(self._q("WITH " + released + "logged AS (" + _INSERT
                                       + " ON CONFLICT (message_id) DO NOTHING RETURNING 1)" + counted
                                       + " SELECT COUNT(*) FROM logged"),
                               (*((window_start, owner, *keys) if keys else ()), *row, *counted_params))
                return int(cursor.fetchone()[0]) == 1
            if name == "mysql":
                try:
                    cursor.execute(self._q(_INSERT), row)
                    inserted = True
                except self.dialect.errors as exc:
                    if not self.dialect.is_integrity(exc):
                        raise
                    inserted = False
            else:
                cursor.execute(self._q(_INSERT + " ON CONFLICT (message_id) DO NOTHING"), row)
                inserted = cursor.rowcount == 1
            if inserted:
                self._count_sent(cursor, sender, template_id, len(recipients), now)
            if keys:
                cursor.execute(self._q(release_sql), (window_start, owner, *keys))
            return inserted

        return self._run(work, transaction=name != "postgresql")

    def sent_ref(self, message_id: str) -> str | None:
        """The Idempotency-Key reference a logged MessageId was recorded under, if any."""
        return self._fetch_one("SELECT idem_ref FROM sesmail_sent WHERE message_id = ?", (message_id,))

    def sent_for_ref(self, idem_ref: str, since: float) -> str | None:
        """The MessageId logged for an Idempotency-Key since a time, if its send was recorded."""
        return self._fetch_one("SELECT message_id FROM sesmail_sent WHERE created_at >= ? AND idem_ref = ?"
                               " ORDER BY created_at DESC", (since, idem_ref))

    def sent_owner(self, message_id: str) -> str | None:
        """The client whose request sent a message, if it is in the sent log."""
        return self._fetch_one("SELECT client FROM sesmail_sent WHERE message_id = ?", (message_id,))

    def sent_message_ids(self, message_ids: list[str]) -> set[str]:
        """Which of these MessageIds are in the sent log."""
        if not message_ids:
            return set()

        def work(cursor: Any) -> set[str]:
            cursor.execute(self._q("SELECT message_id FROM sesmail_sent WHERE message_id IN ("
                                   + marks(len(message_ids)) + ")"), tuple(message_ids))
            return {row[0] for row in cursor.fetchall()}

        return self._run(work)

    def sent_to(self, email: str, since: float, until: float) -> str | None:
        """The first MessageId logged in [since, until] with `email` among its recipients: the mail
        an unsubscribe link made at `since` came in (docs/topics.md; the sent log is short-lived)."""
        def work(cursor: Any) -> str | None:
            cursor.execute(self._q("SELECT message_id FROM sesmail_sent WHERE created_at >= ? AND created_at <= ?"
                                   f" AND LOWER(recipients) LIKE ? ESCAPE '{_LIKE_ESCAPE}'"
                                   " ORDER BY created_at LIMIT 1"),
                           (since, until, _like_contains(json.dumps(email.lower()))))
            row = cursor.fetchone()
            return row[0] if row else None

        return self._run(work)

    def unsettled_messages(self, since: float, until: float, final_events: tuple[str, ...],
                           limit: int) -> list[dict]:
        """Sent messages created in [since, until) with no event named in `final_events`, oldest
        first: those whose callbacks may have been lost (reconciliation)."""
        finals = tuple(final_events)
        # Mail sent over SMTP is logged under its Message-ID (always `id@domain`; SES's MessageIds
        # never hold an "@"): SES's status rows carry SES's own id for it, so polling cannot find it.
        sql = ("SELECT s.message_id, s.sender, s.recipients, s.created_at FROM sesmail_sent s"
               " WHERE s.created_at >= ? AND s.created_at < ? AND s.message_id NOT LIKE ?")
        if finals:
            sql += (" AND NOT EXISTS (SELECT 1 FROM sesmail_events e WHERE e.message_id = s.message_id"
                    " AND e.event IN (" + marks(len(finals)) + "))")
        sql += " ORDER BY s.created_at, s.message_id LIMIT ?"

        def work(cursor: Any) -> list:
            cursor.execute(self._q(sql), (since, until, "%@%", *finals, int(limit)))
            return cursor.fetchall()

        return [{"MessageId": message_id, "Sender": sender, "Recipients": json.loads(recipients),
                 "CreatedAt": float(created_at)}
                for message_id, sender, recipients, created_at in self._run(work)]
