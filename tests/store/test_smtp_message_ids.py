"""Mail sent over SMTP has no SES MessageId of ours: its events are found by the Message-ID header the
callbacks carry (`messageId`), on every database; schema 2 adds that column to a schema-1 database."""

from __future__ import annotations

import json

from sesmail import events
from sesmail.store import new_store
from sesmail.store.sql import _DDL, MIGRATIONS, SCHEMA_VERSION

NOW = 1_795_000_000.0


def callback_row(event: str, bulk_id: str, smtp_id: str | None, n: int = 0) -> dict:
    fields = {"event": event, "email": "ada@example.com", "bulkid": bulk_id, "timestamp": 1_795_000_000 + n}
    if smtp_id is not None:
        fields["messageid"] = smtp_id
    return events.normalise(fields, json.dumps(fields), NOW, 3600)


def test_events_are_found_by_ses_message_id_or_by_message_id_header(store):
    store.insert_events([callback_row("deferred", "qcloudses-1", "<m-1@shop.example>", 0),
                         callback_row("delivered", "qcloudses-1", "m-1@shop.example", 1),
                         callback_row("delivered", "qcloudses-2", None, 2)])
    by_header = store.message_events("m-1@shop.example")
    assert [(e["Event"], e["SmtpMessageId"]) for e in by_header] == [
        ("deferred", "<m-1@shop.example>"), ("delivered", "m-1@shop.example")]  # brackets or not: one handle
    assert [e["Event"] for e in store.message_events("qcloudses-1")] == ["deferred", "delivered"]
    assert [e["Event"] for e in store.message_events("qcloudses-2")] == ["delivered"]


def test_reconciliation_leaves_mail_sent_over_smtp_alone(store):
    store.record_sent("qcloudses-9", "web", "from@example.com", ["ada@example.com"], NOW)
    store.record_sent("m-9@shop.example", "web", "from@example.com", ["ada@example.com"], NOW)
    unsettled = store.unsettled_messages(NOW - 10, NOW + 10, events.FINAL_EVENTS, 100)
    assert [m["MessageId"] for m in unsettled] == ["qcloudses-9"]  # SES's status rows never carry ours


def test_a_schema_1_database_is_upgraded_with_its_events_kept(backend):
    url = backend.database()
    raw = backend.raw(url)
    try:
        cursor = raw.cursor()
        ddl = _DDL[backend.name]
        cursor.execute("CREATE TABLE sesmail_schema (id INTEGER NOT NULL PRIMARY KEY, version INTEGER NOT NULL)"
                       + ddl["options"])
        cursor.execute("INSERT INTO sesmail_schema (id, version) VALUES (1, 1)")
        for statement in MIGRATIONS[0]:
            cursor.execute(statement.format(**ddl))
        cursor.execute("INSERT INTO sesmail_events (event_id, message_id, email, event, event_time, details, raw,"
                       " polled, stored_at, expires_at) VALUES ('" + "a" * 64 + "', 'qcloudses-1', 'ada@example.com',"
                       " 'delivered', 1, '{}', '{}', 0, 1, 9999999999)")
        if backend.name != "mysql":
            raw.commit()
    finally:
        raw.close()
    store = new_store(url)
    try:
        assert [e["Event"] for e in store.message_events("qcloudses-1")] == ["delivered"]
        store.insert_events([callback_row("bounce", "qcloudses-2", "m-2@shop.example")])
        assert [e["Event"] for e in store.message_events("m-2@shop.example")] == ["bounce"]
    finally:
        store.close()
    assert backend.execute("SELECT version FROM sesmail_schema", url=url) == [(SCHEMA_VERSION,)]
