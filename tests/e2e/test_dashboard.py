"""The dashboard in a real headless browser (Debian's chromium driven by Playwright): it draws the
series of a seeded store, asks nothing of another origin, shows a hostile template name and
sender domain as text, and fits a phone (docs/deliverability.md#the-dashboard)."""

from __future__ import annotations

import json
import time

import pytest

from local.gateway import Gateway
from sesmail import config, events, stats, store
from sesmail.store.stats import DAY_OFFSET_S
from tests.conftest import load_function
from tests.e2e.test_mail_page import PHONE, browser  # noqa: F401  (the module's browser fixture)

HOSTILE = "<img src=x onerror=alert(1)>"
KEY = "dash-key"


@pytest.fixture
def dashboard(env, tmp_path, monkeypatch):
    """The send function behind the local gateway, on a store seeded with five days of mail."""
    (tmp_path / "sesmail.json").write_text(json.dumps({"Templates": {HOSTILE: 7, "welcome": 8},
                                                       "Clients": {"dash": {"Scopes": ["stats"]}},
                                                       "Guard": {"MinVolume": 20}}))
    monkeypatch.setenv("SESMAIL_API_KEYS", f"dev-key,dash={KEY}")
    config.reset()
    store.reset()
    settings = config.load()
    db = store.open_store(settings.database_url)
    now = time.time()
    today_noon = (int(now + DAY_OFFSET_S) // 86400) * 86400 - DAY_OFFSET_S + 12 * 3600
    for day in range(5):
        sent_at = today_noon - day * 86400 if day else min(now - 60, today_noon)
        for n in range(20):
            message_id = f"m-{day}-{n}"
            db.record_sent(message_id, "default", "news@shop.example", [f"r{n}@inbox.example"], sent_at,
                           template_id=7 if n % 2 else 8)
            event = {"event": "delivered" if n % 5 else "bounce", "bouncetype": "hard_bounce",
                     "email": f"r{n}@inbox.example", "bulkid": message_id, "timestamp": int(sent_at) + 5}
            rows = [events.normalise(event, event, now, 86400)]
            db.ingest_events(rows, stats.facts(settings, [event], rows, now))
    hostile = {"event": "spamreport", "email": "x@inbox.example", "fromdomain": HOSTILE, "timestamp": int(now)}
    rows = [events.normalise(hostile, hostile, now, 86400)]
    db.ingest_events(rows, stats.facts(settings, [hostile], rows, now))
    gateway = Gateway({"send": load_function("send").main_handler}, port=0).start()
    yield gateway
    gateway.stop()


def open_dashboard(browser, url: str, viewport: dict | None = None):  # noqa: F811
    context = browser.new_context(viewport=viewport or {"width": 1200, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    requests: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("dialog", lambda dialog: (problems.append(f"a dialog: {dialog.message}"), dialog.dismiss()))
    page.on("request", lambda request: requests.append(request.url))
    page.set_default_timeout(10_000)
    page.goto(url + "/dashboard")
    page.fill("#key", KEY)
    page.click("#login button")
    page.locator("#guard .row").first.wait_for()
    return context, page, problems, requests


def test_the_dashboard_draws_the_series_of_the_store_and_asks_only_its_own_origin(dashboard, browser):  # noqa: F811
    context, page, problems, requests = open_dashboard(browser, dashboard.url)
    try:
        # five days with mail: one dot per day on each chart, a line through them, the guard's limit drawn
        assert page.locator("#delivery circle").count() == 5
        assert page.locator("#bounce circle.over").count() == 5  # 4 of 20 hard bounces: 20 % > 5 %
        assert page.locator("#bounce polyline.series").count() >= 1
        assert page.locator("#bounce line.limit").count() == 1
        assert "guard limit 5.0 %" in page.locator("#bounce").inner_text()
        assert page.locator("#templates .row").count() == 3  # 7, 8 and the report that named none
        # the hostile name is text: no element was made of it, nothing ran
        names = page.locator("#templates .name").all_inner_texts() + page.locator("#domains .name").all_inner_texts()
        assert f"{HOSTILE} (7)" in names and HOSTILE in names
        assert page.locator("img").count() == 0
        assert "paused" in page.locator("#guard").inner_text()  # the account and shop.example tripped
        # the key is this tab's only
        assert page.evaluate("sessionStorage.getItem('sesmail.statsKey')") == KEY
        assert page.evaluate("localStorage.length") == 0 and page.evaluate("document.cookie") == ""
        assert all(url.startswith(dashboard.url + "/") for url in requests), requests
        assert any("/stats?Days=30&By=template" in url for url in requests)
        assert problems == []
    finally:
        context.close()


def test_the_dashboard_fits_a_phone(dashboard, browser):  # noqa: F811
    context, page, problems, _ = open_dashboard(browser, dashboard.url, PHONE)
    try:
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        box = page.locator("#delivery svg").bounding_box()
        assert box is not None and 300 <= box["width"] <= PHONE["width"]
        assert problems == []
    finally:
        context.close()


def test_a_wrong_key_is_forgotten_and_asked_for_again(dashboard, browser):  # noqa: F811
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(dashboard.url + "/dashboard")
        page.fill("#key", "not-a-key")
        page.click("#login button")
        page.locator("#status.bad").wait_for()
        assert "401" in page.locator("#status").inner_text()
        assert page.locator("#login").is_visible()
        assert page.evaluate("sessionStorage.getItem('sesmail.statsKey')") is None
    finally:
        context.close()


def test_the_mail_page_has_the_same_view_as_its_stats_tab(dashboard, browser, monkeypatch):  # noqa: F811
    from local.ses_emulator import SesEmulator
    from tests.local.helpers import SECRET_ID, SECRET_KEY

    emu = SesEmulator(secret_id=SECRET_ID, secret_key=SECRET_KEY).start()
    emu.functions_url = dashboard.url
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    try:
        page.goto(f"http://127.0.0.1:{emu.port}/")
        page.click("#stats-tab")
        page.fill("#key", KEY)
        page.click("#login button")
        page.locator("#guard .row").first.wait_for()
        assert page.locator("#delivery circle").count() == 5
        assert HOSTILE in page.locator("#domains .name").all_inner_texts()
        assert all(url.startswith(f"http://127.0.0.1:{emu.port}/") for url in requests), requests
        assert page.locator("#local-nav a").get_attribute("href") == "/"
    finally:
        context.close()
        emu.stop()
        emu.store.close()
