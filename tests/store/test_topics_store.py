"""The store's part of topics (docs/topics.md), on SQLite, PostgreSQL and MariaDB: topic
unsubscribes are suppressions under `topic:<name>` (names of up to 32 characters), asked in the
same one statement as before, lifted one by one, kept through an erasure; the mail an unsubscribe
link came in is found in the sent log."""

from __future__ import annotations

from sesmail import topics

NOW = 1_795_000_000.0
HASH_A = "a" * 64
LONGEST = topics.topic_scope("t" * 32)
K1 = "1" * 64


def test_a_topic_unsubscribe_counts_for_its_topic_only_and_all_marketing_for_every_topic(store, backend):
    store.suppress("a@example.com", LONGEST, "unsubscribe", "one-click", NOW)
    store.suppress("b@example.com", "marketing", "unsubscribe", "callback", NOW)
    emails = ["a@example.com", "b@example.com", "c@example.com"]
    hashes = {email: str(n) * 64 for n, email in enumerate(emails)}
    assert set(store.suppressions_for(emails, LONGEST, hashes=hashes)) == {"a@example.com", "b@example.com"}
    assert set(store.suppressions_for(emails, topics.topic_scope("other"), hashes=hashes)) == {"b@example.com"}
    assert set(store.suppressions_for(emails, True, hashes=hashes)) == {"b@example.com"}
    assert store.suppressions_for(emails, False, hashes=hashes) == {}
    found, blocked = store.admit(emails, LONGEST, hashes, [K1], "owner", NOW + 30, NOW)
    assert blocked is None
    assert found["a@example.com"] == {"Scope": LONGEST, "Reason": "unsubscribe"}


def test_scopes_are_listed_and_lifted_one_by_one_also_after_an_erasure(store, backend):
    store.suppress("a@example.com", topics.topic_scope("news"), "unsubscribe", "one-click", NOW)
    store.suppress("a@example.com", topics.topic_scope("offers"), "unsubscribe", "preferences", NOW)
    store.suppress("a@example.com", "all", "hard_bounce", "callback", NOW)
    assert store.suppression_scopes("A@example.com", HASH_A) == {"topic:news", "topic:offers", "all"}
    kept = store.erase_address("a@example.com", HASH_A)["SuppressionsKept"]
    assert kept == 3
    assert store.suppression_scopes("a@example.com", HASH_A) == {"topic:news", "topic:offers", "all"}
    assert store.suppressions_for(["a@example.com"], topics.topic_scope("news"),
                                  hashes={"a@example.com": HASH_A})["a@example.com"]["Scope"] == "all"
    assert store.unsuppress_scopes("a@example.com", HASH_A, ["topic:news"]) == 1
    assert store.unsuppress_scopes("a@example.com", HASH_A, []) == 0
    assert store.suppression_scopes("a@example.com", HASH_A) == {"topic:offers", "all"}
    assert not [row for row in backend.execute("SELECT email FROM sesmail_suppressions") if "@" in row[0]]


def test_sent_to_finds_the_first_mail_to_the_address_in_the_window(store, backend):
    store.record_sent("m-early", "c", "s@example.com", ["a@example.com"], NOW - 100)
    store.record_sent("m-other", "c", "s@example.com", ["ba@example.com"], NOW + 1)
    store.record_sent("m-one", "c", "s@example.com", ["x@example.com", "a@example.com"], NOW + 2)
    store.record_sent("m-two", "c", "s@example.com", ["a@example.com"], NOW + 3)
    assert store.sent_to("A@example.com", NOW - 5, NOW + 60) == "m-one"
    assert store.sent_to("nobody@example.com", NOW - 5, NOW + 60) is None
    assert store.sent_to("a_example.com", NOW - 500, NOW + 60) is None  # LIKE's wildcards are literal
