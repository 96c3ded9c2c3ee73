"""`make deploy` and `make rollback` through SCF's own API (tencentcloud-sdk-python-scf).

The account is read first (GetFunction, ListTriggers, GetAlias, ListVersionByFunction,
ListLayerVersions) and compared with the files (deploy/desired.py); only what differs is
written, so a second `make deploy` with nothing changed makes no write call, and `--plan` prints
the same comparison and stops before the first write. In order:

1. The layer: PublishLayerVersion from `make layer`'s folder, zipped reproducibly, only when no
   version of the layer has that content; the content's SHA-256 rides in the version's
   Description (`… (content sha256 <hex>)`), so an unchanged build binds the version that exists.
2. Each function: CreateFunction, or UpdateFunctionCode when its zip changed (the zip's SHA-256
   is the environment variable SESMAIL_CODE_SHA256, set last, so a deploy that stops half-way
   uploads again next time) and UpdateFunctionConfiguration with the fields that differ
   (runtime, handler, description, memory, time limits, environment, role, layers, VPC,
   dead-letter queue). Each write waits until the function is Active again
   (https://cloud.tencent.com/document/product/583/115197 lists the states).
3. A published version and the alias the triggers name (`$DEFAULT` unless they say otherwise)
   moved to it, unless the alias's version already is what the files say (PublishVersion,
   CreateAlias / UpdateAlias). The version and the alias carry `sesmail deploy <id> previous <n>`
   in their Description: that is what `make rollback` reads.
4. Its timers and Function URL: CreateTrigger / UpdateTrigger / DeleteTrigger for the difference.
   Triggers of other types (COS, CMQ …) are reported and left alone.

`make rollback` moves back the aliases the newest deploy moved, each to the version it pointed at
before; the Function URL and the timers follow the alias. Running it again goes one deploy further.

A failure stops the run with what was done; every step reads before it writes, so the next
`make deploy` takes over from wherever the account is.
"""

from __future__ import annotations

import base64
import json
import re
import time
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from deploy import desired
from deploy.desired import Function, Layer, Trigger

__all__ = ["DeployError", "Deployer", "ScfApi", "deploy_id"]

_HASH_NOTE = re.compile(r"\(content sha256 ([0-9a-f]{64})\)")
_RECORD = re.compile(r"sesmail deploy (\S+) previous (\S+)")
_BUSY = ("Creating", "Updating", "Publishing", "Deleting")
PAGE = 20  # ListTriggers / ListVersionByFunction's default page


class DeployError(Exception):
    """An SCF call failed: `action`, `code` and SCF's message."""

    def __init__(self, action: str, code: str, message: str) -> None:
        super().__init__(f"{action}: {code}: {message}")
        self.action, self.code, self.message = action, code, message


