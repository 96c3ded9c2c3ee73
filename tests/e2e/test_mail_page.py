"""The mail page in a real headless browser: Debian's chromium driven by Playwright.

Playwright launches the system browser (`/usr/bin/chromium`); it never downloads one. Without
chromium the test skips with a message, except in CI (`CI=true`), where `.ci/run` installs it and
the test must run.

The first test drives the whole local stack (a send through the gateway, a callback to the
webhook); the others open the page of an emulator of their own, so "Clear all" deletes nothing
another test needs.
"""

from __future__ import annotations

import json
import os
from urllib.parse import parse_qsl, urlsplit

import pytest

from local.ses_emulator import SesEmulator
from tests.local.helpers import call, make_client, no_proxy, stack_emulator, wait_for

CHROMIUM = "/usr/bin/chromium"
# Flags for a headless system chromium in a container, offline.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing: `apt-get install -y chromium` (Debian's build) to run the page test"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def emulator(monkeypatch):
    """An SES emulator of this test's own, with the repo's templates, on a free port."""
    no_proxy(monkeypatch)
    with stack_emulator() as emu:
        yield emu


class Sender:
    def __init__(self, emu: SesEmulator) -> None:
        self.client = make_client(emu)

    def __call__(self, to: str, subject: str, **extra) -> str:
        params = {"FromEmailAddress": "noreply@sesmail.local", "Destination": [to], "Subject": subject,
                  "Template": {"TemplateID": 2, "TemplateData": json.dumps({"name": "Page"})}, **extra}
        return call(self.client, "SendEmail", params)["MessageId"]


@pytest.fixture
def send(emulator):
    return Sender(emulator)


@pytest.fixture
def page(browser):
    """A page that fails the test on a script error or a Content-Security-Policy violation."""
    opened = browser.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    opened.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    opened.on("dialog", lambda dialog: (problems.append(f"a {dialog.type} dialog: {dialog.message}"),
                                        dialog.dismiss()))
    opened.set_default_timeout(TIMEOUT_MS)
    yield opened
    opened.close()
    assert problems == []


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def subjects(page) -> list[str]:
    return page.locator("#messages a .subj").all_inner_texts()


def wait_subjects(page, expected: list[str]) -> None:
    wait_for(lambda: subjects(page) == expected, timeout=10, what=f"the list to show {expected}")


def test_the_page_shows_a_sent_mail_and_a_bounce_clicked_on_it(stack, browser):
    # GIVEN a mail sent through the gateway
    status, body = stack.send({"Destination": ["page@e2e.example"], "Subject": "Seen on the page",
                               "Template": {"TemplateID": 2, "TemplateData": {"name": "Page"}}})
    assert status == 200, body
    _, mail = stack.local(f"/_local/messages/{body['MessageId']}")
    page = browser.new_page()
    try:
        # WHEN the page is opened on it
        page.goto(f"{stack.emulator}/?id={mail['Id']}")
        # THEN it shows the mail, its rendered HTML in the sandboxed frame, and its delivery
        page.locator("#subject").wait_for()
        assert page.locator("#subject").inner_text() == "Seen on the page"
        assert page.locator(f'nav a[data-id="{mail["Id"]}"]').is_visible()
        page.frame_locator("iframe").get_by_text("Welcome, Page!").wait_for()
        page.locator("#events").get_by_text("delivered").wait_for()
        # WHEN "Bounce" is clicked THEN the bounce shows in the timeline
        page.get_by_role("button", name="Bounce", exact=True).click()
        page.locator("#events").get_by_text("hard_bounce").wait_for()
        assert page.locator("#subject").inner_text() == "Seen on the page"
    finally:
        page.close()
    _, after = stack.local(f"/_local/messages/{body['MessageId']}")
    assert ("bounce", "page@e2e.example") in {(e["Event"], e["Email"]) for e in after["Events"]}
    wait_for(lambda: stack.local(f"/_local/messages/{body['MessageId']}")[1]["Events"][-1]["Callback"] != "pending",
             what="the bounce callback to be posted")


