"""`make sync` (deploy/sync.py) against the SES emulator, reached as SES is: the layer's client, TC3
signatures, the SESMAIL_* / TENCENTCLOUD_* variables. Each test gets a fresh emulated account."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from deploy import sync
from deploy.__main__ import main as deploy_main
from local.ses_emulator import SesEmulator
from sesmail import config
from tests.conftest import ROOT, SECRET_ID, SECRET_KEY
from tests.events import context, http_event

WRITES = {"CreateEmailAddress", "CreateEmailTemplate", "UpdateEmailTemplate", "DeleteEmailTemplate"}


@pytest.fixture
def account(monkeypatch):
    emu = SesEmulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, port=0).start()
    for name in list(os.environ):
        if name.startswith(("SESMAIL_", "TENCENTCLOUD_")):
            monkeypatch.delenv(name)
    for name, value in {"SESMAIL_SES_ENDPOINT": emu.endpoint, "SESMAIL_SES_PROTOCOL": "http",
                        "TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
                        "NO_PROXY": f"127.0.0.1,{emu.endpoint}"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    yield emu
    emu.stop()


@pytest.fixture
def repo(tmp_path):
    """A config file and a copy of the repo's templates, as a project keeps them."""
    templates = tmp_path / "templates"
    shutil.copytree(os.path.join(ROOT, "templates"), templates)
    path = tmp_path / "sesmail.json"
    path.write_text(json.dumps({
        "Senders": [{"EmailAddress": "noreply@mail.shop.example", "EmailSenderName": "Shop"},
                    {"EmailAddress": "news@mail.shop.example"}],
        "Digests": {"daily": {"Template": {"TemplateName": "digest"}}}}, indent=2))
    return {"config": str(path), "templates": str(templates)}


def run(repo, dry_run: bool = False) -> tuple[int, list[str]]:
    lines: list[str] = []
    status = sync.run(repo["config"], repo["templates"], dry_run=dry_run, out=lines.append)
    return status, lines


def read(path: str) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def actions(emu) -> list[str]:
    return [call["Action"] for call in emu.calls]


def test_senders_and_templates_are_created_and_the_config_gets_ids_and_variables(account, repo):
    status, lines = run(repo)
    assert status == 0, lines
    assert {row["address"]: row["name"] for row in account.store.senders()} == {
        "noreply@mail.shop.example": "Shop", "news@mail.shop.example": ""}
    written = read(repo["config"])
    ids = {row["name"]: row["id"] for row in account.store.templates()}
    assert written["Templates"] == {name: ids[name] for name in ("code", "digest", "order", "welcome")}
    assert written["TemplateVariables"] == {str(ids["code"]): ["code"], str(ids["digest"]): ["count", "titles"],
                                            str(ids["order"]): ["order"], str(ids["welcome"]): ["name"]}
    assert written["Digests"] == {"daily": {"Template": {"TemplateName": "digest"}}}  # other keys kept
    # Bodies went as base64, and SES holds exactly the files.
    with open(os.path.join(repo["templates"], "welcome.html"), encoding="utf-8") as handle:
        assert account.store.template(ids["welcome"])["html"] == handle.read()
    # Progress, one line per item, then each template's review status.
    assert "[1/2] sender noreply@mail.shop.example: created" in lines
    assert f"[4/4] template welcome: created as TemplateID {ids['welcome']}" in lines
    assert f"review: welcome (TemplateID {ids['welcome']}) approved" in lines


def test_a_second_run_changes_nothing(account, repo):
    run(repo)
    before = read(repo["config"])
    account.calls.clear()
    status, lines = run(repo)
    assert status == 0
    assert not WRITES & set(actions(account))
    assert "[1/2] sender noreply@mail.shop.example: exists" in lines
    assert any(line.startswith("[4/4] template welcome: unchanged") for line in lines)
    assert read(repo["config"]) == before


def test_a_sender_ses_already_has_is_fine_even_when_only_create_says_so(account, repo):
    account.add_sender("noreply@mail.shop.example", "Shop")
    # Created by someone else between our list and our create: SES answers RepeatEmailAddress.
    account.fail("CreateEmailAddress", "InvalidParameterValue.RepeatEmailAddress")
    status, lines = run(repo)
    assert status == 0
    assert "[1/2] sender noreply@mail.shop.example: exists" in lines
    assert "[2/2] sender news@mail.shop.example: exists" in lines


def test_an_unverified_domain_ends_with_what_to_do_and_the_rest_is_synced(account, repo):
    config_data = read(repo["config"])
    config_data["Senders"].insert(0, {"EmailAddress": "hello@unverified.shop.example"})
    with open(repo["config"], "w", encoding="utf-8") as handle:
        json.dump(config_data, handle)
    status, lines = run(repo)
    assert status == 1
    refused = next(line for line in lines if "hello@unverified.shop.example" in line)
    assert "OperationDenied.DomainNotVerified" in refused and "unverified.shop.example is not verified" in refused
    assert "DNS" in refused and "make sync" in refused
    assert "noreply@mail.shop.example" in {row["address"] for row in account.store.senders()}
    assert read(repo["config"])["Templates"]  # templates still synced and written


def test_the_sender_limit_ends_with_what_to_do(account, repo):
    account.fail("CreateEmailAddress", "OperationDenied.ExceedSenderLimit", times=2)
    status, lines = run(repo)
    assert status == 1
    assert sum("OperationDenied.ExceedSenderLimit" in line and "Delete an unused sender" in line
               for line in lines) == 2


