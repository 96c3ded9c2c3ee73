"""Envelopes: where each SCF trigger event keeps the request (docs/api.md), read through JMESPath."""

from __future__ import annotations

import base64
import copy
import json
import os

import jmespath
import pytest

from sesmail import envelopes
from sesmail.envelopes import (
    HTTP_REQUEST,
    MAX_BODY_BYTES,
    TIMER,
    TIMER_MESSAGE_JSON,
    Request,
    extract,
    kind,
    parse_json_body,
)
from sesmail.errors import InvalidInput, PayloadTooLarge
from tests.events import FIXTURES, fixture, sample_send_payload

# Every sample in tests/fixtures/events and the kind of invocation it is. SES callbacks are
# bodies, not trigger events: handed to the Invoke API as they are, they are direct payloads.
FIXTURE_KINDS = {
    "function-url-send.json": "http",
    "apigw-send.json": "http",
    "timer.json": "timer",
    "ses-callback-bounce.json": "direct",
    "ses-callback-click-lowercase-bulkid.json": "direct",
    "ses-callback-delivered-2020.json": "direct",
    "ses-callback-delivered-2021-empty-email.json": "direct",
}


def fixture_events() -> list[tuple[str, object]]:
    return [(name, fixture(name)) for name in sorted(FIXTURE_KINDS)] + [("direct payload", sample_send_payload())]


# --- kind ---

def test_every_event_fixture_has_a_known_kind():
    assert {name for name in os.listdir(FIXTURES) if name.endswith(".json")} == set(FIXTURE_KINDS)


@pytest.mark.parametrize(("name", "expected"), sorted(FIXTURE_KINDS.items()))
def test_kind_of_each_fixture_event(name, expected):
    assert kind(fixture(name)) == expected


def test_kind_of_a_send_payload_given_as_the_event_is_direct():
    assert kind(sample_send_payload()) == "direct"


@pytest.mark.parametrize("event", [None, [], ["Timer"], "Timer", 5, {}, {"Type": "timer"}, {"type": "Timer"}])
def test_kind_of_anything_else_is_direct(event):
    assert kind(event) == "direct"


# --- Request facts ---

def test_function_url_request_facts():
    event = fixture("function-url-send.json")
    request = Request.from_http_event(event)
    assert request.method == "POST"
    assert request.path == "/send"
    assert request.headers == event["headers"]
    assert request.query == {}
    assert request.body == event["body"]
    assert request.source_ip == "203.0.113.7"  # the x-scf-remote-addr header
    assert request.request_id is None  # Function URLs carry no requestContext


def test_api_gateway_request_facts():
    event = fixture("apigw-send.json")
    request = Request.from_http_event(event)
    assert request.method == "POST"
    assert request.path == "/send"
    assert request.headers == {name.lower(): value for name, value in event["headers"].items()}
    assert request.headers["authorization"] == "Bearer dev-key"
    assert request.query == {}
    assert request.body == event["body"]
    assert request.source_ip == "10.0.2.14"  # requestContext.sourceIp
    assert request.request_id == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"


def test_header_names_are_lower_cased_whatever_their_case():
    event = fixture("apigw-send.json")
    event["headers"] = {"X-Api-Key": "k", "IDEMPOTENCY-KEY": "i", "content-Type": "application/json"}
    assert Request.from_http_event(event).headers == {
        "x-api-key": "k", "idempotency-key": "i", "content-type": "application/json"}


def test_api_gateway_source_ip_wins_over_a_remote_addr_header():
    event = fixture("apigw-send.json")
    event["headers"]["x-scf-remote-addr"] = "198.51.100.1"
    assert Request.from_http_event(event).source_ip == "10.0.2.14"


def test_function_url_query_string_is_read():
    event = fixture("function-url-send.json")
    event["queryString"] = {"token": "abc"}
    assert Request.from_http_event(event).query == {"token": "abc"}


def test_api_gateway_query_string_parameters_are_read_when_query_string_is_empty():
    event = fixture("apigw-send.json")
    event["queryStringParameters"] = {"token": "abc"}
    assert Request.from_http_event(event).query == {"token": "abc"}


def test_method_and_path_fall_back_to_the_request_context():
    event = fixture("apigw-send.json")
    del event["httpMethod"], event["path"]
    event["requestContext"].update(httpMethod="put", path="/suppressions/a")
    request = Request.from_http_event(event)
    assert (request.method, request.path) == ("PUT", "/suppressions/a")


