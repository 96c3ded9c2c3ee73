"""Doubts that interleave: many requests to the SAME few recipients from one sender, with lost
replies, connections closed before SES acted and InternalErrors mixed at random, retried in random
order by several processes at once (as SCF instances would), on SQLite and PostgreSQL.

SES's status index has no subject: two attempts to one recipient whose windows overlap cannot be
told apart once both are in doubt, so the recipient leases (sesmail.leases) must keep them apart.
Checked against the emulator's own record of what it accepted:
- every Idempotency-Key ends with exactly one mail, whose content is its own;
- no answer carries another request's MessageId (keyed or not);
- no mail is sent twice.
`SESMAIL_LONG_TESTS=1` runs 8 processes and 400 requests; the default is 4 and 40.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter, defaultdict

import pytest

from tests.conftest import ROOT
from tests.events import sample_send_payload
from tests.fuzz.harness import LONG, postgres_database

SEED = int(os.environ.get("SESMAIL_FAULT_SEED", "20261130"))
PROCESSES = 8 if LONG else 4
KEYED, UNKEYED = (300, 100) if LONG else (28, 12)
RECIPIENTS = [f"carol{index}@example.com" for index in range(8 if LONG else 4)]
CHAOS = "SendEmail:drop_after=12%; SendEmail:drop_before=10%; SendEmail:error=InternalError@5%"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, env):
    if request.param == "sqlite":
        yield env["SESMAIL_DATABASE_URL"]
        return
    with postgres_database() as url:
        yield url


def requests_for(rng: random.Random) -> list[dict]:
    out = []
    for index in range(KEYED + UNKEYED):
        body = sample_send_payload()
        body["Destination"] = [rng.choice(RECIPIENTS)]
        body["Subject"] = f"mail {index}"
        body["Template"] = dict(body["Template"], TemplateData=json.dumps({"id": index}))
        out.append({"Id": index, "Key": f"key-{index}" if index < KEYED else None, "Body": body})
    return out


def test_interleaved_doubts_to_shared_recipients_end_with_one_own_mail_per_key(env, ses_fake, database_url,
                                                                              monkeypatch, fault_figures):
    monkeypatch.setattr(ses_fake, "rate_limit", 100_000)
    monkeypatch.setattr(ses_fake, "recipient_hourly_limit", 100_000)
    monkeypatch.setattr(ses_fake, "daily_quota", 100_000)
    ses_fake.set_chaos(f"{CHAOS}; seed={SEED}")
    rng = random.Random(SEED)
    requests = requests_for(rng)
    shares: list[list[dict]] = [[] for _ in range(PROCESSES)]
    for request in requests:
        # A keyed request is retried by two instances at once; one without a key by one.
        for worker in rng.sample(range(PROCESSES), 2 if request["Key"] else 1):
            shares[worker].append(request)
    worker_env = dict(env, SESMAIL_DATABASE_URL=database_url, SESMAIL_SETTLE_SECONDS="2")
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "layers", "sesmail")]))
    processes = [subprocess.Popen(
        [sys.executable, "-m", "tests.faults.doubt_worker",
         json.dumps({"Env": worker_env, "Seed": SEED + number, "Requests": share, "Seconds": 240})],
        cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for number, share in enumerate(shares)]
    answers: list[dict] = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-2000:]
        answers.extend(json.loads(line[7:]) for line in out.splitlines() if line.startswith("ANSWER "))

    mails = ses_fake.sent
    by_subject: dict[str, list[dict]] = defaultdict(list)
    for mail in mails:
        by_subject[mail["Subject"]].append(mail)
    duplicated = sum(len(found) - 1 for found in by_subject.values() if len(found) > 1)
    assert duplicated == 0, f"{duplicated} mails sent twice"
    subject_of = {mail["MessageId"]: mail["Subject"] for mail in mails}
    misattributed = [a for a in answers if a["Status"] == 200
                     and subject_of.get(a["MessageId"]) != f"mail {a['Id']}"]
    assert misattributed == [], f"answers carrying another request's MessageId: {misattributed[:3]}"
    final = {}
    for answer in answers:
        if answer["Key"] and answer["Status"] == 200:
            final.setdefault(answer["Key"], set()).add(answer["MessageId"])
    codes = Counter(f"{a['Status']} {a['Code'] or ''}".strip() for a in answers)
    lost = [r["Key"] for r in requests if r["Key"] and len(by_subject[f"mail {r['Id']}"]) != 1]
    assert lost == [], f"keys without exactly one mail: {lost[:5]}; answers {codes}"
    unanswered = [r["Key"] for r in requests if r["Key"] and r["Key"] not in final]
    assert unanswered == [], f"keys never answered 200: {unanswered[:5]}"
    assert all(len(ids) == 1 for ids in final.values())

    codes = Counter(f"{a['Status']} {a['Code'] or ''}".strip() for a in answers)
    fault_figures.add("interleaved-doubt runs", 1)
    fault_figures.add("interleaved-doubt keys", KEYED)
    fault_figures.add("interleaved-doubt sends without a key", UNKEYED)
    fault_figures.add("interleaved-doubt faults injected",
                      sum(1 for c in ses_fake.calls if c["Action"] == "SendEmail" and c["Outcome"] != "ok"))
    fault_figures.add("interleaved-doubt outcomes unknown", codes["503 InternalError.OutcomeUnknown"]
                      + codes["503 InternalError"])
    held = sum(1 for a in answers if a["Code"] == "ResourceInUse.OutcomeInDoubt" and a["Outcome"] == "NotSent")
    fault_figures.add("interleaved-doubt sends held back before SES (503, NotSent)", held)
    fault_figures.add("interleaved-doubt repeats before SES settled (503, Unknown)",
                      codes["503 ResourceInUse.OutcomeInDoubt"] - held)
    fault_figures.add("interleaved-doubt mails lost", 0)
    fault_figures.add("interleaved-doubt mails duplicated", duplicated)
    fault_figures.add("interleaved-doubt answers misattributed", len(misattributed))
