"""A mistyped policy fails closed, and says where.

An unknown or mistyped field under `Clients` once answered every request with a bare 500 whose
log line said only `ValueError`. A policy the operator got wrong must never widen what a key may
do: every request is refused before SES is called or anything is stored, and the refused request's
log line names the config file, the path (`Clients.web.Scopes[1]`) and the rule. On SQLite.
"""

from __future__ import annotations

import json

import pytest

from sesmail import config
from tests.security.conftest import SERVER, WEB, web_mail


def broken(world, client: str, change: dict, drop: tuple[str, ...] = ()) -> None:
    with open(world.settings_file, encoding="utf-8") as handle:
        settings = json.load(handle)
    policy = settings["Clients"][client]
    for name in drop:
        policy.pop(name)
    policy.update(change)
    with open(world.settings_file, "w", encoding="utf-8") as handle:
        json.dump(settings, handle)
    config.reset()


@pytest.mark.parametrize(("client", "change", "drop", "path"), [
    ("web", {"Scope": ["send"]}, ("Scopes",), "Clients.web.Scope"),
    ("web", {}, ("Scopes",), "Clients.web.Scopes"),
    ("web", {"Scopes": ["send", "sned"]}, (), "Clients.web.Scopes[1]"),
    ("web", {"MaxRecipient": 1}, (), "Clients.web.MaxRecipient"),
    ("web", {"MaxRecipients": "1"}, (), "Clients.web.MaxRecipients"),
    ("web", {"Senders": "noreply@shop.example"}, (), "Clients.web.Senders"),
    ("feed", {"Digests": ["daily", "dialy"]}, (), "Clients.feed.Digests[1]"),
], ids=["misspelt-field", "no-scopes", "unknown-scope", "unknown-field", "wrong-type", "not-a-list",
        "unknown-digest"])
@pytest.mark.parametrize("key", [WEB, SERVER])
def test_a_config_error_refuses_every_key_and_names_file_path_and_rule(world, capsys, client, change, drop, path,
                                                                       key):
    broken(world, client, change, drop)
    capsys.readouterr()
    with world.untouched():
        answer = world.send(web_mail(), key=key)
    logged = capsys.readouterr().out
    assert answer.status >= 500, answer
    assert world.settings_file not in json.dumps(answer.body) and path not in json.dumps(answer.body)
    lines = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    naming = [line for line in lines if path in json.dumps(line) and world.settings_file in json.dumps(line)]
    assert naming, lines
    assert "ValueError" not in json.dumps(naming[0])  # a rule in words, not an exception's name