def deploy_id(now: Optional[float] = None) -> str:
    """A sortable id for one run (UTC, to the microsecond)."""
    return datetime.fromtimestamp(time.time() if now is None else now, timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")


class ScfApi:
    """SCF's actions as dicts in, dicts out, through the SDK's models (so a field the SDK does not
    know never leaves this machine)."""

    def __init__(self, region: str, secret_id: str, secret_key: str, token: Optional[str] = None,
                 endpoint: Optional[str] = None, protocol: str = "https", timeout: int = 120) -> None:
        from tencentcloud.common import credential
        from tencentcloud.common.profile.client_profile import ClientProfile
        from tencentcloud.common.profile.http_profile import HttpProfile
        from tencentcloud.scf.v20180416 import scf_client

        http = HttpProfile(protocol=protocol, reqTimeout=timeout)
        if endpoint:
            http.endpoint = endpoint
        self.client = scf_client.ScfClient(credential.Credential(secret_id, secret_key, token), region,
                                           ClientProfile(httpProfile=http, language="en-US"))

    def __call__(self, action: str, **params: Any) -> dict[str, Any]:
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
        from tencentcloud.scf.v20180416 import models

        request = getattr(models, action + "Request")()
        unknown = [key for key in params if not hasattr(request, "_" + key)]
        if unknown:  # the SDK would drop them with a warning: a setting silently not applied
            raise DeployError(action, "UnknownParameter", f"the SDK's {action}Request has no {', '.join(unknown)}")
        request.from_json_string(json.dumps(params))
        try:
            response = getattr(self.client, action)(request)
        except TencentCloudSDKException as exc:
            raise DeployError(action, str(exc.code), str(exc.message)) from exc
        return json.loads(response.to_json_string())


def _mask(name: str, value: Optional[str]) -> str:
    if value is None:
        return "(unset)"
    return "***" if desired.is_secret(name) else json.dumps(value)


class Deployer:
    """One run of `make deploy` (plan or apply) or `make rollback` against one account."""

    def __init__(self, api: Callable[[str], Callable[..., dict[str, Any]]], out: Callable[[str], None] = print,
                 plan: bool = False, run_id: Optional[str] = None, poll_seconds: float = 1.0,
                 wait_seconds: float = 300.0) -> None:
        self.api = api  # region -> ScfApi
        self.out = out
        self.plan = plan
        self.run_id = run_id or deploy_id()
        self.poll_seconds = poll_seconds
        self.wait_seconds = wait_seconds
        self.changes = 0
        self.writes = 0

    # ---- the run ---------------------------------------------------------------------------------

    def deploy(self, layers: list[Layer], functions: list[Function]) -> int:
        bound: dict[str, tuple[str, Optional[int]]] = {}  # layer instance -> (LayerName, version; None: new)
        for layer in layers:
            bound[layer.instance] = self._layer(layer)
        for function in functions:
            self._function(function, bound)
        if self.plan:
            self.out(f"plan: {self.changes} change(s); nothing was changed (--plan)" if self.changes
                     else "plan: no change")
        else:
            self.out(f"deployed: {self.writes} write call(s)" if self.writes else "no change: nothing was written")
        return 0

    def _write(self, scf: Callable[..., dict[str, Any]], action: str, **params: Any) -> dict[str, Any]:
        answer = scf(action, **params)
        self.writes += 1  # the calls SCF answered; one that failed may or may not have taken effect
        return answer

    def _say(self, line: str) -> None:
        self.changes += 1
        self.out(line)

    # ---- layer -----------------------------------------------------------------------------------

    def _layer(self, layer: Layer) -> tuple[str, Optional[int]]:
        scf = self.api(layer.region)
        try:
            versions = scf("ListLayerVersions", LayerName=layer.name)["LayerVersions"] or []
        except DeployError as exc:
            if exc.code != "ResourceNotFound.Layer":
                raise
            versions = []
        # A version is immutable: one with this content, description and runtimes, or a new one.
        description = f"{layer.description} (content sha256 {layer.sha256})".strip()
        same = [v["LayerVersion"] for v in versions if v.get("Description") == description
                and sorted(v.get("CompatibleRuntimes") or []) == sorted(layer.runtimes)
                and not str(v.get("Status") or "").endswith("Failed")]
        if same:
            self.out(f"layer {layer.name}: version {max(same)} has this content (sha256 {layer.sha256[:12]})")
            return layer.name, max(same)
        older = [v["LayerVersion"] for v in versions
                 if (_HASH_NOTE.search(v.get("Description") or "") or [None, None])[1] == layer.sha256]
        if older:
            self.out(f"layer {layer.name}: version {max(older)} has this content but another description or runtimes")
        newest = max((v["LayerVersion"] for v in versions), default=0)
        self._say(f"layer {layer.name}: publish version {newest + 1} (content sha256 {layer.sha256[:12]}"
                  + (f"; newest is {newest}" if newest else "; a new layer") + ")")
        if self.plan:
            return layer.name, None
        with open(layer.zip_path, "rb") as handle:
            content = base64.b64encode(handle.read()).decode()
        number = self._write(scf, "PublishLayerVersion", LayerName=layer.name, CompatibleRuntimes=layer.runtimes,
                             Content={"ZipFile": content}, Description=description)["LayerVersion"]
        def status() -> str:
            state = str(scf("GetLayerVersion", LayerName=layer.name, LayerVersion=number).get("Status"))
            if state.endswith("Failed"):
                raise DeployError("GetLayerVersion", state, f"layer {layer.name} version {number} did not publish")
            return state
        self._wait(status, f"layer {layer.name} version {number}")
        return layer.name, number

    # ---- function --------------------------------------------------------------------------------

    def _wanted(self, function: Function, bound: dict[str, tuple[str, Optional[int]]]) -> dict[str, Any]:
        """The function as comparable fields (None for a layer version this run has yet to publish)."""
        layers = []
        for ref in function.layers:
            name, version = bound[ref.instance] if ref.instance else (ref.name, ref.version)
            layers.append(f"{name}:{'(new)' if version is None else version}")
        wanted = dict(function.config, Layers=layers, Environment=dict(function.environment),
                      Code=function.sha256)
        return wanted

    @staticmethod
    def _seen(response: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
        """GetFunction's answer in the same fields as `_wanted`."""
        variables = {v["Key"]: v["Value"] for v in ((response.get("Environment") or {}).get("Variables") or [])}
        vpc = response.get("VpcConfig") or {}
        dead = response.get("DeadLetterConfig") or {}
        seen = {"Runtime": response.get("Runtime"), "Handler": response.get("Handler"),
                "Description": response.get("Description") or "", "MemorySize": response.get("MemorySize"),
                # A role may come back as its full resource name (qcs::cam::uin/…:roleName/<name>): compare names.
                "Timeout": response.get("Timeout"), "Role": str(response.get("Role") or "").rsplit("/", 1)[-1],
                "VpcConfig": (vpc.get("VpcId"), vpc.get("SubnetId")) if vpc.get("VpcId") else None,
                "DeadLetterConfig": (dead.get("Type"), dead.get("Name"), dead.get("FilterType") or "")
                if dead.get("Name") else None,
                "Layers": [f"{item['LayerName']}:{item['LayerVersion']}" for item in response.get("Layers") or []],
                "Code": variables.pop(desired.CODE_HASH_VARIABLE, None), "Environment": variables}
        if "InitTimeout" in wanted:
            seen["InitTimeout"] = response.get("InitTimeout")
        return seen

    def _function(self, function: Function, bound: dict[str, tuple[str, Optional[int]]]) -> None:
        scf = self.api(function.region)
        label = f"function {function.name}"
        if function.left_out:
            self.out(f"{label}: unset at deploy time, so left out (the layer's defaults apply): "
                     f"{', '.join(function.left_out)}")
        wanted = self._wanted(function, bound)
        current = self._get(scf, function)
        if current is None:
            self._say(f"{label}: create")
            for line in _diff({}, wanted):
                self.out(line)
            if not self.plan:
                self._create(scf, function, wanted)
        else:
            self._wait_idle(scf, function)
            seen = self._seen(current, wanted)
            changed = [key for key in wanted if wanted[key] != seen.get(key)]
            if changed:
                self._say(f"{label}: update {', '.join('code' if key == 'Code' else key for key in changed)}")
                for line in _diff(seen, {key: wanted[key] for key in changed}):
                    self.out(line)
                if not self.plan:
                    self._update(scf, function, wanted, changed)
            else:
                self.out(f"{label}: $LATEST is as the files say")
        self._version(scf, function, wanted, created=current is None)
        self._triggers(scf, function, exists=current is not None)

    def _get(self, scf: Callable[..., dict[str, Any]], function: Function,
             qualifier: Optional[str] = None) -> Optional[dict[str, Any]]:
        params = {"FunctionName": function.name, "Namespace": function.namespace}
        if qualifier:
            params["Qualifier"] = qualifier
        try:
            return scf("GetFunction", **params)
        except DeployError as exc:
            if exc.code in ("ResourceNotFound.Function", "ResourceNotFound.FunctionName", "ResourceNotFound.Version"):
                return None
            raise

    def _config_params(self, function: Function, wanted: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for key in fields:
            value = wanted[key]
            if key == "Environment":
                variables = dict(value, **{desired.CODE_HASH_VARIABLE: wanted["Code"]})
                params["Environment"] = {"Variables": [{"Key": k, "Value": v} for k, v in sorted(variables.items())]}
            elif key == "Layers":
                pairs = [item.rsplit(":", 1) for item in value]
                # Unbinding the last layer is an empty name and version 0 (the SDK's LayerVersionSimple).
                params["Layers"] = [{"LayerName": name, "LayerVersion": int(version)} for name, version in pairs] or [
                    {"LayerName": "", "LayerVersion": 0}]
            elif key == "VpcConfig":
                params["VpcConfig"] = {"VpcId": value[0] if value else "", "SubnetId": value[1] if value else ""}
            elif key == "DeadLetterConfig":
                params["DeadLetterConfig"] = ({"Type": value[0], "Name": value[1], "FilterType": value[2]} if value
                                              else {"Type": "", "Name": ""})
            elif key != "Code":
                params[key] = value
        return params

    def _create(self, scf: Callable[..., dict[str, Any]], function: Function, wanted: dict[str, Any]) -> None:
        with open(function.zip_path, "rb") as handle:
            code = base64.b64encode(handle.read()).decode()
        fields = [key for key in wanted if key != "Code" and (wanted[key] is not None or key == "Layers")]
        params = self._config_params(function, wanted, fields)
        if not function.layers:
            params.pop("Layers")
        self._write(scf, "CreateFunction", FunctionName=function.name, Namespace=function.namespace, Type="Event",
                    Code={"ZipFile": code}, **params)
        self._wait_idle(scf, function)

    def _update(self, scf: Callable[..., dict[str, Any]], function: Function, wanted: dict[str, Any],
                changed: list[str]) -> None:
        # The handler is set with the code (UpdateFunctionConfiguration has no Handler field).
        if "Code" in changed or "Handler" in changed:
            with open(function.zip_path, "rb") as handle:
                code = base64.b64encode(handle.read()).decode()
            self._write(scf, "UpdateFunctionCode", FunctionName=function.name, Namespace=function.namespace,
                        ZipFile=code, Handler=wanted["Handler"])
            self._wait_idle(scf, function)
        fields = [key for key in changed if key not in ("Code", "Handler")]
        if "Code" in changed and "Environment" not in fields:
            fields.append("Environment")  # carries the new code's SHA-256
        if fields:
            self._write(scf, "UpdateFunctionConfiguration", FunctionName=function.name, Namespace=function.namespace,
                        **self._config_params(function, wanted, fields))
            self._wait_idle(scf, function)

    def _wait_idle(self, scf: Callable[..., dict[str, Any]], function: Function) -> None:
        def status() -> str:
            answer = self._get(scf, function)
            if answer is None:
                raise DeployError("GetFunction", "ResourceNotFound.Function", f"{function.name} disappeared")
            if answer.get("Status", "").endswith("Failed"):
                reasons = "; ".join(r.get("ErrorMessage", "") for r in answer.get("StatusReasons") or [])
                raise DeployError("GetFunction", answer["Status"], reasons or answer.get("StatusDesc") or "")
            return str(answer.get("Status"))
        self._wait(status, f"function {function.name}")

    def _wait(self, status: Callable[[], str], what: str) -> None:
        deadline = time.monotonic() + self.wait_seconds
        while True:
            state = status()
            if state not in _BUSY:
                return
            if time.monotonic() > deadline:
                raise DeployError("GetFunction", "Timeout", f"{what} is still {state} after {self.wait_seconds:.0f} s")
            time.sleep(self.poll_seconds)

    # ---- version and alias -------------------------------------------------------------------

    def _versions(self, scf: Callable[..., dict[str, Any]], function: Function) -> dict[str, str]:
        """Published version -> its Description."""
        found: dict[str, str] = {}
        offset = 0
        while True:
            page = scf("ListVersionByFunction", FunctionName=function.name, Namespace=function.namespace,
                       Offset=offset, Limit=PAGE)
            rows = page.get("Versions") or []
            found.update({row["Version"]: row.get("Description") or "" for row in rows if row["Version"].isdigit()})
            offset += len(rows)
            if not rows or offset >= (page.get("TotalCount") or 0):
                return found

    def _alias(self, scf: Callable[..., dict[str, Any]], function: Function) -> Optional[dict[str, Any]]:
        try:
            return scf("GetAlias", FunctionName=function.name, Namespace=function.namespace, Name=function.alias)
        except DeployError as exc:
            if exc.code in ("ResourceNotFound.Alias", "ResourceNotFound.Function"):
                return None
            raise

    def _version(self, scf: Callable[..., dict[str, Any]], function: Function, wanted: dict[str, Any],
                 created: bool) -> None:
        label = f"function {function.name}"
        alias = None if (created and self.plan) else self._alias(scf, function)
        # SCF gives every new function the alias $DEFAULT, pointing at $LATEST.
        target = alias["FunctionVersion"] if alias else "$LATEST" if created and function.alias == "$DEFAULT" else None
        if target and target.isdigit():
            frozen = self._get(scf, function, target)
            if frozen is not None and self._seen(frozen, wanted) == wanted:
                return
        versions = {} if (created and self.plan) else self._versions(scf, function)
        newest = max(versions, key=int, default=None)
        if newest and newest != target:
            frozen = self._get(scf, function, newest)
            if frozen is not None and self._seen(frozen, wanted) == wanted:
                self._say(f"{label}: move alias {function.alias} from {target or 'none'} to version {newest}, "
                          "which is as the files say")
                if not self.plan:
                    self._point(scf, function, alias, newest, target)
                return
        after = int(newest or 0) + 1
        self._say(f"{label}: publish version {after} and move alias {function.alias} from {target or 'none'} to it")
        if self.plan:
            return
        record = f"sesmail deploy {self.run_id} previous {target or 'none'}"
        number = self._write(scf, "PublishVersion", FunctionName=function.name, Namespace=function.namespace,
                             Description=record)["FunctionVersion"]
        self._wait_idle(scf, function)
        self._point(scf, function, alias, str(number), target)

    def _point(self, scf: Callable[..., dict[str, Any]], function: Function, alias: Optional[dict[str, Any]],
               version: str, previous: Optional[str], record: Optional[str] = None) -> None:
        record = record or f"sesmail deploy {self.run_id} previous {previous or 'none'}"
        action = "UpdateAlias" if alias else "CreateAlias"
        self._write(scf, action, FunctionName=function.name, Namespace=function.namespace, Name=function.alias,
                    FunctionVersion=version, Description=record)

    # ---- triggers ------------------------------------------------------------------------------

    def _seen_triggers(self, scf: Callable[..., dict[str, Any]], function: Function) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            page = scf("ListTriggers", FunctionName=function.name, Namespace=function.namespace, Offset=len(found),
                       Limit=PAGE)
            rows = page.get("Triggers") or []
            found += rows
            if not rows or len(found) >= (page.get("TotalCount") or 0):
                return found

    def _triggers(self, scf: Callable[..., dict[str, Any]], function: Function, exists: bool) -> None:
        label = f"function {function.name}"
        seen: dict[tuple[str, str], Trigger] = {}
        for row in self._seen_triggers(scf, function) if exists else []:
            if row.get("Type") not in ("timer", "http"):
                self.out(f"{label}: {row.get('Type')} trigger {row.get('TriggerName')} is not in the files; left alone")
                continue
            seen[(row["Type"], row["TriggerName"])] = _trigger_of(row)
        wanted = {(t.type, t.name): t for t in function.triggers}
        base = {"FunctionName": function.name, "Namespace": function.namespace}
        for key, trigger in wanted.items():
            old = seen.get(key)
            if old == trigger:
                continue
            if old is None:
                self._say(f"{label}: + {_describe(trigger)}")
                if not self.plan:
                    self._write(scf, "CreateTrigger", **base, **_trigger_params(trigger))
            else:
                self._say(f"{label}: ~ {_describe(old)}\n{' ' * (len(label) + 2)}-> {_describe(trigger)}")
                if not self.plan:
                    self._write(scf, "UpdateTrigger", **base, **_trigger_params(trigger))
        for key, old in seen.items():
            if key not in wanted:
                self._say(f"{label}: - {_describe(old)}")
                if not self.plan:
                    self._write(scf, "DeleteTrigger", **base, Type=old.type, TriggerName=old.name,
                                Qualifier=old.qualifier)

    # ---- rollback ------------------------------------------------------------------------------

    def rollback(self, functions: list[Function]) -> int:
        """Move back the aliases the newest deploy moved."""
        moved: list[tuple[Function, dict[str, Any], str, str]] = []
        for function in functions:
            scf = self.api(function.region)
            alias = self._alias(scf, function)
            record = _RECORD.search((alias or {}).get("Description") or "")
            if alias and record:
                moved.append((function, alias, record.group(1), record.group(2)))
        if not moved:
            self.out("nothing to roll back: no alias was moved by make deploy")
            return 1
        newest = max(run for _, _, run, _ in moved)
        for function, alias, run, previous in moved:
            if run != newest:
                continue
            label = f"function {function.name}"
            if not previous.isdigit():
                self.out(f"{label}: alias {function.alias} has no earlier version (the deploy {run} made the first)")
                continue
            scf = self.api(function.region)
            versions = self._versions(scf, function)
            self._say(f"{label}: alias {function.alias} {alias['FunctionVersion']} -> {previous} (undoing deploy "
                      f"{run})")
            if not self.plan:
                # The alias now records how `previous` was reached, so a second rollback goes one further.
                self._point(scf, function, alias, previous, None,
                            record=versions.get(previous) or "sesmail deploy none previous none")
        if self.plan:
            self.out(f"plan: {self.changes} alias(es) would move; nothing was changed (--plan)")
        else:
            self.out(f"rolled back: {self.changes} alias(es) moved" if self.changes else "nothing was moved")
        return 0


def _trigger_of(row: dict[str, Any]) -> Trigger:
    """ListTriggers' row as a Trigger: a timer's TriggerDesc comes back as {"cron": …} and Enable as 1/0."""
    desc = row.get("TriggerDesc") or ""
    try:
        parsed = json.loads(desc)
    except ValueError:
        parsed = None
    if row["Type"] == "timer":
        desc = parsed["cron"] if isinstance(parsed, dict) and "cron" in parsed else desc
    elif isinstance(parsed, dict):
        net = parsed.get("NetConfig") or {}
        desc = desired.url_desc(str(parsed.get("AuthType") or "NONE"), bool(net.get("EnableIntranet")),
                                bool(net.get("EnableExtranet")))
    enable = row.get("Enable")
    return Trigger(row["Type"], row["TriggerName"], desc, enable in (1, "1", "OPEN", True),
                   row.get("CustomArgument") or "", row.get("Qualifier") or "$LATEST")


def _trigger_params(trigger: Trigger) -> dict[str, Any]:
    params = {"Type": trigger.type, "TriggerName": trigger.name, "TriggerDesc": trigger.desc,
              "Enable": "OPEN" if trigger.enable else "CLOSE", "Qualifier": trigger.qualifier}
    if trigger.type == "timer":
        params["CustomArgument"] = trigger.argument
    return params


def _describe(trigger: Trigger) -> str:
    if trigger.type == "timer":
        return (f"timer {trigger.name}: {trigger.desc!r} argument {trigger.argument!r} "
                f"{'enabled' if trigger.enable else 'DISABLED'} on {trigger.qualifier}")
    return f"Function URL {trigger.name}: {trigger.desc} on {trigger.qualifier}"


def _diff(seen: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """`+ field: value` / `~ field: old -> new`, environment variables one by one, secrets masked."""
    lines = []
    for key, value in wanted.items():
        old = seen.get(key)
        if key == "Environment":
            old = old or {}
            for name in sorted(set(old) | set(value)):
                before, after = old.get(name), value.get(name)
                if before == after:
                    continue
                sign = "+" if before is None else "-" if after is None else "~"
                shown = _mask(name, after) if sign == "+" else _mask(name, before) if sign == "-" else (
                    f"{_mask(name, before)} -> {_mask(name, after)}" + (" (changed)" if desired.is_secret(name)
                                                                        else ""))
                lines.append(f"    {sign} Environment.{name}: {shown}")
        elif key == "Code":
            lines.append(f"    {'~' if old else '+'} code: sha256 {str(old)[:12] + ' -> ' if old else ''}{value[:12]}")
        elif not seen:
            if value not in (None, "", []):
                lines.append(f"    + {key}: {_show(value)}")
        else:
            lines.append(f"    ~ {key}: {_show(old)} -> {_show(value)}")
    return lines


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return "/".join(str(part) for part in value if part)
    if isinstance(value, list):
        return "[" + ", ".join(str(item) for item in value) + "]"
    return "none" if value is None else json.dumps(value) if isinstance(value, str) else str(value)


def from_environment(env: dict[str, str]) -> Callable[[str], ScfApi]:
    """region -> ScfApi with the deploy's credentials (TENCENTCLOUD_SECRETID / SECRETKEY / SESSIONTOKEN) and
    SESMAIL_DEPLOY_SCF_ENDPOINT / SESMAIL_DEPLOY_SCF_PROTOCOL (a local fake) when set."""
    clients: dict[str, ScfApi] = {}

    def api(region: str) -> ScfApi:
        if region not in clients:
            clients[region] = ScfApi(region, env["TENCENTCLOUD_SECRETID"], env["TENCENTCLOUD_SECRETKEY"],
                                     env.get("TENCENTCLOUD_SESSIONTOKEN") or None,
                                     endpoint=env.get("SESMAIL_DEPLOY_SCF_ENDPOINT") or None,
                                     protocol=env.get("SESMAIL_DEPLOY_SCF_PROTOCOL") or "https")
        return clients[region]
    return api


def credentials_missing(env: dict[str, str]) -> bool:
    return not (env.get("TENCENTCLOUD_SECRETID") and env.get("TENCENTCLOUD_SECRETKEY"))

