"""The send function's routes as the narrowest key meets them: what it can make happen, read or undo.

Routes: `POST /send` and `POST /` (SendEmail), `GET /messages/<id>`, `GET|PUT|DELETE
/suppressions…`, `DELETE /addresses/<a>`, and CORS preflights. Every refusal is checked for its
status, Tencent error code and field, for no SES call, and for nothing stored. On SQLite (the
attacker's table runs on every store).
"""

from __future__ import annotations

import pytest

from tests.security.conftest import (
    ADMIN,
    CONTACT,
    DASH,
    FEED,
    PARTNER,
    SERVER,
    SLOW,
    SUPPRESSION_TRACE,
    WEB,
    WEB_ORIGIN,
    WEB_ROTATED,
    WEB_SENDER,
    Answer,
    assert_refused,
    partner_mail,
    web_mail,
)

SCOPE = ("UnauthorizedOperation.ScopeNotAllowed", "Authorization")
SENDER = "UnauthorizedOperation.SenderNotAllowed"
TOO_MANY = "UnauthorizedOperation.TooManyRecipients"


# ---- POST /send: every SendEmail field a policy bounds ----------------------------------------------

@pytest.mark.parametrize("changes", [
    {"Cc": ["bob@customers.example"]},
    {"Bcc": ["bob@customers.example"]},
    {"Cc": ["bob@customers.example"], "Bcc": ["carol@customers.example"]},
    {"Destination": ["alice@customers.example"], "Cc": ["ALICE@customers.example"]},  # one person, two copies
], ids=["cc", "bcc", "cc-and-bcc", "same-address-in-cc"])
def test_cc_and_bcc_count_against_max_recipients(world, changes):
    with world.untouched():
        answer = world.send(web_mail(**changes))
    assert_refused(answer, 403, TOO_MANY)
    assert answer.field in ("Destination", "Cc", "Bcc"), answer


@pytest.mark.parametrize("header_from", [
    "CEO <ceo@bank.example>",
    "ceo@bank.example",
    '"noreply@shop.example" <ceo@bank.example>',        # the allowed address as a display name
    "noreply@shop.example <ceo@bank.example>",
    "Shop <noreply@shop.example.bank.example>",          # the allowed address as a prefix
    "Shop <noreply@evilshop.example>",
], ids=["named", "bare", "quoted-lookalike-name", "lookalike-name", "suffixed-domain", "prefixed-domain"])
def test_header_from_outside_senders_is_refused_whatever_its_display_name(world, header_from):
    with world.untouched():
        answer = world.send(web_mail(HeaderFrom=header_from))
    if answer.status == 400:  # refused as malformed before the policy looked at it: also fine
        assert answer.field == "HeaderFrom", answer
        return
    assert_refused(answer, 403, SENDER, "HeaderFrom")


@pytest.mark.parametrize("header_from", ["Shop Support <noreply@shop.example>", "NoReply@SHOP.example"])
def test_header_from_with_an_allowed_address_passes(world, header_from):
    assert world.send(web_mail(HeaderFrom=header_from)).status == 200


@pytest.mark.parametrize(("key", "sender"), [
    (WEB, "noreply@shop.example.evil.example"),
    (WEB, "noreply@evilshop.example"),
    (WEB, "no-reply@shop.example"),
    (WEB, "Shop <ceo@bank.example>"),
    (PARTNER, "x@evilmail.partner.example"),
    (PARTNER, "x@mail.partner.example.evil.example"),
    (PARTNER, "news@partner.example.evil.example"),
    (PARTNER, "x@partner.example"),
])
def test_a_sender_outside_senders_is_refused(world, key, sender):
    body = (web_mail if key == WEB else partner_mail)(FromEmailAddress=sender)
    with world.untouched():
        answer = world.send(body, key=key)
    assert_refused(answer, 403, SENDER, "FromEmailAddress")


@pytest.mark.parametrize("sender", ["noreply@shop.example.", "noreply@shop.example\u0000", "noreply@shop.example\t",
                                    "noreply@shop.example (ceo@bank.example)", "noreply@xn--shop-9x2.example",
                                    "noreply@shop\u2024example"])
def test_a_sender_that_only_looks_like_an_allowed_one_is_refused(world, sender):
    with world.untouched():
        answer = world.send(web_mail(FromEmailAddress=sender))
    assert answer.status in (400, 403) and answer.field == "FromEmailAddress", answer


@pytest.mark.parametrize(("key", "sender"), [
    (WEB, "NoReply@Shop.Example"),
    (PARTNER, "Partner <anyone@mail.partner.example>"),
    (PARTNER, "NEWS@PARTNER.EXAMPLE"),
])
def test_senders_compare_addresses_without_case_and_domains_whole(world, key, sender):
    body = (web_mail if key == WEB else partner_mail)(FromEmailAddress=sender)
    assert world.send(body, key=key).status == 200


