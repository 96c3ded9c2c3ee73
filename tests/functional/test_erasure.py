"""Erasure keeps the promise not to mail: DELETE /addresses/<a> removes the address from every table
and every file of a SQLite store (its write-ahead log included), but keeps its suppressions under a
keyed hash, so a later send to it is refused as before."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from sesmail import addresses, config, store
from sesmail.store import sqlite as sqlite_dialect
from tests import db
from tests.conftest import load_function
from tests.events import context, http_event, sample_send_payload

ADDRESS = "erase-me-7f3a@example.com"


@pytest.fixture
def store_dir(env, tmp_path, monkeypatch):
    """The store alone in a folder of its own, on a SQLite built without secure-delete by default
    (Debian's has it on; others do not): what is checked is the store's own setting."""
    folder = tmp_path / "store"
    monkeypatch.setenv("SESMAIL_DATABASE_URL", f"sqlite:///{folder}/sesmail.sqlite3")
    connect = sqlite3.connect

    def connect_without_secure_delete(*args, **kwargs):
        connection = connect(*args, **kwargs)
        connection.execute("PRAGMA secure_delete=OFF")
        return connection

    monkeypatch.setattr(sqlite_dialect.sqlite3, "connect", connect_without_secure_delete)
    config.reset()
    store.reset()
    yield folder
    store.reset()


def files_holding(folder, needle: bytes) -> list[str]:
    found = []
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as handle:
            if needle in handle.read().lower():
                found.append(name)
    return found


def call(handler, *args, **kwargs) -> tuple[int, dict]:
    result = handler(http_event(*args, **kwargs), context())
    return result["statusCode"], json.loads(result["body"]) if result["body"] else {}


def test_after_erasure_no_file_of_the_sqlite_store_holds_the_address_and_it_stays_suppressed(store_dir, send,
                                                                                             webhook):
    batch = load_function("batch").main_handler
    # GIVEN everything sesmail stores about an address: the sent log and an idempotency record,
    # events with their raw payloads, a suppression, a queued digest item
    mail = dict(sample_send_payload(), Destination=[ADDRESS.upper()])
    assert call(send, mail, headers={"idempotency-key": "k-1"})[0] == 200
    for event in ({"event": "delivered", "email": ADDRESS, "bulkId": "b-1", "timestamp": 1},
                  {"event": "unsubscribe", "email": ADDRESS, "bulkId": "b-1", "timestamp": 2}):
        assert call(webhook, event, key=None, path="/webhook", query={"token": "hook-secret-1"})[0] == 200
    settings_file = os.environ["SESMAIL_CONFIG"]
    with open(settings_file, encoding="utf-8") as handle:
        settings = json.load(handle)
    settings["Digests"] = {"daily": {"FromEmailAddress": "noreply@mail.qcloud.com", "Subject": "Daily",
                                     "Template": {"TemplateID": 100091}}}
    with open(settings_file, "w", encoding="utf-8") as handle:
        json.dump(settings, handle)
    config.reset()
    assert call(batch, {"Digest": "daily", "Email": ADDRESS, "Item": {"t": 1}}, path="/digest/items")[0] == 200
    assert files_holding(store_dir, ADDRESS.encode())  # the check below can see it

    # WHEN it is erased
    status, body = call(send, None, method="DELETE", path=f"/addresses/{ADDRESS}")

    # THEN nothing is left of it in any file of the store, and it is still never mailed
    assert status == 200
    assert body["SuppressionsKept"] == 1 and body["Erased"]["Events"] == 2 and body["Erased"]["Sent"] == 1
    assert sorted(os.listdir(store_dir))[0] == "sesmail.sqlite3"
    assert files_holding(store_dir, ADDRESS.encode()) == []
    marketing = dict(sample_send_payload(), Destination=[ADDRESS], TriggerType=0)
    status, body = call(send, marketing)
    assert (status, body["Error"]["Code"], body["Error"]["Field"]) == (
        403, "FailedOperation.ReceiverHasUnsubscribed", "Destination[0]")
    assert "unsubscribe" not in body["Error"]["Message"]
    assert call(send, dict(marketing, TriggerType=1))[0] == 200  # an unsubscribe holds marketing mail only
    status, listed = call(send, None, method="GET", path="/suppressions")
    assert [(s["Email"], s.get("Erased"), s["Scope"]) for s in listed["Suppressions"]] == [(None, True, "marketing")]


def test_the_erased_form_is_a_keyed_hash_of_the_normalised_address(env, send, webhook, monkeypatch):
    monkeypatch.setenv("SESMAIL_ERASURE_KEY", "a-long-random-key")
    config.reset()
    assert call(webhook, {"event": "spamreport", "email": ADDRESS}, key=None, path="/webhook",
                query={"token": "hook-secret-1"})[0] == 200
    assert call(send, None, method="DELETE", path=f"/addresses/{ADDRESS.upper()}")[0] == 200
    rows = db.execute(config.load().database_url, "SELECT email FROM sesmail_suppressions")
    assert rows == [("h:" + addresses.address_hash("a-long-random-key", ADDRESS),)]
    assert addresses.address_hash("a-long-random-key", ADDRESS) != addresses.address_hash(None, ADDRESS)
    # an admin lifts it by the address, both forms at once
    assert call(send, None, method="DELETE", path=f"/suppressions/{ADDRESS}")[1] == {"Removed": 1,
                                                                                     "RequestId": "req-test"}
    assert call(send, dict(sample_send_payload(), Destination=[ADDRESS]))[0] == 200
