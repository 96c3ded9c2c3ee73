"""The SMTP transport (SESMAIL_TRANSPORT=smtp, sesmail/smtp.py) against the emulated SMTP interface
(local/ses_smtp.py), through the send function's main_handler: MIME as SES's header table wants it,
SES's SMTP refusals parsed into the API path's codes, the retries of docs/reliability.md, and the Message-ID carried
through the callbacks to the message's status."""

from __future__ import annotations

import base64
import json
import smtplib
import socket

import pytest

from local.rendering import parse_mime
from local.ses_smtp import SmtpEndpoint, refusal
from sesmail import config, smtp, transport
from sesmail.errors import InvalidInput, OutcomeUnknown, SesRefused
from tests.conftest import ROOT, load_function
from tests.events import context, http_event

TEMPLATES = {"order": 1, "welcome": 2, "digest": 3, "code": 4}
WELCOME = {"FromEmailAddress": "Shop <noreply@shop.example>", "Destination": ["ada@example.com"],
           "Subject": "Welcome, {{name}}", "Template": {"TemplateName": "welcome", "TemplateData": {"name": "Ada"}}}


@pytest.fixture(scope="module")
def endpoint(emulator):
    with SmtpEndpoint(emulator) as running:
        yield running


@pytest.fixture
def smtp_env(env, endpoint, monkeypatch):
    endpoint.received.clear()
    endpoint._faults.clear()
    with open(env["SESMAIL_CONFIG"], "w", encoding="utf-8") as handle:
        json.dump({"Templates": TEMPLATES}, handle)
    for name, value in {"SESMAIL_TRANSPORT": "smtp", "SESMAIL_SMTP_HOST": "127.0.0.1",
                        "SESMAIL_SMTP_PORT": str(endpoint.port), "SESMAIL_SMTP_TLS": "none",
                        "SESMAIL_SMTP_PASSWORD": endpoint.password, "SESMAIL_TEMPLATES_DIR": f"{ROOT}/templates",
                        "SESMAIL_SES_ATTEMPTS": "3", "SESMAIL_SETTLE_SECONDS": "0"}.items():
        monkeypatch.setenv(name, value)
    config.reset()
    return endpoint


def post(payload: dict, key: str | None = None) -> tuple[int, dict, dict]:
    headers = {"idempotency-key": key} if key else None
    answer = load_function("send").main_handler(http_event(payload, headers=headers), context())
    return answer["statusCode"], json.loads(answer["body"]), answer["headers"]


def stored(emulator, message_id: str) -> dict:
    """The emulator's copy of the mail whose Message-ID is `message_id`."""
    row = next(row for row in emulator.store.messages(50) if row["smtp_id"] == message_id)
    return emulator.message(row["message_id"])


def test_a_templated_mail_goes_out_over_smtp_with_its_message_id_as_message_id(smtp_env, ses_fake):
    status, body, _ = post(WELCOME)
    assert status == 200, body
    message_id = body["MessageId"]
    assert message_id.endswith("@shop.example") and "<" not in message_id
    mail = stored(ses_fake, message_id)
    headers = dict(mail["Headers"])
    assert headers["Message-ID"] == f"<{message_id}>"
    assert (headers["From"], headers["To"], headers["Subject"], headers["MIME-Version"]) == (
        "Shop <noreply@shop.example>", "ada@example.com", "Welcome, Ada", "1.0")
    assert "Welcome, Ada!" in mail["Text"] and "Welcome, Ada!" in mail["Html"]
    assert [call["Action"] for call in ses_fake.calls] == []  # no API call: SMTP only
    assert [r["Reply"] for r in smtp_env.received] == ["250 OK"]


