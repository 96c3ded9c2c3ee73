"""Keys, scopes and client policies on every route, CORS, and the authentication cases every HTTP
function shares (the trust boundary: docs/security.md)."""

from __future__ import annotations

import hashlib
import json
import os
import secrets

import pytest

from sesmail import batching, config, policy, ratelimit, redis_client, store, transport
from tests import db
from tests.conftest import SECRET_ID, SECRET_KEY, load_function
from tests.events import context, fixture, http_event, sample_send_payload

WEB = {"Scopes": ["send"], "Templates": ["welcome"], "Senders": ["noreply@mail.qcloud.com", "@shop.example"],
       "MaxRecipients": 2, "RequestsPerMinute": 5, "MailsPerRecipientPerHour": 2,
       "Origins": ["https://shop.example"]}
DIGEST = {"FromEmailAddress": "digest@shop.example", "Subject": "Your updates", "Template": {"TemplateID": 100091}}
API_KEYS = "dev-key,web=web-key-1,web=web-key-2,partner=partner-key,admin=admin-key,ops=ops-key,stats=stats-key"


def configure(monkeypatch, tmp_path, clients: dict, **extra) -> None:
    settings_file = tmp_path / "policies.json"
    settings_file.write_text(json.dumps(dict({"Templates": {"welcome": 100091, "order": 100092},
                                              "Digests": {"daily": DIGEST, "weekly": DIGEST},
                                              "Clients": clients}, **extra)))
    monkeypatch.setenv("SESMAIL_CONFIG", str(settings_file))
    monkeypatch.setenv("SESMAIL_API_KEYS", API_KEYS)
    config.reset()


@pytest.fixture
def policies(env, tmp_path, monkeypatch):
    configure(monkeypatch, tmp_path, {"web": WEB})


@pytest.fixture
def batch(env, monkeypatch):
    monkeypatch.setattr(transport, "BACKOFF_BASE_S", 0.001)
    monkeypatch.setattr(batching, "POLL_FIRST_S", 0.01)
    return load_function("batch").main_handler


def mail(**changes) -> dict:
    """The samples' SendEmail without their ReplyToAddresses (on another domain than the sender's)."""
    payload = sample_send_payload()
    del payload["ReplyToAddresses"]
    payload.update(changes)
    return payload


def send_as(send, key="web-key-1", headers=None, **changes):
    payload = mail(**changes)
    result = send(http_event(payload, key=key, headers=headers), context())
    return result["statusCode"], json.loads(result["body"]) if result["body"] else {}, result["headers"]


def call(handler, body=None, key="web-key-1", **kwargs) -> tuple[int, dict]:
    result = handler(http_event(body, key=key, **kwargs), context())
    return result["statusCode"], json.loads(result["body"]) if result["body"] else {}


def refusal(answer: tuple) -> tuple:
    status, body = answer[0], answer[1]
    return status, body["Error"]["Code"], body["Error"].get("Field")


def batch_payload(**changes) -> dict:
    out = {"FromEmailAddress": "noreply@mail.qcloud.com", "Subject": "News", "TaskType": 1,
           "Template": {"TemplateName": "welcome"}}
    out.update(changes)
    return out


def inline(*emails: str) -> list[dict]:
    return [{"Email": email} for email in emails]


def ses_list(ses_fake, emails: list[str]) -> int:
    """A recipient list made at SES outside sesmail (a partner's), holding `emails`."""
    from tencentcloud.common import credential
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile
    from tencentcloud.ses.v20201002 import ses_client

    client = ses_client.SesClient(credential.Credential(SECRET_ID, SECRET_KEY), "ap-guangzhou",
                                  ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=ses_fake.endpoint)))
    receiver_id = client.call_json("CreateReceiver", {"ReceiversName": f"outside-{secrets.token_hex(3)}"})[
        "Response"]["ReceiverId"]
    client.call_json("CreateReceiverDetail", {"ReceiverId": receiver_id, "Emails": emails})
    ses_fake.calls.clear()
    return receiver_id


def actions(ses_fake) -> list[str]:
    return [made["Action"] for made in ses_fake.calls]


def stored_rows(table: str) -> int:
    return db.count(config.load().database_url, table)


# --- send: templates, senders, recipients -----------------------------------------------------

