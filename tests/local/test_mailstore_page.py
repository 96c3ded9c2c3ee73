"""Stored mail: real MIME messages in SQLite that survive a restart, the JSON API and the page."""

from __future__ import annotations

import base64
import email
import json
import os
import re
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from email import policy

import pytest

from local import mailpage
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


def test_the_page_is_a_static_shell_under_a_csp_that_allows_no_inline_script(ses, client):
    send(client, Subject="Newest <script>alert(1)</script>")
    status, headers, body = get(ses, "/")
    page = body.decode()
    assert (status, headers["Content-Type"]) == (200, "text/html; charset=utf-8")
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp  # "Clear all" cannot be clicked through another site's frame
    # No stored value is in the HTML at all: the script builds the list from the JSON API as text.
    assert "alert(1)" not in page
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", page, re.S)
    assert scripts == [(' src="/_local/page.js" defer', "")]
    assert not re.search(r"\s(on[a-z]+|style)\s*=", page)  # no inline handlers or styles either
    states = re.findall(r'<option value="([a-z]*)">', page)
    assert states == ["", *mailpage.STATES]
    for path, ctype in (("/_local/page.js", "text/javascript"), ("/_local/page.css", "text/css")):
        status, headers, body = get(ses, path)
        assert (status, headers["Content-Type"].split(";")[0]) == (200, ctype) and body
    script = get(ses, "/_local/page.js")[2].decode()
    assert not re.search(r"\.(inner|outer)HTML\b|insertAdjacentHTML|document\.write|eval\(|new Function", script)
    assert "http" not in re.sub(r"https?://(www\.)?w3\.org\S*", "", script)  # nothing fetched from elsewhere


def test_the_list_searches_by_recipient_subject_and_state(ses, client):
    send(client, to=("ada@example.com",), Subject="Welcome Ada")
    send(client, to=("complaint@example.com",), Subject="Weekly news")
    send(client, to=("bounce@example.com",), Cc=["carol@shop.example"], Subject="Order 100% shipped")
    send(client, to=("bob@example.com",), Subject="Order_1 shipped")

    def subjects(query):
        return [m["Subject"] for m in get_json(ses, "/_local/messages?" + query)["Messages"]]

    assert subjects("q=carol") == ["Order 100% shipped"]  # a Cc recipient counts
    assert subjects("q=ORDER") == ["Order_1 shipped", "Order 100% shipped"]  # newest first, any case
    assert subjects("q=order%20to:bob") == ["Order_1 shipped"]  # every term must hold
    assert subjects("q=%22100%25%20shipped%22") == ["Order 100% shipped"]  # a quoted phrase; % is literal
    assert subjects("q=subject:order_") == ["Order_1 shipped"]  # _ is literal too
    assert subjects("to=example.com&subject=we") == ["Weekly news", "Welcome Ada"]
    assert subjects("from=noreply@sesmail") == subjects("")
    assert subjects("q=noreply") == subjects("")  # a bare word matches the sender too
    assert subjects("state=spamreport") == ["Weekly news"]
    assert subjects("q=is:spam") == subjects("q=is:complaint") == ["Weekly news"]
    assert subjects("state=bounce") == subjects("q=is:bounced") == ["Order 100% shipped"]
    # a state is any recipient's: carol's copy of the bounced order was delivered
    assert subjects("state=delivered&q=order") == ["Order_1 shipped", "Order 100% shipped"]
    assert subjects("state=delivered&q=to:bounce@") == subjects("state=bounce")
    assert subjects("state=open") == []
    listing = get_json(ses, "/_local/messages?q=order&limit=1")
    assert (len(listing["Messages"]), listing["Total"]) == (1, 2)  # Total counts every match


def test_queued_means_no_delivery_outcome_yet_and_deferred_mail_moves_on(ses, client, clock):
    send(client, to=("deferred@example.com",), Subject="Later")
    assert [m["Badge"] for m in get_json(ses, "/_local/messages")["Messages"]] == ["deferred"]
    assert get_json(ses, "/_local/messages?state=queued")["Total"] == 0
    version = get_json(ses, "/_local/messages?limit=0")["Version"]
    clock.advance(ses.deferred_seconds + 1)  # the delivery comes due: nothing was written, yet it changed
    after = get_json(ses, "/_local/messages?limit=0")
    assert after["Version"] != version and after["Messages"] == []
    assert get_json(ses, "/_local/messages?state=delivered")["Messages"][0]["Badge"] == "delivered"


