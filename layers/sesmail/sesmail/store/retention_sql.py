"""What the store keeps ends: expired rows purged by the cleanup job, and everything about one
address erased on request (docs/security.md#erasure)."""

from __future__ import annotations

import json
from typing import Any

from .stats import StatsSql
from .suppressions_sql import HASHED_PREFIX, INSERT_SUPPRESSION, UPSERT_SUPPRESSION

__all__ = ["RetentionSql"]

# LIKE escape character: not a backslash, which MySQL string literals would themselves unescape.
_LIKE_ESCAPE = "!"


def _like_contains(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its own wildcards taken literally."""
    for char in (_LIKE_ESCAPE, "%", "_"):
        text = text.replace(char, _LIKE_ESCAPE + char)
    return "%" + text + "%"


class RetentionSql(StatsSql):
    def purge(self, now: float, sent_before: float) -> dict:
        """Delete what has expired (personal data has an end). Each DELETE by itself, on its own
        index: one long transaction would hold locks against the webhook's inserts."""
        counts = {}
        sqlite = self.dialect.name == "sqlite"
        if sqlite:
            self.fold_counts()  # what the expired events add is counted before they go

            def events(cursor: Any) -> int:
                cursor.execute("DELETE FROM sesmail_events WHERE expires_at < ?", (now,))
                deleted = max(cursor.rowcount, 0)
                self._after_deleting_events(cursor)
                return deleted

            counts["Events"] = self._run(events, transaction=True)
        for name, sql, bound in (
                ("Idempotency", "DELETE FROM sesmail_idempotency WHERE expires_at < ?", now),
                *(() if sqlite else (("Events", "DELETE FROM sesmail_events WHERE expires_at < ?", now),)),
                ("Sent", "DELETE FROM sesmail_sent WHERE created_at < ?", sent_before),
                ("DigestItems", "DELETE FROM sesmail_digest_items WHERE expires_at < ?", now),
                # A lease's expiry bounds windows that began at most a function's time limit ago.
                ("Leases", "DELETE FROM sesmail_leases WHERE expires_at < ?", now - 3600),
                # A schedule that ended (its recipients went with it) is kept as long as the sent log.
                ("Schedules", "DELETE FROM sesmail_schedules WHERE state <> 'scheduled' AND updated_at < ?",
                 sent_before)):
            counts[name] = self._execute(sql, (bound,))
        counts.update(self._purge_stats(now))
        return counts

    def erase_address(self, email: str, hashed: str) -> dict:
        """Delete everything stored about an address, in one transaction: its events, its queued
        digest items, its place in schedules' recipients, sent-log rows listing it among
        recipients, idempotency records whose attempt names it. Its suppressions are kept, moved
        under `hashed` (the address's addresses.address_hash, a keyed hash), so it is still never
        mailed. Returns the rows removed per kind, and `SuppressionsKept`.
        On SQLite the freed bytes are then scrubbed from the files (the dialect's `scrub`)."""
        address = email.lower()
        # Recipients and attempts are JSON text written by json.dumps: the address appears there as
        # its own JSON string, quotes included, so "a@x.io" cannot match "ba@x.io". LOWER(): LIKE is
        # case-insensitive in SQLite only, and an attempt may keep an address as the caller wrote it.
        pattern = _like_contains(json.dumps(address))
        like = f" LIKE ? ESCAPE '{_LIKE_ESCAPE}'"
        keep = self._q(INSERT_SUPPRESSION + UPSERT_SUPPRESSION[self.dialect.name])

        def work(cursor: Any) -> dict:
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
                    # kept as the request wrote them: compared lower-cased
                    ("ScheduleRecipients", "DELETE FROM sesmail_schedule_recipients WHERE LOWER(email) = ?", address),
                    ("Sent", "DELETE FROM sesmail_sent WHERE LOWER(recipients)" + like, pattern),
                    ("Idempotency", "DELETE FROM sesmail_idempotency WHERE LOWER(attempt)" + like, pattern)):
                cursor.execute(self._q(sql), (param,))
                counts[name] = max(cursor.rowcount, 0)
            if self.dialect.name == "sqlite":
                self._after_deleting_events(cursor)
            counts["SuppressionsKept"] = len(kept)
            return counts

        self.fold_counts()  # the address's events still count in the statistics, which hold no address
        counts = self._run(work, transaction=True)
        scrub = getattr(self.dialect, "scrub", None)
        if scrub is not None:
            self._run(scrub)
        return counts
