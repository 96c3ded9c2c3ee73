"""The store as the layer sees it: one Protocol per concern, and `Store`, all of them together.

A caller names the narrowest protocol it uses (`leases.acquire` takes a LeaseStore, idempotency an
IdempotencyStore), so what a module may touch is written in its signature, and a test may hand it
any object with those methods. `sql.SqlStore` implements every one, on SQLite, PostgreSQL and MySQL.
Times are Unix seconds (floats); addresses are stored lower-cased. A store that cannot reach its
database raises errors.StoreUnavailable (503), from any method.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

__all__ = ["DigestStore", "EventStore", "IdempotencyStore", "LeaseStore", "RetentionStore", "ScheduleStore", "SentLog",
           "StatsStore", "Store", "SuppressionStore", "TaskStore"]


class IdempotencyStore(Protocol):
    """Idempotency-Key records, keyed by (scope, key), each with a version for compare-and-swap."""

    def idem_get(self, scope: str, key: str) -> dict | None: ...

    def idem_insert(self, record: dict) -> bool:
        """False when the key holds a record already."""
        ...

    def idem_update(self, scope: str, key: str, version: int, **fields: Any) -> bool:
        """False when the record is no longer at `version`."""
        ...

    def idem_delete(self, scope: str, key: str, version: int) -> bool: ...


class LeaseStore(Protocol):
    """Recipient leases: one attempt at a time per sender and recipient (sesmail.leases)."""

    def take_leases(self, keys: list[str], owner: str, until: float,
                    free_before: float) -> tuple[float, bool] | None:
        """None when every lease is now `owner`'s; else (blocked until, in flight) and none kept."""
        ...

    def admit(self, emails: list[str], marketing: bool | str, hashes: dict[str, str], keys: list[str], owner: str,
              until: float, free_before: float, guard: tuple[str, int] | None = None) -> tuple:
        """(SuppressionStore.suppressions_for, take_leases) in one round trip where the database can;
        with `guard` (sender domain, first hour), StatsStore.guard_window's answer third."""
        ...

    def doubt_leases(self, keys: list[str], owner: str, until: float) -> None: ...

    def release_leases(self, keys: list[str], owner: str, window_start: float) -> None: ...


class SuppressionStore(Protocol):
    """Addresses SES must not be asked to mail, per scope ("all", "marketing")."""

    def suppress(self, email: str, scope: str, reason: str, source: str, now: float) -> None: ...

    def unsuppress(self, email: str, hashed: str) -> int: ...

    def list_suppressions(self, offset: int, limit: int) -> list[dict]: ...

    def suppressions_for(self, emails: list[str], marketing: bool | str, *,
                         hashes: dict[str, str]) -> dict[str, dict]:
        """{address: {"Scope", "Reason"}} for the addresses that may not be mailed; `marketing` is
        a topic's scope (`topic:<name>`) for marketing mail on a topic (docs/topics.md)."""
        ...

    def suppression_scopes(self, email: str, hashed: str) -> set[str]: ...

    def unsuppress_scopes(self, email: str, hashed: str, scopes: list[str]) -> int: ...


class SentLog(Protocol):
    """Every MessageId SES gave us, with its client, sender, recipients and Idempotency-Key."""

    def record_sent(self, message_id: str, client: str, sender: str, recipients: list[str], now: float,
                    idem_ref: str | None = None, release: tuple[list[str], str, float] | None = None,
                    template_id: int | None = None) -> bool:
        """False when the MessageId was logged already; `release` gives leases back with it. A
        mail logged is counted in the statistics (StatsStore)."""
        ...

    def sent_ref(self, message_id: str) -> str | None: ...

    def sent_for_ref(self, idem_ref: str, since: float) -> str | None: ...

    def sent_owner(self, message_id: str) -> str | None: ...

    def sent_message_ids(self, message_ids: list[str]) -> set[str]: ...

    def unsettled_messages(self, since: float, until: float, final_events: tuple[str, ...],
                           limit: int) -> list[dict]: ...

    def sent_to(self, email: str, since: float, until: float) -> str | None: ...


class EventStore(Protocol):
    """Delivery events, one row per distinct event (events.normalise builds the rows)."""

    def insert_events(self, rows: list[dict]) -> int:
        """How many rows were new; duplicates are skipped."""
        ...

    def message_events(self, message_id: str) -> list[dict]: ...


