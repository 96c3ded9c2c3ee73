"""The reputation guard through the functions, on every database: it trips at the documented rates,
volumes and event counts, stays quiet below them, spares transactional mail, and lifts by itself
and by an admin (docs/deliverability.md#the-reputation-guard)."""

from __future__ import annotations

import json
import sys

import pytest

from sesmail import config, guard, store
from tests.conftest import load_function
from tests.events import context, http_event

LIMITS = {"BounceRate": 0.05, "ComplaintRate": 0.003, "MinVolume": 20, "MinEvents": 3, "WindowHours": 24}
HOOK = """seen = []
def on_event(event):
    seen.append(event)
"""


@pytest.fixture
def world(env, backend, monkeypatch, tmp_path):
    """The send, batch and webhook functions on the backend's database, with a guard that trips
    at 20 mails (the default, 500, would make every test send 500 mails)."""
    backend.clear()
    (tmp_path / "guardhooks.py").write_text(HOOK)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("guardhooks", None)
    (tmp_path / "sesmail.json").write_text(json.dumps({"Templates": {"welcome": 100091}, "Guard": LIMITS,
                                                       "EventHook": "guardhooks:on_event"}))
    monkeypatch.setenv("SESMAIL_DATABASE_URL", backend.url)
    config.reset()
    store.reset()
    from sesmail import webhook

    webhook._hooks.clear()
    yield World(env)
    store.reset()


class World:
    def __init__(self, env) -> None:
        self.send_fn = load_function("send").main_handler
        self.webhook_fn = load_function("webhook").main_handler
        self.batch_fn = load_function("batch").main_handler
        self.count = 0

    def send(self, sender: str = "news@shop.example", trigger: int = 0, to: str | None = None) -> tuple[int, dict]:
        self.count += 1
        payload = {"FromEmailAddress": sender, "Destination": [to or f"r{self.count}@inbox.example"],
                   "Subject": "Hello", "Template": {"TemplateID": 100091, "TemplateData": "{}"},
                   "TriggerType": trigger}
        result = self.send_fn(http_event(payload), context())
        return result["statusCode"], json.loads(result["body"])

    def sends(self, count: int, sender: str = "news@shop.example", trigger: int = 1) -> list[str]:
        ids = []
        for _ in range(count):
            status, body = self.send(sender, trigger)
            assert status == 200, body
            ids.append(body["MessageId"])
        return ids

    def callbacks(self, event: str, message_ids: list[str], **fields) -> None:
        items = [dict({"event": event, "email": f"x{n}@inbox.example", "bulkId": m, "timestamp": 1}, **fields)
                 for n, m in enumerate(message_ids)]
        result = self.webhook_fn(http_event(items, path="/webhook", key=None, query={"token": "hook-secret-1"}),
                                 context())
        assert result["statusCode"] == 200, result

    def bounce(self, message_ids: list[str]) -> None:
        self.callbacks("bounce", message_ids, bounceType="hard_bounce")

    def call(self, method: str, path: str, key: str = "dev-key", query: dict | None = None) -> tuple[int, dict]:
        result = self.send_fn(http_event(None, method=method, path=path, key=key, query=query), context())
        return result["statusCode"], json.loads(result["body"])

    def domains(self) -> dict:
        return {entry["Domain"]: entry for entry in self.call("GET", "/guard")[1]["Domains"]}


def hook_events() -> list[dict]:
    import guardhooks

    return [event for event in guardhooks.seen if event["Event"].startswith("guard_")]


def test_the_guard_trips_above_the_bounce_rate_and_refuses_marketing_mail_before_ses(world, ses_fake):
    ids = world.sends(20)
    world.bounce(ids[:2])  # 10 % but two events: below MinEvents
    assert world.send()[0] == 200
    world.bounce(ids[2:3])  # three of 21: 14.3 % > 5 %
    calls = len(ses_fake.sent)
    status, body = world.send()
    assert (status, body["Error"]["Code"], body["Error"]["Field"]) == (
        403, "FailedOperation.HighRejectionRate", "FromEmailAddress")
    assert "14.29 %" in body["Error"]["Message"] and "5.00 %" in body["Error"]["Message"]
    assert "shop.example" not in body["Error"]["Message"]  # the rule and the numbers, never the caller's values
    assert len(ses_fake.sent) == calls  # SES was not asked
    assert world.send(trigger=1)[0] == 200  # transactional mail goes on
    assert world.send("team@other.example")[0] == 403  # the account (all its mail is this domain's) tripped too
    assert sorted((e["Event"], e["Domain"], e["Limit"]) for e in hook_events()) == [
        ("guard_tripped", "*", 0.05), ("guard_tripped", "shop.example", 0.05)]
    assert hook_events()[0]["Rate"] == pytest.approx(3 / 21, abs=1e-6)
    shown = world.domains()["shop.example"]
    assert (shown["Tripped"], shown["TrippedBy"], shown["Sent"], shown["HardBounces"]) == (True, "BounceRate", 22, 3)


def test_the_guard_stays_quiet_below_its_volume_even_at_a_high_rate(world):
    ids = world.sends(19)
    world.bounce(ids[:10])  # 53 %, ten events, but 19 mails < MinVolume
    assert world.send()[0] == 200  # the 20th is sent (the window held 19 when it was asked)
    assert world.send()[0] == 403  # now 20 mails
    assert world.domains()["shop.example"]["Tripped"] is True


def test_the_guard_stays_quiet_at_exactly_its_limit(world):
    ids = world.sends(60)
    world.bounce(ids[:3])  # 3 / 60 = 5 %: not above the limit
    assert world.send()[0] == 200
    assert hook_events() == []