def test_the_message_follows_ses_smtp_header_table_and_no_line_comes_near_2000(smtp_env, ses_fake):
    settings = config.load(f"{ROOT}/functions/send")
    long_name = "x" * 240
    params = {"FromEmailAddress": "noreply@shop.example", "Subject": "Your code",
              "Destination": [f"{long_name[:60]}{i}@example.com" for i in range(50)],  # one long To header
              "Template": {"TemplateID": 4, "TemplateData": json.dumps({"code": "9" * 5000})},  # one long body line
              "Attachments": [{"FileName": "report.pdf", "Content": base64.b64encode(bytes(range(256)) * 40).decode()}]}
    mail = smtp.prepare(settings, params)
    lines = mail.data.split(b"\r\n")
    assert max(len(line) for line in lines) <= 78
    text = mail.data.decode("ascii")
    assert "Content-Type: multipart/mixed" in text and "Content-Type: multipart/alternative" in text
    assert "Content-Type: text/plain; charset=UTF-8" in text and "Content-Type: text/html; charset=UTF-8" in text
    assert text.count("MIME-Version: 1.0") == 1
    assert "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n" \
           "Content-Disposition: attachment; filename=\"report.pdf\"" in text
    parsed = parse_mime(mail.data)
    assert "9" * 5000 in parsed["Text"]
    assert parsed["Attachments"][0]["Content"] == bytes(range(256)) * 40
    smtp.SmtpTransport(settings).send(mail, _deadline())
    assert smtp_env.received[-1]["Reply"] == "250 OK"


def test_attachments_arrive_whole_and_show_on_the_mail_page(smtp_env, ses_fake):
    files = [("a.txt", b"hello\n"), ("b.bin", bytes(range(256)) * 1000)]
    payload = dict(WELCOME, Attachments=[{"FileName": n, "Content": base64.b64encode(c).decode()} for n, c in files])
    status, body, _ = post(payload)
    assert status == 200, body
    mail = stored(ses_fake, body["MessageId"])
    assert [(a["FileName"], a["Size"]) for a in mail["Attachments"]] == [(n, len(c)) for n, c in files]


def test_a_line_of_2000_characters_is_refused_by_ses_smtp_and_read_as_a_refusal(endpoint, ses_fake):
    client = smtplib.SMTP("127.0.0.1", endpoint.port, timeout=10)
    client.login("noreply@shop.example", endpoint.password)
    raw = ("From: noreply@shop.example\r\nTo: ada@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=UTF-8\r\n\r\n" + "y" * 2000 + "\r\n")
    with pytest.raises(smtplib.SMTPDataError) as caught:
        client.sendmail("noreply@shop.example", ["ada@example.com"], raw)
    client.close()
    assert caught.value.smtp_code == 554 and b"too longer line" in caught.value.smtp_error
    error = smtp._refusal(554, caught.value.smtp_error.decode(), after_data=True)
    assert isinstance(error, SesRefused) and (error.code, error.status) == ("FailedOperation", 400)


@pytest.mark.parametrize(("code", "status"), [
    ("FailedOperation", 400),  # SES's general business errors: "msg.Subject is null" and the like
    ("FailedOperation.FrequencyLimit", 429),
    ("FailedOperation.ExceedSendLimit", 429),
    ("FailedOperation.EmailAddrInBlacklist", 403),
    ("FailedOperation.NotAuthenticatedSender", 403),
    ("InvalidParameterValue.TemplateNotMatchData", 400),
])
def test_each_ses_smtp_refusal_comes_back_with_the_api_paths_code_and_status(smtp_env, code, status):
    smtp_env.fail(code, "refused by the test")
    answer, body, _ = post(WELCOME)
    assert (answer, body["Error"]["Code"]) == (status, code)
    assert body["Error"]["Message"] == "SES SMTP: refused by the test"
    assert len(smtp_env.received) == 1  # not retried


def test_ses_smtp_rate_limit_is_retried_and_then_sent(smtp_env):
    smtp_env.fail("RequestLimitExceeded.SmtpRateLimit", "smtp sending frequency limit")
    status, body, _ = post(WELCOME)
    assert status == 200, body
    assert [r["Reply"][:3] for r in smtp_env.received] == ["554", "250"]


