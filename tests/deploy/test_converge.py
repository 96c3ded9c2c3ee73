"""`make deploy`, `make deploy ARGS=--plan` and `make rollback` through the SCF fake."""

from __future__ import annotations

import io
import json
import os
import zipfile

from tests.conftest import ROOT
from tests.deploy.conftest import API_KEY, DB_PASSWORD, FUNCTIONS, HOOK_SECRET, account, env_of, repo_files


def actions(run) -> list[tuple[str, str]]:
    return [(call["Action"], call["Params"].get("FunctionName") or call["Params"].get("LayerName"))
            for call in run.writes]


def test_a_first_deploy_creates_the_layer_three_functions_their_timers_and_urls(deploy, scf_fake):
    run = deploy()
    assert run.code == 0, run.text
    assert [v["LayerVersion"] for v in scf_fake.layers["sesmail-layer-dev"]] == [1]
    assert sorted(name for _, name in scf_fake.functions) == sorted(FUNCTIONS)
    for name in FUNCTIONS:
        fn = scf_fake.function(name)
        assert fn["latest"]["Runtime"] == "Python3.9" and fn["latest"]["Handler"] == "index.main_handler"
        assert fn["latest"]["Role"] == "SCF_SESMAIL_Role"
        assert fn["latest"]["Layers"] == [{"LayerName": "sesmail-layer-dev", "LayerVersion": 1}]
        # Published, and the alias the triggers name moved to it.
        assert sorted(fn["versions"]) == ["1"] and fn["aliases"]["$DEFAULT"]["FunctionVersion"] == "1"
        urls = [t for t in fn["triggers"] if t["Type"] == "http"]
        assert [(t["Qualifier"], json.loads(t["TriggerDesc"])) for t in urls] == [
            ("$DEFAULT", {"AuthType": "NONE", "NetConfig": {"EnableExtranet": True, "EnableIntranet": False}})]
    batch = scf_fake.function("sesmail-batch-dev")
    assert (batch["latest"]["MemorySize"], batch["latest"]["Timeout"]) == (512, 900)
    timers = {t["TriggerName"]: t for t in batch["triggers"] if t["Type"] == "timer"}
    assert sorted(timers) == ["cleanup-daily", "digest-daily", "reconcile-hourly", "schedules-minutely"]
    assert timers["digest-daily"]["TriggerDesc"] == "0 0 9 * * * *"
    assert timers["digest-daily"]["CustomArgument"] == '{"Digest": "daily"}'
    assert {t["Enable"] for t in timers.values()} == {1} and {t["Qualifier"] for t in timers.values()} == {"$DEFAULT"}
    # The secrets reached the functions that read them, from the environment of the deploy.
    assert env_of(scf_fake, "sesmail-send-dev")["SESMAIL_API_KEYS"] == API_KEY
    assert env_of(scf_fake, "sesmail-webhook-dev")["SESMAIL_WEBHOOK_SECRETS"] == HOOK_SECRET
    assert "SESMAIL_SMTP_PASSWORD" not in env_of(scf_fake, "sesmail-send-dev")  # unset: left out
    assert "deployed:" in run.lines[-1]


def test_a_second_deploy_with_nothing_changed_makes_no_write_call(deploy, scf_fake):
    assert deploy().code == 0
    reads_from = len(scf_fake.calls)
    again = deploy()
    assert again.code == 0 and again.writes == []
    assert again.lines[-1] == "no change: nothing was written"
    assert {call["Action"] for call in scf_fake.calls[reads_from:]} <= {
        "ListLayerVersions", "GetFunction", "GetAlias", "ListTriggers"}


def test_a_changed_environment_variable_updates_only_that_functions_configuration(deploy, scf_fake):
    deploy()
    run = deploy(SESMAIL_WEBHOOK_SECRETS="h00k-rotated,h00k-never-on-disk")
    assert run.code == 0, run.text
    assert actions(run) == [("UpdateFunctionConfiguration", "sesmail-webhook-dev"),
                            ("PublishVersion", "sesmail-webhook-dev"), ("UpdateAlias", "sesmail-webhook-dev")]
    update = run.writes[0]["Params"]
    assert set(update) == {"FunctionName", "Namespace", "Environment"}  # no other field rewritten
    assert env_of(scf_fake, "sesmail-webhook-dev", "2")["SESMAIL_WEBHOOK_SECRETS"] == "h00k-rotated,h00k-never-on-disk"
    assert scf_fake.function("sesmail-webhook-dev")["aliases"]["$DEFAULT"]["FunctionVersion"] == "2"
    # The plan named the variable and hid both values.
    line = next(line for line in run.lines if "SESMAIL_WEBHOOK_SECRETS" in line)
    assert line.strip() == "~ Environment.SESMAIL_WEBHOOK_SECRETS: *** -> *** (changed)"