def test_search_and_state_filter_the_list_and_live_in_the_url(emulator, send, page):
    send("ada@example.com", "Welcome Ada")
    send("complaint@example.com", "Weekly news")
    send("bob@example.com", "Order shipped")
    page.goto(emulator.url + "/")
    wait_subjects(page, ["Order shipped", "Weekly news", "Welcome Ada"])
    # WHEN a word is typed THEN the list narrows (server-side) and the URL says so
    page.locator("#q").fill("to:bob")
    wait_subjects(page, ["Order shipped"])
    assert query_of(page.url) == {"q": "to:bob"}
    assert page.locator("#count").inner_text() == "1 matching mail"
    # WHEN a state is chosen instead
    page.locator("#q").fill("")
    page.locator("#state").select_option("spamreport")
    wait_subjects(page, ["Weekly news"])
    assert query_of(page.url) == {"state": "spamreport"}
    # THEN that URL opened afresh shows the same view
    page.goto(emulator.url + "/?state=delivered&q=we")
    wait_subjects(page, ["Weekly news", "Welcome Ada"])
    assert (page.locator("#state").input_value(), page.locator("#q").input_value()) == ("delivered", "we")
    # WHEN a mail is opened THEN the URL names it, keeping the search; Back returns to the search
    page.locator("#messages a", has_text="Welcome Ada").click()
    page.wait_for_url(lambda url: set(query_of(url)) == {"state", "q", "id"})
    assert (query_of(page.url)["state"], query_of(page.url)["q"]) == ("delivered", "we")
    page.locator("#subject", has_text="Welcome Ada").wait_for()
    page.go_back()
    page.wait_for_url(lambda url: query_of(url) == {"state": "delivered", "q": "we"})
    page.locator("#subject", has_text="Weekly news").wait_for()  # a wide screen opens the newest
    wait_subjects(page, ["Weekly news", "Welcome Ada"])


def test_the_badge_shows_a_spam_report_not_only_delivered(emulator, send, page):
    send("complaint@example.com", "Reported")
    plain = send("ada@example.com", "Ordinary")
    page.goto(emulator.url + "/")
    wait_subjects(page, ["Ordinary", "Reported"])
    badges = page.locator("#messages a .badge")
    assert badges.all_inner_texts() == ["delivered", "spam report"]
    assert "spamreport" in (badges.nth(1).get_attribute("class") or "")
    assert "spam report" in (badges.nth(1).get_attribute("title") or "")  # and the rest: "Events: delivered, …"
    # WHEN "Complaint" is simulated on the plain mail THEN its badge turns, without a reload
    page.evaluate("window.__sameDocument = true")
    page.locator("#messages a", has_text="Ordinary").click()
    page.locator("#subject", has_text="Ordinary").wait_for()
    page.get_by_role("button", name="Complaint", exact=True).click()
    wait_for(lambda: badges.all_inner_texts() == ["spam report", "spam report"], timeout=10,
             what="the plain mail's badge to show the spam report")
    assert page.evaluate("window.__sameDocument") is True
    assert [e["Event"] for e in emulator.message(plain)["Events"]] == ["delivered", "spamreport"]


def test_a_new_mail_appears_without_reloading_the_page(emulator, send, page):
    send("ada@example.com", "First")
    page.goto(emulator.url + "/")
    wait_subjects(page, ["First"])
    page.evaluate("window.__sameDocument = true")
    # WHEN a mail is sent while the page is open
    send("bob@example.com", "Second")
    # THEN it appears at the top, in the same document, and a wide screen opens the newest
    wait_subjects(page, ["Second", "First"])
    assert page.evaluate("window.__sameDocument") is True
    page.locator("#subject", has_text="Second").wait_for()
    assert "new" in (page.locator("#messages a").first.get_attribute("class") or "")


