"""Every route of every HTTP function, present and future, is closed to a key outside its scope.

The routes are read from the functions themselves (`functions/*/index.py`), so a route added
later (statistics, the reputation guard, preference pages) is checked the day it appears: a key
whose client's policy lacks the route's scope gets 403 `UnauthorizedOperation.ScopeNotAllowed`
naming `Authorization`, with no SES call and nothing stored, and no key at all gets 401. Public
routes (the webhook, which checks its own token) are left to their own tests. On SQLite.
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import load_function
from tests.security.conftest import ADMIN, DASH, FEED, PARTNER, WEB

# For each scope, a key of a client whose policy does not have it.
OUTSIDE = {"send": [FEED, DASH], "batch": [WEB, FEED, DASH], "digest": [WEB, PARTNER, DASH],
           "stats": [WEB, PARTNER, FEED], "admin": [WEB, PARTNER, FEED, DASH]}
SAMPLE = {"MessageId": "qcloudses-30-1-date-20260101000000-x", "TaskId": "42", "Address": "someone@bank.example"}


def routes() -> list[tuple[str, str, str, str]]:
    found = []
    for function in ("send", "batch", "webhook"):
        for route in load_function(function).app.routes:
            if route.public:
                continue
            path = re.sub(r"\{(\w+)\}", lambda match: SAMPLE.get(match.group(1), "x"), route.pattern)
            found.append((function, route.method, path, getattr(route, "scope", None) or "admin"))
    return found


ROUTES = routes()
CASES = [(function, method, path, scope, key) for function, method, path, scope in ROUTES for key in OUTSIDE[scope]]


@pytest.mark.parametrize(("function", "method", "path", "scope", "key"), CASES,
                         ids=[f"{method} {path} as {key}" for _, method, path, _, key in CASES])
def test_a_route_refuses_a_key_outside_its_scope(world, function, method, path, scope, key):
    world.suppress("someone@bank.example")
    body = {} if method in ("POST", "PUT") else None
    with world.untouched():
        answer = world.call(function, method, path, body, key=key)
    assert (answer.status, answer.code, answer.field) == (403, "UnauthorizedOperation.ScopeNotAllowed",
                                                          "Authorization"), answer


@pytest.mark.parametrize(("function", "method", "path"), [(f, m, p) for f, m, p, _ in ROUTES],
                         ids=[f"{m} {p}" for _, m, p, _ in ROUTES])
def test_a_route_refuses_a_request_without_a_key(world, function, method, path):
    with world.untouched():
        answer = world.call(function, method, path, {} if method in ("POST", "PUT") else None, key=None)
    assert (answer.status, answer.code) == (401, "AuthFailure.InvalidAuthorization"), answer


def test_the_admin_key_is_outside_no_route(world):
    for function, method, path, _ in ROUTES:
        answer = world.call(function, method, path, {} if method in ("POST", "PUT") else None, key=ADMIN)
        assert answer.code != "UnauthorizedOperation.ScopeNotAllowed", (method, path, answer)
        assert answer.status != 500, (method, path, answer)
