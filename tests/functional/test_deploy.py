"""`make deploy` (deploy/scf.py): staging for the `scf` CLI, and the CLI wrapper.

The CLI itself (npm serverless-cloud-framework) cannot be installed here and no Tencent account is
reachable: a stand-in `scf` script records where and how it was run.
"""

from __future__ import annotations

import json
import os
import stat

import pytest
import yaml

from deploy import scf
from tests.conftest import ROOT


@pytest.fixture
def fake_layer(tmp_path, monkeypatch):
    """A built layer folder (make layer's output) without building one."""
    layer = tmp_path / "layer-py3.9"
    (layer / "sesmail").mkdir(parents=True)
    (layer / "sesmail" / "__init__.py").write_text("")
    real = scf.components

    def components():
        found = real()
        for _, doc in found:
            if doc["component"] == "layer":
                doc["inputs"]["src"] = str(layer)
        return found

    monkeypatch.setattr(scf, "components", components)
    return layer


def staged_doc(folder: str) -> dict:
    with open(os.path.join(folder, "serverless.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def test_staging_writes_one_component_per_folder_layer_first(fake_layer, tmp_path):
    lines: list[str] = []
    env = {"SESMAIL_API_KEYS": "k", "SESMAIL_DATABASE_URL": "postgresql://u@db/sesmail"}
    staged = scf.stage(env, lines.append, str(tmp_path / "deploy"))
    assert [(s.name, s.component) for s in staged] == [
        ("sesmail-layer", "layer"), ("sesmail-send", "scf"), ("sesmail-batch", "scf"), ("sesmail-webhook", "scf")]
    send = staged_doc(staged[1].folder)
    assert send["inputs"]["src"]["src"] == "./code"
    # Set variables keep their ${env:} reference (the CLI substitutes them: no secret in build/); unset
    # ones are left out, so the layer's defaults apply.
    assert send["inputs"]["environment"]["variables"] == {
        "SESMAIL_API_KEYS": "${env:SESMAIL_API_KEYS}", "SESMAIL_DATABASE_URL": "${env:SESMAIL_DATABASE_URL}"}
    assert "deadLetter" not in staged_doc(staged[2].folder)["inputs"]
    assert any("no dead-letter queue" in line for line in lines)
    code = os.path.join(staged[1].folder, "code")
    assert sorted(os.listdir(code)) == ["index.py", "sesmail.json", "static", "templates"]  # static: the dashboard
    assert "welcome.html" in os.listdir(os.path.join(code, "templates"))
    with open(os.path.join(code, "sesmail.json"), encoding="utf-8") as staged_config, \
            open(os.path.join(ROOT, "sesmail.json"), encoding="utf-8") as config:
        assert staged_config.read() == config.read()
    layer = staged_doc(staged[0].folder)
    assert layer["inputs"]["src"] == "./code" and os.path.isdir(os.path.join(staged[0].folder, "code", "sesmail"))
    # The timers and the rest of the document are carried over unchanged.
    assert staged_doc(staged[2].folder)["inputs"]["events"] == next(
        doc for _, doc in scf.components() if doc["name"] == "sesmail-batch")["inputs"]["events"]


def test_a_dead_letter_queue_is_kept_when_named(fake_layer, tmp_path):
    staged = scf.stage({"SESMAIL_DEPLOY_DEAD_LETTER": "sesmail-dlq"}, lambda line: None, str(tmp_path / "d"))
    assert staged_doc(staged[2].folder)["inputs"]["deadLetter"] == {
        "type": "CMQ-QUEUE", "name": "${env:SESMAIL_DEPLOY_DEAD_LETTER}"}


def test_staging_refuses_without_a_built_layer(tmp_path, monkeypatch):
    real = scf.components

    def components():
        found = real()
        found[0][1]["inputs"]["src"] = str(tmp_path / "nothing-built")
        return found

    monkeypatch.setattr(scf, "components", components)
    with pytest.raises(SystemExit, match="make layer"):
        scf.stage({}, lambda line: None, str(tmp_path / "d"))


def test_deploy_without_the_cli_says_how_to_install_it(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    lines: list[str] = []
    assert scf.deploy({}, lines.append) == 2
    assert "npm install -g serverless-cloud-framework" in lines[0]


def fake_cli(tmp_path, fail_in: str = "") -> tuple[str, str]:
    log = tmp_path / "calls.txt"
    script = tmp_path / "scf"
    script.write_text(f"#!/bin/sh\necho \"$(basename \"$PWD\") $* $STAGE $SESMAIL_DEPLOY_REGION\" >> {log}\n"
                      f"[ \"$(basename \"$PWD\")\" = \"{fail_in}\" ] && exit 3\nexit 0\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script), str(log)


def test_deploy_runs_scf_deploy_in_each_staged_folder_in_order(fake_layer, synced_config, tmp_path, monkeypatch):
    cli, log = fake_cli(tmp_path)
    original = scf.stage
    monkeypatch.setattr(scf, "stage", lambda env, out: original(env, out, str(tmp_path / "deploy")))
    lines: list[str] = []
    assert scf.deploy({"PATH": os.environ["PATH"]}, lines.append, cli=cli) == 0
    with open(log, encoding="utf-8") as handle:
        calls = handle.read().splitlines()
    # Layer first (the functions bind its outputs); STAGE and the region default to dev, ap-guangzhou.
    assert calls == [f"{name} deploy dev ap-guangzhou" for name in
                     ("sesmail-layer", "sesmail-send", "sesmail-batch", "sesmail-webhook")]
    assert "Function URL" in lines[-1]


def test_deploy_stops_at_the_first_failure(fake_layer, synced_config, tmp_path, monkeypatch):
    cli, log = fake_cli(tmp_path, fail_in="sesmail-send")
    original = scf.stage
    monkeypatch.setattr(scf, "stage", lambda env, out: original(env, out, str(tmp_path / "deploy")))
    lines: list[str] = []
    assert scf.deploy({"PATH": os.environ["PATH"], "STAGE": "prod"}, lines.append, cli=cli) == 3
    with open(log, encoding="utf-8") as handle:
        assert [line.split()[0] for line in handle.read().splitlines()] == ["sesmail-layer", "sesmail-send"]
    assert "Nothing after it was deployed" in lines[-1]


def test_deploy_refuses_a_config_the_functions_would_refuse_naming_file_path_and_rule(fake_layer, tmp_path,
                                                                                     monkeypatch):
    cli, log = fake_cli(tmp_path)
    bad = tmp_path / "sesmail.json"
    bad.write_text(json.dumps({"Clients": {"web": {"Scopes": ["send", "sendd"]}}}))
    monkeypatch.setattr(scf, "CONFIG_FILE", str(bad))
    lines: list[str] = []
    assert scf.deploy({"PATH": os.environ["PATH"]}, lines.append, cli=cli) == 2
    assert lines == [f"the functions would refuse every request: {bad}: Clients.web.Scopes[1]: must be one of send, "
                     "batch, digest, stats, admin"]
    assert not os.path.exists(log)  # nothing staged, nothing deployed


def test_deploy_prints_each_clients_effective_access(fake_layer, synced_config, tmp_path, monkeypatch):
    settings = json.loads(synced_config.read_text())
    settings["Clients"] = {"web": {"Scopes": ["send"], "Templates": ["welcome"], "Senders": ["@shop.example"],
                                   "MaxRecipients": 1, "Origins": ["https://shop.example"]}}
    synced_config.write_text(json.dumps(settings))
    cli, _ = fake_cli(tmp_path)
    original = scf.stage
    monkeypatch.setattr(scf, "stage", lambda env, out: original(env, out, str(tmp_path / "deploy")))
    lines: list[str] = []
    assert scf.deploy({"PATH": os.environ["PATH"], "SESMAIL_API_KEYS": "web=k1,web=k2,backend=k3"}, lines.append,
                      cli=cli) == 0
    start = lines.index("effective access per client (config file `Clients`, SESMAIL_API_KEYS):")
    assert lines[start + 1] == "  backend (1 key): full access (no policy)"
    assert lines[start + 2] == (
        "  web (2 keys): scopes send; senders @shop.example; templates welcome; reply-to its senders; headers none;"
        " digests none; receivers none (and its own lists); limits 1 recipients/request; origins https://shop.example")
    assert not any("k1" in line or "k3" in line for line in lines)  # keys are never printed


def test_deploy_refuses_template_names_make_sync_has_not_resolved_yet(fake_layer, tmp_path):
    cli, log = fake_cli(tmp_path)
    lines: list[str] = []
    assert scf.deploy({"PATH": os.environ["PATH"]}, lines.append, cli=cli) == 2  # the repository's own file
    assert lines == [f"the functions would refuse every request: {scf.CONFIG_FILE}: Digests.daily.Template."
                     "TemplateName: names no template in Templates (`make sync` writes them)"]
    assert not os.path.exists(log)
