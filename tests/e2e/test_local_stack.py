"""End to end over HTTP: the gateway, the functions, the SES emulator, callbacks and timers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.e2e.conftest import ROOT, TIMER, TIMER_RECIPIENTS
from tests.local.helpers import wait_for


def test_a_send_through_the_gateway_is_stored_rendered_from_its_template(stack):
    # GIVEN no sender (the stack's default) and a template by name (the stack's config maps it)
    status, body = stack.send({"Destination": ["ada@e2e.example"], "Subject": "Welcome",
                               "Template": {"TemplateName": "welcome", "TemplateData": {"name": "Ada"}}})
    assert status == 200, body
    status, mail = stack.local(f"/_local/messages/{body['MessageId']}")
    assert status == 200
    assert (mail["From"], mail["To"], mail["TemplateID"], mail["TemplateName"]) == (
        "noreply@sesmail.local", ["ada@e2e.example"], 2, "welcome")
    assert "Welcome, Ada!" in mail["Text"] and "Welcome, Ada!" in mail["Html"]
    assert ("Subject", "Welcome") in [tuple(h) for h in mail["Headers"]]
    _, latest = stack.local("/_local/messages")
    assert body["MessageId"] in [m["MessageId"] for m in latest["Messages"]]


@pytest.mark.parametrize(("change", "code"), [
    ({"FromEmailAddress": "stranger@e2e.example"}, "FailedOperation.NotAuthenticatedSender"),
    ({"Template": {"TemplateID": 999, "TemplateData": {"name": "x"}}}, "FailedOperation.InvalidTemplateID"),
    ({"Template": {"TemplateID": 2, "TemplateData": {"nickname": "x"}}}, "InvalidParameterValue.TemplateNotMatchData"),
])
def test_what_ses_refuses_reaches_the_caller_with_ses_codes(stack, change, code):
    payload = {"Destination": ["refused@e2e.example"], "Subject": "Hi",
               "Template": {"TemplateID": 2, "TemplateData": {"name": "x"}}}
    payload.update(change)
    status, body = stack.send(payload)
    assert 400 <= status < 500, body
    assert body["Error"]["Code"] == code


def test_delivery_callbacks_reach_the_webhook_and_its_state(stack):
    # transactional: `make dev` has one-click unsubscribe on, and marketing mail to two is refused there
    status, body = stack.send({"Destination": ["bob@e2e.example", "bounce@e2e.example"], "Subject": "Hi",
                               "TriggerType": 1, "Template": {"TemplateID": 2, "TemplateData": {"name": "Bob"}}})
    assert status == 200, body
    message_id = body["MessageId"]

    def events():
        code, state = stack.request(stack.gateway, f"/messages/{message_id}",
                                    headers={"Authorization": "Bearer dev-key"})
        return code == 200 and {(e["Event"], e["Email"]) for e in state["Events"]}

    wait_for(lambda: {("delivered", "bob@e2e.example"), ("bounce", "bounce@e2e.example")} <= (events() or set()),
             what="the delivered and bounce callbacks in the webhook's store")
    # An open, simulated on demand, arrives the same way.
    code, _ = stack.local(f"/_local/messages/{message_id}/events", {"Event": "open", "Email": "bob@e2e.example"})
    assert code == 200
    wait_for(lambda: ("open", "bob@e2e.example") in (events() or set()), what="the open callback")
    # The emulator marks a callback posted once the webhook has answered, just after it stored it.
    wait_for(lambda: {e["Callback"] for e in stack.local(f"/_local/messages/{message_id}")[1]["Events"]} == {"posted"},
             what="every callback marked posted")
    # The hard bounce suppressed the address for every later mail.
    status, refused = stack.send({"Destination": ["bounce@e2e.example"], "Subject": "Again",
                                  "Template": {"TemplateID": 2, "TemplateData": {"name": "x"}}})
    assert (status, refused["Error"]["Code"]) == (403, "FailedOperation.EmailAddrInBlacklist")


def test_timers_are_listed_with_their_next_time(stack):
    status, body = stack.local("/_local/timers")
    assert status == 200
    [timer] = [t for t in body["Timers"] if t["TriggerName"] == TIMER]
    assert (timer["Function"], timer["Enabled"], timer["Next"]) == ("batch", True, "2099-01-01T03:00:00Z")


def test_a_timer_fired_from_the_command_line_runs_its_batch(stack):
    env = dict(os.environ, PYTHONPATH=ROOT)
    fired = subprocess.run([sys.executable, "-m", "local", "fire", TIMER, "--emulator", stack.emulator],
                           capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert fired.returncode == 0, fired.stdout + fired.stderr
    result = json.loads(fired.stdout)
    assert (result["TriggerName"], result["Function"], result["Result"]["statusCode"]) == (TIMER, "batch", 200)
    task_id = json.loads(result["Result"]["body"])["TaskId"]
    wanted = {r["Email"]: f"E2E {r['TemplateData']['name']}" for r in TIMER_RECIPIENTS}

    def sent():
        _, listing = stack.local("/_local/messages?limit=200")
        got = {m["To"][0]: m["Subject"] for m in listing["Messages"] if m["TaskId"] == task_id}
        return got == wanted and got

    wait_for(sent, what="the timer's batch mails")


def test_an_unknown_timer_is_a_404(stack):
    status, body = stack.local("/_local/timers/no-such-timer", {}, method="POST")
    assert (status, body["Error"]["Code"]) == (404, "ResourceNotFound")


def test_fire_without_a_timer_name_lists_the_timers_of_the_running_stack(stack):
    # `make fire` without TRIGGER: what could be fired, and how
    env = dict(os.environ, PYTHONPATH=ROOT)
    listed = subprocess.run([sys.executable, "-m", "local", "fire", "--emulator", stack.emulator],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == "make fire TRIGGER=<TriggerName> runs one of the timers now:"
    assert any(line.split()[:4] == [TIMER, "0", "0", "3"] and "-> batch" in line for line in lines[1:]), lines
