"""The batch function: BatchSendEmail, inline recipient lists, timers, digests (docs/api.md)."""

from __future__ import annotations

import json
import time

import pytest

from sesmail import batching, config, ratelimit, store, transport
from tests import db
from tests.conftest import load_function
from tests.events import context, http_event


@pytest.fixture
def batch(env):
    return load_function("batch").main_handler


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setattr(transport, "BACKOFF_BASE_S", 0.001)
    monkeypatch.setattr(batching, "POLL_FIRST_S", 0.01)


def payload(**changes) -> dict:
    out = {"FromEmailAddress": "noreply@mail.example.com", "Subject": "News", "TaskType": 1,
           "Template": {"TemplateID": 100091, "TemplateData": {"code": "1"}}, "ReceiverId": 42}
    out.update(changes)
    return {key: value for key, value in out.items() if value is not None}


def post(batch, body, path="/batch", headers=None):
    result = batch(http_event(body, path=path, headers=headers), context())
    assert result["statusCode"] != 500, result
    return result["statusCode"], json.loads(result["body"])


def calls(fake, action):
    return [call for call in fake.calls if call["Action"] == action]


@pytest.mark.parametrize(("changes", "code", "field"), [
    ({"TaskType": 2}, "MissingParameter.TimedParamNecessary", "TimedParam"),
    ({"TaskType": 3}, "MissingParameter.CycleParamNecessary", "CycleParam"),
    ({"TaskType": 4}, "InvalidParameterValue", "TaskType"),
    ({"TaskType": 2, "TimedParam": {"BeginTime": "2020-01-01 00:00:00"}},
     "InvalidParameterValue.BeginTimeBeforeNow", "TimedParam.BeginTime"),
    ({"TaskType": 2, "TimedParam": {"BeginTime": "tomorrow"}}, "InvalidParameterValue", "TimedParam.BeginTime"),
    ({"TaskType": 3, "CycleParam": {"BeginTime": "2099-01-01 00:00:00"}}, "MissingParameter",
     "CycleParam.IntervalTime"),
    ({"Subject": ""}, "InvalidParameterValue.SubjectLengthError", "Subject"),
    ({"Subject": "x" * 101}, "InvalidParameterValue.SubjectLengthError", "Subject"),
    ({"Attachments": [{"FileName": "a.txt", "Content": "YQ=="}]}, "InvalidParameter.AttachmentsNotSupported",
     "Attachments"),
    ({"ReceiverId": None}, "MissingParameter.SendParamNecessary", "ReceiverId"),
    ({"Recipients": [{"Email": "a@example.com"}]}, "InvalidParameter", "ReceiverId"),
    ({"ReceiverId": None, "Recipients": [{"Email": "a@example.com"}, {"Email": "A@example.com"}]},
     "InvalidParameterValue.DuplicateRecipient", "Recipients[1].Email"),
    ({"ReceiverId": None, "Recipients": [{"Email": "a@example.com", "TemplateData": {"x": "y" * 800}}]},
     "InvalidParameterValue.TemplateDataLenLimit", "Recipients[0].TemplateData"),
    ({"Template": None}, "MissingParameter", "Template"),
    ({"Bogus": 1}, "UnknownParameter", "Bogus"),
])
def test_every_batch_rule_refuses_with_its_code_and_sends_nothing(batch, ses_fake, changes, code, field):
    status, body = post(batch, payload(**changes))
    assert (status, body["Error"]["Code"], body["Error"]["Field"]) == (400, code, field)
    assert ses_fake.calls == []


