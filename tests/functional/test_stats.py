"""GET /stats through the send function: mails sent and their callbacks, by day, template, sender
and domain, with SES's own report beside them on request (docs/deliverability.md#statistics)."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta

from sesmail import rules
from tests.events import context, http_event


def send_mail(send, sender: str, to: str, template: int = 100091, trigger: int = 1) -> str:
    payload = {"FromEmailAddress": sender, "Destination": [to], "Subject": "Hi",
               "Template": {"TemplateID": template, "TemplateData": "{}"}, "TriggerType": trigger}
    result = send(http_event(payload), context())
    assert result["statusCode"] == 200, result
    return json.loads(result["body"])["MessageId"]


def callback(webhook, items: list[dict]) -> None:
    result = webhook(http_event(items, path="/webhook", key=None, query={"token": "hook-secret-1"}), context())
    assert result["statusCode"] == 200, result


def stats(send, **query) -> dict:
    result = send(http_event(None, method="GET", path="/stats", query={k: str(v) for k, v in query.items()}),
                  context())
    assert result["statusCode"] == 200, result
    return json.loads(result["body"])


def test_statistics_count_each_mail_and_its_events_by_day_template_sender_and_domain(send, webhook):
    first = send_mail(send, "news@shop.example", "a@inbox.example")
    second = send_mail(send, "news@shop.example", "b@inbox.example", template=100092)
    third = send_mail(send, "team@help.example", "c@inbox.example")
    now = int(time.time())
    callback(webhook, [
        {"event": "delivered", "email": "a@inbox.example", "bulkId": first, "timestamp": now},
        {"event": "open", "email": "a@inbox.example", "bulkId": first, "timestamp": now},
        {"event": "open", "email": "a@inbox.example", "bulkId": first, "timestamp": now + 5},
        {"event": "click", "email": "a@inbox.example", "bulkId": first, "timestamp": now + 6, "link": "https://x"},
        {"event": "bounce", "email": "b@inbox.example", "bulkId": second, "bounceType": "hard_bounce",
         "timestamp": now},
        {"event": "spamreport", "email": "c@inbox.example", "bulkId": third, "timestamp": now}])
    callback(webhook, [{"event": "delivered", "email": "a@inbox.example", "bulkId": first, "timestamp": now}])

    by_day = stats(send, Days=7)
    assert (by_day["Days"], by_day["By"], len(by_day["Buckets"])) == (7, "day", 7)  # every day, empty or not
    today = by_day["Buckets"][-1]
    assert today["Key"] == datetime.now(rules.BEIJING).strftime("%Y-%m-%d")
    assert {k: today[k] for k in ("Sent", "Delivered", "HardBounces", "Complaints", "Opens", "Clicks")} == {
        "Sent": 3, "Delivered": 1, "HardBounces": 1, "Complaints": 1, "Opens": 1, "Clicks": 1}
    assert (today["DeliveryRate"], today["BounceRate"], today["ComplaintRate"]) == (0.333333, 0.333333, 0.333333)
    assert by_day["Buckets"][0]["Sent"] == 0 and by_day["Buckets"][0]["DeliveryRate"] is None

    by_template = {b["Key"]: b for b in stats(send, By="template")["Buckets"]}
    assert (by_template[100091]["Sent"], by_template[100092]["HardBounces"]) == (2, 1)
    by_sender = {b["Key"]: b["Sent"] for b in stats(send, By="sender")["Buckets"]}
    assert by_sender == {"news@shop.example": 2, "team@help.example": 1}
    by_domain = {b["Key"]: b["Complaints"] for b in stats(send, By="domain")["Buckets"]}
    assert by_domain == {"shop.example": 0, "help.example": 1}


def test_source_ses_puts_ses_s_own_report_beside_ours(send, ses_fake):
    send_mail(send, "news@shop.example", "a@inbox.example")
    answer = stats(send, Days=2, Source="ses")
    assert answer["Buckets"][-1]["Sent"] == 1
    assert answer["Ses"]["OverallVolume"]["RequestCount"] == 1
    call = [c for c in ses_fake.calls if c["Action"] == "GetStatisticsReport"][-1]
    today = datetime.now(rules.BEIJING)
    assert (call["Params"]["StartDate"], call["Params"]["EndDate"]) == (
        (today - timedelta(days=1)).strftime("%Y-%m-%d"), today.strftime("%Y-%m-%d"))
