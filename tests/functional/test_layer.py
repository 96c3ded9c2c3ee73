"""The layer as deployed: built by `make layer`, unzipped alone on the path, under SCF's Python.

SCF runs Python 3.9/3.10. Where such an interpreter exists on this machine (pyenv), the built
layer is imported and the functions are run with it, in isolated mode, with nothing on the path
but the unzipped layer and the function's folder, as /opt and /var/user on SCF.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import ROOT, SECRET_ID, SECRET_KEY
from tests.events import fixture, http_event, sample_send_payload

sys.path.insert(0, os.path.join(ROOT, "layers", "sesmail"))
import build as layer_build  # layers/sesmail/build.py


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("layer")
    layer_dir, zip_path, size, compiler = layer_build.build(str(out), "3.9")
    return {"dir": layer_dir, "zip": zip_path, "size": size, "python": compiler, "out": out}


def test_the_layer_has_the_package_and_its_dependencies_at_the_zip_root(built):
    names = zipfile.ZipFile(built["zip"]).namelist()
    roots = {name.split("/", 1)[0] for name in names}
    assert {"sesmail", "tencentcloud", "jmespath", "requests", "urllib3"} <= roots
    assert "sesmail/http.py" in names
    assert not any(name.startswith(("tests/", "local/", "functions/")) for name in names)


def test_the_layer_fits_the_size_budget(built):
    assert built["size"] <= 3_000_000


def test_the_layer_ships_pyc_for_the_runtime_when_its_python_is_here(built):
    names = zipfile.ZipFile(built["zip"]).namelist()
    has_pyc = any(name.endswith(".cpython-39.pyc") for name in names)
    assert has_pyc == bool(built["python"])


def test_the_layer_zip_is_reproducible(built, tmp_path):
    again = layer_build.build(str(tmp_path), "3.9")[1]
    with open(built["zip"], "rb") as first, open(again, "rb") as second:
        assert first.read() == second.read()


def test_every_runtime_dependency_supports_python_39(built):
    # pip does not always honour Requires-Python for a foreign --python-version: check ourselves.
    for entry in os.listdir(built["dir"]):
        if entry.endswith(".dist-info"):
            with open(os.path.join(built["dir"], entry, "METADATA"), encoding="utf-8") as handle:
                for line in handle:
                    if line.startswith("Requires-Python:"):
                        spec = line.split(":", 1)[1].strip()
                        assert "3.10" not in spec and "3.11" not in spec, f"{entry}: {spec}"


RUN = """
import json, sys, io, contextlib
sys.path[:0] = [{function!r}, {layer!r}]
import index
events = json.loads(sys.stdin.read())
out = io.StringIO()
with contextlib.redirect_stdout(out):
    answers = [index.main_handler(event, {{"time_limit_in_ms": 20000, "request_id": "r"}}) for event in events]
print(json.dumps([[a["statusCode"], json.loads(a["body"])] for a in answers]))
"""


def run_on_runtime(built, function: str, events: list[dict], env: dict) -> list:
    if not built["python"]:
        pytest.skip("no Python 3.9 on this machine: the layer's runtime check needs it (pyenv install 3.9)")
    code = RUN.format(function=os.path.join(ROOT, "functions", function), layer=built["dir"])
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "SESMAIL_"))}
    out = subprocess.run([built["python"], "-I", "-c", code], input=json.dumps(events), capture_output=True,
                         text=True, env=dict(clean, **env), cwd=str(built["out"]), timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_send_function_runs_on_python_39_from_the_layer_alone(built, ses_fake, tmp_path):
    env = {"TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
           "SESMAIL_SES_ENDPOINT": ses_fake.endpoint, "SESMAIL_SES_PROTOCOL": "http", "SESMAIL_API_KEYS": "dev-key",
           "SESMAIL_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3", "NO_PROXY": "127.0.0.1"}
    bad = sample_send_payload()
    bad["Destination"] = ["not-an-address"]
    answers = run_on_runtime(built, "send", [http_event(sample_send_payload()), http_event(bad)], env)
    assert answers[0][0] == 200 and answers[0][1]["MessageId"] == ses_fake.sent[0]["MessageId"]
    assert answers[1][0] == 400 and len(ses_fake.sent) == 1


def test_the_webhook_and_batch_functions_run_on_python_39(built, ses_fake, tmp_path):
    env = {"SESMAIL_WEBHOOK_SECRETS": "s", "SESMAIL_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
           "TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
           "SESMAIL_SES_ENDPOINT": ses_fake.endpoint, "SESMAIL_SES_PROTOCOL": "http", "NO_PROXY": "127.0.0.1"}
    callback = http_event(fixture("ses-callback-bounce.json"), key=None, path="/webhook", query={"token": "s"})
    assert run_on_runtime(built, "webhook", [callback], env)[0][0] == 200
    timer = {"Type": "Timer", "TriggerName": "t", "Time": "2026-11-23T00:00:00Z", "Message": '{"Job": "cleanup"}'}
    assert run_on_runtime(built, "batch", [timer], env)[0][0] == 200


def test_the_smtp_transport_runs_on_python_39_from_the_layer_alone(built, ses_fake, tmp_path):
    from local.ses_smtp import SmtpEndpoint

    config_file = tmp_path / "sesmail.json"
    config_file.write_text(json.dumps({"Templates": {"welcome": 2}}))
    with SmtpEndpoint(ses_fake) as endpoint:
        env = {"SESMAIL_TRANSPORT": "smtp", "SESMAIL_SMTP_HOST": "127.0.0.1", "SESMAIL_SMTP_PORT": str(endpoint.port),
               "SESMAIL_SMTP_TLS": "none", "SESMAIL_SMTP_PASSWORD": endpoint.password,
               "SESMAIL_TEMPLATES_DIR": os.path.join(ROOT, "templates"), "SESMAIL_CONFIG": str(config_file),
               "SESMAIL_API_KEYS": "dev-key", "SESMAIL_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
        payload = {"FromEmailAddress": "noreply@example.com", "Destination": ["ada@example.com"], "Subject": "Hi",
                   "Template": {"TemplateName": "welcome", "TemplateData": {"name": "Ada"}}}
        answers = run_on_runtime(built, "send", [http_event(payload)], env)
        assert answers[0][0] == 200, answers
        assert answers[0][1]["MessageId"].endswith("@example.com")
        assert [r["Reply"] for r in endpoint.received] == ["250 OK"]


@pytest.mark.parametrize(("extras", "name"), [
    ([], "sesmail-layer-py3.9.zip"),
    (["pg8000==1.31.5", "scramp==1.4.6"], "sesmail-layer-py3.9-pg8000.zip"),  # the driver, not its pinned dependency
    (["PyMySQL==1.2.4"], "sesmail-layer-py3.9-pymysql.zip"),
    (["some_package>=2"], "sesmail-layer-py3.9-some-package.zip"),  # not a driver: named all the same
])
def test_the_zip_name_says_which_database_driver_it_carries(extras, name):
    assert layer_build.zip_name("3.9", extras) == name
