"""`make deploy ARGS=--cli`: the layer and the three functions, with Tencent's `scf` CLI (the alternative
to `make deploy` through SCF's API, deploy/converge.py, for teams on Serverless Cloud Framework).

The CLI (npm package serverless-cloud-framework) reads one component per serverless.yml, while
ours keeps the three functions in one file (and the layer in layers/sesmail/serverless.yml). So each
component is staged in build/deploy/<name>/: its serverless.yml (the document, with `src` pointing
at the staged code) and the code itself —
- a function: its folder, plus the config file (sesmail.json, which `make sync` fills) and
  templates/ (the SMTP transport renders from them), where SCF unpacks code (/var/user);
- the layer: what `make layer` built (build/layer-py<version>).
Then `scf deploy` runs in each folder, layer first: the functions bind it through its outputs.

An `environment.variables` entry whose `${env:NAME}` is unset at deploy time is left out (the
function keeps the layer's default), and so is `deadLetter` without its queue. Values stay
`${env:NAME}` in the staged files: the CLI substitutes them, so no secret is written to build/.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from typing import Any, Callable, NamedTuple

__all__ = ["FUNCTIONS_FILE", "INSTALL_HINT", "LAYER_FILE", "STAGE_DIR", "Staged", "check_config", "components",
           "deploy", "stage"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FUNCTIONS_FILE = os.path.join(ROOT, "serverless.yml")
LAYER_FILE = os.path.join(ROOT, "layers", "sesmail", "serverless.yml")
STAGE_DIR = os.path.join(ROOT, "build", "deploy")
CONFIG_FILE = os.path.join(ROOT, "sesmail.json")
TEMPLATES_DIR = os.path.join(ROOT, "templates")
DEFAULTS = {"STAGE": "dev", "SESMAIL_DEPLOY_REGION": "ap-guangzhou"}
INSTALL_HINT = """The `scf` command (Tencent's Serverless Cloud Framework CLI) is not installed. Install it with
    npm install -g serverless-cloud-framework      # Node.js 12 or newer; then: scf --version
and give it credentials: `scf credentials set -i <SecretId> -k <SecretKey>`, or TENCENT_SECRET_ID /
TENCENT_SECRET_KEY in .env (a CAM user allowed to manage SCF, its layers and triggers, and CAM role
binding). `python -m deploy stage` prepares build/deploy/ without the CLI, to look at first."""
_ENV = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
_CODE_EXCLUDE = ("__pycache__", "*.pyc", "serverless.yml", ".env")


class Staged(NamedTuple):
    name: str  # the component instance (`name:` of the document)
    component: str  # scf or layer
    folder: str  # build/deploy/<name>


def components() -> list[tuple[str, dict]]:
    """(the file it came from, document) for the layer, then each function in file order."""
    import yaml

    found = []
    for path in (LAYER_FILE, FUNCTIONS_FILE):
        with open(path, encoding="utf-8") as handle:
            found += [(path, doc) for doc in yaml.safe_load_all(handle) if isinstance(doc, dict)]
    return found


def read_env_file(path: str) -> dict[str, str]:
    """KEY=VALUE lines of a .env file (what the CLI itself reads beside a serverless.yml)."""
    values: dict[str, str] = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                key, sep, value = line.strip().partition("=")
                if sep and key and not key.startswith("#"):
                    values[key.strip()] = value.strip().strip("'\"")
    return values


def deploy_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment `scf deploy` runs with: ours, the repo's .env, and the defaults."""
    env = dict(os.environ if base is None else base)
    for key, value in read_env_file(os.path.join(ROOT, ".env")).items():
        env.setdefault(key, value)
    for key, value in DEFAULTS.items():
        if not env.get(key):
            env[key] = value
    return env


def _unset(value: Any, env: dict[str, str]) -> bool:
    return isinstance(value, str) and any(not env.get(name) for name in _ENV.findall(value))


def _copy_code(source: str, target: str) -> None:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*_CODE_EXCLUDE))


