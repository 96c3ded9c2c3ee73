"""`python -m deploy deploy | rollback` (make deploy, make rollback): the whole command, and the keys
of serverless.yml it refuses."""

from __future__ import annotations

import os
import re

import pytest

from deploy import __main__ as cli
from deploy import desired, scf
from tests.conftest import ROOT
from tests.deploy.conftest import API_KEY

SCF_KEYS = "app: sesmail\nstage: dev\ncomponent: scf\nname: job\ninputs:\n  name: job\n  region: ap-guangzhou\n" \
           "  runtime: Python3.9\n  src: {src}\n"


@pytest.fixture
def command(deploy_env, layer_file, synced_config, tmp_path, monkeypatch):
    """main([...]) with the deploy's environment, the test's layer, and a config file `make sync` has filled."""
    for key in ("TENCENTCLOUD_SECRETID", "TENCENTCLOUD_SECRETKEY", "TENCENTCLOUD_SESSIONTOKEN"):
        monkeypatch.delenv(key, raising=False)
    for key, value in deploy_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(scf, "LAYER_FILE", str(layer_file))
    monkeypatch.setattr(desired, "BUILD_DIR", str(tmp_path / "build"))
    return cli.main


def test_make_deploy_plan_then_deploy_then_rollback_from_the_command_line(command, scf_fake, capsys):
    assert command(["deploy", "--plan"]) == 0
    out = capsys.readouterr().out
    assert scf_fake.writes() == [] and "plan for stage dev in ap-guangzhou" in out
    assert "effective access per client" in out and API_KEY not in out
    assert command(["deploy"]) == 0
    assert len(scf_fake.function("sesmail-send-dev")["versions"]) == 1
    assert command(["deploy"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("no change: nothing was written")
    assert command(["rollback"]) == 0  # nothing before the first deploy: said, nothing moved
    assert "has no earlier version" in capsys.readouterr().out


def test_without_credentials_nothing_is_called(command, scf_fake, monkeypatch, capsys):
    monkeypatch.delenv("TENCENTCLOUD_SECRETKEY")
    assert command(["deploy", "--plan"]) == 2
    assert "TENCENTCLOUD_SECRETID and TENCENTCLOUD_SECRETKEY" in capsys.readouterr().out
    assert scf_fake.calls == []


def test_a_config_the_functions_would_refuse_stops_the_deploy_before_any_call(command, scf_fake, monkeypatch,
                                                                               capsys):
    monkeypatch.setattr(scf, "CONFIG_FILE", os.path.join(ROOT, "sesmail.json"))  # template names not synced
    assert command(["deploy"]) == 2
    assert "the functions would refuse every request" in capsys.readouterr().out
    assert scf_fake.calls == []


def test_a_failed_call_says_where_it_stopped_and_that_the_next_deploy_carries_on(command, scf_fake, capsys):
    scf_fake.fail("CreateFunction", "ResourceNotFound.Role", "Role SCF_SESMAIL_Role does not exist.")
    assert command(["deploy"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-2] == "deploy stopped: CreateFunction: ResourceNotFound.Role: Role SCF_SESMAIL_Role does not exist."
    assert "(1 write call(s))" in out[-1] and "run `make deploy` again" in out[-1]  # the layer was published
    assert command(["deploy"]) == 0


def test_the_scf_cli_path_stays_an_alternative(command, monkeypatch):
    monkeypatch.setattr(scf, "deploy", lambda: 7)
    assert command(["deploy", "--cli"]) == 7


def test_every_key_that_would_not_take_effect_is_refused_with_its_path(command, scf_fake, tmp_path, capsys,
                                                                       monkeypatch):
    folder = tmp_path / "job"
    folder.mkdir()
    (folder / "index.py").write_text("def main_handler(event, context):\n    return {}\n")
    yml = tmp_path / "serverless.yml"
    yml.write_text(SCF_KEYS.format(src=folder) + (
        "  retryNum: 5\n  msgTTL: 60\n  publicAccess: true\n  cls: {logsetId: x}\n"
        "  vpcConfig: {vpcId: vpc-1, subnetId: subnet-1, zone: x}\n"
        "  environment: {variables: {A_B: '1', TENCENTCLOUD_REGION: x}, other: 1}\n"
        "  events:\n    - apigw: {parameters: {}}\n    - timer: {parameters: {name: t, cronExpression: '0 0 9 * * * *',"
        " enable: true, timezone: UTC}}\n    - http: {parameters: {corsConfig: {}}}\n"
        "    - timer: {parameters: {name: u, cronExpression: '0 0 9 * * * *', qualifier: live}}\n"))
    monkeypatch.setattr(scf, "FUNCTIONS_FILE", str(yml))
    assert command(["deploy"]) == 2
    out = capsys.readouterr().out
    where = f"{os.path.relpath(str(yml), ROOT)}: job.inputs"
    for path in ("retryNum", "msgTTL", "publicAccess", "cls", "vpcConfig.zone", "environment.other",
                 "events[0].apigw", "events[1].timer.parameters.timezone", "events[2].http.parameters.corsConfig"):
        assert re.search(rf"^  {re.escape(where)}\.{re.escape(path)}: not applied by make deploy", out, re.M), path
    assert "retryNum: not applied by make deploy (SCF's asynchronous retries are its defaults" in out
    assert f"{where}.events: every trigger of a function names one alias" in out
    assert f"{where}.environment.variables.TENCENTCLOUD_REGION: SCF reserves" in out
    assert scf_fake.calls == []  # refused before anything was asked


def test_the_repositorys_files_take_effect_whole():
    env = scf.deploy_env({"STAGE": "prod", "SESMAIL_DEPLOY_DEAD_LETTER": "sesmail-dlq"})
    layers, functions = desired.read(env, lambda line: None, build=False)
    assert [(layer.instance, layer.name) for layer in layers] == [("sesmail-layer", "sesmail-layer-prod")]
    assert [f.name for f in functions] == ["sesmail-send-prod", "sesmail-batch-prod", "sesmail-webhook-prod"]
    batch = functions[1]
    assert batch.config["DeadLetterConfig"] == ("CMQ-QUEUE", "sesmail-dlq", "")
    assert [(t.type, t.name) for t in batch.triggers] == [("http", "url-trigger"), ("timer", "digest-daily"),
                                                          ("timer", "reconcile-hourly"), ("timer", "cleanup-daily"),
                                                          ("timer", "schedules-minutely")]
    assert {f.alias for f in functions} == {"$DEFAULT"}
    assert all(f.layers == [desired.LayerRef(instance="sesmail-layer")] for f in functions)
