"""Fixtures of the attacker's suite: narrow clients, a store on each database, and traces checked.

Clients (`SESMAIL_API_KEYS` names them, the config file's `Clients` narrows them):

- `web` (browser key, `web-key-1` and its rotation `web-key-2`): send only, one template, one
  sender, one recipient per request, 3 mails per recipient per hour, one web origin.
- `partner`: send and batch, its own sender domain and recipient lists, one extra header.
- `crm`: batch on a 40-recipient list of its own (the list `partner` must not reach).
- `feed`: digest items into `daily` only, at most 2 recipients per request.
- `contact`: a contact form whose replies go to the visitor (`ReplyTo: ["*"]`).
- `slow`: 2 requests per minute. `dash`: stats only. `ops`: admin.
- `dev-key`: the server-side client `default`, with no policy (full access).

`World.untouched()` is what every refusal is checked with: no SES call, no new mail, task or
recipient list at the emulator, and not one row added, changed or removed in any `sesmail_*` table.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sesmail import config, policy, ses, store
from tests import db
from tests.conftest import load_function
from tests.events import context, http_event
from tests.store.conftest import MYSQL_URL, POSTGRES_URL, Backend, _server

SERVER, WEB, WEB_ROTATED = "dev-key", "web-key-1", "web-key-2"
PARTNER, CRM, FEED, CONTACT, SLOW, DASH, ADMIN = (
    "partner-key", "crm-key", "feed-key", "contact-key", "slow-key", "dash-key", "admin-key")
API_KEYS = ",".join([SERVER, f"web={WEB}", f"web={WEB_ROTATED}", f"partner={PARTNER}", f"crm={CRM}",
                     f"feed={FEED}", f"contact={CONTACT}", f"slow={SLOW}", f"dash={DASH}", f"ops={ADMIN}"])
WEBHOOK_TOKEN = "hook-secret-1"  # one of tests/conftest.py's SESMAIL_WEBHOOK_SECRETS
ERASURE_KEY = "erasure-key-for-tests-0123456789"

WEB_ORIGIN = "https://shop.example"
WEB_SENDER = "noreply@shop.example"
PARTNER_SENDER = "news@partner.example"
TEMPLATES = {"welcome": 100091, "other": 100092}
REASONS = ("hard_bounce", "bounce", "spamreport", "spam", "unsubscribe", "complaint")
STORES = ("sqlite", "postgresql", "mysql")


def policies(partner_lists: list[int], crm_lists: list[int]) -> dict:
    return {
        "web": {"Scopes": ["send"], "Templates": ["welcome"], "Senders": [WEB_SENDER], "MaxRecipients": 1,
                "MailsPerRecipientPerHour": 3, "Origins": [WEB_ORIGIN]},
        "partner": {"Scopes": ["send", "batch"], "Templates": ["welcome"],
                    "Senders": [PARTNER_SENDER, "@mail.partner.example"], "Headers": ["X-Partner-Ref"],
                    "Receivers": partner_lists, "MaxRecipients": 5, "MailsPerRecipientPerHour": 3},
        "crm": {"Scopes": ["batch"], "Receivers": crm_lists},
        "feed": {"Scopes": ["digest"], "Digests": ["daily"], "MaxRecipients": 2},
        "contact": {"Scopes": ["send"], "Templates": ["welcome"], "Senders": [WEB_SENDER], "ReplyTo": "*",
                    "MaxRecipients": 1},
        "slow": {"Scopes": ["send"], "RequestsPerMinute": 2},
        "dash": {"Scopes": ["stats"]},
        "ops": {"Scopes": ["admin"]},
    }


DIGESTS = {name: {"FromEmailAddress": "Digest <digest@mail.example.com>", "Subject": f"Your {name} digest",
                  "Template": {"TemplateName": "welcome"}, "TemplateData": {"count": "length(@)"}}
           for name in ("daily", "weekly")}
DIGESTS["weekly"]["BatchAbove"] = 1  # more than one recipient: sent through recipient lists


def web_mail(**changes: Any) -> dict:
    """A SendEmail body the `web` client may send."""
    body = {"FromEmailAddress": f"Shop <{WEB_SENDER}>", "Destination": ["alice@customers.example"],
            "Subject": "Welcome", "Template": {"TemplateName": "welcome", "TemplateData": {"name": "Alice"}}}
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


def partner_mail(**changes: Any) -> dict:
    """A SendEmail body the `partner` client may send."""
    return web_mail(**dict({"FromEmailAddress": f"Partner News <{PARTNER_SENDER}>",
                            "Destination": ["reader@readers.example"]}, **changes))


def partner_batch(**changes: Any) -> dict:
    """A BatchSendEmail body the `partner` client may send (inline recipients)."""
    body = {"FromEmailAddress": PARTNER_SENDER, "Subject": "News", "TaskType": 1,
            "Template": {"TemplateName": "welcome", "TemplateData": {"name": "reader"}},
            "Recipients": [{"Email": "r1@readers.example"}, {"Email": "r2@readers.example"}]}
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


def timer_event(message: Any, trigger: str = "security-digest", fired_at: str = "2026-11-23T01:00:00Z") -> dict:
    return {"Type": "Timer", "TriggerName": trigger, "Time": fired_at,
            "Message": message if isinstance(message, str) else json.dumps(message)}


class Answer:
    """A function's answer: status, headers and the JSON body."""

    def __init__(self, result: dict) -> None:
        assert isinstance(result, dict) and "statusCode" in result, result
        self.status = int(result["statusCode"])
        self.headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
        text = result.get("body") or ""
        self.body = json.loads(text) if text else {}

    @property
    def error(self) -> dict:
        return self.body.get("Error") or {} if isinstance(self.body, dict) else {}

    @property
    def code(self) -> str | None:
        return self.error.get("Code")

    @property
    def field(self) -> str | None:
        return self.error.get("Field")

    def header(self, name: str) -> str | None:
        return {k.lower(): v for k, v in self.headers.items()}.get(name.lower())

    def __repr__(self) -> str:
        return f"Answer({self.status}, {self.body!r})"


