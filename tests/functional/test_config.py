"""The config file is checked whole when it is read: a fault is a ConfigError naming the file, the
path and the rule, in the log line of every request it refuses (which answers 500 without detail)."""

from __future__ import annotations

import json

import pytest

from sesmail import config
from sesmail.errors import ConfigError
from tests.conftest import load_function
from tests.events import context, http_event, sample_send_payload

GOOD = {
    "Senders": [{"EmailAddress": "noreply@shop.example", "EmailSenderName": "Shop"}],
    "Templates": {"welcome": 100091, "digest": "100092"},
    "TemplateVariables": {"100091": ["code"]},
    "Digests": {"daily": {"FromEmailAddress": "Shop <digest@shop.example>", "Subject": "Yours",
                          "Template": {"TemplateName": "digest"}, "TemplateData": {"n": "length(@)"},
                          "TriggerType": 0, "MaxAttempts": 3, "BatchAbove": 100, "Workers": 4}},
    "Clients": {"web": {"Scopes": ["send", "digest"], "Templates": ["welcome", 100093],
                        "Senders": ["noreply@shop.example", "@mail.shop.example"], "ReplyTo": "*",
                        "Headers": ["X-Order-Id"], "Digests": ["daily"], "Receivers": [42], "MaxRecipients": 1,
                        "RequestsPerMinute": 60, "MailsPerRecipientPerHour": 3,
                        "Origins": ["https://shop.example", "http://127.0.0.1:5173"]},
                "admin": {"Scopes": ["admin"]}, "ops-2": {"Scopes": []}},
    "EventHook": "hooks:on_event",
}


def check(changes: dict) -> str:
    """The error's text for GOOD with `changes` applied at dotted paths (None deletes)."""
    data = json.loads(json.dumps(GOOD))
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = data
        for name in parents:
            node = node[name]
        if value is None:
            del node[last]
        else:
            node[last] = value
    with pytest.raises(ConfigError) as caught:
        config.check_file("sesmail.json", data)
    return str(caught.value)


def test_a_complete_config_file_passes():
    config.check_file("sesmail.json", GOOD)
    config.check_file("sesmail.json", {})


@pytest.mark.parametrize(("changes", "error"), [
    ({"Client": {}}, "sesmail.json: Client: is not a field of the config file; known: Senders, Templates,"
                     " TemplateVariables, Digests, Clients, EventHook, Guard, Topics"),
    ({"Clients.web.Sender": ["a@shop.example"]}, "sesmail.json: Clients.web.Sender: is not a field of a client's "
                                                 "policy; known: Scopes, Templates, Senders, ReplyTo, Headers, "
                                                 "Digests, Receivers, MaxRecipients, RequestsPerMinute, "
                                                 "MailsPerRecipientPerHour, Origins"),
    ({"Clients.web.Scopes": None}, "sesmail.json: Clients.web.Scopes: is required: a policy names the scopes its"
                                   " keys may use (send, batch, digest, stats, admin)"),
    ({"Clients.web.Scopes": ["send", "mail"]}, "sesmail.json: Clients.web.Scopes[1]: must be one of send, batch,"
                                               " digest, stats, admin"),
    ({"Clients.web.Scopes": "send"}, "sesmail.json: Clients.web.Scopes: must be a list of scopes"),
    ({"Clients.web.Digests": ["daily", "weekly"]}, "sesmail.json: Clients.web.Digests[1]: names no digest declared"
                                                   " under Digests"),
    ({"Clients.web.Templates": ["welcome", "wellcome"]}, "sesmail.json: Clients.web.Templates[1]: names no template"
                                                         " in Templates (`make sync` writes them)"),
    ({"Digests.daily.Template": {"TemplateName": "daily"}}, "sesmail.json: Digests.daily.Template.TemplateName:"
                                                            " names no template in Templates (`make sync` writes"
                                                            " them)"),
    ({"Clients.web.MaxRecipients": "1"}, "sesmail.json: Clients.web.MaxRecipients: must be an integer from 1 to"
                                         " 10000000"),
    ({"Clients.web.MaxRecipients": True}, "sesmail.json: Clients.web.MaxRecipients: must be an integer from 1 to"
                                          " 10000000"),
    ({"Clients.web.Senders": ["shop.example"]}, "sesmail.json: Clients.web.Senders[0]: must be an address or"
                                                " @domain"),
    ({"Clients.web.ReplyTo": ["*"]}, "sesmail.json: Clients.web.ReplyTo[0]: must be an address or @domain"
                                     " (\"ReplyTo\": \"*\" allows any)"),
    ({"Clients.web.Headers": ["X-Order-Id: 1"]}, "sesmail.json: Clients.web.Headers[0]: must be a header name"
                                                 " (printable ASCII, no colon)"),
    ({"Clients.web.Receivers": [0]}, "sesmail.json: Clients.web.Receivers[0]: must be an integer from 1 to"
                                     " 9223372036854775807"),
    ({"Clients.web.Origins": ["https://shop.example/"]}, "sesmail.json: Clients.web.Origins[0]: must be an origin:"
                                                         " scheme://host[:port], no path"),
    ({"Clients.web": []}, "sesmail.json: Clients.web: must be an object (a client's policy)"),
    ({"Clients.we b": {"Scopes": []}}, "sesmail.json: Clients.we b: a client's name is 1 to 64 letters, digits, -"
                                       " or _ (as before `=` in SESMAIL_API_KEYS)"),
    ({"Templates.welcome": "x"}, "sesmail.json: Templates.welcome: must be an integer from 1 to 9223372036854775807"),
    ({"Digests.daily.Workers": 0}, "sesmail.json: Digests.daily.Workers: must be an integer from 1 to 64"),
    ({"Digests.daily.Template": {"TemplateName": "digest", "TemplateID": 1}},
     "sesmail.json: Digests.daily.Template.TemplateName: or TemplateID is required, and not both"),
    ({"Senders": [{"EmailSenderName": "x"}]}, "sesmail.json: Senders[0].EmailAddress: is required"),
    ({"EventHook": "hooks"}, "sesmail.json: EventHook: must be \"module:function\""),
])
def test_a_fault_names_the_file_the_path_and_the_rule(changes, error):
    assert check(changes) == error


