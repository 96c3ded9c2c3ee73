"""Property: for any traffic — mails logged, callbacks repeated, reordered, split into arrays, for
mails the sent log knows or not — the statistics equal a brute-force count over the raw events
(each mail's event once, filed under its mail's Beijing day, sender and template), on every
database."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # hypothesis needs Python 3.11+ (requirements-dev.txt installs it there)
    pytest.skip("hypothesis is not installed", allow_module_level=True)

from sesmail import events, stats
from sesmail.store.stats import day_of, hour_of, metric_of

NOW = float(int(time.time()) // 3600 * 3600)
SENDERS = ("news@shop.example", "deals@shop.example", "hello@other.example")
EVENTS = ("delivered", "deferred", "open", "click", "unsubscribe", "spamreport", "bounce:hard_bounce",
          "bounce:soft_bounce", "bounce:", "dropped")
RECIPIENTS = ("a@inbox.example", "B@inbox.example", "c@mail.example")
METRIC_COLUMN = {"delivered": 1, "hard": 2, "soft": 3, "complaint": 4, "unsubscribe": 5, "open": 6, "click": 7}

mails = st.lists(st.tuples(st.sampled_from(SENDERS), st.integers(1, 3), st.integers(0, 70 * 3600),
                           st.lists(st.sampled_from(RECIPIENTS), min_size=1, max_size=3, unique=True)),
                 min_size=1, max_size=6)
# (mail index, or one past the end: a mail the sent log does not know), recipient, event, seconds later
callbacks = st.lists(st.tuples(st.integers(0, 6), st.sampled_from(RECIPIENTS), st.sampled_from(EVENTS),
                               st.integers(0, 3)), max_size=30)


def unknown(index: int) -> dict:
    """What a callback of a mail missing from the sent log says about it: always the same per mail."""
    return {"from": SENDERS[index % 3], "templateId": 10 + index, "sentTimestamp": int(NOW) - 3600 * index}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mails=mails, traffic=callbacks, cut=st.integers(1, 7), data=st.data())
def test_statistics_equal_a_brute_force_count_of_the_raw_events(backend, stores, mails, traffic, cut, data):
    backend.clear()
    store = stores()
    expected: dict[tuple, list[int]] = {}
    sent_log = {}
    for index, (sender, template, ago, recipients) in enumerate(mails):
        message_id = f"m-{index}"
        sent_at = NOW - ago
        store.record_sent(message_id, "web", sender, recipients, sent_at, template_id=template)
        sent_log[message_id] = (sent_at, sender, template)
        expected.setdefault((day_of(sent_at), sender, template), [0] * 8)[0] += len(recipients)
    payloads = []
    for mail, recipient, name, later in traffic:
        event, _, bounce_type = name.partition(":")
        message_id = f"m-{mail}"
        payload = {"event": event, "email": recipient, "bulkId": message_id, "timestamp": int(NOW) + later}
        if bounce_type:
            payload["bounceType"] = bounce_type
        if message_id not in sent_log:
            payload.update(unknown(mail))
        payloads.append(payload)
    # The same callbacks again, in another order: SES may repeat one, and arrays come in any cut.
    payloads += data.draw(st.permutations(payloads))
    counted = set()
    for payload in payloads:
        metric = metric_of(payload["event"], payload.get("bounceType"))
        key = (metric, payload["bulkId"], payload["email"].lower())
        if metric is None or key in counted:
            continue
        counted.add(key)
        if payload["bulkId"] in sent_log:
            sent_at, sender, template = sent_log[payload["bulkId"]]
        else:
            sent_at, sender, template = payload["sentTimestamp"], payload["from"], payload["templateId"]
        expected.setdefault((day_of(sent_at), sender, template), [0] * 8)[METRIC_COLUMN[metric]] += 1
    secret = SimpleNamespace(erasure_key=None)
    for start in range(0, len(payloads), cut):
        lowered = [{k.lower(): v for k, v in p.items()} for p in payloads[start:start + cut]]
        rows = [events.normalise(fields, fields, NOW, 86400) for fields in lowered]
        store.ingest_events(rows, stats.facts(secret, lowered, rows, NOW))

    first, last = day_of(NOW) - 5, day_of(NOW)
    for by, position in (("day", 0), ("sender", 1), ("template", 2)):
        want: dict = {}
        for key, counts in expected.items():
            total = want.setdefault(key[position], [0] * 8)
            for index, count in enumerate(counts):
                total[index] += count
        assert {row[0]: list(row[1:]) for row in store.stats_rows(first, last, by)} == want, by
    # the guard's hours agree with the days: every mail and every hard bounce and report, once
    window = store.guard_window("shop.example", hour_of(NOW) - 24 * 7)["*"]
    assert (window["Sent"], window["HardBounces"], window["Complaints"]) == (
        sum(c[0] for c in expected.values()), sum(c[2] for c in expected.values()),
        sum(c[4] for c in expected.values()))
