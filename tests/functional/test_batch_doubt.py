"""BatchSendEmail on a caller's own list: a doubt is matched through ListSendTasks by list, subject
and creation time, so two attempts with the same list and subject never have overlapping windows
(docs/reliability.md#doubt); the same windows shrunk to about 2 s as in test_send_doubt.py."""

from __future__ import annotations

import json
import time

import pytest

from sesmail import batching, config, leases, transport
from tests.conftest import SECRET_ID, SECRET_KEY, load_function
from tests.events import context, http_event


@pytest.fixture
def batch(env, monkeypatch):
    monkeypatch.setattr(transport, "BACKOFF_BASE_S", 0.001)
    monkeypatch.setattr(batching, "POLL_FIRST_S", 0.01)
    monkeypatch.setattr(leases, "CLOCK_SKEW_S", 0)
    monkeypatch.setattr(leases, "MARGIN_S", 2)
    monkeypatch.setattr(leases, "WAIT_S", 0.5)
    monkeypatch.setenv("SESMAIL_SETTLE_SECONDS", "1")
    config.reset()
    return load_function("batch").main_handler


@pytest.fixture
def receiver_id(ses_fake) -> int:
    from tencentcloud.common import credential
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile
    from tencentcloud.ses.v20201002 import ses_client

    client = ses_client.SesClient(credential.Credential(SECRET_ID, SECRET_KEY), "ap-guangzhou",
                                  ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=ses_fake.endpoint)))
    found = client.call_json("CreateReceiver", {"ReceiversName": "mine"})["Response"]["ReceiverId"]
    client.call_json("CreateReceiverDetail", {"ReceiverId": found, "Emails": ["a@example.com"]})
    return int(found)


def post(batch, receiver: int, subject: str, key: str) -> tuple[int, dict]:
    body = {"FromEmailAddress": "noreply@mail.example.com", "Subject": subject, "TaskType": 1,
            "Template": {"TemplateID": 100091, "TemplateData": {"code": "1"}}, "ReceiverId": receiver}
    result = batch(http_event(body, path="/batch", headers={"Idempotency-Key": key}), context())
    return result["statusCode"], json.loads(result["body"])


def task_ids(ses_fake, receiver: int) -> list[int]:
    """Every task the emulator created on the list."""
    return sorted(int(row["id"]) for row in ses_fake.store.tasks(None, receiver, None, 100, 0)[1])


def test_a_second_batch_on_the_same_list_and_subject_is_held_back_while_the_first_is_in_doubt(
        batch, ses_fake, receiver_id):
    ses_fake.drop_after("BatchSendEmail")
    assert post(batch, receiver_id, "News", "B1")[0] == 503
    status, body = post(batch, receiver_id, "News", "B2")
    assert (status, body["Error"]["Code"], body["Error"]["Outcome"]) == (503, "ResourceInUse.OutcomeInDoubt",
                                                                         "NotSent")
    # another subject on the same list is told apart by ListSendTasks: not held back
    assert post(batch, receiver_id, "Other news", "B3")[0] == 200


def test_two_batches_in_doubt_on_one_list_each_end_with_their_own_task(batch, ses_fake, receiver_id):
    # GIVEN B1's task created and its reply lost
    ses_fake.drop_after("BatchSendEmail")
    assert post(batch, receiver_id, "News", "B1")[0] == 503
    # AND, after B1's window, B2 (same list and subject) never reaching SES
    time.sleep(2.2)
    ses_fake.drop_before("BatchSendEmail")
    assert post(batch, receiver_id, "News", "B2")[0] == 503
    time.sleep(2.2)
    # WHEN both keys are repeated (B2 first)
    status2, body2 = post(batch, receiver_id, "News", "B2")
    status1, body1 = post(batch, receiver_id, "News", "B1")
    # THEN each has a task of its own, and B1's was not created twice
    assert (status1, status2) == (200, 200)
    assert sorted([body1["TaskId"], body2["TaskId"]]) == task_ids(ses_fake, receiver_id)