@pytest.mark.parametrize("bad", ["\r\n", "\v", "\f", "\x1e", "\x85", "\u2028", "\u2029", "\x1b"], ids=repr)
@pytest.mark.parametrize(("changes", "field"), [
    (lambda bad: {"Subject": f"News{bad}Bcc: x@evil.example"}, "Subject"),
    (lambda bad: {"FromEmailAddress": f"News{bad} <noreply@mail.example.com>"}, "FromEmailAddress"),
    (lambda bad: {"ReplyToAddresses": f"Help{bad} <help@mail.example.com>"}, "ReplyToAddresses"),
    (lambda bad: {"Subject": "News for {{name}}", "Template": {"TemplateID": 100091,
                                                               "TemplateData": {"name": f"Ada{bad}"}}},
     "Template.TemplateData"),
    (lambda bad: {"Subject": "News for {{name}}", "ReceiverId": None,
                  "Recipients": [{"Email": "a@example.com", "TemplateData": {"name": "Ada"}},
                                 {"Email": "b@example.com", "TemplateData": {"name": f"Bob{bad}"}}]},
     "Recipients[1].TemplateData"),
], ids=["Subject", "FromEmailAddress", "ReplyToAddresses", "TemplateData", "RecipientData"])
def test_a_header_bound_batch_value_ses_cannot_carry_is_400_before_any_call(batch, ses_fake, changes, field, bad):
    status, body = post(batch, payload(**changes(bad)))
    assert (status, body["Error"]["Code"], body["Error"]["Field"]) == (400, "InvalidParameterValue.HeaderLineBreak",
                                                                      field)
    assert ses_fake.calls == []


def test_a_naive_begin_time_is_beijing_time_and_an_offset_is_converted(batch, ses_fake):
    from sesmail import rules

    utc = {"BeginTime": "2099-11-24 08:00:00+00:00"}
    checked = rules.validate_batch_send_email(payload(TaskType=2, TimedParam=utc))
    assert checked["TimedParam"]["BeginTime"] == "2099-11-24 16:00:00"
    naive = rules.validate_batch_send_email(payload(TaskType=2, TimedParam={"BeginTime": "2099-11-24 08:00:00"}))
    assert naive["TimedParam"]["BeginTime"] == "2099-11-24 08:00:00"


def recipients(count: int, domain: str = "example.com") -> list[dict]:
    return [{"Email": f"user{index}@{domain}", "TemplateData": {"n": index}} for index in range(count)]


def test_inline_recipients_become_a_list_and_one_task(batch, ses_fake):
    status, body = post(batch, payload(ReceiverId=None, Recipients=recipients(3)))
    assert status == 200, body
    assert body["TaskIds"] == [body["TaskId"]]
    assert len(calls(ses_fake, "CreateReceiver")) == 1
    upload = calls(ses_fake, "CreateReceiverDetailWithData")[0]["Params"]
    assert [row["Email"] for row in upload["Datas"]] == ["user0@example.com", "user1@example.com",
                                                         "user2@example.com"]
    # The common Template.TemplateData is merged under each recipient's own.
    assert json.loads(upload["Datas"][2]["TemplateData"]) == {"code": "1", "n": 2}
    sent = calls(ses_fake, "BatchSendEmail")[0]["Params"]
    assert sent["ReceiverId"] == upload["ReceiverId"]
    assert "TemplateData" not in sent["Template"]


def test_more_than_50000_recipients_make_several_lists_in_chunks_of_20000(batch, ses_fake, monkeypatch):
    monkeypatch.setattr(ses_fake, "rate_limit", None)
    status, body = post(batch, payload(ReceiverId=None, Recipients=[{"Email": f"u{i}@example.com"}
                                                                    for i in range(50_001)]))
    assert status == 200, body
    assert len(body["TaskIds"]) == 2
    uploads = [len(call["Params"]["Datas"]) for call in calls(ses_fake, "CreateReceiverDetailWithData")]
    assert uploads == [20_000, 20_000, 10_000, 1]
    assert len(calls(ses_fake, "CreateReceiver")) == 2


def test_a_batch_on_an_existing_list_is_one_call(batch, ses_fake):
    # GIVEN a list of the caller's own at SES
    from tencentcloud.common import credential
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile
    from tencentcloud.ses.v20201002 import ses_client

    from tests.conftest import SECRET_ID, SECRET_KEY

    client = ses_client.SesClient(credential.Credential(SECRET_ID, SECRET_KEY), "ap-guangzhou",
                                  ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=ses_fake.endpoint)))
    receiver_id = client.call_json("CreateReceiver", {"ReceiversName": "mine"})["Response"]["ReceiverId"]
    client.call_json("CreateReceiverDetail", {"ReceiverId": receiver_id, "Emails": ["a@example.com"]})
    ses_fake.calls.clear()
    status, body = post(batch, payload(ReceiverId=receiver_id))
    assert status == 200, body
    assert [call["Action"] for call in ses_fake.calls] == ["BatchSendEmail"]