class TaskStore(Protocol):
    """BatchSendEmail tasks we started, and the recipient lists we created for them."""

    def record_task(self, task_id: int, receiver_id: int, client: str, subject: str, owned: bool,
                    now: float) -> None: ...

    def known_task_ids(self, task_ids: list[int]) -> set[int]: ...

    def task_client(self, task_id: int) -> str | None: ...

    def owns_list(self, receiver_id: int, client: str) -> bool: ...

    def owned_lists(self, limit: int, offset: int = 0) -> list[dict]: ...

    def list_deleted(self, task_id: int) -> None: ...

    def list_started(self, name: str, client: str, now: float, idem_scope: str | None = None,
                     idem_key: str | None = None) -> None: ...

    def list_created(self, name: str, receiver_id: int) -> None: ...

    def list_gone(self, *, name: str | None = None, receiver_id: int | None = None) -> None: ...

    def unused_lists(self, created_before: float, limit: int, offset: int = 0) -> list[dict]: ...


class ScheduleStore(Protocol):
    """Scheduled and recurring topic batches sesmail fires itself, and their recipients."""

    def add_schedule(self, schedule: dict, recipients: list[dict]) -> None: ...

    def get_schedule(self, schedule_id: str) -> dict | None: ...

    def schedule_recipients(self, schedule_id: str) -> list[dict]: ...

    def due_schedules(self, now: float, limit: int) -> list[dict]: ...

    def update_schedule(self, schedule_id: str, version: int, **fields: Any) -> bool:
        """False when the schedule is no longer at `version`."""
        ...


class DigestStore(Protocol):
    """Digest items: queued, claimed by one run, then sent, skipped or failed."""

    def queue_digest_items(self, rows: list[dict]) -> None: ...

    def digest_recipients(self, digest: str, limit: int = 1_000_000) -> list[str]: ...

    def claim_digest_items(self, digest: str, email: str, run: str, now: float) -> list[dict]: ...

    def finish_digest_items(self, digest: str, email: str, run: str, state: str, carrier: str) -> None: ...

    def release_digest_items(self, digest: str, email: str, run: str, failed: bool, max_attempts: int) -> None: ...

    def stale_digest_items(self, digest: str, claimed_before: float) -> list[dict]: ...

    def claim_all_digest_items(self, digest: str, run: str, now: float) -> list[tuple[str, dict]]: ...

    def finish_digest_emails(self, digest: str, run: str, emails: list[str], state: str, carrier: str) -> None: ...


class RetentionStore(Protocol):
    """The end of what is kept: expired rows, and one address on request."""

    def purge(self, now: float, sent_before: float) -> dict: ...

    def erase_address(self, email: str, hashed: str) -> dict: ...


class StatsStore(Protocol):
    """The statistics' aggregates and the reputation guard's hourly buckets and states
    (docs/deliverability.md)."""

    def ingest_events(self, rows: list[dict], facts: Callable[[], list[tuple]]) -> tuple[int, int]:
        """EventStore.insert_events, and the aggregates for the facts `facts()` returns
        (sesmail.stats.facts; asked for only when counted at once): (new events, hard bounces and
        spam reports counted)."""
        ...

    def fold_counts(self) -> int:
        """Count what is stored but not counted yet (SQLite counts most events in batches)."""
        ...

    def count_sent(self, sender: str, template_id: int | None, count: int, now: float) -> None: ...

    def stats_rows(self, first_day: int, last_day: int, by: str) -> list[tuple]: ...

    def guard_window(self, domain: str, since_hour: int) -> dict[str, dict]: ...

    def guard_overview(self, since_hour: int) -> tuple[dict[str, dict], dict[str, tuple[bool, float]]]: ...

    def guard_flip(self, domain: str, tripped: bool, now: float) -> bool: ...

    def guard_lift(self, domain: str, until: float, now: float) -> bool: ...


class Store(IdempotencyStore, LeaseStore, SuppressionStore, SentLog, EventStore, TaskStore, ScheduleStore,
            DigestStore, RetentionStore, StatsStore, Protocol):
    """Every concern over one database connection (what `open_store` returns)."""

    def close(self) -> None:
        """Close the connection; the next call opens it again."""
        ...
