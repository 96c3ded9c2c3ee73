"""The emulator against clients this project did not write: the Python SDK in its other modes
(HmacSHA1/HmacSHA256 signatures, GET), requests signed by hand as Tencent's signature page and
the Node SDK sign them, fields and regions SES does not know, SES's MessageId shape, one rule for
digit strings in integer fields, and the actions a deployment's tooling calls."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import subprocess
import time
import warnings
from datetime import datetime, timezone
from typing import Any, Optional
from urllib.parse import urlencode

import pytest
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.ses.v20201002 import models, ses_client

from local import ses_schema
from local.ses_emulator import SesEmulator
from sesmail import rules
from sesmail.errors import InvalidInput
from tests.local.conftest import BEIJING
from tests.local.helpers import SECRET_ID, SECRET_KEY, call, code_of, template_data

WELCOME = {"FromEmailAddress": "Shop <noreply@sesmail.local>", "Destination": ["ada@example.com", "bob@example.com"],
           "Cc": ["carol@example.com"], "Subject": "Hi",
           "Template": {"TemplateID": 2, "TemplateData": template_data(name="Ada")}}
MESSAGE_ID = re.compile(r"qcloudses-30-(\d+)-date-(\d{14})-[A-Za-z0-9]{13}", re.ASCII)


def sdk(emu: SesEmulator, sign_method: str = "TC3-HMAC-SHA256", req_method: str = "POST",
        region: str = "ap-guangzhou", key: str = SECRET_KEY) -> ses_client.SesClient:
    hp = HttpProfile(endpoint=emu.endpoint, protocol="http", reqMethod=req_method, reqTimeout=10)
    return ses_client.SesClient(credential.Credential(SECRET_ID, key), region,
                                ClientProfile(signMethod=sign_method, httpProfile=hp, language="en-US"))


def typed(client: ses_client.SesClient, action: str, params: dict[str, Any]) -> Any:
    """One action through the SDK's typed method, failing on a response field the model lacks."""
    request = getattr(models, action + "Request")()
    request.from_json_string(json.dumps(params))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the models warn about fields they do not know
        return getattr(client, action)(request)


def flat(params: Any, prefix: str = "") -> list[tuple[str, str]]:
    """The SDKs' flattening of nested parameters (`Destination.0`, `Template.TemplateID`)."""
    if isinstance(params, dict):
        return [pair for key, value in params.items() for pair in flat(value, f"{prefix}{key}.")]
    if isinstance(params, list):
        return [pair for index, value in enumerate(params) for pair in flat(value, f"{prefix}{index}.")]
    return [(prefix[:-1], str(params))]


