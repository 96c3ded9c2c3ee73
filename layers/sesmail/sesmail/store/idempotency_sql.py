"""Idempotency-Key records: claimed by an INSERT on (scope, key), then changed by compare-and-swap
on a version column (docs/reliability.md#idempotency-keys)."""

from __future__ import annotations

import json
from typing import Any

from .database import ConstraintViolation, Database, marks

__all__ = ["IDEM_COLUMNS", "IdempotencySql"]

IDEM_COLUMNS = ("scope", "idem_key", "fingerprint", "state", "status", "response", "attempt",
                "created_at", "updated_at", "expires_at", "version")


class IdempotencySql(Database):
    def idem_get(self, scope: str, key: str) -> dict | None:
        def work(cursor: Any) -> Any:
            cursor.execute(self._q("SELECT " + ", ".join(IDEM_COLUMNS)
                                   + " FROM sesmail_idempotency WHERE scope = ? AND idem_key = ?"),
                           (scope, key))
            return cursor.fetchone()

        row = self._run(work)
        if not row:
            return None
        record = dict(zip(IDEM_COLUMNS, row))
        if record["attempt"]:
            record["attempt"] = json.loads(record["attempt"])
        return record

    def idem_insert(self, record: dict) -> bool:
        """Claim a key: False when a record already exists (the unique key decides, atomically)."""
        values = tuple(json.dumps(record[c]) if c == "attempt" else record[c] for c in IDEM_COLUMNS)
        try:
            self._execute("INSERT INTO sesmail_idempotency (" + ", ".join(IDEM_COLUMNS)
                          + ") VALUES (" + marks(len(IDEM_COLUMNS)) + ")", values)
        except ConstraintViolation:
            return False
        return True

    def idem_update(self, scope: str, key: str, version: int, **fields: Any) -> bool:
        """Compare-and-swap: apply `fields` only if the record is still at `version`."""
        if "attempt" in fields:
            fields["attempt"] = json.dumps(fields["attempt"])
        names = sorted(fields)
        return self._execute("UPDATE sesmail_idempotency SET " + ", ".join(f"{n} = ?" for n in names)
                             + ", version = ? WHERE scope = ? AND idem_key = ? AND version = ?",
                             (*(fields[n] for n in names), version + 1, scope, key, version)) == 1

    def idem_delete(self, scope: str, key: str, version: int) -> bool:
        return self._execute("DELETE FROM sesmail_idempotency WHERE scope = ? AND idem_key = ? AND version = ?",
                             (scope, key, version)) == 1