@pytest.mark.parametrize("template", [{"TemplateID": 100092}, {"TemplateName": "other"}, {"TemplateID": 1}])
def test_a_template_outside_templates_is_refused(world, template):
    with world.untouched():
        answer = world.send(web_mail(Template=dict(template, TemplateData={"name": "x"})))
    assert_refused(answer, 403, "UnauthorizedOperation.TemplateNotAllowed", "Template")


def test_the_template_allowed_by_name_may_also_be_given_by_its_id(world):
    assert world.send(web_mail(Template={"TemplateID": 100091, "TemplateData": {"name": "x"}})).status == 200


@pytest.mark.parametrize("reply_to", [
    "help@shop.example",                     # its domain, but not one of its Senders
    "Shop <attacker@evil.example>",
    "noreply@shop.example.evil.example",
    "*",
])
def test_reply_to_without_a_reply_to_policy_is_bounded_by_senders(world, reply_to):
    with world.untouched():
        answer = world.send(web_mail(ReplyToAddresses=reply_to))
    if reply_to == "*" and answer.status == 400:  # not an address at all
        assert answer.field == "ReplyToAddresses", answer
        return
    assert_refused(answer, 403, "UnauthorizedOperation.ReplyToNotAllowed", "ReplyToAddresses")


@pytest.mark.parametrize(("key", "reply_to"), [
    (WEB, f"Shop <{WEB_SENDER}>"),
    (PARTNER, "Help <help@mail.partner.example>"),
    (CONTACT, "Visitor <visitor@anywhere.example>"),  # ReplyTo "*": a contact form replies to its visitor
])
def test_reply_to_inside_the_policy_passes(world, key, reply_to):
    body = (partner_mail if key == PARTNER else web_mail)(ReplyToAddresses=reply_to)
    assert world.send(body, key=key).status == 200


def test_a_reply_to_wildcard_does_not_free_header_from(world):
    with world.untouched():
        answer = world.send(web_mail(ReplyToAddresses="visitor@anywhere.example",
                                     HeaderFrom="Visitor <visitor@anywhere.example>"), key=CONTACT)
    assert_refused(answer, 403, SENDER, "HeaderFrom")


@pytest.mark.parametrize("headers", [
    {"X-Partner-Ref": "1", "List-Unsubscribe": "<https://evil.example/u>"},
    {"LIST-UNSUBSCRIBE": "<https://evil.example/u>"},
    {"From": "CEO <ceo@bank.example>"},
    {"Reply-To": "payments@bank-support.example"},
    {"Sender": "ceo@bank.example"},
    '{"x-partner-ref": "1", "Return-Path": "<bounces@evil.example>"}',   # the JSON-text form
], ids=["extra-header", "other-case", "from", "reply-to", "sender", "json-text"])
def test_smtp_headers_outside_headers_are_refused_in_any_case_or_form(world, headers):
    with world.untouched():
        answer = world.send(partner_mail(SmtpHeaders=headers), key=PARTNER)
    assert_refused(answer, 403, "UnauthorizedOperation.HeaderNotAllowed", "SmtpHeaders")


@pytest.mark.parametrize("headers", [{"X-Partner-Ref": "a-1"}, {"x-partner-ref": "a-1"}, '{"X-PARTNER-REF": "a-1"}'])
def test_smtp_headers_inside_headers_pass_in_any_case(world, headers):
    assert world.send(partner_mail(SmtpHeaders=headers), key=PARTNER).status == 200


def test_a_client_without_headers_may_set_no_smtp_header(world):
    with world.untouched():
        answer = world.send(web_mail(SmtpHeaders={"X-Anything": "1"}))
    assert_refused(answer, 403, "UnauthorizedOperation.HeaderNotAllowed", "SmtpHeaders")


@pytest.mark.parametrize("key", [FEED, DASH])
def test_a_key_without_the_send_scope_cannot_send(world, key):
    with world.untouched():
        answer = world.send(web_mail(), key=key)
    assert_refused(answer, 403, *SCOPE)


def test_the_bare_function_url_path_holds_the_same_policy(world):
    with world.untouched():
        answer = world.send(web_mail(HeaderFrom="CEO <ceo@bank.example>"), path="/")
    assert_refused(answer, 403, SENDER, "HeaderFrom")


def test_an_api_gateway_event_holds_the_same_policy(world):
    with world.untouched():
        answer = world.send(web_mail(Bcc=["bob@customers.example"]), shape="apigw")
    assert_refused(answer, 403, TOO_MANY)