def test_ses_smtp_rate_limit_that_persists_ends_as_429_after_the_attempts(smtp_env):
    smtp_env.fail("RequestLimitExceeded.SmtpRateLimit", "smtp sending frequency limit", times=3)
    status, body, _ = post(WELCOME)
    assert (status, body["Error"]["Code"]) == (429, "RequestLimitExceeded.SmtpRateLimit")
    assert len(smtp_env.received) == 3  # SESMAIL_SES_ATTEMPTS


def test_smtp_disabled_for_individual_accounts_is_the_operators_problem(smtp_env):
    smtp_env.fail("FailedOperation", "SMTPForbidden")
    status, body, _ = post(WELCOME)
    assert (status, body["Error"]["Code"]) == (502, "UnauthorizedOperation.SmtpForbidden")


def test_a_connection_that_cannot_be_opened_is_retried_and_ends_as_not_sent(smtp_env, monkeypatch):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    monkeypatch.setenv("SESMAIL_SMTP_PORT", str(port))  # nobody listens there
    config.reset()
    status, body, _ = post(WELCOME)
    assert status == 503
    assert (body["Error"]["Code"], body["Error"]["Outcome"]) == ("ResourceUnavailable.SesUnreachable", "NotSent")


def test_a_wrong_smtp_password_is_the_operators_problem(smtp_env, monkeypatch):
    monkeypatch.setenv("SESMAIL_SMTP_PASSWORD", "wrong")
    config.reset()
    status, body, _ = post(WELCOME)
    assert (status, body["Error"]["Code"]) == (502, "AuthFailure.SmtpAuthentication")
    assert smtp_env.received == []


def test_a_reply_lost_after_the_data_is_in_doubt_and_a_repeat_adopts_the_sent_mail(smtp_env, ses_fake):
    smtp_env.drop_after_data()
    status, body, _ = post(WELCOME, key="welcome-ada-1")
    assert status == 503
    assert (body["Error"]["Code"], body["Error"]["Outcome"]) == ("InternalError.OutcomeUnknown", "Unknown")
    (taken,) = smtp_env.received
    message_id = ses_fake.store.message(taken["MessageId"])["smtp_id"]
    # The repeat asks GetSendEmailStatus by recipient and date (all SMTP allows), finds the mail and
    # answers with the Message-ID it was sent with; nothing goes out again.
    status, body, headers = post(WELCOME, key="welcome-ada-1")
    assert (status, body["MessageId"], headers.get("Idempotent-Replayed")) == (200, message_id, "true")
    assert len(smtp_env.received) == 1
    assert [c["Action"] for c in ses_fake.calls] == ["GetSendEmailStatus"]


@pytest.mark.parametrize(("change", "field", "code"), [
    ({"Cc": ["bob@example.com"]}, "Cc", "InvalidParameter.NotSupportedBySmtp"),
    ({"Bcc": ["bob@example.com"]}, "Bcc", "InvalidParameter.NotSupportedBySmtp"),
    ({"Unsubscribe": "2"}, "Unsubscribe", "InvalidParameter.NotSupportedBySmtp"),
    ({"Template": {"TemplateID": 999, "TemplateData": {}}}, "Template.TemplateID", "FailedOperation.InvalidTemplateID"),
    ({"Template": {"TemplateName": "welcome", "TemplateData": {"nickname": "Ada"}}}, "Template.TemplateData",
     "InvalidParameterValue.TemplateNotMatchData"),
    ({"Template": {"TemplateName": "welcome", "TemplateData": {"name": "A\r\nBcc: x@evil.example"}}},
     "Template.TemplateData", "InvalidParameterValue.HeaderLineBreak"),
    ({"SmtpMessageId": "no-domain"}, "SmtpMessageId", "InvalidParameterValue"),
    ({"SmtpHeaders": {"Subject": "other"}}, "SmtpHeaders", "InvalidParameterValue"),
])
def test_what_smtp_cannot_carry_is_refused_before_anything_is_sent(smtp_env, change, field, code):
    status, body, _ = post(dict(WELCOME, **change))
    assert (status, body["Error"]["Field"], body["Error"]["Code"]) == (400, field, code)
    assert smtp_env.received == []


