"""Idempotency-Key on POST /send: one mail per key and body, whatever happens (docs/reliability.md)."""

from __future__ import annotations

import json
import threading
import time

import pytest

from sesmail import config, store
from sesmail.errors import StoreUnavailable
from sesmail.idempotency import fingerprint
from tests import db
from tests.events import context, http_event, sample_send_payload


def post(send, payload=None, key="dev-key", idem="order-42", **kwargs):
    headers = {"idempotency-key": idem} if idem is not None else {}
    return send(http_event(payload or sample_send_payload(), key=key, headers=headers), context(**kwargs))


def body_of(result) -> dict:
    return json.loads(result["body"])


def the_store():
    return store.open_store(config.load().database_url)


def backdate(seconds: float) -> None:
    """Move every idempotency attempt `seconds` into the past (as if time had passed)."""
    url = config.load().database_url
    opened = the_store()
    for scope, key in db.execute(url, "SELECT scope, idem_key FROM sesmail_idempotency"):
        record = opened.idem_get(scope, key)
        attempt = record["attempt"]
        for name in ("Started", "Ended"):
            if name in attempt:
                attempt[name] -= seconds
        opened.idem_update(scope, key, record["version"], attempt=attempt,
                           created_at=record["created_at"] - seconds, expires_at=record["expires_at"] - seconds)
    db.execute(url, "UPDATE sesmail_leases SET expires_at = expires_at - ?", (seconds,))


def test_the_same_key_and_body_replays_the_first_response_and_sends_once(send, ses_fake):
    first = post(send)
    second = post(send)
    assert first["statusCode"] == second["statusCode"] == 200
    assert body_of(first)["MessageId"] == body_of(second)["MessageId"]
    assert second["headers"]["Idempotent-Replayed"] == "true"
    assert len(ses_fake.sent) == 1


def test_the_same_body_in_another_key_order_counts_as_the_same_body(send, ses_fake):
    payload = sample_send_payload()
    reordered = dict(reversed(list(payload.items())))
    assert body_of(post(send, payload))["MessageId"] == body_of(post(send, reordered))["MessageId"]
    assert len(ses_fake.sent) == 1


def test_the_same_key_with_another_body_is_refused_with_409(send, ses_fake):
    post(send)
    other = sample_send_payload()
    other["Subject"] = "Another subject"
    result = post(send, other)
    assert result["statusCode"] == 409
    assert body_of(result)["Error"]["Code"] == "ResourceInUse.IdempotencyKeyReused"
    assert len(ses_fake.sent) == 1


def test_keys_of_one_client_share_a_scope_across_rotation(send, ses_fake):
    first = post(send, key="web-key-1")
    second = post(send, key="web-key-2")
    assert body_of(first)["MessageId"] == body_of(second)["MessageId"]
    assert len(ses_fake.sent) == 1


def test_different_clients_do_not_share_idempotency_keys(send, ses_fake):
    post(send, key="dev-key")
    post(send, key="web-key-1")
    assert len(ses_fake.sent) == 2


def test_a_repeat_while_the_first_is_still_running_gets_409_with_retry_after(send, ses_fake):
    ses_fake.delay("SendEmail", 1.5)
    results = {}
    first = threading.Thread(target=lambda: results.setdefault("first", post(send)))
    first.start()
    for _ in range(200):  # wait until the first request has reached SES
        if ses_fake.calls:
            break
        time.sleep(0.01)
    results["second"] = post(send)
    first.join()
    assert results["first"]["statusCode"] == 200
    assert results["second"]["statusCode"] == 409
    assert body_of(results["second"])["Error"]["Code"] == "ResourceInUse.IdempotencyKeyInFlight"
    assert int(results["second"]["headers"]["Retry-After"]) >= 1
    assert len(ses_fake.sent) == 1


def test_a_refusal_by_ses_leaves_the_key_free(send, ses_fake):
    ses_fake.fail("SendEmail", "FailedOperation.InvalidTemplateID")
    assert post(send)["statusCode"] == 400
    assert post(send)["statusCode"] == 200
    assert len(ses_fake.sent) == 1


def test_an_unknown_outcome_that_did_send_is_resolved_to_the_same_message_id(send, ses_fake):
    ses_fake.drop_after("SendEmail")
    first = post(send)
    assert first["statusCode"] == 503
    assert body_of(first)["Error"]["Outcome"] == "Unknown"
    second = post(send)
    assert second["statusCode"] == 200
    assert body_of(second)["MessageId"] == ses_fake.sent[0]["MessageId"]
    assert len(ses_fake.sent) == 1
    assert any(call["Action"] == "GetSendEmailStatus" for call in ses_fake.calls)
    assert body_of(post(send))["MessageId"] == ses_fake.sent[0]["MessageId"]  # and stays resolved


def test_an_unknown_outcome_that_did_not_send_waits_for_ses_to_settle(send, ses_fake):
    ses_fake.fail("SendEmail", "InternalError")
    assert post(send)["statusCode"] == 503
    early = post(send)
    assert early["statusCode"] == 503
    assert body_of(early)["Error"]["Code"] == "ResourceInUse.OutcomeInDoubt"
    assert int(early["headers"]["Retry-After"]) >= 1
    assert ses_fake.sent == []


def test_an_unknown_outcome_that_did_not_send_frees_the_key_once_settled(send, ses_fake):
    ses_fake.fail("SendEmail", "InternalError")
    assert post(send)["statusCode"] == 503
    backdate(config.load().settle_seconds + 1)
    result = post(send)
    assert result["statusCode"] == 200
    assert len(ses_fake.sent) == 1