def test_a_key_whose_client_has_no_policy_keeps_full_access(send, policies, ses_fake):
    status, _, _ = send_as(send, key="dev-key", Template={"TemplateID": 5}, FromEmailAddress="x@any.example",
                           Destination=["a@example.com", "b@example.com", "c@example.com"],
                           HeaderFrom="x@any.example", ReplyToAddresses="y@other.example",
                           SmtpHeaders={"X-Anything": "1"})
    assert status == 200


@pytest.mark.parametrize(("changes", "code", "field"), [
    ({"Template": {"TemplateID": 5}}, "UnauthorizedOperation.TemplateNotAllowed", "Template"),
    ({"Template": {"TemplateName": "order"}}, "UnauthorizedOperation.TemplateNotAllowed", "Template"),
    ({"FromEmailAddress": "spam@elsewhere.example"}, "UnauthorizedOperation.SenderNotAllowed", "FromEmailAddress"),
    ({"HeaderFrom": "CEO <ceo@bank.example>"}, "UnauthorizedOperation.SenderNotAllowed", "HeaderFrom"),
    ({"ReplyToAddresses": "thief@elsewhere.example"}, "UnauthorizedOperation.ReplyToNotAllowed",
     "ReplyToAddresses"),
    ({"SmtpHeaders": {"List-Unsubscribe": "<https://evil.example/u>"}}, "UnauthorizedOperation.HeaderNotAllowed",
     "SmtpHeaders"),
    ({"Destination": ["a@example.com", "b@example.com"], "Cc": ["c@example.com"]},
     "UnauthorizedOperation.TooManyRecipients", "Destination"),
])
def test_a_field_outside_the_policy_answers_403_naming_field_and_rule(send, policies, ses_fake, changes, code,
                                                                       field):
    status, body, _ = send_as(send, **changes)
    assert (status, body["Error"]["Code"], body["Error"]["Field"]) == (403, code, field)
    assert "`" in body["Error"]["Message"]  # names the policy field it broke
    assert ses_fake.calls == []


@pytest.mark.parametrize("changes", [
    {"Template": {"TemplateName": "welcome"}},
    {"Template": {"TemplateID": 100091}},
    {"FromEmailAddress": "Shop <news@shop.example>"},
    {"HeaderFrom": "Shop <news@Shop.example>"},
    {"ReplyToAddresses": "help@shop.example"},  # no ReplyTo: its Senders
])
def test_allowed_templates_senders_and_reply_to_pass(send, policies, changes):
    assert send_as(send, **changes)[0] == 200


def test_reply_to_any_headers_by_name_and_a_list_of_reply_tos(send, env, tmp_path, monkeypatch, ses_fake):
    configure(monkeypatch, tmp_path, {"web": dict(WEB, ReplyTo="*", Headers=["X-Order-Id"]),
                                      "partner": {"Scopes": ["send"], "ReplyTo": ["@help.example"]}})
    assert send_as(send, ReplyToAddresses="visitor@anywhere.example", SmtpHeaders={"x-order-id": "7"})[0] == 200
    assert refusal(send_as(send, SmtpHeaders={"X-Order-Id": "7", "X-Other": "1"})) == (
        403, "UnauthorizedOperation.HeaderNotAllowed", "SmtpHeaders")
    assert send_as(send, key="partner-key", ReplyToAddresses="desk@help.example")[0] == 200
    assert refusal(send_as(send, key="partner-key", ReplyToAddresses="desk@shop.example")) == (
        403, "UnauthorizedOperation.ReplyToNotAllowed", "ReplyToAddresses")


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


def test_a_tag_or_a_capital_does_not_make_a_new_recipient(send, policies, ses_fake):
    assert send_as(send, Destination=["vic@example.com"])[0] == 200
    assert send_as(send, Destination=["Vic+1@Example.com"])[0] == 200
    assert refusal(send_as(send, Destination=["vic+2@example.com"])) == (
        429, "FailedOperation.FrequencyLimit", "Destination[0]")
    assert len(ses_fake.sent) == 2


def test_a_replayed_idempotent_request_is_not_counted_again(send, policies, ses_fake):
    results = [send_as(send, headers={"idempotency-key": "once"})[0] for _ in range(4)]
    assert results == [200] * 4  # MailsPerRecipientPerHour is 2, but only the first request sent
    assert len(ses_fake.sent) == 1


def test_a_request_refused_by_the_policy_stores_nothing_not_even_its_idempotency_key(send, policies, ses_fake):
    status, _, _ = send_as(send, headers={"idempotency-key": "k"}, HeaderFrom="ceo@bank.example")
    assert status == 403
    assert stored_rows("sesmail_idempotency") == 0 and stored_rows("sesmail_sent") == 0
    assert send_as(send, headers={"idempotency-key": "k"})[0] == 200  # the key is still free


