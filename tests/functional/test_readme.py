"""The README and docs/ stay true: the generated tables are fresh, every example of the README's
"Try it" runs against the local stack and answers what the README says, and every setting the
layer reads is documented."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import pytest

from local import docs
from local.stack import Stack

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
README_LIMIT = 12 * 1024  # a newcomer reads it in five minutes; the reference lives in docs/


def read(path: str) -> str:
    with open(os.path.join(ROOT, path), encoding="utf-8") as handle:
        return handle.read()


def readme() -> str:
    return read("README.md")


# ---- generated tables ------------------------------------------------------------------------------

def test_the_generated_tables_of_the_docs_are_up_to_date():
    assert docs.stale() == [], "run `make docs` (python -m local.docs) to regenerate the rule tables"


@pytest.mark.parametrize("path,names", sorted(docs.TARGETS.items()))
def test_a_stale_table_is_caught(path, names):
    fresh = read(path)
    start = fresh.index(f"<!-- generated:{names[0]} -->")
    row = fresh.index("\n| `", start) + 1  # the first rule row of the block
    stale = fresh[:row] + "| `Gone` | a rule the code no longer has | `InvalidParameter` |\n" + fresh[row:]
    assert docs.render(stale, names, path) != stale
    assert docs.render(stale, names, path) == fresh


def test_a_generated_block_without_its_markers_is_an_error():
    with pytest.raises(ValueError, match="send-rules"):
        docs.render("no markers here", ("send-rules",), "docs/api.md")


def test_the_shipped_openapi_document_is_up_to_date():
    with open(docs.OPENAPI, encoding="utf-8") as handle:
        assert json.load(handle) == json.loads(json.dumps(docs.openapi())), "run `make docs`"


# ---- the README's shape ----------------------------------------------------------------------------

def test_the_readme_opens_with_the_two_commands():
    block = re.search(r"```sh\n(.*?)```", readme(), re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["make dev", "make test"]


def test_the_readme_is_short():
    size = len(readme().encode("utf-8"))
    assert size <= README_LIMIT, f"README.md is {size} bytes: move reference material into docs/"


def test_the_readme_keeps_its_sections():
    headings = re.findall(r"^## (.+)$", readme(), re.M)
    assert headings == ["Try it", "Routes", "Settings that matter", "Deploy", "Documentation"]


def test_the_readme_links_every_document():
    linked = set(re.findall(r"\]\((docs/[\w-]+\.md)[)#]", readme()))
    shipped = {f"docs/{name}" for name in os.listdir(os.path.join(ROOT, "docs")) if name.endswith(".md")}
    assert shipped <= linked


def test_the_settings_that_matter_are_documented_in_full():
    section = readme().split("\n## Settings that matter\n", 1)[1].split("\n## ", 1)[0]
    names = re.findall(r"^\| `(SESMAIL_[A-Z_]+)`", section, re.M)
    configuration = read("docs/configuration.md")
    assert len(names) == 10 and not [name for name in names if f"`{name}`" not in configuration]


def test_every_setting_the_layer_reads_is_documented():
    layer = os.path.join(ROOT, "layers", "sesmail", "sesmail")
    names = set()
    for directory, _, files in os.walk(layer):
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(directory, name), encoding="utf-8") as handle:
                    names |= set(re.findall(r"\"(SESMAIL_[A-Z_]+)\"", handle.read()))
    text = read("docs/configuration.md")
    assert names and not [name for name in sorted(names) if f"`{name}`" not in text]


# ---- the README's examples, run against the local stack ---------------------------------------------

def _examples() -> dict[str, list[list[str]]]:
    """The commands of each ```sh block under "Try it", keyed by the route the block calls first
    (send, batch, webhook, digest); a command starts at a line beginning `curl ` or `make `."""
    section = readme().split("\n## Try it\n", 1)[1].split("\n## ", 1)[0]
    out: dict[str, list[list[str]]] = {}
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        commands: list[list[str]] = []
        for line in block.splitlines():
            if re.match(r"(curl|make) ", line) or not commands:
                commands.append([])
            commands[-1].append(line)
        argvs = [shlex.split("\n".join(lines).replace("\\\n", " ")) for lines in commands]
        url = next(arg for arg in argvs[0] if arg.startswith("http"))
        out[urllib.parse.urlsplit(url).path.strip("/").split("/")[0]] = argvs
    return out


def test_the_readme_has_an_example_for_each_function():
    assert sorted(_examples()) == ["batch", "digest", "send", "webhook"]


def test_make_fire_is_what_the_test_runs():
    assert "-m local fire $(TRIGGER)" in read("Makefile")


@pytest.fixture
def stack(env, tmp_path, monkeypatch):
    # The stack sets what it needs, as `make dev` does (its dev key and secret, the repository's
    # sesmail.json); whatever the test environment set would win over it. Restored afterwards.
    for name in [*env, "NO_PROXY"]:
        monkeypatch.delenv(name, raising=False)
    running = Stack(gateway_port=0, emulator_port=0, data_dir=str(tmp_path / "local")).start()
    yield running
    running.stop()


def _run(argv: list[str], stack: Stack) -> str:
    """One README command against `stack`: curl (or the same request without curl), or `make fire`
    as the Makefile runs it (`python -m local fire <TRIGGER>`), pointed at the stack's emulator."""
    if argv[0] == "make":
        assert argv[1] == "fire" and argv[2].startswith("TRIGGER="), argv
        env = dict(os.environ, SESMAIL_EMULATOR_URL=stack.emulator.url)
        return subprocess.run([sys.executable, "-m", "local", "fire", argv[2].split("=", 1)[1]], cwd=ROOT,
                              env=env, capture_output=True, text=True, check=True, timeout=120).stdout
    argv = [arg.replace("http://127.0.0.1:8080", stack.gateway.url) for arg in argv]
    if shutil.which("curl"):
        return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout
    headers = dict(h.split(": ", 1) for flag, h in zip(argv, argv[1:]) if flag == "-H")
    data = argv[argv.index("-d") + 1].encode()
    url = next(arg for arg in argv if arg.startswith("http"))
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=60) as reply:
            return reply.read().decode()
    except urllib.error.HTTPError as exc:  # curl -s prints the body of any status
        return exc.read().decode()


def _send(stack: Stack, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(f"{stack.gateway.url}/send", data=json.dumps(payload).encode(),
                                     headers={"Authorization": "Bearer dev-key"})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_send_example_sends_once_and_replays(stack):
    [command] = _examples()["send"]
    first, second = (json.loads(_run(command, stack)) for _ in range(2))
    assert first["MessageId"].startswith("qcloudses-")
    assert second["MessageId"] == first["MessageId"]
    assert len(stack.emulator.sent) == 1


def test_the_batch_example_creates_one_task(stack):
    [command] = _examples()["batch"]
    answer = json.loads(_run(command, stack))
    assert isinstance(answer["TaskId"], int) and answer["TaskIds"] == [answer["TaskId"]]
    assert "Suppressed" not in answer and "Error" not in answer


def test_the_webhook_example_is_stored_once_and_suppresses_the_address(stack):
    [command] = _examples()["webhook"]
    first, second = (json.loads(_run(command, stack)) for _ in range(2))
    assert (first["Stored"], first["Duplicates"], first["Rejected"]) == (1, 0, [])
    assert (second["Stored"], second["Duplicates"]) == (0, 1)
    status, body = _send(stack, {"FromEmailAddress": "noreply@example.com", "Destination": ["gone@example.com"],
                                 "Subject": "Hello", "Template": {"TemplateID": 1, "TemplateData": {"order": "1"}}})
    assert (status, body["Error"]["Code"]) == (403, "FailedOperation.EmailAddrInBlacklist")
    assert stack.emulator.sent == []


def test_the_digest_example_sends_one_mail_with_both_items(stack):
    queue, fire = _examples()["digest"]
    assert json.loads(_run(queue, stack))["Queued"] == 2
    run = json.loads(_run(fire, stack))
    assert json.loads(run["Result"]["body"])["Sent"] == 1
    [mail] = stack.emulator.sent
    assert mail["Destination"] == ["ada@example.com"]
    data = json.loads(mail["Template"]["TemplateData"])
    assert "Order 1001 shipped" in data["titles"] and "Order 1002 shipped" in data["titles"]
