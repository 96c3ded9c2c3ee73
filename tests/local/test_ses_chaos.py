"""Chaos: random faults from the environment or the emulator's API, seen through the real SDK."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from local import chaos
from local.ses_emulator import SesEmulator
from tests.local.helpers import call, code_of, make_client, template_data

MAIL = {"FromEmailAddress": "noreply@sesmail.local", "Destination": ["ada@example.com"], "Subject": "Hi",
        "Template": {"TemplateID": 2, "TemplateData": template_data(name="Ada")}}


def sdk_code(client, action="SendEmail", params=MAIL):
    with pytest.raises(TencentCloudSDKException) as info:
        client.call_json(action, params)
    return info.value.code


def post_chaos(emu, body, method="POST"):
    request = urllib.request.Request(f"{emu.url}/_local/chaos", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())


def test_the_spec_format_parses_every_kind():
    rules, seed = chaos.parse("SendEmail:error=InternalError@0.1; *:latency=50ms-200ms\n"
                              "SendEmail:drop_after=5%; GetSendEmailStatus:http=502@1; *:drop_before=0;"
                              " BatchSendEmail:error_after=InternalError@0.5; seed=7")
    assert seed == 7
    assert [r.text() for r in rules] == [
        "SendEmail:error=InternalError@0.1", "*:latency=50ms-200ms", "SendEmail:drop_after=0.05",
        "GetSendEmailStatus:http=502@1", "*:drop_before=0", "BatchSendEmail:error_after=InternalError@0.5"]


@pytest.mark.parametrize("spec", ["SendEmail:explode=1", "SendEmail:error=0.5", "SendEmail:drop_after=2",
                                  "SendEmail:http=bad@1", "nonsense", "*:latency=-1"])
def test_a_bad_spec_is_refused_with_the_entry_named(spec):
    with pytest.raises(ValueError, match="chaos entry"):
        chaos.parse(spec)


def test_an_error_rule_answers_its_code_and_sends_nothing(ses, client):
    ses.set_chaos("SendEmail:error=FailedOperation.ServiceNotAvailable@1")
    assert sdk_code(client) == "FailedOperation.ServiceNotAvailable"
    assert ses.sent == []
    assert call(client, "ListSendTasks", {"Offset": 0, "Limit": 10})["TotalCount"] == 0  # other actions untouched


def test_drop_after_loses_the_reply_of_a_mail_that_was_sent(ses, client):
    ses.set_chaos("SendEmail:drop_after=1")
    assert sdk_code(client) == "ClientNetworkError"
    assert len(ses.sent) == 1  # a blind retry would now send it twice
    assert ses.calls[-1]["Outcome"] == "dropped"


def test_error_after_answers_an_error_for_a_mail_that_was_sent(ses, client):
    ses.set_chaos("SendEmail:error_after=InternalError@1")
    assert sdk_code(client) == "InternalError"
    assert len(ses.sent) == 1


def test_drop_before_and_http_send_nothing(ses, client):
    ses.set_chaos("*:drop_before=1")
    assert sdk_code(client) == "ClientNetworkError"
    ses.set_chaos("*:http=503@1")
    assert sdk_code(client) == "ServerNetworkError"
    assert ses.sent == []


def test_latency_delays_replies(ses):
    ses.set_chaos("SendEmail:latency=30")
    assert sdk_code(make_client(ses, timeout=0.3)) == "ClientNetworkError"  # a read timeout
    assert len(ses.sent) == 1


def test_rates_draw_from_a_seeded_random_source(ses, client):
    outcomes = []
    for _ in range(2):
        ses.set_chaos("SendEmail:error=InternalError@0.5; seed=42")
        run = []
        for _ in range(20):
            try:
                client.call_json("SendEmail", MAIL)
                run.append("ok")
            except TencentCloudSDKException as exc:
                run.append(exc.code)
        outcomes.append(run)
    assert outcomes[0] == outcomes[1]
    assert set(outcomes[0]) == {"ok", "InternalError"}


def test_scripted_faults_take_precedence_over_chaos(ses, client):
    ses.set_chaos("SendEmail:error=InternalError@1")
    ses.fail("SendEmail", "RequestLimitExceeded")
    assert sdk_code(client) == "RequestLimitExceeded"
    assert sdk_code(client) == "InternalError"


def test_chaos_is_set_shown_and_cleared_through_the_api(ses, client):
    shown = post_chaos(ses, {"Chaos": "SendEmail:error=InternalError@1; seed=3"})
    assert shown["Chaos"] == "SendEmail:error=InternalError@1; seed=3"
    assert code_of(client, "SendEmail", MAIL) == "InternalError"
    assert post_chaos(ses, None, method="GET")["Chaos"] == shown["Chaos"]
    assert post_chaos(ses, None, method="DELETE")["Chaos"] == ""
    assert call(client, "SendEmail", MAIL)["MessageId"]


def test_a_bad_spec_through_the_api_is_a_400_and_keeps_the_old_rules(ses):
    ses.set_chaos("SendEmail:error=InternalError@1")
    with pytest.raises(urllib.error.HTTPError) as info:
        post_chaos(ses, {"Chaos": "SendEmail:explode=1"})
    assert info.value.code == 400
    assert ses.chaos.describe()["Chaos"] == "SendEmail:error=InternalError@1"


def test_a_bare_emulator_ignores_the_chaos_variable(monkeypatch):
    # Only the local stack and `python -m local.ses_emulator` read it: a developer's shell must not
    # turn every test's emulator chaotic.
    monkeypatch.setenv("SESMAIL_EMULATOR_CHAOS", "SendEmail:error=InternalError@1")
    with SesEmulator() as emu:
        assert call(make_client(emu), "SendEmail", dict(MAIL, FromEmailAddress="a@example.com"))["MessageId"]
