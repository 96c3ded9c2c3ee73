"""Client policies, CORS, and the authentication cases every HTTP function shares (SPEC 5)."""

from __future__ import annotations

import json

import pytest

from sesmail import config
from tests.conftest import load_function
from tests.events import context, fixture, http_event, sample_send_payload

POLICIES = {
    "web": {"Templates": ["welcome"], "Senders": ["noreply@mail.qcloud.com", "@shop.example"],
            "MaxRecipients": 2, "RequestsPerMinute": 5, "MailsPerRecipientPerHour": 2,
            "Origins": ["https://shop.example"]},
}


@pytest.fixture
def policies(env, tmp_path, monkeypatch):
    settings_file = tmp_path / "policies.json"
    settings_file.write_text(json.dumps({"Templates": {"welcome": 100091}, "Clients": POLICIES}))
    monkeypatch.setenv("SESMAIL_CONFIG", str(settings_file))
    config.reset()


def send_as(send, key="web-key-1", headers=None, **changes):
    payload = sample_send_payload()
    payload.update(changes)
    result = send(http_event(payload, key=key, headers=headers), context())
    return result["statusCode"], json.loads(result["body"]) if result["body"] else {}, result["headers"]


def test_a_key_whose_client_has_no_policy_keeps_full_access(send, policies, ses_fake):
    status, _, _ = send_as(send, key="dev-key", Template={"TemplateID": 5}, FromEmailAddress="x@any.example",
                           Destination=["a@example.com", "b@example.com", "c@example.com"])
    assert status == 200


@pytest.mark.parametrize(("changes", "code", "field"), [
    ({"Template": {"TemplateID": 5}}, "UnauthorizedOperation.TemplateNotAllowed", "Template"),
    ({"FromEmailAddress": "spam@elsewhere.example"}, "UnauthorizedOperation.SenderNotAllowed", "FromEmailAddress"),
    ({"Destination": ["a@example.com", "b@example.com"], "Cc": ["c@example.com"]},
     "UnauthorizedOperation.TooManyRecipients", "Destination"),
])
def test_a_rule_that_forbids_answers_403_naming_the_rule(send, policies, ses_fake, changes, code, field):
    status, body, _ = send_as(send, **changes)
    assert (status, body["Error"]["Code"], body["Error"]["Field"]) == (403, code, field)
    assert ses_fake.calls == []


@pytest.mark.parametrize("changes", [
    {"Template": {"TemplateName": "welcome"}},
    {"Template": {"TemplateID": 100091}},
    {"FromEmailAddress": "Shop <news@shop.example>"},
])
def test_allowed_templates_and_senders_pass(send, policies, ses_fake, changes):
    assert send_as(send, **changes)[0] == 200


def test_requests_per_minute_answers_429_with_retry_after(send, policies):
    statuses = [send_as(send, Destination=[f"r{i}@example.com"])[0] for i in range(5)]
    status, body, headers = send_as(send, Destination=["r9@example.com"])
    assert statuses == [200] * 5
    assert (status, body["Error"]["Code"]) == (429, "RequestLimitExceeded.ClientRate")
    assert int(headers["Retry-After"]) >= 1


def test_mails_per_recipient_per_hour_answers_429_naming_the_field(send, policies, ses_fake):
    assert [send_as(send)[0] for _ in range(2)] == [200, 200]
    status, body, headers = send_as(send)
    assert (status, body["Error"]["Code"], body["Error"]["Field"]) == (429, "FailedOperation.FrequencyLimit",
                                                                        "Destination[0]")
    assert "Retry-After" in headers
    assert len(ses_fake.sent) == 2


def test_a_batch_counts_inline_recipients_against_max_recipients(env, policies, ses_fake):
    batch = load_function("batch").main_handler
    payload = {"FromEmailAddress": "noreply@mail.qcloud.com", "Subject": "News", "TaskType": 1,
               "Template": {"TemplateName": "welcome"},
               "Recipients": [{"Email": f"u{i}@example.com"} for i in range(3)]}
    result = batch(http_event(payload, key="web-key-1", path="/batch"), context())
    assert result["statusCode"] == 403
    assert ses_fake.calls == []


