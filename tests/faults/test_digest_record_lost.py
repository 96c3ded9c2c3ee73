"""A digest mail that went out and was logged, but whose items were not marked `sent` (the store
failed in between, the run died there, or another run overlapped it), is never sent again and
never takes another request's mail as its own: the sent log keeps it under its carrier reference,
which a later run asks first (docs/reliability.md#digests)."""

from __future__ import annotations

import contextlib
import json
import os
import time

import pytest

from sesmail import config, digest, leases
from sesmail.errors import StoreUnavailable
from sesmail.store.sql import SqlStore
from tests.conftest import ROOT, load_function
from tests.events import context

EVENT = {"Type": "Timer", "TriggerName": "t", "Time": "2026-12-01T00:00:00Z", "Message": "daily"}


@pytest.fixture
def daily(env, tmp_path, monkeypatch):
    """A digest `daily` with one item for carol, windows shrunk to about 2 s; the batch handler."""
    settings_file = tmp_path / "d.json"
    settings_file.write_text(json.dumps({"Templates": {"welcome": 100091}, "Digests": {"daily": {
        "FromEmailAddress": "noreply@mail.qcloud.com", "Subject": "Digest", "Template": {"TemplateName": "welcome"},
        "TemplateData": {"ids": "join(',', [].id)"}}}}))
    monkeypatch.setenv("SESMAIL_CONFIG", str(settings_file))
    monkeypatch.setenv("SESMAIL_SETTLE_SECONDS", "1")
    monkeypatch.setattr(leases, "CLOCK_SKEW_S", 0)
    monkeypatch.setattr(leases, "MARGIN_S", 2)
    config.reset()
    batch = load_function("batch").main_handler
    digest.queue(config.load(os.path.join(ROOT, "functions", "batch")),
                 [{"Digest": "daily", "Email": "carol@example.com", "Item": {"id": "a"}}])
    return batch


def failing_once_after_the_record(monkeypatch) -> None:
    """Marking the items `sent` fails once, right after the mail was logged."""
    finish = SqlStore.finish_digest_items
    failed: list[str] = []

    def finish_once_broken(self, name, email, run, state, carrier):
        if state == "sent" and not failed:
            failed.append(carrier)
            raise StoreUnavailable("injected: the database went away after record_sent")
        return finish(self, name, email, run, state, carrier)

    monkeypatch.setattr(SqlStore, "finish_digest_items", finish_once_broken)


def test_a_digest_logged_but_not_marked_sent_is_not_sent_again(daily, ses_fake, monkeypatch):
    failing_once_after_the_record(monkeypatch)
    with contextlib.suppress(Exception):
        daily(EVENT, context(time_limit_ms=3000))  # SCF would retry it
    assert len(ses_fake.sent) == 1
    time.sleep(4.5)  # the run's time limit and SES's settle time have passed
    daily(dict(EVENT, Time="2026-12-01T00:00:05Z"), context(time_limit_ms=3000))
    assert len(ses_fake.sent) == 1, "the digest went out twice"


def test_such_a_digest_never_takes_a_later_sends_mail_as_its_carrier(daily, ses_fake, monkeypatch):
    from tests.events import http_event, sample_send_payload

    send = load_function("send").main_handler
    failing_once_after_the_record(monkeypatch)
    with contextlib.suppress(Exception):
        daily(EVENT, context(time_limit_ms=3000))
    # a keyed /send to the same recipient right after: its reply is lost (the mail went out)
    body = dict(sample_send_payload(), Destination=["carol@example.com"], Subject="Order 1")
    ses_fake.drop_after("SendEmail")
    send(http_event(body, headers={"Idempotency-Key": "K1"}), context())
    time.sleep(4.5)
    daily(dict(EVENT, Time="2026-12-01T00:00:05Z"), context(time_limit_ms=3000))
    again = send(http_event(body, headers={"Idempotency-Key": "K1"}), context())
    subjects = [m["Subject"] for m in ses_fake.sent]
    assert subjects.count("Order 1") == 1, "the /send mail went out twice"
    assert json.loads(again["body"])["MessageId"] == next(m["MessageId"] for m in ses_fake.sent
                                                          if m["Subject"] == "Order 1")


def test_an_overlapping_run_never_sends_a_digest_another_run_just_adopted(daily, ses_fake, monkeypatch):
    ses_fake.drop_after("SendEmail")  # run 1's digest goes out, its reply is lost: items stay `sending`
    daily(EVENT, context(time_limit_ms=3000))
    time.sleep(4.5)
    finish = SqlStore.finish_digest_items
    interleaved: list = []

    def finish_after_another_run(self, name, email, run, state, carrier):
        # run 2 has adopted the mail into the sent log; run 3 (an overlapping timer run) starts now
        if state == "sent" and not interleaved:
            interleaved.append(daily(dict(EVENT, Time="2026-12-01T00:00:10Z"), context(time_limit_ms=3000)))
        return finish(self, name, email, run, state, carrier)

    monkeypatch.setattr(SqlStore, "finish_digest_items", finish_after_another_run)
    daily(dict(EVENT, Time="2026-12-01T00:00:05Z"), context(time_limit_ms=3000))
    assert interleaved and len(ses_fake.sent) == 1, "the digest went out twice"