def test_suppressed_inline_recipients_are_left_out_and_named_by_field(batch, ses_fake):
    store.open_store(config.load().database_url).suppress("user1@example.com", "marketing", "unsubscribe",
                                                          "callback", 0.0)
    status, body = post(batch, payload(ReceiverId=None, Recipients=recipients(3)))
    assert status == 200, body
    assert body["Suppressed"] == ["Recipients[1]"]
    emails = [row["Email"] for row in calls(ses_fake, "CreateReceiverDetailWithData")[0]["Params"]["Datas"]]
    assert emails == ["user0@example.com", "user2@example.com"]


def test_a_batch_with_an_idempotency_key_is_sent_once(batch, ses_fake):
    body = payload(ReceiverId=None, Recipients=recipients(2))
    first = post(batch, body, headers={"idempotency-key": "campaign-7"})
    second = post(batch, body, headers={"idempotency-key": "campaign-7"})
    assert first[1]["TaskIds"] == second[1]["TaskIds"]
    assert len(calls(ses_fake, "BatchSendEmail")) == 1


def test_a_lost_batch_reply_is_resolved_through_list_send_tasks(batch, ses_fake):
    body = payload(ReceiverId=None, Recipients=recipients(2))
    ses_fake.drop_after("BatchSendEmail")
    status, answer = post(batch, body, headers={"idempotency-key": "campaign-8"})
    assert status == 503 and answer["Error"]["Outcome"] == "Unknown"
    status, answer = post(batch, body, headers={"idempotency-key": "campaign-8"})
    assert status == 200, answer
    assert len(calls(ses_fake, "BatchSendEmail")) == 1
    assert calls(ses_fake, "ListSendTasks")


def test_task_status_is_found_by_paging_list_send_tasks(batch, ses_fake):
    _, body = post(batch, payload(ReceiverId=None, Recipients=recipients(1)))
    result = batch(http_event(None, method="GET", path=f"/batch/tasks/{body['TaskId']}"), context())
    assert result["statusCode"] == 200
    assert json.loads(result["body"])["Task"]["TaskId"] == body["TaskId"]
    missing = batch(http_event(None, method="GET", path="/batch/tasks/999999"), context())
    assert missing["statusCode"] == 404


def test_task_status_with_too_little_time_left_answers_503_not_404(batch, ses_fake):
    _, body = post(batch, payload(ReceiverId=None, Recipients=recipients(1)))
    ses_fake.calls.clear()
    # 2.5 s left: no page of ListSendTasks can be read and answered in time.
    result = batch(http_event(None, method="GET", path=f"/batch/tasks/{body['TaskId']}"), context(2500))
    assert result["statusCode"] == 503, result["body"]
    assert json.loads(result["body"])["Error"]["Code"] == "ResourceUnavailable.Timeout"
    assert int(result["headers"]["Retry-After"]) >= 1
    assert calls(ses_fake, "ListSendTasks") == []


def test_task_status_that_runs_out_of_time_with_pages_unread_answers_503(batch, ses_fake, monkeypatch):
    # GIVEN two tasks, one per page, the one asked for on the second page (newest first)
    monkeypatch.setattr(batching, "TASK_PAGE", 1)
    _, older = post(batch, payload(ReceiverId=None, Recipients=recipients(1)))
    post(batch, payload(ReceiverId=None, Recipients=recipients(1, "other.example")))
    path = f"/batch/tasks/{older['TaskId']}"
    # WHEN the first page takes long enough to leave less than the reserve for the second
    ses_fake.delay("ListSendTasks", 2.5)
    slow = batch(http_event(None, method="GET", path=path), context(5000))
    # THEN the answer is 503 with Retry-After, not "no such task"; with time enough it is found
    assert slow["statusCode"] == 503, slow["body"]
    assert "Retry-After" in slow["headers"]
    found = batch(http_event(None, method="GET", path=path), context())
    assert found["statusCode"] == 200
    assert json.loads(found["body"])["Task"]["TaskId"] == older["TaskId"]
    # AND only a complete scan that did not find it is a 404
    assert batch(http_event(None, method="GET", path="/batch/tasks/999999"), context())["statusCode"] == 404


