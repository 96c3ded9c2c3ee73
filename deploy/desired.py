"""What `make deploy` converges the account to: serverless.yml and the layer's, read whole.

Every key of the two files either takes effect or is refused with its path (`serverless.yml:
sesmail-batch.inputs.retryNum: …`): a key the deploy does not apply is an error, never a silent
no-op. The keys are those of Tencent's `scf` and `layer` components (so the same files still work
with the `scf` CLI, `python -m deploy deploy --cli`), read as the components document them:
https://github.com/serverless-components/tencent-scf/blob/master/docs/configure.md.

Variables: `${env:NAME}` from the deploy's environment (the shell, then a `.env` file beside
serverless.yml; STAGE defaults to dev, SESMAIL_DEPLOY_REGION to ap-guangzhou), `${name}`,
`${stage}` and `${app}` of the document, and `${output:<stage>:<app>:<layer>.name|version}` for
the layer this deploy publishes. An environment variable whose `${env:NAME}` is unset is left
out (the function keeps the layer's default), and so is `deadLetter` without its queue, as the
CLI path does. Values are read from the environment at deploy time and only ever sent to SCF:
nothing here writes them to disk (build/scf/ holds code and the layer, no configuration).

Each function's code zip holds exactly its folder (less `src.exclude`, `__pycache__`, `*.pyc`,
`serverless.yml`, `.env`): its index.py and any static file it serves, plus the config file
(sesmail.json, unless the folder has its own) and templates/; the same bytes for the same inputs,
so its SHA-256 says whether SCF has it already.
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.util
import os
import re
import shutil
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from deploy import scf

__all__ = ["CODE_HASH_VARIABLE", "Function", "Layer", "LayerRef", "SpecError", "Trigger", "is_secret", "read"]

CODE_HASH_VARIABLE = "SESMAIL_CODE_SHA256"  # set by the deploy: which zip $LATEST runs
BUILD_DIR = os.path.join(scf.ROOT, "build", "scf")
DEFAULT_QUALIFIER = "$DEFAULT"  # the components' default, and the alias SCF gives every function
# Names whose values the plan never prints (keys, secrets, passwords, URLs that may carry them).
_SECRET_NAME = re.compile(r"(KEY|SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|PRIVATE|_URL|_DSN)S?$")
_VARIABLE = re.compile(r"\$\{(env:)?([A-Za-z_][A-Za-z0-9_]*)\}")
_OUTPUT = re.compile(r"\$\{output:([^:{}]+):([^:{}]+):([^.{}]+)\.(name|version)\}")
_ALWAYS_EXCLUDED = ("__pycache__", "*.pyc", "serverless.yml", ".env")

# The keys each part of a document may have; anything else is refused with its path.
_TOP = {"app", "stage", "component", "name", "inputs"}
_SCF_INPUTS = {"name", "namespace", "region", "runtime", "src", "handler", "description", "timeout", "memorySize",
               "initTimeout", "role", "layers", "environment", "vpcConfig", "deadLetter", "events", "type"}
_LAYER_INPUTS = {"name", "region", "src", "runtimes", "description"}
_NESTED = {"src": {"src", "exclude"}, "environment": {"variables"}, "vpcConfig": {"vpcId", "subnetId"},
           "deadLetter": {"type", "name", "filterType"}, "layers[]": {"name", "version"},
           "timer": {"name", "cronExpression", "enable", "argument", "qualifier"},
           "http": {"name", "netConfig", "qualifier", "authType"}, "netConfig": {"enableIntranet", "enableExtranet"}}
# Why a component key is refused, where there is more to say than "not applied".
_WHY = {
    "retryNum": "SCF's asynchronous retries are its defaults (2 retries, 6 h) unless changed in the console "
                "(UpdateFunctionEventInvokeConfig); the scf component applies it only with asyncRunEnable",
    "msgTTL": "as retryNum",
    "asyncRunEnable": "async execution answers Function URL calls with a RequestId only",
    "apigw": "API Gateway triggers are retired (https://cloud.tencent.com/document/product/583/107631); "
             "use the Function URL (`http`)",
    "publicAccess": "functions keep SCF's default (public network access on)",
}


class SpecError(Exception):
    """The files ask for something the deploy does not do; one line per problem, each with its path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class LayerRef:
    """A function's layer: one this deploy publishes (`instance`) or a fixed name and version."""
    instance: Optional[str] = None
    name: Optional[str] = None
    version: Optional[int] = None