# The API path's header rule (sesmail.rules) holds here too: every line boundary of str.splitlines()
# and the other control characters are refused with the same code and field, before SMTP is reached.
HEADER_BREAKERS = ["\r\n", "\v", "\f", "\x1c", "\x85", "\u2028", "\u2029", "\x00", "\x7f"]
HEADER_FIELDS = [
    (lambda bad: {"Subject": f"Welcome{bad}Bcc: x@evil.example"}, "Subject"),
    (lambda bad: {"FromEmailAddress": f"Shop{bad} <noreply@shop.example>"}, "FromEmailAddress"),
    (lambda bad: {"HeaderFrom": f"Shop{bad} <noreply@shop.example>"}, "HeaderFrom"),
    (lambda bad: {"ReplyToAddresses": f"Help{bad} <help@shop.example>"}, "ReplyToAddresses"),
    (lambda bad: {"SmtpHeaders": {"X-Campaign": f"spring{bad}"}}, "SmtpHeaders"),
    (lambda bad: {"SmtpMessageId": f"<id{bad}@shop.example>"}, "SmtpMessageId"),
    (lambda bad: {"Template": {"TemplateName": "welcome", "TemplateData": {"name": f"Ada{bad}"}}},
     "Template.TemplateData"),
]


@pytest.mark.parametrize("bad", HEADER_BREAKERS, ids=[repr(c) for c in HEADER_BREAKERS])
@pytest.mark.parametrize(("change", "field"), HEADER_FIELDS, ids=[field for _, field in HEADER_FIELDS])
def test_a_header_bound_value_is_refused_as_on_the_api_path(smtp_env, ses_fake, change, field, bad):
    status, body, _ = post(dict(WELCOME, **change(bad)))
    assert (status, body["Error"]["Code"], body["Error"].get("Field")) == (
        400, "InvalidParameterValue.HeaderLineBreak", field)
    assert smtp_env.received == [] and ses_fake.calls == []


@pytest.mark.parametrize("bad", ["\r\n", "\x85", "\u2028"], ids=repr)
def test_a_line_break_in_an_attachment_name_is_refused_as_on_the_api_path(smtp_env, bad):
    attachment = {"FileName": f"report{bad}.txt", "Content": base64.b64encode(b"hi").decode()}
    status, body, _ = post(dict(WELCOME, Attachments=[attachment]))
    assert (status, body["Error"]["Code"], body["Error"].get("Field")) == (
        400, "InvalidParameterValue.HeaderLineBreak", "Attachments[0].FileName")
    assert smtp_env.received == []


def test_smtps_own_size_limits_are_refused_with_ses_codes(smtp_env, monkeypatch):
    settings = config.load(f"{ROOT}/functions/send")
    params = {"FromEmailAddress": "noreply@shop.example", "Subject": "Hi", "Destination": ["ada@example.com"],
              "Template": {"TemplateID": 2, "TemplateData": '{"name": "Ada"}'},
              "Attachments": [{"FileName": "a.bin", "Content": base64.b64encode(b"x" * 300).decode()},
                              {"FileName": "b.bin", "Content": base64.b64encode(b"y" * 300).decode()}]}
    monkeypatch.setattr(smtp, "MAX_ATTACHMENT_BYTES", 299)
    with pytest.raises(InvalidInput) as one:
        smtp.prepare(settings, params)
    monkeypatch.setattr(smtp, "MAX_ATTACHMENT_BYTES", 300)
    monkeypatch.setattr(smtp, "MAX_ATTACHMENTS_BYTES", 599)
    with pytest.raises(InvalidInput) as total:
        smtp.prepare(settings, params)
    monkeypatch.setattr(smtp, "MAX_BODY_BYTES", 10)
    with pytest.raises(InvalidInput) as body:
        smtp.prepare(settings, params)
    assert [(e.value.code, e.value.field) for e in (one, total, body)] == [
        ("FailedOperation.AttachContentToolarge", "Attachments[0].Content"),
        ("FailedOperation.AttachContentToolarge", "Attachments"),
        ("FailedOperation.EmailContentToolarge", "Template")]