def test_an_unset_variable_is_removed_and_a_plain_one_is_shown(deploy, scf_fake):
    deploy()
    run = deploy(SESMAIL_REGION="ap-hongkong", SESMAIL_DATABASE_URL=None)
    assert "    ~ Environment.SESMAIL_REGION: \"ap-guangzhou\" -> \"ap-hongkong\"" in run.lines
    assert "    - Environment.SESMAIL_DATABASE_URL: ***" in run.lines
    assert "SESMAIL_DATABASE_URL" not in env_of(scf_fake, "sesmail-send-dev")
    assert env_of(scf_fake, "sesmail-batch-dev")["SESMAIL_REGION"] == "ap-hongkong"


def test_a_changed_layer_publishes_a_version_and_rebinds_every_function(deploy, scf_fake, layer_file, tmp_path):
    deploy()
    (tmp_path / "layer-py3.9" / "sesmail" / "__init__.py").write_text("VERSION = 2\n")
    run = deploy()
    assert run.code == 0, run.text
    assert actions(run)[0] == ("PublishLayerVersion", "sesmail-layer-dev")
    assert [v["LayerVersion"] for v in scf_fake.layers["sesmail-layer-dev"]] == [1, 2]
    for name in FUNCTIONS:
        assert [a for a, fn in actions(run) if fn == name] == ["UpdateFunctionConfiguration", "PublishVersion",
                                                               "UpdateAlias"]
        update = next(c["Params"] for c in run.writes if c["Action"] == "UpdateFunctionConfiguration"
                      and c["Params"]["FunctionName"] == name)
        assert update["Layers"] == [{"LayerName": "sesmail-layer-dev", "LayerVersion": 2}]
        assert "Environment" not in update
    # The layer's content goes back: the version that has it is bound again, nothing published.
    (tmp_path / "layer-py3.9" / "sesmail" / "__init__.py").write_text("VERSION = 1\n")
    back = deploy()
    assert [a for a, _ in actions(back)].count("PublishLayerVersion") == 0
    assert scf_fake.function("sesmail-send-dev")["latest"]["Layers"][0]["LayerVersion"] == 1


def test_plan_writes_nothing_and_says_what_would_change(deploy, scf_fake):
    first = deploy(plan=True)
    assert first.code == 0 and first.writes == [] and scf_fake.functions == {} and scf_fake.layers == {}
    assert "layer sesmail-layer-dev: publish version 1 (content sha256" in first.text
    assert "function sesmail-send-dev: create" in first.lines
    assert "function sesmail-batch-dev: + timer digest-daily: '0 0 9 * * * *' argument '{\"Digest\": \"daily\"}' " \
           "enabled on $DEFAULT" in first.lines
    assert first.lines[-1] == "plan: 14 change(s); nothing was changed (--plan)"
    deploy()
    before = account(scf_fake)
    changed = deploy(plan=True, SESMAIL_API_KEYS="web=n3w-key")
    assert changed.writes == [] and account(scf_fake) == before
    assert "function sesmail-send-dev: update Environment" in changed.lines
    assert "function sesmail-webhook-dev: update" not in changed.text
    assert deploy(plan=True).lines[-1] == "plan: no change"


def test_secrets_are_masked_in_the_plan_and_never_written_to_disk(deploy, scf_fake):
    plan = deploy(plan=True)
    run = deploy()
    for secret in (API_KEY, HOOK_SECRET, DB_PASSWORD):
        assert secret not in plan.text and secret not in run.text
    assert "    + Environment.SESMAIL_API_KEYS: ***" in plan.lines
    assert "    + Environment.SESMAIL_DATABASE_URL: ***" in plan.lines
    for directory, _, files in os.walk(deploy.build_dir):
        for name in files:
            with open(os.path.join(directory, name), "rb") as handle:
                data = handle.read()
            if name.endswith(".zip"):
                with zipfile.ZipFile(io.BytesIO(data)) as archive:
                    data += b"".join(archive.read(member) for member in archive.namelist())
            for secret in (API_KEY, HOOK_SECRET, DB_PASSWORD):
                assert secret.encode() not in data, os.path.join(directory, name)


