"""Recipient lists, BatchSendEmail and its tasks in the emulator, through the real SDK."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from tencentcloud.ses.v20201002 import models

from tests.local.conftest import BEIJING
from tests.local.helpers import call, code_of, template_data


def new_list(client, name="customers", emails=None, datas=None):
    receiver_id = call(client, "CreateReceiver", {"ReceiversName": name, "Desc": "test list"})["ReceiverId"]
    if datas is not None:
        call(client, "CreateReceiverDetailWithData", {"ReceiverId": receiver_id, "Datas": datas})
    elif emails is not None:
        call(client, "CreateReceiverDetail", {"ReceiverId": receiver_id, "Emails": emails})
    return receiver_id


def batch(**overrides):
    params = {"FromEmailAddress": "Shop <noreply@sesmail.local>", "Subject": "Hello {{name}}", "TaskType": 1,
              "Template": {"TemplateID": 2, "TemplateData": template_data(name="everyone")}}
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def beijing(text):
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING).timestamp()


def tasks(client, **filters):
    return call(client, "ListSendTasks", dict({"Offset": 0, "Limit": 100}, **filters))


# ---- recipient lists ------------------------------------------------------------------------------

def test_a_list_goes_from_waiting_to_uploading_to_done_as_the_clock_moves(ses, client, clock):
    ses.receiver_upload_seconds = 30
    receiver_id = call(client, "CreateReceiver", {"ReceiversName": "slow"})["ReceiverId"]

    def status():
        [row] = call(client, "ListReceivers", {"Offset": 0, "Limit": 10})["Data"]
        return row["ReceiversStatus"], row["Count"]

    assert status() == (1, 0)
    counts = call(client, "CreateReceiverDetail", {"ReceiverId": receiver_id,
                                                   "Emails": ["a@example.com", "b@example.com"]})
    assert counts == {"TotalCount": 2, "ValidCount": 2, "TooLongCount": 0, "EmptyEmailCount": 0, "RepeatCount": 0}
    assert status() == (2, 2)
    # SES refuses to touch a list while it uploads: callers must poll ListReceivers.
    assert code_of(client, "CreateReceiverDetail", {"ReceiverId": receiver_id, "Emails": ["c@example.com"]}) == \
        "OperationDenied.ReceiverIsOperating"
    assert code_of(client, "BatchSendEmail", batch(ReceiverId=receiver_id)) == "OperationDenied.ReceiverStatusError"
    clock.advance(30)
    assert status() == (3, 2)


def test_list_receivers_filters_by_status_and_keyword_and_pages(ses, client):
    for name in ("alpha", "beta", "alphabet"):
        new_list(client, name, emails=["a@example.com"] if name != "beta" else None)
    found = call(client, "ListReceivers", {"Offset": 0, "Limit": 10, "KeyWord": "alpha"})
    assert (found["TotalCount"], [r["ReceiversName"] for r in found["Data"]]) == (2, ["alphabet", "alpha"])
    waiting = call(client, "ListReceivers", {"Offset": 0, "Limit": 10, "Status": 1})["Data"]
    assert [r["ReceiversName"] for r in waiting] == ["beta"]
    page = call(client, "ListReceivers", {"Offset": 1, "Limit": 1})
    assert (page["TotalCount"], len(page["Data"])) == (3, 1)
    assert code_of(client, "ListReceivers", {"Offset": 0, "Limit": 101}) == "FailedOperation.InvalidLimit"


def test_upload_counts_empty_too_long_invalid_and_repeated_addresses(ses, client):
    receiver_id = new_list(client, emails=None)
    counts = call(client, "CreateReceiverDetail", {"ReceiverId": receiver_id, "Emails": [
        "a@example.com", "", "x" * 250 + "@example.com", "not-an-address", "A@example.com"]})
    assert counts == {"TotalCount": 5, "ValidCount": 2, "TooLongCount": 1, "EmptyEmailCount": 1, "RepeatCount": 1}
    details = call(client, "ListReceiverDetails", {"ReceiverId": receiver_id, "Offset": 0, "Limit": 10})
    assert (details["ValidCount"], details["InvalidCount"]) == (2, 1)
    assert [(d["Email"], d["Status"]) for d in details["Data"]] == [
        ("a@example.com", 1), ("not-an-address", 2), ("A@example.com", 1)]


@pytest.mark.parametrize(("action", "params", "code"), [
    ("CreateReceiver", {"ReceiversName": ""}, "InvalidParameterValue.ReceiverNameIllegal"),
    ("CreateReceiver", {"ReceiversName": "ok", "Desc": "x" * 301}, "InvalidParameterValue.ReceiverDescIllegal"),
    ("CreateReceiverDetail", {"Emails": ["a@example.com"]}, "MissingParameter.ReceiverIdNecessary"),
    ("CreateReceiverDetail", {"ReceiverId": 999, "Emails": ["a@example.com"]}, "OperationDenied.ReceiverNotExist"),
    ("CreateReceiverDetail", {"ReceiverId": "LIST", "Emails": []}, "MissingParameter.EmailsNecessary"),
    ("CreateReceiverDetailWithData", {"ReceiverId": "LIST", "Datas": []}, "MissingParameter.EmailsNecessary"),
    ("CreateReceiverDetailWithData", {"ReceiverId": "LIST", "Datas": [{"Email": "a@example.com",
                                                                       "TemplateData": "{oops"}]},
     "InvalidParameterValue.TemplateDataError"),
    ("CreateReceiverDetailWithData", {"ReceiverId": "LIST", "Datas": [{"Email": "a@example.com",
                                                                       "TemplateData": template_data(x="y" * 800)}]},
     "InvalidParameterValue.TemplateDataLenLimit"),
    ("CreateReceiverDetailWithData", {"ReceiverId": "LIST", "Datas": [{"Email": "a@example.com",
                                                                       "TemplateData": template_data(x="<b>hi</b>")}]},
     "InvalidParameterValue.InValidTemplateData"),
    ("DeleteReceiver", {}, "MissingParameter.ReceiverIdNecessary"),
    ("DeleteReceiver", {"ReceiverId": 999}, "OperationDenied.ReceiverNotExist"),
])
def test_list_actions_refuse_with_the_documented_codes(ses, client, action, params, code):
    receiver_id = call(client, "CreateReceiver", {"ReceiversName": "target"})["ReceiverId"]
    params = {k: (receiver_id if v == "LIST" else v) for k, v in params.items()}
    assert code_of(client, action, params) == code


def test_a_duplicate_list_name_is_refused(ses, client):
    new_list(client, "same")
    assert code_of(client, "CreateReceiver", {"ReceiversName": "same"}) == "InvalidParameterValue.RepeatReceiverName"


def test_one_upload_takes_at_most_20000_rows_and_a_list_at_most_50000(ses, client):
    receiver_id = new_list(client)
    rows = [f"u{i}@example.com" for i in range(20_001)]
    assert code_of(client, "CreateReceiverDetail", {"ReceiverId": receiver_id, "Emails": rows}) == \
        "LimitExceeded.ReceiverDetailRequestLimit"
    for _ in range(2):
        call(client, "CreateReceiverDetail", {"ReceiverId": receiver_id, "Emails": rows[:20_000]})
    assert call(client, "CreateReceiverDetail", {"ReceiverId": receiver_id, "Emails": rows[:10_000]})["ValidCount"] \
        == 10_000
    assert code_of(client, "CreateReceiverDetail", {"ReceiverId": receiver_id, "Emails": ["one@example.com"]}) == \
        "LimitExceeded.ReceiverDetailCountLimit"


def test_a_request_over_8_mb_is_refused(ses, client):
    receiver_id = new_list(client)
    rows = [{"Email": f"user{i}@example.com", "TemplateData": template_data(pad="p" * 600)} for i in range(13_000)]
    assert code_of(client, "CreateReceiverDetailWithData", {"ReceiverId": receiver_id, "Datas": rows}) == \
        "RequestSizeLimitExceeded"


def test_delete_receiver_removes_the_list(ses, client):
    receiver_id = new_list(client, emails=["a@example.com"])
    assert call(client, "DeleteReceiver", {"ReceiverId": receiver_id}) == {}
    assert call(client, "ListReceivers", {"Offset": 0, "Limit": 10})["TotalCount"] == 0


# ---- BatchSendEmail ------------------------------------------------------------------------------------

def test_an_immediate_task_sends_to_every_receiver_with_its_own_template_data(ses, client):
    receiver_id = new_list(client, datas=[{"Email": "ada@example.com", "TemplateData": template_data(name="Ada")},
                                          {"Email": "bob@example.com", "TemplateData": template_data(name="Bob")}])
    req = models.BatchSendEmailRequest()
    req.from_json_string(json.dumps(batch(ReceiverId=receiver_id, Template={"TemplateID": 2})))
    task_id = client.BatchSendEmail(req).TaskId
    ses.tick()
    [task] = tasks(client)["Data"]
    assert (task["TaskId"], task["TaskStatus"], task["TaskType"], task["RequestCount"], task["SendCount"]) == (
        task_id, 10, 1, 2, 2)
    assert (task["ReceiversName"], task["Subject"]) == ("customers", "Hello {{name}}")
    mails = ses.messages()
    assert sorted((m["To"][0], m["Subject"], m["TaskId"]) for m in mails) == [
        ("ada@example.com", "Hello Ada", task_id), ("bob@example.com", "Hello Bob", task_id)]
    ada = ses.message(next(m["MessageId"] for m in mails if m["To"] == ["ada@example.com"]))
    assert "Welcome, Ada!" in ada["Text"] and "Welcome, Ada!" in ada["Html"]
    assert ses.sent == []  # `sent` lists SendEmail requests only


def test_a_list_without_data_uses_the_tasks_template_data(ses, client):
    receiver_id = new_list(client, emails=["ada@example.com"])
    call(client, "BatchSendEmail", batch(ReceiverId=receiver_id))
    ses.tick()
    [mail] = ses.messages()
    assert mail["TemplateData"] == {"name": "everyone"}


def test_a_scheduled_task_waits_for_its_begin_time(ses, client, clock):
    receiver_id = new_list(client, emails=["ada@example.com"])
    task_id = call(client, "BatchSendEmail", batch(ReceiverId=receiver_id, TaskType=2,
                                                   TimedParam={"BeginTime": "2026-05-01 12:00:00"}))["TaskId"]
    ses.tick()
    assert tasks(client)["Data"][0]["TaskStatus"] == 1
    assert ses.messages() == []
    clock.now = beijing("2026-05-01 12:00:00")
    ses.tick()
    [task] = tasks(client)["Data"]
    assert (task["TaskId"], task["TaskStatus"], task["SendCount"]) == (task_id, 10, 1)
    assert task["TimedParam"] == {"BeginTime": "2026-05-01 12:00:00"}
    assert len(ses.messages()) == 1


def test_a_recurring_task_sends_every_interval(ses, client, clock):
    receiver_id = new_list(client, emails=["ada@example.com", "bob@example.com"])
    call(client, "BatchSendEmail", batch(ReceiverId=receiver_id, TaskType=3,
                                         CycleParam={"BeginTime": "2026-05-01 11:00:00", "IntervalTime": 24}))
    clock.now = beijing("2026-05-01 11:00:00")
    ses.tick()
    assert len(ses.messages()) == 2
    clock.advance(3600)
    ses.tick()
    assert len(ses.messages()) == 2  # not yet: the next run is a day later
    clock.now = beijing("2026-05-02 11:00:00")
    ses.tick()
    [task] = tasks(client)["Data"]
    assert (task["TaskStatus"], task["RequestCount"], task["SendCount"]) == (1, 4, 4)
    assert len(ses.messages()) == 4


def test_a_task_whose_list_was_deleted_ends_in_error(ses, client, clock):
    receiver_id = new_list(client, emails=["ada@example.com"])
    call(client, "BatchSendEmail", batch(ReceiverId=receiver_id, TaskType=2,
                                         TimedParam={"BeginTime": "2026-05-01 12:00:00"}))
    call(client, "DeleteReceiver", {"ReceiverId": receiver_id})
    clock.now = beijing("2026-05-01 12:00:00")
    ses.tick()
    [task] = tasks(client)["Data"]
    assert task["TaskStatus"] == 7
    assert "does not exist" in task["ErrMsg"]


@pytest.mark.parametrize(("overrides", "code"), [
    ({"FromEmailAddress": None}, "MissingParameter.SendParamNecessary"),
    ({"ReceiverId": None}, "MissingParameter.SendParamNecessary"),
    ({"Template": None}, "MissingParameter.SendParamNecessary"),
    ({"Subject": ""}, "InvalidParameterValue.SubjectLengthError"),
    ({"Subject": "x" * 101}, "InvalidParameterValue.SubjectLengthError"),
    ({"TaskType": 4}, "InvalidParameterValue"),
    ({"TaskType": 2}, "MissingParameter.TimedParamNecessary"),
    ({"TaskType": 2, "TimedParam": {"BeginTime": "2026-05-01 09:59:59"}}, "InvalidParameterValue.BeginTimeBeforeNow"),
    ({"TaskType": 2, "TimedParam": {"BeginTime": "tomorrow"}}, "InvalidParameterValue"),
    ({"TaskType": 3, "CycleParam": {"BeginTime": "2026-05-02 00:00:00"}}, "MissingParameter.CycleParamNecessary"),
    ({"TaskType": 3, "CycleParam": {"IntervalTime": 1}}, "MissingParameter.CycleParamNecessary"),
    ({"TaskType": 3, "CycleParam": {"BeginTime": "2026-04-01 00:00:00", "IntervalTime": 1}},
     "InvalidParameterValue.BeginTimeBeforeNow"),
    ({"Attachments": [{"FileName": "a.txt", "Content": "YQ=="}]}, "FailedOperation.NoAttachPermission"),
    ({"FromEmailAddress": "stranger@example.com"}, "OperationDenied.SendAddressStatusError"),
    ({"Template": {"TemplateID": 999, "TemplateData": "{}"}}, "OperationDenied.TemplateStatusError"),
    ({"Template": {"TemplateID": 2, "TemplateData": "not json"}}, "InvalidParameterValue.TemplateDataError"),
    ({"Template": {"TemplateID": 2, "TemplateData": template_data(other="x")}},
     "InvalidParameterValue.TemplateNotMatchData"),
    ({"ReceiverId": 999}, "OperationDenied.ReceiverNotExist"),
])
def test_batch_send_email_refuses_with_the_seeds_codes_and_creates_no_task(ses, client, overrides, code):
    receiver_id = new_list(client, emails=["ada@example.com"])
    params = batch(ReceiverId=receiver_id)
    params.update(overrides)
    assert code_of(client, "BatchSendEmail", {k: v for k, v in params.items() if v is not None}) == code
    assert tasks(client)["TotalCount"] == 0


def test_an_empty_list_cannot_be_sent_to(ses, client):
    receiver_id = new_list(client)
    assert code_of(client, "BatchSendEmail", batch(ReceiverId=receiver_id)) == "OperationDenied.ReceiverStatusError"


def test_per_recipient_data_must_cover_the_template_variables(ses, client):
    receiver_id = new_list(client, datas=[{"Email": "ada@example.com", "TemplateData": template_data(name="Ada")},
                                          {"Email": "bob@example.com", "TemplateData": template_data(nick="B")}])
    assert code_of(client, "BatchSendEmail", batch(ReceiverId=receiver_id, Template={"TemplateID": 2})) == \
        "InvalidParameterValue.TemplateNotMatchData"


# ---- ListSendTasks ----------------------------------------------------------------------------------

def test_list_send_tasks_is_newest_first_and_filters(ses, client, clock):
    first = new_list(client, "first", emails=["a@example.com"])
    second = new_list(client, "second", emails=["b@example.com"])
    later = {"TimedParam": {"BeginTime": "2026-06-01 00:00:00"}}
    ids = []
    for receiver_id, task_type, extra in ((first, 1, {}), (second, 2, later), (first, 1, {})):
        params = batch(ReceiverId=receiver_id, TaskType=task_type, **extra)
        ids.append(call(client, "BatchSendEmail", params)["TaskId"])
        clock.advance(1)
    ses.tick()
    listed = tasks(client)
    assert (listed["TotalCount"], [t["TaskId"] for t in listed["Data"]]) == (3, ids[::-1])
    assert [t["TaskId"] for t in tasks(client, ReceiverId=first)["Data"]] == [ids[2], ids[0]]
    assert [t["TaskId"] for t in tasks(client, TaskType=2)["Data"]] == [ids[1]]
    assert [t["TaskId"] for t in tasks(client, Status=1)["Data"]] == [ids[1]]
    assert [t["TaskId"] for t in tasks(client, Status=10)["Data"]] == [ids[2], ids[0]]
    page = call(client, "ListSendTasks", {"Offset": 1, "Limit": 1})
    assert (page["TotalCount"], [t["TaskId"] for t in page["Data"]]) == (3, [ids[1]])
    assert code_of(client, "ListSendTasks", {"Offset": 0, "Limit": 0}) == "FailedOperation.InvalidLimit"


def test_a_big_task_is_sent_in_chunks_and_reports_progress(ses, client):
    receiver_id = new_list(client, emails=[f"user{i}@example.com" for i in range(4_500)])
    ses.worker_paused = True
    call(client, "BatchSendEmail", batch(ReceiverId=receiver_id))
    progress = []
    while not progress or progress[-1][0] != 10:
        ses.tick()
        task = tasks(client)["Data"][0]
        progress.append((task["TaskStatus"], task["SendCount"], task["CacheCount"]))
    assert progress == [(5, 2000, 2500), (5, 4000, 500), (10, 4500, 0)]
    assert ses.store.message_count() == 4_500