def test_a_direct_invocation_is_trusted_even_when_the_default_client_has_a_policy(env, tmp_path, monkeypatch,
                                                                                    ses_fake):
    configure(monkeypatch, tmp_path, {"default": {"Scopes": ["stats"], "Senders": ["@nowhere.example"]}})
    result = load_function("send").main_handler(mail(), context())
    assert result["statusCode"] == 200
    assert call(load_function("send").main_handler, mail(), key="dev-key")[0] == 403


# --- scopes ------------------------------------------------------------------------------------

def test_each_route_needs_its_scope(env, tmp_path, monkeypatch, ses_fake, batch):
    configure(monkeypatch, tmp_path, {"web": {"Scopes": ["send"]}, "partner": {"Scopes": ["batch"]},
                                      "stats": {"Scopes": ["stats"]}})
    send = load_function("send").main_handler
    requests = {
        "send": (send, mail(), {}),
        "batch": (batch, batch_payload(Recipients=inline("a@example.com")), {"path": "/batch"}),
        "digest": (batch, {"Digest": "daily", "Email": "a@example.com", "Item": {}}, {"path": "/digest/items"}),
        "admin": (send, None, {"method": "GET", "path": "/suppressions"}),
    }
    for key, allowed in (("web-key-1", "send"), ("partner-key", "batch"), ("stats-key", None)):
        for scope, (handler, body, kwargs) in requests.items():
            answer = call(handler, body, key=key, **kwargs)
            if scope == allowed:
                assert answer[0] == 200, (key, scope, answer)
            else:
                assert refusal(answer) == (403, "UnauthorizedOperation.ScopeNotAllowed", "Authorization"), (key, scope)
                assert f"`{scope}`" in answer[1]["Error"]["Message"]


def test_the_admin_scope_may_call_every_route(env, tmp_path, monkeypatch, ses_fake, batch):
    configure(monkeypatch, tmp_path, {"admin": {"Scopes": ["admin"]}})
    send = load_function("send").main_handler
    assert call(send, mail(), key="admin-key")[0] == 200
    assert call(send, None, key="admin-key", method="PUT", path="/suppressions/x%40example.com")[0] == 200
    assert call(send, None, key="admin-key", method="GET", path="/suppressions")[0] == 200
    assert call(send, None, key="admin-key", method="DELETE", path="/addresses/x%40example.com")[0] == 200
    assert call(batch, {"Digest": "daily", "Email": "a@example.com", "Item": {}}, key="admin-key",
                path="/digest/items")[0] == 200  # no `Digests`: an admin client may use every digest
    assert call(batch, batch_payload(Recipients=inline("a@example.com")), key="admin-key", path="/batch")[0] == 200


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/suppressions", None),
    ("PUT", "/suppressions/victim%40example.com", {"Scope": "all"}),
    ("DELETE", "/suppressions/victim%40example.com", None),
    ("DELETE", "/addresses/victim%40example.com", None),
])
def test_the_admin_routes_refuse_a_send_key_and_change_nothing(send, policies, method, path, body):
    store.open_store(config.load().database_url).suppress("victim@example.com", "all", "hard_bounce", "callback", 1.0)
    assert refusal(call(send, body, method=method, path=path)) == (
        403, "UnauthorizedOperation.ScopeNotAllowed", "Authorization")
    assert store.open_store(config.load().database_url).list_suppressions(0, 10)[0]["Email"] == "victim@example.com"


# --- batch -------------------------------------------------------------------------------------

BATCHER = {"Scopes": ["batch", "send"], "Templates": ["welcome"], "Senders": ["@mail.qcloud.com"],
           "MaxRecipients": 3, "MailsPerRecipientPerHour": 2}


@pytest.fixture
def batcher(env, tmp_path, monkeypatch):
    configure(monkeypatch, tmp_path, {"web": BATCHER, "partner": {"Scopes": ["batch"], "Receivers": []}})


