"""The store's aggregates: daily statistics and the reputation guard's hourly buckets
(docs/deliverability.md).

Kept up to date as mails are logged (`record_sent`) and events stored (`ingest_events`), never by
scanning raw events: `GET /stats` and the guard read a few hundred rows at most.

- `sesmail_stats_daily`: per Beijing day the mail was sent (day number since 1970-01-01 in UTC+8),
  sender address and TemplateID (0: unknown), how many mails went out and what became of them.
- `sesmail_stats_hourly`: per hour (Unix hour number) the mail was sent and sender domain, mails
  sent, hard bounces and spam reports: the guard's window.
- `sesmail_stats_marks`: one keyed hash per (metric, message, recipient) already counted, so a
  repeated callback, a polled event that a callback already told, or a second open of one mail is
  counted once. It holds no address and expires with the events.
- `sesmail_guard`: per sender domain (and `*`, the account) whether the guard last saw it tripped
  (so each trip and lift is announced once) and until when an admin lifted it.

- `sesmail_stats_folded` (SQLite): how far the events have been counted, by their rowid.

The tables are created by schema.py. On PostgreSQL each write is folded into the statement it
accompanies (a data-modifying WITH): logging a sent mail and storing a callback cost no extra round
trip. On MySQL the same writes run as statements of their own, in the transaction of the write
they accompany. SQLite (one writer at a time, and every page a commit writes is its cost) counts
what the guard weighs (hard bounces, spam reports) with the event, asking the events themselves
instead of marks, and the rest in batches (`fold_counts`): after every FOLD_EVERY events stored,
before the statistics are read, and before events are deleted (docs/deliverability.md#statistics).
"""

from __future__ import annotations

import json
from typing import Any, Callable

from ..addresses import bare_address
from ..errors import StoreUnavailable
from .database import CHUNK
from .events_sql import EventsSql

__all__ = ["DAY_OFFSET_S", "FOLD_EVERY", "METRICS", "StatsSql", "fact_of", "metric_of"]

# Beijing time (UTC+8, no daylight saving): SES counts its days there.
DAY_OFFSET_S = 8 * 3600
# Daily counters, in column order; an event's metric names the one it adds to.
METRICS = ("delivered", "hard", "soft", "complaint", "unsubscribe", "open", "click")
_DAILY_COLUMNS = ("sent", "delivered", "hard_bounces", "soft_bounces", "complaints", "unsubscribes", "opens",
                  "clicks")
GUARD_METRICS = ("hard", "complaint")

# SQLite: events stored (by this process) between two folds of their counts, and events one fold
# transaction reads at most.
FOLD_EVERY = 200
FOLD_PAGE = 1000

# Hourly buckets are kept this long: the guard's longest window (config `Guard.WindowHours`) and a day.
HOURLY_KEEP = 168 + 24

# Dialect variants: a sender address's domain, the floor of a non-negative number (SQLite's math
# functions are optional, and CAST rounds on PostgreSQL), and an increment on conflict.
_DOMAIN = {"sqlite": "substr({0}, instr({0}, '@') + 1)",
           "postgresql": "SUBSTRING({0} FROM POSITION('@' IN {0}) + 1)",
           "mysql": "SUBSTRING_INDEX({0}, '@', -1)"}
_FLOOR = {"sqlite": "CAST({0} AS INTEGER)", "postgresql": "FLOOR({0})", "mysql": "FLOOR({0})"}


# Callback event -> the daily counter it adds to (a bounce by its type: hard, or else soft).
_METRIC = {"delivered": "delivered", "spamreport": "complaint", "unsubscribe": "unsubscribe", "open": "open",
           "click": "click"}
_HARD = ("hard_bounce", "hard")


def metric_of(event: str, bounce_type: Any) -> str | None:
    """The counter an event adds to, or None (deferrals, drops, names SES does not document)."""
    name = event.lower()
    if name == "bounce":
        return "hard" if isinstance(bounce_type, str) and bounce_type.lower() in _HARD else "soft"
    return _METRIC.get(name)


