"""`make deploy` against the local SCF API fake, with the real SDK over real HTTP.

Each test gets a fresh fake account, a built layer folder of its own (no `make layer`: a layer is
a folder with `sesmail/` in it), and the repository's own serverless.yml.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple, Optional

import pytest

from deploy import converge, desired, scf
from local.scf_emulator import ScfEmulator
from tests.conftest import ROOT

SECRET_ID, SECRET_KEY, TOKEN = "AKIDdeploy", "deploy-secret-key", "deploy-token"
# Values that must reach SCF and never a file nor the plan.
API_KEY, HOOK_SECRET, DB_PASSWORD = "web=k3y-never-on-disk", "h00k-never-on-disk", "pa55-never-on-disk"


class Run(NamedTuple):
    code: int
    lines: list[str]
    writes: list[dict[str, Any]]  # the fake's write calls made by this run

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def scf_fake():
    fake = ScfEmulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, token=TOKEN, busy_seconds=0.03).start()
    yield fake
    fake.stop()


@pytest.fixture
def layer_file(tmp_path):
    """The repository's layer serverless.yml with `src` at a built layer folder of this test's."""
    folder = tmp_path / "layer-py3.9"
    (folder / "sesmail").mkdir(parents=True)
    (folder / "sesmail" / "__init__.py").write_text("VERSION = 1\n")
    with open(scf.LAYER_FILE, encoding="utf-8") as handle:
        text = handle.read()
    assert "src: ../../build/layer-py3.9" in text
    path = tmp_path / "layer.yml"
    path.write_text(text.replace("src: ../../build/layer-py3.9", f"src: {folder}"))
    return path


@pytest.fixture
def deploy_env(scf_fake, monkeypatch):
    monkeypatch.setenv("NO_PROXY", f"127.0.0.1,{scf_fake.endpoint}")
    return {"STAGE": "dev", "SESMAIL_DEPLOY_REGION": "ap-guangzhou", "TENCENTCLOUD_SECRETID": SECRET_ID,
            "TENCENTCLOUD_SECRETKEY": SECRET_KEY, "TENCENTCLOUD_SESSIONTOKEN": TOKEN,
            "SESMAIL_DEPLOY_SCF_ENDPOINT": scf_fake.endpoint, "SESMAIL_DEPLOY_SCF_PROTOCOL": "http",
            "SESMAIL_REGION": "ap-guangzhou", "SESMAIL_API_KEYS": API_KEY, "SESMAIL_WEBHOOK_SECRETS": HOOK_SECRET,
            "SESMAIL_DATABASE_URL": f"postgresql://sesmail:{DB_PASSWORD}@10.0.0.5/sesmail"}


@pytest.fixture
def deploy(scf_fake, deploy_env, layer_file, tmp_path):
    """deploy(env changes…, plan=False, command="deploy") -> Run, against the fake."""
    build_dir = str(tmp_path / "build")

    def run(plan: bool = False, command: str = "deploy", files: Optional[tuple[str, ...]] = None,
            machine: str = "", **changes: Optional[str]) -> Run:
        env = dict(deploy_env)
        for key, value in changes.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        lines: list[str] = []
        before = len(scf_fake.writes())
        layers, functions = desired.read(env, lines.append, build_dir=build_dir + machine,
                                         files=files or (str(layer_file), scf.FUNCTIONS_FILE),
                                         build=command == "deploy")
        deployer = converge.Deployer(converge.from_environment(env), lines.append, plan=plan, poll_seconds=0.01,
                                     wait_seconds=10)
        try:
            code = deployer.deploy(layers, functions) if command == "deploy" else deployer.rollback(functions)
        except converge.DeployError as exc:
            lines.append(f"stopped: {exc}")
            code = 1
        return Run(code, lines, scf_fake.writes()[before:])

    run.build_dir = build_dir  # type: ignore[attr-defined]
    return run


FUNCTIONS = ("sesmail-send-dev", "sesmail-batch-dev", "sesmail-webhook-dev")


def account(fake: ScfEmulator) -> dict[str, Any]:
    """What a deploy leaves, without times and ids: to compare two accounts."""
    state: dict[str, Any] = {"layers": {name: [(v["LayerVersion"], v["Description"], v["CodeSha256"])
                                                for v in versions] for name, versions in fake.layers.items()}}
    for (_, name), fn in sorted(fake.functions.items()):
        latest = {key: value for key, value in fn["latest"].items() if key not in ("ModTime",)}
        state[name] = {
            "latest": latest,
            "versions": sorted(fn["versions"]),
            "aliases": {alias: target["FunctionVersion"] for alias, target in fn["aliases"].items()},
            "triggers": sorted((t["Type"], t["TriggerName"], t["TriggerDesc"], t["Enable"], t["CustomArgument"],
                                t["Qualifier"]) for t in fn["triggers"]),
        }
    return state


def env_of(fake: ScfEmulator, name: str, qualifier: str = "$LATEST") -> dict[str, str]:
    fn = fake.function(name)
    config = fn["latest"] if qualifier == "$LATEST" else fn["versions"][qualifier]
    return {v["Key"]: v["Value"] for v in config["Environment"]["Variables"]}


def repo_files(folder: str) -> list[str]:
    found = []
    for directory, dirs, files in os.walk(os.path.join(ROOT, folder)):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        found += [os.path.relpath(os.path.join(directory, f), os.path.join(ROOT, folder)).replace(os.sep, "/")
                  for f in files if not f.endswith(".pyc")]
    return sorted(found)