@pytest.mark.parametrize(("changes", "code", "field"), [
    ({"Template": {"TemplateName": "order"}}, "UnauthorizedOperation.TemplateNotAllowed", "Template"),
    ({"FromEmailAddress": "ceo@bank.example"}, "UnauthorizedOperation.SenderNotAllowed", "FromEmailAddress"),
    ({"ReplyToAddresses": "thief@elsewhere.example"}, "UnauthorizedOperation.ReplyToNotAllowed",
     "ReplyToAddresses"),
    ({"Recipients": inline(*(f"u{i}@example.com" for i in range(4)))}, "UnauthorizedOperation.TooManyRecipients",
     "Recipients"),
])
def test_a_batch_is_held_to_the_policy_before_anything_is_stored(batch, batcher, ses_fake, changes, code, field):
    body = batch_payload(Recipients=inline("a@example.com"))
    body.update(changes)
    assert refusal(call(batch, body, path="/batch", headers={"idempotency-key": "b"})) == (403, code, field)
    assert ses_fake.calls == [] and stored_rows("sesmail_idempotency") == 0


def test_a_list_made_outside_sesmail_needs_receivers_and_its_size_counts(batch, env, tmp_path, monkeypatch, ses_fake):
    outside = ses_list(ses_fake, [f"p{i}@example.com" for i in range(5)])
    configure(monkeypatch, tmp_path, {"web": BATCHER, "partner": {"Scopes": ["batch"], "Receivers": [outside]},
                                      "small": {"Scopes": ["batch"], "Receivers": [outside], "MaxRecipients": 4}})
    monkeypatch.setenv("SESMAIL_API_KEYS", API_KEYS + ",small=small-key")
    config.reset()
    # not in its Receivers: refused without asking SES anything
    assert refusal(call(batch, batch_payload(ReceiverId=outside), path="/batch")) == (
        403, "UnauthorizedOperation.ReceiverNotAllowed", "ReceiverId")
    assert ses_fake.calls == []
    # in its Receivers, but bigger than MaxRecipients: SES is asked for the size, nothing is sent
    assert refusal(call(batch, batch_payload(ReceiverId=outside), key="small-key", path="/batch")) == (
        403, "UnauthorizedOperation.TooManyRecipients", "ReceiverId")
    assert actions(ses_fake) == ["ListReceiverDetails"]
    ses_fake.calls.clear()
    assert call(batch, batch_payload(ReceiverId=outside), key="partner-key", path="/batch")[0] == 200
    assert actions(ses_fake) == ["BatchSendEmail"]


def test_a_list_whose_size_ses_does_not_report_is_refused_and_says_so(batch, env, tmp_path, monkeypatch, ses_fake):
    outside = ses_list(ses_fake, ["p@example.com"])
    configure(monkeypatch, tmp_path, {"partner": {"Scopes": ["batch"], "Receivers": [outside], "MaxRecipients": 9}})
    monkeypatch.setattr(batching, "_list_size", lambda settings, deadline, receiver_id: None)
    status, body = call(batch, batch_payload(ReceiverId=outside), key="partner-key", path="/batch")
    assert (status, body["Error"]["Code"], body["Error"]["Field"]) == (
        403, "UnauthorizedOperation.TooManyRecipients", "ReceiverId")
    assert "size" in body["Error"]["Message"]


def test_a_list_sesmail_made_for_a_client_is_its_own_and_no_one_elses(batch, batcher, ses_fake):
    status, body = call(batch, batch_payload(Recipients=inline("a@example.com", "b@example.com")), path="/batch")
    assert status == 200, body
    own = next(made["Params"]["ReceiverId"] for made in ses_fake.calls if made["Action"] == "BatchSendEmail")
    assert call(batch, batch_payload(ReceiverId=own, Subject="Again"), path="/batch")[0] == 200
    assert refusal(call(batch, batch_payload(ReceiverId=own), key="partner-key", path="/batch")) == (
        403, "UnauthorizedOperation.ReceiverNotAllowed", "ReceiverId")


def test_send_and_batch_share_the_per_recipient_count_and_a_batch_leaves_out_who_is_over(batch, batcher,
                                                                                          ses_fake):
    send = load_function("send").main_handler
    assert call(send, mail(Destination=["vic@example.com"]))[0] == 200
    assert call(send, mail(Destination=["vic+1@example.com"]))[0] == 200
    status, body = call(batch, batch_payload(Recipients=inline("a@example.com", "VIC+2@example.com",
                                                               "b@example.com")), path="/batch")
    assert status == 200, body
    assert body["RateLimited"] == ["Recipients[1]"]
    uploaded = [row["Email"] for made in ses_fake.calls if made["Action"] == "CreateReceiverDetailWithData"
                for row in made["Params"]["Datas"]]
    assert uploaded == ["a@example.com", "b@example.com"]
    # a second batch to the same two: their second mail this hour; a third finds nobody left
    assert call(batch, batch_payload(Recipients=inline("a@example.com", "b@example.com")), path="/batch")[0] == 200
    ses_fake.calls.clear()
    status, body = call(batch, batch_payload(Recipients=inline("a@example.com", "b+x@example.com")), path="/batch")
    assert (status, body["Error"]["Code"], body["Error"]["Field"]) == (429, "FailedOperation.FrequencyLimit",
                                                                        "Recipients")
    assert ses_fake.calls == []


