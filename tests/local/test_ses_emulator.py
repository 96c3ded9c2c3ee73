"""The SES emulator, driven by the real Tencent Cloud SDK over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import time
from datetime import datetime, timedelta, timezone

import pytest
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.ses.v20201002 import models, ses_client

from local.ses_emulator import SesEmulator

SECRET_ID = "AKIDlocal"
SECRET_KEY = "local-secret-key"
BEIJING = timezone(timedelta(hours=8))
DAY1 = datetime(2024, 5, 1, 10, 0, tzinfo=BEIJING).timestamp()  # a fixed emulator "now"


@pytest.fixture
def emu():
    emulator = SesEmulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, token=None, host="127.0.0.1", port=0)
    emulator.start()
    yield emulator
    emulator.stop()


def make_client(emu, key=SECRET_KEY, secret_id=SECRET_ID, token=None, timeout=10):
    hp = HttpProfile(endpoint=emu.endpoint, protocol="http", reqTimeout=timeout)
    cp = ClientProfile(httpProfile=hp, language="en-US")
    return ses_client.SesClient(credential.Credential(secret_id, key, token), "ap-guangzhou", cp)


def mail(**overrides):
    params = {
        "FromEmailAddress": "Shop <noreply@mail.example.com>",
        "Destination": ["alice@example.com"],
        "Subject": "Your order",
        "Template": {"TemplateID": 101, "TemplateData": json.dumps({"name": "Alice"})},
    }
    params.update(overrides)
    return params


def send(client, **overrides):
    req = models.SendEmailRequest()
    req.from_json_string(json.dumps(mail(**overrides)))
    return client.SendEmail(req)


def status(client, **params):
    req = models.GetSendEmailStatusRequest()
    req.from_json_string(json.dumps(dict({"Offset": 0, "Limit": 100}, **params)))
    return client.GetSendEmailStatus(req)


def beijing_date(unix):
    return datetime.fromtimestamp(unix, BEIJING).strftime("%Y-%m-%d")


def raw_post(emu, action, params, key=SECRET_KEY, timestamp=None, node_style=False):
    """A hand-signed TC3 request (independent of the SDK); returns (status, Content-Type, body)."""
    body = json.dumps(params).encode()
    stamp = int(time.time()) if timestamp is None else timestamp
    date = datetime.fromtimestamp(stamp, timezone.utc).strftime("%Y-%m-%d")
    # Node SDK style: sign the hostname without port; service = the endpoint's first label.
    signed_host, service = (emu.host, emu.host.split(".")[0]) if node_style else (emu.endpoint, "ses")
    canonical = "\n".join(["POST", "/", "", f"content-type:application/json\nhost:{signed_host}\n",
                           "content-type;host", hashlib.sha256(body).hexdigest()])
    scope = f"{date}/{service}/tc3_request"
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    to_sign = "\n".join(["TC3-HMAC-SHA256", str(stamp), scope, digest])
    k = hmac.new(b"TC3" + key.encode(), date.encode(), hashlib.sha256).digest()
    k = hmac.new(k, service.encode(), hashlib.sha256).digest()
    k = hmac.new(k, b"tc3_request", hashlib.sha256).digest()
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json", "Host": emu.endpoint, "X-TC-Action": action,
        "X-TC-Version": "2020-10-02", "X-TC-Timestamp": str(stamp), "X-TC-Region": "ap-guangzhou",
        "Authorization": f"TC3-HMAC-SHA256 Credential={SECRET_ID}/{scope}, "
                         f"SignedHeaders=content-type;host, Signature={signature}",
    }
    conn = http.client.HTTPConnection(emu.host, emu.port, timeout=10)
    try:
        conn.request("POST", "/", body, headers)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type"), json.loads(resp.read())
    finally:
        conn.close()


def sdk_error(fn, *args, **kwargs):
    with pytest.raises(TencentCloudSDKException) as info:
        fn(*args, **kwargs)
    return info.value


# ---- happy path and authentication -------------------------------------------------------------

def test_send_email_through_sdk_is_accepted_and_stored(emu):
    resp = send(make_client(emu), Cc=["carol@example.com"])
    assert resp.MessageId.startswith("qcloudses-")
    assert resp.RequestId
    [stored] = emu.sent
    assert stored["MessageId"] == resp.MessageId
    assert stored["Destination"] == ["alice@example.com"]
    assert stored["Template"] == {"TemplateID": 101, "TemplateData": '{"name": "Alice"}'}
    assert isinstance(stored["RequestTime"], int)
    [call] = emu.calls
    assert (call["Action"], call["Outcome"]) == ("SendEmail", "ok")
    assert call["Params"]["Subject"] == "Your order"
    assert call["Headers"]["X-TC-Version"] == "2020-10-02"


def test_message_ids_are_unique(emu):
    client = make_client(emu)
    ids = {send(client).MessageId for _ in range(5)}
    assert len(ids) == 5


def test_wrong_secret_key_is_refused_with_signature_failure(emu):
    err = sdk_error(send, make_client(emu, key="not-the-key"))
    assert err.code == "AuthFailure.SignatureFailure"
    assert err.requestId
    assert emu.sent == []


def test_unknown_secret_id_is_refused_with_secret_id_not_found(emu):
    assert sdk_error(send, make_client(emu, secret_id="AKIDother")).code == "AuthFailure.SecretIdNotFound"


def test_token_mismatch_is_refused_with_token_failure():
    with SesEmulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, token="session-token") as emu:
        assert sdk_error(send, make_client(emu, token="other-token")).code == "AuthFailure.TokenFailure"
        assert send(make_client(emu, token="session-token")).MessageId


def test_node_style_signature_is_accepted(emu):
    code, _, body = raw_post(emu, "SendEmail", mail(), node_style=True)
    assert code == 200
    assert "Error" not in body["Response"]
    assert body["Response"]["MessageId"] == emu.sent[0]["MessageId"]


def test_python_style_hand_signature_is_accepted(emu):
    _, _, body = raw_post(emu, "SendEmail", mail())
    assert "MessageId" in body["Response"]


def test_stale_timestamp_is_refused_with_signature_expire(emu):
    _, _, body = raw_post(emu, "SendEmail", mail(), timestamp=int(time.time()) - 301)
    assert body["Response"]["Error"]["Code"] == "AuthFailure.SignatureExpire"
    assert emu.sent == []


def test_moving_the_emulator_clock_does_not_expire_signatures(emu):
    emu.clock = lambda: DAY1
    assert send(make_client(emu)).MessageId
    assert emu.sent[0]["RequestTime"] == int(DAY1)


def test_reply_content_type_is_exactly_application_json(emu):
    _, ok_type, _ = raw_post(emu, "SendEmail", mail())
    _, error_type, body = raw_post(emu, "SendEmail", mail(Subject=""))
    assert body["Response"]["Error"]["Code"] == "InvalidParameterValue.SubjectLengthError"
    assert ok_type == error_type == "application/json"


def test_keep_alive_connection_serves_several_requests(emu):
    client = make_client(emu)
    send(client)
    send(client)  # would fail if the first reply had closed or desynchronised the pooled connection
    assert len(emu.sent) == 2


def test_unknown_action_is_unsupported_operation(emu):
    err = sdk_error(make_client(emu).call_json, "NoSuchAction", {})
    assert err.code == "UnsupportedOperation"


# ---- SendEmail validation ------------------------------------------------------------------------

def _attachment(raw=b"hello"):
    return {"FileName": "a.txt", "Content": base64.b64encode(raw).decode()}


@pytest.mark.parametrize("overrides, code", [
    ({"FromEmailAddress": None}, "MissingParameter"),
    ({"FromEmailAddress": "Shop: Sales <no@mail.example.com>"}, "InvalidParameterValue.IllegalSenderName"),
    ({"Subject": ""}, "InvalidParameterValue.SubjectLengthError"),
    ({"Subject": "x" * 101}, "InvalidParameterValue.SubjectLengthError"),
    ({"Destination": []}, "InvalidParameterValue.EmailAddressIsNULL"),
    ({"Destination": [f"u{i}@example.com" for i in range(51)]}, "FailedOperation.TooManyRecipients"),
    ({"Cc": [f"u{i}@example.com" for i in range(21)]}, "FailedOperation.TooManyRecipients"),
    ({"Bcc": [f"u{i}@example.com" for i in range(21)]}, "FailedOperation.TooManyRecipients"),
    ({"Destination": ["alice@@example.com"]}, "InvalidParameterValue.ReceiverEmailInvalid"),
    ({"Template": None, "Simple": {"Text": "aGk="}}, "FailedOperation.WithOutPermission"),
    ({"Template": None}, "MissingParameter"),
    ({"Template": {"TemplateID": 0, "TemplateData": "{}"}}, "FailedOperation.InvalidTemplateID"),
    ({"Template": {"TemplateID": 1, "TemplateData": "not json"}}, "FailedOperation.WrongContentJson"),
    ({"Template": {"TemplateID": 1, "TemplateData": {"name": "x"}}}, "FailedOperation.WrongContentJson"),
    ({"Attachments": [_attachment()] * 11}, "FailedOperation.TooManyAttachments"),
    ({"Attachments": [{"FileName": "a", "Content": "***"}]}, "InvalidParameterValue.AttachContentIsWrong"),
    ({"Attachments": [_attachment(b"x" * (4 * 1024 * 1024 + 1))]}, "FailedOperation.AttachContentToolarge"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_send_email_breaking_a_rule_answers_the_ses_code_and_stores_nothing(emu, overrides, code):
    params = {k: v for k, v in mail(**overrides).items() if v is not None}
    assert sdk_error(make_client(emu).call_json, "SendEmail", params).code == code
    assert emu.sent == []
    assert emu.calls[-1]["Outcome"] == "error:" + code


def test_send_email_with_only_cc_recipients_is_accepted(emu):
    params = {k: v for k, v in mail(Cc=["carol@example.com"]).items() if k != "Destination"}
    assert make_client(emu).call_json("SendEmail", params)["Response"]["MessageId"]


def test_unverified_sender_is_refused_when_senders_are_set(emu):
    emu.senders = {"noreply@mail.example.com"}
    client = make_client(emu)
    assert sdk_error(send, client, FromEmailAddress="x@other.example").code == \
        "FailedOperation.NotAuthenticatedSender"
    assert send(client).MessageId  # "Shop <noreply@mail.example.com>" matches by bare address


# ---- faults ----------------------------------------------------------------------------------------

def test_fail_raises_that_code_through_the_sdk_and_stores_nothing(emu):
    emu.fail("SendEmail", "FailedOperation.FrequencyLimit", "too often")
    err = sdk_error(send, make_client(emu))
    assert (err.code, err.message) == ("FailedOperation.FrequencyLimit", "too often")
    assert emu.sent == []
    assert emu.calls[0]["Outcome"] == "error:FailedOperation.FrequencyLimit"
    assert send(make_client(emu)).MessageId  # times=1: consumed


def test_faults_are_consumed_in_fifo_order_and_star_matches_any_action(emu):
    client = make_client(emu)
    emu.fail("SendEmail", "InternalError")
    emu.fail("*", "RequestLimitExceeded", times=2)
    assert sdk_error(send, client).code == "InternalError"
    assert sdk_error(status, client, RequestDate="2024-05-01").code == "RequestLimitExceeded"
    assert sdk_error(send, client).code == "RequestLimitExceeded"
    assert send(client).MessageId


def test_fail_http_surfaces_as_server_network_error(emu):
    emu.fail_http("SendEmail", status=502)
    err = sdk_error(send, make_client(emu))
    assert err.code == "ServerNetworkError"
    assert emu.sent == []
    assert emu.calls[0]["Outcome"] == "http:502"


def test_drop_before_surfaces_as_client_network_error_and_stores_nothing(emu):
    emu.drop_before("SendEmail")
    assert sdk_error(send, make_client(emu)).code == "ClientNetworkError"
    assert emu.sent == []
    assert [c["Outcome"] for c in emu.calls] == ["dropped"]


def test_drop_on_a_reused_keep_alive_connection_is_not_retried_by_the_http_stack(emu):
    client = make_client(emu)
    send(client)
    emu.drop_after("SendEmail")
    assert sdk_error(send, client).code == "ClientNetworkError"
    assert [c["Outcome"] for c in emu.calls] == ["ok", "dropped"]
    assert len(emu.sent) == 2
    assert send(client).MessageId  # the client recovers on a fresh connection


def test_drop_after_loses_the_reply_but_the_mail_counts_as_sent(emu):
    client = make_client(emu)
    emu.drop_after("SendEmail")
    assert sdk_error(send, client).code == "ClientNetworkError"
    assert [c["Outcome"] for c in emu.calls] == ["dropped"]  # no silent retry by the HTTP stack
    [stored] = emu.sent
    rows = status(client, RequestDate=beijing_date(stored["RequestTime"])).EmailStatusList
    assert [(r.MessageId, r.ToEmailAddress) for r in rows] == [(stored["MessageId"], "alice@example.com")]


def test_delay_provokes_a_client_read_timeout_after_storing(emu):
    emu.delay("SendEmail", 30)
    assert sdk_error(send, make_client(emu, timeout=0.2)).code == "ClientNetworkError"
    assert len(emu.sent) == 1
    assert emu.calls[0]["Outcome"] == "ok"


def test_wrong_content_type_makes_the_sdk_swallow_an_error(emu):
    emu.wrong_content_type("SendEmail")
    emu.fail("SendEmail", "FailedOperation.SendEmailErr")
    resp = send(make_client(emu))  # the SDK trap: no exception, empty fields
    assert resp.MessageId is None
    assert emu.calls[0]["Outcome"] == "error:FailedOperation.SendEmailErr"


def test_reset_clears_calls_sent_mails_and_faults(emu):
    client = make_client(emu)
    send(client)
    emu.fail("*", "InternalError")
    emu.reset()
    assert (emu.calls, emu.sent) == ([], [])
    assert send(client).MessageId


def test_rate_limit_answers_request_limit_exceeded_within_one_second(emu):
    now = [DAY1]
    emu.clock = lambda: now[0]
    emu.rate_limit = 2
    client = make_client(emu)
    send(client)
    send(client)
    assert sdk_error(send, client).code == "RequestLimitExceeded"
    assert len(emu.sent) == 2
    now[0] += 1.0
    assert send(client).MessageId


# ---- GetSendEmailStatus / ListSendTasks ---------------------------------------------------------------

def test_get_send_email_status_filters_by_recipient_and_beijing_date(emu):
    now = [DAY1]
    emu.clock = lambda: now[0]
    client = make_client(emu)
    first = send(client, Destination=["alice@example.com", "bob@example.com"], Cc=["carol@example.com"])
    second = send(client, Destination=["Bob@Example.com"])
    now[0] = datetime(2024, 5, 1, 23, 30, tzinfo=timezone.utc).timestamp()  # 2024-05-02 in Beijing
    third = send(client, Destination=["bob@example.com"])

    all_day1 = status(client, RequestDate="2024-05-01").EmailStatusList
    assert [r.ToEmailAddress for r in all_day1] == [
        "alice@example.com", "bob@example.com", "carol@example.com", "Bob@Example.com"]
    assert {r.FromEmailAddress for r in all_day1} == {"noreply@mail.example.com"}
    assert (all_day1[0].SendStatus, all_day1[0].DeliverStatus, all_day1[0].RequestTime) == (0, 1, int(DAY1))

    bob_day1 = status(client, RequestDate="2024-05-01", ToEmailAddress="BOB@example.com").EmailStatusList
    assert [r.MessageId for r in bob_day1] == [first.MessageId, second.MessageId]
    bob_day2 = status(client, RequestDate="2024-05-02", ToEmailAddress="bob@example.com").EmailStatusList
    assert [r.MessageId for r in bob_day2] == [third.MessageId]
    by_id = status(client, RequestDate="2024-05-01", MessageId=second.MessageId).EmailStatusList
    assert [r.ToEmailAddress for r in by_id] == ["Bob@Example.com"]
    paged = status(client, RequestDate="2024-05-01", Offset=1, Limit=2).EmailStatusList
    assert [r.ToEmailAddress for r in paged] == ["bob@example.com", "carol@example.com"]


def test_get_send_email_status_refuses_limit_above_100(emu):
    err = sdk_error(status, make_client(emu), RequestDate="2024-05-01", Limit=101)
    assert err.code == "FailedOperation.InvalidLimit"


def test_get_send_email_status_refuses_a_malformed_date(emu):
    err = sdk_error(status, make_client(emu), RequestDate="2024/05/01")
    assert err.code == "InvalidParameterValue.WrongDate"


def test_get_send_email_status_refuses_a_date_older_than_90_days(emu):
    emu.clock = lambda: DAY1
    assert status(make_client(emu), RequestDate="2024-02-01").EmailStatusList == []
    err = sdk_error(status, make_client(emu), RequestDate="2024-01-31")
    assert err.code == "FailedOperation.NotSupportDate"


def test_list_send_tasks_is_empty_and_validates_limit(emu):
    client = make_client(emu)
    assert client.call_json("ListSendTasks", {"Offset": 0, "Limit": 10})["Response"]["TotalCount"] == 0
    assert sdk_error(client.call_json, "ListSendTasks", {"Offset": 0, "Limit": 0}).code == \
        "FailedOperation.InvalidLimit"