def test_a_base64_body_holds_the_same_policy(world):
    from tests.events import context, http_event

    event = http_event(web_mail(HeaderFrom="CEO <ceo@bank.example>"), key=WEB, base64_body=True)
    with world.untouched():
        answer = Answer(world.handlers["send"](event, context()))
    assert_refused(answer, 403, SENDER, "HeaderFrom")


def test_a_rotated_key_of_the_same_client_holds_the_same_policy(world):
    with world.untouched():
        answer = world.send(web_mail(FromEmailAddress="ceo@bank.example"), key=WEB_ROTATED)
    assert_refused(answer, 403, SENDER, "FromEmailAddress")


def test_a_refused_send_with_an_idempotency_key_leaves_the_key_free(world):
    with world.untouched():
        answer = world.send(web_mail(HeaderFrom="CEO <ceo@bank.example>"), headers={"idempotency-key": "order-9"})
    assert_refused(answer, 403, SENDER, "HeaderFrom")
    assert world.send(web_mail(), headers={"idempotency-key": "order-9"}).status == 200


def test_requests_per_minute_answers_429_and_sends_nothing(world):
    world.steady(60)
    assert [world.send(web_mail(Destination=[f"r{i}@customers.example"]), key=SLOW).status for i in range(2)] == [
        200, 200]
    with world.untouched():
        answer = world.send(web_mail(Destination=["r9@customers.example"]), key=SLOW)
    assert_refused(answer, 429, "RequestLimitExceeded.ClientRate")
    assert int(answer.header("Retry-After") or 0) >= 1


# ---- Idempotency-Key: one client's key never answers for another ------------------------------------

def test_an_idempotency_key_replayed_by_another_client_does_not_reveal_the_first_answer(world):
    body = web_mail()
    first = world.send(body, headers={"idempotency-key": "order-1"})
    assert first.status == 200
    other = world.send(body, key=SERVER, headers={"idempotency-key": "order-1"})
    assert other.status == 200 and other.body["MessageId"] != first.body["MessageId"]
    assert other.header("Idempotent-Replayed") is None
    partner = world.send(partner_mail(), key=PARTNER, headers={"idempotency-key": "order-1"})
    assert partner.status == 200 and partner.body["MessageId"] not in (first.body["MessageId"],
                                                                       other.body["MessageId"])
    assert len(world.ses.sent) == 3


def test_an_idempotency_key_is_shared_by_the_rotated_keys_of_one_client(world):
    first = world.send(web_mail(), headers={"idempotency-key": "order-2"})
    with world.untouched():
        again = world.send(web_mail(), key=WEB_ROTATED, headers={"idempotency-key": "order-2"})
    assert (again.status, again.body["MessageId"]) == (200, first.body["MessageId"])


def test_a_replay_with_a_body_outside_the_policy_is_not_sent(world):
    assert world.send(web_mail(), headers={"idempotency-key": "order-3"}).status == 200
    with world.untouched():
        answer = world.send(web_mail(HeaderFrom="CEO <ceo@bank.example>"), headers={"idempotency-key": "order-3"})
    assert answer.status in (403, 409), answer


# ---- GET /messages/<id>: only one's own mail --------------------------------------------------------

@pytest.fixture
def messages(world):
    """One message of each client that sends: web, partner and the server-side default."""
    found = {"web": world.send(web_mail()).body["MessageId"],
             "partner": world.send(partner_mail(), key=PARTNER).body["MessageId"],
             "default": world.send(web_mail(Destination=["x@customers.example"]), key=SERVER).body["MessageId"]}
    assert all(found.values()), found
    return found


@pytest.mark.parametrize(("key", "owner"), [(WEB, "partner"), (WEB, "default"), (PARTNER, "web"),
                                            (PARTNER, "default"), (WEB_ROTATED, "partner")])
def test_another_clients_message_is_not_found(world, messages, key, owner):
    with world.untouched():
        answer = world.message(messages[owner], key=key)
    assert_refused(answer, 404, "ResourceNotFound")
    assert "customers.example" not in str(answer.body) and "readers.example" not in str(answer.body)


def test_another_clients_message_and_an_unknown_one_answer_alike(world, messages):
    other = world.message(messages["partner"], key=WEB)
    unknown = world.message("qcloudses-30-0-date-20260101000000-unknownunknown", key=WEB)
    assert (other.status, other.error) == (unknown.status, unknown.error) == (404, other.error)


def test_a_head_request_for_another_clients_message_is_not_found(world, messages):
    with world.untouched():
        answer = world.message(messages["partner"], key=WEB, method="HEAD")
    assert answer.status == 404


@pytest.mark.parametrize(("key", "owner"), [(WEB, "web"), (WEB_ROTATED, "web"), (PARTNER, "partner"),
                                            (ADMIN, "web"), (ADMIN, "partner"), (ADMIN, "default"),
                                            (SERVER, "web")])