def test_a_lower_case_method_is_upper_cased():
    event = fixture("function-url-send.json")
    event["httpMethod"] = "post"
    assert Request.from_http_event(event).method == "POST"


def test_missing_headers_query_and_body_read_as_empty():
    request = Request.from_http_event({"httpMethod": "GET", "path": "/messages/x"})
    assert (request.headers, request.query, request.body) == ({}, {}, None)
    assert (request.source_ip, request.request_id) == (None, None)


def test_a_parsed_body_handed_over_by_a_harness_is_read_as_json_text():
    event = fixture("function-url-send.json")
    event["body"] = {"Subject": "Hi"}
    assert json.loads(Request.from_http_event(event).body) == {"Subject": "Hi"}


# --- base64 bodies ---

@pytest.mark.parametrize("name", ["apigw-send.json", "function-url-send.json"])
def test_a_base64_body_is_decoded_when_is_base64_encoded_is_true(name):
    event = fixture(name)
    text = '{"Subject": "订单 1234"}'
    event["body"] = base64.b64encode(text.encode("utf-8")).decode("ascii")
    event["isBase64Encoded"] = True
    assert Request.from_http_event(event).body == text


@pytest.mark.parametrize("flag", [False, None, "true", 1])
def test_a_base64_looking_body_is_left_alone_unless_the_flag_is_true(flag):
    event = fixture("apigw-send.json")
    event["body"] = base64.b64encode(b'{"a": 1}').decode("ascii")
    event["isBase64Encoded"] = flag
    assert Request.from_http_event(event).body == event["body"]


@pytest.mark.parametrize("body", ["not base64!", "eyJhIjo", base64.b64encode(b"\xff\xfe{}").decode("ascii")],
                         ids=["garbage", "bad-padding", "not-utf8"])
def test_an_invalid_base64_body_is_refused_as_body_encoding(body):
    event = fixture("apigw-send.json")
    event["body"], event["isBase64Encoded"] = body, True
    with pytest.raises(InvalidInput) as caught:
        Request.from_http_event(event)
    assert caught.value.code == "InvalidParameter.BodyEncoding"
    assert caught.value.status == 400


# --- body size ---

def test_a_body_of_exactly_6_mb_is_read():
    event = fixture("function-url-send.json")
    event["body"] = "a" * MAX_BODY_BYTES
    assert len(Request.from_http_event(event).body) == MAX_BODY_BYTES


