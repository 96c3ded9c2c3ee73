"""The webhook function as an API key holder meets it: no key of any scope posts callbacks.

A forged callback is a way to suppress anyone (a fake hard bounce blocks their password resets) or
to write events into another client's message history. The webhook takes only its own secret
token; API keys, even the admin's, are refused, and nothing is stored. On SQLite.
"""

from __future__ import annotations

import pytest

from tests.security.conftest import ADMIN, PARTNER, SERVER, WEB, web_mail


def forged(event: str = "bounce", email: str = "victim@bank.example") -> dict:
    return {"event": event, "email": email, "bounceType": "hard_bounce", "timestamp": 1764000000,
            "bulkId": "qcloudses-30-1-date-20260101000000-forged", "username": "1250000000",
            "from": "noreply@shop.example"}


@pytest.mark.parametrize("key", [WEB, PARTNER, ADMIN, SERVER])
@pytest.mark.parametrize("how", ["bearer", "token"])
@pytest.mark.parametrize("event", ["bounce", "spamreport", "unsubscribe", "delivery"])
def test_an_api_key_cannot_post_a_callback(world, key, how, event):
    with world.untouched():
        answer = world.call("webhook", "POST", "/webhook", forged(event), key=key if how == "bearer" else None,
                            query={"token": key} if how == "token" else None)
    assert answer.status == 403, answer
    assert world.send(web_mail(Destination=["victim@bank.example"])).status == 200


def test_a_probe_stores_nothing(world):
    with world.untouched():
        answer = world.call("webhook", "HEAD", "/webhook", key=WEB)
    assert answer.status == 200


def test_a_callback_cannot_write_into_another_clients_message_without_the_token(world):
    message_id = world.send(web_mail()).body["MessageId"]
    with world.untouched():
        answer = world.call("webhook", "POST", "/webhook",
                            dict(forged("delivery", "alice@customers.example"), bulkId=message_id), key=WEB)
    assert answer.status == 403
    assert world.message(message_id).body.get("Events") == []