def test_a_batch_on_a_list_counts_the_lists_addresses_and_refuses_when_one_is_over(batch, env, tmp_path,
                                                                                    monkeypatch, ses_fake):
    outside = ses_list(ses_fake, ["Vic+list@example.com", "other@example.com"])
    configure(monkeypatch, tmp_path, {"web": dict(BATCHER, Receivers=[outside])})
    send = load_function("send").main_handler
    assert call(send, mail(Destination=["vic@example.com"]))[0] == 200
    assert call(batch, batch_payload(ReceiverId=outside), path="/batch")[0] == 200  # vic's second this hour
    ses_fake.calls.clear()
    status, body = call(batch, batch_payload(ReceiverId=outside, Subject="Again"), path="/batch")
    assert (status, body["Error"]["Code"], body["Error"]["Field"]) == (429, "FailedOperation.FrequencyLimit",
                                                                        "ReceiverId")
    assert "BatchSendEmail" not in actions(ses_fake)
    monkeypatch.setattr(batching, "LIST_COUNT_MAX", 1)  # a list too big to read back is refused, and says so
    assert refusal(call(batch, batch_payload(ReceiverId=outside, Subject="Third"), path="/batch")) == (
        403, "UnauthorizedOperation.TooManyRecipients", "ReceiverId")


def test_a_rate_limited_batch_names_indexes_of_the_request_after_suppressed_ones(batch, batcher, ses_fake):
    store.open_store(config.load().database_url).suppress("a@example.com", "all", "hard_bounce", "callback", 1.0)
    send = load_function("send").main_handler
    for _ in range(2):
        assert call(send, mail(Destination=["c@example.com"]))[0] == 200
    status, body = call(batch, batch_payload(Recipients=inline("a@example.com", "b@example.com", "c@example.com")),
                        path="/batch", headers={"idempotency-key": "k1"})
    assert (status, body["Suppressed"], body["RateLimited"]) == (200, ["Recipients[0]"], ["Recipients[2]"])
    # a replay answers the same and counts nothing again
    replay = call(batch, batch_payload(Recipients=inline("a@example.com", "b@example.com", "c@example.com")),
                  path="/batch", headers={"idempotency-key": "k1"})
    assert replay[1]["RateLimited"] == ["Recipients[2]"] and replay[1]["TaskIds"] == body["TaskIds"]
    assert call(send, mail(Destination=["b@example.com"]))[0] == 200  # b's second


def test_another_clients_task_is_404_and_sesmail_does_not_ask_ses(batch, batcher, ses_fake):
    _, mine = call(batch, batch_payload(Recipients=inline("a@example.com")), path="/batch")
    _, theirs = call(batch, batch_payload(Recipients=inline("b@example.com")), key="dev-key", path="/batch")
    ses_fake.calls.clear()
    for task, key, status in ((theirs, "web-key-1", 404), (theirs, "partner-key", 404), (mine, "partner-key", 404),
                              ({"TaskId": 987654}, "web-key-2", 404)):
        assert call(batch, None, key=key, method="GET", path=f"/batch/tasks/{task['TaskId']}")[0] == status
    assert ses_fake.calls == []
    assert call(batch, None, key="web-key-2", method="GET", path=f"/batch/tasks/{mine['TaskId']}")[0] == 200
    assert call(batch, None, key="dev-key", method="GET", path=f"/batch/tasks/{mine['TaskId']}")[0] == 200


def test_a_key_with_a_policy_sees_only_its_own_clients_messages(send, policies, ses_fake):
    def status(key, message_id):
        return send(http_event(None, method="GET", path=f"/messages/{message_id}", key=key), context())["statusCode"]

    mine = send_as(send)[1]["MessageId"]
    other = send_as(send, key="dev-key", Destination=["x@example.com"])[1]["MessageId"]
    assert (status("web-key-2", mine), status("web-key-1", other)) == (200, 404)
    assert (status("dev-key", mine), status("dev-key", other)) == (200, 200)