# --- timers ---

def timer_event(message, trigger="nightly", time_="2026-11-23T01:00:00Z") -> dict:
    return {"Type": "Timer", "TriggerName": trigger, "Time": time_,
            "Message": message if isinstance(message, str) else json.dumps(message)}


def test_a_timer_batch_payload_delivered_twice_sends_once(batch, ses_fake):
    event = timer_event(payload(ReceiverId=None, Recipients=recipients(2)))
    first = batch(event, context())
    second = batch(event, context())
    assert first["statusCode"] == second["statusCode"] == 200
    assert len(calls(ses_fake, "BatchSendEmail")) == 1


def test_a_timer_with_an_unknown_job_is_refused_without_retry(batch):
    assert batch(timer_event({"Job": "nope"}), context())["statusCode"] == 404


def test_the_cleanup_job_purges_expired_records(batch):
    result = batch(timer_event({"Job": "cleanup"}), context())
    assert result["statusCode"] == 200
    assert "Idempotency" in json.loads(result["body"])["Result"]


# --- recipient lists no task uses ---

def lists_at_ses(fake) -> list:
    return list(fake.store.receivers(None))


def backdate_lists(seconds: float) -> None:
    """As if the lists had been made `seconds` ago (older than a run plus SES's settle time)."""
    db.execute(config.load().database_url, "UPDATE sesmail_lists SET created_at = created_at - ?", (seconds,))


def cleanup(batch) -> dict:
    result = batch(timer_event({"Job": "cleanup"}), context())
    assert result["statusCode"] == 200, result["body"]
    return json.loads(result["body"])["Result"]


def test_a_batch_that_gives_up_on_a_list_not_ready_in_time_deletes_it_at_once(batch, ses_fake, monkeypatch):
    monkeypatch.setattr(ses_fake, "receiver_upload_seconds", 3600.0)  # SES never finishes the upload
    result = batch(http_event(payload(ReceiverId=None, Recipients=recipients(2)), path="/batch"), context(6500))
    assert result["statusCode"] == 503, result["body"]
    assert json.loads(result["body"])["Error"]["Code"] == "ResourceUnavailable.ReceiverNotReady"
    assert "Retry-After" in result["headers"]
    assert calls(ses_fake, "BatchSendEmail") == []
    assert lists_at_ses(ses_fake) == [] and len(calls(ses_fake, "DeleteReceiver")) == 1
    assert cleanup(batch)["UnusedLists"] == 0  # nothing left for the cleanup job


def test_a_batch_out_of_time_leaves_its_list_to_the_cleanup_job(batch, ses_fake):
    # GIVEN a 5 s time limit and an upload that takes 3.7 s of it: no time is left to check the
    # list, send its task, or even delete it
    ses_fake.delay("CreateReceiverDetailWithData", 3.7)
    result = batch(http_event(payload(ReceiverId=None, Recipients=recipients(2)), path="/batch"), context(5000))
    assert result["statusCode"] == 503, result["body"]
    assert json.loads(result["body"])["Error"]["Code"] == "ResourceUnavailable.Timeout"
    assert "Retry-After" in result["headers"]
    assert calls(ses_fake, "BatchSendEmail") == [] and len(lists_at_ses(ses_fake)) == 1
    # WHEN the cleanup job runs while a run could still be using the list, it is left alone
    assert cleanup(batch)["UnusedLists"] == 0
    assert len(lists_at_ses(ses_fake)) == 1
    # THEN once it is older than a run plus SES's settle time, SES is asked for a task on it
    # (there is none) and it is deleted
    backdate_lists(7200)
    ses_fake.calls.clear()
    assert cleanup(batch)["UnusedLists"] == 1
    assert lists_at_ses(ses_fake) == []
    assert [call["Action"] for call in ses_fake.calls] == ["ListSendTasks", "DeleteReceiver"]
    assert cleanup(batch)["UnusedLists"] == 0