def test_template_names_are_checked_once_make_sync_has_written_templates():
    unsynced = {"Templates": {}, "Digests": {"daily": {"Template": {"TemplateName": "digest"}}},
                "Clients": {"web": {"Scopes": ["send"], "Templates": ["welcome"]}}}
    config.check_file("sesmail.json", unsynced)  # SES itself refuses a name it does not know
    with pytest.raises(ConfigError) as caught:
        config.check_file("sesmail.json", unsynced, synced=True)  # what `make deploy` asks
    assert str(caught.value) == ("sesmail.json: Digests.daily.Template.TemplateName: names no template in"
                                 " Templates (`make sync` writes them)")


def test_a_name_that_looks_like_an_address_is_masked_in_the_path():
    with pytest.raises(ConfigError) as caught:
        config.check_file("sesmail.json", {"Templates": {"someone@shop.example": "x"}})
    assert str(caught.value) == (
        "sesmail.json: Templates.s***@shop.example: must be an integer from 1 to 9223372036854775807")


def test_a_file_that_is_not_json_or_not_an_object_is_named(tmp_path):
    for text, rule in (("{", "is not a JSON document"), ("[]", "must hold a JSON object")):
        path = tmp_path / "sesmail.json"
        path.write_text(text)
        with pytest.raises(ConfigError) as caught:
            config.Settings({"SESMAIL_CONFIG": str(path)})
        assert str(caught.value) == f"{path}: {rule}"


def test_a_bad_variable_is_a_config_error_naming_it():
    with pytest.raises(ConfigError) as caught:
        config.Settings({"SESMAIL_SETTLE_SECONDS": "soon"})
    assert str(caught.value) == "environment: SESMAIL_SETTLE_SECONDS: must be an integer"
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("function", ["send", "batch", "webhook"])
def test_a_request_refused_for_the_config_logs_file_path_and_rule_and_tells_the_caller_nothing(
        env, tmp_path, monkeypatch, capsys, function):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"Clients": {"web": {"Scopes": ["send"], "Digests": ["daily"]}}}))
    monkeypatch.setenv("SESMAIL_CONFIG", str(bad))
    config.reset()
    event = http_event(sample_send_payload(), path={"send": "/send", "batch": "/batch", "webhook": "/webhook"}[
        function], query={"token": "hook-secret-1"})
    result = load_function(function).main_handler(event, context())
    body = json.loads(result["body"])
    assert (result["statusCode"], body["Error"]["Code"]) == (500, "InternalError.InvalidConfiguration")
    assert "Digests" not in body["Error"]["Message"] and "bad.json" not in body["Error"]["Message"]
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    logged = next(line for line in lines if line["Message"] == "invalid configuration")
    assert (logged["Level"], logged["ConfigFile"], logged["ConfigPath"], logged["Rule"]) == (
        "ERROR", str(bad), "Clients.web.Digests[0]", "names no digest declared under Digests")
    assert lines[-1]["Code"] == "InternalError.InvalidConfiguration"