# --- digests -----------------------------------------------------------------------------------

def test_digest_items_need_the_digest_in_the_policy(batch, env, tmp_path, monkeypatch, ses_fake):
    configure(monkeypatch, tmp_path, {"web": {"Scopes": ["digest"], "Digests": ["daily"], "MaxRecipients": 2},
                                      "partner": {"Scopes": ["digest"]}})
    item = {"Digest": "daily", "Email": "a@example.com", "Item": {"title": "hi"}}
    assert call(batch, item, path="/digest/items") == (200, {"Queued": 1, "RequestId": "req-test"})
    assert refusal(call(batch, dict(item, Digest="weekly"), path="/digest/items")) == (
        403, "UnauthorizedOperation.DigestNotAllowed", "Digest")
    assert refusal(call(batch, [item, dict(item, Digest="nonexistent")], path="/digest/items")) == (
        403, "UnauthorizedOperation.DigestNotAllowed", "[1].Digest")  # whether it exists or not
    assert refusal(call(batch, item, key="partner-key", path="/digest/items")) == (
        403, "UnauthorizedOperation.DigestNotAllowed", "Digest")
    many = [dict(item, Email=email) for email in ("a@example.com", "A@example.com", "b@example.com", "c@example.com")]
    assert refusal(call(batch, many, path="/digest/items")) == (
        403, "UnauthorizedOperation.TooManyRecipients", "[3].Email")
    assert stored_rows("sesmail_digest_items") == 1


# --- suppressions say nothing of why -------------------------------------------------------------

def test_a_suppressed_recipient_is_named_by_field_never_why(send, policies, ses_fake):
    store.open_store(config.load().database_url).suppress("gone@example.com", "all", "hard_bounce", "callback", 1.0)
    for key in ("web-key-1", "dev-key"):
        status, body, _ = send_as(send, key=key, Destination=["ok@example.com"], Cc=["gone@example.com"])
        assert (status, body["Error"]["Field"]) == (403, "Cc[0]")
        assert "bounce" not in body["Error"]["Message"] and "hard" not in body["Error"]["Message"]


# --- counters in Redis -----------------------------------------------------------------------------

@pytest.fixture
def redis(env, monkeypatch):
    url = os.environ.get("SESMAIL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    resp = redis_client.Connection(url, 2.0)
    try:
        resp.command("PING")
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true requires Redis ({exc})", pytrace=False)
        pytest.skip(f"Redis unreachable at {url} ({exc})")
    monkeypatch.setenv("SESMAIL_APPID", f"test{secrets.token_hex(4)}")
    monkeypatch.setenv("SESMAIL_REDIS_URL", url)
    config.reset()
    ratelimit.reset()
    yield resp
    resp.close()
    ratelimit.reset()


def test_the_per_recipient_count_is_shared_through_redis_and_holds_no_address(send, redis, ses_fake, tmp_path,
                                                                              monkeypatch):
    client = f"web{secrets.token_hex(3)}"  # counters of this test's own
    configure(monkeypatch, tmp_path, {client: WEB})
    monkeypatch.setenv("SESMAIL_API_KEYS", f"{client}=web-key-1")
    config.reset()
    address = f"shared{secrets.token_hex(3)}@example.com"
    assert send_as(send, Destination=[address])[0] == 200
    policy.reset()  # another instance: nothing counted in its memory
    assert send_as(send, Destination=[address.replace("@", "+b@")])[0] == 200
    policy.reset()
    assert refusal(send_as(send, Destination=[address.upper()])) == (
        429, "FailedOperation.FrequencyLimit", "Destination[0]")
    key = "sesmail:count:" + hashlib.sha256(f"rcpt:{client}:{address}".encode()).hexdigest()[:32]
    assert redis.command("EXISTS", key) == 1  # one counter for the three forms, under a hash
    assert not any(b"@" in name for name in redis.command("KEYS", "sesmail:count:*"))
    redis.command("DEL", key)


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


def test_a_browser_key_refused_a_scope_still_gets_cors_headers_to_read_why(batch, policies):
    result = batch(http_event({"Digest": "daily", "Email": "a@example.com", "Item": {}}, key="web-key-1",
                              path="/digest/items", headers={"origin": "https://shop.example"}), context())
    assert result["statusCode"] == 403
    assert result["headers"]["Access-Control-Allow-Origin"] == "https://shop.example"


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
    return http_event(mail(), key=None, headers=key_header)


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
