"""The webhook function: SES callbacks stored once, suppression, status, erasure (docs/api.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from sesmail import config, store
from sesmail.errors import StoreUnavailable
from tests import db
from tests.conftest import ROOT, load_function
from tests.events import context, fixture, http_event, sample_send_payload

# Every callback sample Tencent has published (tests/fixtures/events/README.md).
SAMPLES = ["ses-callback-bounce.json", "ses-callback-click-lowercase-bulkid.json",
           "ses-callback-delivered-2020.json", "ses-callback-delivered-2021-empty-email.json"]
TOKEN = "hook-secret-1"


def callback(body, token: str | None = TOKEN, path: str = "/webhook", **kwargs) -> dict:
    return http_event(body, key=None, path=path, query={"token": token} if token is not None else {}, **kwargs)


def post(webhook, body, **kwargs) -> tuple[int, dict]:
    result = webhook(callback(body, **kwargs), context())
    assert result["statusCode"] != 500
    return result["statusCode"], json.loads(result["body"]) if result["body"] else {}


def status_of(send, message_id: str) -> tuple[int, dict]:
    result = send(http_event(None, method="GET", path=f"/messages/{message_id}"), context())
    return result["statusCode"], json.loads(result["body"])


def event_count() -> int:
    return db.count(config.load().database_url, "sesmail_events")


def sent_to(address: str, **changes) -> dict:
    payload = sample_send_payload()
    payload["Destination"] = [address]
    payload.update(changes)
    return payload


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_callback_is_stored_and_queryable(webhook, send, name):
    sample = fixture(name)
    status, body = post(webhook, sample)
    assert (status, body["Stored"]) == (200, 1)
    message_id = sample.get("bulkId") or sample.get("bulkid")
    status, found = status_of(send, message_id)
    assert status == 200
    assert found["Events"][0]["Event"] == sample["event"]
    assert found["Events"][0]["Email"] == (sample["email"] or None)  # the 2021 sample's "" is absent
    assert found["Events"][0]["Timestamp"] == sample["timestamp"]


def test_the_same_callback_delivered_three_times_is_stored_once(webhook):
    sample = fixture("ses-callback-bounce.json")
    results = [post(webhook, sample)[1] for _ in range(3)]
    assert [r["Stored"] for r in results] == [1, 0, 0]
    assert event_count() == 1


def test_concurrent_deliveries_of_one_callback_store_one_row(webhook):
    sample = fixture("ses-callback-delivered-2020.json")
    statuses = []
    threads = [threading.Thread(target=lambda: statuses.append(post(webhook, sample)[0])) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 6
    assert event_count() == 1


def test_an_array_of_callbacks_is_stored(webhook):
    status, body = post(webhook, [fixture(name) for name in SAMPLES])
    assert (status, body["Stored"], body["Duplicates"], body["Rejected"]) == (200, len(SAMPLES), 0, [])


def test_field_names_are_read_case_insensitively(webhook, send):
    post(webhook, {"EVENT": "delivered", "Email": "A@Example.com", "BULKID": "m-1", "TimeStamp": 10})
    status, found = status_of(send, "m-1")
    assert status == 200
    assert found["Events"] == [{"Event": "delivered", "Email": "a@example.com", "Timestamp": 10}]


def test_an_unknown_event_name_is_stored_under_its_own_name(webhook, send):
    post(webhook, {"event": "quarantined", "email": "a@example.com", "bulkId": "m-2"})
    assert status_of(send, "m-2")[1]["Events"][0]["Event"] == "quarantined"


def test_wrongly_typed_optional_fields_are_stored_as_absent(webhook, send):
    post(webhook, {"event": "click", "email": "a@example.com", "bulkId": "m-3", "timestamp": "soon",
                   "link": 5, "templateId": True})
    event = status_of(send, "m-3")[1]["Events"][0]
    assert event["Timestamp"] is None
    assert "Link" not in event and "TemplateId" not in event


@pytest.mark.parametrize("token", [None, "", "wrong", "hook-secret-1x"])
def test_a_wrong_or_missing_token_is_refused_and_nothing_stored(webhook, token):
    status, body = post(webhook, fixture("ses-callback-bounce.json"), token=token)
    assert status == 403
    assert body["Error"]["Code"] == "AuthFailure.UnauthorizedOperation"
    assert event_count() == 0


def test_both_rotated_secrets_are_accepted(webhook):
    assert post(webhook, fixture("ses-callback-bounce.json"), token="hook-secret-1")[0] == 200
    assert post(webhook, fixture("ses-callback-delivered-2020.json"), token="hook-secret-2")[0] == 200


def test_no_secret_configured_refuses_every_callback(webhook, monkeypatch):
    monkeypatch.setenv("SESMAIL_WEBHOOK_SECRETS", "")
    config.reset()
    assert post(webhook, fixture("ses-callback-bounce.json"), token="")[0] == 403


def test_a_callback_of_another_appid_is_refused(webhook, monkeypatch):
    monkeypatch.setenv("SESMAIL_APPID", "999")
    config.reset()
    status, body = post(webhook, fixture("ses-callback-bounce.json"))  # username 251200670
    assert (status, body["Error"]["Field"]) == (403, "username")
    assert event_count() == 0


def test_a_callback_of_our_appid_or_without_username_is_accepted(webhook, monkeypatch):
    monkeypatch.setenv("SESMAIL_APPID", "251200670")
    config.reset()
    assert post(webhook, fixture("ses-callback-bounce.json"))[0] == 200
    assert post(webhook, fixture("ses-callback-delivered-2020.json"))[0] == 200  # no username field


@pytest.mark.parametrize(("body", "code"), [
    ("not json", "InvalidParameter.JsonParseError"),
    ("42", "InvalidParameter"),
    ('"text"', "InvalidParameter"),
    ("null", "InvalidParameter"),
    ("[]", "MissingParameter"),
    ("[1, 2]", "InvalidParameter"),
    ('["x", null, [], [{"event": "delivered"}]]', "InvalidParameter"),  # no object at the top of the array
    ("", "MissingParameter"),
])
def test_a_body_holding_no_object_is_refused_with_400_and_nothing_stored(webhook, body, code):
    status, answer = post(webhook, body)
    assert (status, answer["Error"]["Code"]) == (400, code)
    assert event_count() == 0


@pytest.mark.parametrize(("body", "code"), [
    ({"email": "a@example.com"}, "MissingParameter"),
    ({"event": "", "email": "a@example.com"}, "MissingParameter"),
    ({"event": "  "}, "MissingParameter"),
    ({"event": 1}, "MissingParameter"),
    ({"event": None}, "MissingParameter"),
    ({"event": ["delivered"]}, "MissingParameter"),
    ({"event": "e" * 65}, "InvalidParameterValue"),
    ({"event": "deli\u0000vered"}, "InvalidParameterValue"),
])
def test_a_single_object_without_a_usable_event_is_refused_with_400_naming_event(webhook, body, code):
    status, answer = post(webhook, body)
    assert (status, answer["Error"]["Code"], answer["Error"]["Field"]) == (400, code, "event")
    assert event_count() == 0


@pytest.mark.parametrize(("shape", "base64_body"), [("apigw", False), ("apigw", True)])
def test_api_gateway_events_are_accepted(webhook, shape, base64_body):
    status, _ = post(webhook, fixture("ses-callback-bounce.json"), shape=shape, base64_body=base64_body)
    assert status == 200


def test_callbacks_are_taken_on_any_path(webhook):
    assert post(webhook, fixture("ses-callback-bounce.json"), path="/ses/callback/v1")[0] == 200


def test_head_answers_200_on_any_path(webhook):
    assert webhook(http_event(None, method="HEAD", path="/anything", key=None), context())["statusCode"] == 200


def test_get_is_not_a_callback(webhook):
    assert webhook(callback(None, method="GET"), context())["statusCode"] == 405


def test_a_store_outage_answers_503_and_stores_nothing(webhook, monkeypatch):
    def down(*args, **kwargs):
        raise StoreUnavailable("the database is unavailable")

    with monkeypatch.context() as patch:  # undone alone: the environment stays the test's
        patch.setattr(store.sql.SqlStore, "ingest_events", down)
        status, body = post(webhook, fixture("ses-callback-delivered-2020.json"))
    assert (status, body["Error"]["Code"]) == (503, "ResourceUnavailable.Store")
    assert event_count() == 0


# --- arrays, item by item ---

GOOD = {"event": "delivered", "email": "a@example.com", "bulkId": "m-arr", "timestamp": 1}
# Items no callback can be: not an object, or no usable `event`.
BAD_ITEMS = [7, "delivered", None, [], [GOOD], True, {}, {"email": "a@example.com", "bulkId": "m-arr"},
             {"event": ""}, {"event": " "}, {"event": 5}, {"event": None}, {"event": {"name": "open"}},
             {"event": ["open"]}, {"event": "e" * 65}, {"event": "open\u0000"}]


def good(n: int) -> dict:
    return dict(GOOD, timestamp=n)


@pytest.mark.parametrize("bad", BAD_ITEMS, ids=[f"bad{n}" for n in range(len(BAD_ITEMS))])
@pytest.mark.parametrize("position", [0, 2, 4])
def test_a_bad_item_is_named_and_never_costs_the_good_ones(webhook, send, bad, position):
    items: list = [good(n) for n in range(4)]
    items.insert(position, bad)
    status, body = post(webhook, items)
    assert (status, body) == (200, {"Stored": 4, "Duplicates": 0, "Rejected": [position], "RequestId": "req-test"})
    assert sorted(e["Timestamp"] for e in status_of(send, "m-arr")[1]["Events"]) == [0, 1, 2, 3]


def test_several_bad_items_are_named_in_order(webhook):
    items = [7, good(1), {"event": ""}, {"email": "x@example.com"}, good(2), None]
    status, body = post(webhook, items)
    assert (status, body["Stored"], body["Rejected"]) == (200, 2, [0, 2, 3, 5])
    assert event_count() == 2


def test_an_array_of_only_bad_objects_answers_200_with_every_index_rejected(webhook):
    # SES documents no retry and reads nothing from an answer: a 400 would tell nobody anything the
    # 200's Rejected does not, so an array holding an object is always judged item by item.
    status, body = post(webhook, [{"email": "a@example.com"}, 3, {"event": ""}])
    assert (status, body["Stored"], body["Duplicates"], body["Rejected"]) == (200, 0, 0, [0, 1, 2])
    assert event_count() == 0


def test_the_same_array_delivered_twice_is_stored_once(webhook):
    items = [fixture(name) for name in SAMPLES] + [{"event": ""}]
    first, second = post(webhook, items)[1], post(webhook, items)[1]
    assert (first["Stored"], first["Duplicates"], first["Rejected"]) == (len(SAMPLES), 0, [len(SAMPLES)])
    assert (second["Stored"], second["Duplicates"], second["Rejected"]) == (0, len(SAMPLES), [len(SAMPLES)])
    assert event_count() == len(SAMPLES)


def test_a_repeat_inside_one_array_is_stored_once(webhook):
    status, body = post(webhook, [good(1), good(1), good(2)])
    assert (status, body["Stored"], body["Duplicates"], body["Rejected"]) == (200, 2, 1, [])


def test_a_single_callback_answers_with_an_empty_rejected_list(webhook):
    assert post(webhook, good(1))[1] == {"Stored": 1, "Duplicates": 0, "Rejected": [], "RequestId": "req-test"}


def test_an_array_item_of_another_appid_is_named_and_the_rest_stored(webhook, monkeypatch):
    monkeypatch.setenv("SESMAIL_APPID", "251200670")
    config.reset()
    items = [dict(good(1), username="251200670"), dict(good(2), username="999"), good(3),
             dict(good(4), username=251200670), dict(good(5), username="")]
    status, body = post(webhook, items)
    assert (status, body["Stored"], body["Rejected"]) == (200, 4, [1])


def test_a_store_outage_during_an_array_with_bad_items_answers_503_and_stores_nothing(webhook, monkeypatch):
    def down(*args, **kwargs):
        raise StoreUnavailable("the database is unavailable")

    with monkeypatch.context() as patch:  # undone alone: the environment stays the test's
        patch.setattr(store.sql.SqlStore, "ingest_events", down)
        status, body = post(webhook, [good(1), 7, good(2)])
    assert (status, body["Error"]["Code"]) == (503, "ResourceUnavailable.Store")
    assert event_count() == 0


# --- absent addresses ---

@pytest.mark.parametrize("email", ["", "   ", None, 42, ["a@example.com"], "a" * 400 + "@example.com",
                                   "a\u0000@example.com", "MISSING"])
def test_a_callback_without_a_usable_address_is_stored_with_the_address_absent(webhook, send, email):
    sample = {"event": "bounce", "bulkId": "m-noaddr", "bounceType": "hard_bounce", "timestamp": 5}
    if email != "MISSING":
        sample["email"] = email
    assert post(webhook, sample)[1]["Stored"] == 1
    assert post(webhook, sample)[1]["Stored"] == 0  # its identity still dedupes it
    status, found = status_of(send, "m-noaddr")
    assert (status, found["State"]) == (200, "bounce")
    assert found["Events"] == [{"Event": "bounce", "Email": None, "Timestamp": 5, "BounceType": "hard_bounce"}]


def test_an_event_without_an_address_suppresses_nothing(webhook, send):
    for event in (bounce(""), {"event": "spamreport"}, {"event": "unsubscribe", "email": ""}):
        assert post(webhook, event)[0] == 200
    listing = send(http_event(None, method="GET", path="/suppressions"), context())
    assert json.loads(listing["body"])["Suppressions"] == []


def test_the_2021_sample_with_an_empty_email_is_stored(webhook, send):
    sample = fixture("ses-callback-delivered-2021-empty-email.json")
    assert post(webhook, sample)[1] == {"Stored": 1, "Duplicates": 0, "Rejected": [], "RequestId": "req-test"}
    found = status_of(send, sample["bulkId"])[1]
    assert (found["State"], found["Events"][0]["Email"]) == ("delivered", None)


def test_the_reconcile_job_stores_a_status_row_without_an_address(env, send, ses_fake, monkeypatch):
    batch = load_function("batch").main_handler
    message_id = json.loads(send(http_event(sample_send_payload()), context())["body"])["MessageId"]
    status = ses_fake.actions["GetSendEmailStatus"]

    def without_addresses(params):
        answer = status(params)
        for row in answer.get("EmailStatusList") or []:
            row.pop("ToEmailAddress", None)
        return answer

    monkeypatch.setitem(ses_fake.actions, "GetSendEmailStatus", without_addresses)
    monkeypatch.setenv("SESMAIL_RECONCILE_AFTER", "0")
    config.reset()
    timer = {"Type": "Timer", "TriggerName": "reconcile", "Time": "2026-11-23T01:00:00Z",
             "Message": json.dumps({"Job": "reconcile"})}
    assert json.loads(batch(timer, context())["body"])["Result"]["Stored"] >= 1
    found = status_of(send, message_id)[1]
    assert found["State"] == "delivered"
    assert {event["Email"] for event in found["Events"]} == {None}


# --- State: the furthest delivery state reached, by rank ---

@pytest.mark.parametrize(("arrivals", "state"), [
    # (event, timestamp) in the order they arrive; arrival order and timestamps may disagree
    ([("bounce", 20), ("delivered", 30)], "bounce"),
    ([("bounce", 30), ("delivered", 20)], "bounce"),
    ([("delivered", 20), ("processed", 30)], "delivered"),
    ([("delivered", 20), ("processed", 10)], "delivered"),
    ([("delivered", 20), ("deferred", 30)], "delivered"),
    ([("bounce", 20), ("open", 30), ("click", 40), ("unsubscribe", 50), ("spamreport", 60)], "bounce"),
    ([("dropped", 20), ("bounce", 30)], "dropped"),
    ([("bounce", 20), ("dropped", 30)], "bounce"),
    ([("dropped", 30), ("bounce", 20)], "bounce"),  # the earlier in the message's history stays
    ([("processed", 10), ("deferred", 20), ("quarantined", 30)], "deferred"),
    ([("deferred", 30), ("processed", 10)], "deferred"),
    ([("delivered", 20), ("delivered", 20), ("processed", None)], "delivered"),
    ([("open", 10), ("click", 20)], "sent"),
    ([("Delivered", 10)], "delivered"),
])
def test_the_state_is_the_furthest_delivery_state_reached(webhook, send, arrivals, state):
    for name, timestamp in arrivals:
        callback_ = {"event": name, "email": "a@example.com", "bulkId": "m-rank"}
        if timestamp is not None:
            callback_["timestamp"] = timestamp
        assert post(webhook, callback_)[0] == 200
    assert status_of(send, "m-rank")[1]["State"] == state


def test_the_state_holds_whether_events_come_one_by_one_or_in_one_array(webhook, send):
    post(webhook, [{"event": name, "email": "a@example.com", "bulkId": "m-one", "timestamp": ts}
                   for name, ts in (("delivered", 30), ("bounce", 20), ("processed", 40), ("open", 50))])
    assert status_of(send, "m-one")[1]["State"] == "bounce"


# --- suppression (docs/api.md) ---

def bounce(address: str, bounce_type: str = "hard_bounce") -> dict:
    return {"event": "bounce", "email": address, "bulkId": "b-1", "bounceType": bounce_type, "timestamp": 1}


@pytest.mark.parametrize("event", [bounce("gone@example.com"), bounce("gone@example.com", "hard"),
                                   {"event": "spamreport", "email": "gone@example.com"}])
def test_a_hard_bounce_or_spam_report_blocks_every_mail_to_the_address(webhook, send, ses_fake, event):
    post(webhook, event)
    for trigger_type in (0, 1):
        result = send(http_event(sent_to("Gone@Example.com", TriggerType=trigger_type)), context())
        error = json.loads(result["body"])["Error"]
        assert (result["statusCode"], error["Code"], error["Field"]) == (
            403, "FailedOperation.EmailAddrInBlacklist", "Destination[0]")
        assert "gone@" not in error["Message"].lower()
    assert ses_fake.calls == []


def test_an_unsubscribe_blocks_marketing_mail_only(webhook, send, ses_fake):
    post(webhook, {"event": "unsubscribe", "email": "bye@example.com"})
    marketing = send(http_event(sent_to("bye@example.com")), context())
    assert marketing["statusCode"] == 403
    assert json.loads(marketing["body"])["Error"]["Code"] == "FailedOperation.ReceiverHasUnsubscribed"
    transactional = send(http_event(sent_to("bye@example.com", TriggerType=1)), context())
    assert transactional["statusCode"] == 200
    assert len(ses_fake.sent) == 1


@pytest.mark.parametrize("event", [bounce("soft@example.com", "soft_bounce"),
                                   {"event": "deferred", "email": "soft@example.com"},
                                   {"event": "dropped", "email": "soft@example.com"}])
def test_soft_bounces_deferrals_and_drops_do_not_suppress(webhook, send, event):
    post(webhook, event)
    assert send(http_event(sent_to("soft@example.com")), context())["statusCode"] == 200


@pytest.mark.parametrize("field", ["Cc", "Bcc"])
def test_cc_and_bcc_are_checked_too(webhook, send, field):
    post(webhook, bounce("gone@example.com"))
    payload = sample_send_payload()
    payload[field] = ["fine@example.com", "gone@example.com"]
    result = send(http_event(payload), context())
    assert (result["statusCode"], json.loads(result["body"])["Error"]["Field"]) == (403, f"{field}[1]")


def test_suppressions_are_listed_added_and_removed_through_send(send, ses_fake):
    def call(method, path, body=None):
        result = send(http_event(body, method=method, path=path), context())
        return result["statusCode"], json.loads(result["body"])

    assert call("PUT", "/suppressions/Manual%40Example.com", {"Scope": "marketing"})[0] == 200
    status, listing = call("GET", "/suppressions")
    assert status == 200
    assert listing["Suppressions"][0]["Email"] == "manual@example.com"
    assert listing["Suppressions"][0]["Scope"] == "marketing"
    assert send(http_event(sent_to("manual@example.com")), context())["statusCode"] == 403
    assert call("DELETE", "/suppressions/manual@example.com")[0] == 200
    assert call("DELETE", "/suppressions/manual@example.com")[0] == 404
    assert send(http_event(sent_to("manual@example.com")), context())["statusCode"] == 200


def test_a_bad_suppression_request_is_refused(send):
    assert send(http_event({"Scope": "some"}, method="PUT", path="/suppressions/a@example.com"),
                context())["statusCode"] == 400
    assert send(http_event(None, method="PUT", path="/suppressions/not-an-address"), context())["statusCode"] == 400
    assert send(http_event(None, method="GET", path="/suppressions", key=None), context())["statusCode"] == 401


# --- status, erasure, the user's hook ---

def test_message_status_summarises_delivery_events_in_time_order(webhook, send):
    post(webhook, [{"event": "open", "email": "a@example.com", "bulkId": "m-9", "timestamp": 30},
                   {"event": "delivered", "email": "a@example.com", "bulkId": "m-9", "timestamp": 20},
                   {"event": "deferred", "email": "a@example.com", "bulkId": "m-9", "timestamp": 10}])
    status, found = status_of(send, "m-9")
    assert status == 200
    assert [e["Event"] for e in found["Events"]] == ["deferred", "delivered", "open"]
    assert found["State"] == "delivered"


def test_a_sent_message_without_events_is_known_as_sent(send):
    message_id = json.loads(send(http_event(sample_send_payload()), context())["body"])["MessageId"]
    assert status_of(send, message_id) == (200, {"MessageId": message_id, "State": "sent", "Events": [],
                                                 "RequestId": "req-test"})


def test_an_unknown_message_is_404(send):
    assert status_of(send, "nope")[0] == 404


def test_erasing_an_address_removes_its_events_but_keeps_it_suppressed(webhook, send):
    post(webhook, bounce("gone@example.com"))
    result = send(http_event(None, method="DELETE", path="/addresses/gone%40example.com"), context())
    assert result["statusCode"] == 200
    assert json.loads(result["body"])["Erased"]["Events"] == 1
    assert json.loads(result["body"])["SuppressionsKept"] == 1
    assert status_of(send, "b-1")[0] == 404
    refused = send(http_event(sent_to("gone@example.com")), context())
    assert (refused["statusCode"], json.loads(refused["body"])["Error"]["Code"]) == (
        403, "FailedOperation.EmailAddrInBlacklist")


def test_the_event_hook_sees_each_stored_event_and_its_failure_loses_nothing(webhook, monkeypatch, tmp_path):
    (tmp_path / "myhooks.py").write_text(
        "seen = []\n"
        "def on_event(event):\n"
        "    seen.append(event)\n"
        "    raise RuntimeError('the hook is broken')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    settings_file = tmp_path / "sesmail.json"
    settings_file.write_text(json.dumps({"EventHook": "myhooks:on_event"}))
    monkeypatch.setenv("SESMAIL_CONFIG", str(settings_file))
    config.reset()
    status, body = post(webhook, fixture("ses-callback-bounce.json"))
    assert (status, body["Stored"]) == (200, 1)
    import myhooks

    assert [event["Event"] for event in myhooks.seen] == ["bounce"]
    assert event_count() == 1


def test_the_webhook_never_imports_the_ses_sdk(env):
    code = ("import json, sys, io, contextlib, index\n"
            f"event = {callback(fixture('ses-callback-bounce.json'))!r}\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    result = index.main_handler(event, {})\n"
            "assert result['statusCode'] == 200, result\n"
            "print(sorted(m for m in sys.modules if m.startswith(('tencentcloud', 'requests', 'urllib3',"
            " 'sesmail.ses', 'sesmail.smtp', 'sesmail.transport'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.join(ROOT, "functions", "webhook"),
                         env=dict(os.environ, PYTHONPATH=os.path.join(ROOT, "functions", "webhook") + os.pathsep
                                  + os.path.join(ROOT, "layers", "sesmail")))
    assert out.stdout.strip() == "[]"
