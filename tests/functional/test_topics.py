"""Topics and one-click unsubscribe through the handlers (docs/topics.md): the headers on marketing
mail and not on transactional, the one-recipient rule, the one-click POST in both encodings, the
topic-only effect, the preference page, bad and rotated tokens, batch and digest recipients."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from sesmail import batching, config, store, topics, transport
from tests.conftest import load_function
from tests.events import context, http_event

PUBLIC_URL = "https://hooks.example.com/mail"
SECRET = "unsubscribe-secret-one-0123456789"
OLD_SECRET = "unsubscribe-secret-old-0123456789"
READER = "reader@example.com"
TOPICS = {"news": {"DisplayName": "Product news", "Description": "What we shipped this month",
                   "Translations": {"zh": {"DisplayName": "产品新闻"}}},
          "offers": {"DisplayName": "Offers"}}


@pytest.fixture
def topic_env(env, tmp_path, monkeypatch):
    settings_file = tmp_path / "topics.json"
    settings_file.write_text(json.dumps({"Templates": {"welcome": 100091}, "Topics": TOPICS, "Digests": {"daily": {
        "FromEmailAddress": "Digest <digest@mail.example.com>", "Subject": "Your day",
        "Template": {"TemplateName": "welcome"}, "Topic": "news",
        "TemplateData": {"count": "length(@)"}}}}))
    monkeypatch.setenv("SESMAIL_CONFIG", str(settings_file))
    monkeypatch.setenv("SESMAIL_PUBLIC_URL", PUBLIC_URL)
    monkeypatch.setenv("SESMAIL_UNSUBSCRIBE_SECRETS", SECRET)
    monkeypatch.setattr(transport, "BACKOFF_BASE_S", 0.001)
    monkeypatch.setattr(batching, "POLL_FIRST_S", 0.01)
    config.reset()
    return env


@pytest.fixture
def handlers(topic_env):
    return {name: load_function(name).main_handler for name in ("send", "batch", "webhook")}


def mail(**changes) -> dict:
    out = {"FromEmailAddress": "noreply@mail.example.com", "Destination": [READER], "Subject": "News",
           "Template": {"TemplateID": 100091, "TemplateData": {"code": "1"}}, "Topic": "news"}
    out.update(changes)
    return {key: value for key, value in out.items() if value is not None}


def answer(result: dict) -> tuple[int, dict]:
    assert result["statusCode"] != 500, result
    body = result["body"]
    if result["headers"].get("Content-Type", "").startswith("text/html"):
        return result["statusCode"], {"Html": body}
    return result["statusCode"], json.loads(body) if body else {}


def send(handlers, payload, key="dev-key") -> tuple[int, dict]:
    return answer(handlers["send"](http_event(payload, key=key), context()))


def token_of(sent: dict) -> str:
    header = json.loads(sent["SmtpHeaders"])["List-Unsubscribe"]
    assert header.startswith("<") and header.endswith(">")
    return parse_qs(urlsplit(header[1:-1]).query)["t"][0]


def sent_token(handlers, ses_fake, **changes) -> str:
    status, _ = send(handlers, mail(**changes))
    assert status == 200
    return token_of(ses_fake.sent[-1])


def reader_event(path: str, token: str | None, method: str = "GET", body: str | None = None,
                 content_type: str | None = None, language: str | None = None) -> dict:
    headers = {"content-type": content_type or "text/plain"}
    if language:
        headers["accept-language"] = language
    return http_event(body, method=method, path=path, key=None, headers=headers,
                      query={} if token is None else {"t": token})


def one_click(handlers, token, encoding="urlencoded") -> tuple[int, dict]:
    if encoding == "urlencoded":
        event = reader_event("/unsubscribe", token, "POST", "List-Unsubscribe=One-Click",
                             "application/x-www-form-urlencoded")
    else:  # what Gmail sends: multipart/form-data
        boundary = "----sesmailBoundary7MA4YWxk"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n"
                f"One-Click\r\n--{boundary}--\r\n")
        event = reader_event("/unsubscribe", token, "POST", body, f"multipart/form-data; boundary={boundary}")
    return answer(handlers["webhook"](event, context()))


def scopes(address=READER) -> set[str]:
    settings = config.load()
    from sesmail.addresses import address_hash

    return store.open_store(settings.database_url).suppression_scopes(address, address_hash(None, address))


# --- what a mail gets ---

def test_marketing_mail_gets_both_headers_and_a_preferences_url_without_the_word_unsubscribe(handlers, ses_fake):
    status, _ = send(handlers, mail(SmtpHeaders={"X-Campaign": "nov"}))
    assert status == 200
    sent = ses_fake.sent[-1]
    assert "Topic" not in sent  # sesmail's extension never reaches SES
    headers = json.loads(sent["SmtpHeaders"])
    assert headers["X-Campaign"] == "nov"
    assert headers["List-Unsubscribe"].startswith(f"<{PUBLIC_URL}/unsubscribe?t=")
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    data = json.loads(sent["Template"]["TemplateData"])
    assert data["code"] == "1"
    preferences = urlsplit(data["preferences_url"])
    assert data["preferences_url"].startswith(PUBLIC_URL + "/preferences?t=")
    assert "unsubscribe" not in preferences.path.lower()
    assert parse_qs(preferences.query)["t"][0] == token_of(sent)
    # the address is not readable from the URL, and the token names the topic
    assert READER not in headers["List-Unsubscribe"] and "reader" not in headers["List-Unsubscribe"].lower()
    assert topics.open_token([SECRET], token_of(sent)).topic == "news"


def test_transactional_mail_gets_no_unsubscribe_header_and_ignores_topic_unsubscribes(handlers, ses_fake):
    token = sent_token(handlers, ses_fake)
    assert one_click(handlers, token)[0] == 200
    status, _ = send(handlers, mail(TriggerType=1, Destination=[READER, "other@example.com"],
                                    Unsubscribe="3"))  # the one-click rules are for marketing mail
    assert status == 200
    sent = ses_fake.sent[-1]
    assert "SmtpHeaders" not in sent
    assert "preferences_url" not in json.loads(sent["Template"]["TemplateData"])


@pytest.mark.parametrize("trigger", [0, 1])
def test_an_unknown_topic_is_refused_on_any_mail(handlers, ses_fake, trigger):
    status, body = send(handlers, mail(Topic="nope", TriggerType=trigger))
    assert (status, body["Error"]["Code"], body["Error"]["Field"]) == (
        400, "InvalidParameterValue.UnknownTopic", "Topic")
    assert ses_fake.calls == []


@pytest.mark.parametrize(("changes", "field"), [
    ({"Destination": [READER, "two@example.com"]}, "Destination"),
    ({"Cc": ["two@example.com"]}, "Cc"),
    ({"Bcc": ["two@example.com"]}, "Bcc"),
    ({"Topic": None, "Destination": [READER, "two@example.com"]}, "Destination"),
])
def test_marketing_mail_with_one_click_has_exactly_one_recipient(handlers, ses_fake, changes, field):
    status, body = send(handlers, mail(**changes))
    assert (status, body["Error"]["Code"], body["Error"]["Field"]) == (
        400, "InvalidParameterValue.OneRecipientForUnsubscribe", field)
    assert ses_fake.calls == []


def test_marketing_mail_may_not_also_ask_for_ses_own_unsubscribe_link(handlers, ses_fake):
    status, body = send(handlers, mail(Unsubscribe="2"))
    assert (status, body["Error"]["Code"], body["Error"]["Field"]) == (
        400, "InvalidParameterValue.UnsubscribeConflict", "Unsubscribe")
    assert send(handlers, mail(Unsubscribe="0"))[0] == 200


@pytest.mark.parametrize("name", ["List-Unsubscribe", "list-unsubscribe-post", " LIST-UNSUBSCRIBE"])
@pytest.mark.parametrize("trigger", [0, 1])
def test_the_caller_cannot_set_the_two_headers(handlers, ses_fake, name, trigger):
    status, body = send(handlers, mail(TriggerType=trigger, SmtpHeaders={name.strip(): "<https://evil.example/u>"}))
    assert (status, body["Error"]["Code"], body["Error"]["Field"]) == (
        400, "InvalidParameterValue.ReservedHeader", "SmtpHeaders")
    assert ses_fake.calls == []


def test_without_the_two_settings_no_header_is_added(handlers, ses_fake, monkeypatch):
    monkeypatch.delenv("SESMAIL_PUBLIC_URL")
    monkeypatch.delenv("SESMAIL_UNSUBSCRIBE_SECRETS")
    config.reset()
    assert send(handlers, mail(Destination=[READER, "two@example.com"]))[0] == 200
    assert "SmtpHeaders" not in ses_fake.sent[-1]
    assert answer(handlers["webhook"](reader_event("/preferences", "x"), context()))[0] == 404


# --- one click ---

@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_stops_that_topic_and_only_that_topic(handlers, ses_fake, encoding):
    token = sent_token(handlers, ses_fake)
    status, body = one_click(handlers, token, encoding)
    assert (status, body["Unsubscribed"], body["Topic"]) == (200, True, "news")
    status, body = send(handlers, mail())
    assert (status, body["Error"]["Code"]) == (403, "FailedOperation.ReceiverHasUnsubscribed")
    assert READER not in json.dumps(body)
    assert send(handlers, mail(Topic="offers"))[0] == 200
    assert send(handlers, mail(Topic=None))[0] == 200
    assert send(handlers, mail(TriggerType=1))[0] == 200


def test_one_click_without_a_topic_stops_all_marketing_mail(handlers, ses_fake):
    token = sent_token(handlers, ses_fake, Topic=None)
    assert one_click(handlers, token, "multipart")[0] == 200
    for topic in ("news", "offers", None):
        assert send(handlers, mail(Topic=topic))[0] == 403
    assert send(handlers, mail(TriggerType=1))[0] == 200


def test_one_click_stores_an_event_that_the_message_history_shows(handlers, ses_fake):
    token = sent_token(handlers, ses_fake)
    message_id = ses_fake.sent[-1]["MessageId"]
    assert one_click(handlers, token)[0] == 200
    assert one_click(handlers, token)[0] == 200  # a provider that posts twice: stored once
    status, body = answer(handlers["send"](http_event(None, method="GET", path=f"/messages/{message_id}"),
                                           context()))
    assert status == 200
    clicks = [event for event in body["Events"] if event.get("Source") == "one-click"]
    assert len(clicks) == 1
    assert clicks[0]["Event"] == "unsubscribe" and clicks[0]["Topic"] == "news"
    assert clicks[0]["Email"] == READER


def test_one_click_counts_once_in_the_statistics_unsubscribes(handlers, ses_fake):
    token = sent_token(handlers, ses_fake)
    message_id = ses_fake.sent[-1]["MessageId"]
    assert one_click(handlers, token)[0] == 200
    assert one_click(handlers, token)[0] == 200

    def unsubscribes() -> dict:
        status, body = answer(handlers["send"](http_event(None, method="GET", path="/stats",
                                                          query={"By": "sender"}), context()))
        assert status == 200
        return {b["Key"]: b["Unsubscribes"] for b in body["Buckets"]}

    assert unsubscribes() == {"noreply@mail.example.com": 1}
    # SES's own unsubscribe event for the same mail and reader adds nothing more.
    result = handlers["webhook"](http_event([{"event": "unsubscribe", "email": READER, "bulkId": message_id,
                                              "timestamp": int(time.time())}], path="/webhook", key=None,
                                            query={"token": "hook-secret-1"}), context())
    assert result["statusCode"] == 200, result
    assert unsubscribes() == {"noreply@mail.example.com": 1}


def test_one_click_is_never_a_redirect_and_needs_the_rfc_body(handlers, ses_fake):
    token = sent_token(handlers, ses_fake)
    status, body = answer(handlers["webhook"](reader_event("/unsubscribe", token, "POST", "",
                                                           "application/x-www-form-urlencoded"), context()))
    assert (status, body["Error"]["Field"]) == (400, "List-Unsubscribe")
    assert scopes() == set()
    result = handlers["webhook"](reader_event("/unsubscribe", token, "POST", "List-Unsubscribe=One-Click",
                                              "application/x-www-form-urlencoded"), context())
    assert result["statusCode"] == 200 and "Location" not in result["headers"]


def retopic(token: str, old: bytes, new: bytes) -> str:
    """The token with its topic swapped, its tag left as it was."""
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert old in raw
    return base64.urlsafe_b64encode(raw.replace(old, new, 1)).rstrip(b"=").decode("ascii")


def bad_tokens(token: str) -> dict[str, str]:
    flipped = token[:30] + ("A" if token[30] != "A" else "B") + token[31:]
    foreign = topics.mint(["someone-elses-secret-0123456789"], READER, "news")
    return {"altered": flipped, "truncated": token[:-3], "foreign": foreign, "empty": "", "garbage": "%%%",
            "other-topic": retopic(token, b"news", b"nope"), "all-topics": retopic(token, b"\x04news", b"\x01*"),
            "too-long": token * 40}


def test_a_bad_or_altered_token_is_403_and_changes_nothing(handlers, ses_fake):
    token = sent_token(handlers, ses_fake)
    for name, bad in bad_tokens(token).items():
        status, body = one_click(handlers, bad)
        assert status == 403, name
        assert body["Error"]["Field"] == "t"
        for path, method in (("/preferences", "GET"), ("/unsubscribe", "GET"), ("/preferences", "POST")):
            result = handlers["webhook"](reader_event(path, bad, method, "action=unsubscribe",
                                                      "application/x-www-form-urlencoded"), context())
            assert result["statusCode"] == 403, (name, path, method)
    assert answer(handlers["webhook"](reader_event("/unsubscribe", None, "POST", "List-Unsubscribe=One-Click",
                                                   "application/x-www-form-urlencoded"), context()))[0] == 403
    assert scopes() == set()
    assert send(handlers, mail())[0] == 200


def test_a_rotated_secret_still_verifies_and_a_removed_one_does_not(handlers, ses_fake, monkeypatch):
    old = topics.mint([OLD_SECRET], READER, "news")
    assert one_click(handlers, old)[0] == 403  # not listed
    monkeypatch.setenv("SESMAIL_UNSUBSCRIBE_SECRETS", f"{SECRET},{OLD_SECRET}")
    config.reset()  # new settings reach a function in a new instance
    assert one_click(handlers, old)[0] == 200
    new = sent_token(handlers, ses_fake, Topic="offers")
    assert topics.open_token([SECRET], new).topic == "offers"  # the first secret signs
    monkeypatch.setenv("SESMAIL_UNSUBSCRIBE_SECRETS", SECRET)
    config.reset()
    assert one_click(handlers, old)[0] == 403
    assert one_click(handlers, new)[0] == 200


# --- the page ---

def test_get_never_changes_anything(handlers, ses_fake):
    token = sent_token(handlers, ses_fake)
    for path in ("/preferences", "/unsubscribe"):
        for _ in range(3):
            result = handlers["webhook"](reader_event(path, token), context())
            assert result["statusCode"] == 200
            assert result["headers"]["Content-Type"].startswith("text/html")
    result = handlers["webhook"](http_event(None, method="HEAD", path="/unsubscribe", key=None, query={"t": token}),
                                 context())
    assert result["statusCode"] == 200
    assert scopes() == set()
    assert send(handlers, mail())[0] == 200


def test_the_page_has_its_safety_headers_and_masks_the_address(handlers, ses_fake):
    token = sent_token(handlers, ses_fake)
    result = handlers["webhook"](reader_event("/preferences", token), context())
    headers = result["headers"]
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "script-src" not in headers["Content-Security-Policy"]  # default-src 'none': no script at all
    page = result["body"]
    assert "r***@example.com" in page and READER not in page
    assert "<script" not in page.lower()
    assert "Product news" in page and "Offers" in page and "What we shipped" in page
    assert 'lang="en"' in page
    assert "redirect" not in page.lower() and "Location" not in headers


@pytest.mark.parametrize(("accept", "lang", "words"), [
    ("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN", ("邮件订阅设置", "产品新闻", "退订所有营销邮件")),
    ("en-US,en;q=0.9,zh;q=0.5", "en", ("Email preferences", "Product news", "Unsubscribe from all marketing mail")),
    ("fr-FR,zh-TW;q=0.7", "zh-CN", ("邮件订阅设置",)),
    ("de", "en", ("Email preferences",)),
])
def test_the_page_speaks_the_readers_language(handlers, ses_fake, accept, lang, words):
    token = sent_token(handlers, ses_fake)
    result = handlers["webhook"](reader_event("/preferences", token, language=accept), context())
    assert f'lang="{lang}"' in result["body"]
    for word in words:
        assert word in result["body"]


def save(handlers, token, fields: str, language=None) -> tuple[int, dict]:
    return answer(handlers["webhook"](reader_event("/preferences", token, "POST", fields,
                                                   "application/x-www-form-urlencoded", language), context()))


def test_the_page_saves_topics_and_a_resubscribe_makes_mail_flow_again(handlers, ses_fake):
    token = sent_token(handlers, ses_fake)
    status, body = save(handlers, token, "action=save&topic=offers")  # news unticked
    assert status == 200 and "Your preferences are saved." in body["Html"]
    assert scopes() == {"topic:news"}
    assert send(handlers, mail())[0] == 403
    assert save(handlers, token, "action=save&topic=offers&topic=news")[0] == 200
    assert scopes() == set()
    assert send(handlers, mail())[0] == 200
    status, body = save(handlers, token, "action=save&topic=news&topic=offers&all=1", "zh-CN")
    assert "您的设置已保存" in body["Html"]
    assert scopes() == {"marketing"}
    assert send(handlers, mail(Topic="offers"))[0] == 403


def test_the_quick_button_unsubscribes_the_links_topic(handlers, ses_fake):
    token = sent_token(handlers, ses_fake, Topic="offers")
    page = handlers["webhook"](reader_event("/unsubscribe", token), context())["body"]
    assert "Unsubscribe from “Offers”" in page
    status, body = save(handlers, token, "action=unsubscribe")
    assert status == 200 and "You are unsubscribed from “Offers”." in body["Html"]
    assert scopes() == {"topic:offers"}


def test_the_page_never_lifts_a_bounce_or_complaint(handlers, ses_fake):
    token = sent_token(handlers, ses_fake)
    db = store.open_store(config.load().database_url)
    db.suppress(READER, "all", "hard_bounce", "callback", 0.0)
    save(handlers, token, "action=save&topic=news&topic=offers")
    assert "all" in scopes()
    assert send(handlers, mail(TriggerType=1))[0] == 403


# --- batch and digest ---

def batch_payload(**changes) -> dict:
    out = {"FromEmailAddress": "noreply@mail.example.com", "Subject": "News", "TaskType": 1, "Topic": "news",
           "Template": {"TemplateID": 100091, "TemplateData": {"code": "1"}},
           "Recipients": [{"Email": READER}, {"Email": "two@example.com", "TemplateData": {"name": "Two"}}]}
    out.update(changes)
    return {key: value for key, value in out.items() if value is not None}


def uploaded(ses_fake) -> list[dict]:
    return [row for call in ses_fake.calls if call["Action"] == "CreateReceiverDetailWithData"
            for row in call["Params"]["Datas"]]


def test_batch_recipients_get_their_preferences_url_and_unsubscribed_ones_are_left_out(handlers, ses_fake):
    token = sent_token(handlers, ses_fake)
    assert one_click(handlers, token)[0] == 200
    status, body = answer(handlers["batch"](http_event(batch_payload(), path="/batch"), context()))
    assert status == 200 and body["Suppressed"] == ["Recipients[0]"]
    rows = uploaded(ses_fake)
    assert [row["Email"] for row in rows] == ["two@example.com"]
    data = json.loads(rows[0]["TemplateData"])
    assert data["name"] == "Two" and data["code"] == "1"
    reader = topics.open_token([SECRET], parse_qs(urlsplit(data["preferences_url"]).query)["t"][0])
    assert (reader.address, reader.topic) == ("two@example.com", "news")


def test_a_batch_recipient_whose_data_with_the_url_exceeds_800_bytes_is_refused(handlers, ses_fake):
    payload = batch_payload(Recipients=[{"Email": READER, "TemplateData": {"x": "y" * 700}}])
    status, body = answer(handlers["batch"](http_event(payload, path="/batch"), context()))
    assert (status, body["Error"]["Code"], body["Error"]["Field"]) == (
        400, "InvalidParameterValue.TemplateDataLenLimit", "Recipients[0].TemplateData")
    assert ses_fake.calls == []


@pytest.mark.parametrize(("changes", "code"), [
    ({"Recipients": None, "ReceiverId": 42}, "InvalidParameterValue.TopicNeedsRecipients"),
    ({"Recipients": None, "ReceiverId": 42, "TaskType": 2, "TimedParam": {"BeginTime": "2099-01-01 00:00:00"}},
     "InvalidParameterValue.TopicNeedsRecipients"),
    ({"Topic": "nope"}, "InvalidParameterValue.UnknownTopic"),
])
def test_a_topic_batch_needs_inline_recipients(handlers, ses_fake, changes, code):
    status, body = answer(handlers["batch"](http_event(batch_payload(**changes), path="/batch"), context()))
    assert (status, body["Error"]["Code"], body["Error"]["Field"]) == (400, code, "Topic")
    assert ses_fake.calls == []


def timer_event(message, time_):
    return {"Type": "Timer", "TriggerName": "weekly-news", "Time": time_, "Message": json.dumps(message)}


def test_a_recurring_topic_batch_skips_a_reader_who_unsubscribed_between_runs(handlers, ses_fake):
    # GIVEN a timer whose argument is a topic batch (how a recurring topic batch is scheduled)
    first = answer(handlers["batch"](timer_event(batch_payload(), "2026-11-23T01:00:00Z"), context()))
    assert first[0] == 200
    assert sorted(row["Email"] for row in uploaded(ses_fake)) == [READER, "two@example.com"]
    # WHEN the reader unsubscribes between runs through the link of the first run's mail
    link = next(json.loads(row["TemplateData"])["preferences_url"] for row in uploaded(ses_fake)
                if row["Email"] == READER)
    assert save(handlers, parse_qs(urlsplit(link).query)["t"][0], "action=unsubscribe")[0] == 200
    ses_fake.calls.clear()
    # THEN the next run leaves them out
    second = answer(handlers["batch"](timer_event(batch_payload(), "2026-11-30T01:00:00Z"), context()))
    assert second[0] == 200
    assert [row["Email"] for row in uploaded(ses_fake)] == ["two@example.com"]


@pytest.mark.parametrize("batch_above", [None, 1], ids=["one-by-one", "through-lists"])
def test_digest_recipients_get_their_preferences_url_and_topic_unsubscribes_are_skipped(
        handlers, ses_fake, topic_env, tmp_path, batch_above):
    if batch_above is not None:
        settings = json.loads((tmp_path / "topics.json").read_text())
        settings["Digests"]["daily"]["BatchAbove"] = batch_above
        (tmp_path / "topics.json").write_text(json.dumps(settings))
        config.reset()
    store.open_store(config.load().database_url).suppress(READER, "topic:news", "unsubscribe", "one-click", 0.0)
    store.open_store(config.load().database_url).suppress("three@example.com", "topic:offers", "unsubscribe",
                                                         "one-click", 0.0)
    items = [{"Digest": "daily", "Email": email, "Item": {"title": "t"}}
             for email in (READER, "two@example.com", "three@example.com")]
    assert answer(handlers["batch"](http_event(items, path="/digest/items"), context()))[0] == 200
    result = answer(handlers["batch"]({"Type": "Timer", "TriggerName": "d", "Time": "2026-11-23T01:00:00Z",
                                       "Message": "daily"}, context()))[1]
    assert (result["Skipped"], result["Sent"]) == (1, 2)
    if batch_above is None:
        sent = {mail["Destination"][0]: mail for mail in ses_fake.sent}
        assert sorted(sent) == ["three@example.com", "two@example.com"]
        for address, one in sent.items():
            assert topics.open_token([SECRET], token_of(one)).address == address
            assert "preferences_url" in json.loads(one["Template"]["TemplateData"])
    else:
        rows = uploaded(ses_fake)
        assert sorted(row["Email"] for row in rows) == ["three@example.com", "two@example.com"]
        assert all(json.loads(row["TemplateData"])["preferences_url"].startswith(PUBLIC_URL + "/preferences?t=")
                   for row in rows)


# --- erasure, admin routes, settings, logs ---

def test_erasure_keeps_topic_unsubscribes_under_the_keyed_hash(handlers, ses_fake):
    token = sent_token(handlers, ses_fake)
    assert one_click(handlers, token)[0] == 200
    status, body = answer(handlers["send"](http_event(None, method="DELETE", path=f"/addresses/{READER}"),
                                           context()))
    assert (status, body["SuppressionsKept"]) == (200, 1)
    assert send(handlers, mail())[0] == 403
    assert send(handlers, mail(Topic="offers"))[0] == 200
    listed = answer(handlers["send"](http_event(None, method="GET", path="/suppressions"), context()))[1]
    assert [(row["Email"], row["Scope"], row.get("Topic")) for row in listed["Suppressions"]] == [
        (None, "topic", "news")]
    # the page still shows the reader's choice, and a resubscribe through it lifts the kept entry
    page = handlers["webhook"](reader_event("/preferences", token), context())["body"]
    assert 'value="news" aria' in page and 'value="offers" checked' in page
    assert save(handlers, token, "action=save&topic=news&topic=offers")[0] == 200
    assert send(handlers, mail())[0] == 200


def test_an_admin_key_suppresses_and_lifts_one_topic(handlers, ses_fake):
    status, body = answer(handlers["send"](http_event({"Topic": "news"}, method="PUT",
                                                      path=f"/suppressions/{READER}"), context()))
    assert (status, body["Scope"], body["Topic"]) == (200, "topic", "news")
    assert send(handlers, mail())[0] == 403
    status, _ = answer(handlers["send"](http_event(None, method="DELETE", path=f"/suppressions/{READER}",
                                                   query={"Topic": "offers"}), context()))
    assert status == 404  # nothing to lift for that topic
    status, body = answer(handlers["send"](http_event(None, method="DELETE", path=f"/suppressions/{READER}",
                                                      query={"Topic": "news"}), context()))
    assert (status, body["Removed"]) == (200, 1)
    assert send(handlers, mail())[0] == 200
    status, body = answer(handlers["send"](http_event({"Topic": "nope"}, method="PUT",
                                                      path=f"/suppressions/{READER}"), context()))
    assert (status, body["Error"]["Code"]) == (400, "InvalidParameterValue.UnknownTopic")


@pytest.mark.parametrize(("url", "secrets"), [
    ("http://hooks.example.com", SECRET),
    ("ftp://hooks.example.com", SECRET),
    ("https://hooks.example.com/?next=x", SECRET),
    ("https://hooks.example.com", "short"),
    ("https://hooks.example.com", ""),
    ("", SECRET),
])
def test_the_two_settings_are_checked_at_load(topic_env, monkeypatch, url, secrets):
    monkeypatch.setenv("SESMAIL_PUBLIC_URL", url)
    monkeypatch.setenv("SESMAIL_UNSUBSCRIBE_SECRETS", secrets)
    config.reset()
    with pytest.raises(config.ConfigError) as raised:
        config.load()
    assert raised.value.path in ("SESMAIL_PUBLIC_URL", "SESMAIL_UNSUBSCRIBE_SECRETS")


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost:8080/", "https://x.example/prefix"])
def test_https_or_this_machine_is_accepted(topic_env, monkeypatch, url):
    monkeypatch.setenv("SESMAIL_PUBLIC_URL", url)
    config.reset()
    assert config.load().public_url == url.rstrip("/")


def test_a_digest_on_an_unknown_topic_is_a_config_error(topic_env, tmp_path):
    settings = json.loads((tmp_path / "topics.json").read_text())
    settings["Digests"]["daily"]["Topic"] = "nope"
    (tmp_path / "topics.json").write_text(json.dumps(settings))
    config.reset()
    with pytest.raises(config.ConfigError) as raised:
        config.load()
    assert str(raised.value).endswith("Digests.daily.Topic: names no topic declared under Topics")


def test_logs_never_carry_the_token_or_the_address(handlers, ses_fake, capsys):
    token = sent_token(handlers, ses_fake)
    handlers["webhook"](reader_event("/preferences", token), context())
    save(handlers, token, "action=save&topic=offers")
    one_click(handlers, token)
    one_click(handlers, token[:-2])
    out = capsys.readouterr().out
    assert token not in out and token[:-2] not in out and SECRET not in out
    assert READER not in out


def test_concurrent_one_clicks_store_one_event_and_one_suppression(handlers, ses_fake):
    import threading

    token = sent_token(handlers, ses_fake)
    message_id = ses_fake.sent[-1]["MessageId"]
    answers: list[int] = []
    threads = [threading.Thread(target=lambda: answers.append(one_click(handlers, token)[0])) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * 8
    assert scopes() == {"topic:news"}
    history = answer(handlers["send"](http_event(None, method="GET", path=f"/messages/{message_id}"), context()))[1]
    assert [event["Event"] for event in history["Events"] if event.get("Source")] == ["unsubscribe"]


def test_a_dead_store_answers_503_and_never_a_500(handlers, ses_fake, monkeypatch):
    token = sent_token(handlers, ses_fake)
    monkeypatch.setenv("SESMAIL_DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none")
    config.reset()
    store.reset()
    for path, method, body in (("/unsubscribe", "POST", "List-Unsubscribe=One-Click"), ("/preferences", "GET", None),
                               ("/preferences", "POST", "action=unsubscribe")):
        result = handlers["webhook"](reader_event(path, token, method, body, "application/x-www-form-urlencoded"),
                                     context())
        assert result["statusCode"] == 503, (path, method, result)
