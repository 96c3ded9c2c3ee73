"""The batch function's routes as the narrowest key meets them: what it can make happen, read or undo.

Routes: `POST /batch` (inline recipients or a `ReceiverId`, now, scheduled or recurring),
`GET /batch/tasks/<id>`, `POST /digest/items`, and the timer (not reachable over HTTP). Every
refusal is checked for its status, Tencent error code and field, for no SES call, and for nothing
stored. On SQLite (the attacker's table runs on every store).
"""

from __future__ import annotations

import pytest

from tests.security.conftest import (
    ADMIN,
    CRM,
    DASH,
    FEED,
    PARTNER,
    SERVER,
    WEB,
    assert_refused,
    partner_batch,
    timer_event,
)

SCOPE = ("UnauthorizedOperation.ScopeNotAllowed", "Authorization")
NOT_YOURS = ("UnauthorizedOperation.ReceiverNotAllowed", "ReceiverId")
RECURRING = {"TaskType": 3, "CycleParam": {"BeginTime": "2099-11-24 08:00:00", "IntervalTime": 1}}
SCHEDULED = {"TaskType": 2, "TimedParam": {"BeginTime": "2099-11-24 08:00:00"}}


def readers(count: int) -> list[dict]:
    return [{"Email": f"reader{index}@readers.example"} for index in range(count)]


# ---- POST /batch ------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", [WEB, FEED, DASH])
def test_a_key_without_the_batch_scope_starts_no_batch(world, key):
    with world.untouched():
        answer = world.batch(partner_batch(), key=key)
    assert_refused(answer, 403, *SCOPE)


@pytest.mark.parametrize(("changes", "code", "field"), [
    ({"FromEmailAddress": "ceo@bank.example"}, "UnauthorizedOperation.SenderNotAllowed", "FromEmailAddress"),
    ({"FromEmailAddress": "Bank <news@partner.example.bank.example>"}, "UnauthorizedOperation.SenderNotAllowed",
     "FromEmailAddress"),
    ({"Template": {"TemplateID": 100092}}, "UnauthorizedOperation.TemplateNotAllowed", "Template"),
    ({"Template": {"TemplateName": "other"}}, "UnauthorizedOperation.TemplateNotAllowed", "Template"),
    ({"ReplyToAddresses": "payments@bank-support.example"}, "UnauthorizedOperation.ReplyToNotAllowed",
     "ReplyToAddresses"),
    ({"Recipients": readers(6)}, "UnauthorizedOperation.TooManyRecipients", None),
    ({"Recipients": readers(6), **RECURRING}, "UnauthorizedOperation.TooManyRecipients", None),
], ids=["sender", "lookalike-sender", "template-id", "template-name", "reply-to", "too-many", "too-many-recurring"])
def test_a_batch_is_held_to_the_same_policy_as_a_send(world, changes, code, field):
    with world.untouched():
        answer = world.batch(partner_batch(**changes))
    assert_refused(answer, 403, code, field)


@pytest.mark.parametrize("schedule", [{"TaskType": 1}, SCHEDULED, RECURRING], ids=["now", "scheduled", "recurring"])
@pytest.mark.parametrize("which", ["crm", "unknown"])
def test_a_list_not_named_in_receivers_is_refused(world, which, schedule):
    receiver_id = world.lists["crm"] if which == "crm" else 987654321
    with world.untouched():
        answer = world.batch(partner_batch(Recipients=None, ReceiverId=receiver_id, **schedule))
    assert_refused(answer, 403, *NOT_YOURS)


def test_a_list_sesmail_made_for_another_clients_recipients_is_refused(world):
    # GIVEN a list sesmail built at SES for the server-side client's inline recipients
    assert world.batch(partner_batch(Recipients=readers(2)), key=SERVER).status == 200
    [built] = {call["Params"]["ReceiverId"] for call in world.ses.calls if call["Action"] == "BatchSendEmail"}
    # WHEN the partner sends a recurring task on it
    with world.untouched():
        answer = world.batch(partner_batch(Recipients=None, ReceiverId=built, **RECURRING))
    assert_refused(answer, 403, *NOT_YOURS)


def test_a_list_sesmail_made_for_the_clients_own_recipients_is_its_own(world):
    assert world.batch(partner_batch(Recipients=readers(2))).status == 200
    [built] = {call["Params"]["ReceiverId"] for call in world.ses.calls if call["Action"] == "BatchSendEmail"}
    again = world.batch(partner_batch(Recipients=None, ReceiverId=built))
    assert again.status == 200, again


def test_a_list_named_in_receivers_is_sent_to(world):
    answer = world.batch(partner_batch(Recipients=None, ReceiverId=world.lists["partner"]))
    assert answer.status == 200, answer


def test_the_list_owner_may_send_on_its_list_and_no_one_else_may(world):
    assert world.batch(partner_batch(Recipients=None, ReceiverId=world.lists["crm"]), key=CRM).status == 200
    with world.untouched():
        answer = world.batch(partner_batch(Recipients=None, ReceiverId=world.lists["crm"]), key=PARTNER)
    assert_refused(answer, 403, *NOT_YOURS)