def test_each_function_gets_exactly_its_code_the_config_file_and_the_templates(deploy, scf_fake):
    deploy()
    templates = [f"templates/{name}" for name in repo_files("templates") if name != "README.md"]
    with open(os.path.join(ROOT, "sesmail.json"), "rb") as handle:
        config = handle.read()
    for name, folder in zip(FUNCTIONS, ("send", "batch", "webhook")):
        with zipfile.ZipFile(io.BytesIO(scf_fake.code(name))) as archive:
            assert sorted(archive.namelist()) == sorted([*repo_files(f"functions/{folder}"), "sesmail.json",
                                                         *templates])
            assert archive.read("sesmail.json") == config
            with open(os.path.join(ROOT, "functions", folder, "index.py"), "rb") as handle:
                assert archive.read("index.py") == handle.read()


def test_static_files_a_function_serves_ship_and_excluded_files_do_not(deploy, scf_fake, layer_file, tmp_path):
    folder = tmp_path / "functions" / "page"
    (folder / "static").mkdir(parents=True)
    (folder / "__pycache__").mkdir()
    (folder / "index.py").write_text("def main_handler(event, context):\n    return {}\n")
    (folder / "static" / "page.js").write_text("console.log(1)\n")
    (folder / "static" / "page.css").write_text("body{}\n")
    (folder / "__pycache__" / "index.cpython-39.pyc").write_bytes(b"\0")
    (folder / "notes.tmp").write_text("scratch\n")
    (folder / "serverless.yml").write_text("# not code\n")
    yml = tmp_path / "serverless.yml"
    yml.write_text(f"app: sesmail\nstage: ${{env:STAGE}}\ncomponent: scf\nname: sesmail-page\ninputs:\n"
                   f"  name: ${{name}}-${{stage}}\n  region: ${{env:SESMAIL_DEPLOY_REGION}}\n  runtime: Python3.9\n"
                   f"  src:\n    src: {folder}\n    exclude: ['*.tmp']\n  handler: index.main_handler\n")
    assert deploy(files=(str(layer_file), str(yml))).code == 0
    with zipfile.ZipFile(io.BytesIO(scf_fake.code("sesmail-page-dev"))) as archive:
        names = archive.namelist()
    assert [n for n in names if not n.startswith("templates/")] == ["index.py", "sesmail.json", "static/page.css",
                                                                   "static/page.js"]
    # No trigger: the function is still published and $DEFAULT moved to it (what rollback needs).
    assert scf_fake.function("sesmail-page-dev")["aliases"]["$DEFAULT"]["FunctionVersion"] == "1"


def test_changed_code_is_uploaded_then_its_hash_recorded(deploy, scf_fake, layer_file, tmp_path):
    folder = tmp_path / "functions" / "job"
    folder.mkdir(parents=True)
    (folder / "index.py").write_text("def main_handler(event, context):\n    return 1\n")
    yml = tmp_path / "serverless.yml"
    yml.write_text("app: sesmail\ncomponent: scf\nname: job\ninputs:\n  name: job\n  region: ap-guangzhou\n"
                   f"  runtime: Python3.9\n  src: {folder}\n")
    files = (str(layer_file), str(yml))
    deploy(files=files)
    (folder / "index.py").write_text("def main_handler(event, context):\n    return 2\n")
    run = deploy(files=files)
    assert [a for a, _ in actions(run)] == ["UpdateFunctionCode", "UpdateFunctionConfiguration", "PublishVersion",
                                            "UpdateAlias"]
    assert b"return 2" in zipfile.ZipFile(io.BytesIO(scf_fake.code("job"))).read("index.py")
    assert "    ~ code: sha256 " in "\n".join(run.lines)
    assert deploy(files=files).writes == []


def test_rollback_moves_the_alias_back_to_the_version_before_the_last_deploy(deploy, scf_fake):
    deploy()
    deploy(SESMAIL_WEBHOOK_SECRETS="h00k-rotated")
    webhook = scf_fake.function("sesmail-webhook-dev")
    assert webhook["aliases"]["$DEFAULT"]["FunctionVersion"] == "2"
    plan = deploy(plan=True, command="rollback")
    assert plan.writes == [] and webhook["aliases"]["$DEFAULT"]["FunctionVersion"] == "2"
    run = deploy(command="rollback")
    assert run.code == 0, run.text
    assert actions(run) == [("UpdateAlias", "sesmail-webhook-dev")]  # only what the last deploy moved
    assert webhook["aliases"]["$DEFAULT"]["FunctionVersion"] == "1"
    assert {scf_fake.function(n)["aliases"]["$DEFAULT"]["FunctionVersion"] for n in FUNCTIONS} == {"1"}
    # The Function URL follows the alias; version 1 still has the old secret.
    assert env_of(scf_fake, "sesmail-webhook-dev", "1")["SESMAIL_WEBHOOK_SECRETS"] == HOOK_SECRET
    # Further back there is only the first deploy, which had nothing before it.
    again = deploy(command="rollback")
    assert again.writes == [] and again.lines[-1] == "nothing was moved"
    assert all("has no earlier version" in line for line in again.lines[-4:-1])
    # A deploy after a rollback moves the alias forward to the version that matches, publishing nothing.
    forward = deploy(SESMAIL_WEBHOOK_SECRETS="h00k-rotated")
    assert actions(forward) == [("UpdateAlias", "sesmail-webhook-dev")]
    assert webhook["aliases"]["$DEFAULT"]["FunctionVersion"] == "2"