@dataclass
class Trigger:
    type: str  # timer or http
    name: str
    desc: str  # a timer's cron expression; a Function URL's JSON (AuthType, NetConfig)
    enable: bool
    argument: str  # a timer's CustomArgument ("" for a Function URL)
    qualifier: str


@dataclass
class Layer:
    instance: str  # the document's `name`, what `${output:…:<instance>.version}` names
    name: str  # LayerName
    region: str
    runtimes: list[str]
    description: str
    zip_path: str
    sha256: str


@dataclass
class Function:
    instance: str
    source: str  # the file it came from, for messages
    name: str  # FunctionName
    namespace: str
    region: str
    config: dict[str, Any]  # Runtime, Handler, Description, MemorySize, Timeout, InitTimeout, Role, VpcConfig …
    environment: dict[str, str]
    layers: list[LayerRef]
    zip_path: str
    sha256: str
    triggers: list[Trigger] = field(default_factory=list)
    alias: str = DEFAULT_QUALIFIER
    left_out: list[str] = field(default_factory=list)  # environment variables unset at deploy time


def is_secret(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


class _Reader:
    def __init__(self, env: dict[str, str], build_dir: str, out: Callable[[str], None], build: bool) -> None:
        self.env = env
        self.build_dir = build_dir
        self.out = out
        self.build = build  # False: names and settings only (make rollback), no zip
        self.problems: list[str] = []

    def problem(self, path: str, text: str) -> None:
        self.problems.append(f"{path}: {text}")

    def keys(self, value: Any, allowed: set[str], path: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(path, "must be a mapping")
            return {}
        for key in value:
            if key not in allowed:
                why = _WHY.get(str(key), "")
                self.problem(f"{path}.{key}", "not applied by make deploy" + (f" ({why})" if why else "")
                             + "; remove it, or deploy with the scf CLI (make deploy ARGS=--cli)")
        return value

    def text(self, value: Any, path: str, doc: dict[str, Any], required: bool = True) -> Optional[str]:
        """A string with its variables resolved; None (with a problem, when required) if one is unset."""
        if value is None:
            if required:
                self.problem(path, "missing")
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.problem(path, "must be a string or a number")
            return None
        unset: list[str] = []

        def sub(match: re.Match) -> str:
            if match.group(1):
                found = self.env.get(match.group(2))
                if not found:
                    unset.append(match.group(2))
                return found or ""
            if match.group(2) in ("name", "stage", "app"):
                return str(doc.get(match.group(2)) or "")
            return match.group(0)

        out = str(value)
        for _ in range(3):  # `${output:${stage}:${app}:…}` resolves from the inside out
            out = _VARIABLE.sub(sub, out)
        if unset:
            if required:
                self.problem(path, f"${{env:{unset[0]}}} is not set")
            return None
        left = re.sub(_OUTPUT, "", out)
        if "${" in left:
            self.problem(path, f"a variable make deploy does not know: {out}")
            return None
        return out

    def integer(self, value: Any, path: str, doc: dict[str, Any], default: Optional[int]) -> Optional[int]:
        if value is None:
            return default
        resolved = self.text(value, path, doc)
        if resolved is None:
            return default
        try:
            return int(resolved)
        except ValueError:
            self.problem(path, f"must be an integer, not {resolved!r}")
            return default

    def flag(self, value: Any, path: str, doc: dict[str, Any], default: bool) -> bool:
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        resolved = (self.text(value, path, doc) or "").lower()
        if resolved not in ("true", "false"):
            self.problem(path, "must be true or false")
            return default
        return resolved == "true"


def read(env: dict[str, str], out: Callable[[str], None] = print, build_dir: str = BUILD_DIR,
         files: Optional[tuple[str, ...]] = None, config_file: Optional[str] = None,
         templates_dir: Optional[str] = None, build: bool = True) -> tuple[list[Layer], list[Function]]:
    """The layers and functions of `files` (the layer's serverless.yml, then the functions'), their
    zips built in `build_dir` (unless `build` is False); SpecError lists every key that would not
    take effect."""
    import yaml

    files = files or (scf.LAYER_FILE, scf.FUNCTIONS_FILE)

    reader = _Reader(env, build_dir, out, build)
    if build:
        shutil.rmtree(build_dir, ignore_errors=True)
        os.makedirs(build_dir)
    layers: list[Layer] = []
    functions: list[Function] = []
    for path in files:
        label = os.path.relpath(path, scf.ROOT)
        with open(path, encoding="utf-8") as handle:
            docs = list(yaml.safe_load_all(handle))
        for index, doc in enumerate(docs):
            if doc is None:
                continue
            where = f"{label}: {doc.get('name') or f'document {index + 1}'}" if isinstance(doc, dict) else label
            if not isinstance(doc, dict):
                reader.problem(where, "a document must be a mapping")
                continue
            reader.keys(doc, _TOP, where)
            doc = dict(doc, stage=reader.text(doc.get("stage") or "dev", f"{where}.stage", doc) or "dev")
            component = doc.get("component")
            if component == "layer":
                layer = _layer(reader, doc, where, os.path.dirname(path))
                if layer:
                    layers.append(layer)
            elif component == "scf":
                function = _function(reader, doc, where, os.path.dirname(path), config_file or scf.CONFIG_FILE,
                                     templates_dir or scf.TEMPLATES_DIR)
                if function:
                    functions.append(function)
            else:
                reader.problem(f"{where}.component", f"{component!r}: make deploy deploys `scf` and `layer` components")
    known = {layer.instance for layer in layers}
    for function in functions:
        for ref in function.layers:
            if ref.instance is not None and ref.instance not in known:
                reader.problem(f"{function.source}.inputs.layers", f"names the output of {ref.instance!r}, which is "
                               "no layer document of this deploy")
    if reader.problems:
        raise SpecError(reader.problems)
    return layers, functions


def _layer(reader: _Reader, doc: dict[str, Any], where: str, base: str) -> Optional[Layer]:
    inputs = reader.keys(doc.get("inputs"), _LAYER_INPUTS, f"{where}.inputs")
    name = reader.text(inputs.get("name") or doc.get("name"), f"{where}.inputs.name", doc)
    region = reader.text(inputs.get("region"), f"{where}.inputs.region", doc)
    src = reader.text(inputs.get("src"), f"{where}.inputs.src", doc)
    runtimes = inputs.get("runtimes")
    if not (isinstance(runtimes, list) and runtimes and all(isinstance(r, str) for r in runtimes)):
        reader.problem(f"{where}.inputs.runtimes", "a list of SCF runtimes (Python3.9 …)")
        return None
    description = reader.text(inputs.get("description") or "", f"{where}.inputs.description", doc) or ""
    if not (name and region and src):
        return None
    folder = os.path.normpath(os.path.join(base, src))
    if not reader.build:
        return Layer(str(doc["name"]), name, region, list(runtimes), description, "", "")
    if not os.path.isdir(os.path.join(folder, "sesmail")):
        reader.problem(f"{where}.inputs.src", f"{os.path.relpath(folder, scf.ROOT)} has no layer: run `make layer`")
        return None
    if not any(name.endswith(".pyc") for _, _, files in os.walk(os.path.join(folder, "sesmail")) for name in files):
        reader.out(f"note: {os.path.relpath(folder, scf.ROOT)} has no .pyc: every cold start compiles from source "
                   "(docs/deploy.md, step 6 of the one-time setup)")
    zip_path = os.path.join(reader.build_dir, f"{doc['name']}.zip")
    _write_zip(folder, zip_path)
    return Layer(str(doc["name"]), name, region, list(runtimes), description, zip_path, _sha256(zip_path))


def _function(reader: _Reader, doc: dict[str, Any], where: str, base: str, config_file: str,
              templates_dir: str) -> Optional[Function]:
    inputs = reader.keys(doc.get("inputs"), _SCF_INPUTS, f"{where}.inputs")
    at = f"{where}.inputs"
    name = reader.text(inputs.get("name") or doc.get("name"), f"{at}.name", doc)
    region = reader.text(inputs.get("region"), f"{at}.region", doc)
    kind = reader.text(inputs.get("type") or "event", f"{at}.type", doc)
    if kind != "event":
        reader.problem(f"{at}.type", "make deploy deploys event functions (`type: event`, the default)")
    config: dict[str, Any] = {
        "Runtime": reader.text(inputs.get("runtime"), f"{at}.runtime", doc),
        "Handler": reader.text(inputs.get("handler") or "index.main_handler", f"{at}.handler", doc),
        "Description": reader.text(inputs.get("description") or "", f"{at}.description", doc) or "",
        "MemorySize": reader.integer(inputs.get("memorySize"), f"{at}.memorySize", doc, 128),
        "Timeout": reader.integer(inputs.get("timeout"), f"{at}.timeout", doc, 3),
        "Role": reader.text(inputs.get("role") or "", f"{at}.role", doc) or "",
    }
    if "initTimeout" in inputs:
        config["InitTimeout"] = reader.integer(inputs["initTimeout"], f"{at}.initTimeout", doc, None)
    vpc = reader.keys(inputs.get("vpcConfig"), _NESTED["vpcConfig"], f"{at}.vpcConfig")
    config["VpcConfig"] = (reader.text(vpc.get("vpcId"), f"{at}.vpcConfig.vpcId", doc),
                           reader.text(vpc.get("subnetId"), f"{at}.vpcConfig.subnetId", doc)) if vpc else None
    dead = reader.keys(inputs.get("deadLetter"), _NESTED["deadLetter"], f"{at}.deadLetter")
    config["DeadLetterConfig"] = None
    if dead:
        queue = reader.text(dead.get("name"), f"{at}.deadLetter.name", doc, required=False)
        if queue:
            config["DeadLetterConfig"] = (reader.text(dead.get("type"), f"{at}.deadLetter.type", doc), queue,
                                          reader.text(dead.get("filterType") or "", f"{at}.deadLetter.filterType",
                                                      doc) or "")
        else:
            reader.out(f"{doc['name']}: no dead-letter queue ({dead.get('name')} is unset)")

    environment: dict[str, str] = {}
    left_out: list[str] = []
    env_block = reader.keys(inputs.get("environment"), _NESTED["environment"], f"{at}.environment")
    variables = reader.keys(env_block.get("variables"), set(env_block.get("variables") or {}),
                            f"{at}.environment.variables")
    for key, value in variables.items():
        if key == CODE_HASH_VARIABLE:
            reader.problem(f"{at}.environment.variables.{key}", "set by make deploy itself (the code's SHA-256)")
            continue
        if str(key).upper().startswith(("SCF_", "QCLOUD_", "TENCENTCLOUD_")):
            reader.problem(f"{at}.environment.variables.{key}", "SCF reserves the SCF_, QCLOUD_ and TENCENTCLOUD_ "
                           "prefixes (https://cloud.tencent.com/document/product/583/32748)")
            continue
        resolved = reader.text(value, f"{at}.environment.variables.{key}", doc, required=False)
        if resolved is None or resolved == "":
            left_out.append(str(key))
        else:
            environment[str(key)] = resolved

    layers: list[LayerRef] = []
    for number, item in enumerate(inputs.get("layers") or []):
        path = f"{at}.layers[{number}]"
        item = reader.keys(item, _NESTED["layers[]"], path)
        layer_name = reader.text(item.get("name"), f"{path}.name", doc)
        version = reader.text(item.get("version"), f"{path}.version", doc)
        if layer_name is None or version is None:
            continue
        outputs = [_OUTPUT.fullmatch(layer_name), _OUTPUT.fullmatch(version)]
        if all(outputs):
            instances = {match.group(3) for match in outputs if match}
            stage_app = {(match.group(1), match.group(2)) for match in outputs if match}
            if len(instances) != 1 or stage_app != {(doc["stage"], str(doc.get("app")))}:
                reader.problem(path, "name and version must be the outputs of one layer of this app and stage")
            layers.append(LayerRef(instance=instances.pop()))
        elif any(outputs) or not version.isdigit():
            reader.problem(path, "a layer of this deploy (both `${output:…}`) or a fixed name and version number")
        else:
            layers.append(LayerRef(name=layer_name, version=int(version)))

    triggers: list[Trigger] = []
    for number, event in enumerate(inputs.get("events") or []):
        path = f"{at}.events[{number}]"
        if not (isinstance(event, dict) and len(event) == 1):
            reader.problem(path, "one trigger per item: `timer` or `http`")
            continue
        (kind_name, body), = event.items()
        if kind_name not in ("timer", "http"):
            reader.keys({kind_name: None}, {"timer", "http"}, path)
            continue
        body = reader.keys(body, {"parameters"}, f"{path}.{kind_name}")
        params = reader.keys(body.get("parameters"), _NESTED[kind_name], f"{path}.{kind_name}.parameters")
        trigger = _trigger(reader, kind_name, params, f"{path}.{kind_name}.parameters", doc)
        if trigger:
            triggers.append(trigger)
    qualifiers = {trigger.qualifier for trigger in triggers}
    if len(qualifiers) > 1:
        reader.problem(f"{at}.events", f"every trigger of a function names one alias (the one make deploy moves and "
                       f"make rollback moves back), not {sorted(qualifiers)}")
    alias = qualifiers.pop() if len(qualifiers) == 1 else DEFAULT_QUALIFIER
    if alias == "$LATEST" or alias.isdigit():
        reader.problem(f"{at}.events", f"qualifier {alias}: triggers name an alias ($DEFAULT …), so a deploy is "
                       "published as a version and make rollback can move back")

    src_value = inputs.get("src")
    src_block = reader.keys(src_value, _NESTED["src"], f"{at}.src") if isinstance(src_value, dict) else {}
    src = reader.text(src_block.get("src") if src_block else src_value, f"{at}.src", doc)
    exclude = src_block.get("exclude") or []
    if not (isinstance(exclude, list) and all(isinstance(p, str) for p in exclude)):
        reader.problem(f"{at}.src.exclude", "a list of glob patterns")
        exclude = []
    if not (name and region and src) or any(value is None for key, value in config.items()
                                           if key not in ("VpcConfig", "DeadLetterConfig")):
        return None
    folder = os.path.normpath(os.path.join(base, src))
    if not os.path.isdir(folder):
        reader.problem(f"{at}.src", f"{folder} is not a folder")
        return None
    zip_path = _function_zip(reader.build_dir, str(doc["name"]), folder, exclude, config_file,
                             templates_dir) if reader.build else ""
    return Function(str(doc["name"]), where, name, reader.text(inputs.get("namespace") or "default",
                                                                f"{at}.namespace", doc) or "default",
                    region, config, environment, layers, zip_path, _sha256(zip_path) if zip_path else "", triggers,
                    alias, left_out)


def _trigger(reader: _Reader, kind: str, params: dict[str, Any], path: str, doc: dict[str, Any]) -> Optional[Trigger]:
    qualifier = reader.text(params.get("qualifier") or DEFAULT_QUALIFIER, f"{path}.qualifier", doc) or ""
    if kind == "timer":
        name = reader.text(params.get("name"), f"{path}.name", doc)
        cron = reader.text(params.get("cronExpression"), f"{path}.cronExpression", doc)
        argument = reader.text(params.get("argument") or "", f"{path}.argument", doc) or ""
        # The component's default for `enable` is false: a timer that never fires unless fired by hand.
        enable = reader.flag(params.get("enable"), f"{path}.enable", doc, False)
        return Trigger("timer", name, cron, enable, argument, qualifier) if name and cron else None
    net = reader.keys(params.get("netConfig"), _NESTED["netConfig"], f"{path}.netConfig")
    auth = reader.text(params.get("authType") or "NONE", f"{path}.authType", doc)
    if auth not in ("NONE", "CAM"):
        reader.problem(f"{path}.authType", "NONE or CAM")
    desc = url_desc(auth or "NONE", reader.flag(net.get("enableIntranet"), f"{path}.netConfig.enableIntranet", doc,
                                                False),
                    reader.flag(net.get("enableExtranet"), f"{path}.netConfig.enableExtranet", doc, False))
    # The component's default name for a Function URL trigger.
    name = reader.text(params.get("name") or "url-trigger", f"{path}.name", doc) or "url-trigger"
    return Trigger("http", name, desc, True, "", qualifier)


def url_desc(auth: str, intranet: bool, extranet: bool) -> str:
    """A Function URL trigger's TriggerDesc (https://cloud.tencent.com/document/product/583/100227), canonical."""
    import json

    return json.dumps({"AuthType": auth, "NetConfig": {"EnableExtranet": extranet, "EnableIntranet": intranet}},
                      sort_keys=True)


def _excluded(relative: str, patterns: list[str]) -> bool:
    parts = relative.split("/")
    for pattern in patterns:
        if fnmatch.fnmatch(relative, pattern) or (pattern.endswith("/**") and (
                relative.startswith(pattern[:-2]) or pattern[:-3] in parts[:-1])):
            return True
    return any(fnmatch.fnmatch(part, pattern) for part in parts for pattern in _ALWAYS_EXCLUDED)


def _function_zip(build_dir: str, instance: str, folder: str, exclude: list[str], config_file: str,
                  templates_dir: str) -> str:
    """Stage the function's code in build/scf/<instance>/ and zip it: its folder, the config file, templates/."""
    staged = os.path.join(build_dir, instance)
    for directory, dirs, files in os.walk(folder):
        dirs.sort()
        for name in files:
            relative = os.path.relpath(os.path.join(directory, name), folder).replace(os.sep, "/")
            if not _excluded(relative, exclude):
                os.makedirs(os.path.dirname(os.path.join(staged, relative)), exist_ok=True)
                shutil.copy(os.path.join(directory, name), os.path.join(staged, relative))
    os.makedirs(staged, exist_ok=True)
    if os.path.exists(config_file) and not os.path.exists(os.path.join(staged, "sesmail.json")):
        shutil.copy(config_file, os.path.join(staged, "sesmail.json"))
    shutil.copytree(templates_dir, os.path.join(staged, "templates"),
                    ignore=shutil.ignore_patterns("README.md", "__pycache__"))
    zip_path = staged + ".zip"
    _write_zip(staged, zip_path)
    return zip_path


def _write_zip(folder: str, zip_path: str) -> None:
    """The layer build's reproducible zip (layers/sesmail/build.py): same files, same bytes."""
    spec = importlib.util.spec_from_file_location("sesmail_layer_build",
                                                  os.path.join(scf.ROOT, "layers", "sesmail", "build.py"))
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    build.write_zip(folder, zip_path)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
