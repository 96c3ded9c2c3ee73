"""The suppression list: addresses SES must not be asked to mail (docs/api.md#send), kept
under a keyed hash once the address is erased (docs/security.md#erasure)."""

from __future__ import annotations

from typing import Any

from .database import Database, marks

__all__ = ["HASHED_PREFIX", "INSERT_SUPPRESSION", "SUPPRESSION_CHUNK", "UPSERT_SUPPRESSION", "SuppressionsSql"]

# An erased address's suppressions are kept under this prefix and a keyed hash of the address
# (addresses.address_hash): no address can start so (it has no colon), and the table keeps no address.
HASHED_PREFIX = "h:"

# A repeated suppression keeps its first created_at; the latest reason and source win.
UPSERT_SUPPRESSION = {
    "sqlite": " ON CONFLICT (email, scope) DO UPDATE SET reason = excluded.reason, source = excluded.source",
    "postgresql": " ON CONFLICT (email, scope) DO UPDATE SET reason = EXCLUDED.reason, source = EXCLUDED.source",
    # VALUES() is deprecated in MySQL 8.0.20+ in favour of a row alias MariaDB lacks; both accept it.
    "mysql": " ON DUPLICATE KEY UPDATE reason = VALUES(reason), source = VALUES(source)",
}
INSERT_SUPPRESSION = ("INSERT INTO sesmail_suppressions (email, scope, reason, source, created_at)"
                      " VALUES (?, ?, ?, ?, ?)")

# Keys per suppression lookup (an address and its erasure hash count two): one query for a send.
SUPPRESSION_CHUNK = 500


class SuppressionsSql(Database):
    def suppress(self, email: str, scope: str, reason: str, source: str, now: float) -> None:
        """Add (email, scope) to the suppression list; a repeat keeps the first created_at."""
        self._execute(INSERT_SUPPRESSION + UPSERT_SUPPRESSION[self.dialect.name],
                      (email.lower(), scope, reason, source, now))

    def unsuppress(self, email: str, hashed: str) -> int:
        """Remove an address from the suppression list, every scope, and what its erasure kept under
        `hashed` (its addresses.address_hash); returns the rows removed."""
        return self._execute("DELETE FROM sesmail_suppressions WHERE email IN (?, ?)",
                             (email.lower(), HASHED_PREFIX + hashed))

    def list_suppressions(self, offset: int, limit: int) -> list[dict]:
        """A page of the suppression list; an erased address's entry has no Email (`Erased`)."""
        def work(cursor: Any) -> list:
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
        mail on that topic (docs/topics.md). `hashes` maps each (lower-cased) address to its
        addresses.address_hash, under which an erasure keeps its suppressions: both forms are looked
        up, in one query.
        {email (lower-cased): {"Scope", "Reason"}}; "all" wins over "marketing"."""
        wanted = sorted({email.lower() for email in emails})
        if not wanted:
            return {}

        def work(cursor: Any) -> dict[str, dict]:
            found: list = []
            by_key: dict[str, str] = {}
            for start in range(0, len(wanted), SUPPRESSION_CHUNK // 2):  # one query for any real send
                sql, params, owners = self._suppressions_sql(wanted[start:start + SUPPRESSION_CHUNK // 2],
                                                             marketing, hashes)
                cursor.execute(sql, params)
                found.extend(cursor.fetchall())
                by_key.update(owners)
            return self._suppression_result(found, by_key)

        return self._run(work)

    # -- topics and the preference page (docs/topics.md) ------------------------------------
    def suppression_scopes(self, email: str, hashed: str) -> set[str]:
        """Every scope an address is suppressed under, as itself or as its erasure kept it
        (`hashed`: its addresses.address_hash)."""
        def work(cursor: Any) -> set[str]:
            cursor.execute(self._q("SELECT scope FROM sesmail_suppressions WHERE email IN (?, ?)"),
                           (email.lower(), HASHED_PREFIX + hashed))
            return {row[0] for row in cursor.fetchall()}

        return self._run(work)

    def unsuppress_scopes(self, email: str, hashed: str, scopes: list[str]) -> int:
        """Lift these scopes of an address (and of what its erasure kept); returns the rows removed."""
        if not scopes:
            return 0
        return self._execute("DELETE FROM sesmail_suppressions WHERE email IN (?, ?) AND scope IN ("
                             + marks(len(scopes)) + ")", (email.lower(), HASHED_PREFIX + hashed, *scopes))

    # -- the lookup, shared with SqlStore.admit ----------------------------------------------
    def _suppressions_sql(self, emails: list[str], marketing: bool | str,
                          hashes: dict[str, str]) -> tuple[str, tuple, dict[str, str]]:
        """The lookup of `emails` and their erasure hashes; with {hashed key: address}."""
        wanted = sorted({email.lower() for email in emails})
        scopes: tuple[str, ...] = ("all", "marketing") if marketing else ("all",)
        if isinstance(marketing, str):  # marketing mail on a topic: its topic's unsubscribes too
            scopes += (marketing,)
        by_key = {HASHED_PREFIX + hashes[email]: email for email in wanted if email in hashes}
        keys = [*wanted, *sorted(by_key)]
        return (self._q("SELECT email, scope, reason FROM sesmail_suppressions WHERE email IN (" + marks(len(keys))
                        + ") AND scope IN (" + marks(len(scopes)) + ")"), (*keys, *scopes), by_key)

    @staticmethod
    def _suppression_result(rows: list, by_key: dict[str, str]) -> dict[str, dict]:
        result: dict[str, dict] = {}
        for key, scope, reason in rows:
            email = by_key.get(key, key)
            if email not in result or scope == "all":
                result[email] = {"Scope": scope, "Reason": reason}
        return result