def _detail(details: str, name: str) -> Any:
    """One field of a stored event's details (JSON text), without parsing it when it is absent."""
    return json.loads(details).get(name) if name in details else None


def _sender(callback: dict) -> str:
    sender = callback.get("from")
    if isinstance(sender, str) and "@" in sender:
        return bare_address(sender)[:320]
    domain = callback.get("fromdomain")
    return ("@" + domain.strip().lower())[:256] if isinstance(domain, str) and domain.strip() else ""


def fact_of(event_time: Any, template: Any, callback: dict, now: float) -> tuple:
    """What an event of a mail the sent log may not know says of it: (sent at, sender, TemplateID),
    from its callback's lower-cased fields (`sentTimestamp`, else the event's own time, else `now`;
    `from`, else `@fromDomain`; its `templateId`, else 0)."""
    sent_at = callback.get("senttimestamp")
    if isinstance(sent_at, bool) or not isinstance(sent_at, int):
        sent_at = event_time
    if isinstance(sent_at, bool) or not isinstance(sent_at, int) or not 0 < sent_at <= now + 86400:
        sent_at = now
    return (float(sent_at), _sender(callback),
            template if isinstance(template, int) and not isinstance(template, bool) and 0 < template < 2**63 else 0)


def _lowered(raw: str) -> dict:
    """A stored event's raw callback with lower-cased field names ({} when it is not an object)."""
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return {str(key).lower(): item for key, item in value.items()} if isinstance(value, dict) else {}


def _add(dialect: str, table: str, key: tuple[str, ...], columns: tuple[str, ...]) -> str:
    """The upsert tail that adds the new row's counters to an existing one."""
    if dialect == "mysql":
        return " ON DUPLICATE KEY UPDATE " + ", ".join(f"{c} = {c} + VALUES({c})" for c in columns)
    return (f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
            + ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in columns))


