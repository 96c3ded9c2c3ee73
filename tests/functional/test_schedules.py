"""Scheduled and recurring topic batches fired by sesmail's own timer (docs/topics.md#schedules),
through the batch function's handler, the SES emulator and SQLite: accepted and kept, not handed to
SES; each firing builds its list then, without readers who unsubscribed; a firing is sent once
whatever the timer, the instances or SES's replies do; owners alone see and cancel theirs.

Schedules start in the future (SES refuses a BeginTime in the past); a test makes one due by
moving its `next_at` back with SQL beside the store, as time passing would."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest

from sesmail import config, schedules, store
from tests import db
from tests.conftest import load_function
from tests.events import context, http_event
from tests.functional import test_topics as shared
from tests.functional.test_topics import READER, answer, batch_payload, save, uploaded

topic_env = shared.topic_env  # the topics suite's settings: topics, one-click on

OTHER = "two@example.com"
CLIENTS = {"web": {"Scopes": ["batch"], "Templates": [100091]}, "shop": {"Scopes": ["batch"]},
           "ops": {"Scopes": ["admin"]}, "news": {"Scopes": ["batch"], "MailsPerRecipientPerHour": 1}}


@pytest.fixture
def batch(topic_env, tmp_path, monkeypatch):
    settings_file = tmp_path / "topics.json"
    settings = json.loads(settings_file.read_text())
    settings["Clients"] = CLIENTS
    settings_file.write_text(json.dumps(settings))
    monkeypatch.setenv("SESMAIL_API_KEYS", "dev-key,web=web-key-1,shop=shop-key,ops=ops-key,news=news-key")
    config.reset()
    return load_function("batch").main_handler


def later(minutes: int = 10) -> str:
    return (datetime.now(timezone.utc) + timedelta(minutes=minutes)).strftime("%Y-%m-%d %H:%M:%S+00:00")


def recurring(**changes) -> dict:
    return batch_payload(TaskType=3, CycleParam={"BeginTime": later(), "IntervalTime": 24}, **changes)


def post(batch, payload, key="dev-key", idempotency_key=None) -> tuple[int, dict]:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    return answer(batch(http_event(payload, path="/batch", key=key, headers=headers), context()))


def task(batch, task_id, key="dev-key", method="GET") -> tuple[int, dict]:
    return answer(batch(http_event(None, method=method, path=f"/batch/tasks/{task_id}", key=key), context()))


def job(batch, at="2026-11-23T01:00:00Z") -> dict:
    status, body = answer(batch({"Type": "Timer", "TriggerName": "schedules-minutely", "Time": at,
                                 "Message": '{"Job": "schedules"}'}, context()))
    assert status == 200, body
    return body["Result"]


def make_due(schedule_id: str, seconds_ago: float = 1.0) -> float:
    due = float(int(time.time() - seconds_ago))
    db.execute(config.load().database_url, "UPDATE sesmail_schedules SET next_at = ? WHERE schedule_id = ?",
               (due, schedule_id))
    return due


def batch_sends(ses_fake) -> list[dict]:
    return [call for call in ses_fake.calls if call["Action"] == "BatchSendEmail"]


def unsubscribe_through_the_mail(batch, ses_fake, email: str) -> None:
    link = next(json.loads(row["TemplateData"])["preferences_url"] for row in uploaded(ses_fake)
                if row["Email"] == email)
    webhook = load_function("webhook").main_handler
    assert save({"webhook": webhook}, parse_qs(urlsplit(link).query)["t"][0], "action=unsubscribe")[0] == 200


# --- accepted and kept ---

@pytest.mark.parametrize("task_type", [2, 3])
def test_a_scheduled_or_recurring_topic_batch_is_kept_by_sesmail_not_handed_to_ses(batch, ses_fake, task_type):
    begin = later(30)
    timing = ({"TimedParam": {"BeginTime": begin}} if task_type == 2
              else {"CycleParam": {"BeginTime": begin, "IntervalTime": 24}})
    status, body = post(batch, batch_payload(TaskType=task_type, **timing))
    assert status == 200, body
    assert body["TaskId"].startswith(schedules.PREFIX) and body["TaskIds"] == [body["TaskId"]]
    assert body["ScheduledBy"] == "sesmail"
    first = datetime.fromisoformat(begin)
    assert datetime.fromisoformat(body["NextSendTime"]) == first and body["NextSendTime"].endswith("+08:00")
    assert ses_fake.calls == []  # SES sees nothing until it fires
    status, shown = task(batch, body["TaskId"])
    assert status == 200
    assert shown["Task"] | {"CreateTime": None} == {
        "TaskId": body["TaskId"], "ScheduledBy": "sesmail", "TaskType": task_type, "Status": "Scheduled",
        "Subject": "News", "Topic": "news", "NextSendTime": body["NextSendTime"], "Firings": 0, "Missed": 0,
        "Failed": 0, "CreateTime": None, **({"IntervalTime": 24} if task_type == 3 else {})}


def test_a_list_made_outside_sesmail_still_cannot_carry_a_topic(batch, ses_fake):
    payload = recurring(Recipients=None, ReceiverId=42)
    status, body = post(batch, payload)
    assert (status, body["Error"]["Code"], body["Error"]["Field"]) == (
        400, "InvalidParameterValue.TopicNeedsRecipients", "Topic")
    assert ses_fake.calls == []


def test_a_schedule_whose_reader_data_with_the_url_would_exceed_800_bytes_is_refused_now(batch, ses_fake):
    status, body = post(batch, recurring(Recipients=[{"Email": READER, "TemplateData": {"x": "y" * 700}}]))
    assert (status, body["Error"]["Code"], body["Error"]["Field"]) == (
        400, "InvalidParameterValue.TemplateDataLenLimit", "Recipients[0].TemplateData")
    assert store.open_store(config.load().database_url).due_schedules(float("inf"), 10) == []


def test_a_schedule_with_an_idempotency_key_is_kept_once(batch, ses_fake):
    payload = recurring()
    one, two = post(batch, payload, idempotency_key="k"), post(batch, payload, idempotency_key="k")
    assert one[0] == 200 and one[1]["TaskId"] == two[1]["TaskId"]
    assert post(batch, payload, idempotency_key="k2")[1]["TaskId"] != one[1]["TaskId"]
    assert db.execute(config.load().database_url, "SELECT COUNT(*) FROM sesmail_schedules")[0][0] == 2


# --- firing ---

def test_a_reader_who_unsubscribes_between_two_firings_is_left_out_of_the_second(batch, ses_fake):
    # GIVEN a recurring topic batch to two readers, fired once
    _, body = post(batch, recurring())
    schedule_id = body["TaskId"]
    make_due(schedule_id, 60)  # each firing has a time of its own (its key): the second is a minute later
    assert job(batch)["Fired"] == 1
    assert sorted(row["Email"] for row in uploaded(ses_fake)) == [READER, OTHER]
    assert len(batch_sends(ses_fake)) == 1 and batch_sends(ses_fake)[0]["Params"]["TaskType"] == 1
    # WHEN one of them unsubscribes through the link in the first mail
    unsubscribe_through_the_mail(batch, ses_fake, READER)
    ses_fake.calls.clear()
    # THEN the second firing builds its list without them
    make_due(schedule_id)
    result = job(batch, "2026-11-24T01:00:00Z")
    assert (result["Fired"], result["Deferred"]) == (1, 0)
    assert [row["Email"] for row in uploaded(ses_fake)] == [OTHER]
    shown = task(batch, schedule_id)[1]["Task"]
    assert (shown["Status"], shown["Firings"]) == ("Scheduled", 2)
    assert shown["LastFiring"]["Suppressed"] == ["Recipients[0]"]
    # and the tasks of a firing are the schedule's client's, as an immediate batch's are
    assert task(batch, shown["LastFiring"]["TaskIds"][0])[0] == 200


def test_a_one_time_schedule_fires_once_and_ends(batch, ses_fake):
    _, body = post(batch, batch_payload(TaskType=2, TimedParam={"BeginTime": later()}))
    make_due(body["TaskId"])
    assert job(batch)["Fired"] == 1
    assert job(batch, "2026-11-23T01:01:00Z")["Fired"] == 0
    shown = task(batch, body["TaskId"])[1]["Task"]
    assert (shown["Status"], shown["NextSendTime"], shown["Firings"]) == ("Done", None, 1)
    assert len(batch_sends(ses_fake)) == 1
    # an ended schedule keeps no recipients
    url = config.load().database_url
    assert db.execute(url, "SELECT COUNT(*) FROM sesmail_schedule_recipients")[0][0] == 0


def test_term_cycle_one_ends_a_recurring_schedule_after_its_first_firing(batch, ses_fake):
    _, body = post(batch, batch_payload(TaskType=3, CycleParam={"BeginTime": later(), "IntervalTime": 1,
                                                                "TermCycle": 1}))
    make_due(body["TaskId"])
    assert job(batch)["Fired"] == 1
    assert task(batch, body["TaskId"])[1]["Task"]["Status"] == "Done"


def test_a_firing_delivered_twice_sends_once(batch, ses_fake):
    _, body = post(batch, recurring())
    make_due(body["TaskId"])
    first, second = job(batch), job(batch)  # the same timer event, delivered again
    assert (first["Fired"], second["Fired"]) == (1, 0)
    assert len(batch_sends(ses_fake)) == 1


def test_a_firing_sent_but_not_recorded_on_its_schedule_is_not_sent_again(batch, ses_fake):
    # GIVEN a firing SES took, whose run died before the schedule was moved on
    _, body = post(batch, recurring())
    schedule_id = body["TaskId"]
    due = make_due(schedule_id, 5)
    url = config.load().database_url
    before = db.execute(url, "SELECT version FROM sesmail_schedules WHERE schedule_id = ?", (schedule_id,))[0][0]
    assert job(batch)["Fired"] == 1
    db.execute(url, "UPDATE sesmail_schedules SET next_at = ?, fired = 0, version = ?, last_result = NULL"
                    " WHERE schedule_id = ?", (due, before, schedule_id))
    # WHEN the next run finds it due again
    result = job(batch, "2026-11-23T01:01:00Z")
    # THEN it is recorded from the firing's settled key, and nothing goes to SES again
    assert result["Fired"] == 1 and len(batch_sends(ses_fake)) == 1
    shown = task(batch, schedule_id)[1]["Task"]
    made = [int(row["id"]) for row in ses_fake.store.tasks(None, None, None, 100, 0)[1]]
    assert shown["Firings"] == 1 and shown["LastFiring"]["TaskIds"] == made


def test_a_lost_batch_send_email_reply_is_resolved_not_repeated(batch, ses_fake):
    _, body = post(batch, recurring())
    make_due(body["TaskId"])
    ses_fake.drop_after("BatchSendEmail")  # SES made the task; its reply never came
    assert job(batch)["Deferred"] == 1
    result = job(batch, "2026-11-23T01:01:00Z")  # the task is found through ListSendTasks
    assert result["Fired"] == 1
    assert len(batch_sends(ses_fake)) == 1
    assert task(batch, body["TaskId"])[1]["Task"]["Firings"] == 1


def test_two_instances_firing_at_once_send_once(batch, ses_fake):
    _, body = post(batch, recurring())
    make_due(body["TaskId"])
    ses_fake.delay("BatchSendEmail", 0.5)  # the first is still in flight when the second looks
    results: list[dict] = []
    start = threading.Barrier(2)

    def instance(at: str) -> None:
        start.wait()
        results.append(job(batch, at))

    threads = [threading.Thread(target=instance, args=(f"2026-11-23T01:00:0{n}Z",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2 and sum(r["Fired"] for r in results) == 1
    assert len(batch_sends(ses_fake)) == 1
    assert task(batch, body["TaskId"])[1]["Task"]["Firings"] == 1


def test_missed_firings_send_the_latest_once_and_count_the_others(batch, ses_fake):
    _, body = post(batch, batch_payload(TaskType=3, CycleParam={"BeginTime": later(), "IntervalTime": 1}))
    make_due(body["TaskId"], 3 * 3600 + 60)  # three hours and a minute of downtime: four firings fell due
    result = job(batch)
    assert (result["Fired"], len(batch_sends(ses_fake))) == (1, 1)
    shown = task(batch, body["TaskId"])[1]["Task"]
    assert (shown["Firings"], shown["Missed"], shown["Status"]) == (1, 3, "Scheduled")
    assert datetime.fromisoformat(shown["NextSendTime"]).timestamp() > time.time()


def test_a_firing_more_than_a_day_late_is_missed_not_sent(batch, ses_fake):
    _, body = post(batch, batch_payload(TaskType=2, TimedParam={"BeginTime": later()}))
    make_due(body["TaskId"], schedules.LATE_MAX_S + 60)
    assert job(batch)["Missed"] == 1
    assert batch_sends(ses_fake) == []
    assert task(batch, body["TaskId"])[1]["Task"]["Status"] == "Missed"


# --- policies, owners, cancelling ---

def test_each_firing_is_held_to_the_client_policy_as_it_is_then(batch, ses_fake, tmp_path):
    _, body = post(batch, recurring(), key="web-key-1")
    settings_file = tmp_path / "topics.json"
    settings = json.loads(settings_file.read_text())
    settings["Clients"]["web"]["Templates"] = [100092]  # the template was taken off its policy since
    settings_file.write_text(json.dumps(settings))
    config.reset()
    make_due(body["TaskId"])
    assert job(batch)["Failed"] == 1
    assert ses_fake.calls == []
    last = task(batch, body["TaskId"], key="web-key-1")[1]["Task"]["LastFiring"]
    assert last["Error"]["Code"] == "UnauthorizedOperation.TemplateNotAllowed"


def test_each_firing_counts_mails_per_recipient_per_hour_and_leaves_out_who_is_over(batch, ses_fake):
    _, body = post(batch, recurring(), key="news-key")
    assert post(batch, batch_payload(Recipients=[{"Email": READER}]), key="news-key")[0] == 200  # READER's one mail
    ses_fake.calls.clear()
    make_due(body["TaskId"])
    assert job(batch)["Fired"] == 1
    assert [row["Email"] for row in uploaded(ses_fake)] == [OTHER]
    assert task(batch, body["TaskId"], key="news-key")[1]["Task"]["LastFiring"]["RateLimited"] == ["Recipients[0]"]


def test_a_narrow_key_cannot_read_or_cancel_another_clients_schedule(batch, ses_fake):
    _, body = post(batch, recurring(), key="web-key-1")
    schedule_id = body["TaskId"]
    for method in ("GET", "DELETE"):
        status, refused = task(batch, schedule_id, key="shop-key", method=method)
        assert (status, refused["Error"]["Code"]) == (404, "ResourceNotFound"), refused
    assert task(batch, schedule_id, key="web-key-1")[0] == 200
    assert task(batch, schedule_id, key="ops-key")[0] == 200  # admin sees every client's
    make_due(schedule_id)
    assert job(batch)["Fired"] == 1  # nothing the other client did stopped it


@pytest.mark.parametrize("key", ["web-key-1", "ops-key"], ids=["owner", "admin"])
def test_the_owner_or_an_admin_cancels_a_schedule_and_it_never_fires_again(batch, ses_fake, key):
    _, body = post(batch, recurring(), key="web-key-1")
    status, cancelled = task(batch, body["TaskId"], key=key, method="DELETE")
    assert status == 200 and cancelled["Task"]["Status"] == "Cancelled"
    assert task(batch, body["TaskId"], key=key, method="DELETE")[1]["Task"]["Status"] == "Cancelled"
    make_due(body["TaskId"])
    assert job(batch) == {"Fired": 0, "Failed": 0, "Missed": 0, "Deferred": 0}
    assert ses_fake.calls == []


def test_an_ses_task_cannot_be_cancelled_here(batch, ses_fake):
    status, body = task(batch, 42, method="DELETE")
    assert (status, body["Error"]["Code"], body["Error"]["Field"]) == (400, "InvalidParameterValue", "TaskId")


def test_an_erased_address_leaves_the_schedule(batch, ses_fake):
    _, body = post(batch, recurring())
    send = load_function("send").main_handler
    erased = answer(send(http_event(None, method="DELETE", path=f"/addresses/{READER}"), context()))
    assert erased[0] == 200 and erased[1]["Erased"]["ScheduleRecipients"] == 1
    make_due(body["TaskId"])
    assert job(batch)["Fired"] == 1
    assert [row["Email"] for row in uploaded(ses_fake)] == [OTHER]
