"""Recipient leases: one attempt at a time per sender and recipient
(docs/reliability.md#leases). Taken all or nothing in one upsert; sesmail.leases holds
the rules, this module only the rows."""

from __future__ import annotations

from typing import Any

from .database import Database, marks

__all__ = ["GIVE_BACK", "LeasesSql"]

# Leases given back: free from the given time on (the UPDATE's IN list is completed by the caller).
GIVE_BACK = "UPDATE sesmail_leases SET owner = '', in_doubt = 0, expires_at = ? WHERE owner = ? AND lease_key IN ("


class LeasesSql(Database):
    def take_leases(self, keys: list[str], owner: str, until: float,
                    free_before: float) -> tuple[float, bool] | None:
        """Take every lease in `keys` for `owner` until `until`, all or nothing: a lease is free when
        it is absent, expired by `free_before`, or already `owner`'s. None when all are taken;
        otherwise none is kept and the answer is (when the last lease in the way expires, whether
        one of them is in flight — it may be given back early; one in doubt only expires)."""
        wanted = sorted(set(keys))  # one order for everyone: two takers never wait on each other
        if not wanted:
            return None

        def work(cursor: Any) -> tuple[float, bool] | None:
            sql, params = self._take_sql(wanted, owner, until, free_before)
            cursor.execute(sql, params)
            return self._taken_or_blocked(cursor, self._taken(cursor, wanted, owner), wanted, owner, free_before)

        return self._run(work)

    def doubt_leases(self, keys: list[str], owner: str, until: float) -> None:
        """`owner`'s attempt is in doubt: its leases end at `until` (when its window has passed),
        and nobody waits for them to be given back early."""
        if keys:
            self._execute("UPDATE sesmail_leases SET expires_at = CASE WHEN expires_at > ? THEN ? ELSE expires_at END,"
                          " in_doubt = 1 WHERE owner = ? AND lease_key IN (" + marks(len(keys)) + ")",
                          (until, until, owner, *keys))

    def release_leases(self, keys: list[str], owner: str, window_start: float) -> None:
        """Give `owner`'s leases back after a definite answer; `window_start` is where its window
        began (later attempts' windows must begin after it)."""
        if keys:
            self._execute(GIVE_BACK + marks(len(keys)) + ")", (window_start, owner, *keys))

    # -- the statements, shared with SqlStore.admit ------------------------------------------
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

    def _taken(self, cursor: Any, wanted: list[str], owner: str) -> int:
        """How many of `wanted` the take statement just run made `owner`'s. Elsewhere the row count
        of an upsert counts inserted and updated rows, not the ones its WHERE kept: every row
        counted is a lease now ours. MySQL counts differently: there they are counted."""
        if self.dialect.name != "mysql":
            return int(cursor.rowcount)
        cursor.execute(self._q("SELECT COUNT(*) FROM sesmail_leases WHERE owner = ? AND lease_key IN ("
                               + marks(len(wanted)) + ")"), (owner, *wanted))
        return int(cursor.fetchone()[0])

    def _taken_or_blocked(self, cursor: Any, taken: int, wanted: list[str], owner: str,
                          free_before: float) -> tuple[float, bool] | None:
        if taken == len(wanted):
            return None
        # Give back what this call took (each was free by `free_before`, so that stays true).
        cursor.execute(self._q(GIVE_BACK + marks(len(wanted)) + ")"), (free_before, owner, *wanted))
        cursor.execute(self._q("SELECT MAX(expires_at), MIN(in_doubt) FROM sesmail_leases WHERE owner <> ? AND"
                               " lease_key IN (" + marks(len(wanted)) + ")"), (owner, *wanted))
        row = cursor.fetchone()
        if not row or row[0] is None:
            return 0.0, True  # purged meanwhile: worth another try at once
        return float(row[0]), not row[1]
