"""Digests under the faults of the interleaved-doubt suite, to recipients that /send mails at the
same time from the same sender, on SQLite and PostgreSQL.

A digest item claimed by a run whose SendEmail reply was lost (or whose connection closed before
SES acted) stays `sending`; a later run, once the first one's time limit has passed, asks SES's
status index (GetSendEmailStatus) and either marks it sent with the MessageId it finds or retries
it. The status index has no subject: only the recipient leases (sesmail.leases), which digests and
/send both take per (sender, To address), keep a digest's window apart from a /send's. Here a
digest timer fires every second with a 3 s time limit while threads POST /send with their own
Idempotency-Keys (retried on 409, 429 and 503) to the same recipients, and SES loses replies and
drops connections at random. Checked against the emulator's record of what it accepted and the
digest items as stored:
- every digest item is in exactly one accepted digest mail, to its own recipient, and the item's
  `carrier` is that mail's MessageId (none lost, none sent twice, none carried by a /send mail);
- every Idempotency-Key ends with exactly one mail, its own, and every 200 for it carries that
  mail's MessageId (never a digest's, never another key's).
`SESMAIL_FAULT_SEED` picks the faults; `SESMAIL_LONG_TESTS=1` runs more recipients, items and sends.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter, defaultdict
from typing import Any

import pytest

from sesmail import config, digest, leases, transport
from tests import db
from tests.conftest import ROOT, load_function
from tests.events import context, http_event, sample_send_payload
from tests.fuzz.harness import LONG, check_answer

SEED = int(os.environ.get("SESMAIL_FAULT_SEED", "20261201"))
RECIPIENTS = [f"dana{index}@example.com" for index in range(12 if LONG else 6)]
ITEMS_PER_RECIPIENT = 20 if LONG else 10
SENDS_PER_RECIPIENT = 12 if LONG else 6
THREADS = 8 if LONG else 4
WAVES = 10 if LONG else 5  # the items are queued in this many waves, one per timer run
SPREAD_S = 30.0 if LONG else 12.0  # the sends' first attempts are spread over this long
BUDGET_S = 240.0 if LONG else 60.0  # the digest timer stops firing after this long
TIME_LIMIT_MS = 3000  # the digest run's: its stale items are resolvable about 3 s after their claim
CHAOS = "SendEmail:drop_after=15%; SendEmail:drop_before=10%"
# The same sender address as the /send sample's (another display name: leases go by the address).
DIGEST_FROM = "Digest <noreply@mail.qcloud.com>"
DIGEST_SUBJECT = "Your digest of the day"
TRIGGER = "digest-doubts"


@pytest.fixture
def short_windows(env, database, ses_fake, tmp_path, monkeypatch):
    """A digest in the config file; SES's limits out of the way; windows of about 2 s (the
    emulator's RequestTime and our clock are one clock: no skew to allow for)."""
    settings_file = tmp_path / "digest-doubts.json"
    settings_file.write_text(json.dumps({"Templates": {"welcome": 100091}, "Digests": {"daily": {
        "FromEmailAddress": DIGEST_FROM, "Subject": DIGEST_SUBJECT, "Template": {"TemplateName": "welcome"},
        "TemplateData": {"ids": "join(',', [].id)"}, "MaxAttempts": 50}}}))
    monkeypatch.setenv("SESMAIL_CONFIG", str(settings_file))
    monkeypatch.setenv("SESMAIL_SETTLE_SECONDS", "1")
    monkeypatch.setattr(leases, "CLOCK_SKEW_S", 0)
    monkeypatch.setattr(leases, "MARGIN_S", 2)
    monkeypatch.setattr(leases, "WAIT_S", 1.0)
    monkeypatch.setattr(transport, "BACKOFF_BASE_S", 0.001)
    monkeypatch.setattr(ses_fake, "rate_limit", 100_000)
    monkeypatch.setattr(ses_fake, "recipient_hourly_limit", 100_000)
    monkeypatch.setattr(ses_fake, "daily_quota", 100_000)
    config.reset()
    return database


def send_requests() -> list[dict]:
    out = []
    for number, recipient in enumerate(RECIPIENTS):
        for index in range(SENDS_PER_RECIPIENT):
            ident = number * SENDS_PER_RECIPIENT + index
            body = sample_send_payload()
            body["Destination"] = [recipient]
            body["Subject"] = f"order {ident}"
            body["Template"] = dict(body["Template"], TemplateData=json.dumps({"code": str(ident)}))
            out.append({"Id": ident, "Key": f"order-{ident}", "Body": body, "At": 0.0})
    return out


def digest_items() -> list[dict]:
    return [{"Digest": "daily", "Email": recipient, "Item": {"id": f"i{number}-{index}", "title": f"news {index}"}}
            for number, recipient in enumerate(RECIPIENTS) for index in range(ITEMS_PER_RECIPIENT)]