def test_a_failure_half_way_leaves_a_state_the_next_deploy_converges(deploy, scf_fake):
    # The third trigger (batch's first timer) fails: send is done, batch half done, webhook untouched.
    scf_fake.fail("CreateTrigger", "InternalError.System", skip=2)
    broken = deploy()
    assert broken.code == 1 and "CreateTrigger: InternalError.System" in broken.lines[-1]
    assert ("default", "sesmail-webhook-dev") not in scf_fake.functions
    run = deploy()
    assert run.code == 0, run.text
    assert [a for a, fn in actions(run) if fn == "sesmail-send-dev"] == []
    assert deploy().writes == []
    assert _normal(account(scf_fake)) == _normal(_clean_account(deploy, scf_fake))


def test_a_lost_reply_to_a_write_is_converged_by_the_next_deploy(deploy, scf_fake):
    scf_fake.drop_after("CreateFunction", skip=1)  # batch is created; the deploy never hears it
    assert deploy().code == 1
    assert ("default", "sesmail-batch-dev") in scf_fake.functions
    run = deploy()
    assert run.code == 0, run.text
    assert ("CreateFunction", "sesmail-batch-dev") not in actions(run)  # found, not created twice
    assert deploy().writes == []
    assert _normal(account(scf_fake)) == _normal(_clean_account(deploy, scf_fake))


def test_a_function_still_updating_is_waited_for(deploy, scf_fake):
    scf_fake.busy_seconds = 0.3
    assert deploy().code == 0
    busy_refusals = [c for c in scf_fake.calls if c["Outcome"].startswith("error:FailedOperation")]
    assert busy_refusals == []


def _clean_account(deploy, scf_fake):
    """What one clean deploy makes, in an empty account (the fake's state swapped out, then back)."""
    saved = (scf_fake.functions, scf_fake.layers)
    scf_fake.functions, scf_fake.layers = {}, {}
    try:
        assert deploy().code == 0
        return account(scf_fake)
    finally:
        scf_fake.functions, scf_fake.layers = saved


def _normal(state: dict) -> dict:
    """Versions differ in number after a failure (a retry may publish again); what the alias serves must not."""
    out = {}
    for name, value in state.items():
        if name == "layers":
            out[name] = value
            continue
        out[name] = {"latest": value["latest"], "triggers": value["triggers"]}
    return out


def _edited_functions_file(tmp_path, *edits: tuple[str, str]) -> str:
    with open(os.path.join(ROOT, "serverless.yml"), encoding="utf-8") as handle:
        text = handle.read()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "serverless.yml"
    path.write_text(text.replace("./functions/", os.path.join(ROOT, "functions") + "/"))
    return str(path)


def test_a_changed_timer_and_a_removed_one_touch_only_those_triggers(deploy, scf_fake, layer_file, tmp_path):
    deploy()
    edited = _edited_functions_file(tmp_path, ("'0 0 9 * * * *'", "'0 30 8 * * * *'"),
                                    ("""    - timer:
        parameters:
          name: cleanup-daily
          cronExpression: '0 30 3 * * * *'       # expired records out, finished recipient lists deleted
          enable: true
          argument: '{"Job": "cleanup"}'
""", ""))
    run = deploy(files=(str(layer_file), edited))
    assert run.code == 0, run.text
    assert [(c["Action"], c["Params"]["TriggerName"]) for c in run.writes] == [
        ("UpdateTrigger", "digest-daily"), ("DeleteTrigger", "cleanup-daily")]
    timers = {t["TriggerName"]: t for t in scf_fake.function("sesmail-batch-dev")["triggers"] if t["Type"] == "timer"}
    assert sorted(timers) == ["digest-daily", "reconcile-hourly", "schedules-minutely"]
    assert timers["digest-daily"]["TriggerDesc"] == "0 30 8 * * * *"
    assert deploy(files=(str(layer_file), edited)).writes == []