def test_clear_all_asks_first(emulator, send, page):
    send("ada@example.com", "Keep me")
    page.goto(emulator.url + "/")
    wait_subjects(page, ["Keep me"])
    # WHEN "Clear all" is clicked THEN a dialog asks, and nothing is deleted yet
    page.get_by_role("button", name="Clear all").click()
    dialog = page.locator("#confirm-clear")
    dialog.wait_for(state="visible")
    assert "The 1 stored mail" in dialog.inner_text()
    assert emulator.store.message_count() == 1
    # WHEN it is cancelled THEN the mail stays
    page.get_by_role("button", name="Cancel").click()
    dialog.wait_for(state="hidden")
    assert emulator.store.message_count() == 1 and subjects(page) == ["Keep me"]
    # Escape cancels too
    page.get_by_role("button", name="Clear all").click()
    dialog.wait_for(state="visible")
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    assert emulator.store.message_count() == 1
    # WHEN it is confirmed THEN every mail is gone from the store and the list
    page.get_by_role("button", name="Clear all").click()
    page.get_by_role("button", name="Delete all").click()
    wait_for(lambda: emulator.store.message_count() == 0, timeout=10, what="the store to be cleared")
    page.locator("#messages .empty").wait_for()
    assert page.locator("#status").inner_text() == "Deleted 1 mail."


def test_a_phone_sees_the_list_then_the_mail_without_sideways_scrolling(emulator, send, browser):
    long_address = "a.very.long.local.part.for.a.narrow.screen.test@" + "sub." * 6 + "example.com"
    long_subject = "Unbreakable: " + "word" * 20  # SES allows 100 characters
    send(long_address, long_subject,
         Template={"TemplateID": 2, "TemplateData": json.dumps({"name": "N" * 300})})
    send("ada@example.com", "Short")
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(emulator.url + "/")
        wait_subjects(page, ["Short", long_subject])

        def width() -> int:
            return int(page.evaluate("document.scrollingElement.scrollWidth"))

        # THEN the list fills the screen, the mail pane waits, and nothing scrolls sideways
        assert width() <= PHONE["width"]
        assert not page.locator("#message").is_visible()
        for name in ("Clear all",):
            assert page.get_by_role("button", name=name).bounding_box()["height"] >= 44  # type: ignore[index]
        assert page.locator("#messages a").first.bounding_box()["height"] >= 44  # type: ignore[index]
        # WHEN the long mail is tapped THEN it fills the screen, still without sideways scrolling
        page.locator("#messages a").nth(1).tap()
        page.locator("#subject").wait_for()
        page.locator("#events").get_by_text("delivered").wait_for()
        assert not page.locator("#list").is_visible()
        assert width() <= PHONE["width"]
        for name in ("Open", "Complaint", "← All mail"):
            assert page.get_by_role("button", name=name).bounding_box()["height"] >= 44  # type: ignore[index]
        # WHEN "All mail" is tapped THEN the list is back
        page.get_by_role("button", name="← All mail").tap()
        page.locator("#list").wait_for(state="visible")
        assert width() <= PHONE["width"]
    finally:
        context.close()


def test_stored_values_are_shown_as_text_never_as_html(emulator, send, page):
    hostile = '<img src=x onerror="window.__owned=1"><b>bold</b>'
    send("ada@example.com", hostile, Template={"TemplateID": 2, "TemplateData": json.dumps({"name": hostile})})
    page.goto(emulator.url + "/")
    wait_subjects(page, [hostile])
    page.locator("#subject", has_text="bold").wait_for()
    assert page.locator("#subject").inner_text() == hostile
    assert page.locator("main img, main b").count() == 0
    page.frame_locator("iframe").locator("body").wait_for()  # the mail's own HTML: sandboxed, scripts off
    assert page.evaluate("window.__owned") is None
