"""POST /send through the real handler: refusals in Tencent's error shape, nothing reaching SES,
the HTTP shapes SCF delivers, routing and API-key auth (docs/api.md, docs/security.md)."""

from __future__ import annotations

import base64
import json

import pytest

from sesmail import config
from sesmail.envelopes import MAX_BODY_BYTES
from tests.events import context, http_event, sample_send_payload

MARK = "xyzzy"  # offending values carry it; no response may echo it


def invoke(send, event) -> tuple[int, dict, dict]:
    """Call the handler; every response has the integrated-response shape and is never a 500."""
    result = send(event, context())
    assert result["statusCode"] != 500, result["body"]
    assert result["isBase64Encoded"] is False
    assert result["headers"]["Content-Type"] == "application/json"
    return result["statusCode"], json.loads(result["body"]), result["headers"]


def post(send, body, **kwargs) -> tuple[int, dict, dict]:
    return invoke(send, http_event(body, **kwargs))


def with_changes(**changes) -> dict:
    body = sample_send_payload()
    for name, value in changes.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return body


def assert_error(status, body, expected_status, code, field=None):
    assert status == expected_status
    assert set(body) == {"Error", "RequestId"}
    assert body["RequestId"] == "req-test"
    assert body["Error"]["Code"] == code
    assert isinstance(body["Error"]["Message"], str) and body["Error"]["Message"]
    if field is None:
        assert "Field" not in body["Error"]
    else:
        assert body["Error"]["Field"] == field
    assert MARK not in json.dumps(body, ensure_ascii=False)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# One representative refusal per error code: (code, body changes, field at fault).
REFUSALS = [
    ("UnknownParameter", {"Bogus": MARK}, "Bogus"),
    ("MissingParameter", {"Subject": None}, "Subject"),
    ("InvalidParameter", {"Destination": f"{MARK}@example.com"}, "Destination"),
    ("FailedOperation.TooManyRecipients", {"Destination": [f"{MARK}{n}@example.com" for n in range(51)]},
     "Destination"),
    ("InvalidParameterValue.EmailAddressIsNULL", {"Destination": []}, "Destination"),
    ("InvalidParameterValue.ReceiverEmailInvalid",
     {"Destination": ["a@example.com", "b@example.com", "c@example.com", f"{MARK}-not-an-address"]},
     "Destination[3]"),
    ("FailedOperation.IncorrectSender", {"FromEmailAddress": f"{MARK}<noreply@mail.example.com>"},
     "FromEmailAddress"),
    ("FailedOperation.IncorrectEmail", {"ReplyToAddresses": f"{MARK}-not-an-address"}, "ReplyToAddresses"),
    ("InvalidParameterValue.HeaderLineBreak", {"Subject": f"Hi\r\nBcc: {MARK}@example.com"}, "Subject"),
    ("InvalidParameterValue.SubjectLengthError", {"Subject": MARK * 21}, "Subject"),
    ("FailedOperation.TooManyAttachments", {"Attachments": [{"FileName": "a.txt", "Content": "aGk="}] * 11},
     "Attachments"),
    ("InvalidParameterValue.AttachContentIsWrong", {"Attachments": [{"FileName": "a.txt", "Content": f"{MARK}!"}]},
     "Attachments[0].Content"),
    ("FailedOperation.AttachContentToolarge",
     {"Attachments": [{"FileName": "a.bin", "Content": b64(b"\0" * (4 * 1024 * 1024 + 1))}]}, "Attachments"),
    ("FailedOperation.InvalidAttachName", {"Attachments": [{"FileName": f"../{MARK}", "Content": "aGk="}]},
     "Attachments[0].FileName"),
    ("InvalidParameterValue", {"Unsubscribe": "13"}, "Unsubscribe"),
    ("FailedOperation.InvalidTemplateID", {"Template": {"TemplateID": 0}}, "Template.TemplateID"),
    ("InvalidParameterValue.TemplateNotExist", {"Template": {"TemplateName": f"{MARK}-unknown"}},
     "Template.TemplateName"),
    ("FailedOperation.WrongContentJson", {"Template": {"TemplateID": 100091, "TemplateData": f'["{MARK}"]'}},
     "Template.TemplateData"),
    ("FailedOperation.WithOutPermission", {"Simple": {"Text": MARK}}, "Simple"),
]