class Callers:
    """Threads that each work through their share of keyed sends, in random order, retrying a key
    (same key, same body) on 409, 429 and 503 until its 200."""

    def __init__(self, send, requests: list[dict], rng: random.Random, started: float, give_up: float) -> None:
        self.send, self.give_up = send, give_up
        for request in requests:  # when its caller first tries it: sends keep coming while digests run
            request["At"] = started + rng.uniform(0, SPREAD_S)
        self.answers: list[dict] = []
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()
        shares: list[list[dict]] = [[] for _ in range(THREADS)]
        for request in requests:
            # A third of the keys are retried by two callers at once (409s while one is running).
            for worker in rng.sample(range(THREADS), 2 if rng.random() < 0.33 else 1):
                shares[worker].append(request)
        self.threads = [threading.Thread(target=self._work, args=(share, random.Random(rng.random())), daemon=True)
                        for share in shares]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        for thread in self.threads:
            thread.join(max(1.0, self.give_up - time.monotonic() + 30))
        assert not any(thread.is_alive() for thread in self.threads), "a /send caller never finished"

    def _work(self, share: list[dict], rng: random.Random) -> None:
        try:
            pending = list(share)
            while pending and time.monotonic() < self.give_up:
                due = [request for request in pending if request["At"] <= time.monotonic()]
                if not due:
                    time.sleep(0.05)
                    continue
                request = rng.choice(due)
                result = self.send(http_event(request["Body"], headers={"Idempotency-Key": request["Key"]}),
                                   context(time_limit_ms=10000))
                body = check_answer(result, [], faults=True)
                status, error = result["statusCode"], body.get("Error") or {}
                with self.lock:
                    self.answers.append({"Id": request["Id"], "Key": request["Key"], "Status": status,
                                         "Code": error.get("Code"), "Outcome": error.get("Outcome"),
                                         "MessageId": body.get("MessageId")})
                if status == 200:
                    pending.remove(request)
                else:
                    assert status in (409, 429, 503), result
                    time.sleep(rng.uniform(0.05, 0.4))
        except BaseException as exc:  # reported by the test, not lost with the thread
            with self.lock:
                self.errors.append(exc)


def timer_event(number: int) -> dict:
    return {"Type": "Timer", "TriggerName": TRIGGER, "Time": f"2026-12-01T00:{number // 60:02d}:{number % 60:02d}Z",
            "Message": "daily"}


def item_rows(kind: str, url: str) -> dict[str, dict[str, Any]]:
    """The digest items as stored, by their Item's id."""
    rows = db.execute(url, "SELECT item, email, state, carrier, attempts FROM sesmail_digest_items"
                               " WHERE digest = 'daily'")
    return {json.loads(item)["id"]: {"Email": email, "State": state, "Carrier": carrier, "Attempts": attempts}
            for item, email, state, carrier, attempts in rows}


