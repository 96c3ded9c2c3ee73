"""What a user of the local stack sees: a marketing campaign to the simulator's bounce addresses
trips the reputation guard through the emulator's own callbacks, the refusal says why,
transactional mail goes on, and an admin lifts it (docs/deliverability.md#the-reputation-guard).

The three functions behind a gateway of this test's own, with the session's emulator posting its
callbacks to it (the `make dev` stack has a 500-mail daily quota, which this campaign would use up
for the other end-to-end tests)."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import pytest

from local.gateway import Gateway
from tests.conftest import load_function
from tests.local.helpers import wait_for

SENDER = "noreply@sesmail.local"
ADMIN = {"Authorization": "Bearer dev-key", "Content-Type": "application/json"}


@pytest.fixture
def gateway(env, ses_fake):
    functions = {name: load_function(name).main_handler for name in ("send", "batch", "webhook")}
    running = Gateway(functions, port=0).start()
    ses_fake.callback_url = f"{running.url}/webhook?token=hook-secret-1"
    yield running
    ses_fake.callback_url = None
    running.stop()


def request(gateway, path: str, body=None, method: str | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(gateway.url + path, data=data, method=method or ("POST" if data else "GET"),
                                 headers=ADMIN)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def mail(to: str, trigger: int = 0) -> dict:
    return {"FromEmailAddress": SENDER, "Destination": [to], "Subject": "Sale", "TriggerType": trigger,
            "Template": {"TemplateID": 2, "TemplateData": {"name": "R"}}}


def test_a_campaign_to_bounce_addresses_trips_the_guard_and_the_refusal_says_why(gateway):
    # GIVEN a 500-recipient campaign (the guard's MinVolume) of which 40 hard-bounce (8 % > 5 %)
    recipients = [{"Email": f"bounce+{n}@guard-e2e.example" if n < 40 else f"reader{n}@guard-e2e.example",
                   "TemplateData": {"name": "Reader"}} for n in range(500)]
    status, body = request(gateway, "/batch", {"FromEmailAddress": SENDER, "Subject": "Our sale", "TaskType": 1,
                                               "Template": {"TemplateID": 2}, "Recipients": recipients})
    assert status == 200, body

    # WHEN the simulator's callbacks arrive THEN the guard trips for the domain (and the account)
    def tripped() -> bool:
        _, guard = request(gateway, "/guard")
        return any(entry["Domain"] == "sesmail.local" and entry["Tripped"] for entry in guard["Domains"])

    wait_for(tripped, timeout=120, what="the guard to trip")
    # AND the next marketing mail is refused, naming the rate and the limit
    status, body = request(gateway, "/send", mail("later@guard-e2e.example"))
    assert (status, body["Error"]["Code"]) == (403, "FailedOperation.HighRejectionRate"), body
    # (it tripped as soon as the rate crossed the limit, while callbacks were still arriving)
    assert re.search(r"bounce rate .* is [5-8]\.\d\d %, above the limit of 5\.00 %", body["Error"]["Message"])
    # AND transactional mail still goes out
    assert request(gateway, "/send", mail("reset@guard-e2e.example", trigger=1))[0] == 200
    # AND the statistics show the campaign
    _, stats = request(gateway, "/stats?Days=1&By=domain")
    bucket = next(b for b in stats["Buckets"] if b["Key"] == "sesmail.local")
    assert bucket["Sent"] == 501 and bucket["HardBounces"] > 25  # more than 5 % of 500: what tripped it
    # WHEN an admin lifts the domain THEN its marketing mail goes again
    assert request(gateway, "/guard/sesmail.local", method="DELETE")[0] == 200
    assert request(gateway, "/send", mail("after@guard-e2e.example"))[0] == 200
