"""Fixtures of the fuzz suite: the three functions on SQLite or PostgreSQL, with a settings file
that switches every feature on (digests, client policies, CORS, the AppId check), each answer
checked against the invariants of `harness.check_answer`, and the figures printed at the end."""

from __future__ import annotations

import json

import pytest

from sesmail import batching, config, log, policy, store, transport
from tests.conftest import load_function
from tests.events import context
from tests.fuzz.harness import Figures, check_answer, figures_of, postgres_database

FUNCTIONS = ("send", "batch", "webhook")
APPID = "251200670"  # the `username` of the callback samples
WEB_ORIGIN = "https://shop.example"
SETTINGS = {
    "Templates": {"welcome": 100091},
    "Digests": {"daily": {"FromEmailAddress": "Digest <digest@mail.example.com>", "Subject": "Your day",
                          "Template": {"TemplateName": "welcome"},
                          "TemplateData": {"count": "length(@)", "titles": "join(', ', [].title)"}}},
    # The `web` client (keys web-key-1, web-key-2) is a browser key with every rule set.
    "Clients": {"web": {"Scopes": ["send", "batch", "digest"], "Origins": [WEB_ORIGIN],
                        "Templates": ["welcome", 100091], "Senders": ["@mail.qcloud.com", "@mail.example.com"],
                        "ReplyTo": "*", "Headers": ["X-Order-Id"], "Digests": ["daily"], "MaxRecipients": 5,
                        "MailsPerRecipientPerHour": 3}},
}


# A ReceiverId names a list at SES that the layer cannot see (the caller's, docs/api.md): SES alone
# can refuse it, so these refusals come after the one BatchSendEmail call.
SES_ONLY_CODES = ("OperationDenied.ReceiverNotExist", "OperationDenied.ReceiverStatusError")
RECEIVER_ID = 42  # the ReceiverId of the batch payloads; mapped to a list made for each example


class Harness:
    """Invoke a function as SCF would, then check the answer, the SES traffic and the log lines."""

    def __init__(self, ses_fake, lines: list[str], figures: Figures, label: str, backend: str) -> None:
        self.ses, self.lines, self.figures, self.label, self.backend = ses_fake, lines, figures, label, backend
        self.handlers = {name: load_function(name).main_handler for name in FUNCTIONS}
        self.last: dict = {}
        self.receiver_id = 0

    def _own_list(self) -> None:
        """A ready recipient list at the emulator, made in-process (not an SES call of the function)."""
        actions = self.ses.actions
        self.receiver_id = actions["CreateReceiver"]({"ReceiversName": "fuzz"})["ReceiverId"]
        actions["CreateReceiverDetail"]({"ReceiverId": self.receiver_id, "Emails": ["list@example.com"]})

    def invoke(self, function: str, event, markers: tuple[str, ...] = ()) -> tuple[int, dict]:
        self.ses.reset()
        policy.reset()  # rate counters would make an example depend on the ones before it
        self.lines.clear()
        self._own_list()
        result = self.last = self.handlers[function](event, context())
        self.figures.add("cases fuzzed")
        self.figures.add(f"cases fuzzed ({self.label})")
        self.figures.add(f"answers {result.get('statusCode')}")
        calls = list(self.ses.calls)
        if result.get("statusCode") in (403, 404) and [call["Action"] for call in calls] == ["BatchSendEmail"] \
                and any(code in str(result.get("body")) for code in SES_ONLY_CODES):
            calls = []
            self.figures.add("refused by SES only (a ReceiverId the layer cannot see)")
        try:
            body = check_answer(result, calls, markers)
        except AssertionError as exc:  # the same failure, with the event and the log that led to it
            raise AssertionError(f"{exc}\n{function} event: {repr(event)[:1500]}\nlog: {self.lines[-3:]}") from None
        if markers and result["statusCode"] >= 400:
            self.figures.add("error answers checked for a planted marker")
        for line in self.lines:
            for marker in markers:
                assert marker not in line, f"a log line carries a value the caller sent: {line}"
        return result["statusCode"], body


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def fuzz_figures(request) -> Figures:
    return figures_of(request.config, "_sesmail_fuzz_figures")


@pytest.fixture
def app(env, ses_fake, backend, tmp_path, monkeypatch, request, fuzz_figures):
    harness: Harness | None = None
    batch_send = ses_fake.actions["BatchSendEmail"]

    def batch_on_own_list(params):
        if params.get("ReceiverId") == RECEIVER_ID and harness is not None:
            params = dict(params, ReceiverId=harness.receiver_id)
        return batch_send(params)

    monkeypatch.setitem(ses_fake.actions, "BatchSendEmail", batch_on_own_list)
    settings_file = tmp_path / "fuzz.json"
    settings_file.write_text(json.dumps(SETTINGS))
    monkeypatch.setenv("SESMAIL_CONFIG", str(settings_file))
    monkeypatch.setenv("SESMAIL_DEFAULT_SENDER", "noreply@mail.example.com")
    monkeypatch.setenv("SESMAIL_APPID", APPID)
    monkeypatch.setattr(transport, "BACKOFF_BASE_S", 0.001)
    monkeypatch.setattr(batching, "POLL_FIRST_S", 0.01)
    lines: list[str] = []
    write = log._write  # already wrapped by the autouse log check of tests/conftest.py

    def capture(level, message, fields):
        write(level, message, fields)
        # The event names of stored callbacks are logged by design (Names): not an echo of a value.
        lines.append(log._encode(dict({k: v for k, v in fields.items() if k != "Names"}, Message=message,
                                      **log.context())))

    monkeypatch.setattr(log, "_write", capture)
    label = f"{request.node.originalname}, {backend}"
    if backend == "postgresql":
        with postgres_database() as url:
            monkeypatch.setenv("SESMAIL_DATABASE_URL", url)
            config.reset()
            store.reset()
            harness = Harness(ses_fake, lines, fuzz_figures, label, backend)
            yield harness
            store.reset()
    else:
        config.reset()
        store.reset()
        harness = Harness(ses_fake, lines, fuzz_figures, label, backend)
        yield harness
        store.reset()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    figures = getattr(config, "_sesmail_fuzz_figures", None)
    if figures is not None and figures.counts:
        terminalreporter.section("sesmail fuzz figures")
        for line in figures.lines():
            terminalreporter.write_line(line)
