"""The gateway's events, serverless.yml reading, and code reload without a restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request

import pytest

from local import serverless
from local.gateway import Gateway, route_for
from tests.local.conftest import ROOT


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(textwrap.dedent(text))


# ---- routing and events --------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "function"), [
    ("/", "send"), ("/send", "send"), ("/messages/qcloudses-1", "send"), ("/suppressions", "send"),
    ("/suppressions/a@example.com", "send"), ("/addresses/a@example.com", "send"), ("/batch", "batch"),
    ("/batch/tasks/7", "batch"), ("/digest/items", "batch"), ("/webhook", "webhook"), ("/webhook/ses", "webhook"),
    ("/sendx", None), ("/other", None),
])
def test_spec_routing_table(path, function):
    assert route_for(path) == function


@pytest.fixture
def recorded():
    seen = []

    def handler(event, context):
        seen.append((event, context))
        return {"isBase64Encoded": False, "statusCode": 201, "headers": {"Content-Type": "application/json",
                                                                          "X-Seen": "yes"}, "body": '{"ok":true}'}

    return seen, handler


def request(url, path, body=None, method="POST", headers=None):
    req = urllib.request.Request(url + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_a_request_becomes_a_function_url_event(recorded):
    seen, handler = recorded
    gateway = Gateway({"send": handler}, port=0).start()
    try:
        status, headers, body = request(gateway.url, "/send?a=1&b=", b'{"x": 1}',
                                        headers={"Content-Type": "application/json", "X-Api-Key": "k"})
    finally:
        gateway.stop()
    assert (status, headers["X-Seen"], body) == (201, "yes", b'{"ok":true}')
    [(event, context)] = seen
    assert set(event) == {"body", "headers", "httpMethod", "path", "queryString"}
    assert (event["body"], event["httpMethod"], event["path"], event["queryString"]) == (
        '{"x": 1}', "POST", "/send", {"a": "1", "b": ""})
    assert event["headers"]["x-api-key"] == "k" and event["headers"]["x-scf-remote-addr"] == "127.0.0.1"
    assert context["function_name"] == "send" and context["time_limit_in_ms"] == 30000


def test_apigw_mode_sends_api_gateway_events(recorded):
    seen, handler = recorded
    gateway = Gateway({"batch": handler}, port=0, apigw=True).start()
    try:
        request(gateway.url, "/batch/tasks/9?x=y", b"\xff\xfe", headers={"X-Api-Key": "k"})
    finally:
        gateway.stop()
    [(event, _)] = seen
    assert event["requestContext"]["path"] == "/batch/tasks/9"
    assert (event["queryStringParameters"], event["headers"]["X-Api-Key"]) == ({"x": "y"}, "k")
    assert event["isBase64Encoded"] is True  # a body that is not UTF-8 arrives base64-encoded


def test_a_missing_function_answers_404_in_tencents_shape():
    gateway = Gateway({}, port=0).start()
    try:
        status, _, body = request(gateway.url, "/webhook?token=x", b"{}")
        unrouted, _, _ = request(gateway.url, "/elsewhere", b"{}")
    finally:
        gateway.stop()
    error = json.loads(body)
    assert (status, error["Error"]["Code"], unrouted) == (404, "ResourceNotFound", 404)
    assert "webhook" in error["Error"]["Message"] and error["RequestId"]


def test_a_crashing_function_answers_502_and_a_plain_return_value_is_json():
    def crash(event, context):
        raise RuntimeError("boom")

    gateway = Gateway({"send": crash, "batch": lambda event, context: {"Plain": True}}, port=0).start()
    try:
        crashed, _, body = request(gateway.url, "/send", b"{}")
        plain, headers, plain_body = request(gateway.url, "/batch", b"{}")
    finally:
        gateway.stop()
    assert (crashed, json.loads(body)["Error"]["Code"]) == (502, "InternalError")
    assert (plain, headers["Content-Type"], json.loads(plain_body)) == (200, "application/json", {"Plain": True})


# ---- serverless.yml ---------------------------------------------------------------------------------

def test_the_repos_serverless_yml_is_read():
    specs, _, problems = serverless.read(ROOT)
    assert problems == []
    assert specs["send"].handler == "index.main_handler"
    assert specs["send"].src == os.path.join(ROOT, "functions", "send")
    assert specs["send"].declared_in == os.path.join(ROOT, "serverless.yml")


def test_scf_documents_with_timers_and_env_values(tmp_path, monkeypatch):
    monkeypatch.setenv("BATCH_TIMEOUT", "120")
    write(tmp_path / "functions" / "batch" / "index.py", "def main_handler(event, context):\n    return 1\n")
    write(tmp_path / "serverless.yml", """
        component: scf
        name: sesmail-batch
        inputs:
          src:
            src: ./functions/batch
          handler: index.main_handler
          timeout: ${env:BATCH_TIMEOUT}
          memorySize: ${env:NOT_SET}
          events:
            - timer:
                parameters:
                  name: nightly
                  cronExpression: '0 0 3 * * * *'
                  enable: true
                  argument: '{"Digest": "daily"}'
            - timer:
                parameters:
                  name: paused
                  cronExpression: '0 0 4 * * * *'
            - timer:
                parameters:
                  name: broken
                  cronExpression: '0 0 25 * * * *'
        ---
        component: layer
        name: sesmail
        inputs: {src: ./build/layer}
    """)
    specs, timers, problems = serverless.read(str(tmp_path))
    assert (specs["batch"].timeout, specs["batch"].memory) == (120, 128)
    assert [(t.name, t.function, t.cron.expression, t.argument, t.enabled) for t in timers] == [
        ("nightly", "batch", "0 0 3 * * * *", '{"Digest": "daily"}', True),
        ("paused", "batch", "0 0 4 * * * *", "", False)]  # `enable` defaults to false, as documented
    assert len(problems) == 1 and "broken" in problems[0]


def test_multi_scf_and_per_function_files(tmp_path):
    for name in ("send", "batch", "webhook"):
        write(tmp_path / "functions" / name / "index.py", "def main_handler(event, context):\n    return 1\n")
    write(tmp_path / "serverless.yml", """
        component: multi-scf
        name: mailer
        inputs:
          src: {src: ./}
          timeout: 30
          functions:
            send: {handler: functions/send/index.main_handler}
            digest: {src: ./functions/batch, handler: index.main_handler, timeout: 60}
          triggers:
            - type: timer
              function: digest
              parameters: {name: hourly, cronExpression: '0 0 * * * * *', enable: true, argument: daily}
    """)
    write(tmp_path / "functions" / "webhook" / "serverless.yml", """
        component: scf
        inputs:
          handler: index.main_handler
          timeout: 10
    """)
    specs, timers, _ = serverless.read(str(tmp_path))
    assert (specs["send"].handler, specs["send"].timeout) == ("functions/send/index.main_handler", 30)
    assert (specs["batch"].src, specs["batch"].timeout) == (str(tmp_path / "functions" / "batch"), 60)
    assert specs["webhook"].timeout == 10
    assert [(t.name, t.function, t.argument) for t in timers] == [("hourly", "batch", "daily")]


# ---- reload ------------------------------------------------------------------------------------------

RELOAD_SCRIPT = """
import json, os, sys, time
from local.functions import Functions, FunctionMissing