def day_of(unix: float) -> int:
    return int((unix + DAY_OFFSET_S) // 86400)


def hour_of(unix: float) -> int:
    return int(unix // 3600)


def domain_of(sender: str) -> str:
    return sender.rpartition("@")[2].lower()


def _unique(facts: list[tuple]) -> list[tuple]:
    """One fact per mark, in mark order (two transactions counting the same marks lock them in
    the same order)."""
    unique: dict[str, tuple] = {}
    for fact in facts:
        unique.setdefault(fact[0], fact)
    return [unique[mark] for mark in sorted(unique)]


class StatsSql(EventsSql):
    """The aggregates (protocols.StatsStore): written with the sent log and the events, read by
    `GET /stats` and the guard."""

    _stored_since_fold = 0  # SQLite: events this store stored since its last fold

    # -- sent mail ------------------------------------------------------------------------------
    def _sent_stats_sql(self, source: str, sender: str, template_id: int | None, count: int,
                        now: float) -> tuple[str, tuple]:
        """PostgreSQL: WITH-clauses that add `count` sent mails for each row `source` returns (the
        sent log's INSERT … RETURNING: nothing when the MessageId was logged already)."""
        name = self.dialect.name
        daily = ("INSERT INTO sesmail_stats_daily (day, sender, template_id, " + ", ".join(_DAILY_COLUMNS) + ")"
                 " SELECT ?, ?, ?, ?, 0, 0, 0, 0, 0, 0, 0 FROM " + source
                 + _add(name, "sesmail_stats_daily", ("day", "sender", "template_id"), ("sent",)))
        hourly = ("INSERT INTO sesmail_stats_hourly (hour, domain, sent, hard_bounces, complaints)"
                  " SELECT ?, ?, ?, 0, 0 FROM " + source
                  + _add(name, "sesmail_stats_hourly", ("hour", "domain"), ("sent",)))
        return (f", sent_daily AS ({daily}), sent_hourly AS ({hourly})",
                (day_of(now), sender[:320], int(template_id or 0), count, hour_of(now), domain_of(sender)[:255],
                 count))

    def _count_sent(self, cursor: Any, sender: str, template_id: int | None, count: int, now: float) -> None:
        """The same as _sent_stats_sql, as statements of their own (SQLite, MySQL)."""
        name = self.dialect.name
        cursor.execute(self._q("INSERT INTO sesmail_stats_daily (day, sender, template_id, " + ", ".join(_DAILY_COLUMNS)
                               + ") VALUES (?, ?, ?, ?, 0, 0, 0, 0, 0, 0, 0)"
                               + _add(name, "sesmail_stats_daily", ("day", "sender", "template_id"), ("sent",))),
                       (day_of(now), sender[:320], int(template_id or 0), count))
        cursor.execute(self._q("INSERT INTO sesmail_stats_hourly (hour, domain, sent, hard_bounces, complaints)"
                               " VALUES (?, ?, ?, 0, 0)" + _add(name, "sesmail_stats_hourly", ("hour", "domain"),
                                                                ("sent",))),
                       (hour_of(now), domain_of(sender)[:255], count))

    def count_sent(self, sender: str, template_id: int | None, count: int, now: float) -> None:
        """Mail SES sent that the sent log does not list one by one (a batch task's recipients)."""
        if count <= 0:
            return
        self._run(lambda cursor: self._count_sent(cursor, sender, template_id, count, now),
                  transaction=self.dialect.name != "postgresql")

    # -- events ---------------------------------------------------------------------------------
    def ingest_events(self, rows: list[dict], facts: Callable[[], list[tuple]]) -> tuple[int, int]:
        """insert_events(rows), and the aggregates for the facts `facts()` returns: (mark, MessageId
        or None, metric, then the callback's own sending time, sender and TemplateID for a mail the
        sent log does not know, when the mark expires, and the event's id, address and name) —
        sesmail.stats.facts builds them; SQLite asks for them only when a hard bounce or spam
        report is among the rows. A fact of a (metric, mail) counted before adds nothing. Returns
        (new events, hard bounces and spam reports counted)."""
        if self.dialect.name == "sqlite":
            return self._ingest_sqlite(rows, facts)
        chosen = _unique(facts())
        if not chosen:
            return self.insert_events(rows), 0
        if not rows:
            return 0, 0
        values = self._event_values(rows)
        if self.dialect.name == "postgresql" and len(values) <= CHUNK:
            flat = tuple(value for row in values for value in row)
            args = (*flat, *(value for fact in chosen for value in fact[:7]))

            def folded(cursor):
                # A prepared statement of the connection: planning this statement costs more than
                # running it, and a prepared one is planned once (the webhook's hot path).
                # PostgresDialect's own: the other dialects never come here.
                run_prepared = self.dialect.run_prepared  # type: ignore[attr-defined]
                new, counted = run_prepared(self._connection, self._ingest_sql(len(values), len(chosen)), args)[0]
                return int(new), int(counted)

            return self._run(folded)

        def work(cursor):
            new = self._insert_event_values(cursor, values)
            return new, self._add_counts(cursor, self._first_by_marks(cursor, chosen))

        return self._run(work, transaction=True)

    def _ingest_sqlite(self, rows: list[dict], facts: Callable[[], list[tuple]]) -> tuple[int, int]:
        """SQLite: the events in one statement, as without statistics; a hard bounce or spam report
        (the guard must see it before the next send) counted in the same transaction; the rest
        counted by the next fold."""
        if not any(metric_of(row["event"], row["details"].get("BounceType")) in GUARD_METRICS for row in rows):
            new, counted = self.insert_events(rows), 0
        else:
            chosen = [fact for fact in _unique(facts()) if fact[2] in GUARD_METRICS]
            values = self._event_values(rows)

            def work(cursor):
                batch = [value[0] for value in values]
                # One event (what SES posts): whether it was stored before, its insert's row count says.
                known = self._stored_event_ids(cursor, batch) if len(batch) > 1 else set()
                new = self._insert_event_values(cursor, values)
                if len(batch) == 1 and not new:
                    known = set(batch)
                return new, self._add_counts(cursor, self._first_by_events(cursor, chosen, set(batch), known))

            new, counted = self._run(work, transaction=True)
        self._stored_since_fold += new
        if self._stored_since_fold >= FOLD_EVERY:
            try:
                self.fold_counts()
            except StoreUnavailable:  # the events are stored: the next fold counts them
                from .. import log

                log.warning("the statistics' batch could not be counted; the next one counts it")
        return new, counted

    def _ingest_sql(self, events: int, facts: int) -> str:
        """PostgreSQL: the events' INSERT and every aggregate write in one statement."""
        key = f"ingest:{events}:{facts}"
        sql = self._sql.get(key)
        if sql is None:
            insert = self._insert_events_sql(events)
            row = ("(CAST(%s AS VARCHAR(32)), CAST(%s AS VARCHAR(255)), CAST(%s AS VARCHAR(16)),"
                   " CAST(%s AS DOUBLE PRECISION), CAST(%s AS VARCHAR(320)), CAST(%s AS BIGINT),"
                   " CAST(%s AS DOUBLE PRECISION))")
            sums = ", ".join(f"SUM(CASE WHEN metric = '{metric}' THEN 1 ELSE 0 END)" for metric in METRICS)
            daily_tail = _add("postgresql", "sesmail_stats_daily", ("day", "sender", "template_id"), _DAILY_COLUMNS[1:])
            hourly_tail = _add("postgresql", "sesmail_stats_hourly", ("hour", "domain"), ("hard_bounces", "complaints"))
            sql = self._sql[key] = (
                "WITH stored AS (" + insert + " RETURNING 1),"
                " facts (mark, message_id, metric, sent_at, sender, template_id, expires_at) AS (VALUES "
                + ", ".join([row] * facts) + "),"
                " marked AS (INSERT INTO sesmail_stats_marks (mark, expires_at) SELECT mark, expires_at FROM facts"
                " ON CONFLICT (mark) DO NOTHING RETURNING mark),"
                " counted AS (SELECT f.metric, COALESCE(s.created_at, f.sent_at) AS sent_at,"
                " COALESCE(s.sender, f.sender) AS sender, COALESCE(s.template_id, f.template_id) AS template_id"
                " FROM facts f JOIN marked m ON m.mark = f.mark"
                " LEFT JOIN sesmail_sent s ON s.message_id = f.message_id),"
                " daily AS (INSERT INTO sesmail_stats_daily (day, sender, template_id, " + ", ".join(_DAILY_COLUMNS)
                + ") SELECT FLOOR((sent_at + " + str(DAY_OFFSET_S) + ") / 86400), sender, template_id, 0, " + sums
                + " FROM counted GROUP BY 1, 2, 3" + daily_tail + "),"
                " hourly AS (INSERT INTO sesmail_stats_hourly (hour, domain, sent, hard_bounces, complaints)"
                " SELECT FLOOR(sent_at / 3600), " + _DOMAIN["postgresql"].format("sender") + ", 0,"
                " SUM(CASE WHEN metric = 'hard' THEN 1 ELSE 0 END),"
                " SUM(CASE WHEN metric = 'complaint' THEN 1 ELSE 0 END)"
                " FROM counted WHERE metric IN ('hard', 'complaint') GROUP BY 1, 2" + hourly_tail + ")"
                " SELECT (SELECT COUNT(*) FROM stored),"
                " (SELECT COUNT(*) FROM counted WHERE metric IN ('hard', 'complaint'))")
        return sql

    def _first_by_marks(self, cursor: Any, facts: list[tuple]) -> list[tuple]:
        """MySQL (and a PostgreSQL array too large for one statement): the facts counted for the
        first time, by their marks, one by one (each insert says whether it is new; concurrent
        transactions wait on the mark's key)."""
        mark_sql = self._q("INSERT INTO sesmail_stats_marks (mark, expires_at) VALUES (?, ?)"
                           + (" ON DUPLICATE KEY UPDATE mark = mark" if self.dialect.name == "mysql"
                              else " ON CONFLICT (mark) DO NOTHING"))
        new = []
        for fact in facts:
            cursor.execute(mark_sql, (fact[0], fact[6]))
            if cursor.rowcount == 1:
                new.append(fact)
        return new

    def _stored_event_ids(self, cursor: Any, event_ids: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(event_ids), 500):  # old SQLite builds take 999 parameters at most
            chunk = event_ids[start:start + 500]
            cursor.execute(self._q("SELECT event_id FROM sesmail_events WHERE event_id IN ("
                                   + ", ".join("?" * len(chunk)) + ")"), tuple(chunk))
            found.update(row[0] for row in cursor.fetchall())
        return found

    def _first_by_events(self, cursor: Any, facts: list[tuple], batch: set[str], known: set[str]) -> list[tuple]:
        """SQLite: the facts counted for the first time, asked of the events table itself — a mark
        would write pages of its own on every callback, and one SQLite writer at a time (the
        transaction holds the write lock) makes the question safe. A fact counts when its event is
        new (`known`: event ids stored before this batch) and no other stored event of the mail
        has the same metric (a repeat of a mark's question, for as long as the events are kept);
        `batch` holds the ids of this call's events (the facts are one per mark already)."""
        fresh = batch - known  # this call's new events: the facts stand for them
        seen: set[tuple] = set()
        first = []
        for fact in facts:
            _mark, message_id, metric, *_, event_id, email, event = fact
            key = (metric, message_id or "#" + event_id, email)
            if event_id in known or key in seen:
                continue
            seen.add(key)
            if message_id:
                cursor.execute(self._q("SELECT event_id, event, details FROM sesmail_events WHERE (message_id = ? OR"
                                       " smtp_message_id = ?) AND event = ? AND email = ?"),
                               (message_id, message_id, event, email))
                if any(row[0] not in fresh and metric_of(row[1], _detail(row[2], "BounceType")) == metric
                       for row in cursor.fetchall()):
                    continue
            first.append(fact)
        return first

    def _logged(self, cursor: Any, message_ids: set) -> dict[str, tuple]:
        """{MessageId: (sent at, sender, TemplateID or None)} of the mails the sent log lists."""
        ids = sorted(message_id for message_id in message_ids if message_id)
        logged: dict[str, tuple] = {}
        for start in range(0, len(ids), 500):  # old SQLite builds take 999 parameters at most
            chunk = ids[start:start + 500]
            cursor.execute(self._q("SELECT message_id, created_at, sender, template_id FROM sesmail_sent WHERE"
                                   " message_id IN (" + ", ".join("?" * len(chunk)) + ")"), tuple(chunk))
            logged.update((row[0], (float(row[1]), row[2], row[3])) for row in cursor.fetchall())
        return logged

    def _add_counts(self, cursor: Any, new: list[tuple], logged: dict[str, tuple] | None = None) -> int:
        """SQLite, MySQL: the counters of the facts counted for the first time, filed under their
        mail as the sent log has it (`logged`, looked up when not given; else the callback's own
        fields). Returns the hard bounces and spam reports among them."""
        name = self.dialect.name
        if not new:
            return 0
        if logged is None:
            logged = self._logged(cursor, {fact[1] for fact in new})
        daily: dict[tuple, list[int]] = {}
        hourly: dict[tuple, list[int]] = {}
        for _mark, message_id, metric, sent_at, sender, template_id, *_ in new:
            if message_id in logged:
                sent_at, sender, found = logged[message_id]
                template_id = found if found is not None else template_id
            counts = daily.setdefault((day_of(sent_at), sender, int(template_id or 0)), [0] * len(METRICS))
            counts[METRICS.index(metric)] += 1
            if metric in GUARD_METRICS:
                hour = hourly.setdefault((hour_of(sent_at), domain_of(sender)[:255]), [0, 0])
                hour[GUARD_METRICS.index(metric)] += 1
        cursor.execute(self._q("INSERT INTO sesmail_stats_daily (day, sender, template_id, " + ", ".join(_DAILY_COLUMNS)
                               + ") VALUES " + ", ".join(["(?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?)"] * len(daily))
                               + _add(name, "sesmail_stats_daily", ("day", "sender", "template_id"),
                                      _DAILY_COLUMNS[1:])),
                       tuple(value for key, counts in daily.items() for value in (*key, *counts)))
        if hourly:
            cursor.execute(self._q("INSERT INTO sesmail_stats_hourly (hour, domain, sent, hard_bounces, complaints)"
                                   " VALUES " + ", ".join(["(?, ?, 0, ?, ?)"] * len(hourly))
                                   + _add(name, "sesmail_stats_hourly", ("hour", "domain"),
                                          ("hard_bounces", "complaints"))),
                           tuple(value for key, counts in hourly.items() for value in (*key, *counts)))
        return sum(sum(counts) for counts in hourly.values())

    # -- SQLite's batches -------------------------------------------------------------------------
    def fold_counts(self) -> int:
        """SQLite: count the events stored since the last fold (every metric but the guard's, which
        was counted as each event was stored), page by page; how many events it read. Elsewhere
        every event is counted as it is stored: nothing to do."""
        if self.dialect.name != "sqlite":
            return 0
        self._stored_since_fold = 0
        total = 0
        while True:
            read = self._run(self._fold_page, transaction=True)
            total += read
            if read < FOLD_PAGE:
                return total

    def _fold_page(self, cursor: Any) -> int:
        """One fold transaction: up to FOLD_PAGE events after the last one counted. An event counts
        when no event stored before it (a smaller rowid) has its metric, mail and address — what a
        mark asks elsewhere; the write lock the transaction holds makes the question safe."""
        cursor.execute("SELECT last_event FROM sesmail_stats_folded WHERE id = 1")
        row = cursor.fetchone()
        last = int(row[0]) if row else 0
        cursor.execute("SELECT rowid, message_id, smtp_message_id, email, event, details, raw, event_time, stored_at"
                       " FROM sesmail_events WHERE rowid > ? ORDER BY rowid LIMIT ?", (last, FOLD_PAGE))
        pending = [(row, metric_of(row[4], _detail(row[5], "BounceType"))) for row in cursor.fetchall()]
        if not pending:
            return 0
        seen = self._counted_before(cursor, {row[1] or row[2] for row, metric in pending if metric}, last)
        counted = []
        for row, metric in pending:
            mail = row[1] or row[2]
            if metric is None or (mail and (mail, row[3], metric) in seen):
                continue
            if mail:
                seen.add((mail, row[3], metric))
            if metric not in GUARD_METRICS:  # those were counted as they were stored
                counted.append((row, mail, metric))
        logged = self._logged(cursor, {mail for _, mail, _ in counted})
        facts = []
        for (_rowid, _id, _smtp, _email, _event, details, raw, event_time, stored_at), mail, metric in counted:
            entry = logged.get(mail)
            if entry is not None and entry[2] is not None:
                facts.append((None, mail, metric, 0.0, "", 0))  # filed as the sent log has it
            else:
                facts.append((None, mail, metric,
                              *fact_of(event_time, _detail(details, "TemplateId"), _lowered(raw), float(stored_at))))
        self._add_counts(cursor, facts, logged)
        cursor.execute("INSERT INTO sesmail_stats_folded (id, last_event) VALUES (1, ?)"
                       " ON CONFLICT (id) DO UPDATE SET last_event = excluded.last_event", (pending[-1][0][0],))
        return len(pending)

    def _counted_before(self, cursor: Any, mails: set, last: int) -> set[tuple]:
        """(mail, address, metric) of the events up to rowid `last` about `mails` (a mail is its
        MessageId, else its Message-ID header): what was counted before."""
        seen: set[tuple] = set()
        ids = sorted(mail for mail in mails if mail)
        for start in range(0, len(ids), 400):  # twice the parameters: old builds take 999 at most
            chunk = ids[start:start + 400]
            marks = ", ".join("?" * len(chunk))
            cursor.execute("SELECT message_id, smtp_message_id, email, event, details FROM sesmail_events"
                           f" WHERE (message_id IN ({marks}) OR smtp_message_id IN ({marks})) AND rowid <= ?",
                           (*chunk, *chunk, last))
            seen.update((message_id or smtp_id, email, metric_of(event, _detail(details, "BounceType")))
                        for message_id, smtp_id, email, event, details in cursor.fetchall())
        return seen

    @staticmethod
    def _after_deleting_events(cursor: Any) -> None:
        """SQLite, in the transaction that deleted events: the next event's rowid (the largest
        left, plus one) must stay above the last one counted, or it would pass for counted."""
        cursor.execute("UPDATE sesmail_stats_folded SET last_event = MIN(last_event,"
                       " (SELECT COALESCE(MAX(rowid), 0) FROM sesmail_events)) WHERE id = 1")

    # -- reading --------------------------------------------------------------------------------
    def stats_rows(self, first_day: int, last_day: int, by: str) -> list[tuple]:
        """Counter sums per `by` ("day", "template", "sender"; a domain is its senders' sum) over
        [first_day, last_day]: (key, sent, delivered, hard, soft, complaints, unsubscribes, opens,
        clicks)."""
        column = {"day": "day", "template": "template_id", "sender": "sender"}[by]
        self.fold_counts()
        sql = self._q(f"SELECT {column}, " + ", ".join(f"SUM({c})" for c in _DAILY_COLUMNS)
                      + f" FROM sesmail_stats_daily WHERE day >= ? AND day <= ? GROUP BY {column}")

        def work(cursor):
            cursor.execute(sql, (first_day, last_day))
            return [(row[0], *(int(value or 0) for value in row[1:])) for row in cursor.fetchall()]

        return self._run(work)

    def _guard_sql(self, domain: str, since_hour: int) -> tuple[str, tuple]:
        """One row: the window's sent, hard bounces and spam reports for the account and for
        `domain`, then the admin lifts (until when) and the announced states of both."""
        sql = self._q(
            "SELECT COALESCE(SUM(sent), 0) AS g0, COALESCE(SUM(hard_bounces), 0) AS g1,"
            " COALESCE(SUM(complaints), 0) AS g2,"
            " COALESCE(SUM(CASE WHEN domain = ? THEN sent ELSE 0 END), 0) AS g3,"
            " COALESCE(SUM(CASE WHEN domain = ? THEN hard_bounces ELSE 0 END), 0) AS g4,"
            " COALESCE(SUM(CASE WHEN domain = ? THEN complaints ELSE 0 END), 0) AS g5,"
            " COALESCE((SELECT MAX(lifted_until) FROM sesmail_guard WHERE domain = '*'), 0) AS g6,"
            " COALESCE((SELECT MAX(lifted_until) FROM sesmail_guard WHERE domain = ?), 0) AS g7,"
            " COALESCE((SELECT MAX(tripped) FROM sesmail_guard WHERE domain = '*'), 0) AS g8,"
            " COALESCE((SELECT MAX(tripped) FROM sesmail_guard WHERE domain = ?), 0) AS g9"
            " FROM sesmail_stats_hourly WHERE hour >= ?")
        return sql, (domain, domain, domain, domain, domain, since_hour)

    @staticmethod
    def _guard_window(domain: str, row: Any) -> dict[str, dict]:
        values = [float(value) for value in row]
        account = {"Sent": int(values[0]), "HardBounces": int(values[1]), "Complaints": int(values[2]),
                   "LiftedUntil": values[6], "Tripped": bool(values[8])}
        own = {"Sent": int(values[3]), "HardBounces": int(values[4]), "Complaints": int(values[5]),
               "LiftedUntil": values[7], "Tripped": bool(values[9])}
        return {"*": account, domain: own}

    def guard_window(self, domain: str, since_hour: int) -> dict[str, dict]:
        """{"*": account, domain: the domain's}, each {"Sent", "HardBounces", "Complaints",
        "LiftedUntil", "Tripped"} over the hours from `since_hour`."""
        sql, params = self._guard_sql(domain, since_hour)

        def work(cursor):
            cursor.execute(sql, params)
            return cursor.fetchone()

        return self._guard_window(domain, self._run(work))

    def guard_overview(self, since_hour: int) -> tuple[dict[str, dict], dict[str, tuple[bool, float]]]:
        """Every domain's window ({domain: {"Sent", "HardBounces", "Complaints"}}) and every stored
        guard state ({domain or "*": (tripped, lifted until)})."""
        def work(cursor):
            cursor.execute(self._q("SELECT domain, SUM(sent), SUM(hard_bounces), SUM(complaints) FROM"
                                   " sesmail_stats_hourly WHERE hour >= ? GROUP BY domain"), (since_hour,))
            windows = {row[0]: {"Sent": int(row[1] or 0), "HardBounces": int(row[2] or 0),
                                "Complaints": int(row[3] or 0)} for row in cursor.fetchall()}
            cursor.execute("SELECT domain, tripped, lifted_until FROM sesmail_guard")
            states = {row[0]: (bool(row[1]), float(row[2])) for row in cursor.fetchall()}
            return windows, states

        return self._run(work)

    # -- the guard's state --------------------------------------------------------------------------
    def guard_flip(self, domain: str, tripped: bool, now: float) -> bool:
        """Record that `domain` (or "*") tripped or lifted; False when another instance recorded
        it first (only one announces it)."""
        name = self.dialect.name

        def work(cursor):
            cursor.execute(self._q("UPDATE sesmail_guard SET tripped = ?, changed_at = ? WHERE domain = ? AND"
                                   " tripped = ?"), (int(tripped), now, domain, int(not tripped)))
            if cursor.rowcount == 1 or not tripped:
                return cursor.rowcount == 1
            cursor.execute(self._q("INSERT INTO sesmail_guard (domain, tripped, lifted_until, changed_at) VALUES"
                                   " (?, 1, 0, ?)" + (" ON DUPLICATE KEY UPDATE domain = domain" if name == "mysql"
                                                      else " ON CONFLICT (domain) DO NOTHING")), (domain, now))
            return cursor.rowcount == 1

        return self._run(work)

    def guard_lift(self, domain: str, until: float, now: float) -> bool:
        """An admin lifts `domain` (or "*") until a time; True when it was tripped."""
        name = self.dialect.name
        upsert = ("INSERT INTO sesmail_guard (domain, tripped, lifted_until, changed_at) VALUES (?, 0, ?, ?)"
                  + (" ON DUPLICATE KEY UPDATE tripped = 0, lifted_until = VALUES(lifted_until),"
                     " changed_at = VALUES(changed_at)" if name == "mysql" else
                     " ON CONFLICT (domain) DO UPDATE SET tripped = 0, lifted_until = excluded.lifted_until,"
                     " changed_at = excluded.changed_at"))

        def work(cursor):
            cursor.execute(self._q("SELECT tripped FROM sesmail_guard WHERE domain = ?"), (domain,))
            row = cursor.fetchone()
            cursor.execute(self._q(upsert), (domain, until, now))
            return bool(row and row[0])

        return self._run(work, transaction=True)

    def _purge_stats(self, now: float) -> dict[str, int]:
        """What the aggregates let go of: marks of expired events, hours no window reaches."""
        counts = {}
        for name, sql, bound in (
                ("StatsMarks", "DELETE FROM sesmail_stats_marks WHERE expires_at < ?", now),
                ("GuardHours", "DELETE FROM sesmail_stats_hourly WHERE hour < ?", hour_of(now) - HOURLY_KEEP)):
            def work(cursor, sql=sql, bound=bound):
                cursor.execute(self._q(sql), (bound,))
                return max(cursor.rowcount, 0)

            counts[name] = self._run(work)
        return counts