def test_a_list_whose_create_reply_was_lost_is_found_by_name_and_deleted(batch, ses_fake):
    ses_fake.drop_after("CreateReceiver")
    status, body = post(batch, payload(ReceiverId=None, Recipients=recipients(2)))
    assert (status, body["Error"]["Outcome"]) == (503, "Unknown")
    assert len(lists_at_ses(ses_fake)) == 1  # SES made it; we never learnt its ReceiverId
    backdate_lists(7200)
    assert cleanup(batch)["UnusedLists"] == 1
    assert lists_at_ses(ses_fake) == []


def test_a_list_whose_task_reply_was_lost_is_kept_until_its_task_finishes(batch, ses_fake):
    # GIVEN a batch without an Idempotency-Key whose BatchSendEmail reply was lost: the task exists
    ses_fake.drop_after("BatchSendEmail")
    status, body = post(batch, payload(ReceiverId=None, Recipients=recipients(2)))
    assert (status, body["Error"]["Outcome"]) == (503, "Unknown")
    backdate_lists(7200)
    # WHEN the cleanup job finds that task on the list, the list is kept for it
    assert cleanup(batch)["UnusedLists"] == 0
    assert len(lists_at_ses(ses_fake)) == 1
    # THEN the list goes once SES reports the task done, as every finished task's list does
    ses_fake.tick()
    assert cleanup(batch)["Lists"] == 1
    assert lists_at_ses(ses_fake) == []


def test_a_list_an_in_doubt_key_may_still_adopt_is_never_deleted(batch, ses_fake):
    # GIVEN a keyed batch whose BatchSendEmail reply was lost: its doubt names the list
    body = payload(ReceiverId=None, Recipients=recipients(2))
    ses_fake.drop_after("BatchSendEmail")
    status, answer = post(batch, body, headers={"idempotency-key": "campaign-9"})
    assert (status, answer["Error"]["Outcome"]) == (503, "Unknown")
    backdate_lists(7200)
    # WHEN the cleanup job runs while the key is in doubt, the list stays
    assert cleanup(batch)["UnusedLists"] == 0
    assert len(lists_at_ses(ses_fake)) == 1
    assert calls(ses_fake, "DeleteReceiver") == []
    # THEN the repeat still adopts the task on it (one task, no second send) ...
    status, answer = post(batch, body, headers={"idempotency-key": "campaign-9"})
    assert status == 200, answer
    assert len(calls(ses_fake, "BatchSendEmail")) == 1
    # ... and once its task is done the list is deleted
    assert cleanup(batch)["UnusedLists"] == 0
    ses_fake.tick()
    assert cleanup(batch)["Lists"] == 1
    assert lists_at_ses(ses_fake) == []


def test_a_list_whose_task_was_refused_and_could_not_be_deleted_is_deleted_by_cleanup(batch, ses_fake):
    ses_fake.fail("BatchSendEmail", "FailedOperation.InsufficientQuota")
    ses_fake.fail("DeleteReceiver", "InternalError")
    status, body = post(batch, payload(ReceiverId=None, Recipients=recipients(2)))
    assert (status, body["Error"]["Code"]) == (403, "FailedOperation.InsufficientQuota")
    assert len(lists_at_ses(ses_fake)) == 1
    backdate_lists(7200)
    assert cleanup(batch)["UnusedLists"] == 1
    assert lists_at_ses(ses_fake) == []


