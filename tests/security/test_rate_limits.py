"""Rate policies an attacker would lean on: per recipient per hour, per client per minute.

`MailsPerRecipientPerHour` counts the mails one client caused to one person, by `/send` and `/batch`
together, with the address lower-cased and a `+tag` removed (vic@, VIC@ and vic+1@ are one
person). `RequestsPerMinute` counts requests. Over a limit, `/send` answers 429 and a batch leaves
the person out (429 when no one is left), with nothing sent and nothing stored. Run with the
counters in memory and in Redis (shared by every instance), on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import pytest

from sesmail import policy, ratelimit
from tests.security.conftest import PARTNER, SLOW, assert_refused, partner_batch, partner_mail, web_mail

VICTIM_FORMS = ("vic@bank.example", "VIC@Bank.Example", "vic+1@bank.example", "Vic+news@BANK.example")


@pytest.fixture
def database(every_store):
    return every_store


@pytest.fixture(params=["memory", "redis"])
def counters(request, world):
    world.steady(3600)
    world.steady(60)
    return request.getfixturevalue("redis") if request.param == "redis" else None


def victims(world) -> int:
    """Mails the victim's mailbox holds (every spelling of it), batch tasks run to the end."""
    return world.delivered().get("vic@bank.example", 0)


def test_one_person_however_written_gets_at_most_the_hourly_mails(world, counters):
    assert [world.send(web_mail(Destination=[address])).status for address in VICTIM_FORMS[:3]] == [200] * 3
    with world.untouched():
        answer = world.send(web_mail(Destination=[VICTIM_FORMS[3]]))
    assert_refused(answer, 429, "FailedOperation.FrequencyLimit", "Destination[0]")
    assert victims(world) == 3


def test_send_and_batch_share_one_hourly_count(world, counters):
    assert world.send(partner_mail(Destination=["vic@bank.example"]), key=PARTNER).status == 200
    assert world.batch(partner_batch(Recipients=[{"Email": "VIC+1@bank.example"}])).status == 200
    assert world.send(partner_mail(Destination=["vic+2@bank.example"]), key=PARTNER).status == 200
    with world.untouched():
        by_send = world.send(partner_mail(Destination=["vic@BANK.example"]), key=PARTNER)
        by_batch = world.batch(partner_batch(Recipients=[{"Email": "vic+3@bank.example"}]))
    assert_refused(by_send, 429, "FailedOperation.FrequencyLimit", "Destination[0]")
    assert by_batch.status == 429, by_batch
    assert victims(world) == 3


def test_a_batch_leaves_out_and_names_only_the_recipients_over_the_limit(world, counters):
    for address in VICTIM_FORMS[:3]:
        assert world.send(partner_mail(Destination=[address]), key=PARTNER).status == 200
    answer = world.batch(partner_batch(Recipients=[{"Email": "a@readers.example"}, {"Email": "vic+x@bank.example"},
                                                   {"Email": "b@readers.example"}]))
    assert answer.status == 200, answer
    assert answer.body["RateLimited"] == ["Recipients[1]"]
    assert "vic" not in str(answer.body).replace("RateLimited", "")
    assert sorted(a for a in world.mailed() if a.endswith("readers.example")) == ["a@readers.example",
                                                                                  "b@readers.example"]
    assert victims(world) == 3


def test_each_client_counts_its_own_mails(world, counters):
    for address in VICTIM_FORMS[:3]:
        assert world.send(partner_mail(Destination=[address]), key=PARTNER).status == 200
    assert world.send(web_mail(Destination=["vic@bank.example"])).status == 200


def test_requests_per_minute_answer_429_with_retry_after(world, counters):
    assert [world.send(web_mail(Destination=[f"r{i}@customers.example"]), key=SLOW).status for i in range(2)] == [
        200, 200]
    with world.untouched():
        answer = world.send(web_mail(Destination=["r9@customers.example"]), key=SLOW)
    assert_refused(answer, 429, "RequestLimitExceeded.ClientRate")
    assert int(answer.header("Retry-After") or 0) >= 1


def test_redis_counts_hold_for_a_new_instance_and_name_no_address(world, redis):
    for address in VICTIM_FORMS[:3]:
        assert world.send(web_mail(Destination=[address])).status == 200
    keys = redis.keys()
    assert keys, "the policy counters did not go through Redis"
    assert not any("bank.example" in key or "vic" in key for key in keys), keys
    # WHEN another instance (fresh process state, same Redis) takes the next request
    policy.reset()
    ratelimit.reset()
    with world.untouched():
        answer = world.send(web_mail(Destination=["vic+9@bank.example"]))
    assert_refused(answer, 429, "FailedOperation.FrequencyLimit", "Destination[0]")
