"""The local stack with `SESMAIL_TRANSPORT=smtp`: send goes through the emulated SMTP interface, the
mail shows on the mail page, and its callbacks reach the webhook and the message's status by the
Message-ID. Also: the functions' config the stack writes (the repo's sesmail.json with the
emulator's template IDs and variables)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

import pytest

from local.stack import Stack
from tests.local.helpers import wait_for


@pytest.fixture
def smtp_stack(clean_env, tmp_path, monkeypatch):
    monkeypatch.setenv("SESMAIL_TRANSPORT", "smtp")
    running = Stack(gateway_port=0, emulator_port=0, data_dir=str(tmp_path / "data")).start()
    yield running
    running.stop()


def request(url: str, body=None, method: str | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data else "GET"),
                                 headers={"Authorization": "Bearer dev-key", "Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_send_over_smtp_reaches_the_mail_page_and_its_callbacks_the_status(smtp_stack):
    assert f"SES SMTP       127.0.0.1:{smtp_stack.smtp.port}" in smtp_stack.banner()
    status, body = request(f"{smtp_stack.gateway.url}/send", {
        "Destination": ["ada@smtp.example", "bounce@smtp.example"], "Subject": "Welcome", "TriggerType": 1,
        "Template": {"TemplateName": "welcome", "TemplateData": {"name": "Ada"}}})
    assert status == 200, body
    message_id = body["MessageId"]
    assert message_id.endswith("@sesmail.local")  # the default sender's domain
    _, mail = request(f"{smtp_stack.emulator.url}/_local/messages/latest")
    assert (mail["Action"], dict(mail["Headers"])["Message-ID"]) == ("SMTP", f"<{message_id}>")
    assert "Welcome, Ada!" in mail["Html"]
    assert smtp_stack.emulator.sent == []  # nothing through the API

    def events():
        code, state = request(f"{smtp_stack.gateway.url}/messages/{message_id}")
        return code == 200 and {(e["Event"], e["Email"]) for e in state["Events"]}

    wait_for(lambda: {("delivered", "ada@smtp.example"), ("bounce", "bounce@smtp.example")} <= (events() or set()),
             what="the callbacks of the SMTP mail, found by its Message-ID")
    # The hard bounce suppresses the address for the next send, over SMTP as over the API.
    status, body = request(f"{smtp_stack.gateway.url}/send", {
        "Destination": ["bounce@smtp.example"], "Subject": "Again",
        "Template": {"TemplateName": "welcome", "TemplateData": {"name": "B"}}})
    assert (status, body["Error"]["Code"]) == (403, "FailedOperation.EmailAddrInBlacklist")


def test_smtp_refuses_what_it_cannot_carry_in_the_local_stack(smtp_stack):
    status, body = request(f"{smtp_stack.gateway.url}/send", {
        "Destination": ["ada@smtp.example"], "Cc": ["bob@smtp.example"], "Subject": "Hi", "TriggerType": 1,
        "Template": {"TemplateName": "welcome", "TemplateData": {"name": "Ada"}}})
    assert (status, body["Error"]["Code"], body["Error"]["Field"]) == (400, "InvalidParameter.NotSupportedBySmtp", "Cc")


def test_the_functions_config_is_the_repos_with_the_emulators_template_ids(smtp_stack):
    with open(os.environ["SESMAIL_CONFIG"], encoding="utf-8") as handle:
        written = json.load(handle)
    assert written["Templates"] == {"order": 1, "welcome": 2, "digest": 3, "code": 4}
    assert written["TemplateVariables"] == {"1": ["order"], "2": ["name"], "3": ["count", "titles"], "4": ["code"]}
    assert "daily" in written["Digests"]  # from the repo's sesmail.json, which serverless.yml's timer names
