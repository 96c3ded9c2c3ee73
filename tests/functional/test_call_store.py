"""The store travels with the request: `http.Call.store` opens it once, on first use, and a request
that does not need it (a refusal, a probe) never asks for it, so a dead database cannot fail it."""

from __future__ import annotations

import ast
import json
import os
import re

import pytest

from sesmail import config, store
from tests.conftest import ROOT, load_function
from tests.events import context, fixture, http_event, sample_send_payload

LAYER = os.path.join(ROOT, "layers", "sesmail", "sesmail")
# A server that refuses every connection at once: the store's first use fails, 503.
DEAD_DATABASE = "postgresql://sesmail@127.0.0.1:1/sesmail?connect_timeout=1"


@pytest.fixture
def opens(env, monkeypatch) -> list[str]:
    """Every request's ask for the store (what `Call.store` calls), in order."""
    asked: list[str] = []
    real = store.open_store

    def counting(url: str):
        asked.append(url)
        return real(url)

    monkeypatch.setattr(store, "open_store", counting)
    return asked


def timer_event(message: dict) -> dict:
    return {"Type": "Timer", "TriggerName": "nightly", "Time": "2026-11-23T01:00:00Z", "Message": json.dumps(message)}


def callback(body, token: str | None = "hook-secret-1", method: str = "POST") -> dict:
    return http_event(body, key=None, method=method, path="/webhook",
                      query={"token": token} if token is not None else {})


def test_a_webhook_post_asks_for_the_store_once_and_a_probe_or_a_refusal_never(opens):
    webhook = load_function("webhook").main_handler
    # WHEN a callback array is stored (suppression and events: two writes, one store)
    bounce = fixture("ses-callback-bounce.json")
    result = webhook(callback([bounce, dict(bounce, event="delivered")]), context())
    # THEN the store was asked for once
    assert result["statusCode"] == 200, result["body"]
    assert len(opens) == 1
    # AND a probe, a wrong token and a payload with no callback in it never ask for it
    assert webhook(callback(None, method="HEAD"), context())["statusCode"] == 200
    assert webhook(callback(bounce, token="wrong"), context())["statusCode"] == 403
    assert webhook(callback("not json"), context())["statusCode"] == 400
    assert len(opens) == 1


def test_a_refused_send_never_asks_for_the_store(opens):
    send = load_function("send").main_handler
    bad_key = send(http_event(sample_send_payload(), key="wrong-key"), context())
    bad_payload = send(http_event(dict(sample_send_payload(), Destination=[])), context())
    not_json = send(http_event("{"), context())
    no_route = send(http_event(None, method="GET", path="/nowhere"), context())
    assert [r["statusCode"] for r in (bad_key, bad_payload, not_json, no_route)] == [401, 400, 400, 404]
    assert opens == []


def test_with_the_database_down_only_the_routes_that_need_it_answer_503(env, monkeypatch):
    # GIVEN a database that refuses every connection
    monkeypatch.setenv("SESMAIL_DATABASE_URL", DEAD_DATABASE)
    config.reset()
    store.reset()
    send = load_function("send").main_handler
    webhook = load_function("webhook").main_handler
    # WHEN routes that never need it are called, THEN they answer as ever
    assert webhook(callback(None, method="HEAD"), context())["statusCode"] == 200
    assert webhook(callback({"event": "delivered"}, token="wrong"), context())["statusCode"] == 403
    assert send(http_event(dict(sample_send_payload(), Destination=[])), context())["statusCode"] == 400
    # AND the ones that do answer 503 with the store's code, never a 500
    for result in (webhook(callback(fixture("ses-callback-bounce.json")), context()),
                   send(http_event(None, method="GET", path="/suppressions"), context()),
                   send(http_event(None, method="GET", path="/messages/abc"), context())):
        assert result["statusCode"] == 503, result["body"]
        assert json.loads(result["body"])["Error"]["Code"] == "ResourceUnavailable.Store"


def test_a_timer_job_asks_for_the_store_once(opens):
    batch = load_function("batch").main_handler
    for job in ("cleanup", "reconcile"):
        opens.clear()
        result = batch(timer_event({"Job": job}), context())
        assert result["statusCode"] == 200, result["body"]
        assert len(opens) == 1, job


@pytest.mark.parametrize("key", [None, "once-per-request-1"])
def test_a_send_asks_for_the_store_once(opens, ses_fake, key):
    send = load_function("send").main_handler
    headers = {"idempotency-key": key} if key else {}
    result = send(http_event(sample_send_payload(), headers=headers), context())
    assert result["statusCode"] == 200, result["body"]
    assert len(opens) == 1
    # AND a status query and a suppression change: once each
    message_id = json.loads(result["body"])["MessageId"]
    opens.clear()
    assert send(http_event(None, method="GET", path=f"/messages/{message_id}"), context())["statusCode"] == 200
    assert send(http_event({"Scope": "all"}, method="PUT", path="/suppressions/a%40example.com"),
                context())["statusCode"] == 200
    assert len(opens) == 2


def _layer_sources() -> dict[str, str]:
    found = {}
    for folder, _, files in os.walk(LAYER):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as handle:
                    found[os.path.relpath(path, LAYER)] = handle.read()
    return found


# Where the layer may open the store itself: the request's `Call.store`, and `digest.queue`, the
# Python entry point that has no request (it takes a store, or opens the container's).
OPENERS = {("http.py", "store"), ("digest.py", "queue")}


def _store_openers(text: str) -> set[str]:
    """The functions of a module that call open_store or new_store."""
    found = set()
    for function in ast.walk(ast.parse(text)):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(function):
                if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in (
                        "open_store", "new_store"):
                    found.add(function.name)
    return found


def test_only_the_request_opens_the_store_and_only_the_store_holds_sql():
    sql = re.compile(r"\b(SELECT .+ FROM|INSERT INTO|UPDATE sesmail_|DELETE FROM|CREATE TABLE)\b")
    openers = set()
    for path, text in _layer_sources().items():
        if path.startswith("store" + os.sep):
            continue
        openers |= {(path, name) for name in _store_openers(text)}
        assert not sql.search(text), f"{path} holds SQL; it belongs in sesmail/store/"
    assert openers == OPENERS