def test_a_client_reads_its_own_messages_and_the_admin_every_clients(world, messages, key, owner):
    assert world.message(messages[owner], key=key).status == 200


@pytest.mark.parametrize("key", [FEED, DASH])
def test_a_key_without_send_or_admin_reads_no_message(world, messages, key):
    with world.untouched():
        answer = world.message(messages["web"], key=key)
    assert_refused(answer, 403, *SCOPE)


def test_a_digest_mail_is_not_a_policy_clients_message(world):
    assert world.digest({"Digest": "daily", "Email": "d@customers.example", "Item": {"t": 1}}).status == 200
    assert world.fire("daily").status == 200
    [mail] = world.ses.sent
    for key in (WEB, PARTNER):
        assert world.message(mail["MessageId"], key=key).status == 404
    assert world.message(mail["MessageId"], key=ADMIN).status == 200


# ---- suppressions and erasure: admin only ------------------------------------------------------------

@pytest.mark.parametrize("key", [WEB, PARTNER, FEED, DASH, CONTACT])
@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/suppressions"), ("HEAD", "/suppressions"),
    ("PUT", "/suppressions/anyone@bank.example"), ("DELETE", "/suppressions/bounced@bank.example"),
    ("DELETE", "/suppressions/BOUNCED%40bank.example"), ("DELETE", "/addresses/bounced@bank.example"),
])
def test_every_suppression_and_erasure_route_needs_the_admin_scope(world, key, method, path):
    world.suppress("bounced@bank.example", "all", "hard_bounce")
    with world.untouched():
        answer = world.admin(method, path, {"Scope": "all"} if method == "PUT" else None, key=key)
    assert answer.status == 403, answer
    if method != "HEAD":
        assert (answer.code, answer.field) == SCOPE, answer
        assert "bounced" not in str(answer.body)


def test_a_suppressed_address_stays_suppressed_after_a_refused_lift(world):
    world.suppress("bounced@bank.example", "all", "hard_bounce")
    world.admin("DELETE", "/suppressions/bounced@bank.example", key=WEB)
    with world.untouched(SUPPRESSION_TRACE):
        answer = world.send(web_mail(Destination=["bounced@bank.example"]))
    assert_refused(answer, 403, "FailedOperation.EmailAddrInBlacklist", "Destination[0]")


# ---- CORS ------------------------------------------------------------------------------------------

def preflight(world, origin: str, path: str = "/send"):
    return world.call("send", "OPTIONS", path, key=None,
                      headers={"origin": origin, "access-control-request-method": "POST"})


@pytest.mark.parametrize("origin", ["https://evil.example", "https://shop.example.evil.example",
                                    "http://shop.example", "https://shop.example:8443", "null"])
def test_a_preflight_from_an_origin_no_client_allows_gets_no_cors_headers(world, origin):
    with world.untouched():
        answer = preflight(world, origin)
    assert answer.status == 403, answer
    assert answer.header("Access-Control-Allow-Origin") is None


def test_a_preflight_from_the_browser_clients_origin_is_answered(world):
    answer = preflight(world, WEB_ORIGIN)
    assert answer.status == 204
    assert answer.header("Access-Control-Allow-Origin") == WEB_ORIGIN


@pytest.mark.parametrize("origin", ["https://evil.example", "https://shop.example.evil.example", "null",
                                    "https://SHOP.example.", "http://shop.example"])
def test_the_browser_key_from_another_origin_is_refused_without_cors_headers(world, origin):
    with world.untouched():
        answer = world.send(web_mail(), headers={"origin": origin})
    assert_refused(answer, 403, "UnauthorizedOperation.OriginNotAllowed", "Origin")
    assert answer.header("Access-Control-Allow-Origin") is None


def test_a_refusal_to_the_browser_clients_origin_is_readable_by_it(world):
    answer = world.send(web_mail(HeaderFrom="CEO <ceo@bank.example>"), headers={"origin": WEB_ORIGIN})
    assert_refused(answer, 403, SENDER, "HeaderFrom")
    assert answer.header("Access-Control-Allow-Origin") == WEB_ORIGIN


def test_a_policy_without_origins_answers_a_browser_without_cors_headers(world):
    # Its browser never gets this far (the preflight is refused); what reaches it stays unreadable there.
    answer = world.send(partner_mail(), key=PARTNER, headers={"origin": "https://evil.example"})
    assert answer.header("Access-Control-Allow-Origin") is None


def test_a_server_key_from_a_browser_gets_no_cors_headers(world):
    answer = world.send(web_mail(), key=SERVER, headers={"origin": "https://evil.example"})
    assert answer.header("Access-Control-Allow-Origin") is None

