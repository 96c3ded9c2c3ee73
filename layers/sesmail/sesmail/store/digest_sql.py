"""Digest items: queued -> sending (claimed by one timer run) -> sent / skipped / failed. A claim
is one UPDATE, so two runs never share an item."""

from __future__ import annotations

import json
from typing import Any

from .database import CHUNK, Database, marks

__all__ = ["DigestSql"]


class DigestSql(Database):
    def queue_digest_items(self, rows: list[dict]) -> None:
        """rows: item_id, digest, email, item (JSON text), created_at, expires_at; all or none."""
        columns = ("item_id", "digest", "email", "item", "state", "attempts", "created_at", "expires_at")

        def work(cursor: Any) -> None:
            for start in range(0, len(rows), CHUNK):
                chunk = rows[start:start + CHUNK]
                values = [value for row in chunk for value in (
                    row["item_id"], row["digest"], row["email"], row["item"], "queued", 0, row["created_at"],
                    row["expires_at"])]
                cursor.execute(self._q("INSERT INTO sesmail_digest_items (" + ", ".join(columns) + ") VALUES "
                                       + ", ".join(["(" + marks(len(columns)) + ")"] * len(chunk))),
                               tuple(values))

        self._run(work, transaction=True)

    def digest_recipients(self, digest: str, limit: int = 1_000_000) -> list[str]:
        """The addresses with queued items in a digest, in order."""
        def work(cursor: Any) -> list[str]:
            cursor.execute(self._q("SELECT DISTINCT email FROM sesmail_digest_items WHERE digest = ? AND"
                                   " state = 'queued' ORDER BY email LIMIT ?"), (digest, limit))
            return [row[0] for row in cursor.fetchall()]

        return self._run(work)

    def claim_digest_items(self, digest: str, email: str, run: str, now: float) -> list[dict]:
        """Claim a recipient's queued items for a run (one UPDATE: two runs never share an item)
        and return every item that run holds for the recipient, oldest first."""
        def work(cursor: Any) -> list[dict]:
            cursor.execute(self._q("UPDATE sesmail_digest_items SET state = 'sending', run = ?, claimed_at = ?"
                                   " WHERE digest = ? AND email = ? AND state = 'queued'"), (run, now, digest, email))
            cursor.execute(self._q("SELECT item FROM sesmail_digest_items WHERE digest = ? AND email = ? AND"
                                   " run = ? AND state = 'sending' ORDER BY created_at, item_id"),
                           (digest, email, run))
            return [json.loads(row[0]) for row in cursor.fetchall()]

        return self._run(work, transaction=True)

    def finish_digest_items(self, digest: str, email: str, run: str, state: str, carrier: str) -> None:
        """Mark the run's items for a recipient `sent` (carrier: the MessageId) or `skipped`."""
        self._execute("UPDATE sesmail_digest_items SET state = ?, carrier = ? WHERE digest = ? AND email = ? AND"
                      " run = ? AND state = 'sending'", (state, carrier[:255], digest, email, run))

    def release_digest_items(self, digest: str, email: str, run: str, failed: bool, max_attempts: int) -> None:
        """Give a recipient's items back for a later run; a failure counts an attempt, and items
        at the cap become `failed` (kept for inspection until they expire)."""
        if failed:
            self._execute("UPDATE sesmail_digest_items SET state = CASE WHEN attempts + 1 >= ? THEN 'failed' ELSE"
                          " 'queued' END, attempts = attempts + 1, run = NULL, claimed_at = NULL WHERE digest = ? AND"
                          " email = ? AND run = ? AND state = 'sending'", (max_attempts, digest, email, run))
        else:
            self._execute("UPDATE sesmail_digest_items SET state = 'queued', run = NULL, claimed_at = NULL WHERE"
                          " digest = ? AND email = ? AND run = ? AND state = 'sending'", (digest, email, run))

    def stale_digest_items(self, digest: str, claimed_before: float) -> list[dict]:
        """(recipient, run) pairs left `sending` by a run that can no longer be running."""
        def work(cursor: Any) -> list[dict]:
            cursor.execute(self._q("SELECT email, run, MIN(claimed_at) FROM sesmail_digest_items WHERE"
                                   " digest = ? AND state = 'sending' AND claimed_at < ? GROUP BY email, run"),
                           (digest, claimed_before))
            return [{"Email": row[0], "Run": row[1], "ClaimedAt": float(row[2])} for row in cursor.fetchall()]

        return self._run(work)

    def claim_all_digest_items(self, digest: str, run: str, now: float) -> list[tuple[str, dict]]:
        """Claim every queued item of a digest for a run (a digest large enough for recipient lists);
        returns (email, item) for everything the run holds, by recipient then age."""
        def work(cursor: Any) -> list[tuple[str, dict]]:
            cursor.execute(self._q("UPDATE sesmail_digest_items SET state = 'sending', run = ?, claimed_at = ?"
                                   " WHERE digest = ? AND state = 'queued'"), (run, now, digest))
            cursor.execute(self._q("SELECT email, item FROM sesmail_digest_items WHERE digest = ? AND run = ? AND"
                                   " state = 'sending' ORDER BY email, created_at, item_id"), (digest, run))
            return [(row[0], json.loads(row[1])) for row in cursor.fetchall()]

        return self._run(work, transaction=True)

    def finish_digest_emails(self, digest: str, run: str, emails: list[str], state: str, carrier: str) -> None:
        """finish_digest_items for many recipients at once (a list's worth), in chunks."""
        def work(cursor: Any) -> None:
            for start in range(0, len(emails), CHUNK):
                chunk = emails[start:start + CHUNK]
                cursor.execute(self._q("UPDATE sesmail_digest_items SET state = ?, carrier = ? WHERE digest = ? AND"
                                       " run = ? AND state = 'sending' AND email IN (" + marks(len(chunk)) + ")"),
                               (state, carrier[:255], digest, run, *chunk))

        self._run(work, transaction=True)
