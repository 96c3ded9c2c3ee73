"""Statistics, the reputation guard and the dashboard as an attacker meets them: the narrowest
keys, bad parameters, a dead store, values from unsigned callbacks, and a page without data
(docs/deliverability.md)."""

from __future__ import annotations

import json
import time

import pytest

from sesmail.errors import StoreUnavailable
from sesmail.store import sql
from tests.conftest import load_function
from tests.events import context, http_event
from tests.security.conftest import ADMIN, DASH, PARTNER, SERVER, WEB, assert_refused


@pytest.mark.parametrize("path", ["/stats", "/guard"])
@pytest.mark.parametrize("key", [WEB, PARTNER])
def test_a_send_only_key_cannot_read_statistics_or_the_guard(world, key, path):
    with world.untouched():
        answer = world.call("send", "GET", path, key=key)
    assert_refused(answer, 403, "UnauthorizedOperation.ScopeNotAllowed", "Authorization")


def test_a_stats_key_reads_but_cannot_lift_the_guard(world):
    assert world.call("send", "GET", "/stats", key=DASH).status == 200
    assert world.call("send", "GET", "/guard", key=DASH).status == 200
    for path in ("/guard/shop.example", "/guard/*"):
        with world.untouched():
            answer = world.call("send", "DELETE", path, key=DASH)
        assert_refused(answer, 403, "UnauthorizedOperation.ScopeNotAllowed", "Authorization")
    assert world.call("send", "DELETE", "/guard/shop.example", key=ADMIN).status == 200


@pytest.mark.parametrize(("query", "field", "code"), [
    ({"Days": "0"}, "Days", "InvalidParameterValue"),
    ({"Days": "91"}, "Days", "InvalidParameterValue"),
    ({"Days": "-1"}, "Days", "InvalidParameter"),
    ({"Days": "ten"}, "Days", "InvalidParameter"),
    ({"Days": "1e3"}, "Days", "InvalidParameter"),
    ({"Days": "9" * 40}, "Days", "InvalidParameter"),
    ({"By": "week"}, "By", "InvalidParameterValue"),
    ({"By": "<script>"}, "By", "InvalidParameterValue"),
    ({"Source": "aws"}, "Source", "InvalidParameterValue"),
    ({"Limit": "5"}, "Limit", "UnknownParameter"),
])
def test_bad_statistics_parameters_answer_400_naming_the_field(world, query, field, code):
    with world.untouched():
        answer = world.call("send", "GET", "/stats", key=DASH, query=query)
    assert_refused(answer, 400, code, field)
    assert "<script>" not in json.dumps(answer.body)  # messages name fields and rules, never values


def test_a_dead_store_answers_503_on_statistics_and_the_guard(world, monkeypatch):
    def down(*args, **kwargs):
        raise StoreUnavailable("the database is unavailable")

    monkeypatch.setattr(sql.SqlStore, "stats_rows", down)
    monkeypatch.setattr(sql.SqlStore, "guard_overview", down)
    monkeypatch.setattr(sql.SqlStore, "guard_lift", down)
    for method, path, key in (("GET", "/stats", DASH), ("GET", "/guard", DASH), ("DELETE", "/guard/x.example", ADMIN)):
        assert_refused(world.call("send", method, path, key=key), 503, "ResourceUnavailable.Store")


def test_values_from_unsigned_callbacks_come_back_as_data_never_as_markup_the_server_built(world):
    hostile = "<img src=x onerror=alert(1)>"
    world.callback("delivered", "reader@readers.example", bulkId="m-x", **{"from": f"{hostile} <a@evil.example>"},
                   fromDomain=hostile, templateId=7, timestamp=int(time.time()))
    answer = world.call("send", "GET", "/stats", key=DASH, query={"By": "domain"})
    assert answer.status == 200 and answer.header("Content-Type") == "application/json"
    assert [bucket["Key"] for bucket in answer.body["Buckets"]] == ["evil.example"]


def test_the_dashboard_is_served_without_a_key_and_holds_no_data(world):
    world.callback("delivered", "reader@readers.example", bulkId="m-y", **{"from": "a@secret-sender.example"})
    send = load_function("send").main_handler
    for path, kind in (("/dashboard", "text/html"), ("/dashboard/dashboard.js", "text/javascript"),
                       ("/dashboard/dashboard.css", "text/css")):
        result = send(http_event(None, method="GET", path=path, key=None), context())
        headers = result["headers"]
        assert result["statusCode"] == 200 and headers["Content-Type"].startswith(kind), (path, headers)
        policy = headers["Content-Security-Policy"]
        assert "connect-src 'self'" in policy and "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert "secret-sender" not in result["body"]
        assert headers["X-Content-Type-Options"] == "nosniff"
    page = send(http_event(None, method="GET", path="/dashboard", key=None), context())["body"]
    assert "<script>" not in page and " style=" not in page and "http://" not in page and "https://" not in page


def test_a_key_is_still_needed_beside_the_dashboard(world):
    send = load_function("send").main_handler
    result = send(http_event(None, method="GET", path="/stats", key=None), context())
    assert result["statusCode"] == 401
    assert world.call("send", "GET", "/stats", key=SERVER).status == 200