def test_digests_in_doubt_beside_sends_to_the_same_recipients_end_with_one_own_mail_each(
        short_windows, ses_fake, fault_figures):
    kind, url = short_windows
    batch = load_function("batch").main_handler
    send = load_function("send").main_handler
    rng = random.Random(SEED)
    items = digest_items()
    rng.shuffle(items)
    # A wave of items before the first run, another after each of the next runs, while earlier
    # digests (and their doubts) are under way.
    waves = [items[wave::WAVES] for wave in range(WAVES)]
    settings = config.load(os.path.join(ROOT, "functions", "batch"))
    digest.queue(settings, waves[0])
    requests = send_requests()
    ses_fake.set_chaos(f"{CHAOS}; seed={SEED}")
    started = time.monotonic()
    callers = Callers(send, requests, rng, started, started + BUDGET_S)
    callers.start()

    # The digest timer fires every second, each time with a new Time (a new run), until every item
    # is settled or the budget is spent. A run that raises is what SCF would retry; the next fire
    # takes over anyway.
    runs, raised, results = 0, 0, Counter()
    rows: dict[str, dict[str, Any]] = {}
    while True:
        runs += 1
        try:
            answer = batch(timer_event(runs), context(time_limit_ms=TIME_LIMIT_MS))
            body = json.loads(answer["body"])
            for name in ("Sent", "Skipped", "Failed", "Deferred"):
                results[name] += body.get(name, 0)
        except Exception:  # SCF sees any exception as a failed run
            raised += 1
        if runs < WAVES:
            digest.queue(settings, waves[runs])
        rows = item_rows(kind, url)
        settled = runs >= WAVES and all(row["State"] in ("sent", "skipped") for row in rows.values())
        if settled or time.monotonic() - started > BUDGET_S:
            break
        time.sleep(1.0)
    callers.join()
    ses_fake.set_chaos("")
    elapsed = time.monotonic() - started
    assert not callers.errors, callers.errors[:3]

    mails = ses_fake.sent
    by_id = {mail["MessageId"]: mail for mail in mails}
    subjects = {f"order {request['Id']}": request["Key"] for request in requests}

    def what(message_id: str | None) -> str:
        mail = by_id.get(message_id or "")
        return "no accepted mail" if mail is None else f"{mail['Subject']!r} to {mail['Destination'][0]}"

    # -- the digest items: each in exactly one accepted digest mail, which is its carrier --------
    digests = [mail for mail in mails if mail["Subject"] == DIGEST_SUBJECT]
    carried_by: dict[str, list[dict]] = defaultdict(list)
    for mail in digests:
        for ident in json.loads(mail["Template"]["TemplateData"])["ids"].split(","):
            carried_by[ident].append(mail)
    wanted = {item["Item"]["id"]: item["Email"] for item in items}
    unsettled = {ident: row["State"] for ident, row in rows.items() if row["State"] != "sent"}
    duplicated = {ident: len(found) for ident, found in carried_by.items() if len(found) > 1}
    lost = sorted(set(wanted) - set(carried_by))
    unknown = sorted(set(carried_by) - set(wanted))
    stray = sorted(ident for ident, found in carried_by.items()
                   if any(mail["Destination"] != [wanted.get(ident)] for mail in found))
    misattributed_carriers = {ident: what(row["Carrier"]) for ident, row in rows.items()
                              if ident in carried_by and row["Carrier"] != carried_by[ident][0]["MessageId"]}

    # -- the sends: one own mail per key, and every 200 carries it ------------------------------
    by_subject: dict[str, list[dict]] = defaultdict(list)
    for mail in mails:
        by_subject[mail["Subject"]].append(mail)
    send_duplicated = {subjects[subject]: len(by_subject[subject]) for subject in subjects
                       if len(by_subject[subject]) > 1}
    unsent = [key for subject, key in subjects.items() if not by_subject[subject]]
    answered = [answer for answer in callers.answers if answer["Status"] == 200]
    misattributed = {answer["Key"]: what(answer["MessageId"]) for answer in answered
                     if (by_id.get(answer["MessageId"]) or {}).get("Subject") != f"order {answer['Id']}"}
    final: dict[str, set[str]] = defaultdict(set)
    for answer in answered:
        final[answer["Key"]].add(answer["MessageId"])
    unanswered = [request["Key"] for request in requests if request["Key"] not in final]
    changed = sorted(key for key, ids in final.items() if len(ids) > 1)
    strays = [mail["Subject"] for mail in mails if mail["Subject"] not in {*subjects, DIGEST_SUBJECT}]
    codes = Counter(f"{a['Status']} {a['Code'] or ''}".strip() for a in callers.answers)

    broken = {name: found for name, found in (
        ("items not sent", unsettled), ("items in more than one digest mail", duplicated),
        ("items in no accepted digest mail", lost), ("items nobody queued", unknown),
        ("items mailed to another recipient", stray), ("items whose carrier is not their mail", misattributed_carriers),
        ("keys with more than one mail", send_duplicated), ("keys without a mail", unsent),
        ("keys answered with a mail not theirs", misattributed), ("keys never answered 200", unanswered),
        ("keys answered with two MessageIds", changed), ("mails nobody asked for", strays)) if found}
    assert set(rows) == set(wanted), "the store does not hold the items queued"
    assert not broken, (f"{broken}; after {runs} timer runs in {elapsed:.0f} s (run results {dict(results)},"
                        f" {raised} raised); /send answers {dict(codes)}")

    calls = [call for call in ses_fake.calls if call["Action"] == "SendEmail"]
    digest_calls = [call for call in calls if call["Params"].get("Subject") == DIGEST_SUBJECT]
    fault_figures.add(f"digest-doubt runs ({kind})", 1)
    fault_figures.add("digest-doubt items", len(items))
    fault_figures.add("digest-doubt sends", len(requests))
    fault_figures.add("digest-doubt timer runs", runs)
    fault_figures.add("digest-doubt faults injected", sum(1 for call in calls if call["Outcome"] != "ok"))
    fault_figures.add("digest-doubt digest outcomes unknown", sum(1 for c in digest_calls if c["Outcome"] != "ok"))
    fault_figures.add("digest-doubt send outcomes unknown", codes["503 InternalError.OutcomeUnknown"]
                      + codes["503 InternalError"])
    fault_figures.add("digest-doubt held back (503 ResourceInUse.OutcomeInDoubt)",
                      codes["503 ResourceInUse.OutcomeInDoubt"])
    fault_figures.add("digest-doubt digests deferred (recipient busy)", results["Deferred"])
    fault_figures.add("digest-doubt items lost", len(lost))
    fault_figures.add("digest-doubt items duplicated", len(duplicated))
    fault_figures.add("digest-doubt sends duplicated", len(send_duplicated))
    fault_figures.add("digest-doubt answers misattributed", len(misattributed))
    fault_figures.add("digest-doubt carriers misattributed", len(misattributed_carriers))
    fault_figures.notes[f"digest-doubt run ({kind}, seed {SEED})"] = (
        f"{elapsed:.1f} s, {runs} timer runs ({raised} raised), results {dict(results)};"
        f" digest mails {len(digests)} for {len(items)} items; SendEmail calls {len(calls)}"
        f" ({dict(Counter(c['Outcome'] for c in calls))}); /send answers {dict(codes)}")