def test_since_lists_only_newer_mail_and_cursor_names_the_newest(ses, client):
    send(client, to=("ada@example.com",), Subject="First")
    cursor = get_json(ses, "/_local/messages?limit=0")["Cursor"]
    assert get_json(ses, f"/_local/messages?since={cursor}")["Messages"] == []
    send(client, to=("bob@example.com",), Subject="Second")
    newer = get_json(ses, f"/_local/messages?since={cursor}")
    assert ([m["Subject"] for m in newer["Messages"]], newer["Total"]) == (["Second"], 1)
    assert newer["Cursor"] == newer["Messages"][0]["Id"] > cursor


@pytest.mark.parametrize("query, code, words", [
    ("state=sent-ish", "InvalidParameterValue", ["`state` must be one of", "spamreport", "queued"]),
    ("q=is:nothing", "InvalidParameterValue", ["`q` must be one of"]),
    ("limit=1001", "InvalidParameterValue", ["`limit` must be a whole number from 0 to 1000"]),
    ("limit=-1", "InvalidParameterValue", ["`limit`"]),
    ("since=x", "InvalidParameterValue", ["`since` must be a whole number"]),
    ("offset=" + "9" * 40, "InvalidParameterValue", ["`offset` must be a whole number from 0 to"]),
    ("limit=%C2%B2", "InvalidParameterValue", ["`limit`"]),
    ("q=" + "+a" * 21, "InvalidParameterValue", ["at most 20 terms"]),
    ("status=bounce", "UnknownParameter", ["`status`", "state"]),
])
def test_a_bad_list_query_answers_400_naming_the_parameter(ses, query, code, words):
    status, body = request(ses, "GET", "/_local/messages?" + query)
    assert (status, body["Error"]["Code"]) == (400, code)
    for word in words:
        assert word in body["Error"]["Message"]


@pytest.mark.parametrize("events, badge", [
    ([], "queued"),
    (["deferred"], "deferred"),
    (["deferred", "delivered"], "delivered"),
    (["delivered", "open"], "open"),
    (["delivered", "open", "click"], "click"),
    (["delivered", "click", "bounce"], "bounce"),  # one recipient of several bounced
    (["delivered", "dropped"], "dropped"),
    (["delivered", "bounce", "unsubscribe"], "unsubscribe"),
    (["delivered", "open", "unsubscribe", "spamreport"], "spamreport"),
    (["delivered", "spamreport", "unsubscribe"], "spamreport"),
])
def test_the_badge_is_the_most_telling_event(events, badge):
    assert mailpage.badge_of([{"Event": name} for name in events]) == badge


def test_the_list_badge_shows_a_spam_report_and_state_stays_the_delivery(ses, client):
    send(client, to=("complaint@example.com",))
    send(client, to=("unsubscribe@example.com",))
    send(client, to=("ada@example.com", "bounce@example.com"))
    listed = [(m["To"][0], m["Badge"], m["State"]) for m in get_json(ses, "/_local/messages")["Messages"]]
    assert listed == [("ada@example.com", "bounce", "bounce"), ("unsubscribe@example.com", "unsubscribe", "delivered"),
                      ("complaint@example.com", "spamreport", "delivered")]


