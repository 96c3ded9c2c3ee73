"""Erasure keeps the promise not to mail, and leaves no copy of the address behind.

`DELETE /addresses/<a>` (admin only) removes the address from every table, but keeps each of its
suppressions under a keyed hash of the normalised address (`SESMAIL_ERASURE_KEY`): a later send is
refused as before, `GET /suppressions` lists the entry without an address, and the table holds
neither the address nor its unkeyed hash. On SQLite, no file in the store's directory (the
write-ahead log included) holds the address's bytes afterwards. Run on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import hashlib
import os

import pytest

from tests.security.conftest import (
    ADMIN,
    FEED,
    PARTNER,
    SERVER,
    SUPPRESSION_TRACE,
    WEB,
    assert_no_reason,
    assert_refused,
    web_mail,
)

ADDRESS = "erased.person@customers.example"


@pytest.fixture
def database(every_store):
    return every_store


@pytest.fixture
def history(world):
    """An address with a history in every table: mail sent (with an Idempotency-Key), delivery and
    unsubscribe callbacks, a hard bounce of a second mail, queued digest items."""
    sent = world.send(web_mail(Destination=[ADDRESS]), key=SERVER, headers={"idempotency-key": "erase-me-1"})
    assert sent.status == 200, sent
    assert world.callback("delivery", ADDRESS, bulkId=sent.body["MessageId"]).status == 200
    assert world.digest({"Digest": "daily", "Email": ADDRESS, "Item": {"title": "queued"}}, key=FEED).status == 200
    assert world.callback("unsubscribe", ADDRESS).status == 200
    assert ADDRESS in world.db.text()
    return sent.body["MessageId"]


def erase(world, address: str = ADDRESS):
    answer = world.admin("DELETE", f"/addresses/{address}")
    assert answer.status == 200, answer
    return answer


def test_erasure_removes_the_address_from_every_table(world, history):
    erase(world)
    text = world.db.text()
    assert ADDRESS not in text
    assert ADDRESS.split("@")[0] not in text


def test_erasure_removes_the_address_however_it_was_written(world):
    # GIVEN callbacks and a send that wrote the address in other cases
    shouting = ADDRESS.upper()
    assert world.callback("delivery", shouting, bulkId="qcloudses-upper-1").status == 200
    assert world.callback("bounce", "Erased.Person@Customers.Example", bounceType="soft_bounce").status == 200
    assert world.send(web_mail(Destination=[shouting]), key=SERVER).status == 200
    # WHEN the address is erased as written in lower case
    erase(world)
    # THEN no row holds it in any case
    assert ADDRESS not in world.db.text()


def test_erasure_keeps_no_unkeyed_hash_of_the_address(world, history):
    erase(world)
    text = world.db.text()
    for form in (ADDRESS, ADDRESS.upper()):
        for digest in (hashlib.sha256, hashlib.sha1, hashlib.md5):
            assert digest(form.encode()).hexdigest() not in text, digest


@pytest.mark.parametrize(("scope", "reason", "code"), [
    ("all", "hard_bounce", "FailedOperation.EmailAddrInBlacklist"),
    ("all", "spamreport", "FailedOperation.EmailAddrInBlacklist"),
    ("marketing", "unsubscribe", "FailedOperation.ReceiverHasUnsubscribed"),
])
@pytest.mark.parametrize("key", [WEB, SERVER])
def test_an_erased_address_is_refused_as_before(world, scope, reason, code, key):
    world.suppress(ADDRESS, scope, reason)
    erase(world, "Erased.Person@Customers.Example")  # any case names the same person
    with world.untouched(SUPPRESSION_TRACE):
        answer = world.send(web_mail(Destination=["ERASED.person@customers.example"]), key=key)
    assert_refused(answer, 403, code, "Destination[0]")
    assert_no_reason(answer)


@pytest.mark.parametrize("digest", ["daily", "weekly"], ids=["one-by-one", "through-lists"])
def test_an_erased_address_gets_no_digest(world, digest):
    world.suppress(ADDRESS, "all", "hard_bounce")
    erase(world)
    items = [{"Digest": digest, "Email": address, "Item": {"title": "news"}}
             for address in (ADDRESS, "kept1@customers.example", "kept2@customers.example")]
    assert world.digest(items, key=SERVER).status == 200
    assert world.fire(digest).status == 200
    delivered = world.delivered()
    assert ADDRESS not in delivered
    assert delivered.get("kept1@customers.example") == 1


def test_an_erased_address_stays_refused_without_an_erasure_key(world, monkeypatch):
    from sesmail import config

    monkeypatch.delenv("SESMAIL_ERASURE_KEY")
    config.reset()
    world.suppress(ADDRESS, "all", "hard_bounce")
    erase(world)
    with world.untouched(SUPPRESSION_TRACE):
        answer = world.send(web_mail(Destination=[ADDRESS]))
    assert_refused(answer, 403, "FailedOperation.EmailAddrInBlacklist", "Destination[0]")
    assert ADDRESS not in world.db.text()


def test_an_erased_unsubscribe_still_lets_transactional_mail_through(world):
    world.suppress(ADDRESS, "marketing", "unsubscribe")
    erase(world)
    assert world.send(web_mail(Destination=[ADDRESS], TriggerType=1)).status == 200


def test_an_erased_address_is_left_out_of_a_batch(world):
    world.suppress(ADDRESS, "all", "hard_bounce")
    erase(world)
    answer = world.batch({"FromEmailAddress": "news@partner.example", "Subject": "News", "TaskType": 1,
                          "Template": {"TemplateName": "welcome"},
                          "Recipients": [{"Email": ADDRESS}, {"Email": "kept@readers.example"}]}, key=PARTNER)
    assert answer.status == 200, answer
    assert answer.body.get("Suppressed") == ["Recipients[0]"]
    assert ADDRESS not in world.mailed()


def test_the_list_shows_an_erased_suppression_without_an_address(world, history):
    world.suppress("other@customers.example", "all", "hard_bounce")
    erase(world)
    answer = world.admin("GET", "/suppressions")
    assert answer.status == 200, answer
    entries = answer.body["Suppressions"]
    assert len(entries) == 2
    assert ADDRESS not in str(answer.body).lower()
    [kept] = [entry for entry in entries if entry.get("Email") != "other@customers.example"]
    assert not kept.get("Email"), kept


def test_an_address_never_suppressed_is_mailable_after_erasure(world):
    assert world.send(web_mail(Destination=[ADDRESS]), key=SERVER).status == 200
    erase(world)
    assert world.send(web_mail(Destination=[ADDRESS]), key=SERVER).status == 200


def test_erasure_is_answered_only_to_the_admin(world, history):
    for key in (WEB, PARTNER, FEED):
        with world.untouched():
            answer = world.admin("DELETE", f"/addresses/{ADDRESS}", key=key)
        assert_refused(answer, 403, "UnauthorizedOperation.ScopeNotAllowed", "Authorization")
    assert world.admin("DELETE", f"/addresses/{ADDRESS}", key=ADMIN).status == 200


def test_no_file_of_a_sqlite_store_holds_an_erased_address(world, history):
    if world.db.kind != "sqlite":
        pytest.skip("a server database's own logs and backups follow its retention")
    erase(world)
    forms = {ADDRESS.encode(), ADDRESS.upper().encode(), ADDRESS.encode("utf-16-le")}
    holding = []
    for folder, _, files in os.walk(world.db.directory):
        for name in files:
            with open(os.path.join(folder, name), "rb") as handle:
                content = handle.read()
            if any(form in content or form in content.lower() for form in forms):
                holding.append(name)
    assert os.listdir(world.db.directory), "the store wrote no file"
    assert holding == [], holding