def test_a_changed_handler_is_set_with_the_code_and_converges(deploy, scf_fake, layer_file, tmp_path):
    deploy()
    edited = _edited_functions_file(tmp_path, ("  handler: index.main_handler\n  description: sesmail webhook",
                                               "  handler: index.handle\n  description: sesmail webhook"))
    run = deploy(files=(str(layer_file), edited))
    assert [a for a, fn in actions(run)] == ["UpdateFunctionCode", "PublishVersion", "UpdateAlias"]
    assert run.writes[0]["Params"]["Handler"] == "index.handle"
    assert scf_fake.function("sesmail-webhook-dev")["latest"]["Handler"] == "index.handle"
    assert deploy(files=(str(layer_file), edited)).writes == []


def test_a_role_given_back_as_its_full_resource_name_is_the_same_role(deploy, scf_fake):
    deploy()
    scf_fake.role_prefix = "qcs::cam::uin/100000000001:roleName/"
    assert deploy().writes == []


def test_two_deploys_at_once_end_in_the_account_one_deploy_makes(deploy, scf_fake):
    import threading

    results: list = []
    # Two machines (two build folders), one account.
    threads = [threading.Thread(target=lambda m=machine: results.append(deploy(machine=m))) for machine in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2  # one may have stopped on the other's write (ResourceInUse.*): said, not hidden
    for result in results:
        assert result.code == 0 or "stopped:" in result.lines[-1]
    assert deploy().code == 0
    assert deploy().writes == []
    # Both may have published the layer (the same content twice): what each function runs is what counts.
    assert _by_content(account(scf_fake)) == _by_content(_clean_account(deploy, scf_fake))


def _by_content(state: dict) -> dict:
    """The functions' $LATEST and triggers, with each bound layer version named by its content's hash."""
    content = {(name, number): sha for name, versions in state["layers"].items() for number, _, sha in versions}
    out = {}
    for name, value in _normal(state).items():
        if name != "layers":
            latest = dict(value["latest"], Layers=[content[(item["LayerName"], item["LayerVersion"])]
                                                   for item in value["latest"]["Layers"]])
            out[name] = {"latest": latest, "triggers": value["triggers"]}
    return out


def test_an_unreachable_scf_stops_the_deploy_with_the_network_error(deploy, scf_fake):
    scf_fake.stop()
    run = deploy()
    assert run.code == 1 and "ClientNetworkError" in run.lines[-1]


def test_versions_are_read_page_by_page(deploy, scf_fake):
    from deploy import converge, desired
    from tests.deploy.conftest import SECRET_ID, SECRET_KEY, TOKEN

    deploy()
    api = converge.ScfApi("ap-guangzhou", SECRET_ID, SECRET_KEY, TOKEN, endpoint=scf_fake.endpoint, protocol="http")
    scf_fake.busy_seconds = 0
    for _ in range(24):
        api("PublishVersion", FunctionName="sesmail-send-dev")
    _, functions = desired.read({"STAGE": "dev", "SESMAIL_DEPLOY_REGION": "ap-guangzhou"}, lambda line: None,
                                build=False)
    deployer = converge.Deployer(lambda region: api, lambda line: None)
    assert sorted(deployer._versions(api, functions[0]), key=int) == [str(n) for n in range(1, 26)]


def test_a_field_the_sdk_does_not_know_never_leaves_silently(scf_fake):
    from deploy import converge

    api = converge.ScfApi("ap-guangzhou", "AKID", "key", endpoint=scf_fake.endpoint, protocol="http")
    try:
        api("UpdateFunctionConfiguration", FunctionName="f", Handler="index.handle")
    except converge.DeployError as exc:
        assert exc.code == "UnknownParameter" and "Handler" in exc.message
    else:
        raise AssertionError("the field was dropped")
    assert scf_fake.calls == []


def test_a_new_layer_description_or_runtime_publishes_a_version_as_versions_are_immutable(deploy, scf_fake,
                                                                                          layer_file):
    deploy()
    text = layer_file.read_text()
    layer_file.write_text(text.replace("description: sesmail package", "description: the sesmail package"))
    run = deploy()
    assert actions(run)[0] == ("PublishLayerVersion", "sesmail-layer-dev")
    assert scf_fake.layers["sesmail-layer-dev"][-1]["Description"].startswith("the sesmail package")
    assert deploy().writes == []