def request(emu, method, path, body=b"", headers=None):
    req = urllib.request.Request(emu.url + path, data=body if method not in ("GET", "HEAD") else None, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as reply:
            return reply.status, json.loads(reply.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


FORM = {"Content-Type": "application/x-www-form-urlencoded"}  # what `curl -d` sends


def test_the_events_endpoint_takes_what_curl_d_sends(ses, client):
    message_id = send(client, to=("ada@example.com", "bob@example.com"))
    path = f"/_local/messages/{message_id}/events"
    # curl -d kind=open
    status, body = request(ses, "POST", path, b"kind=open", FORM)
    assert (status, body["Event"]["event"], body["Event"]["email"]) == (200, "open", "ada@example.com")
    # curl -d Event=click -d Email=bob@example.com -d Link=https://shop.example/a
    form = b"Event=click&Email=bob%40example.com&Link=https%3A%2F%2Fshop.example%2Fa"
    status, body = request(ses, "POST", path, form, FORM)
    assert (status, body["Event"]["email"], body["Event"]["link"]) == (200, "bob@example.com", "https://shop.example/a")
    # curl -d '{"Event": "complaint"}' (JSON, though curl labels it a form)
    status, body = request(ses, "POST", path, b'{"Event": "complaint"}', FORM)
    assert (status, body["Event"]["event"]) == (200, "spamreport")
    # curl -H 'Content-Type: application/json' -d '{"event": "unsubscribe"}'
    status, body = request(ses, "POST", path, b'{"event": "unsubscribe"}', {"Content-Type": "application/json"})
    assert (status, body["Event"]["event"]) == (200, "unsubscribe")
    events = [(e["Event"], e["Email"]) for e in ses.message(message_id)["Events"]]
    assert events[-4:] == [("open", "ada@example.com"), ("click", "bob@example.com"),
                           ("spamreport", "ada@example.com"), ("unsubscribe", "ada@example.com")]
    assert ses.message(message_id)["Badge"] == "spamreport"


@pytest.mark.parametrize("body, headers, status, code, words", [
    (b"", FORM, 400, "MissingParameter", ["`Event` is required", "open", "curl -d Event=open", '{"Event"']),
    (b"Email=ada%40example.com", FORM, 400, "MissingParameter", ["`Event` is required"]),
    (b"kind=explode", FORM, 400, "InvalidParameterValue", ["`Event` must be one of", "softbounce"]),
    (b"event=open&colour=red", FORM, 400, "UnknownParameter", ["unknown field `colour`", "Event"]),
    (b"kind=open&Event=click", FORM, 400, "InvalidParameter", ["`Event` is given twice"]),
    (b'{"Event": "open", "Email": 5}', {"Content-Type": "application/json"}, 400, "InvalidParameterValue",
     ["`Email` must be a string"]),
    (b'{"Event": ', {"Content-Type": "application/json"}, 400, "InvalidParameter", ["not valid JSON"]),
    (b'["open"]', {"Content-Type": "application/json"}, 400, "InvalidParameter", ["must be an object"]),
    (b"\xff\xfe", FORM, 400, "InvalidParameter", ["not UTF-8"]),
    (b"<Event>open</Event>", {"Content-Type": "application/xml"}, 400, "InvalidParameter",
     ["application/x-www-form-urlencoded"]),
    (b"kind=open&email=mallory%40evil.example", FORM, 400, "InvalidParameterValue", ["`Email` must be a recipient"]),
])
def test_the_events_endpoint_says_what_it_needs(ses, client, body, headers, status, code, words):
    message_id = send(client)
    answer = request(ses, "POST", f"/_local/messages/{message_id}/events", body, headers)
    assert (answer[0], answer[1]["Error"]["Code"]) == (status, code)
    for word in words:
        assert word in answer[1]["Error"]["Message"]
    assert "mallory" not in answer[1]["Error"]["Message"]  # an address is never echoed
    assert [e["Event"] for e in ses.message(message_id)["Events"]] == ["delivered"]


def test_the_events_endpoint_of_an_unknown_mail_or_with_get_says_so(ses, client):
    message_id = send(client)
    assert request(ses, "POST", "/_local/messages/999/events", b"kind=open", FORM)[0] == 404
    status, body = request(ses, "GET", f"/_local/messages/{message_id}/events")
    assert (status, body["Error"]["Code"]) == (405, "UnsupportedOperation")
    assert "POST" in body["Error"]["Message"]


def test_another_web_origin_cannot_clear_or_fake_mail(ses, client):
    message_id = send(client)
    evil = {"Origin": "http://evil.example", **FORM}
    assert request(ses, "POST", f"/_local/messages/{message_id}/events", b"kind=complaint", evil)[0] == 403
    assert request(ses, "DELETE", "/_local/messages", headers={"Origin": "null"})[0] == 403
    assert request(ses, "DELETE", "/_local/messages", headers={"Sec-Fetch-Site": "cross-site"})[0] == 403
    assert [e["Event"] for e in ses.message(message_id)["Events"]] == ["delivered"]
    own = {"Origin": ses.url, "Sec-Fetch-Site": "same-origin"}  # the page itself
    assert request(ses, "DELETE", "/_local/messages", headers=own) == (200, {"Deleted": 1})


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