def assert_refused(answer: Answer, status: int, code: str, field: str | None = None) -> None:
    assert (answer.status, answer.code) == (status, code), answer
    if field is not None:
        assert answer.field == field, answer
    assert answer.status != 500


def assert_no_reason(answer: Answer) -> None:
    """A refusal never says why an address is suppressed."""
    text = json.dumps(answer.body).lower()
    for word in REASONS:
        assert word not in text.replace("unsubscribed", ""), (word, answer)


# ---- databases ------------------------------------------------------------------------------------

class Database:
    """The store's database as the test sees it, read beside the store (raw driver connections)."""

    def __init__(self, kind: str, url: str, backend: Backend | None = None, directory: str | None = None) -> None:
        self.kind, self.url, self.backend, self.directory = kind, url, backend, directory

    def execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        return db.execute(self.url, sql, params)

    def tables(self) -> list[str]:
        """Every sesmail_* table but the schema version (whatever tables this release has)."""
        if self.kind == "sqlite" and not os.path.exists(self.url.split(":///", 1)[1]):
            return []
        names = db.tables(self.url)
        return sorted(name for name in names if name.lower().startswith("sesmail_") and name != "sesmail_schema")

    def rows(self, table: str) -> list[tuple]:
        return self.execute(f"SELECT * FROM {table}")

    def snapshot(self) -> dict[str, list[str]]:
        """Every row of every table, as text; tables without rows are left out."""
        found = {}
        for table in self.tables():
            rows = sorted(repr(tuple(_plain(value) for value in row)) for row in self.rows(table))
            if rows:
                found[table] = rows
        return found

    def text(self) -> str:
        """Everything the tables hold, as one lower-cased text (to look for an address in)."""
        return "\n".join(line for rows in self.snapshot().values() for line in rows).lower()

    def clear(self) -> None:
        for table in self.tables():
            self.execute(f"DELETE FROM {table}")