# --- CORS ---

def preflight(send, origin):
    return send(http_event(None, method="OPTIONS", key=None, headers={"origin": origin,
                                                                    "access-control-request-method": "POST"}),
                context())


def test_a_preflight_from_an_allowed_origin_is_answered_with_cors_headers(send, policies):
    result = preflight(send, "https://shop.example")
    assert result["statusCode"] == 204
    assert result["headers"]["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "Idempotency-Key" in result["headers"]["Access-Control-Allow-Headers"]


def test_a_preflight_from_another_origin_gets_no_cors_headers(send, policies):
    result = preflight(send, "https://evil.example")
    assert result["statusCode"] == 403
    assert "Access-Control-Allow-Origin" not in result["headers"]


def test_a_browser_key_answers_its_origin_with_cors_headers(send, policies):
    status, _, headers = send_as(send, headers={"origin": "https://shop.example"})
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "https://shop.example"


def test_a_browser_key_is_refused_from_another_origin(send, policies, ses_fake):
    status, body, headers = send_as(send, headers={"origin": "https://evil.example"})
    assert (status, body["Error"]["Code"]) == (403, "UnauthorizedOperation.OriginNotAllowed")
    assert "Access-Control-Allow-Origin" not in headers
    assert ses_fake.calls == []


def test_a_server_key_used_from_a_browser_gets_no_cors_headers(send, policies):
    status, _, headers = send_as(send, key="dev-key", headers={"origin": "https://shop.example"})
    assert status == 200
    assert "Access-Control-Allow-Origin" not in headers


# --- the shared authentication cases, run against every HTTP function ---

def _send_request(key_header):
    return http_event(sample_send_payload(), key=None, headers=key_header)


def _batch_request(key_header):
    return http_event({"Digest": "none", "Email": "a@example.com", "Item": {}}, path="/digest/items", key=None,
                      headers=key_header)


def _webhook_request(token):
    return http_event(fixture("ses-callback-bounce.json"), key=None, path="/webhook",
                      query={"token": token} if token is not None else {})


FUNCTIONS = {
    # name: (build a request from a credential, the refusal status, the valid credentials (rotation))
    "send": (lambda cred: _send_request({} if cred is None else {"authorization": f"Bearer {cred}"}), 401,
             ["web-key-1", "web-key-2", "dev-key"]),
    "batch": (lambda cred: _batch_request({} if cred is None else {"x-api-key": cred}), 401,
              ["web-key-1", "web-key-2", "dev-key"]),
    "webhook": (_webhook_request, 403, ["hook-secret-1", "hook-secret-2"]),
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@pytest.mark.parametrize("credential", [None, "", "wrong", "dev-key-and-more", "hook-secret"])
def test_a_missing_or_wrong_credential_is_refused_by_every_http_function(env, name, credential):
    build, refused, _ = FUNCTIONS[name]
    result = load_function(name).main_handler(build(credential), context())
    assert result["statusCode"] == refused


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_rotated_credential_is_accepted_by_every_http_function(env, name):
    build, _, valid = FUNCTIONS[name]
    handler = load_function(name).main_handler
    for credential in valid:
        assert handler(build(credential), context())["statusCode"] not in (401, 403)


def test_a_replayed_idempotent_request_is_not_counted_again(send, policies, ses_fake):
    results = [send_as(send, headers={"idempotency-key": "once"})[0] for _ in range(4)]
    assert results == [200] * 4  # MailsPerRecipientPerHour is 2, but only the first request sent
    assert len(ses_fake.sent) == 1


def test_a_key_with_a_policy_sees_only_its_own_clients_messages(send, policies, ses_fake):
    def status(key, message_id):
        return send(http_event(None, method="GET", path=f"/messages/{message_id}", key=key), context())["statusCode"]

    mine = send_as(send)[1]["MessageId"]
    other = send_as(send, key="dev-key", Destination=["x@example.com"])[1]["MessageId"]
    assert (status("web-key-2", mine), status("web-key-1", other)) == (200, 404)
    assert (status("dev-key", mine), status("dev-key", other)) == (200, 200)