def test_under_random_faults_every_list_made_ends_deleted(batch, ses_fake, monkeypatch):
    # GIVEN batches, half with an Idempotency-Key, under random lost replies and refusals on every
    # step that makes, fills, checks, uses or deletes a list (repeatable: seeded)
    monkeypatch.setenv("SESMAIL_SETTLE_SECONDS", "0")  # the emulator's task list is never behind
    config.reset()
    ses_fake.set_chaos("CreateReceiver:drop_after=25%; CreateReceiverDetailWithData:drop_after=15%;"
                       " ListReceivers:error=InternalError@10%; BatchSendEmail:drop_after=25%;"
                       " BatchSendEmail:error=FailedOperation.InsufficientQuota@10%;"
                       " DeleteReceiver:error=InternalError@40%; seed=1")
    bodies = [payload(ReceiverId=None, Subject=f"News {n}", Recipients=recipients(2, f"d{n}.example"))
              for n in range(12)]
    keys = {n: f"chaos-{n}" for n in range(0, len(bodies), 2)}
    answers = [post(batch, body, headers={"idempotency-key": keys[n]} if n in keys else None)[0]
               for n, body in enumerate(bodies)]
    assert answers.count(200) < len(bodies)  # the faults did bite
    ses_fake.set_chaos("")
    # WHEN each keyed batch is repeated until it has its answer (one task each, never two)
    for n, key in keys.items():
        status, answer = post(batch, bodies[n], headers={"idempotency-key": key})
        assert status == 200, answer
    sent = [json.loads(row["params"])["Subject"] for row in ses_fake.store.tasks(None, None, None, 1000, 0)[1]]
    assert len(lists_at_ses(ses_fake)) > 0
    # THEN once the lists are old enough and the tasks done, the cleanup job leaves none behind
    backdate_lists(7200)
    first = cleanup(batch)
    ses_fake.tick()
    second = cleanup(batch)
    assert lists_at_ses(ses_fake) == []
    # Both ways a list ends: no task ever used it (deleted at once), or a task whose reply was
    # lost was found on it (kept until that task was done, then deleted with the finished ones).
    assert first["UnusedLists"] > 0 and second["Lists"] > 0
    assert all(sent.count(f"News {n}") == 1 for n in keys)  # the doubts adopted their tasks: none twice


# --- digests ---

@pytest.fixture
def digest_config(env, tmp_path, monkeypatch):
    settings_file = tmp_path / "digest.json"
    settings_file.write_text(json.dumps({"Templates": {"welcome": 100091}, "Digests": {"daily": {
        "FromEmailAddress": "Digest <digest@mail.example.com>", "Subject": "Your day",
        "Template": {"TemplateName": "welcome"},
        "TemplateData": {"count": "length(@)", "titles": "join(', ', [].title)"}}}}))
    monkeypatch.setenv("SESMAIL_CONFIG", str(settings_file))
    config.reset()


def queue(batch, items):
    return post(batch, items, path="/digest/items")


def test_digest_items_are_grouped_per_recipient_and_sent_once(batch, ses_fake, digest_config):
    status, body = queue(batch, [{"Digest": "daily", "Email": "a@example.com", "Item": {"title": "one"}},
                                 {"Digest": "daily", "Email": "a@example.com", "Item": {"title": "two"}},
                                 {"Digest": "daily", "Email": "b@example.com", "Item": {"title": "three"}}])
    assert (status, body["Queued"]) == (200, 3)
    event = timer_event("daily")
    assert batch(event, context())["statusCode"] == 200
    sent = {mail["Destination"][0]: json.loads(mail["Template"]["TemplateData"]) for mail in ses_fake.sent}
    assert sent == {"a@example.com": {"count": 2, "titles": "one, two"},
                    "b@example.com": {"count": 1, "titles": "three"}}
    batch(event, context())  # SCF delivers the same event again
    batch(timer_event("daily", time_="2026-11-24T01:00:00Z"), context())  # and the next day's run
    assert len(ses_fake.sent) == 2