def stage(env: dict[str, str] | None = None, out: Callable[[str], None] = print,
          stage_dir: str = STAGE_DIR) -> list[Staged]:
    """Write build/deploy/<name>/ for every component; returns them in deploy order."""
    import yaml

    env = deploy_env(env)
    shutil.rmtree(stage_dir, ignore_errors=True)
    staged = []
    for path, doc in components():
        name, component = str(doc.get("name")), str(doc.get("component"))
        folder = os.path.join(stage_dir, name)
        code = os.path.join(folder, "code")
        os.makedirs(folder)
        inputs = copy.deepcopy(doc.get("inputs") or {})
        base = os.path.dirname(path)
        if component == "layer":
            source = os.path.normpath(os.path.join(base, inputs["src"]))
            if not os.path.isdir(os.path.join(source, "sesmail")):
                raise SystemExit(f"{os.path.relpath(source, ROOT)} has no layer: run `make layer` first")
            if not any(name.endswith(".pyc") for _, _, files in os.walk(os.path.join(source, "sesmail"))
                       for name in files):
                out(f"note: {os.path.relpath(source, ROOT)} has no .pyc: every cold start compiles from source "
                    "(docs/deploy.md, step 6 of the one-time setup)")
            shutil.copytree(source, code)
            inputs["src"] = "./code"
        elif component == "scf":
            source = os.path.normpath(os.path.join(base, inputs["src"]["src"]))
            _copy_code(source, code)
            if os.path.exists(CONFIG_FILE) and not os.path.exists(os.path.join(code, "sesmail.json")):
                shutil.copy(CONFIG_FILE, os.path.join(code, "sesmail.json"))
            shutil.copytree(TEMPLATES_DIR, os.path.join(code, "templates"),
                            ignore=shutil.ignore_patterns("README.md"))
            inputs["src"] = dict(inputs["src"], src="./code")
            variables = (inputs.get("environment") or {}).get("variables") or {}
            left_out = sorted(key for key, value in variables.items() if _unset(value, env))
            for key in left_out:
                del variables[key]
            if left_out:
                out(f"{name}: unset at deploy time, so left out (the layer's defaults apply): {', '.join(left_out)}")
            if not variables:
                inputs.pop("environment", None)
            if "deadLetter" in inputs and _unset((inputs["deadLetter"] or {}).get("name"), env):
                del inputs["deadLetter"]
                out(f"{name}: no dead-letter queue (SESMAIL_DEPLOY_DEAD_LETTER is unset)")
        else:
            raise SystemExit(f"{os.path.relpath(path, ROOT)}: unknown component {component!r}")
        with open(os.path.join(folder, "serverless.yml"), "w", encoding="utf-8") as handle:
            handle.write(f"# Staged by `python -m deploy` from {os.path.relpath(path, ROOT)}; edit that file.\n")
            yaml.safe_dump(dict(doc, inputs=inputs), handle, sort_keys=False, allow_unicode=True)
        staged.append(Staged(name, component, folder))
        out(f"staged {name} ({component}) in {os.path.relpath(folder, ROOT)}")
    return staged


def check_config(env: dict[str, str], out: Callable[[str], None] = print) -> bool:
    """The config file each function will read, checked as the function checks it (whole), with
    the environment it is deployed with; then each client's effective access. False (the error
    printed: file, path, rule) when a function would refuse every request."""
    from sesmail import config, policy

    functions = os.path.join(ROOT, "functions")
    own = [os.path.join(functions, name, "sesmail.json") for name in sorted(os.listdir(functions))]
    paths = [CONFIG_FILE, *(path for path in own if os.path.isfile(path))]
    access: list[str] = []
    for path in paths:
        try:
            settings = config.Settings(dict(env, SESMAIL_CONFIG=path))
            config.check_file(path, settings.file, synced=True)  # names resolve: `make sync` ran
        except config.ConfigError as exc:
            out(f"the functions would refuse every request: {exc}")
            return False
        access = access or policy.describe_access(settings)
    out("effective access per client (config file `Clients`, SESMAIL_API_KEYS):")
    for line in access or ["no client: SESMAIL_API_KEYS is not set, every request would get 401"]:
        out(f"  {line}")
    return True


def deploy(env: dict[str, str] | None = None, out: Callable[[str], None] = print,
           cli: str | None = None) -> int:
    """Check the config, stage, then `scf deploy` each component in order; stops at the first failure."""
    command = cli or shutil.which("scf")
    if command is None:
        out(INSTALL_HINT)
        return 2
    env = deploy_env(env)
    if not check_config(env, out):
        return 2
    out(f"deploying stage {env['STAGE']} to {env['SESMAIL_DEPLOY_REGION']} (STAGE, SESMAIL_DEPLOY_REGION)")
    for item in stage(env, out):
        out(f"$ (cd {os.path.relpath(item.folder, ROOT)} && scf deploy)")
        done = subprocess.run([command, "deploy"], cwd=item.folder, env=env)
        if done.returncode != 0:
            out(f"scf deploy failed for {item.name} (exit {done.returncode}); `scf deploy --debug` in "
                f"{os.path.relpath(item.folder, ROOT)} says more. Nothing after it was deployed.")
            return done.returncode
    out("deployed. `scf info` in build/deploy/sesmail-send (and -batch, -webhook) shows each Function URL; set "
        "the webhook's as SES's callback address: <URL>/webhook?token=<one of SESMAIL_WEBHOOK_SECRETS>")
    return 0
