"""Topics through the local stack as `make dev` runs it, in headless Chromium (docs/topics.md): a
marketing mail shows its one-click headers on the mail page, the button there stops that topic and
only that, and the preference page works without JavaScript and on a 390 px phone, in English and
Chinese, its saved choice honoured by the next send."""

from __future__ import annotations

import contextlib
import json
from urllib.parse import parse_qs, urlsplit

from tests.e2e import test_mail_page
from tests.e2e.test_mail_page import PHONE, TIMEOUT_MS
from tests.local.helpers import wait_for

browser = test_mail_page.browser  # the mail page suite's fixture: one headless Chromium


def send(stack, to: str, topic: str | None = "news", trigger: int = 0) -> tuple[int, dict]:
    payload = {"Destination": [to], "Subject": "Topic news", "TriggerType": trigger,
               "Template": {"TemplateID": 2, "TemplateData": {"name": "Reader"}}}
    if topic:
        payload["Topic"] = topic
    return stack.send(payload)


def stored(stack, message_id: str) -> dict:
    status, mail = stack.local(f"/_local/messages/{message_id}")
    assert status == 200, mail
    return mail


def events(stack, message_id: str) -> list[dict]:
    status, body = stack.request(stack.gateway, f"/messages/{message_id}", headers={"Authorization": "Bearer dev-key"})
    return body["Events"] if status == 200 else []


def test_the_banner_says_where_the_preference_page_is(stack):
    assert any("/preferences?t=" in line for line in stack.lines)


def test_one_click_on_the_mail_page_stops_that_topic_only(stack, browser):
    # GIVEN a marketing mail on "news" sent through the gateway
    status, body = send(stack, "oneclick@e2e.example")
    assert status == 200, body
    mail = stored(stack, body["MessageId"])
    headers = dict(mail["Headers"])
    assert headers["List-Unsubscribe"].startswith(f"<{stack.gateway}/unsubscribe?t=")
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        # WHEN the mail page's "Unsubscribe (one-click)" button is pressed
        page.goto(f"{stack.emulator}/?id={mail['Id']}")
        page.get_by_role("rowheader", name="List-Unsubscribe-Post", exact=True).wait_for()
        page.get_by_role("button", name="Unsubscribe (one-click)").click()
        page.get_by_text("List-Unsubscribe answered 200").wait_for()
    finally:
        page.close()
    # THEN the message's history shows the one-click unsubscribe
    wait_for(lambda: any(e.get("Source") == "one-click" and e.get("Topic") == "news"
                         for e in events(stack, body["MessageId"])), what="the one-click event")
    # AND that topic's mail is refused, another topic's and transactional mail go out
    status, refused = send(stack, "oneclick@e2e.example")
    assert (status, refused["Error"]["Code"]) == (403, "FailedOperation.ReceiverHasUnsubscribed")
    assert send(stack, "oneclick@e2e.example", topic="offers")[0] == 200
    assert send(stack, "oneclick@e2e.example", topic=None, trigger=1)[0] == 200


def preferences_url(stack, to: str) -> str:
    status, body = send(stack, to)
    assert status == 200, body
    data = stored(stack, body["MessageId"])["TemplateData"]
    url = (data if isinstance(data, dict) else json.loads(data))["preferences_url"]
    assert url.startswith(stack.gateway + "/preferences?t=")
    return url


@contextlib.contextmanager
def reader(browser, **options):
    """A page in a browser context of its own (JavaScript, viewport, locale as given), closed after."""
    context = browser.new_context(**options)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        yield page
    finally:
        context.close()


def test_the_preference_page_works_without_javascript_on_a_phone(stack, browser):
    url = preferences_url(stack, "nojs@e2e.example")
    with reader(browser, java_script_enabled=False, viewport=PHONE, locale="en-US") as page:
        page.goto(url)
        assert page.locator("html").get_attribute("lang") == "en"
        assert page.get_by_text("n***@e2e.example").is_visible()
        news, offers = page.get_by_label("Product news"), page.get_by_label("Offers")
        assert news.is_checked() and offers.is_checked()
        # WHEN "Product news" is unticked and the form saved (a plain form POST: no script)
        news.uncheck()
        page.get_by_role("button", name="Save preferences").click()
        page.get_by_role("status").get_by_text("Your preferences are saved.").wait_for()
        assert not page.get_by_label("Product news").is_checked()
        # THEN news is refused and offers still go out
        assert send(stack, "nojs@e2e.example")[0] == 403
        assert send(stack, "nojs@e2e.example", topic="offers")[0] == 200
        # WHEN the reader resubscribes through the page THEN mail flows again
        page.get_by_label("Product news").check()
        page.get_by_role("button", name="Save preferences").click()
        page.get_by_role("status").get_by_text("Your preferences are saved.").wait_for()
        assert send(stack, "nojs@e2e.example")[0] == 200


def test_the_preference_page_fits_390_px_and_tabs_in_reading_order(stack, browser):
    url = preferences_url(stack, "layout@e2e.example")
    with reader(browser, viewport=PHONE, locale="en-US") as page:
        page.goto(url)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        order = []
        for _ in range(5):
            page.keyboard.press("Tab")
            order.append(page.evaluate("document.activeElement.id || document.activeElement.textContent"))
        assert order == ["Unsubscribe from “Product news”", "topic-news", "topic-offers", "all", "Save preferences"]
        # every control is labelled and large enough to hit on a phone
        for control in page.locator("input[type=checkbox], button").all():
            box = control.bounding_box()
            assert box and box["height"] >= 20
        assert page.locator("input[type=checkbox]:not([id])").count() == 0
        assert page.locator("label").count() == page.locator("input[type=checkbox]").count()


def test_the_preference_page_speaks_chinese_and_get_changes_nothing(stack, browser):
    url = preferences_url(stack, "zh@e2e.example")
    with reader(browser, java_script_enabled=False, viewport=PHONE, locale="zh-CN") as page:
        for _ in range(2):  # a mail scanner's prefetch, then the reader
            page.goto(url)
            page.goto(url.replace("/preferences?", "/unsubscribe?"))
        assert page.locator("html").get_attribute("lang") == "zh-CN"
        assert page.get_by_role("heading", name="邮件订阅设置").is_visible()
        assert page.get_by_label("产品新闻").is_checked()
        assert send(stack, "zh@e2e.example")[0] == 200
        page.get_by_role("button", name="退订“产品新闻”").click()
        page.get_by_text("您已退订“产品新闻”。").wait_for()
        assert send(stack, "zh@e2e.example")[0] == 403


def test_an_altered_link_shows_an_error_page_and_changes_nothing(stack, browser):
    url = preferences_url(stack, "altered@e2e.example")
    token = parse_qs(urlsplit(url).query)["t"][0]
    altered = url.replace(token, token[:20] + ("A" if token[20] != "A" else "B") + token[21:])
    with reader(browser, java_script_enabled=False) as page:
        reply = page.goto(altered)
        assert reply is not None and reply.status == 403
        assert page.get_by_role("alert").is_visible()
    assert send(stack, "altered@e2e.example")[0] == 200