@pytest.mark.parametrize("body", ["a" * (MAX_BODY_BYTES + 1), "é" * (MAX_BODY_BYTES // 2 + 1),
                                  "订" * (MAX_BODY_BYTES // 3 + 1)], ids=["ascii", "2-byte", "3-byte"])
def test_a_body_over_6_mb_is_refused_as_payload_too_large(body):
    event = fixture("function-url-send.json")
    event["body"] = body
    with pytest.raises(PayloadTooLarge) as caught:
        Request.from_http_event(event)
    assert caught.value.code == "RequestSizeLimitExceeded"
    assert caught.value.status == 413


def test_a_body_over_6_mb_is_refused_before_it_is_decoded_or_parsed(monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("an oversized body was read")

    event = fixture("apigw-send.json")
    event["body"], event["isBase64Encoded"] = "!" * (MAX_BODY_BYTES + 1), True
    monkeypatch.setattr(envelopes.base64, "b64decode", must_not_run)
    monkeypatch.setattr(envelopes.json, "loads", must_not_run)
    with pytest.raises(PayloadTooLarge):
        Request.from_http_event(event)


# --- parse_json_body ---

@pytest.mark.parametrize("body", ["", None])
def test_an_empty_body_is_refused_as_missing_parameter(body):
    with pytest.raises(InvalidInput) as caught:
        parse_json_body(body)
    assert caught.value.code == "MissingParameter"


@pytest.mark.parametrize("body", ["not json", "{", "{'a': 1}", "[" * 100000 + "]" * 100000, '{"a":' * 100000],
                         ids=["text", "truncated", "single-quotes", "deep-lists", "deep-objects"])
def test_a_body_that_is_not_json_is_refused_as_json_parse_error(body):
    with pytest.raises(InvalidInput) as caught:
        parse_json_body(body)
    assert caught.value.code == "InvalidParameter.JsonParseError"
    assert "evil" not in caught.value.message


def test_a_json_body_is_parsed():
    assert parse_json_body('{"Subject": "Hi", "Destination": ["a@example.com"]}') == {
        "Subject": "Hi", "Destination": ["a@example.com"]}


# --- timer ---

def test_timer_facts_are_extracted():
    assert extract(TIMER, fixture("timer.json")) == {
        "TriggerName": "EveryDay", "Time": "2019-02-21T11:49:00Z", "Message": "user define msg body"}


def test_a_plain_string_timer_message_gives_no_json():
    assert extract(TIMER_MESSAGE_JSON, fixture("timer.json")) is None


@pytest.mark.parametrize("message", [{"Job": "reconcile"}, {"Digest": "weekly"},
                                     {"TaskType": 1, "Subject": "订阅", "ReceiverId": 7}])
def test_a_json_timer_message_is_parsed(message):
    event = dict(fixture("timer.json"), Message=json.dumps(message, ensure_ascii=False))
    assert extract(TIMER_MESSAGE_JSON, event) == message


@pytest.mark.parametrize("event", [{"Type": "Timer"}, {"Type": "Timer", "Message": ""},
                                   {"Type": "Timer", "Message": None}, {"Type": "Timer", "Message": "{bad"}])
def test_an_absent_empty_or_broken_timer_message_gives_no_json(event):
    assert extract(TIMER_MESSAGE_JSON, event) is None


# --- the closure fast path agrees with jmespath ---

FALSY_EDGE_EVENTS = [
    {"httpMethod": "", "requestContext": {"httpMethod": "GET", "path": "/a"}, "path": ""},
    {"httpMethod": None, "path": [], "requestContext": {"path": "/b"}},
    {"httpMethod": False, "path": {}, "requestContext": {"path": "/c", "httpMethod": "PUT"}},
    {"httpMethod": 0, "path": 0, "requestContext": {"path": "/d"}},  # 0 is true in JMESPath
    {"httpMethod": "POST", "requestContext": "not an object", "headers": ["x"], "queryString": ""},
    {"headers": {"x-scf-remote-addr": ""}, "requestContext": {"sourceIp": ""}},
    {"Type": "Timer", "TriggerName": None, "Time": 0, "Message": {"nested": True}},
    {},
    [],
    "text",
    None,
    5,
]
EXPRESSIONS = [HTTP_REQUEST, TIMER, "requestContext.sourceIp", "a.b.c", "httpMethod && path",
               "httpMethod || requestContext.httpMethod || `\"fallback\"`", "{x: path, y: {z: headers.host}}"]


@pytest.mark.parametrize("expression", [HTTP_REQUEST, TIMER])
def test_the_envelope_expressions_take_the_closure_fast_path(expression):
    assert envelopes._closure(jmespath.compile(expression).parsed) is not None


@pytest.mark.parametrize("expression", EXPRESSIONS)
@pytest.mark.parametrize(("name", "event"), fixture_events(), ids=[name for name, _ in fixture_events()])
def test_extract_agrees_with_jmespath_on_every_fixture_event(expression, name, event):
    assert extract(expression, copy.deepcopy(event)) == jmespath.search(expression, event)


@pytest.mark.parametrize("expression", EXPRESSIONS)
@pytest.mark.parametrize("event", FALSY_EDGE_EVENTS, ids=[repr(event)[:40] for event in FALSY_EDGE_EVENTS])
def test_extract_agrees_with_jmespath_on_falsy_and_odd_values(expression, event):
    assert extract(expression, copy.deepcopy(event)) == jmespath.search(expression, event)


@pytest.mark.parametrize(("expression", "expected"), [
    ("length(headers)", 5),
    ("keys(queryString)", []),
    ("items[?a].b", [1, 3]),
    ("items[*].b", [1, 2, 3]),
    ("items[0]", {"a": True, "b": 1}),
    ("sesmail_json(Message).Job", "reconcile"),
    ("sesmail_base64(Encoded)", "hi"),
    ("sesmail_base64(body)", None),
])
def test_expressions_outside_the_fast_path_still_run_through_jmespath(expression, expected):
    event = dict(fixture("function-url-send.json"),
                 items=[{"a": True, "b": 1}, {"a": False, "b": 2}, {"a": "x", "b": 3}],
                 Message='{"Job": "reconcile"}', Encoded="aGk=")
    assert envelopes._closure(jmespath.compile(expression).parsed) is None
    assert extract(expression, event) == expected
    if not expression.startswith("sesmail_"):
        assert extract(expression, event) == jmespath.search(expression, event)