@pytest.mark.parametrize(("code", "changes", "field"), REFUSALS, ids=[code for code, _, _ in REFUSALS])
def test_an_invalid_payload_is_refused_with_400_and_never_reaches_ses(send, ses_fake, code, changes, field):
    status, body, headers = post(send, with_changes(**changes))
    assert_error(status, body, 400, code, field)
    assert headers["X-Request-Id"] == "req-test"
    assert ses_fake.calls == []


@pytest.mark.parametrize("shape", ["function-url", "apigw"])
def test_an_invalid_payload_is_refused_the_same_way_in_both_http_shapes(send, ses_fake, shape):
    status, body, _ = post(send, with_changes(Destination=[]), shape=shape)
    assert_error(status, body, 400, "InvalidParameterValue.EmailAddressIsNULL", "Destination")
    assert ses_fake.calls == []


# Every line boundary of str.splitlines() and a few other control characters: no header holds them.
HEADER_BREAKERS = ["\r\n", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\x00", "\x1b", "\x7f"]
HEADER_FIELDS = [
    ({"Subject": "Hi{bad}Bcc: " + MARK}, "Subject"),
    ({"FromEmailAddress": "Team{bad}" + MARK + " <noreply@mail.qcloud.com>"}, "FromEmailAddress"),
    ({"HeaderFrom": "Team{bad}" + MARK + " <noreply@mail.qcloud.com>"}, "HeaderFrom"),
    ({"ReplyToAddresses": "Help{bad}" + MARK + " <qcloud@tencent.com>"}, "ReplyToAddresses"),
    ({"SmtpHeaders": {"X-Campaign": "spring{bad}" + MARK}}, "SmtpHeaders"),
    ({"SmtpMessageId": "<" + MARK + "{bad}@mail.qcloud.com>"}, "SmtpMessageId"),
    ({"Subject": "Code {{code}}", "Template": {"TemplateID": 100091, "TemplateData": {"code": "1{bad}" + MARK}}},
     "Template.TemplateData"),
]


def _fill(changes: dict, bad: str) -> dict:
    return json.loads(json.dumps(changes).replace("{bad}", json.dumps(bad)[1:-1]))


@pytest.mark.parametrize("bad", HEADER_BREAKERS, ids=[repr(c) for c in HEADER_BREAKERS])
@pytest.mark.parametrize(("changes", "field"), HEADER_FIELDS, ids=[field for _, field in HEADER_FIELDS])
def test_a_header_bound_value_ses_cannot_carry_is_400_before_any_call(send, ses_fake, changes, field, bad):
    status, body, _ = post(send, with_changes(**_fill(changes, bad)))
    assert_error(status, body, 400, "InvalidParameterValue.HeaderLineBreak", field)
    assert ses_fake.calls == []


def test_a_subject_with_unicode_and_a_tab_still_goes_out(send, ses_fake):
    status, body, _ = post(send, with_changes(Subject="Caf\u00e9\t\u4f60\u597d \U0001f600"))
    assert status == 200, body
    assert ses_fake.sent[0]["Subject"] == "Caf\u00e9\t\u4f60\u597d \U0001f600"


def test_a_body_that_is_not_json_is_refused_as_json_parse_error(send, ses_fake):
    assert_error(*post(send, f"{{not json {MARK}")[:2], 400, "InvalidParameter.JsonParseError")
    assert ses_fake.calls == []


def test_an_empty_body_is_refused_as_missing_parameter(send, ses_fake):
    assert_error(*post(send, None)[:2], 400, "MissingParameter")
    assert ses_fake.calls == []


@pytest.mark.parametrize("text", ["[" * 100000 + "]" * 100000, '{"a":' * 100000 + "1" + "}" * 100000],
                         ids=["lists", "objects"])
def test_deeply_nested_json_is_refused_with_400_not_500(send, ses_fake, text):
    assert_error(*post(send, text)[:2], 400, "InvalidParameter.JsonParseError")
    assert ses_fake.calls == []


@pytest.mark.parametrize("body", [[sample_send_payload()], '"text"', "5", "null"],
                         ids=["list", "string", "int", "null"])
def test_json_that_is_not_an_object_is_refused_as_invalid_parameter(send, ses_fake, body):
    assert_error(*post(send, body if isinstance(body, str) else json.dumps(body))[:2], 400, "InvalidParameter")
    assert ses_fake.calls == []


def test_an_invalid_base64_body_is_refused_as_body_encoding(send, ses_fake):
    event = http_event(sample_send_payload(), shape="apigw")
    event["body"], event["isBase64Encoded"] = "%%% not base64 %%%", True
    assert_error(*invoke(send, event)[:2], 400, "InvalidParameter.BodyEncoding")
    assert ses_fake.calls == []


def test_a_body_over_6_mb_is_refused_with_413(send, ses_fake):
    payload = with_changes(Attachments=[{"FileName": "big.bin", "Content": "A" * MAX_BODY_BYTES}])
    assert_error(*post(send, payload)[:2], 413, "RequestSizeLimitExceeded")
    assert ses_fake.calls == []


def test_get_on_send_is_refused_with_405(send, ses_fake):
    assert_error(*post(send, None, method="GET")[:2], 405, "UnsupportedOperation")
    assert ses_fake.calls == []


def test_an_unknown_path_is_refused_with_404(send, ses_fake):
    assert_error(*post(send, sample_send_payload(), path="/nowhere")[:2], 404, "ResourceNotFound")
    assert ses_fake.calls == []


def test_a_timer_event_is_refused_with_404(send, ses_fake):
    event = {"Type": "Timer", "TriggerName": "EveryDay", "Time": "2019-02-21T11:49:00Z", "Message": "x"}
    assert_error(*invoke(send, event)[:2], 404, "ResourceNotFound")
    assert ses_fake.calls == []


# Regressions of bugs found while writing these tests.

@pytest.mark.parametrize("headers", [{}, {"idempotency-key": "order-1"}], ids=["no-key", "key"])
def test_an_unpaired_surrogate_in_the_body_is_refused_before_ses(send, ses_fake, headers):
    text = json.dumps(sample_send_payload()).replace("YourTestSubject", "Your\\ud800Subject")
    result = send(http_event(text, headers=headers), context())
    assert result["statusCode"] == 400
    assert json.loads(result["body"])["Error"]["Code"] == "InvalidParameter.BodyEncoding"
    assert ses_fake.calls == []


def test_a_surrogate_pair_escape_is_accepted(send, ses_fake):
    text = json.dumps(sample_send_payload()).replace("YourTestSubject", "Hi \\ud83d\\ude00")
    assert send(http_event(text), context())["statusCode"] == 200
    assert ses_fake.sent[0]["Subject"] == "Hi \U0001f600"


@pytest.mark.parametrize("data", ['{"x": NaN}', '"{\\"x\\": Infinity}"'], ids=["object", "string"])
def test_template_data_with_nan_or_infinity_never_reaches_ses(send, ses_fake, data):
    text = json.dumps(with_changes(Template={"TemplateID": 100091, "TemplateData": "@@"})).replace('"@@"', data)
    status, _, _ = post(send, text)
    assert status == 400
    assert ses_fake.calls == []


# --- accepted sends ---

def sent_ids(ses_fake) -> list[str]:
    return [mail["MessageId"] for mail in ses_fake.sent]


@pytest.mark.parametrize(("shape", "base64_body"), [("function-url", False), ("apigw", False), ("apigw", True)],
                         ids=["function-url", "apigw", "apigw-base64"])
def test_a_valid_payload_is_sent_in_every_http_shape(send, ses_fake, shape, base64_body):
    status, body, _ = post(send, sample_send_payload(), shape=shape, base64_body=base64_body)
    assert status == 200
    assert set(body) == {"MessageId", "RequestId"}
    assert sent_ids(ses_fake) == [body["MessageId"]]
    assert ses_fake.sent[0]["Template"] == {"TemplateID": 100091, "TemplateData": '{"code":"1234"}'}


@pytest.mark.parametrize("path", ["/", "/send/"])
def test_post_to_the_root_or_with_a_trailing_slash_sends_too(send, ses_fake, path):
    status, body, _ = post(send, sample_send_payload(), path=path)
    assert status == 200
    assert sent_ids(ses_fake) == [body["MessageId"]]


def test_a_direct_invocation_with_the_payload_as_the_event_sends_without_a_key(send, ses_fake):
    status, body, _ = invoke(send, sample_send_payload())
    assert status == 200
    assert sent_ids(ses_fake) == [body["MessageId"]]


def test_an_invalid_direct_invocation_is_refused_and_never_reaches_ses(send, ses_fake):
    assert_error(*invoke(send, with_changes(Subject=""))[:2], 400, "InvalidParameterValue.SubjectLengthError",
                 "Subject")
    assert ses_fake.calls == []


def test_a_template_name_is_sent_as_its_mapped_template_id(send, ses_fake):
    status, _, _ = post(send, with_changes(Template={"TemplateName": "welcome", "TemplateData": {"name": "张三"}}))
    assert status == 200
    assert ses_fake.sent[0]["Template"] == {"TemplateID": 100091, "TemplateData": '{"name":"张三"}'}


def test_an_omitted_sender_is_sent_from_the_default_sender(send, ses_fake, monkeypatch):
    monkeypatch.setenv("SESMAIL_DEFAULT_SENDER", "Default <default@mail.example.com>")
    config.reset()
    status, _, _ = post(send, with_changes(FromEmailAddress=None))
    assert status == 200
    assert ses_fake.sent[0]["FromEmailAddress"] == "Default <default@mail.example.com>"


# --- API keys ---

@pytest.mark.parametrize(("key", "headers"), [
    (None, {}),
    ("wrong-key", {}),
    ("dev-key-and-more", {}),
    (None, {"X-Api-Key": ""}),
    (None, {"authorization": "Basic dev-key"}),
    (None, {"authorization": "dev-key"}),
], ids=["none", "wrong", "prefix-match", "empty-x-api-key", "basic-scheme", "no-scheme"])
def test_a_missing_or_unknown_key_is_refused_with_401(send, ses_fake, key, headers):
    assert_error(*post(send, sample_send_payload(), key=key, headers=headers)[:2], 401,
                 "AuthFailure.InvalidAuthorization")
    assert ses_fake.calls == []


@pytest.mark.parametrize("shape", ["function-url", "apigw"])
def test_the_x_api_key_header_is_accepted(send, ses_fake, shape):
    status, _, _ = post(send, sample_send_payload(), key=None, headers={"X-Api-Key": "dev-key"}, shape=shape)
    assert status == 200


@pytest.mark.parametrize("shape", ["function-url", "apigw"])
def test_an_authorization_bearer_header_is_accepted(send, ses_fake, shape):
    status, _, _ = post(send, sample_send_payload(), key="dev-key", shape=shape)
    assert status == 200


@pytest.mark.parametrize("key", ["web-key-1", "web-key-2"])
def test_both_rotated_keys_of_a_client_are_accepted(send, ses_fake, key):
    status, body, _ = post(send, sample_send_payload(), key=key)
    assert status == 200
    assert sent_ids(ses_fake) == [body["MessageId"]]


def test_an_invalid_payload_without_a_key_is_refused_as_unauthorized_first(send, ses_fake):
    assert_error(*post(send, with_changes(Destination=[]), key=None)[:2], 401, "AuthFailure.InvalidAuthorization")
    assert ses_fake.calls == []


@pytest.mark.parametrize(("key", "headers"), [
    ("dev-key", {}), ("web-key-1", {}), (None, {"X-Api-Key": "web-key-2"}), (None, {}), ("", {})])
def test_with_no_keys_configured_every_request_is_refused_with_401(send, ses_fake, monkeypatch, key, headers):
    monkeypatch.setenv("SESMAIL_API_KEYS", "")
    config.reset()
    assert_error(*post(send, sample_send_payload(), key=key, headers=headers)[:2], 401,
                 "AuthFailure.InvalidAuthorization")
    assert ses_fake.calls == []
