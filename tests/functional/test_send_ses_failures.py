"""SES failures through the real SDK over real HTTP: what is retried, what is never retried (docs/reliability.md)."""

from __future__ import annotations

import json
import socket

import pytest

from sesmail import config, transport
from tests.events import context, http_event, sample_send_payload


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    # The policy is what is under test, not the length of its pauses.
    monkeypatch.setattr(transport, "BACKOFF_BASE_S", 0.001)
    monkeypatch.setattr(transport, "BACKOFF_CAP_S", 0.005)


def send_calls(fake) -> int:
    return sum(1 for call in fake.calls if call["Action"] == "SendEmail")


def body_of(result) -> dict:
    return json.loads(result["body"])


def test_rate_limited_twice_then_accepted_sends_once(send, ses_fake):
    ses_fake.fail("SendEmail", "RequestLimitExceeded", times=2)
    result = send(http_event(sample_send_payload()), context())
    assert result["statusCode"] == 200
    assert body_of(result)["MessageId"] == ses_fake.sent[0]["MessageId"]
    assert len(ses_fake.sent) == 1
    assert send_calls(ses_fake) == 3


def test_service_not_available_is_retried(send, ses_fake):
    ses_fake.fail("SendEmail", "FailedOperation.ServiceNotAvailable", times=1)
    result = send(http_event(sample_send_payload()), context())
    assert result["statusCode"] == 200
    assert len(ses_fake.sent) == 1


def test_rate_limited_on_every_attempt_answers_429_after_the_configured_attempts(send, ses_fake):
    ses_fake.fail("SendEmail", "RequestLimitExceeded.UinLimitExceeded", times=10)
    result = send(http_event(sample_send_payload()), context())
    assert result["statusCode"] == 429
    assert body_of(result)["Error"]["Code"] == "RequestLimitExceeded.UinLimitExceeded"
    assert send_calls(ses_fake) == config.load().ses_attempts
    assert ses_fake.sent == []


@pytest.mark.parametrize(("code", "status"), [
    ("FailedOperation.InvalidTemplateID", 400),
    ("FailedOperation.NotAuthenticatedSender", 403),
    ("FailedOperation.FrequencyLimit", 429),
    ("FailedOperation.ExceedSendLimit", 429),
    ("FailedOperation.EmailAddrInBlacklist", 403),
    ("AuthFailure.SignatureFailure", 502),
])
def test_a_permanent_ses_error_is_not_retried_and_keeps_its_code(send, ses_fake, code, status):
    ses_fake.fail("SendEmail", code)
    result = send(http_event(sample_send_payload()), context())
    assert result["statusCode"] == status
    assert body_of(result)["Error"]["Code"] == code
    assert send_calls(ses_fake) == 1


def test_internal_error_is_not_retried_and_reports_an_unknown_outcome(send, ses_fake):
    ses_fake.fail("SendEmail", "InternalError")
    result = send(http_event(sample_send_payload()), context())
    assert result["statusCode"] == 503
    error = body_of(result)["Error"]
    assert error["Outcome"] == "Unknown"
    assert error["Code"] == "InternalError"
    assert send_calls(ses_fake) == 1


def test_a_reply_lost_after_ses_stored_the_mail_is_not_retried(send, ses_fake):
    ses_fake.drop_after("SendEmail")
    result = send(http_event(sample_send_payload()), context())
    assert result["statusCode"] == 503
    assert body_of(result)["Error"]["Outcome"] == "Unknown"
    assert len(ses_fake.sent) == 1  # SES did send: a blind retry would have sent it twice
    assert send_calls(ses_fake) == 1


def test_a_connection_dropped_before_the_reply_is_not_retried(send, ses_fake):
    ses_fake.drop_before("SendEmail")
    result = send(http_event(sample_send_payload()), context())
    assert result["statusCode"] == 503
    assert body_of(result)["Error"]["Outcome"] == "Unknown"
    assert send_calls(ses_fake) == 1


def test_an_http_5xx_is_not_retried_and_reports_an_unknown_outcome(send, ses_fake):
    ses_fake.fail_http("SendEmail", status=502)
    result = send(http_event(sample_send_payload()), context())
    assert result["statusCode"] == 503
    assert body_of(result)["Error"]["Outcome"] == "Unknown"
    assert send_calls(ses_fake) == 1


def test_a_read_timeout_is_not_retried(send, ses_fake, monkeypatch):
    monkeypatch.setenv("SESMAIL_SES_READ_TIMEOUT", "1")
    config.reset()
    ses_fake.delay("SendEmail", 2.5)
    result = send(http_event(sample_send_payload()), context())
    assert result["statusCode"] == 503
    assert body_of(result)["Error"]["Outcome"] == "Unknown"
    assert send_calls(ses_fake) == 1


def test_an_error_reply_with_a_charset_in_its_content_type_is_still_an_error(send, ses_fake):
    # The SDK only reads error replies whose Content-Type is exactly application/json.
    ses_fake.wrong_content_type("SendEmail")
    ses_fake.fail("SendEmail", "FailedOperation.InvalidTemplateID")
    result = send(http_event(sample_send_payload()), context())
    assert result["statusCode"] == 400
    assert body_of(result)["Error"]["Code"] == "FailedOperation.InvalidTemplateID"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_ses_is_retried_then_answers_503_not_sent(send, monkeypatch, capsys):
    monkeypatch.setenv("SESMAIL_SES_ENDPOINT", f"127.0.0.1:{_closed_port()}")
    config.reset()
    result = send(http_event(sample_send_payload()), context())
    assert result["statusCode"] == 503
    error = body_of(result)["Error"]
    assert error["Code"] == "ResourceUnavailable.SesUnreachable"
    assert error["Outcome"] == "NotSent"
    retries = [line for line in capsys.readouterr().out.splitlines() if "retrying" in line]
    assert len(retries) == config.load().ses_attempts - 1


def test_unreachable_ses_stops_retrying_when_the_function_time_runs_out(send, monkeypatch, capsys):
    monkeypatch.setenv("SESMAIL_SES_ENDPOINT", f"127.0.0.1:{_closed_port()}")
    monkeypatch.setattr(transport, "BACKOFF_BASE_S", 0.4)
    monkeypatch.setattr(transport, "BACKOFF_CAP_S", 0.4)
    config.reset()
    # 1.6 s limit - 1 s safety margin leaves room for one call, not for a pause and another.
    result = send(http_event(sample_send_payload()), context(time_limit_ms=1600))
    assert result["statusCode"] == 503
    assert body_of(result)["Error"]["Outcome"] == "NotSent"
    retries = [line for line in capsys.readouterr().out.splitlines() if "retrying" in line]
    assert len(retries) < config.load().ses_attempts - 1


def test_missing_credentials_answer_503_and_send_nothing(send, ses_fake, monkeypatch):
    monkeypatch.delenv("TENCENTCLOUD_SECRETKEY")
    result = send(http_event(sample_send_payload()), context())
    assert result["statusCode"] == 503
    assert body_of(result)["Error"]["Code"] == "ResourceUnavailable.NoCredentials"
    assert ses_fake.calls == []


def test_the_session_token_of_the_run_role_is_sent_to_ses(send, ses_fake, monkeypatch):
    monkeypatch.setenv("TENCENTCLOUD_SESSIONTOKEN", "role-token")
    result = send(http_event(sample_send_payload()), context())
    assert result["statusCode"] == 200
    assert ses_fake.calls[-1]["Headers"].get("X-TC-Token") == "role-token"