def tc3(emu: SesEmulator, action: str, params: dict[str, Any], *, method: str = "POST",
        signed: tuple[str, ...] = ("content-type", "host"), bare_host: bool = False, service: str = "ses",
        key: str = SECRET_KEY, stamp: Optional[int] = None, lower: bool = True,
        content_type: str = "application/json", drop: Optional[str] = None,
        body_after_signing: Optional[bytes] = None) -> tuple[int, dict[str, Any]]:
    """A request signed by hand, TC3-HMAC-SHA256 as Tencent's signature v3 page describes it."""
    stamp = int(time.time()) if stamp is None else stamp
    date = datetime.fromtimestamp(stamp, timezone.utc).strftime("%Y-%m-%d")
    if method == "GET":
        query, body, content_type = urlencode(flat(params)), b"", "application/x-www-form-urlencoded"
    else:
        query, body = "", json.dumps(params).encode()
    headers = {"Content-Type": content_type, "Host": emu.endpoint, "X-TC-Action": action,
               "X-TC-Version": "2020-10-02", "X-TC-Timestamp": str(stamp), "X-TC-Region": "ap-guangzhou"}
    values = {name.lower(): value for name, value in headers.items()}
    values["host"] = emu.host if bare_host else emu.endpoint
    canonical_headers = "".join(f"{n}:{values[n].strip().lower() if lower else values[n]}\n" for n in signed)
    canonical = "\n".join([method, "/", query, canonical_headers, ";".join(signed), hashlib.sha256(body).hexdigest()])
    scope = f"{date}/{service}/tc3_request"
    to_sign = "\n".join(["TC3-HMAC-SHA256", str(stamp), scope, hashlib.sha256(canonical.encode()).hexdigest()])
    signing = ("TC3" + key).encode()
    for part in (date, service, "tc3_request"):
        signing = hmac.new(signing, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(signing, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (f"TC3-HMAC-SHA256 Credential={SECRET_ID}/{scope}, SignedHeaders={';'.join(signed)},"
                                f" Signature={signature}")
    if drop:
        del headers[drop]
    return _http(emu, method, "/?" + query if query else "/", body if body_after_signing is None else
                 body_after_signing, headers)


def _http(emu: SesEmulator, method: str, target: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    conn = http.client.HTTPConnection(emu.host, emu.port, timeout=10)
    try:
        conn.request(method, target, body or None, headers)
        reply = conn.getresponse()
        data = reply.read()
        assert reply.getheader("Content-Type") == "application/json", data[:200]
        return reply.status, json.loads(data)["Response"]
    finally:
        conn.close()


def error_code(response: dict[str, Any]) -> Optional[str]:
    return response.get("Error", {}).get("Code")


def sdk_code(fn, *args) -> str:
    with pytest.raises(TencentCloudSDKException) as caught:
        fn(*args)
    return caught.value.code


# ---- signatures v3: any SignedHeaders Tencent allows, both host forms, both service names ----------------

@pytest.mark.parametrize(("signed", "bare_host", "service"), [
    (("content-type", "host"), False, "ses"),  # the Python SDK
    (("content-type", "host"), True, "127"),  # the Node SDK: bare hostname, the endpoint's first label
    (("content-type", "host", "x-tc-action"), False, "ses"),  # Tencent's signature v3 demo
    (("content-type", "host", "x-tc-action"), True, "ses"),
    (("content-type", "host", "x-tc-action", "x-tc-region", "x-tc-timestamp", "x-tc-version"), False, "127"),
], ids=["python-sdk", "node-sdk", "tencent-demo", "demo-bare-host", "every-tc-header"])
def test_a_request_signed_with_any_allowed_signed_headers_is_accepted(ses, signed, bare_host, service):
    status, response = tc3(ses, "SendEmail", WELCOME, signed=signed, bare_host=bare_host, service=service,
                           content_type="application/json; charset=utf-8")
    assert (status, error_code(response)) == (200, None), response
    assert response["MessageId"] == ses.sent[0]["MessageId"]


def test_the_demo_signature_lower_cases_every_signed_value_as_the_page_says(ses):
    # The page's canonical headers read `x-tc-action:describeinstances`; a client that signs the
    # values as sent (`SendEmail`) is accepted too.
    for lower in (True, False):
        _, response = tc3(ses, "ListEmailTemplates", {"Offset": 0, "Limit": 1}, lower=lower,
                          signed=("content-type", "host", "x-tc-action"))
        assert error_code(response) is None, response


@pytest.mark.parametrize(("case", "kwargs"), [
    ("no host", {"signed": ("content-type", "x-tc-action")}),
    ("no content-type", {"signed": ("host", "x-tc-action")}),
    ("not in ASCII order", {"signed": ("host", "content-type")}),
    ("a signed header not sent", {"signed": ("content-type", "host", "x-tc-region"), "drop": "X-TC-Region"}),
    ("another service", {"service": "cvm"}),
    ("wrong key", {"key": "not-the-key"}),
    ("body changed after signing", {"body_after_signing": json.dumps(dict(WELCOME, Subject="Other")).encode()}),
], ids=lambda value: value if isinstance(value, str) else "")
def test_a_bad_signature_is_still_refused_with_signature_failure(ses, case, kwargs):
    _, response = tc3(ses, "SendEmail", WELCOME, **kwargs)
    assert error_code(response) == "AuthFailure.SignatureFailure", case
    assert ses.sent == []


def test_an_expired_timestamp_is_refused_with_signature_expire(ses):
    _, response = tc3(ses, "SendEmail", WELCOME, stamp=int(time.time()) - 301)
    assert error_code(response) == "AuthFailure.SignatureExpire"


# ---- the SDK's other modes: HmacSHA1/HmacSHA256 signatures, GET ------------------------------------------

@pytest.mark.parametrize(("sign_method", "req_method"), [
    ("HmacSHA256", "POST"), ("HmacSHA1", "POST"), ("HmacSHA256", "GET"), ("HmacSHA1", "GET"),
    ("TC3-HMAC-SHA256", "GET"),
])
def test_the_sdk_in_every_signature_and_http_method_sends_the_same_mail(ses, sign_method, req_method):
    client = sdk(ses, sign_method, req_method)
    message_id = typed(client, "SendEmail", WELCOME).MessageId
    [stored] = ses.sent
    assert stored["MessageId"] == message_id
    # The flat forms (`Destination.0`, `Template.TemplateID=2`) fold back into SES's JSON shape.
    assert {k: stored[k] for k in WELCOME} == WELCOME
    assert ses.calls[-1]["SignatureMethod"] == sign_method
    status = typed(client, "GetSendEmailStatus", {"RequestDate": datetime.fromtimestamp(
        stored["RequestTime"], BEIJING).strftime("%Y-%m-%d"), "Offset": 0, "Limit": 10})
    assert [row.ToEmailAddress for row in status.EmailStatusList] == WELCOME["Destination"] + WELCOME["Cc"]
    assert sdk_code(typed, client, "SendEmail", dict(WELCOME, Subject="")) == "InvalidParameterValue.SubjectLengthError"


@pytest.mark.parametrize(("sign_method", "req_method"), [("HmacSHA256", "POST"), ("HmacSHA1", "GET")])
def test_an_old_style_signature_with_the_wrong_key_is_refused(ses, sign_method, req_method):
    client = sdk(ses, sign_method, req_method, key="not-the-key")
    assert sdk_code(typed, client, "SendEmail", WELCOME) == "AuthFailure.SignatureFailure"
    assert ses.sent == []


def test_an_old_style_signature_out_of_time_is_refused_with_signature_expire(ses, monkeypatch):
    client = sdk(ses, "HmacSHA256")
    monkeypatch.setattr(time, "time", lambda: 1_000_000_000.0)  # the SDK stamps Timestamp from time.time()
    code = sdk_code(typed, client, "SendEmail", WELCOME)
    monkeypatch.undo()
    assert code == "AuthFailure.SignatureExpire"


def test_a_get_without_an_action_still_gets_the_mail_page(ses):
    conn = http.client.HTTPConnection(ses.host, ses.port, timeout=10)
    conn.request("GET", "/")
    reply = conn.getresponse()
    assert reply.status == 200 and reply.getheader("Content-Type").startswith("text/html")
    reply.read()
    conn.request("GET", "/?Action=SendEmail&Version=2020-10-02")  # an action but no signature: the API's
    reply = conn.getresponse()
    assert json.loads(reply.read())["Response"]["Error"]["Code"] == "AuthFailure.SignatureFailure"
    conn.close()


# ---- fields SES does not know ------------------------------------------------------------------------

def test_an_unknown_field_is_unknown_parameter_in_every_action(ses, client):
    for action in sorted(ses.actions):
        assert code_of(client, action, {"Foo": 1}) == "UnknownParameter", action


def test_an_unknown_nested_field_is_unknown_parameter(ses, client):
    params = dict(WELCOME, Template=dict(WELCOME["Template"], Foo="x"))
    with pytest.raises(TencentCloudSDKException) as caught:
        client.call_json("SendEmail", params)
    assert (caught.value.code, caught.value.message) == ("UnknownParameter", "The parameter `Template.Foo` is not "
                                                         "recognized.")
    assert code_of(client, "CreateReceiverDetailWithData", {"ReceiverId": 1, "Datas": [{"Email": "a@x", "Y": 1}]}) \
        == "UnknownParameter"


def _sample(shape: dict[str, ses_schema.Field]) -> dict[str, Any]:
    """A value of the right type for every field of a request model."""
    def one(field: ses_schema.Field) -> Any:
        if field.kind == "object" and field.shape is not None:
            return _sample(field.shape)
        return {"int": 1, "bool": True, "float": 1.0}.get(field.kind, "x")
    return {name: [one(field)] if field.many else one(field) for name, field in shape.items()}


def test_every_field_of_the_sdk_request_models_is_known(ses, client):
    for action in sorted(ses.actions):
        shape = ses_schema.request_shape(action)
        assert shape is not None, action
        try:
            client.call_json(action, _sample(shape))
        except TencentCloudSDKException as exc:
            assert exc.code != "UnknownParameter", (action, exc.message)


# ---- regions --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("region", ["ap-guangzhou", "ap-hongkong", "ap-singapore"])
def test_the_regions_ses_serves_are_accepted(ses, region):
    assert typed(sdk(ses, region=region), "ListEmailTemplates", {"Offset": 0, "Limit": 1}).TotalCount == 4


@pytest.mark.parametrize("sign_method", ["TC3-HMAC-SHA256", "HmacSHA256"])
def test_a_region_ses_does_not_serve_is_unsupported_region(ses, sign_method):
    client = sdk(ses, sign_method, region="ap-nowhere-9")
    assert sdk_code(typed, client, "SendEmail", WELCOME) == "UnsupportedRegion"
    assert sdk_code(typed, sdk(ses, region="ap-beijing"), "SendEmail", WELCOME) == "UnsupportedRegion"
    assert sdk_code(typed, sdk(ses, region=""), "SendEmail", WELCOME) == "MissingParameter"
    assert ses.sent == []


def test_regions_none_serves_any_region(ses):
    ses.regions = None
    assert typed(sdk(ses, region="ap-nowhere-9"), "SendEmail", WELCOME).MessageId


# ---- MessageIds -----------------------------------------------------------------------------------------

def test_message_ids_have_ses_shape_with_the_app_id_and_the_beijing_send_time(ses, client, clock):
    ids = [call(client, "SendEmail", WELCOME)["MessageId"] for _ in range(3)]
    assert len(set(ids)) == 3
    for message_id in ids:
        match = MESSAGE_ID.fullmatch(message_id)
        assert match, message_id
        assert match.group(1) == "1250000000"
        assert match.group(2) == datetime.fromtimestamp(clock(), BEIJING).strftime("%Y%m%d%H%M%S")


def test_the_app_id_is_a_setting_shared_by_message_ids_and_callbacks():
    with SesEmulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, app_id="1300000123") as emu:
        message_id = call(sdk(emu), "SendEmail", WELCOME)["MessageId"]
        assert message_id.startswith("qcloudses-30-1300000123-date-")
        [event, *_] = emu.store.events([message_id])
        assert json.loads(event["payload"])["username"] == "1300000123"
    with pytest.raises(ValueError):
        SesEmulator(app_id="12ab")


# ---- one rule for digit strings in integer fields ----------------------------------------------------------

def test_digit_strings_are_accepted_in_integer_fields_of_every_action(ses, client):
    params = dict(WELCOME, Template={"TemplateID": "4", "TemplateData": template_data(code="123")}, TriggerType="1")
    assert call(client, "SendEmail", params)["MessageId"]
    assert (ses.sent[0]["Template"]["TemplateID"], ses.sent[0]["TriggerType"]) == (4, 1)
    receiver = call(client, "CreateReceiver", {"ReceiversName": "digits", "Desc": "d"})["ReceiverId"]
    assert call(client, "CreateReceiverDetail", {"ReceiverId": str(receiver), "Emails": ["a@example.com"]})[
        "ValidCount"] == 1
    details = call(client, "ListReceiverDetails", {"ReceiverId": str(receiver), "Offset": "0", "Limit": "10"})
    assert [d["Email"] for d in details["Data"]] == ["a@example.com"]
    assert call(client, "GetEmailTemplate", {"TemplateID": "2"})["TemplateName"] == "welcome"
    assert call(client, "ListEmailTemplates", {"Offset": "1", "Limit": "2"})["TemplatesMetadata"][0]["TemplateID"] == 2


@pytest.mark.parametrize(("action", "params"), [
    ("SendEmail", dict(WELCOME, Template={"TemplateID": "four", "TemplateData": "{}"})),
    ("SendEmail", dict(WELCOME, Template={"TemplateID": "4.0", "TemplateData": "{}"})),
    ("SendEmail", dict(WELCOME, Template={"TemplateID": 4.5, "TemplateData": "{}"})),
    ("SendEmail", dict(WELCOME, Template={"TemplateID": True, "TemplateData": "{}"})),
    ("SendEmail", dict(WELCOME, TriggerType="yes")),
    ("SendEmail", dict(WELCOME, TriggerType=" 1")),
    ("ListReceiverDetails", {"ReceiverId": "abc", "Offset": 0, "Limit": 10}),
    ("ListEmailTemplates", {"Offset": 0, "Limit": "ten"}),
    ("BatchSendEmail", {"FromEmailAddress": "noreply@sesmail.local", "ReceiverId": 1, "Subject": "s",
                        "TaskType": "one", "Template": {"TemplateID": 2}}),
], ids=lambda value: value if isinstance(value, str) else "")
def test_other_strings_in_integer_fields_are_invalid_parameter_value(ses, client, action, params):
    assert code_of(client, action, params) == "InvalidParameterValue"


# ---- Destination missing ---------------------------------------------------------------------------------

def test_a_send_without_any_recipient_field_is_missing_parameter_like_the_send_function(ses, client):
    params = {k: v for k, v in WELCOME.items() if k not in ("Destination", "Cc")}
    assert code_of(client, "SendEmail", params) == "MissingParameter"
    with pytest.raises(InvalidInput) as caught:
        rules.validate_send_email(params)
    assert caught.value.code == "MissingParameter"
    assert code_of(client, "SendEmail", dict(params, Destination=[])) == "InvalidParameterValue.EmailAddressIsNULL"


# ---- GetStatisticsReport ----------------------------------------------------------------------------------

def test_statistics_count_what_was_sent_and_what_happened_per_day(ses, client, clock):
    first = call(client, "SendEmail", dict(WELCOME, Destination=["ada@example.com", "bounce@gmail.com",
                                                                 "unsubscribe@gmail.com"], Cc=[]))["MessageId"]
    ses.simulate(first, "open", "ada@example.com")
    ses.simulate(first, "open", "ada@example.com")
    ses.simulate(first, "click", "ada@example.com")
    clock.advance(86400)
    call(client, "SendEmail", dict(WELCOME, Destination=["softbounce@example.com"], Cc=[]))
    clock.advance(1)
    day1, day2 = (datetime.fromtimestamp(clock() - offset, BEIJING).strftime("%Y-%m-%d") for offset in (86401, 1))
    report = typed(client, "GetStatisticsReport", {"StartDate": "2026-04-30", "EndDate": "2026-05-03"})
    assert [v.SendDate for v in report.DailyVolumes] == [day1, day2]  # days without mail are left out
    one = report.DailyVolumes[0]
    assert (one.RequestCount, one.AcceptedCount, one.DeliveredCount, one.OpenedCount, one.ClickedCount,
            one.BounceCount, one.UnsubscribeCount) == (3, 3, 2, 2, 1, 1, 1)
    overall = report.OverallVolume
    assert (overall.SendDate, overall.RequestCount, overall.BounceCount, overall.DeliveredCount) == (
        "2026-04-30", 4, 2, 2)
    gmail = call(client, "GetStatisticsReport",
                 {"StartDate": day1, "EndDate": day2, "ReceivingMailboxType": "gmail.com"})
    assert [(v["SendDate"], v["RequestCount"]) for v in gmail["DailyVolumes"]] == [(day1, 2)]
    other = call(client, "GetStatisticsReport", {"StartDate": day1, "EndDate": day2, "Domain": "other.example"})
    assert other["DailyVolumes"] == [] and other["OverallVolume"]["RequestCount"] == 0


@pytest.mark.parametrize(("params", "code"), [
    ({"EndDate": "2026-05-01"}, "MissingParameter"),
    ({"StartDate": "2026/05/01", "EndDate": "2026-05-01"}, "InvalidParameterValue.WrongDate"),
    ({"StartDate": "2026-05-02", "EndDate": "2026-05-01"}, "InvalidParameterValue.WrongDate"),
])
def test_statistics_refuse_missing_or_malformed_dates(ses, client, params, code):
    assert code_of(client, "GetStatisticsReport", params) == code


# ---- the blocklist ------------------------------------------------------------------------------------------

def test_a_hard_bounce_blocklists_the_address_until_delete_black_list(ses, client, clock):
    call(client, "SendEmail", dict(WELCOME, Destination=["bounce@example.com", "softbounce@example.com"], Cc=[]))
    ses.blacklist_add("listed@example.com", "added by hand")
    today = datetime.fromtimestamp(clock(), BEIJING).strftime("%Y-%m-%d")
    listed = typed(client, "ListBlackEmailAddress", {"StartDate": today, "EndDate": today, "Limit": 10, "Offset": 0})
    assert listed.TotalCount == 2
    assert [(b.EmailAddress, b.BounceTime) for b in listed.BlackList] == [
        ("bounce@example.com", datetime.fromtimestamp(clock(), BEIJING).strftime("%Y-%m-%d %H:%M:%S")),
        ("listed@example.com", datetime.fromtimestamp(clock(), BEIJING).strftime("%Y-%m-%d %H:%M:%S"))]
    assert listed.BlackList[0].IspDesc.startswith("550 5.1.1")
    one = call(client, "ListBlackEmailAddress", {"StartDate": today, "EndDate": today, "Limit": 10, "Offset": 0,
                                                 "EmailAddress": "LISTED@example.com"})
    assert [b["IspDesc"] for b in one["BlackList"]] == ["added by hand"]
    assert call(client, "ListBlackEmailAddress", {"StartDate": "2026-01-01", "EndDate": "2026-01-02", "Limit": 10,
                                                  "Offset": 0})["TotalCount"] == 0

    clock.advance(1)
    typed(client, "DeleteBlackList", {"EmailAddressList": ["Bounce@example.com"]})
    left = call(client, "ListBlackEmailAddress", {"StartDate": today, "EndDate": today, "Limit": 10, "Offset": 0})
    assert [b["EmailAddress"] for b in left["BlackList"]] == ["listed@example.com"]
    clock.advance(1)
    call(client, "SendEmail", dict(WELCOME, Destination=["bounce@example.com"], Cc=[]))  # bounces again
    again = call(client, "ListBlackEmailAddress", {"StartDate": today, "EndDate": today, "Limit": 10, "Offset": 0})
    assert sorted(b["EmailAddress"] for b in again["BlackList"]) == ["bounce@example.com", "listed@example.com"]


def test_the_blocklist_refuses_what_ses_refuses(ses, client):
    dates = {"StartDate": "2026-05-01", "EndDate": "2026-05-01", "Offset": 0}
    assert code_of(client, "ListBlackEmailAddress", dict(dates, Limit=101)) == "FailedOperation.InvalidLimit"
    assert code_of(client, "ListBlackEmailAddress", dict(dates, StartDate="May", Limit=1)) == \
        "InvalidParameterValue.WrongDate"
    assert code_of(client, "DeleteBlackList", {}) == "MissingParameter"
    assert code_of(client, "DeleteBlackList", {"EmailAddressList": []}) == "InvalidParameterValue"


# ---- sender domains ------------------------------------------------------------------------------------------

def test_identities_are_the_domains_of_the_sender_addresses(ses, client):
    ses.add_sender("news@mail.example.com")
    listed = typed(client, "ListEmailIdentities", {})
    assert [(i.IdentityName, i.IdentityType, i.SendingEnabled) for i in listed.EmailIdentities] == [
        ("mail.example.com", "DOMAIN", True), ("sesmail.local", "DOMAIN", True)]
    assert listed.Total == 2
    assert [i.IdentityName for i in typed(client, "ListEmailIdentities", {"Offset": 1, "Limit": 1}).EmailIdentities] \
        == ["sesmail.local"]
    identity = typed(client, "GetEmailIdentity", {"EmailIdentity": "mail.example.com"})
    assert (identity.IdentityType, identity.VerifiedForSendingStatus) == ("DOMAIN", True)
    assert [(a.Type, a.SendDomain, a.ExpectedValue[:7], a.Status) for a in identity.Attributes] == [
        ("TXT", "mail.example.com", "v=spf1 ", True), ("TXT", "qcloud._domainkey.mail.example.com", "v=DKIM1", True)]
    assert code_of(client, "GetEmailIdentity", {"EmailIdentity": "other.example"}) == \
        "InvalidParameterValue.NotExistDomain"
    assert code_of(client, "GetEmailIdentity", {"EmailIdentity": "not a domain"}) == \
        "InvalidParameterValue.InvalidEmailIdentity"
    assert code_of(client, "GetEmailIdentity", {}) == "MissingParameter"


# ---- SMTP passwords -------------------------------------------------------------------------------------------

def test_an_smtp_password_is_set_per_sender_and_then_taken_by_the_smtp_interface(ses, client):
    import smtplib

    from local.ses_smtp import SmtpEndpoint

    address = "noreply@sesmail.local"
    assert code_of(client, "UpdateEmailSmtpPassWord", {"EmailAddress": address, "Password": "short1A"}) == \
        "InvalidParameterValue.InvalidSmtpPassWord"
    assert code_of(client, "UpdateEmailSmtpPassWord", {"EmailAddress": address, "Password": "aaaaaaAA11"}) == \
        "InvalidParameterValue.InvalidSmtpPassWord"  # one lowercase letter, repeated
    assert code_of(client, "UpdateEmailSmtpPassWord", {"EmailAddress": "x@other.example", "Password": "abCD12efGH"}) \
        == "InvalidParameterValue.NoSuchSender"
    typed(client, "UpdateEmailSmtpPassWord", {"EmailAddress": address, "Password": "abCD12efGH"})
    assert code_of(client, "UpdateEmailSmtpPassWord", {"EmailAddress": address, "Password": "abCD12efGH"}) == \
        "OperationDenied.RepeatPassWord"
    assert [s["SmtpPwdType"] for s in call(client, "ListEmailAddress", {})["EmailSenders"]] == [1]
    with SmtpEndpoint(ses) as endpoint:
        smtp = smtplib.SMTP("127.0.0.1", endpoint.port, timeout=10)
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp.login(address, endpoint.password)  # the shared dev password no longer opens it
        smtp.login(address, "abCD12efGH")
        smtp.close()


# ---- tccli ------------------------------------------------------------------------------------------------------

@pytest.mark.skipif(not (os.environ.get("TCCLI") or shutil.which("tccli")),
                    reason="tccli is not installed (pip install tccli, then TCCLI=<path to tccli>)")
def test_tccli_talks_to_the_emulator_with_an_http_endpoint(ses, tmp_path):
    tccli = os.environ.get("TCCLI") or shutil.which("tccli") or "tccli"
    env = dict(os.environ, HOME=str(tmp_path), TENCENTCLOUD_SECRET_ID=SECRET_ID, TENCENTCLOUD_SECRET_KEY=SECRET_KEY,
               TENCENTCLOUD_REGION="ap-guangzhou")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env.pop(name, None)
    out = subprocess.run([tccli, "ses", "SendEmail", "--endpoint", ses.url, "--cli-unfold-argument",
                          "--FromEmailAddress", "noreply@sesmail.local", "--Destination", "ada@example.com",
                          "--Subject", "Hi", "--Template.TemplateID", "2",
                          "--Template.TemplateData", template_data(name="Ada")],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["MessageId"] == ses.sent[0]["MessageId"]


def test_a_data_dir_of_the_previous_schema_opens_and_keeps_its_senders(tmp_path):
    import sqlite3

    from local.mailstore import MailStore

    path = str(tmp_path / "ses-emulator.sqlite3")
    with sqlite3.connect(path) as db:  # schema 1: senders without an SMTP password
        db.execute("CREATE TABLE senders (address TEXT PRIMARY KEY, name TEXT NOT NULL, created REAL NOT NULL)")
        db.execute("INSERT INTO senders VALUES ('old@example.com', 'Old', 1.0)")
        db.execute("PRAGMA user_version=1")
    db.close()
    store = MailStore(path)
    assert store.set_smtp_password("old@example.com", "abCD12efGH") == 1
    assert store.sender("old@example.com")["smtp_password"] == "abCD12efGH"
    store.close()
