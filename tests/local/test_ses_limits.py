"""SES's volume limits in the emulator: per-action rate, per-recipient frequency, daily quota."""

from __future__ import annotations

import json
import urllib.request

from local import ses_emulator
from tests.local.helpers import call, code_of, make_client, template_data


def send(to="ada@example.com", **overrides):
    params = {"FromEmailAddress": "noreply@sesmail.local", "Destination": [to], "Subject": "Hi",
              "Template": {"TemplateID": 2, "TemplateData": template_data(name="Ada")}}
    params.update(overrides)
    return params


def test_limits_are_off_unless_configured(ses, client):
    for _ in range(25):
        call(client, "SendEmail", send())
    assert len(ses.sent) == 25


def test_the_eleventh_mail_to_one_recipient_within_an_hour_is_refused(ses, client, clock):
    ses.recipient_hourly_limit = 10
    for _ in range(10):
        call(client, "SendEmail", send(to="ada@example.com"))
        clock.advance(60)
    assert code_of(client, "SendEmail", send(to="ADA@example.com")) == "FailedOperation.FrequencyLimit"
    assert code_of(client, "SendEmail", send(to="bob@example.com", Cc=["ada@example.com"])) == \
        "FailedOperation.FrequencyLimit"
    assert call(client, "SendEmail", send(to="bob@example.com"))["MessageId"]
    clock.advance(3600 - 600)  # the first mail is now more than an hour old
    assert call(client, "SendEmail", send(to="ada@example.com"))["MessageId"]


def test_the_daily_quota_counts_recipients_per_beijing_day(ses, client, clock):
    ses.daily_quota = 3
    call(client, "SendEmail", send(Destination=["a@example.com", "b@example.com"]))
    assert code_of(client, "SendEmail", send(Destination=["c@example.com", "d@example.com"])) == \
        "FailedOperation.ExceedSendLimit"
    assert call(client, "SendEmail", send(to="c@example.com"))["MessageId"]
    assert code_of(client, "SendEmail", send(to="d@example.com")) == "FailedOperation.ExceedSendLimit"
    clock.advance(14 * 3600)  # 10:00 -> 00:00 the next day, Beijing time
    assert call(client, "SendEmail", send(to="d@example.com"))["MessageId"]


def test_batch_recipients_over_a_limit_are_dropped_and_recorded(ses, client, clock):
    receiver_id = call(client, "CreateReceiver", {"ReceiversName": "list"})["ReceiverId"]
    call(client, "CreateReceiverDetail", {"ReceiverId": receiver_id,
                                          "Emails": ["ada@example.com", "bob@example.com", "cy@example.com"]})
    ses.recipient_hourly_limit = 1
    ses.daily_quota = 2
    call(client, "SendEmail", send(to="ada@example.com"))
    call(client, "BatchSendEmail", {"FromEmailAddress": "noreply@sesmail.local", "ReceiverId": receiver_id,
                                    "Subject": "News", "TaskType": 1,
                                    "Template": {"TemplateID": 2, "TemplateData": template_data(name="all")}})
    ses.tick()
    rows = call(client, "GetSendEmailStatus", {"RequestDate": "2026-05-01", "Offset": 0, "Limit": 100})
    statuses = [(r["ToEmailAddress"], r["SendStatus"], r["DeliverStatus"]) for r in rows["EmailStatusList"]]
    # ada: over the hourly limit (1006); bob: sent; cy: over the daily quota of 2 (1010).
    assert statuses == [("ada@example.com", 0, 1), ("ada@example.com", 1006, 2), ("bob@example.com", 0, 1),
                        ("cy@example.com", 1010, 2)]
    dropped = [m for m in ses.messages() if m["State"] == "dropped"]
    assert len(dropped) == 2


def test_the_rate_limit_is_per_action(ses, client, clock):
    ses.rate_limit = 2
    call(client, "SendEmail", send())
    call(client, "SendEmail", send())
    assert code_of(client, "SendEmail", send()) == "RequestLimitExceeded"
    assert call(client, "ListSendTasks", {"Offset": 0, "Limit": 10})["TotalCount"] == 0
    clock.advance(1)
    assert call(client, "SendEmail", send())["MessageId"]


def test_the_command_line_sets_the_rate_limit_and_chaos_and_calls_can_be_read_over_http(monkeypatch, clock):
    monkeypatch.setenv("SESMAIL_EMULATOR_CHAOS", "SendEmail:latency=1ms")
    emu = ses_emulator.from_args(["--port", "0", "--rate-limit", "2"])
    emu.clock = clock
    emu.start()
    try:
        assert (emu.rate_limit, emu.chaos.describe()["Chaos"]) == (2, "SendEmail:latency=1ms")
        client = make_client(emu)
        params = send(FromEmailAddress="digest@example.com", Template={"TemplateID": 9, "TemplateData": "{}"})
        call(client, "SendEmail", params)
        call(client, "SendEmail", params)
        assert code_of(client, "SendEmail", params) == "RequestLimitExceeded"
        with urllib.request.urlopen(f"{emu.url}/_local/calls", timeout=10) as reply:
            calls = json.loads(reply.read())
        assert calls == {"Calls": [{"Action": "SendEmail", "Outcome": "ok"}, {"Action": "SendEmail", "Outcome": "ok"},
                                   {"Action": "SendEmail", "Outcome": "error:RequestLimitExceeded"}]}
    finally:
        emu.stop()
        emu.store.close()


def test_without_a_rate_limit_on_the_command_line_there_is_none():
    emu = ses_emulator.from_args(["--port", "0"])
    assert emu.rate_limit is None
    emu.store.close()


def test_a_request_over_8_mb_is_refused_before_anything_is_stored(ses, client):
    big = [{"FileName": f"f{i}.bin", "Content": "QUFB" * 300_000} for i in range(8)]
    assert code_of(client, "SendEmail", send(Attachments=big)) == "RequestSizeLimitExceeded"
    assert ses.sent == []