def test_a_throttled_digest_send_is_sent_again_once(batch, ses_fake, digest_config):
    # RequestLimitExceeded means SES sent nothing: the same mail is sent again, and only once.
    queue(batch, [{"Digest": "daily", "Email": f"r{n}@example.com", "Item": {"title": str(n)}} for n in range(3)])
    ses_fake.fail("SendEmail", "RequestLimitExceeded", times=2)
    try:
        assert json.loads(batch(timer_event("daily"), context())["body"])["Sent"] == 3
    finally:
        ratelimit.reset()  # the throttle paused this container's limiter: not the next test's
    outcomes = [call["Outcome"] for call in ses_fake.calls if call["Action"] == "SendEmail"]
    assert sorted(outcomes) == ["error:RequestLimitExceeded"] * 2 + ["ok"] * 3
    assert sorted(mail["Destination"][0] for mail in ses_fake.sent) == [f"r{n}@example.com" for n in range(3)]

def test_an_unknown_digest_item_is_refused(batch, digest_config):
    status, body = queue(batch, {"Digest": "weekly", "Email": "a@example.com", "Item": {}})
    assert (status, body["Error"]["Code"]) == (404, "ResourceNotFound")


def test_a_suppressed_digest_recipient_is_skipped(batch, ses_fake, digest_config):
    store.open_store(config.load().database_url).suppress("a@example.com", "all", "hard_bounce", "callback", 0.0)
    queue(batch, {"Digest": "daily", "Email": "a@example.com", "Item": {"title": "one"}})
    result = json.loads(batch(timer_event("daily"), context())["body"])
    assert result["Skipped"] == 1
    assert ses_fake.sent == []


def test_a_failed_digest_recipient_keeps_its_items_for_the_next_run(batch, ses_fake, digest_config):
    queue(batch, {"Digest": "daily", "Email": "a@example.com", "Item": {"title": "one"}})
    ses_fake.fail("SendEmail", "FailedOperation.InvalidTemplateID")
    assert json.loads(batch(timer_event("daily"), context())["body"])["Failed"] == 1
    batch(timer_event("daily", time_="2026-11-24T01:00:00Z"), context())
    assert len(ses_fake.sent) == 1


@pytest.mark.parametrize("batch_above", [None, 1], ids=["one-by-one", "through-lists"])
def test_a_digest_item_that_would_break_the_subject_fails_alone(batch, ses_fake, digest_config, tmp_path,
                                                                batch_above):
    settings = json.loads((tmp_path / "digest.json").read_text())
    settings["Digests"]["daily"]["Subject"] = "Your day: {{titles}}"
    if batch_above is not None:
        settings["Digests"]["daily"]["BatchAbove"] = batch_above
    (tmp_path / "digest.json").write_text(json.dumps(settings))
    config.reset()
    queue(batch, [{"Digest": "daily", "Email": "a@example.com", "Item": {"title": "one\u2028Bcc: x@evil.example"}},
                  {"Digest": "daily", "Email": "b@example.com", "Item": {"title": "two"}},
                  {"Digest": "daily", "Email": "c@example.com", "Item": {"title": "three"}}])
    result = json.loads(batch(timer_event("daily"), context())["body"])
    assert result["Failed"] == 1 and result["Sent"] == 2
    sent = [call["Params"] for call in ses_fake.calls
            if call["Action"] in ("SendEmail", "CreateReceiverDetailWithData")]
    assert "a@example.com" not in json.dumps(sent)
    states = db.execute(config.load().database_url, "SELECT email, state FROM sesmail_digest_items ORDER BY email")
    assert states == [("a@example.com", "failed"), ("b@example.com", "sent"),
                                              ("c@example.com", "sent")]


def test_a_large_digest_goes_through_recipient_lists(batch, ses_fake, digest_config, tmp_path, monkeypatch):
    settings = json.loads((tmp_path / "digest.json").read_text())
    settings["Digests"]["daily"]["BatchAbove"] = 2
    (tmp_path / "digest.json").write_text(json.dumps(settings))
    config.reset()
    queue(batch, [{"Digest": "daily", "Email": f"r{i}@example.com", "Item": {"title": f"t{i}"}} for i in range(3)])
    result = json.loads(batch(timer_event("daily"), context())["body"])
    assert (result["Sent"], result["Lists"]) == (3, 1)
    assert [call["Action"] for call in ses_fake.calls if call["Action"] in ("SendEmail", "BatchSendEmail")] == [
        "BatchSendEmail"]
    rows = calls(ses_fake, "CreateReceiverDetailWithData")[0]["Params"]["Datas"]
    assert json.loads(rows[0]["TemplateData"]) == {"count": 1, "titles": "t0"}
    batch(timer_event("daily", time_="2026-11-24T01:00:00Z"), context())
    assert len(calls(ses_fake, "BatchSendEmail")) == 1


