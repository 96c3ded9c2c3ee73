"""serverless.yml agrees with the code: handlers, the layer `make layer` builds, cron, settings, timers.

Nothing here can be checked against Tencent Cloud; these tests pin what can be checked locally: every
name the deployment files use resolves to something in this repository.
"""

from __future__ import annotations

import ast
import json
import os
import re

import pytest
import yaml

from local import cron, serverless
from sesmail import rules, timers
from tests.conftest import ROOT

FUNCTIONS_FILE = os.path.join(ROOT, "serverless.yml")
LAYER_FILE = os.path.join(ROOT, "layers", "sesmail", "serverless.yml")
ENV_REF = re.compile(r"^\$\{env:([A-Z][A-Z0-9_]*)\}$")


def documents(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if isinstance(doc, dict)]


FUNCTIONS = documents(FUNCTIONS_FILE)
(LAYER,) = documents(LAYER_FILE)


def makefile_runtime() -> str:
    with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as handle:
        return re.search(r"^RUNTIME \?= (\d\.\d+)$", handle.read(), re.M).group(1)


def layer_settings() -> set[str]:
    """Every SESMAIL_* name the layer reads (as a string literal in its code)."""
    names: set[str] = set()
    for folder, _, files in os.walk(os.path.join(ROOT, "layers", "sesmail", "sesmail")):
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(folder, name), encoding="utf-8") as handle:
                    names |= set(re.findall(r"\"(SESMAIL_[A-Z_]+)\"", handle.read()))
    return names


def example_config() -> dict:
    with open(os.path.join(ROOT, "sesmail.json"), encoding="utf-8") as handle:
        return json.load(handle)


def timer_parameters() -> list[tuple[str, dict]]:
    return [(doc["name"], event["timer"]["parameters"]) for doc in FUNCTIONS
            for event in doc["inputs"].get("events") or [] if "timer" in event]


def test_the_file_holds_the_three_functions_as_scf_components_of_one_app():
    assert [(doc["component"], doc["name"]) for doc in FUNCTIONS] == [
        ("scf", "sesmail-send"), ("scf", "sesmail-batch"), ("scf", "sesmail-webhook")]
    assert {(doc["app"], doc["stage"]) for doc in [*FUNCTIONS, LAYER]} == {("sesmail", "${env:STAGE}")}


@pytest.mark.parametrize("doc", FUNCTIONS, ids=lambda doc: doc["name"])
def test_every_handler_resolves_to_a_main_handler(doc):
    inputs = doc["inputs"]
    src = os.path.normpath(os.path.join(ROOT, inputs["src"]["src"]))
    module, _, function = inputs["handler"].rpartition(".")
    path = os.path.join(src, *module.split(".")) + ".py"
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    defined = {node.name: [a.arg for a in node.args.args] for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert defined.get(function) == ["event", "context"], f"{path} has no {function}(event, context)"
    assert os.path.dirname(src) == os.path.join(ROOT, "functions")


def test_the_layer_source_is_what_make_layer_builds_for_the_functions_runtime():
    import build as layer_build  # layers/sesmail/build.py (layers/sesmail is on the tests' path)

    runtime = makefile_runtime()
    built = os.path.join(layer_build.ROOT, "build", f"layer-py{runtime}")  # build.build(out=ROOT/build)
    assert os.path.normpath(os.path.join(os.path.dirname(LAYER_FILE), LAYER["inputs"]["src"])) == built
    assert LAYER["inputs"]["runtimes"] == [f"Python{runtime}"]
    reference = {field: "${output:${stage}:${app}:" + LAYER["name"] + "." + field + "}"
                 for field in ("name", "version")}
    for doc in FUNCTIONS:
        assert doc["inputs"]["runtime"] == f"Python{runtime}", doc["name"]
        assert doc["inputs"]["layers"] == [reference], doc["name"]


@pytest.mark.parametrize(("function", "parameters"), timer_parameters(), ids=lambda value: str(value)[:30])
def test_every_cron_is_a_valid_seven_field_scf_expression(function, parameters):
    expression = parameters["cronExpression"]
    assert len(expression.split()) == 7, "SCF's recommended 7-field form"
    cron.Cron(expression)  # raises on anything SCF's syntax does not allow
    assert parameters["enable"] is True  # the component's default is false: a timer that never fires
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,59}", parameters["name"])


def test_timers_are_on_the_batch_function_with_unique_names_and_the_local_stack_reads_them():
    params = timer_parameters()
    assert {function for function, _ in params} == {"sesmail-batch"}
    assert len({p["name"] for _, p in params}) == len(params)
    specs, local_timers, problems = serverless.read(ROOT)
    assert problems == []
    assert sorted(t.name for t in local_timers) == sorted(p["name"] for _, p in params)
    assert (specs["batch"].timeout, specs["batch"].retries) == (900, 2)


