"""The local stack in-process: its settings, the emulator's setup, timers, and a clean stop."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest

from local import stack as stack_module
from local.stack import Stack
from tests.local.helpers import wait_for

ECHO = """
CALLS = []


def main_handler(event, context):
    CALLS.append((event, context["time_limit_in_ms"]))
    if event.get("Message") == "fail":
        raise RuntimeError("a run error")
    return {"Echo": event}
"""


@pytest.fixture
def timers_file(tmp_path):
    folder = tmp_path / "functions" / "echo"
    folder.mkdir(parents=True)
    (folder / "index.py").write_text(ECHO)
    path = tmp_path / "serverless.yml"
    path.write_text(textwrap.dedent(f"""
        component: scf
        name: echo
        inputs:
          src: {{src: {json.dumps(str(folder))}}}
          handler: index.main_handler
          timeout: 7
          asyncRunEnable: true
          retryNum: 1
          events:
            - timer: {{parameters: {{name: every-minute, cronExpression: '0 * * * * * *', enable: true,
                                     argument: hello}}}}
            - timer: {{parameters: {{name: failing, cronExpression: '0 0 * * * * *', enable: true,
                                     argument: fail}}}}
            - timer: {{parameters: {{name: by-hand, cronExpression: '0 0 0 * * * *', argument: manual}}}}
    """))
    return str(path)


def start(tmp_path, timers_file=None):
    return Stack(gateway_port=0, emulator_port=0, data_dir=str(tmp_path / "data"), serverless_file=timers_file).start()


def test_the_stack_sets_up_the_emulator_as_a_fresh_account(clean_env, tmp_path, monkeypatch):
    monkeypatch.setenv("SESMAIL_EMULATOR_SENDERS", "news@shop.example, Shop <shop@shop.example>")
    monkeypatch.setenv("SESMAIL_EMULATOR_RECIPIENT_HOURLY_LIMIT", "0")
    monkeypatch.setenv("SESMAIL_EMULATOR_CHAOS", "GetSendEmailStatus:latency=1ms")
    stack = start(tmp_path)
    try:
        emu = stack.emulator
        # the stack's own, SESMAIL_EMULATOR_SENDERS, and the senders of the repository's sesmail.json
        assert emu.senders == {"noreply@sesmail.local", "noreply@example.com", "news@shop.example",
                               "shop@shop.example", "noreply@mail.example.com", "digest@mail.example.com"}
        limits = (emu.template_check, emu.rate_limit, emu.recipient_hourly_limit, emu.daily_quota)
        assert limits == (True, 20, None, 500)
        assert emu.callback_url == f"{stack.gateway.url}/webhook?token=dev-secret"
        assert emu.chaos.describe()["Chaos"] == "GetSendEmailStatus:latency=1ms"
        assert os.environ["SESMAIL_SES_ENDPOINT"] == emu.endpoint
        with open(os.environ["SESMAIL_CONFIG"]) as handle:
            assert json.load(handle)["Templates"]["welcome"] == 2
        banner = stack.banner()
        for piece in (stack.gateway.url, f"{emu.url}/", "dev-key", "dev-secret", "AKIDlocal", "2 welcome"):
            assert piece in banner
    finally:
        stack.stop()
    # The environment is given back as it was (only the test's own settings remain).
    assert sorted(name for name in os.environ if name.startswith(("SESMAIL_", "TENCENTCLOUD_"))) == [
        "SESMAIL_EMULATOR_CHAOS", "SESMAIL_EMULATOR_RECIPIENT_HOURLY_LIMIT", "SESMAIL_EMULATOR_SENDERS"]


def test_settings_already_set_win_and_callbacks_can_be_turned_off(clean_env, tmp_path, monkeypatch):
    monkeypatch.setenv("SESMAIL_API_KEYS", "my-key")
    monkeypatch.setenv("SESMAIL_SES_ENDPOINT", "ses.tencentcloudapi.com")  # never a real account locally
    monkeypatch.setenv("SESMAIL_EMULATOR_CALLBACK_URL", "off")
    stack = start(tmp_path)
    try:
        assert os.environ["SESMAIL_API_KEYS"] == "my-key"
        assert os.environ["SESMAIL_SES_ENDPOINT"] == stack.emulator.endpoint
        assert stack.emulator.callback_url is None
    finally:
        stack.stop()
    assert os.environ["SESMAIL_API_KEYS"] == "my-key"
    assert os.environ["SESMAIL_SES_ENDPOINT"] == "ses.tencentcloudapi.com"


def test_a_bad_chaos_variable_stops_the_start(clean_env, tmp_path, monkeypatch):
    monkeypatch.setenv("SESMAIL_EMULATOR_CHAOS", "SendEmail:explode=1")
    stack = Stack(gateway_port=0, emulator_port=0, data_dir=str(tmp_path / "data"))
    with pytest.raises(SystemExit, match="SESMAIL_EMULATOR_CHAOS"):
        stack.start()
    stack.stop()


def test_timers_are_listed_fired_now_and_on_schedule(clean_env, tmp_path, timers_file, monkeypatch):
    monkeypatch.setattr(stack_module, "TIMER_RETRY_DELAY_S", 0.01)
    stack = start(tmp_path, timers_file)
    try:
        calls = sys.modules["functions_echo_index"].CALLS
        with urllib.request.urlopen(f"{stack.emulator.url}/_local/timers", timeout=10) as reply:
            listed = {t["TriggerName"]: t for t in json.loads(reply.read())["Timers"]}
        assert (listed["every-minute"]["Enabled"], listed["by-hand"]["Enabled"], listed["by-hand"]["Next"]) == (
            True, False, None)
        # Fired now through the emulator's API: the function's answer comes back.
        request = urllib.request.Request(f"{stack.emulator.url}/_local/timers/by-hand", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10) as reply:
            fired = json.loads(reply.read())
        event = fired["Result"]["Echo"]
        assert (event["Type"], event["TriggerName"], event["Message"]) == ("Timer", "by-hand", "manual")
        assert datetime.strptime(event["Time"], "%Y-%m-%dT%H:%M:%SZ")
        assert calls[-1][1] == 7000  # the timeout of serverless.yml, in the context
        # On schedule: what is due runs; the disabled timer does not.
        assert stack.scheduler is not None
        later = datetime.now(timezone.utc) + timedelta(hours=1, minutes=1)
        stack.scheduler.run_pending(later)
        wait_for(lambda: {c[0]["TriggerName"] for c in calls} >= {"every-minute", "failing"}, what="the timers")
        # A run that raises is retried (retryNum: 1, applied with asyncRunEnable -> two attempts in all).
        wait_for(lambda: [c[0]["TriggerName"] for c in calls].count("failing") == 2, what="the retry")
        assert [c[0]["TriggerName"] for c in calls].count("by-hand") == 1
    finally:
        stack.stop()


def test_a_config_file_the_functions_would_refuse_stops_the_start_naming_file_path_and_rule(
        clean_env, tmp_path, monkeypatch, capsys):
    bad = tmp_path / "sesmail.json"
    bad.write_text(json.dumps({"Clients": {"web": {"Senders": ["@shop.example"]}}}))  # no Scopes
    monkeypatch.setenv("SESMAIL_CONFIG", str(bad))
    monkeypatch.setattr(stack_module.signal, "signal", lambda *args: None)  # pytest keeps its own handlers
    status = stack_module._dev(["--gateway-port", "0", "--emulator-port", "0", "--smtp-port", "0", "--data-dir",
                                str(tmp_path / "data")])
    assert status == 2
    assert capsys.readouterr().err.strip() == (
        f"cannot start the local stack: {bad}: Clients.web.Scopes: is required: a policy names the scopes its keys"
        " may use (send, batch, digest, stats, admin)")
    assert sorted(name for name in os.environ if name.startswith("SESMAIL_")) == ["SESMAIL_CONFIG"]


def test_the_banner_prints_each_clients_effective_access(clean_env, tmp_path, monkeypatch):
    monkeypatch.setenv("SESMAIL_API_KEYS", "dev-key,web=web-key")
    settings = tmp_path / "sesmail.json"
    settings.write_text(json.dumps({"Clients": {"web": {"Scopes": ["send", "digest"], "Senders": ["@shop.example"],
                                                        "ReplyTo": "*", "MailsPerRecipientPerHour": 3}}}))
    monkeypatch.setenv("SESMAIL_CONFIG", str(settings))
    stack = start(tmp_path)
    try:
        lines = stack.banner().splitlines()
    finally:
        stack.stop()
    first = next(index for index, line in enumerate(lines) if line.startswith("  Clients"))
    assert lines[first] == "  Clients        default (1 key): full access (no policy)"
    assert lines[first + 1] == (
        "                 web (1 key): scopes send, digest; senders @shop.example; templates any; reply-to any;"
        " headers none; digests none; receivers none (and its own lists); limits 3 mails/recipient/hour;"
        " origins none (server key)")


def test_a_fresh_stack_sends_the_shipped_digest_from_the_config_files_sender(clean_env, tmp_path):
    # GIVEN a first `make dev` (an empty data directory, no `make sync`) with the repository's
    # sesmail.json and serverless.yml
    with open(os.path.join(stack_module.ROOT, "sesmail.json"), encoding="utf-8") as handle:
        shipped = json.load(handle)
    digest = shipped["Digests"]["daily"]
    stack = start(tmp_path)
    try:
        sender = digest["FromEmailAddress"].rpartition("<")[2].rstrip(">")
        assert {s["EmailAddress"] for s in shipped["Senders"]} | {sender} <= (stack.emulator.senders or set())
        # WHEN an item is queued through the gateway and the shipped timer fires
        item = json.dumps({"Digest": "daily", "Email": "reader@stack.example", "Item": {"title": "First"}}).encode()
        request = urllib.request.Request(f"{stack.gateway.url}/digest/items", data=item, method="POST",
                                         headers={"Authorization": "Bearer dev-key",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as reply:
            assert reply.status == 200
        fired = stack.fire("digest-daily")
        # THEN it is sent, from the digest's sender, rendered from the shipped template
        assert "Error" not in fired, fired
        assert json.loads(fired["Result"]["body"])["Sent"] == 1, fired
        [mail] = [m for m in stack.emulator.sent if m["Destination"] == ["reader@stack.example"]]
        assert mail["FromEmailAddress"] == digest["FromEmailAddress"]
    finally:
        stack.stop()
