"""The mail page in a real headless browser: Debian's chromium driven by Playwright.

Playwright launches the system browser (`/usr/bin/chromium`); it never downloads one. Without
chromium the test skips with a message, except in CI (`CI=true`), where `.ci/run` installs it and
the test must run.
"""

from __future__ import annotations

import os

import pytest

from tests.local.helpers import wait_for

CHROMIUM = "/usr/bin/chromium"
# Flags for a headless system chromium in a container, offline (machine-notes.md).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


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
