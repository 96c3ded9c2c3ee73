"""The README stays true: generated tables are fresh and its example runs against the local stack."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import urllib.request

import pytest

from local import docs
from local.stack import Stack

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def readme() -> str:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        return handle.read()


def test_the_generated_blocks_of_the_readme_are_up_to_date():
    text = readme()
    assert docs.render(text) == text, "run `python -m local.docs` to regenerate the README tables"


def test_the_readme_opens_with_the_two_commands():
    block = re.search(r"```sh\n(.*?)```", readme(), re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["make dev", "make test"]


@pytest.fixture
def stack(env, tmp_path, monkeypatch):
    for name in ("SESMAIL_SES_ENDPOINT", "SESMAIL_SES_PROTOCOL", "SESMAIL_API_KEYS", "SESMAIL_DATABASE_URL",
                 "TENCENTCLOUD_SECRETID", "TENCENTCLOUD_SECRETKEY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)  # the stack sets what it needs; restored afterwards
    running = Stack(gateway_port=0, emulator_port=0, data_dir=str(tmp_path / "local")).start()
    yield running
    running.stop()


def _example() -> str:
    match = re.search(r"```sh\n(curl -s http://127\.0\.0\.1:8080/send.*?)```", readme(), re.S)
    assert match, "the README's curl example is missing"
    return match.group(1).replace("\\\n", " ")


def test_the_readme_example_sends_once_and_replays(stack):
    argv = shlex.split(_example().replace("http://127.0.0.1:8080", stack.gateway.url))
    if shutil.which("curl"):
        outputs = [subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout
                   for _ in range(2)]
    else:  # the same request without curl: -H headers and a -d body
        headers = dict(h.split(": ", 1) for flag, h in zip(argv, argv[1:]) if flag == "-H")
        data = argv[argv.index("-d") + 1].encode()
        outputs = [urllib.request.urlopen(urllib.request.Request(argv[2], data=data, headers=headers),
                                          timeout=30).read().decode() for _ in range(2)]
    first, second = (json.loads(output) for output in outputs)
    assert first["MessageId"].startswith("qcloudses-")
    assert second["MessageId"] == first["MessageId"]
    assert len(stack.emulator.sent) == 1


def test_the_readme_keeps_all_its_sections():
    headings = re.findall(r"^## (.+)$", readme(), re.M)
    for heading in ("Try it", "The `send` function", "The `batch` function", "The `webhook` function",
                    "Security model", "Failure model", "Configuration", "Local stack", "Benchmarks", "Layout"):
        assert heading in headings


def test_every_setting_the_layer_reads_is_documented():
    layer = os.path.join(ROOT, "layers", "sesmail", "sesmail")
    names = set()
    for directory, _, files in os.walk(layer):
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(directory, name), encoding="utf-8") as handle:
                    names |= set(re.findall(r"\"(SESMAIL_[A-Z_]+)\"", handle.read()))
    text = readme()
    assert names and not [name for name in sorted(names) if f"`{name}`" not in text]


def test_the_shipped_openapi_document_is_up_to_date():
    with open(docs.OPENAPI, encoding="utf-8") as handle:
        assert json.load(handle) == json.loads(json.dumps(docs.openapi())), "run `python -m local.docs`"