def test_a_changed_template_is_updated_alone_and_reviewed_again(account, repo):
    account.template_review_seconds = 3600  # SES's review takes a while
    run(repo)
    for row in account.store.templates():
        account.review_template(row["id"])  # approved meanwhile
    with open(os.path.join(repo["templates"], "welcome.txt"), "a", encoding="utf-8") as handle:
        handle.write("\nSee you soon, {{name}}. Your code: {{code}}\n")
    account.calls.clear()
    status, lines = run(repo)
    assert status == 0
    updates = [call["Params"] for call in account.calls if call["Action"] in WRITES]
    welcome = read(repo["config"])["Templates"]["welcome"]
    assert [(p["TemplateID"], p["TemplateName"]) for p in updates] == [(welcome, "welcome")]
    assert f"review: welcome (TemplateID {welcome}) reviewing" in lines
    assert f"review: order (TemplateID {read(repo['config'])['Templates']['order']}) approved" in lines
    assert read(repo["config"])["TemplateVariables"][str(welcome)] == ["code", "name"]


def test_a_rejected_template_is_reported_with_ses_reason(account, repo):
    account.template_review_seconds = 3600
    run(repo)
    welcome = read(repo["config"])["Templates"]["welcome"]
    account.review_template(welcome, approved=False, reason="links to an unverified domain")
    status, lines = run(repo)
    assert status == 1
    assert f"review: welcome (TemplateID {welcome}) rejected: links to an unverified domain" in lines


def test_a_dry_run_reads_only_and_writes_nothing(account, repo):
    before = read(repo["config"])
    status, lines = run(repo, dry_run=True)
    assert status == 0
    assert set(actions(account)) <= {"ListEmailAddress", "ListEmailTemplates", "GetEmailTemplate"}
    assert read(repo["config"]) == before
    assert "[1/2] sender noreply@mail.shop.example: would be created (CreateEmailAddress)" in lines
    assert "[4/4] template welcome: would be created (CreateEmailTemplate), then reviewed by SES" in lines
    # After a real run, a dry run shows only what changed.
    run(repo)
    with open(os.path.join(repo["templates"], "order.html"), "a", encoding="utf-8") as handle:
        handle.write("<p>P.S.</p>\n")
    account.calls.clear()
    _, lines = run(repo, dry_run=True)
    assert not WRITES & set(actions(account))
    assert [line for line in lines if "would" in line and "template" in line] == [
        f"[3/4] template order: would be updated (UpdateEmailTemplate, TemplateID "
        f"{read(repo['config'])['Templates']['order']}); SES reviews it again before it can be sent"]


def test_a_template_known_by_name_at_ses_is_adopted_not_created_again(account, repo):
    account.load_templates(os.path.join(ROOT, "templates"))  # an account that already has them (IDs 1-4)
    status, lines = run(repo)
    assert status == 0, lines
    assert "CreateEmailTemplate" not in actions(account)
    assert read(repo["config"])["Templates"] == {"code": 4, "digest": 3, "order": 1, "welcome": 2}


def test_send_refuses_template_data_missing_a_synced_variable_before_ses(account, repo, env, send, ses_fake):
    run(repo)
    synced = read(repo["config"])
    with open(env["SESMAIL_CONFIG"], "w", encoding="utf-8") as handle:
        json.dump({"Templates": synced["Templates"], "TemplateVariables": synced["TemplateVariables"]}, handle)
    config.reset()
    payload = {"FromEmailAddress": "noreply@mail.shop.example", "Destination": ["ada@example.com"],
               "Subject": "Welcome", "Template": {"TemplateName": "welcome", "TemplateData": {"nickname": "Ada"}}}
    answer = send(http_event(payload), context())
    body = json.loads(answer["body"])
    assert answer["statusCode"] == 400
    assert body["Error"]["Code"] == "InvalidParameterValue.TemplateNotMatchData"
    assert body["Error"]["Field"] == "Template.TemplateData"
    assert "name" in body["Error"]["Message"] and "Ada" not in body["Error"]["Message"]
    assert "SendEmail" not in [call["Action"] for call in ses_fake.calls]
    payload["Template"]["TemplateData"] = {"name": "Ada", "extra": "fine"}
    assert send(http_event(payload), context())["statusCode"] == 200


def test_the_command_line_wants_credentials_unless_local(monkeypatch, capsys):
    for name in list(os.environ):
        if name.startswith(("SESMAIL_", "TENCENTCLOUD_")):
            monkeypatch.delenv(name)
    assert deploy_main(["sync", "--dry-run"]) == 2
    assert "TENCENTCLOUD_SECRETID" in capsys.readouterr().err


def test_the_command_line_local_target_uses_the_local_stack_settings(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith(("SESMAIL_", "TENCENTCLOUD_")):
            monkeypatch.delenv(name)
    for name in ("SESMAIL_SES_ENDPOINT", "SESMAIL_SES_PROTOCOL", "TENCENTCLOUD_SECRETID", "TENCENTCLOUD_SECRETKEY",
                 "NO_PROXY"):
        monkeypatch.setenv(name, "")  # recorded, so what --local sets is undone after the test
        monkeypatch.delenv(name)
    seen = {}

    def fake_run(config_path, templates_dir, dry_run=False):
        seen.update(config=config_path, endpoint=os.environ["SESMAIL_SES_ENDPOINT"],
                    secret=os.environ["TENCENTCLOUD_SECRETID"], dry_run=dry_run)
        return 0

    monkeypatch.setattr(sync, "run", fake_run)
    assert deploy_main(["sync", "--local", "--dry-run"]) == 0
    assert seen == {"config": os.path.join(ROOT, ".local-data", "sesmail.json"), "endpoint": "127.0.0.1:8090",
                    "secret": "AKIDlocal", "dry_run": True}
