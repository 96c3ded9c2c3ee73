"""The attacker's requests over real HTTP, through the local gateway `make dev` serves.

The gateway turns each request into the Function URL event (or, with `apigw`, the API Gateway
event) a deployed function receives, so these are the refusals a browser or curl actually sees:
status, Tencent error code, field, CORS headers, and again no SES call and nothing stored.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from local.gateway import Gateway
from tests.security.conftest import (
    ADMIN,
    PARTNER,
    SERVER,
    SUPPRESSION_TRACE,
    WEB,
    WEB_ORIGIN,
    partner_batch,
    web_mail,
)

SCOPE = ("UnauthorizedOperation.ScopeNotAllowed", "Authorization")


class Http:
    def __init__(self, url: str) -> None:
        self.url = url
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def __call__(self, method: str, path: str, body: Any = None, key: str | None = WEB,
                 headers: dict | None = None) -> tuple[int, dict, dict]:
        data = None if body is None else json.dumps(body).encode()
        sent = {"Content-Type": "application/json", **(headers or {})}
        if key is not None:
            sent["X-Api-Key"] = key
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=sent)
        try:
            with self.opener.open(request, timeout=30) as reply:
                status, got, raw = reply.status, dict(reply.headers), reply.read()
        except urllib.error.HTTPError as exc:
            status, got, raw = exc.code, dict(exc.headers), exc.read()
        return status, {k.lower(): v for k, v in got.items()}, json.loads(raw) if raw else {}


@pytest.fixture(params=[False, True], ids=["function-url", "api-gateway"])
def http(world, request):
    gateway = Gateway(world.handlers, port=0, apigw=request.param).start()
    yield Http(gateway.url)
    gateway.stop()


def refused(answer: tuple[int, dict, dict], status: int, code: str, field: str | None = None) -> None:
    got, _, body = answer
    error = body.get("Error") or {}
    assert (got, error.get("Code")) == (status, code), answer
    if field is not None:
        assert error.get("Field") == field, answer


def test_a_browser_key_queues_no_digest_items_over_http(world, http):
    items = [{"Digest": "daily", "Email": f"t{i}@victims.example", "Item": {"x": i}} for i in range(1000)]
    with world.untouched():
        answer = http("POST", "/digest/items", items)
    refused(answer, 403, *SCOPE)


@pytest.mark.parametrize(("method", "path"), [("GET", "/suppressions"), ("DELETE", "/suppressions/v@bank.example"),
                                              ("PUT", "/suppressions/v@bank.example"),
                                              ("DELETE", "/addresses/v@bank.example")])
def test_a_browser_key_reaches_no_admin_route_over_http(world, http, method, path):
    world.suppress("v@bank.example")
    with world.untouched():
        answer = http(method, path)
    refused(answer, 403, *SCOPE)


def test_a_spoofed_header_from_is_refused_and_readable_by_the_browsers_origin(world, http):
    with world.untouched():
        answer = http("POST", "/send", web_mail(HeaderFrom="CEO <ceo@bank.example>"), headers={"Origin": WEB_ORIGIN})
    refused(answer, 403, "UnauthorizedOperation.SenderNotAllowed", "HeaderFrom")
    assert answer[1].get("access-control-allow-origin") == WEB_ORIGIN


def test_a_browser_key_from_another_origin_is_refused_over_http(world, http):
    with world.untouched():
        answer = http("POST", "/send", web_mail(), headers={"Origin": "https://evil.example"})
    refused(answer, 403, "UnauthorizedOperation.OriginNotAllowed")
    assert "access-control-allow-origin" not in answer[1]


def test_a_preflight_from_another_origin_gets_no_cors_headers_over_http(world, http):
    with world.untouched():
        answer = http("OPTIONS", "/send", key=None, headers={"Origin": "https://evil.example",
                                                             "Access-Control-Request-Method": "POST"})
    assert answer[0] == 403
    assert "access-control-allow-origin" not in answer[1]


def test_a_batch_on_another_clients_list_is_refused_over_http(world, http):
    with world.untouched():
        answer = http("POST", "/batch", partner_batch(Recipients=None, ReceiverId=world.lists["crm"], TaskType=3,
                                                      CycleParam={"BeginTime": "2099-01-01 00:00:00",
                                                                  "IntervalTime": 1}), key=PARTNER)
    refused(answer, 403, "UnauthorizedOperation.ReceiverNotAllowed", "ReceiverId")


def test_another_clients_message_is_not_found_over_http(world, http):
    status, _, body = http("POST", "/send", web_mail(Destination=["x@customers.example"]), key=SERVER)
    assert status == 200, body
    with world.untouched():
        answer = http("GET", f"/messages/{body['MessageId']}", key=PARTNER)
    refused(answer, 404, "ResourceNotFound")


def test_an_erased_unsubscribed_address_stays_refused_over_http(world, http):
    world.suppress("gone@customers.example", "marketing", "unsubscribe")
    status, _, body = http("DELETE", "/addresses/gone@customers.example", key=ADMIN)
    assert status == 200, body
    with world.untouched(SUPPRESSION_TRACE):
        answer = http("POST", "/send", web_mail(Destination=["gone@customers.example"]))
    refused(answer, 403, "FailedOperation.ReceiverHasUnsubscribed", "Destination[0]")
    assert "unsubscribe" not in json.dumps(answer[2]).lower().replace("unsubscribed", "")