def test_a_send_to_a_recipient_whose_attempt_is_in_doubt_is_held_back_without_calling_ses(send, ses_fake):
    # GIVEN an in-doubt attempt to user@example.com
    ses_fake.fail("SendEmail", "InternalError")
    assert post(send)["statusCode"] == 503
    calls = len(ses_fake.calls)
    # WHEN another request (without a key, or with another key) mails the same recipient
    for idem in (None, "order-43"):
        held = post(send, idem=idem)
        # THEN it answers 503 at once, says nothing was sent, and SES is not called
        error = body_of(held)["Error"]
        assert (held["statusCode"], error["Code"], error["Outcome"]) == (503, "ResourceInUse.OutcomeInDoubt", "NotSent")
        assert int(held["headers"]["Retry-After"]) >= 1
    assert len(ses_fake.calls) == calls
    # AND the other key stayed free: once the doubt's window has passed it sends
    backdate(60)
    assert post(send, idem="order-43")["statusCode"] == 200


def test_a_mail_sent_after_the_doubts_window_is_never_adopted_by_it(send, ses_fake):
    # GIVEN an in-doubt attempt, then (its window passed) another mail to the same recipient
    ses_fake.fail("SendEmail", "InternalError")
    assert post(send)["statusCode"] == 503
    backdate(60)
    unrelated = post(send, idem=None)
    assert unrelated["statusCode"] == 200
    # WHEN the key is repeated after SES settled
    backdate(config.load().settle_seconds + 1)
    result = post(send)
    # THEN the other mail is not taken for ours: a new one is sent
    assert result["statusCode"] == 200
    assert body_of(result)["MessageId"] != body_of(unrelated)["MessageId"]
    assert len(ses_fake.sent) == 2


def test_sends_to_one_recipient_one_after_another_never_wait(send, ses_fake):
    started = time.monotonic()
    answers = [post(send, idem=f"order-{n}") for n in range(5)] + [post(send, idem=None) for _ in range(3)]
    assert [a["statusCode"] for a in answers] == [200] * 8
    assert time.monotonic() - started < 5  # a held-back send waits at least a poll; none did
    assert len(ses_fake.sent) == 8
    assert db.one(config.load().database_url, "SELECT COUNT(*) FROM sesmail_leases WHERE owner <> ''") == 0


def test_a_run_that_died_between_the_record_and_the_ses_call_does_not_block_the_key(send, ses_fake):
    # GIVEN a "running" record whose run died before calling SES (written as the handler writes it)
    now = time.time()
    the_store().idem_insert({
        "scope": "default", "idem_key": "order-42",
        "fingerprint": fingerprint(sample_send_payload()),
        "state": "running", "status": None, "response": None,
        "attempt": {"Action": "SendEmail", "Sender": "noreply@mail.qcloud.com",
                    "Destination": ["user@example.com"], "Started": now, "Limit": 30.0},
        "created_at": now, "updated_at": now, "expires_at": now + 86400, "version": 1})
    # WHEN repeated while it could still be running: 409
    assert post(send)["statusCode"] == 409
    # WHEN repeated after its time limit and SES's settle time: SES has no such mail, so it is sent
    backdate(30 + config.load().settle_seconds + 1)
    assert post(send)["statusCode"] == 200
    assert len(ses_fake.sent) == 1


def test_a_run_that_died_after_ses_accepted_is_resolved_without_sending_again(send, ses_fake, monkeypatch):
    # GIVEN SES accepted the mail but completing the record failed (the run died there)
    original = store.sql.SqlStore.idem_update

    def failing(self, scope, key, version, **fields):
        if fields.get("state") == "done":
            raise StoreUnavailable("the database is unavailable")
        return original(self, scope, key, version, **fields)

    monkeypatch.setattr(store.sql.SqlStore, "idem_update", failing)
    first = post(send)
    assert first["statusCode"] == 200  # SES accepted: the caller gets its MessageId regardless
    monkeypatch.setattr(store.sql.SqlStore, "idem_update", original)
    # WHEN the key is repeated after the run's time limit
    backdate(31)
    second = post(send)
    # THEN the first MessageId is returned and nothing is sent again
    assert body_of(second)["MessageId"] == body_of(first)["MessageId"]
    assert len(ses_fake.sent) == 1


def test_a_store_failure_after_ses_accepted_still_returns_the_message_id(send, ses_fake, monkeypatch):
    def down(*args, **kwargs):
        raise StoreUnavailable("the database is unavailable")

    monkeypatch.setattr(store.sql.SqlStore, "record_sent", down)
    monkeypatch.setattr(store.sql.SqlStore, "idem_update", down)
    result = post(send)
    assert result["statusCode"] == 200
    assert body_of(result)["MessageId"] == ses_fake.sent[0]["MessageId"]


def test_the_store_down_before_the_call_answers_503_and_sends_nothing(send, ses_fake, monkeypatch):
    def down(*args, **kwargs):
        raise StoreUnavailable("the database is unavailable")

    monkeypatch.setattr(store.sql.SqlStore, "idem_insert", down)
    result = post(send)
    assert result["statusCode"] == 503
    assert body_of(result)["Error"]["Outcome"] == "NotSent"
    assert ses_fake.calls == []


def test_an_expired_key_may_send_again(send, ses_fake):
    post(send)
    backdate(config.load().idempotency_ttl + 1)
    post(send)
    assert len(ses_fake.sent) == 2


@pytest.mark.parametrize("key", ["", "x" * 256, "bad\nkey"])
def test_a_malformed_idempotency_key_is_refused(send, ses_fake, key):
    result = post(send, idem=key)
    assert result["statusCode"] == 400
    assert body_of(result)["Error"]["Field"] == "Idempotency-Key"
    assert ses_fake.calls == []