def test_every_timer_argument_is_a_message_the_batch_function_runs():
    config = example_config()
    arguments = [json.loads(p["argument"]) for _, p in timer_parameters()]
    jobs = sorted(a["Job"] for a in arguments if set(a) == {"Job"})
    assert jobs == ["cleanup", "reconcile", "schedules"] and set(jobs) <= set(timers.JOBS)
    digests = [a["Digest"] for a in arguments if set(a) == {"Digest"}]
    assert digests, "the example digest timer"
    for name in digests:
        definition = config["Digests"][name]
        template = definition["Template"]["TemplateName"]
        assert any(os.path.exists(os.path.join(ROOT, "templates", f"{template}.{ext}")) for ext in ("html", "txt"))
    for argument in arguments:
        if set(argument) - {"Job", "Digest"}:  # any other object is a batch payload
            rules.validate_batch_send_email(argument, "noreply@example.com", {})


def test_every_environment_variable_is_one_the_code_reads_and_comes_from_the_deploy_environment():
    read = layer_settings()
    for doc in FUNCTIONS:
        variables = doc["inputs"]["environment"]["variables"]
        assert variables, doc["name"]
        for name, value in variables.items():
            assert name in read, f"{doc['name']}: {name} is not read by the layer"
            assert ENV_REF.match(value).group(1) == name, f"{doc['name']}: {name} = {value}"
            assert not name.startswith(("SCF_", "QCLOUD_", "TENCENTCLOUD_"))  # reserved by SCF


def test_time_limits_memory_and_asynchronous_retries_fit_scf():
    for doc in FUNCTIONS:
        inputs = doc["inputs"]
        assert 1 <= inputs["timeout"] <= 900
        assert inputs["memorySize"] == 64 or (inputs["memorySize"] % 128 == 0 and 128 <= inputs["memorySize"] <= 3072)
        assert inputs["role"] == "SCF_SESMAIL_Role"
        assert [event.get("http", {}).get("parameters", {}).get("authType") for event in inputs["events"]
                if "http" in event] == ["NONE"]  # one Function URL; the function checks its own keys
    batch = FUNCTIONS[1]["inputs"]
    assert batch["deadLetter"]["name"] == "${env:SESMAIL_DEPLOY_DEAD_LETTER}"


@pytest.mark.parametrize("doc", FUNCTIONS, ids=lambda doc: doc["name"])
def test_timer_retries_are_scfs_defaults_and_every_function_url_answers_synchronously(doc):
    inputs = doc["inputs"]
    # "Async execution" (asyncRunEnable) would answer a Function URL call with a RequestId only; and
    # the scf component applies retryNum and msgTTL only with it, so they would be dead settings.
    assert inputs.get("asyncRunEnable", False) is False
    assert not {"retryNum", "msgTTL"} & set(inputs), "retryNum/msgTTL take effect only with asyncRunEnable: true"


def test_the_function_url_hosts_in_comments_are_tencents_documented_form():
    with open(FUNCTIONS_FILE, encoding="utf-8") as handle:
        text = handle.read()
    hosts = re.findall(r"https://\S*tencentscf\.com", text)
    assert hosts
    documented = re.compile(r"https://<app-id>-<url-id>(\.in)?\.<region>\.tencentscf\.com")
    assert [host for host in hosts if not documented.fullmatch(host)] == []


def _local_retries(tmp_path, extra: str) -> tuple[int, list[str]]:
    folder = tmp_path / "functions" / "job"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.py").write_text("def main_handler(event, context):\n    return {}\n")
    path = tmp_path / "serverless.yml"
    path.write_text("component: scf\nname: job\ninputs:\n  src: ./functions/job\n  handler: index.main_handler\n"
                    + extra)
    specs, _, problems = serverless.read(str(tmp_path))
    return specs["job"].retries, problems


def test_the_local_stack_retries_a_timer_as_scf_would(tmp_path):
    # SCF's default: 2 retries of a failed asynchronous run
    assert _local_retries(tmp_path, "") == (2, [])
    # retryNum counts only where the component applies it
    assert _local_retries(tmp_path, "  asyncRunEnable: true\n  retryNum: 0\n") == (0, [])
    retries, problems = _local_retries(tmp_path, "  retryNum: 5\n  msgTTL: 60\n")
    assert retries == 2
    assert problems == ["job: retryNum and msgTTL take effect only with asyncRunEnable: true; SCF keeps its defaults"
                        " (2 retries, 6 h)"]