def test_a_batch_idempotency_key_of_another_client_does_not_reveal_its_tasks(world):
    body = partner_batch()
    first = world.batch(body, key=PARTNER, headers={"idempotency-key": "campaign-1"})
    other = world.batch(body, key=SERVER, headers={"idempotency-key": "campaign-1"})
    assert first.status == other.status == 200
    assert set(first.body["TaskIds"]).isdisjoint(other.body["TaskIds"])
    assert other.header("Idempotent-Replayed") is None


def test_a_refused_batch_with_an_idempotency_key_leaves_the_key_free(world):
    with world.untouched():
        answer = world.batch(partner_batch(Recipients=None, ReceiverId=world.lists["crm"]),
                             headers={"idempotency-key": "campaign-2"})
    assert_refused(answer, 403, *NOT_YOURS)
    assert world.batch(partner_batch(), headers={"idempotency-key": "campaign-2"}).status == 200


def test_a_timer_shaped_body_is_not_run_as_a_timer(world):
    with world.untouched():
        answer = world.batch(timer_event("daily"), key=PARTNER)
    assert answer.status == 400, answer
    with world.untouched():
        answer = world.batch(timer_event("daily"), key=WEB)
    assert_refused(answer, 403, *SCOPE)


# ---- GET /batch/tasks/<id> ----------------------------------------------------------------------------

@pytest.fixture
def tasks(world):
    found = {"partner": world.batch(partner_batch()).body["TaskId"],
             "default": world.batch(partner_batch(), key=SERVER).body["TaskId"],
             "crm": world.batch(partner_batch(Recipients=None, ReceiverId=world.lists["crm"]), key=CRM).body["TaskId"]}
    assert all(found.values()), found
    return found


@pytest.mark.parametrize(("key", "owner"), [(PARTNER, "default"), (PARTNER, "crm"), (CRM, "partner")])
def test_another_clients_task_is_not_found(world, tasks, key, owner):
    with world.untouched():
        answer = world.task(tasks[owner], key=key)
    assert_refused(answer, 404, "ResourceNotFound")


def test_another_clients_task_and_an_unknown_one_answer_alike(world, tasks):
    other = world.task(tasks["default"], key=PARTNER)
    unknown = world.task(987654321, key=PARTNER)
    assert (other.status, other.error) == (unknown.status, unknown.error) == (404, other.error)


@pytest.mark.parametrize("key", [WEB, FEED, DASH])
def test_a_key_without_batch_or_admin_reads_no_task(world, tasks, key):
    with world.untouched():
        answer = world.task(tasks["partner"], key=key)
    assert_refused(answer, 403, *SCOPE)


@pytest.mark.parametrize(("key", "owner"), [(PARTNER, "partner"), (CRM, "crm"), (ADMIN, "partner"),
                                            (ADMIN, "default"), (ADMIN, "crm"), (SERVER, "crm")])
def test_a_client_reads_its_own_tasks_and_the_admin_every_clients(world, tasks, key, owner):
    answer = world.task(tasks[owner], key=key)
    assert answer.status == 200 and answer.body["Task"]["TaskId"] == tasks[owner], answer


# ---- POST /digest/items -------------------------------------------------------------------------------

def item(email: str, digest: str = "daily") -> dict:
    return {"Digest": digest, "Email": email, "Item": {"title": "news"}}


@pytest.mark.parametrize("key", [WEB, PARTNER, CRM, DASH])
def test_a_key_without_the_digest_scope_queues_nothing(world, key):
    with world.untouched():
        answer = world.digest(item("a@customers.example"), key=key)
    assert_refused(answer, 403, *SCOPE)


@pytest.mark.parametrize(("items", "field"), [
    (item("a@customers.example", "weekly"), "Digest"),
    ([item("a@customers.example"), item("b@customers.example", "weekly")], "[1].Digest"),
])
def test_a_digest_outside_digests_is_refused(world, items, field):
    with world.untouched():
        answer = world.digest(items)
    assert_refused(answer, 403, "UnauthorizedOperation.DigestNotAllowed", field)


def test_distinct_recipients_of_digest_items_count_against_max_recipients(world):
    with world.untouched():
        answer = world.digest([item(f"r{index}@customers.example") for index in range(3)])
    assert_refused(answer, 403, "UnauthorizedOperation.TooManyRecipients")


def test_many_items_for_the_same_recipients_fit_max_recipients(world):
    items = [item(address) for address in ("a@customers.example", "A@Customers.example", "b@customers.example")] * 3
    answer = world.digest(items)
    assert answer.status == 200 and answer.body["Queued"] == 9, answer


def test_queued_items_go_out_from_the_digests_own_sender_and_nowhere_else(world):
    assert world.digest([item("a@customers.example"), item("b@customers.example")]).status == 200
    assert world.fire("daily").status == 200
    assert sorted(world.mailed()) == ["a@customers.example", "b@customers.example"]
    assert {mail["FromEmailAddress"] for mail in world.ses.sent} == {"Digest <digest@mail.example.com>"}
