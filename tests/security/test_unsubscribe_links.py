"""Attacks on the readers' links (docs/topics.md): forged and altered tokens, other keys trying to
resubscribe a reader, callers smuggling their own unsubscribe headers, tokens in logs."""

from __future__ import annotations

import base64
import hmac
import json

import pytest

from sesmail import config, topics
from tests.events import context, http_event
from tests.functional import test_topics as shared
from tests.functional.test_topics import READER, SECRET, mail, one_click, scopes, send, sent_token

topic_env, handlers = shared.topic_env, shared.handlers  # the functional suite's fixtures


def test_every_single_character_change_of_a_token_is_refused(handlers, ses_fake):
    token = sent_token(handlers, ses_fake)
    alphabet = "AB-_09zZ"
    for index in range(len(token)):
        replacement = next(c for c in alphabet if c != token[index])
        forged = token[:index] + replacement + token[index + 1:]
        # the last character may carry padding bits only: decoding can ignore them
        if base64.urlsafe_b64decode(forged + "=" * (-len(forged) % 4)) == base64.urlsafe_b64decode(
                token + "=" * (-len(token) % 4)):
            continue
        assert one_click(handlers, forged)[0] == 403, index
    assert scopes() == set()


def test_a_token_cannot_be_reused_for_another_reader_or_extended(handlers, ses_fake):
    token = sent_token(handlers, ses_fake)
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    # the address is encrypted: flipping its bits to aim at another reader breaks the tag
    other = bytes(raw[:-3]) + bytes(b ^ 1 for b in raw[-3:])
    assert one_click(handlers, base64.urlsafe_b64encode(other).rstrip(b"=").decode())[0] == 403
    longer = base64.urlsafe_b64encode(raw + b"x").rstrip(b"=").decode()
    assert one_click(handlers, longer)[0] == 403
    version = base64.urlsafe_b64encode(b"\x02" + raw[1:]).rstrip(b"=").decode()
    assert one_click(handlers, version)[0] == 403


def test_a_token_signed_with_a_guessed_secret_is_refused(handlers, ses_fake):
    for guess in ("", "dev-key", "hook-secret-1", SECRET[:-1], SECRET + "x"):
        forged = topics.mint([guess or "x" * 16], READER, None)
        assert one_click(handlers, forged)[0] == 403


def test_tags_are_compared_in_constant_time(monkeypatch):
    compared = []
    real = hmac.compare_digest

    def spy(a, b):
        compared.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(topics.hmac, "compare_digest", spy)
    token = topics.mint([SECRET], READER, "news")
    with pytest.raises(topics.Forbidden):
        topics.open_token(["another-secret-0123456789", SECRET], token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))
    assert (16, 16) in compared  # the tag, through compare_digest


@pytest.fixture
def narrow(topic_env, tmp_path, monkeypatch):
    """A client whose key may only send: the narrowest key there is."""
    settings = json.loads((tmp_path / "topics.json").read_text())
    settings["Clients"] = {"web": {"Scopes": ["send"], "Senders": ["@mail.example.com"]}}
    (tmp_path / "topics.json").write_text(json.dumps(settings))
    config.reset()


@pytest.mark.parametrize(("method", "path", "body", "query"), [
    ("DELETE", f"/suppressions/{READER}", None, {"Topic": "news"}),
    ("DELETE", f"/suppressions/{READER}", None, None),
    ("PUT", f"/suppressions/{READER}", {"Topic": "news"}, None),
    ("GET", "/suppressions", None, None),
])
def test_the_narrowest_key_cannot_resubscribe_or_read_suppressions(handlers, ses_fake, narrow, method, path, body,
                                                                   query):
    assert one_click(handlers, sent_token(handlers, ses_fake))[0] == 200
    result = handlers["send"](http_event(body, method=method, path=path, key="web-key-1", query=query), context())
    assert result["statusCode"] == 403
    assert json.loads(result["body"])["Error"]["Code"] == "UnauthorizedOperation.ScopeNotAllowed"
    assert scopes() == {"topic:news"}


def test_the_narrowest_key_cannot_set_the_two_headers(handlers, ses_fake, narrow):
    status, body = send(handlers, mail(SmtpHeaders={"List-Unsubscribe": "<https://evil.example/u>"}), key="web-key-1")
    assert status == 403 and body["Error"]["Code"] == "UnauthorizedOperation.HeaderNotAllowed"
    assert ses_fake.calls == []


def test_a_webhook_secret_or_an_api_key_is_no_unsubscribe_token(handlers, ses_fake):
    assert one_click(handlers, sent_token(handlers, ses_fake))[0] == 200
    for token in ("hook-secret-1", "dev-key", SECRET):
        for path in ("/unsubscribe", "/preferences"):
            result = handlers["webhook"](http_event("action=save&topic=news&topic=offers", path=path, key="dev-key",
                                                    query={"t": token, "token": "hook-secret-1"},
                                                    headers={"content-type": "application/x-www-form-urlencoded"}),
                                         context())
            assert result["statusCode"] == 403
    assert scopes() == {"topic:news"}
