"""The attacker's table: what a narrow key once got away with, each now refused.

Each test is one row of the table of things a browser key (a client with a full policy: one
template, one sender, one recipient, an origin) did on a stack with policies, tried again with the
browser key `web`, the partner key `partner` and, where the row is about what only an operator may
do, the admin key `ops`. Every refusal is checked three ways: the answer (status, Tencent error code,
the field at fault), no call to SES (and no mail or task at the emulator), and no row added,
changed or removed in any `sesmail_*` table. The table runs on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import pytest

from tests.security.conftest import (
    ADMIN,
    FEED,
    PARTNER,
    PARTNER_SENDER,
    SERVER,
    SUPPRESSION_TRACE,
    WEB,
    assert_no_reason,
    assert_refused,
    partner_batch,
    partner_mail,
    web_mail,
)

SCOPE = ("UnauthorizedOperation.ScopeNotAllowed", "Authorization")
VICTIM = "victim@bank.example"


@pytest.fixture
def database(every_store):
    return every_store


# Row 1: 1,000 arbitrary addresses mailed from digest@… with attacker-written text, in one request.

@pytest.mark.parametrize(("key", "code", "field"), [
    (WEB, *SCOPE),
    (PARTNER, *SCOPE),
    (FEED, "UnauthorizedOperation.TooManyRecipients", None),  # may queue, but not to 1,000 people
])
def test_digest_items_for_a_thousand_addresses_are_refused_and_the_timer_mails_nobody(world, key, code, field):
    items = [{"Digest": "daily", "Email": f"target{index}@victims.example",
              "Item": {"title": "Your account is locked: https://evil.example/login"}} for index in range(1000)]
    with world.untouched():
        answer = world.digest(items, key=key)
    assert_refused(answer, 403, code, field)
    assert world.fire("daily").status == 200
    assert world.delivered() == {}


# Row 2: the whole suppression list listed, bounces and unsubscribes lifted, anyone suppressed, anyone erased.

@pytest.mark.parametrize("key", [WEB, PARTNER])
@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/suppressions"),
    ("DELETE", f"/suppressions/{VICTIM}"),
    ("PUT", "/suppressions/ceo@bank.example"),
    ("DELETE", f"/addresses/{VICTIM}"),
])
def test_a_key_without_admin_cannot_list_lift_add_or_erase_suppressions(world, key, method, path):
    # GIVEN a hard-bounced address, and a mail in the sent log
    world.suppress(VICTIM, "all", "hard_bounce")
    assert world.send(web_mail(Destination=["someone@customers.example"]), key=SERVER).status == 200
    # WHEN a key without the admin scope calls an admin route
    with world.untouched():
        answer = world.admin(method, path, {"Scope": "all"} if method == "PUT" else None, key=key)
    # THEN it is refused before anything is read or changed
    assert_refused(answer, 403, *SCOPE)
    assert VICTIM not in str(answer.body)
    with world.untouched(SUPPRESSION_TRACE):
        refused = world.send(web_mail(Destination=[VICTIM]), key=SERVER)
    assert_refused(refused, 403, "FailedOperation.EmailAddrInBlacklist", "Destination[0]")


def test_the_admin_key_lists_lifts_and_adds_suppressions(world):
    world.suppress(VICTIM, "all", "hard_bounce")
    listed = world.admin("GET", "/suppressions")
    assert listed.status == 200 and VICTIM in str(listed.body)
    assert world.admin("DELETE", f"/suppressions/{VICTIM}").status == 200
    assert world.admin("PUT", "/suppressions/ceo@bank.example", {"Scope": "all"}).status == 200
    assert world.send(web_mail(Destination=[VICTIM]), key=SERVER).status == 200


# Row 3: another client's 40-recipient list mailed, and a recurring task created on it, with MaxRecipients 1.

@pytest.mark.parametrize("schedule", [
    {"TaskType": 1},
    {"TaskType": 2, "TimedParam": {"BeginTime": "2099-11-24 08:00:00"}},
    {"TaskType": 3, "CycleParam": {"BeginTime": "2099-11-24 08:00:00", "IntervalTime": 24}},
], ids=["immediate", "scheduled", "recurring"])
def test_a_batch_on_another_clients_list_is_refused_now_scheduled_or_recurring(world, schedule):
    body = partner_batch(Recipients=None, ReceiverId=world.lists["crm"], **schedule)
    with world.untouched():
        answer = world.batch(body, key=PARTNER)
    assert_refused(answer, 403, "UnauthorizedOperation.ReceiverNotAllowed", "ReceiverId")


def test_a_browser_key_cannot_start_a_batch_at_all(world):
    body = partner_batch(Recipients=None, ReceiverId=world.lists["crm"], FromEmailAddress="noreply@shop.example",
                         TaskType=3, CycleParam={"BeginTime": "2099-11-24 08:00:00", "IntervalTime": 1})
    with world.untouched():
        answer = world.batch(body, key=WEB)
    assert_refused(answer, 403, *SCOPE)


def test_a_list_larger_than_max_recipients_is_refused_even_when_it_is_the_clients_own(world):
    body = partner_batch(Recipients=None, ReceiverId=world.lists["partner_big"])  # 8 addresses, MaxRecipients 5
    calls = len(world.ses.calls)
    tasks = world.tasks_at_ses()
    answer = world.batch(body, key=PARTNER)
    assert_refused(answer, 403, "UnauthorizedOperation.TooManyRecipients")
    # Reading the list's size at SES is allowed; sending on it is not.
    assert "BatchSendEmail" not in world.actions(calls)
    assert world.tasks_at_ses() == tasks


# Row 4: 8 mails to one victim with MailsPerRecipientPerHour 3 (via /batch, and vic+1@, vic+2@).

def test_the_hourly_limit_per_recipient_ignores_case_and_plus_tags(world):
    world.steady(3600)
    sent = [world.send(web_mail(Destination=[address])).status
            for address in ("vic@bank.example", "VIC@Bank.Example", "vic+1@bank.example")]
    assert sent == [200, 200, 200]
    with world.untouched():
        answer = world.send(web_mail(Destination=["Vic+2@BANK.example"]))
    assert_refused(answer, 429, "FailedOperation.FrequencyLimit", "Destination[0]")
    assert answer.header("Retry-After")
    assert world.delivered() == {"vic@bank.example": 3}


def test_the_hourly_limit_per_recipient_counts_send_and_batch_together(world):
    world.steady(3600)
    # GIVEN two mails to the victim by /send
    for address in ("vic@bank.example", "vic+a@bank.example"):
        assert world.send(partner_mail(Destination=[address]), key=PARTNER).status == 200
    # WHEN batches name the victim again (its third, fourth and fifth mail)
    third = world.batch(partner_batch(Recipients=[{"Email": "VIC+b@bank.example"}, {"Email": "x@readers.example"}]))
    fourth = world.batch(partner_batch(Recipients=[{"Email": "vic+c@bank.example"}, {"Email": "y@readers.example"}]))
    with world.untouched():
        fifth = world.batch(partner_batch(Recipients=[{"Email": "Vic@bank.example"}]))
    # THEN the third goes out, the fourth leaves the victim out and names it, the fifth has no one left
    assert third.status == 200, third
    assert fourth.status == 200 and fourth.body.get("RateLimited") == ["Recipients[0]"], fourth
    assert fifth.status == 429, fifth
    assert world.delivered()["vic@bank.example"] == 3
    assert "y@readers.example" in world.mailed()


# A list made for an inline batch of one is the client's own; a batch on it is still its mail.
def test_resending_on_a_list_made_for_inline_recipients_counts_its_recipients(world):
    world.steady(3600)
    # GIVEN the victim's first mail, by an inline batch that made a list of one
    assert world.batch(partner_batch(Recipients=[{"Email": "vic@bank.example"}])).status == 200
    [made] = {call["Params"]["ReceiverId"] for call in world.ses.calls if call["Action"] == "BatchSendEmail"}
    # WHEN the partner sends on that list of its own again and again
    answers = [world.batch(partner_batch(Recipients=None, ReceiverId=made)) for _ in range(4)]
    # THEN the victim has had 3 mails this hour, no more, and the rest were refused
    assert world.delivered().get("vic@bank.example") == 3
    assert [answer.status for answer in answers] == [200, 200, 429, 429], answers


# Row 5: From "CEO <ceo@bank.example>", a Reply-To on another domain, its own List-Unsubscribe header.

@pytest.mark.parametrize(("changes", "code", "field"), [
    ({"HeaderFrom": "CEO <ceo@bank.example>"}, "UnauthorizedOperation.SenderNotAllowed", "HeaderFrom"),
    ({"ReplyToAddresses": "payments@bank-support.example"}, "UnauthorizedOperation.ReplyToNotAllowed",
     "ReplyToAddresses"),
    ({"SmtpHeaders": {"List-Unsubscribe": "<https://evil.example/u>"}}, "UnauthorizedOperation.HeaderNotAllowed",
     "SmtpHeaders"),
], ids=["HeaderFrom", "ReplyToAddresses", "SmtpHeaders"])
@pytest.mark.parametrize("key", [WEB, PARTNER])
def test_header_from_reply_to_and_smtp_headers_are_held_to_the_policy(world, key, changes, code, field):
    body = (web_mail if key == WEB else partner_mail)(**changes)
    with world.untouched():
        answer = world.send(body, key=key)
    assert_refused(answer, 403, code, field)


# Row 6: an address that had unsubscribed made mailable again by DELETE /addresses/<a>.

def test_erasing_an_unsubscribed_address_keeps_it_unsubscribed(world):
    address = "leaver@customers.example"
    assert world.callback("unsubscribe", address).status == 200
    assert world.admin("DELETE", f"/addresses/{address}").status == 200
    with world.untouched(SUPPRESSION_TRACE):
        answer = world.send(web_mail(Destination=[address]))
    assert_refused(answer, 403, "FailedOperation.ReceiverHasUnsubscribed", "Destination[0]")
    assert_no_reason(answer)
    listed = world.admin("GET", "/suppressions")
    assert listed.status == 200
    assert address not in str(listed.body).lower()
    assert len(listed.body["Suppressions"]) == 1
    assert address not in world.db.text()


# Row 7: another client's batch task read; why an address is suppressed learned from the 403.

def test_another_clients_batch_task_is_not_found(world):
    task_id = world.batch(partner_batch(), key=SERVER).body["TaskId"]
    with world.untouched():
        answer = world.task(task_id, key=PARTNER)
    assert_refused(answer, 404, "ResourceNotFound")
    with world.untouched():
        answer = world.task(task_id, key=WEB)
    assert_refused(answer, 403, *SCOPE)
    assert world.task(task_id, key=ADMIN).status == 200


@pytest.mark.parametrize(("scope", "reason"), [("all", "hard_bounce"), ("all", "spamreport"),
                                                ("marketing", "unsubscribe")])
@pytest.mark.parametrize("key", [WEB, PARTNER])
def test_a_refusal_to_a_suppressed_address_never_says_why(world, key, scope, reason):
    world.suppress(VICTIM, scope, reason)
    body = web_mail(Destination=[VICTIM]) if key == WEB else partner_mail(Destination=[VICTIM])
    with world.untouched(SUPPRESSION_TRACE):
        answer = world.send(body, key=key)
    assert answer.status == 403 and answer.field == "Destination[0]", answer
    assert_no_reason(answer)


def test_a_batch_refusal_to_suppressed_addresses_never_says_why(world):
    world.suppress(VICTIM, "all", "hard_bounce")
    with world.untouched(SUPPRESSION_TRACE):
        answer = world.batch(partner_batch(Recipients=[{"Email": VICTIM}]), key=PARTNER)
    assert answer.status == 403, answer
    assert_no_reason(answer)
    assert PARTNER_SENDER not in str(answer.body) and VICTIM not in str(answer.body)