def test_the_complaint_rate_trips_on_spam_reports(world):
    ids = world.sends(20)  # three reports in 20: 15 % > 0.3 %
    world.callbacks("spamreport", ids[:3])
    status, body = world.send()
    assert (status, body["Error"]["Code"]) == (403, "FailedOperation.HighRejectionRate")
    assert "complaint rate" in body["Error"]["Message"] and "0.30 %" in body["Error"]["Message"]


def test_the_guard_lifts_by_itself_when_the_rate_falls_back(world):
    ids = world.sends(20)
    world.bounce(ids[:3])
    assert world.send()[0] == 403
    world.sends(41)  # transactional mail goes on, and brings the rate to 3 / 61 = 4.9 %
    assert world.send()[0] == 200
    assert sorted((e["Event"], e["Domain"]) for e in hook_events()) == [
        ("guard_lifted", "*"), ("guard_lifted", "shop.example"), ("guard_tripped", "*"),
        ("guard_tripped", "shop.example")]


def test_an_admin_lifts_a_domain_for_a_day_and_it_is_spared_from_the_account_s_trip(world):
    ids = world.sends(20)
    world.bounce(ids[:3])
    assert world.send()[0] == 403
    assert world.call("DELETE", "/guard/shop.example", key="dev-key")[0] == 200
    assert world.send()[0] == 200  # the domain is lifted, and exempt from the account's trip
    assert world.send("team@other.example")[0] == 403  # the account is still tripped for the others
    status, body = world.call("DELETE", "/guard/*")
    assert (status, body["Domain"]) == (200, "*")
    assert world.send("team@other.example")[0] == 200
    shown = world.domains()
    assert shown["shop.example"]["LiftedUntil"] is not None and shown["shop.example"]["Tripped"] is False
    assert ("guard_lifted", "shop.example") in [(e["Event"], e["Domain"]) for e in hook_events()]


def test_the_account_trips_when_no_domain_does_and_refuses_every_domain(world):
    a = world.sends(12, "news@a.example")
    b = world.sends(12, "news@b.example")
    world.bounce(a[:2] + b[:1])  # a: 2 events, b: 12 mails; the account: 3 of 24
    assert world.send("news@a.example")[0] == 403
    assert world.send("news@b.example")[0] == 403
    shown = world.domains()
    assert (shown["*"]["Tripped"], shown["a.example"]["Tripped"], shown["b.example"]["Tripped"]) == (True, False, False)


def test_batches_and_digests_are_marketing_mail_and_are_refused_while_tripped(world, ses_fake):
    ids = world.sends(20)
    world.bounce(ids[:3])
    payload = {"FromEmailAddress": "news@shop.example", "Subject": "Sale", "TaskType": 1,
               "Template": {"TemplateID": 100091, "TemplateData": "{}"},
               "Recipients": [{"Email": "a@inbox.example"}]}
    result = world.batch_fn(http_event(payload, path="/batch"), context())
    assert (result["statusCode"], json.loads(result["body"])["Error"]["Code"]) == (
        403, "FailedOperation.HighRejectionRate")
    assert not [call for call in ses_fake.calls if call["Action"] == "CreateReceiver"]


def test_a_lift_of_something_that_is_not_a_domain_is_refused(world):
    status, body = world.call("DELETE", "/guard/not_a_domain")
    assert (status, body["Error"]["Code"], body["Error"]["Field"]) == (400, "InvalidParameterValue", "Domain")
    status, body = world.call("GET", "/guard", query={"Domain": "x"})
    assert (status, body["Error"]["Code"]) == (400, "UnknownParameter")


def test_verdict_holds_the_documented_defaults():
    limits = dict(config.GUARD_DEFAULTS)
    assert guard.verdict(limits, {"Sent": 500, "HardBounces": 26, "Complaints": 0})[:2] == (True, "BounceRate")
    assert not guard.verdict(limits, {"Sent": 500, "HardBounces": 25, "Complaints": 0})[0]  # 5 % exactly
    assert not guard.verdict(limits, {"Sent": 499, "HardBounces": 400, "Complaints": 0})[0]  # below MinVolume
    assert guard.verdict(limits, {"Sent": 500, "HardBounces": 0, "Complaints": 2})[:2] == (False, "ComplaintRate")
    assert guard.verdict(limits, {"Sent": 600, "HardBounces": 0, "Complaints": 3})[:2] == (True, "ComplaintRate")
    assert not guard.verdict(limits, {"Sent": 1000, "HardBounces": 0, "Complaints": 3})[0]  # 0.3 % exactly


def test_a_store_that_cannot_record_the_trip_still_refuses_and_the_callback_still_lands(world, monkeypatch):
    from sesmail.errors import StoreUnavailable
    from sesmail.store import sql

    ids = world.sends(20)

    def down(*args, **kwargs):
        raise StoreUnavailable("the database is unavailable")

    with monkeypatch.context() as patch:  # undone alone: the environment stays the test's
        patch.setattr(sql.SqlStore, "guard_flip", down)
        world.bounce(ids[:3])  # stored (200) though the trip could not be recorded
        status, body = world.send(to="again@inbox.example")
        assert (status, body["Error"]["Code"]) == (403, "FailedOperation.HighRejectionRate")  # the window decides
        assert hook_events() == []  # announced once it can be recorded
    assert world.send()[0] == 403
    assert sorted(e["Domain"] for e in hook_events()) == ["*", "shop.example"]
    assert world.send(trigger=1, to="again@inbox.example")[0] == 200  # the refused send gave its lease back