def test_a_run_that_died_mid_digest_is_resumed_without_resending(batch, ses_fake, digest_config, monkeypatch):
    # GIVEN a run that sent to a@ and died right after claiming b@'s items
    from sesmail import digest

    queue(batch, [{"Digest": "daily", "Email": address, "Item": {"title": "x"}}
                  for address in ("a@example.com", "b@example.com", "c@example.com")])
    original = digest._Sender.send

    def dies_on_b(self, email):
        if email == "b@example.com":
            self.store.claim_digest_items(self.name, email, self.run_key, time.time())
            raise KeyboardInterrupt("the instance was stopped")
        return original(self, email)

    monkeypatch.setattr(digest._Sender, "send", dies_on_b)
    monkeypatch.setattr(digest, "DEFAULT_WORKERS", 1)
    with pytest.raises(KeyboardInterrupt):
        batch(timer_event("daily"), context())
    monkeypatch.setattr(digest._Sender, "send", original)
    sent_first = sorted(mail["Destination"][0] for mail in ses_fake.sent)
    assert "a@example.com" in sent_first and "b@example.com" not in sent_first
    # WHEN SCF retries the event after the dead run's time limit and SES's settle time
    monkeypatch.setenv("SESMAIL_SETTLE_SECONDS", "0")
    config.reset()
    db.execute(config.load().database_url, "UPDATE sesmail_digest_items SET claimed_at = claimed_at - 60")
    batch(timer_event("daily"), context())
    # THEN b@ (never sent: SES has no row) and c@ get theirs, a@ nothing more
    assert sorted(mail["Destination"][0] for mail in ses_fake.sent) == [
        "a@example.com", "b@example.com", "c@example.com"]


def test_a_digest_run_out_of_time_leaves_the_rest_queued_for_the_next_run(batch, ses_fake, digest_config,
                                                                        monkeypatch):
    from sesmail import digest

    queue(batch, [{"Digest": "daily", "Email": f"r{i}@example.com", "Item": {"title": "x"}} for i in range(3)])
    init = digest._Sender.__init__

    def near_the_limit(self, *args, **kwargs):  # as if the function's time were almost up
        init(self, *args, **kwargs)
        self.reserve = 10_000.0

    monkeypatch.setattr(digest._Sender, "__init__", near_the_limit)
    first = json.loads(batch(timer_event("daily"), context())["body"])
    assert (first["Sent"], first["Deferred"]) == (0, 3)
    monkeypatch.setattr(digest._Sender, "__init__", init)
    second = json.loads(batch(timer_event("daily", time_="2026-11-24T01:00:00Z"), context())["body"])
    assert second["Sent"] == 3
    assert len(ses_fake.sent) == 3


def test_the_reconcile_job_stores_polled_events_for_messages_without_callbacks(env, batch, send, ses_fake,
                                                                              monkeypatch):
    from tests.events import sample_send_payload

    message_id = json.loads(send(http_event(sample_send_payload()), context())["body"])["MessageId"]
    monkeypatch.setenv("SESMAIL_RECONCILE_AFTER", "0")
    config.reset()
    result = json.loads(batch(timer_event({"Job": "reconcile"}), context())["body"])
    assert result["Result"]["Messages"] == 1 and result["Result"]["Stored"] >= 1
    status = json.loads(send(http_event(None, method="GET", path=f"/messages/{message_id}"), context())["body"])
    assert status["State"] == "delivered"
    assert all(event.get("Polled") for event in status["Events"])
    # A second run has nothing left to ask about.
    again = json.loads(batch(timer_event({"Job": "reconcile"}, time_="2026-11-23T02:00:00Z"), context())["body"])
    assert again["Result"]["Messages"] == 0
