"""Delivery simulation: outcomes by recipient, SES-shaped callbacks, status rows, events on demand."""

from __future__ import annotations

import json
import os
import time
import urllib.request

import pytest

from tests.local.conftest import ROOT
from tests.local.helpers import Receiver, call, template_data

# Every field SES's callback documentation names (docs/ses.md), beyond the 2025 sample's two
# undocumented extras.
DOCUMENTED = {"event", "email", "link", "bulkId", "timestamp", "reason", "bounceType", "username", "from",
              "fromDomain", "templateId", "useragent", "subject", "messageId", "eventid", "taskId"}


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def send(client, *to, **overrides):
    params = {"FromEmailAddress": "Shop <noreply@sesmail.local>", "Destination": list(to), "Subject": "Hi",
              "Template": {"TemplateID": 1, "TemplateData": template_data(order="1001")}}
    params.update(overrides)
    return call(client, "SendEmail", params)["MessageId"]


def status(client, message_id):
    rows = call(client, "GetSendEmailStatus", {"RequestDate": "2026-05-01", "MessageId": message_id, "Offset": 0,
                                               "Limit": 100})["EmailStatusList"]
    return {row["ToEmailAddress"]: row for row in rows}


def wait(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for the emulator's worker"
        time.sleep(0.01)


def test_each_recipient_gets_the_outcome_its_local_part_names(ses, client, receiver):
    ses.callback_url = receiver.url
    message_id = send(client, "ada@example.com", "bounce@example.com", "softbounce+1@example.com",
                      "complaint@example.com", "unsubscribe@example.com")
    bodies = receiver.wait_for(7)
    got = sorted((b["email"], b["event"], b["bounceType"], b["eventid"]) for b in bodies)
    assert got == [("ada@example.com", "delivered", "", 1), ("bounce@example.com", "bounce", "hard_bounce", 3),
                   ("complaint@example.com", "delivered", "", 1), ("complaint@example.com", "spamreport", "", 6),
                   ("softbounce+1@example.com", "bounce", "soft_bounce", 3),
                   ("unsubscribe@example.com", "delivered", "", 1), ("unsubscribe@example.com", "unsubscribe", "", 7)]
    assert set(receiver.content_types) == {"application/json"}
    rows = status(client, message_id)
    assert (rows["ada@example.com"]["DeliverStatus"], rows["bounce@example.com"]["DeliverStatus"]) == (1, 3)
    assert rows["bounce@example.com"]["DeliverMessage"].startswith("550 5.1.1")
    assert rows["complaint@example.com"]["UserComplainted"] is True
    assert rows["unsubscribe@example.com"]["UserUnsubscribed"] is True


def test_callbacks_carry_the_documented_fields_like_the_fixtures(ses, client, receiver):
    ses.callback_url = receiver.url
    message_id = send(client, "bounce@example.com", Subject="Zahlung für {{order}}",
                      SmtpMessageId="<order-1001@shop.example>")
    [body] = receiver.wait_for(1)
    with open(os.path.join(ROOT, "tests", "fixtures", "events", "ses-callback-bounce.json")) as handle:
        sample = json.load(handle)
    assert set(body) <= DOCUMENTED
    assert set(body) >= {"event", "email", "bulkId", "timestamp", "reason", "bounceType", "username", "from",
                         "fromDomain", "templateId", "subject", "messageId", "eventid", "link"}
    assert {k: type(v) for k, v in body.items() if k in sample} == {k: type(sample[k]) for k in body if k in sample}
    assert body["bulkId"] == message_id
    assert (body["from"], body["fromDomain"], body["templateId"]) == ("noreply@sesmail.local", "sesmail.local", 1)
    assert body["messageId"] == "order-1001@shop.example"
    assert body["subject"].startswith("=?utf-8?")  # non-ASCII subjects arrive MIME-encoded
    assert body["timestamp"] == int(ses.clock())


def test_a_deferred_mail_is_delivered_later(ses, client, clock, receiver):
    ses.callback_url = receiver.url
    message_id = send(client, "deferred@example.com")
    [first] = receiver.wait_for(1)
    assert (first["event"], first["eventid"]) == ("deferred", 8)
    assert status(client, message_id)["deferred@example.com"]["DeliverStatus"] == 8
    clock.advance(ses.deferred_seconds)
    bodies = receiver.wait_for(2)
    assert bodies[1]["event"] == "delivered"
    assert status(client, message_id)["deferred@example.com"]["DeliverStatus"] == 1


def test_opens_and_clicks_happen_on_demand(ses, client, receiver):
    ses.callback_url = receiver.url
    message_id = send(client, "ada@example.com")
    receiver.wait_for(1)
    ses.simulate(message_id, "open")
    ses.simulate(message_id, "click")
    opened, clicked = receiver.wait_for(3)[1:]
    assert (opened["event"], opened["eventid"], "useragent" in opened) == ("open", 4, True)
    assert (clicked["event"], clicked["link"]) == ("click", "https://example.com/orders/1001")
    row = status(client, message_id)["ada@example.com"]
    assert (row["UserOpened"], row["UserClicked"]) == (True, True)


def test_simulate_refuses_unknown_mails_events_and_recipients(ses, client):
    message_id = send(client, "ada@example.com")
    with pytest.raises(KeyError):
        ses.simulate("qcloudses-nope", "open")
    with pytest.raises(ValueError):
        ses.simulate(message_id, "teleport")
    with pytest.raises(ValueError):
        ses.simulate(message_id, "open", email="bob@example.com")


def test_a_failed_callback_is_retried_then_delivered(ses, client, clock):
    flaky = Receiver(statuses=(500, 503, 200))
    try:
        ses.callback_url = flaky.url
        send(client, "ada@example.com")
        wait(lambda: flaky.attempts() == 1)
        clock.advance(ses.callback_retry_delays[0])
        wait(lambda: flaky.attempts() == 2)
        clock.advance(ses.callback_retry_delays[1])
        [body] = flaky.wait_for(1)
        assert body["event"] == "delivered"
        wait(lambda: ses.message("latest")["Events"][0]["Callback"] == "posted")
        [event] = ses.message("latest")["Events"]
        assert (event["Callback"], event["Attempts"]) == ("posted", 3)
    finally:
        flaky.close()


def test_a_callback_nobody_accepts_is_dropped_after_a_few_tries(ses, client, clock):
    down = Receiver(statuses=(500,))
    try:
        ses.callback_url = down.url
        send(client, "ada@example.com")
        tries = len(ses.callback_retry_delays) + 1
        for attempt in range(1, tries + 1):
            wait(lambda attempt=attempt: down.attempts() == attempt)
            clock.advance(60)
        wait(lambda: ses.message("latest")["Events"][0]["Callback"] == "failed")
        assert down.attempts() == tries
        assert ses.message("latest")["Events"][0]["CallbackError"] == "HTTP 500"
    finally:
        down.close()


def test_without_a_callback_url_events_are_recorded_but_not_posted(ses, client):
    send(client, "ada@example.com")
    wait(lambda: ses.message("latest")["Events"][0]["Callback"] == "off")
    assert ses.message("latest")["State"] == "delivered"


def test_the_json_api_simulates_events(ses, client):
    message_id = send(client, "ada@example.com", "bob@example.com")
    request = urllib.request.Request(f"{ses.url}/_local/messages/{message_id}/events", method="POST",
                                     data=json.dumps({"Event": "complaint", "Email": "bob@example.com"}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        event = json.loads(reply.read())["Event"]
    assert (event["event"], event["email"]) == ("spamreport", "bob@example.com")
    events = [(e["Event"], e["Email"]) for e in ses.message(message_id)["Events"]]
    assert ("spamreport", "bob@example.com") in events