root = sys.argv[1]
os.makedirs(os.path.join(root, "functions", "webhook"))  # a folder whose index.py is not written yet
fns = Functions(root, layer_dir=os.path.join(root, "layers", "sesmail"))
out = [fns.invoke("send", {})]
try:
    fns.invoke("batch", {})
except FunctionMissing:
    out.append("batch missing")

def edit(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)
    stamp = time.time() + 5  # a later mtime whatever the file system's resolution
    os.utime(path, (stamp, stamp))

edit(os.path.join(root, "functions", "send", "helper.py"), "WORD = 'edited helper'\\n")
out.append(fns.invoke("send", {}))
edit(os.path.join(root, "layers", "sesmail", "sesmail", "__init__.py"), "VERSION = 'layer two'\\n")
out.append(fns.invoke("send", {}))
edit(os.path.join(root, "functions", "batch", "index.py"), "def main_handler(event, context):\\n    return 'batch'\\n")
out.append(fns.invoke("batch", {}))
edit(os.path.join(root, "functions", "webhook", "index.py"), "def main_handler(event, context):\\n    return 'hook'\\n")
out.append(fns.invoke("webhook", {}))
edit(os.path.join(root, "functions", "batch", "index.py"), "def main_handler(event, context)\\n")
fns.refresh()
out.append(sorted(fns.errors))
print(json.dumps(out))
"""


def test_changed_functions_and_layer_are_reloaded_without_a_restart(tmp_path):
    # In a child process: reloading swaps `sesmail` in sys.modules, which this test process also uses.
    write(tmp_path / "layers" / "sesmail" / "sesmail" / "__init__.py", "VERSION = 'layer one'\n")
    write(tmp_path / "functions" / "send" / "helper.py", "WORD = 'helper'\n")
    write(tmp_path / "functions" / "send" / "index.py", """
        import sesmail
        from helper import WORD

        def main_handler(event, context):
            return f"{sesmail.VERSION} + {WORD}"
    """)
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, "-c", RELOAD_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                            env=env, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == [
        "layer one + helper", "batch missing", "layer one + edited helper", "layer two + edited helper", "batch",
        "hook", ["batch"]]


def test_the_gateway_serves_the_openapi_document():
    import json
    import os
    import urllib.request

    from local.gateway import Gateway

    gateway = Gateway({}, port=0).start()
    try:
        with urllib.request.urlopen(f"{gateway.url}/openapi.json", timeout=10) as answer:
            served = json.load(answer)
    finally:
        gateway.stop()
    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "openapi.json")) as handle:
        assert served == json.load(handle)
