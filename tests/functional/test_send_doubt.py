"""One request's doubt is never another request's answer: two sends to one recipient whose
outcomes are both unknown each end with their own mail, once (docs/reliability.md#leases).

SES's status index (GetSendEmailStatus) has no subject, so the only thing that tells two attempts
apart there is time: the recipient leases keep their windows from overlapping. These tests shrink
the clock-skew allowance to 0 (the emulator shares our clock), so a window passes in about 2 s.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from sesmail import config, leases
from tests.events import context, http_event, sample_send_payload


@pytest.fixture
def short_windows(env, monkeypatch):
    monkeypatch.setattr(leases, "CLOCK_SKEW_S", 0)
    monkeypatch.setattr(leases, "MARGIN_S", 2)
    monkeypatch.setattr(leases, "WAIT_S", 0.5)  # shorter than a window: a held-back send answers 503
    monkeypatch.setenv("SESMAIL_SETTLE_SECONDS", "1")
    config.reset()


def mail(subject: str) -> dict:
    payload = sample_send_payload()
    payload["Destination"] = ["carol@example.com"]
    payload["Subject"] = subject
    return payload


def post(send, subject: str, key: str | None) -> tuple[int, dict]:
    headers = {"Idempotency-Key": key} if key else {}
    result = send(http_event(mail(subject), headers=headers), context())
    return result["statusCode"], json.loads(result["body"])


def wait_out(seconds: float = 2.2) -> None:
    time.sleep(seconds)  # the doubt's window plus the margin, and SES's settle time


def test_the_reported_interleaving_ends_with_each_key_its_own_mail(send, ses_fake, short_windows):
    # 1. A to carol: SES stores it, the reply is lost
    ses_fake.drop_after("SendEmail")
    status, body = post(send, "Order A", "KA")
    assert (status, body["Error"]["Outcome"]) == (503, "Unknown")
    # 2. B to carol at once: held back before SES, its key left free
    status, body = post(send, "Order B", "KB")
    assert (status, body["Error"]["Code"], body["Error"]["Outcome"]) == (503, "ResourceInUse.OutcomeInDoubt",
                                                                         "NotSent")
    assert [m["Subject"] for m in ses_fake.sent] == ["Order A"]
    # 3. once A's window has passed, B goes out; the connection closes before SES acts
    wait_out()
    ses_fake.drop_before("SendEmail")
    status, body = post(send, "Order B", "KB")
    assert (status, body["Error"]["Outcome"]) == (503, "Unknown")
    # 4. KB repeated: never A's mail. Once SES settled with no row in B's window, B is sent
    wait_out()
    status, body = post(send, "Order B", "KB")
    assert status == 200
    b_id = body["MessageId"]
    # 5. KA repeated: A's own mail, adopted, nothing sent again
    status, body = post(send, "Order A", "KA")
    assert status == 200
    a_id = body["MessageId"]
    by_id = {m["MessageId"]: m["Subject"] for m in ses_fake.sent}
    assert by_id == {a_id: "Order A", b_id: "Order B"}
    assert len(ses_fake.sent) == 2


def test_a_send_without_a_key_whose_reply_was_lost_is_never_adopted_by_a_keyed_doubt(send, ses_fake, short_windows):
    # GIVEN a send without a key whose reply was lost (its mail went out)
    ses_fake.drop_after("SendEmail")
    assert post(send, "No key", None)[0] == 503
    # AND a keyed send after its window that never reached SES
    wait_out()
    ses_fake.drop_before("SendEmail")
    assert post(send, "Keyed", "K1")[0] == 503
    # WHEN the key is repeated after SES settled
    wait_out()
    status, body = post(send, "Keyed", "K1")
    # THEN it is sent anew: the other mail was not taken for it
    assert status == 200
    assert {m["MessageId"]: m["Subject"] for m in ses_fake.sent}[body["MessageId"]] == "Keyed"
    assert sorted(m["Subject"] for m in ses_fake.sent) == ["Keyed", "No key"]


def test_a_send_that_waited_for_an_attempt_in_flight_goes_out_once_it_answered(send, ses_fake, short_windows,
                                                                               monkeypatch):
    # GIVEN a slow SES: the first send is in flight for 0.6 s
    monkeypatch.setattr(leases, "WAIT_S", 5.0)
    ses_fake.delay("SendEmail", 0.6)
    answers: list[tuple[int, dict]] = []
    first = threading.Thread(target=lambda: answers.append(post(send, "First", "K1")))
    first.start()
    time.sleep(0.2)
    # WHEN a second send to the same recipient comes meanwhile
    second = post(send, "Second", "K2")
    first.join()
    # THEN it waited for the first's answer and then went out
    assert second[0] == 200 and answers[0][0] == 200
    assert [m["Subject"] for m in ses_fake.sent] == ["First", "Second"]