def _plain(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return value


@pytest.fixture(scope="session")
def postgresql_server():
    backend = _server("postgresql", POSTGRES_URL)
    yield backend
    backend.drop_all()


@pytest.fixture(scope="session")
def mysql_server():
    backend = _server("mysql", MYSQL_URL)
    yield backend
    backend.drop_all()


@pytest.fixture
def sqlite_database(env, tmp_path, monkeypatch) -> Database:
    """A fresh SQLite file in a directory of its own (erasure scans every file there)."""
    directory = tmp_path / "store"
    directory.mkdir()
    url = f"sqlite:///{directory}/sesmail.sqlite3"
    monkeypatch.setenv("SESMAIL_DATABASE_URL", url)
    store.reset()
    return Database("sqlite", url, directory=str(directory))


def _server_database(backend: Backend, monkeypatch) -> Iterator[Database]:
    database = Database(backend.name, backend.url, backend)
    database.clear()
    monkeypatch.setenv("SESMAIL_DATABASE_URL", backend.url)
    store.reset()
    yield database
    store.reset()  # before clearing: a store's open transaction would hold locks
    database.clear()


@pytest.fixture
def postgresql_database(env, postgresql_server, monkeypatch) -> Iterator[Database]:
    yield from _server_database(postgresql_server, monkeypatch)


@pytest.fixture
def mysql_database(env, mysql_server, monkeypatch) -> Iterator[Database]:
    yield from _server_database(mysql_server, monkeypatch)


@pytest.fixture
def database(sqlite_database) -> Database:
    """SQLite unless a module asks for every store (`every_store`)."""
    return sqlite_database


@pytest.fixture(params=STORES)
def every_store(request) -> Database:
    """The store on SQLite, PostgreSQL and MariaDB in turn; a module uses it as its `database`."""
    return request.getfixturevalue(f"{request.param}_database")


# ---- the world the attacker meets ------------------------------------------------------------------

class World:
    """The three functions behind their HTTP events, the SES emulator and the store."""

    def __init__(self, ses_fake: Any, database: Database, lists: dict[str, int], settings_file: str) -> None:
        self.ses = ses_fake
        self.db = database
        self.lists = lists
        self.settings_file = settings_file
        self.handlers = {name: load_function(name).main_handler for name in ("send", "batch", "webhook")}

    # -- requests ----------------------------------------------------------------------------------
    def call(self, function: str, method: str, path: str, body: Any = None, key: str | None = WEB,
             headers: dict | None = None, query: dict | None = None, shape: str = "function-url") -> Answer:
        event = http_event(body, method=method, path=path, key=key, headers=headers, query=query, shape=shape)
        return Answer(self.handlers[function](event, context()))

    def send(self, body: dict, key: str = WEB, path: str = "/send", headers: dict | None = None,
             shape: str = "function-url") -> Answer:
        return self.call("send", "POST", path, body, key=key, headers=headers, shape=shape)

    def batch(self, body: dict, key: str = PARTNER, headers: dict | None = None) -> Answer:
        return self.call("batch", "POST", "/batch", body, key=key, headers=headers)

    def digest(self, items: Any, key: str = FEED) -> Answer:
        return self.call("batch", "POST", "/digest/items", items, key=key)

    def message(self, message_id: str, key: str = WEB, method: str = "GET") -> Answer:
        return self.call("send", method, f"/messages/{message_id}", key=key)

    def task(self, task_id: int, key: str = PARTNER) -> Answer:
        return self.call("batch", "GET", f"/batch/tasks/{task_id}", key=key)

    def admin(self, method: str, path: str, body: Any = None, key: str = ADMIN) -> Answer:
        return self.call("send", method, path, body, key=key)

    def suppress(self, address: str, scope: str = "all", reason: str = "hard_bounce") -> None:
        """As a callback would (hard bounce, spam report, unsubscribe): straight into the store."""
        store.open_store(config.load().database_url).suppress(address, scope, reason, "callback", 1.0)

    def callback(self, event: str, address: str, **fields: Any) -> Answer:
        """An SES callback for `address`, posted with the webhook's token."""
        payload = {"event": event, "email": address, "timestamp": 1764000000, "bulkId": f"qcloudses-{event}-1",
                   "username": "1250000000", "from": "noreply@shop.example", **fields}
        return self.call("webhook", "POST", "/webhook", payload, key=None, query={"token": WEBHOOK_TOKEN})

    def fire(self, message: Any, trigger: str = "security-digest", fired_at: str = "2026-11-23T01:00:00Z") -> Answer:
        return Answer(self.handlers["batch"](timer_event(message, trigger, fired_at), context()))

    @staticmethod
    def steady(window_s: int = 60, margin_s: float = 8.0) -> None:
        """Start a rate test well inside a counting window: fixed windows start afresh on the
        minute (or the hour), which would let a test's last request through."""
        left = window_s - time.time() % window_s
        if left < margin_s:
            time.sleep(left + 0.05)

    # -- what happened at SES --------------------------------------------------------------------------
    def actions(self, since: int = 0) -> list[str]:
        return [call["Action"] for call in self.ses.calls[since:]]

    def mailed(self) -> list[str]:
        """Every address SES was asked to mail, by SendEmail or in a list a batch was sent on."""
        addresses = [address for mail in self.ses.sent
                     for name in ("Destination", "Cc", "Bcc") for address in mail.get(name) or ()]
        lists = {call["Params"].get("ReceiverId") for call in self.ses.calls if call["Action"] == "BatchSendEmail"}
        for call in self.ses.calls:
            if call["Action"] == "CreateReceiverDetailWithData" and call["Params"].get("ReceiverId") in lists:
                addresses.extend(row["Email"] for row in call["Params"]["Datas"])
        return [address.rpartition("<")[2].rstrip(">").lower() for address in addresses]

    def delivered(self) -> dict[str, int]:
        """Mails SES accepted per mailbox (lower-cased, `+tag` removed), batch tasks run to the end:
        what the victims' inboxes hold."""
        self.ses.tick()  # run every due task now instead of on the worker's next round
        counts: dict[str, int] = {}
        for row in self.ses.store._all("SELECT email_lc FROM rcpts WHERE send_status = 0"):
            local, _, domain = str(row[0]).rpartition("@")
            mailbox = f"{local.partition('+')[0]}@{domain}"
            counts[mailbox] = counts.get(mailbox, 0) + 1
        return counts

    def tasks_at_ses(self) -> int:
        return self.ses.store.tasks(None, None, None, 1, 0)[0]

    @contextlib.contextmanager
    def untouched(self, tolerate: tuple[str, ...] = ()) -> Iterator[None]:
        """The block may be refused, answered or rate-limited, but it leaves no trace: no SES call,
        no mail or task at SES, no row added, changed or removed in the store (but in `tolerate`)."""
        calls = len(self.ses.calls)
        # Accepted SendEmail requests and tasks: the mails of a task started earlier are still being
        # fanned out by the emulator in the background.
        mails, tasks = len(self.ses.sent), self.tasks_at_ses()
        before = self.db.snapshot()
        yield
        assert self.actions(calls) == [], "SES was called"
        assert (len(self.ses.sent), self.tasks_at_ses()) == (mails, tasks), "SES sent mail"
        after = self.db.snapshot()
        changed = {table for table in set(before) | set(after)
                   if before.get(table) != after.get(table) and table not in tolerate}
        assert not changed, f"the store changed: {sorted(changed)}"


# A refusal because a recipient is suppressed is not a policy's (which happens before the store is
# read): the suppression list is asked in the same statement that takes the recipient's lease
# (sesmail.leases), which is given back at once. What it leaves is a keyed hash and a time.
SUPPRESSION_TRACE = ("sesmail_leases",)


def make_list(ses_fake: Any, name: str, emails: list[str]) -> int:
    """A recipient list made at SES outside sesmail (the SES console), ready to send to."""
    receiver_id = ses_fake.actions["CreateReceiver"]({"ReceiversName": name})["ReceiverId"]
    ses_fake.actions["CreateReceiverDetail"]({"ReceiverId": receiver_id, "Emails": emails})
    return int(receiver_id)


@pytest.fixture
def world(env, database, ses_fake, tmp_path, monkeypatch) -> Iterator[World]:
    lists = {
        "crm": make_list(ses_fake, "crm-customers", [f"customer{i}@crm.example" for i in range(40)]),
        "partner": make_list(ses_fake, "partner-readers", [f"reader{i}@readers.example" for i in range(3)]),
        "partner_big": make_list(ses_fake, "partner-everyone", [f"all{i}@readers.example" for i in range(8)]),
    }
    settings_file = tmp_path / "security.json"
    settings_file.write_text(json.dumps({
        "Templates": TEMPLATES, "Digests": DIGESTS,
        "Clients": policies([lists["partner"], lists["partner_big"]], [lists["crm"]])}))
    monkeypatch.setenv("SESMAIL_CONFIG", str(settings_file))
    monkeypatch.setenv("SESMAIL_API_KEYS", API_KEYS)
    monkeypatch.setenv("SESMAIL_ERASURE_KEY", ERASURE_KEY)
    config.reset()
    store.reset()
    policy.reset()
    ses.reset()
    ses_fake.calls.clear()
    yield World(ses_fake, database, lists, str(settings_file))
    store.reset()


# ---- Redis --------------------------------------------------------------------------------------

REDIS_URL = os.environ.get("SESMAIL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


class RedisKeys:
    def __init__(self, url: str, prefix: str) -> None:
        self.url, self.prefix = url, prefix

    def _command(self, *args: Any) -> Any:
        from sesmail import redis_client

        resp = redis_client.Connection(self.url, 2.0)
        try:
            return resp.command(*args)
        finally:
            resp.close()

    def keys(self) -> list[str]:
        found = self._command("KEYS", self.prefix.replace("{", "\\{") + "*") or []
        return [key.decode() if isinstance(key, bytes) else str(key) for key in found]

    def delete(self) -> None:
        keys = self.keys()
        if keys:
            self._command("DEL", *keys)


@pytest.fixture
def redis(world, monkeypatch) -> Iterator[RedisKeys]:
    """Policy counters in a real Redis (SESMAIL_REDIS_URL), under a key prefix of this test's own."""
    from sesmail import ratelimit, redis_client

    probe = redis_client.Connection(REDIS_URL, 2.0)
    try:
        probe.command("PING")
    except Exception as exc:
        problem = f"Redis at {REDIS_URL} unreachable ({type(exc).__name__}); set SESMAIL_TEST_REDIS_URL"
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true requires Redis: " + problem, pytrace=False)
        pytest.skip(problem)
    finally:
        probe.close()
    prefix = f"sesmail-test:{os.getpid()}:{secrets.token_hex(4)}:"
    original = ratelimit.SharedCounters.__init__

    def init(self, link, *args, **kwargs):  # every shared counter of this test under its own prefix
        kwargs.pop("prefix", None)
        fallback = kwargs.pop("fallback", args[1] if len(args) > 1 else None)
        original(self, link, prefix=prefix, fallback=fallback, **kwargs)

    monkeypatch.setattr(ratelimit.SharedCounters, "__init__", init)
    monkeypatch.setenv("SESMAIL_REDIS_URL", REDIS_URL)
    config.reset()
    ratelimit.reset()
    keys = RedisKeys(REDIS_URL, prefix)
    yield keys
    ratelimit.reset()
    keys.delete()
