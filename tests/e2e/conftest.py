"""The local stack as `make dev` runs it: `python -m local` in its own process, on free ports.

One stack serves every end-to-end test (starting it costs about a second); tests keep out of each
other's way by sending to their own addresses and finding their mail by MessageId. Teardown
presses Ctrl-C (SIGINT) and checks the stack stops cleanly.

The stack reads its functions and timers from a YAML file of the test's own (`--serverless`): the
repo's serverless.yml declares no timer yet, and a timer is what the timer test fires. The repo's
functions are found in functions/<name>/ as `make dev` finds them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from typing import Any, Optional

import pytest

from tests.local.helpers import wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMER = "e2e-batch"
TIMER_RECIPIENTS = [{"Email": "timer-one@e2e.example", "TemplateData": {"name": "One"}},
                    {"Email": "timer-two@e2e.example", "TemplateData": {"name": "Two"}}]


class RunningStack:
    def __init__(self, process: subprocess.Popen, lines: list[str]) -> None:
        self.process = process
        self.lines = lines
        banner = "\n".join(lines)
        self.gateway = re.search(r"Functions\s+(http://\S+)", banner).group(1)  # type: ignore[union-attr]
        self.emulator = re.search(r"SES emulator\s+(http://\S+)", banner).group(1)  # type: ignore[union-attr]

    def request(self, base: str, path: str, body: Any = None, method: Optional[str] = None,
                headers: Optional[dict[str, str]] = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(base + path, data=data, method=method or ("POST" if data else "GET"),
                                     headers=dict({"Content-Type": "application/json"}, **(headers or {})))
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(req, timeout=60) as reply:
                return reply.status, json.loads(reply.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def send(self, payload: dict[str, Any]) -> tuple[int, Any]:
        return self.request(self.gateway, "/send", payload, headers={"Authorization": "Bearer dev-key"})

    def local(self, path: str, body: Any = None, method: Optional[str] = None) -> tuple[int, Any]:
        return self.request(self.emulator, path, body, method)


def _serverless_file(tmp: str) -> str:
    message = {"FromEmailAddress": "noreply@sesmail.local", "Subject": "E2E {{name}}", "TaskType": 1,
               "Template": {"TemplateID": 2}, "Recipients": TIMER_RECIPIENTS}
    path = os.path.join(tmp, "serverless.yml")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("component: scf\nname: sesmail-batch\ninputs:\n"
                     f"  src:\n    src: {json.dumps(os.path.join(ROOT, 'functions', 'batch'))}\n"
                     "  handler: index.main_handler\n  timeout: 60\n  events:\n    - timer:\n        parameters:\n"
                     f"          name: {TIMER}\n          cronExpression: '0 0 3 1 1 * 2099'\n"
                     f"          enable: true\n          argument: {json.dumps(json.dumps(message))}\n")
    return path


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("local-stack"))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SESMAIL_", "TENCENTCLOUD_")) and k.lower() not in ("http_proxy", "https_proxy",
                                                                                     "all_proxy")}
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(ROOT, "layers", "sesmail"), ROOT])
    process = subprocess.Popen(
        [sys.executable, "-m", "local", "--gateway-port", "0", "--emulator-port", "0", "--data-dir",
         os.path.join(tmp, "data"), "--serverless", _serverless_file(tmp)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines: list[str] = []

    def read() -> None:  # keep draining: the functions log a JSON line per request
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("Ctrl-C stops everything" in line for line in lines) or process.poll() is not None,
                 timeout=60, what="the banner")
        assert process.poll() is None, "the local stack exited:\n" + "\n".join(lines)
        yield RunningStack(process, list(lines))
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # Ctrl-C
            try:
                code = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                raise
            reader.join(timeout=5)
            assert code == 0, "\n".join(lines[-40:])
            assert "sesmail local stack stopped" in lines