def test_the_message_id_is_carried_through_the_callbacks_to_the_messages_status(smtp_env, ses_fake):
    status, body, _ = post(dict(WELCOME, Destination=["ada@example.com"], SmtpMessageId="<order-7@shop.example>"))
    assert (status, body["MessageId"]) == (200, "order-7@shop.example")
    row = next(r for r in ses_fake.store.messages(50) if r["smtp_id"] == "order-7@shop.example")
    callbacks = [json.loads(event["payload"]) for event in ses_fake.store.events([row["message_id"]])]
    assert [(c["event"], c["bulkId"], c["messageId"]) for c in callbacks] == [
        ("delivered", row["message_id"], "order-7@shop.example")]  # bulkId: SES's own id, unknown to us
    webhook = load_function("webhook").main_handler
    for callback in callbacks:
        answer = webhook(http_event(callback, path="/webhook", key=None, query={"token": "hook-secret-1"}), context())
        assert answer["statusCode"] == 200, answer
    answer = load_function("send").main_handler(
        http_event(None, method="GET", path="/messages/order-7@shop.example"), context())
    state = json.loads(answer["body"])
    assert answer["statusCode"] == 200, state
    assert (state["State"], [(e["Event"], e["Email"], e["SmtpMessageId"]) for e in state["Events"]]) == (
        "delivered", [("delivered", "ada@example.com", "order-7@shop.example")])


# -- the refusal format -----------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    # The emulator's (and the documented structure's) form.
    (refusal("FailedOperation.FrequencyLimit", "too often")[4:], ("FailedOperation.FrequencyLimit", "too often")),
    # The documented sample as published: the message runs into the code, and the JSON is cut short.
    ('5.0.0 Error: transaction failed, blame it on the weather: ##SES-response-json: {"Response":{"RequestId":'
     '"bee4e9fb-8127-48cc-b606-bbb1e801596b","QcloudError":{"Error":{"Code":"FailedOperation.MissingEmailContent.'
     ' The operation failed. The content of the email is missing (TemplateData and Simple cannot be both empty).',
     ("FailedOperation.MissingEmailContent", "The operation failed. The content of the email is missing "
                                             "(TemplateData and Simple cannot be both empty).")),
    # The field table's form: Code and Message directly under QcloudError.
    ('Error: ##SES-response-json: {"Response":{"RequestId":"r","QcloudError":{"Code":"FailedOperation",'
     '"Message":"msg.From is null"}}}', ("FailedOperation", "msg.From is null")),
    # A multi-line reply joined by smtplib with a line break inside the JSON.
    ('Error: ##SES-response-json: {"Response":{"QcloudError":{"Error":{"Code":"RequestLimitExceeded.SmtpRate\n'
     'Limit","Message":"smtp sending frequency limit"}}}}', ("RequestLimitExceeded.SmtpRate", None)),
])
def test_ses_smtp_refusals_are_parsed_leniently(text, expected):
    parsed = smtp.parse_reply(text)
    assert parsed is not None and parsed["Code"] == expected[0]
    if expected[1] is not None:
        assert parsed["Message"] == expected[1]


def test_a_refusal_without_the_json_is_not_parsed():
    assert smtp.parse_reply("550 5.1.1 mailbox unavailable") is None
    assert isinstance(smtp._refusal(451, "4.3.0 try later"), transport.NotSent)
    assert isinstance(smtp._refusal(554, refusal("InternalError", "x"), after_data=True), OutcomeUnknown)


def _deadline():
    from sesmail.deadline import Deadline

    return Deadline(20000)
