"""Stored mail: real MIME messages in SQLite that survive a restart, the JSON API and the page."""

from __future__ import annotations

import base64
import email
import json
import os
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from email import policy

import pytest

from local.ses_emulator import SesEmulator
from tests.local.conftest import ROOT
from tests.local.helpers import SECRET_ID, SECRET_KEY, call, make_client, template_data


def send(client, to=("ada@example.com",), **overrides):
    params = {"FromEmailAddress": "Shop <noreply@sesmail.local>", "Destination": list(to), "Subject": "Order {{order}}",
              "Template": {"TemplateID": 1, "TemplateData": template_data(order="1001")}}
    params.update(overrides)
    return call(client, "SendEmail", params)["MessageId"]


def get(emu, path, method="GET"):
    request = urllib.request.Request(emu.url + path, method=method)
    with urllib.request.urlopen(request, timeout=10) as reply:
        return reply.status, dict(reply.headers), reply.read()


def get_json(emu, path, method="GET"):
    return json.loads(get(emu, path, method)[2])


def test_a_sent_mail_is_a_real_mime_message_with_every_part(ses, client):
    pdf = base64.b64encode(b"%PDF-1.4 invoice").decode()
    message_id = send(client, to=("ada@example.com", "bob@example.com"), Cc=["carol@example.com"],
                      Bcc=["audit@example.com"], ReplyToAddresses="help@shop.example",
                      Attachments=[{"FileName": "invoice.pdf", "Content": pdf}],
                      SmtpHeaders=json.dumps({"X-Campaign": "spring"}))
    raw = get(ses, f"/_local/messages/{message_id}/raw")[2]
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert msg["From"] == "Shop <noreply@sesmail.local>"
    assert msg["To"] == "ada@example.com, bob@example.com"
    assert (msg["Cc"], msg["Bcc"]) == ("carol@example.com", None)  # Bcc never shows in the headers
    assert (msg["Reply-To"], msg["Subject"], msg["X-Campaign"]) == ("help@shop.example", "Order 1001", "spring")
    assert msg["Message-ID"].endswith("@sesmail.local>") and msg["Date"]
    assert [p.get_content_type() for p in msg.walk()] == [
        "multipart/mixed", "multipart/alternative", "text/plain", "text/html", "application/pdf"]
    stored = ses.message(message_id)
    assert stored["Bcc"] == ["audit@example.com"]
    assert stored["Attachments"] == [{"FileName": "invoice.pdf", "ContentType": "application/pdf", "Size": 16,
                                      "Url": f"/_local/messages/{stored['Id']}/attachments/0"}]
    assert get(ses, stored["Attachments"][0]["Url"])[2] == b"%PDF-1.4 invoice"


def test_mail_survives_a_restart_of_an_emulator_with_a_data_dir(tmp_path):
    data = str(tmp_path / "data")
    with SesEmulator(SECRET_ID, SECRET_KEY, data_dir=data) as first:
        message_id = send(make_client(first))
        receiver_id = call(make_client(first), "CreateReceiver", {"ReceiversName": "kept"})["ReceiverId"]
    first.store.close()
    with SesEmulator(SECRET_ID, SECRET_KEY, data_dir=data) as second:
        assert [m["MessageId"] for m in second.sent] == [message_id]
        assert second.message("latest")["Subject"] == "Order 1001"
        listed = call(make_client(second), "ListReceivers", {"Offset": 0, "Limit": 10})["Data"]
        assert [r["ReceiverId"] for r in listed] == [receiver_id]
        day = _beijing_date(second.sent[0]["RequestTime"])
        rows = call(make_client(second), "GetSendEmailStatus", {"RequestDate": day, "MessageId": message_id,
                                                                "Offset": 0, "Limit": 10})["EmailStatusList"]
        assert [r["MessageId"] for r in rows] == [message_id]
    second.store.close()


def _beijing_date(unix):
    return datetime.fromtimestamp(unix, timezone(timedelta(hours=8))).strftime("%Y-%m-%d")


def test_the_json_api_lists_newest_first_with_latest_as_an_alias(ses, client):
    first = send(client)
    second = send(client, to=("bob@example.com",))
    listing = get_json(ses, "/_local/messages")
    assert [m["MessageId"] for m in listing["Messages"]] == [second, first]
    assert listing["Total"] == 2
    latest = get_json(ses, "/_local/messages/latest")
    assert (latest["MessageId"], latest["To"], latest["Subject"]) == (second, ["bob@example.com"], "Order 1001")
    assert (latest["TemplateID"], latest["TemplateName"], latest["TemplateData"]) == (1, "order", {"order": "1001"})
    assert "Your order 1001 is confirmed" in latest["Text"]
    assert "<strong>1001</strong>" in latest["Html"]
    by_id = get_json(ses, f"/_local/messages/{listing['Messages'][1]['Id']}")
    assert by_id["MessageId"] == first
    assert get_json(ses, "/_local/messages?limit=1")["Messages"][0]["MessageId"] == second


def test_delete_forgets_every_mail(ses, client):
    send(client)
    assert get_json(ses, "/_local/messages", method="DELETE") == {"Deleted": 1}
    assert get_json(ses, "/_local/messages")["Messages"] == []
    with pytest.raises(urllib.error.HTTPError) as info:
        get(ses, "/_local/messages/latest")
    assert info.value.code == 404
    assert json.loads(info.value.read())["Error"]["Code"] == "ResourceNotFound"


def test_the_templates_endpoint_lists_ids_and_variables(ses):
    with open(os.path.join(ROOT, "templates", "templates.json")) as handle:
        index = json.load(handle)
    templates = {t["TemplateName"]: t for t in get_json(ses, "/_local/templates")["Templates"]}
    assert {name: t["TemplateID"] for name, t in templates.items()} == index
    assert templates["order"]["Variables"] == ["order"]
    assert templates["digest"]["Variables"] == ["count", "titles"]
    assert templates["order"]["TemplateStatus"] == 0


def test_the_html_part_is_served_sandboxed(ses, client):
    send(client)
    status, headers, body = get(ses, "/_local/messages/latest/html")
    assert status == 200
    assert headers["Content-Security-Policy"].startswith("sandbox")
    assert b"<strong>1001</strong>" in body


def test_the_page_shows_the_newest_mail_with_its_buttons(ses, client):
    send(client, to=("bob@example.com",), Subject="Older mail")
    send(client, Subject="Newest <mail>")
    status, headers, body = get(ses, "/")
    page = body.decode()
    assert (status, headers["Content-Type"]) == (200, "text/html; charset=utf-8")
    assert page.index("Newest &lt;mail&gt;") < page.index("Older mail")
    assert '<iframe sandbox title="HTML part"' in page
    for kind in ("open", "click", "bounce", "complaint"):
        assert f'value="{kind}"' in page
    assert "http" not in page.split("<script>")[1].replace(ses.url, "")  # nothing fetched from elsewhere


def test_unknown_local_routes_answer_404_in_tencents_shape(ses):
    with pytest.raises(urllib.error.HTTPError) as info:
        get(ses, "/_local/nothing")
    assert info.value.code == 404
    assert json.loads(info.value.read())["Error"]["Code"] == "ResourceNotFound"
    assert get_json(ses, "/_local/health") == {"Status": "ok"}


def test_timers_need_the_local_stack(ses):
    with pytest.raises(urllib.error.HTTPError) as info:
        get(ses, "/_local/timers")
    assert info.value.code == 404
