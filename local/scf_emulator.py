"""Local fake of Tencent Cloud SCF's API (2018-04-16), for `make deploy`'s tests.

The real SDK (`tencentcloud-sdk-python-scf`) talks to it over real HTTP, as it does to SCF: tests
start it on port 0 and point `HttpProfile(endpoint=fake.endpoint, protocol="http")` at it. It holds
to the same standards as the SES emulator beside it: TC3-HMAC-SHA256 signatures checked
(`ses_auth`, under the service name `scf`), every request's fields checked against the SDK's own
request models (`ses_schema`: a field the model does not know is `UnknownParameter`, an integer
field that is not one `InvalidParameterValue`), `NoSuchVersion` and `UnsupportedRegion`, answers
with `Content-Type: application/json` exactly.

It keeps, across calls, what a deploy touches: functions ($LATEST, published versions, aliases,
triggers, their code), and layers with their versions; and answers with SCF's error codes (the
SDK's `tencentcloud.scf.v20180416.errorcodes`) for the limits Tencent documents
(https://cloud.tencent.com/document/product/583/11637: memory 64 or 128-3072 MB in steps of 128,
time limit 1-900 s, environment variables 4 KB in all and no `SCF_` / `QCLOUD_` / `TENCENTCLOUD_`
name, at most 5 layers a function, 20 layers a region, 200 versions a layer, 50 functions a
namespace; a code zip of at most 50 MB, 20 MB through UpdateFunctionCode's `ZipFile`).

What it models of SCF's behaviour that a deploy must cope with:
- a function is `Creating` / `Updating` / `Publishing` for `busy_seconds` after a write, and
  another write meanwhile is refused (`FailedOperation.FunctionStatusError` and the action's own
  `FailedOperation.*`); a layer version is `Publishing` for as long;
- every function has the alias `$DEFAULT`, pointing at `$LATEST`, from its creation
  (https://cloud.tencent.com/document/product/583/36149);
- ListTriggers gives a timer's `TriggerDesc` back as `{"cron": "<expression>"}` and `Enable` as
  1 / 0, though CreateTrigger takes the bare expression and `OPEN` / `CLOSE`.

State a test reads: `calls` (Action, Params with code zips replaced by their size, Outcome "ok" /
"error:<Code>" / "dropped"), `writes()` (the calls that change something and did), `functions`,
`layers`. Faults script the next requests of an action: `fail(action, code)` answers an error
instead, `drop_after(action)` does the work and loses the reply; `skip=n` lets n go by first.

`python -m local.scf_emulator --port 8091` runs it in the foreground, to try `make deploy` with no
account: `SESMAIL_DEPLOY_SCF_ENDPOINT=127.0.0.1:8091 SESMAIL_DEPLOY_SCF_PROTOCOL=http
TENCENTCLOUD_SECRETID=AKIDlocal TENCENTCLOUD_SECRETKEY=local-secret-key make deploy`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import copy
import hashlib
import io
import json
import logging
import os
import re
import threading
import time
import uuid
import zipfile
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

from . import httpserver, ses_auth, ses_schema
from .cron import Cron
from .ses_common import ApiError, answer

__all__ = ["SCF_REGIONS", "WRITE_ACTIONS", "ScfEmulator", "main"]

log = logging.getLogger("sesmail.local")

API_VERSION = "2018-04-16"
MODELS = "tencentcloud.scf.v20180416.models"
JSON_TYPE = "application/json"  # exactly: the SDK reads errors only from this Content-Type
# A sample of SCF's regions (https://cloud.tencent.com/document/product/583/17299).
SCF_REGIONS = frozenset({"ap-guangzhou", "ap-shanghai", "ap-beijing", "ap-chengdu", "ap-chongqing", "ap-nanjing",
                         "ap-hongkong", "ap-singapore", "ap-bangkok", "ap-jakarta", "ap-mumbai", "ap-seoul",
                         "ap-tokyo", "na-siliconvalley", "na-ashburn", "eu-frankfurt", "sa-saopaulo"})
WRITE_ACTIONS = frozenset({"CreateFunction", "UpdateFunctionCode", "UpdateFunctionConfiguration", "PublishLayerVersion",
                           "CreateTrigger", "UpdateTrigger", "DeleteTrigger", "PublishVersion", "CreateAlias",
                           "UpdateAlias", "DeleteFunction"})
RUNTIMES = frozenset({"Python2.7", "Python3.6", "Python3.7", "Python3.9", "Python3.10", "Python3.11", "Python3.12",
                      "Nodejs12.16", "Nodejs14.18", "Nodejs16.13", "Nodejs18.15", "Go1", "Php7.4", "Php8.0",
                      "Java8", "Java11", "CustomRuntime"})
RESERVED_ENV = ("SCF_", "QCLOUD_", "TENCENTCLOUD_")
MAX_ENV_BYTES = 4096
MAX_LAYERS_PER_FUNCTION = 5
MAX_LAYERS = 20
MAX_LAYER_VERSIONS = 200
MAX_FUNCTIONS = 50
MAX_ZIP = 50 * 1024 * 1024
MAX_UPDATE_ZIP = 20 * 1024 * 1024
MAX_ARGUMENT = 4096  # a timer's CustomArgument becomes the event's Message, at most 4 KB
_FUNCTION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,58}[A-Za-z0-9]", re.ASCII)
_LAYER_NAME = re.compile(r"[A-Za-z]([A-Za-z0-9_-]{0,62}[A-Za-z0-9])?", re.ASCII)
_ALIAS_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}", re.ASCII)
_TRIGGER_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}", re.ASCII)
_HANDLER = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\.[A-Za-z][A-Za-z0-9_-]*", re.ASCII)
_ENV_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]{1,63}", re.ASCII)
_BEIJING = timezone(timedelta(hours=8))
# The request fields each action cannot go without (SCF answers MissingParameter).
_REQUIRED = {
    "GetFunction": ("FunctionName",), "CreateFunction": ("FunctionName", "Code"),
    "UpdateFunctionCode": ("FunctionName",), "UpdateFunctionConfiguration": ("FunctionName",),
    "PublishLayerVersion": ("LayerName", "CompatibleRuntimes", "Content"),
    "GetLayerVersion": ("LayerName", "LayerVersion"), "ListLayerVersions": ("LayerName",),
    "ListTriggers": ("FunctionName",), "CreateTrigger": ("FunctionName", "TriggerName", "Type"),
    "UpdateTrigger": ("FunctionName", "TriggerName", "Type"), "DeleteTrigger": ("FunctionName", "TriggerName", "Type"),
    "PublishVersion": ("FunctionName",), "ListVersionByFunction": ("FunctionName",),
    "GetAlias": ("FunctionName", "Name"), "CreateAlias": ("FunctionName", "Name", "FunctionVersion"),
    "UpdateAlias": ("FunctionName", "Name", "FunctionVersion"),
}
# What a function's version freezes (GetFunction with Qualifier=<version> gives it back).
_CONFIG_FIELDS = ("Runtime", "Handler", "Description", "MemorySize", "Timeout", "InitTimeout", "Role", "Environment",
                  "VpcConfig", "DeadLetterConfig", "Layers", "Type")


def _now_text(unix: float) -> str:
    return datetime.fromtimestamp(unix, _BEIJING).strftime("%Y-%m-%d %H:%M:%S")


class ScfEmulator(httpserver.Served):
    def __init__(self, secret_id: str = "AKIDlocal", secret_key: str = "local-secret-key",
                 token: Optional[str] = None, host: str = "127.0.0.1", port: int = 0,
                 busy_seconds: float = 0.0) -> None:
        self.secret_id = secret_id
        self.secret_key = secret_key
        self.token = token
        self.host = host
        self.port = port
        self.busy_seconds = busy_seconds  # how long a function or layer version stays Creating / Updating …
        self.regions: Optional[frozenset[str]] = SCF_REGIONS  # None: any region
        self.roles: Optional[set[str]] = None  # the account's CAM roles; None: any role exists
        # GetFunction's Role as "<prefix><name>": set "qcs::cam::uin/100000000001:roleName/" to answer
        # with full resource names (Tencent does not document which form it gives back).
        self.role_prefix = ""
        self.clock: Callable[[], float] = time.time
        self.calls: list[dict[str, Any]] = []
        # (Namespace, FunctionName) -> the function: "latest" (config, code), "versions", "aliases", "triggers"
        self.functions: dict[tuple[str, str], dict[str, Any]] = {}
        self.layers: dict[str, list[dict[str, Any]]] = {}  # LayerName -> its versions, oldest first
        self.namespaces = {"default"}
        self._faults: list[dict[str, Any]] = []
        self._lock = threading.RLock()
        self._server: Optional[httpserver.Server] = None
        self._thread: Optional[threading.Thread] = None
        self._actions: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            name: getattr(self, "_" + name) for name in _REQUIRED}

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> ScfEmulator:
        self._server = httpserver.Server((self.host, self.port), self, _Handler)
        self.port = self._server.server_address[1]
        self._thread = httpserver.serve(self._server, "scf-emulator")
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        httpserver.shut(server, self._thread)

    # ---- what tests read and script ---------------------------------------------------------

    def writes(self) -> list[dict[str, Any]]:
        """The calls that changed something (write actions that were carried out)."""
        return [call for call in self.calls if call["Action"] in WRITE_ACTIONS and call["Outcome"] in ("ok", "dropped")]

    def function(self, name: str, namespace: str = "default") -> dict[str, Any]:
        return self.functions[(namespace, name)]

    def code(self, name: str, qualifier: str = "$LATEST", namespace: str = "default") -> bytes:
        """The zip a function (or one of its versions) was given."""
        fn = self.function(name, namespace)
        return bytes((fn["latest"] if qualifier == "$LATEST" else fn["versions"][qualifier])["code"])

    def fail(self, action: str, code: str, message: str = "Error injected by the SCF fake.", times: int = 1,
             skip: int = 0) -> None:
        self._faults.append({"action": action, "kind": "fail", "code": code, "message": message,
                             "times": times, "skip": skip})

    def drop_after(self, action: str, times: int = 1, skip: int = 0) -> None:
        """Carry the request out, then close the connection without a reply (a lost answer)."""
        self._faults.append({"action": action, "kind": "drop_after", "times": times, "skip": skip})

    def _take_fault(self, action: str) -> Optional[dict[str, Any]]:
        for fault in self._faults:
            if fault["action"] in (action, "*") and fault["times"] > 0:
                if fault["skip"] > 0:
                    fault["skip"] -= 1
                    return None
                fault["times"] -= 1
                return fault
        return None

    # ---- protocol ----------------------------------------------------------------------------

    def process(self, headers: Any, body: bytes, method: str, target: str) -> tuple[bytes, bool]:
        """(the JSON reply, whether to drop it) for one HTTP request."""
        try:
            action, params = self._read(headers, body, method, target)
        except ApiError as exc:
            return answer(exc.response()), False
        call: dict[str, Any] = {"Action": action, "Params": _loggable(params), "Outcome": "ok"}
        with self._lock:
            self.calls.append(call)
            fault = self._take_fault(action)
            try:
                if fault is not None and fault["kind"] == "fail":
                    raise ApiError(fault["code"], fault["message"])
                response = self._actions[action](params)
            except ApiError as exc:
                call["Outcome"] = "error:" + exc.code
                return answer(exc.response()), False
            except Exception as exc:  # a fake's bug: answer as Tencent would rather than hang the client
                log.exception("SCF fake error in %s", action)
                call["Outcome"] = "error:InternalError"
                return answer(ApiError("InternalError", f"fake error: {exc!r}").response()), False
        if fault is not None and fault["kind"] == "drop_after":
            call["Outcome"] = "dropped"
            return b"", True
        return answer(response), False

    def _read(self, headers: Any, body: bytes, method: str, target: str) -> tuple[str, dict[str, Any]]:
        split = urlsplit(target)
        if method != "POST" or (headers.get("Content-Type") or "").split(";")[0].strip() != JSON_TYPE:
            raise ApiError("UnsupportedProtocol", "The SCF fake takes POST with a JSON body (the SDK's default).")
        ses_auth.check_tc3(method=method, path=split.path, query=split.query, headers=headers, body=body,
                           secret_id=self.secret_id, secret_key=self.secret_key, now=time.time(),
                           service_name="scf")
        if self.token is not None and headers.get("X-TC-Token") != self.token:
            raise ApiError("AuthFailure.TokenFailure", "The token is not valid.")
        action = headers.get("X-TC-Action") or ""
        if not action:
            raise ApiError("MissingParameter", "The request is missing X-TC-Action.")
        if headers.get("X-TC-Version") != API_VERSION:
            raise ApiError("NoSuchVersion", f"SCF's API version is {API_VERSION}.")
        if action not in self._actions:
            raise ApiError("InvalidAction", f"The SCF fake does not implement `{action}`.")
        region = headers.get("X-TC-Region")
        if self.regions is not None and region not in self.regions:
            raise ApiError("UnsupportedRegion", f"SCF is not offered in region `{region}`.")
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            raise ApiError("InvalidParameter", "The body is not JSON.") from None
        if not isinstance(params, dict):
            raise ApiError("InvalidParameter", "The body is not a JSON object.")
        shape = ses_schema.request_shape(action, MODELS)
        if shape is not None:
            params = ses_schema.normalise(params, shape)
        for name in _REQUIRED[action]:
            if params.get(name) in (None, ""):
                code = "MissingParameter.Code" if name == "Code" else "MissingParameter"
                raise ApiError(code, f"The request is missing `{name}`.")
        return action, params

    # ---- helpers -------------------------------------------------------------------------------

    def _fn(self, params: dict[str, Any]) -> dict[str, Any]:
        namespace = params.get("Namespace") or "default"
        if namespace not in self.namespaces:
            raise ApiError("ResourceNotFound.Namespace", f"Namespace `{namespace}` does not exist.")
        fn = self.functions.get((namespace, params["FunctionName"]))
        if fn is None:
            raise ApiError("ResourceNotFound.Function", f"Function `{params['FunctionName']}` does not exist.")
        return fn

    def _status(self, fn: dict[str, Any]) -> str:
        return fn["busy"] if self.clock() < fn["busy_until"] else "Active"

    def _idle(self, fn: dict[str, Any], code: str) -> None:
        if self._status(fn) != "Active":
            raise ApiError(code, f"The function is {self._status(fn)}: wait until it is Active.")

    def _mark_busy(self, fn: dict[str, Any], state: str) -> None:
        fn["busy"], fn["busy_until"] = state, self.clock() + self.busy_seconds
        fn["latest"]["ModTime"] = _now_text(self.clock())

    def _zip(self, encoded: Any, limit: int) -> bytes:
        try:
            data = base64.b64decode(str(encoded), validate=True)
        except (binascii.Error, ValueError):
            raise ApiError("InvalidParameterValue.ZipFileBase64BinasciiError", "ZipFile is not base64.") from None
        if len(data) > limit:
            raise ApiError("InvalidParameterValue.ZipFile", f"The zip is larger than {limit // (1024 * 1024)} MB.")
        try:
            zipfile.ZipFile(io.BytesIO(data)).testzip()
        except (zipfile.BadZipFile, ValueError):
            raise ApiError("InvalidParameterValue.ZipFile", "ZipFile is not a zip archive.") from None
        return data

    def _check_config(self, params: dict[str, Any]) -> dict[str, Any]:
        """The configuration fields of a Create/UpdateFunction* request, checked against SCF's limits."""
        out: dict[str, Any] = {}
        if "Runtime" in params and params["Runtime"] not in RUNTIMES:
            raise ApiError("InvalidParameterValue.Runtime", f"Runtime `{params['Runtime']}` is not offered.")
        if "Handler" in params and not (_HANDLER.fullmatch(params["Handler"]) and 2 <= len(params["Handler"]) <= 60):
            raise ApiError("InvalidParameterValue.Handler", "Handler must be `file.function`, 2-60 characters.")
        if "Description" in params and len(params["Description"]) > 1000:
            raise ApiError("InvalidParameterValue.Description", "Description is longer than 1000 characters.")
        memory = params.get("MemorySize")
        if memory is not None and not (memory == 64 or (128 <= memory <= 3072 and memory % 128 == 0)):
            raise ApiError("InvalidParameterValue.MemorySize", "MemorySize is 64, or 128 to 3072 in steps of 128.")
        timeout = params.get("Timeout")
        if timeout is not None and not 1 <= timeout <= 900:
            raise ApiError("LimitExceeded.Timeout", "Timeout is 1 to 900 seconds.")
        init = params.get("InitTimeout")
        if init is not None and not 1 <= init <= 300:
            raise ApiError("LimitExceeded.InitTimeout", "InitTimeout is 1 to 300 seconds.")
        if params.get("Role") and self.roles is not None and params["Role"] not in self.roles:
            raise ApiError("ResourceNotFound.Role", f"Role `{params['Role']}` does not exist.")
        if "Environment" in params:
            self._check_environment(params["Environment"] or {})
        if "VpcConfig" in params:
            vpc = params["VpcConfig"] or {}
            ids = (vpc.get("VpcId") or "", vpc.get("SubnetId") or "")
            if ids != ("", "") and not (ids[0].startswith("vpc-") and ids[1].startswith("subnet-")):
                raise ApiError("InvalidParameterValue.Vpc", "VpcConfig needs a vpc-… VpcId and a subnet-… SubnetId.")
        if "DeadLetterConfig" in params:
            dead = params["DeadLetterConfig"] or {}
            kind = dead.get("Type")
            if kind not in ("", None, "CMQ-QUEUE", "CMQ-TOPIC") or (kind and not dead.get("Name")):
                raise ApiError("InvalidParameterValue.DeadLetterConfig", "DeadLetterConfig: Type CMQ-QUEUE or "
                               "CMQ-TOPIC, with the Name of the queue or topic.")
        if "Layers" in params:
            layers = [item for item in params["Layers"] or [] if item.get("LayerName")]
            if len(layers) > MAX_LAYERS_PER_FUNCTION:
                raise ApiError("InvalidParameterValue.Layers", "A function binds at most 5 layers.")
            for item in layers:
                self._layer_version(item.get("LayerName"), item.get("LayerVersion"))
            out["Layers"] = [{"LayerName": item["LayerName"], "LayerVersion": item["LayerVersion"]} for item in layers]
        for name in _CONFIG_FIELDS:
            if name in params and name != "Layers":
                out[name] = copy.deepcopy(params[name])
        return out

    def _check_environment(self, environment: dict[str, Any]) -> None:
        total = 0
        for variable in environment.get("Variables") or []:
            key, value = variable.get("Key") or "", variable.get("Value")
            if key.upper().startswith(RESERVED_ENV):
                raise ApiError("InvalidParameterValue.SystemEnvironment", f"`{key}`: SCF_, QCLOUD_ and "
                               "TENCENTCLOUD_ names are reserved.")
            if not _ENV_KEY.fullmatch(key) or not value:
                raise ApiError("InvalidParameterValue.Environment", f"`{key}`: a name of 2-64 letters, digits and _ "
                               "starting with a letter, and a value that is not empty.")
            total += len(key.encode()) + len(str(value).encode())
        if total > MAX_ENV_BYTES:
            raise ApiError("InvalidParameterValue.EnvironmentExceededLimit", "Environment variables exceed 4 KB.")

    def _layer_version(self, name: Any, version: Any) -> dict[str, Any]:
        versions = self.layers.get(str(name))
        if versions is None:
            raise ApiError("ResourceNotFound.Layer", f"Layer `{name}` does not exist.")
        for item in versions:
            if item["LayerVersion"] == version:
                return item
        raise ApiError("ResourceNotFound.LayerVersion", f"Layer `{name}` has no version {version}.")

    def _qualifier_exists(self, fn: dict[str, Any], qualifier: str) -> bool:
        return qualifier == "$LATEST" or qualifier in fn["versions"] or qualifier in fn["aliases"]

    def _function_view(self, fn: dict[str, Any], config: dict[str, Any], qualifier: str) -> dict[str, Any]:
        view = {name: copy.deepcopy(config[name]) for name in _CONFIG_FIELDS if name in config}
        view["Layers"] = [dict(item, Status="Active") for item in config.get("Layers") or []]
        if view.get("Role"):
            view["Role"] = self.role_prefix + view["Role"]
        view.update(FunctionName=fn["FunctionName"], Namespace=fn["Namespace"], FunctionId=fn["FunctionId"],
                    FunctionVersion=qualifier, Qualifier=qualifier, CodeSize=len(config["code"]),
                    Status=self._status(fn) if qualifier == "$LATEST" else "Active",
                    AddTime=fn["AddTime"], ModTime=config.get("ModTime", fn["AddTime"]),
                    Triggers=[self._trigger_view(t) for t in fn["triggers"]])
        return view

    @staticmethod
    def _trigger_view(trigger: dict[str, Any]) -> dict[str, Any]:
        view = dict(trigger)
        if trigger["Type"] == "timer":  # given back as JSON, though created from the bare expression
            view["TriggerDesc"] = json.dumps({"cron": trigger["TriggerDesc"]})
        return view

    # ---- layers --------------------------------------------------------------------------------

    def _PublishLayerVersion(self, p: dict[str, Any]) -> dict[str, Any]:
        name = p["LayerName"]
        if not _LAYER_NAME.fullmatch(name):
            raise ApiError("InvalidParameterValue.LayerName", "LayerName: 1-64 letters, digits, - and _, starting "
                           "with a letter, not ending with - or _.")
        runtimes = p["CompatibleRuntimes"]
        if not runtimes or len(runtimes) > 5 or not set(runtimes) <= RUNTIMES:
            raise ApiError("InvalidParameterValue.CompatibleRuntimes", "CompatibleRuntimes: 1-5 of SCF's runtimes.")
        content = p["Content"] or {}
        if not content.get("ZipFile"):
            raise ApiError("InvalidParameterValue.Content", "The fake takes a layer's Content as a ZipFile.")
        data = self._zip(content["ZipFile"], MAX_ZIP)
        versions = self.layers.get(name)
        if versions is None:
            if len(self.layers) >= MAX_LAYERS:
                raise ApiError("LimitExceeded.Layers", "At most 20 layers in a region.")
            versions = self.layers[name] = []
        if len(versions) >= MAX_LAYER_VERSIONS:
            raise ApiError("LimitExceeded.LayerVersions", "At most 200 versions of a layer.")
        number = versions[-1]["LayerVersion"] + 1 if versions else 1
        versions.append({"LayerName": name, "LayerVersion": number, "CompatibleRuntimes": list(runtimes),
                         "Description": p.get("Description") or "", "LicenseInfo": p.get("LicenseInfo") or "",
                         "AddTime": _now_text(self.clock()), "code": data,
                         "CodeSha256": hashlib.sha256(data).hexdigest(),
                         "busy_until": self.clock() + self.busy_seconds})
        return {"LayerVersion": number}

    def _layer_info(self, item: dict[str, Any]) -> dict[str, Any]:
        info = {key: value for key, value in item.items() if key not in ("code", "busy_until", "CodeSha256")}
        info["Status"] = "Publishing" if self.clock() < item["busy_until"] else "Active"
        return info

    def _GetLayerVersion(self, p: dict[str, Any]) -> dict[str, Any]:
        item = self._layer_version(p["LayerName"], p["LayerVersion"])
        return dict(self._layer_info(item), CodeSha256=item["CodeSha256"], Location="")

    def _ListLayerVersions(self, p: dict[str, Any]) -> dict[str, Any]:
        versions = self.layers.get(p["LayerName"])
        if versions is None:
            raise ApiError("ResourceNotFound.Layer", f"Layer `{p['LayerName']}` does not exist.")
        return {"LayerVersions": [self._layer_info(item) for item in reversed(versions)]}

    # ---- functions -----------------------------------------------------------------------------

    def _GetFunction(self, p: dict[str, Any]) -> dict[str, Any]:
        fn = self._fn(p)
        qualifier = p.get("Qualifier") or "$LATEST"
        if qualifier == "$LATEST":
            return self._function_view(fn, fn["latest"], qualifier)
        if qualifier not in fn["versions"]:
            raise ApiError("ResourceNotFound.Version", f"Version `{qualifier}` does not exist.")
        return self._function_view(fn, fn["versions"][qualifier], qualifier)

    def _CreateFunction(self, p: dict[str, Any]) -> dict[str, Any]:
        name, namespace = p["FunctionName"], p.get("Namespace") or "default"
        if namespace not in self.namespaces:
            raise ApiError("ResourceNotFound.Namespace", f"Namespace `{namespace}` does not exist.")
        if not _FUNCTION_NAME.fullmatch(name):
            raise ApiError("InvalidParameterValue.FunctionName", "FunctionName: 2-60 letters, digits, - and _, "
                           "starting with a letter, ending with a letter or digit.")
        if (namespace, name) in self.functions:
            raise ApiError("ResourceInUse.Function", f"Function `{name}` already exists.")
        if sum(1 for ns, _ in self.functions if ns == namespace) >= MAX_FUNCTIONS:
            raise ApiError("LimitExceeded.Function", "At most 50 functions in a namespace.")
        if not p.get("Runtime"):
            raise ApiError("MissingParameter.Runtime", "The request is missing `Runtime`.")
        if p.get("Type") not in (None, "Event"):
            raise ApiError("InvalidParameterValue.FunctionType", "The fake creates event functions only.")
        config = dict({"Handler": "index.main_handler", "Description": "", "MemorySize": 128, "Timeout": 3,
                       "Role": "", "Environment": {"Variables": []}, "Layers": [], "Type": "Event",
                       "VpcConfig": {"VpcId": "", "SubnetId": ""}}, **self._check_config(p))
        code = p["Code"] or {}
        if not code.get("ZipFile"):
            raise ApiError("InvalidParameterValue.Code", "The fake takes code as a ZipFile.")
        config["code"] = self._zip(code["ZipFile"], MAX_ZIP)
        now = self.clock()
        fn = {"FunctionName": name, "Namespace": namespace, "FunctionId": "lam-" + uuid.uuid4().hex[:8],
              "AddTime": _now_text(now), "latest": config, "versions": {}, "next_version": 1,
              "aliases": {"$DEFAULT": {"Name": "$DEFAULT", "FunctionVersion": "$LATEST", "Description": "",
                                       "AddTime": _now_text(now), "ModTime": _now_text(now)}},
              "triggers": [], "busy": "Creating", "busy_until": now}
        self.functions[(namespace, name)] = fn
        self._mark_busy(fn, "Creating")
        return {}

    def _UpdateFunctionCode(self, p: dict[str, Any]) -> dict[str, Any]:
        fn = self._fn(p)
        self._idle(fn, "FailedOperation.UpdateFunctionCode")
        if p.get("ZipFile"):
            data = self._zip(p["ZipFile"], MAX_UPDATE_ZIP)
        elif (p.get("Code") or {}).get("ZipFile"):
            data = self._zip(p["Code"]["ZipFile"], MAX_ZIP)
        else:
            raise ApiError("InvalidParameterValue.Code", "The fake takes code as a ZipFile.")
        if p.get("Handler"):
            fn["latest"].update(self._check_config({"Handler": p["Handler"]}))
        fn["latest"]["code"] = data
        self._mark_busy(fn, "Updating")
        return {}

    def _UpdateFunctionConfiguration(self, p: dict[str, Any]) -> dict[str, Any]:
        fn = self._fn(p)
        self._idle(fn, "FailedOperation.FunctionStatusError")
        fn["latest"].update(self._check_config(p))
        self._mark_busy(fn, "Updating")
        return {}

    def _PublishVersion(self, p: dict[str, Any]) -> dict[str, Any]:
        fn = self._fn(p)
        self._idle(fn, "FailedOperation.PublishVersion")
        version = str(fn["next_version"])
        fn["next_version"] += 1
        snapshot = copy.deepcopy(fn["latest"])
        snapshot.update(VersionDescription=p.get("Description") or "", ModTime=_now_text(self.clock()))
        fn["versions"][version] = snapshot
        self._mark_busy(fn, "Publishing")
        latest = fn["latest"]
        return {"FunctionVersion": version, "CodeSize": len(latest["code"]), "MemorySize": latest["MemorySize"],
                "Description": snapshot["VersionDescription"], "Handler": latest["Handler"],
                "Timeout": latest["Timeout"], "Runtime": latest.get("Runtime", ""), "Namespace": fn["Namespace"]}

    def _ListVersionByFunction(self, p: dict[str, Any]) -> dict[str, Any]:
        fn = self._fn(p)
        rows = [{"Version": "$LATEST", "Description": "", "AddTime": fn["AddTime"], "ModTime": fn["latest"]["ModTime"],
                 "Status": self._status(fn)}]
        rows += [{"Version": number, "Description": version["VersionDescription"], "AddTime": version["ModTime"],
                  "ModTime": version["ModTime"], "Status": "Active"} for number, version in fn["versions"].items()]
        if (p.get("Order") or "ASC").upper() == "DESC":
            rows.reverse()
        offset, limit = p.get("Offset") or 0, p.get("Limit") or 20
        if not 1 <= limit <= 100 or offset < 0:
            raise ApiError("InvalidParameterValue.Limit", "Limit is 1-100 and Offset not negative.")
        page = rows[offset:offset + limit]
        return {"FunctionVersion": [row["Version"] for row in page], "Versions": page, "TotalCount": len(rows)}

    # ---- aliases -------------------------------------------------------------------------------

    def _alias_target(self, fn: dict[str, Any], version: str) -> str:
        if version != "$LATEST" and version not in fn["versions"]:
            raise ApiError("ResourceNotFound.Version", f"Version `{version}` does not exist.")
        return version

    def _GetAlias(self, p: dict[str, Any]) -> dict[str, Any]:
        alias = self._fn(p)["aliases"].get(p["Name"])
        if alias is None:
            raise ApiError("ResourceNotFound.Alias", f"Alias `{p['Name']}` does not exist.")
        return dict(alias)

    def _CreateAlias(self, p: dict[str, Any]) -> dict[str, Any]:
        fn = self._fn(p)
        if not _ALIAS_NAME.fullmatch(p["Name"]):
            raise ApiError("InvalidParameterValue.Alias", "Alias: 1-64 letters, digits, _ and -, from a letter.")
        if p["Name"] in fn["aliases"]:
            raise ApiError("ResourceInUse.Alias", f"Alias `{p['Name']}` already exists.")
        now = _now_text(self.clock())
        fn["aliases"][p["Name"]] = {"Name": p["Name"], "FunctionVersion": self._alias_target(fn, p["FunctionVersion"]),
                                    "Description": p.get("Description") or "", "AddTime": now, "ModTime": now}
        return {}

    def _UpdateAlias(self, p: dict[str, Any]) -> dict[str, Any]:
        fn = self._fn(p)
        alias = fn["aliases"].get(p["Name"])
        if alias is None:
            raise ApiError("ResourceNotFound.Alias", f"Alias `{p['Name']}` does not exist.")
        alias["FunctionVersion"] = self._alias_target(fn, p["FunctionVersion"])
        if p.get("Description") is not None:
            alias["Description"] = p["Description"]
        alias["ModTime"] = _now_text(self.clock())
        return {}

    # ---- triggers ------------------------------------------------------------------------------

    def _ListTriggers(self, p: dict[str, Any]) -> dict[str, Any]:
        fn = self._fn(p)
        offset, limit = p.get("Offset") or 0, p.get("Limit") or 20
        if not 1 <= limit <= 100 or offset < 0:
            raise ApiError("InvalidParameterValue.Limit", "Limit is 1-100 and Offset not negative.")
        rows = [self._trigger_view(t) for t in fn["triggers"]]
        return {"Triggers": rows[offset:offset + limit], "TotalCount": len(rows)}

    def _trigger_fields(self, fn: dict[str, Any], p: dict[str, Any], kind: str) -> dict[str, Any]:
        """The checked fields of a Create/UpdateTrigger request (those it carries)."""
        out: dict[str, Any] = {}
        if p.get("Enable") is not None:
            if p["Enable"] not in ("OPEN", "CLOSE"):
                raise ApiError("InvalidParameterValue.Enable", "Enable is OPEN or CLOSE.")
            out["Enable"] = 1 if p["Enable"] == "OPEN" else 0
        if p.get("Qualifier") is not None:
            if not self._qualifier_exists(fn, p["Qualifier"]):
                raise ApiError("InvalidParameterValue.Qualifier", f"`{p['Qualifier']}` is no version or alias.")
            out["Qualifier"] = p["Qualifier"]
        if p.get("TriggerDesc") is not None:
            desc = p["TriggerDesc"]
            if kind == "timer":
                try:
                    Cron(desc)
                except ValueError as exc:
                    raise ApiError("InvalidParameterValue.TriggerCronConfig", f"TriggerDesc: {exc}") from None
            else:
                parsed = _json_object(desc)
                net = parsed.get("NetConfig") if parsed else None
                if (parsed is None or parsed.get("AuthType") not in ("NONE", "CAM") or not isinstance(net, dict)
                        or not all(isinstance(net.get(k), bool) for k in ("EnableIntranet", "EnableExtranet"))):
                    raise ApiError("InvalidParameterValue.TriggerDesc", 'A Function URL\'s TriggerDesc is {"AuthType": '
                                   '"NONE"|"CAM", "NetConfig": {"EnableIntranet": bool, "EnableExtranet": bool}}.')
                desc = json.dumps(parsed, sort_keys=True)
            out["TriggerDesc"] = desc
        if p.get("CustomArgument") is not None:
            if kind != "timer":
                raise ApiError("InvalidParameterValue.CustomArgument", "Only timers take a CustomArgument.")
            if len(p["CustomArgument"].encode()) > MAX_ARGUMENT:
                raise ApiError("InvalidParameterValue.CustomArgument", "CustomArgument is at most 4 KB.")
            out["CustomArgument"] = p["CustomArgument"]
        if p.get("Description") is not None:
            out["Description"] = p["Description"]
        return out

    def _find_trigger(self, fn: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
        for trigger in fn["triggers"]:
            if trigger["TriggerName"] == p["TriggerName"] and trigger["Type"] == p["Type"]:
                return trigger
        raise ApiError("ResourceNotFound.Trigger", f"Trigger `{p['TriggerName']}` ({p['Type']}) does not exist.")

    def _CreateTrigger(self, p: dict[str, Any]) -> dict[str, Any]:
        fn = self._fn(p)
        kind = p["Type"]
        if kind not in ("timer", "http"):
            raise ApiError("UnsupportedOperation.Trigger", "The fake implements timer and http triggers.")
        if self._status(fn) == "Creating":
            raise ApiError("FailedOperation.CreateTrigger", "The function is Creating: wait until it is Active.")
        if not _TRIGGER_NAME.fullmatch(p["TriggerName"]):
            raise ApiError("InvalidParameterValue.TriggerName", "TriggerName: up to 100 letters, digits, - and _.")
        if any(t["TriggerName"] == p["TriggerName"] and t["Type"] == kind for t in fn["triggers"]):
            raise ApiError("ResourceInUse.Trigger", f"Trigger `{p['TriggerName']}` already exists.")
        if p.get("TriggerDesc") in (None, ""):
            raise ApiError("MissingParameter", "The request is missing `TriggerDesc`.")
        fields = dict({"Enable": 1, "Qualifier": "$LATEST", "CustomArgument": "", "Description": ""},
                      **self._trigger_fields(fn, p, kind))
        if kind == "http" and any(t["Type"] == "http" and t["Qualifier"] == fields["Qualifier"]
                                  for t in fn["triggers"]):
            raise ApiError("ResourceInUse.Trigger", f"`{fields['Qualifier']}` already has a Function URL.")
        now = _now_text(self.clock())
        trigger = dict(fields, TriggerName=p["TriggerName"], Type=kind, AddTime=now, ModTime=now,
                       AvailableStatus="Available", ResourceId="", BindStatus="on", TriggerAttribute="")
        fn["triggers"].append(trigger)
        return {"TriggerInfo": {key: value for key, value in self._trigger_view(trigger).items()
                                if key in ("TriggerName", "Type", "TriggerDesc", "Enable", "CustomArgument",
                                           "Qualifier", "AddTime", "ModTime", "AvailableStatus", "Description")}}

    def _UpdateTrigger(self, p: dict[str, Any]) -> dict[str, Any]:
        fn = self._fn(p)
        if p["Type"] not in ("timer", "http", "ckafka"):
            raise ApiError("UnsupportedOperation.Trigger", "UpdateTrigger takes timer, ckafka and http triggers.")
        trigger = self._find_trigger(fn, p)
        trigger.update(self._trigger_fields(fn, p, p["Type"]), ModTime=_now_text(self.clock()))
        return {}

    def _DeleteTrigger(self, p: dict[str, Any]) -> dict[str, Any]:
        fn = self._fn(p)
        fn["triggers"].remove(self._find_trigger(fn, p))
        return {}


def _json_object(text: Any) -> Optional[dict[str, Any]]:
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _loggable(params: dict[str, Any]) -> dict[str, Any]:
    """The request as recorded: code zips replaced by their size (they are megabytes of base64)."""
    out = copy.deepcopy(params)
    for holder in (out, out.get("Code") or {}, out.get("Content") or {}):
        if isinstance(holder, dict) and isinstance(holder.get("ZipFile"), str):
            holder["ZipFile"] = f"<{len(holder['ZipFile'])} base64 characters>"
    return out


class _Handler(httpserver.Handler):
    """SCF's API only: every request, GET or POST, is an action."""

    server_version = "sesmail-scf-fake"

    def do_POST(self) -> None:
        body = self._body()
        if body is None:
            return
        reply, drop = self.server.emulator.process(self.headers, body, self.command, self.path)
        if drop:
            self.close_connection = True
            return
        self._send(httpserver.Reply(200, JSON_TYPE, reply))

    do_GET = do_POST


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="Local fake of Tencent Cloud SCF's API (2018-04-16).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--busy-seconds", type=float, default=1.0,
                        help="how long a function stays Creating / Updating after a write")
    args = parser.parse_args(argv)
    fake = ScfEmulator(secret_id=os.environ.get("SESMAIL_LOCAL_SECRET_ID", "AKIDlocal"),
                       secret_key=os.environ.get("SESMAIL_LOCAL_SECRET_KEY", "local-secret-key"),
                       host=args.host, port=args.port, busy_seconds=args.busy_seconds).start()
    print(f"SCF fake on http://{fake.endpoint} (SecretId {fake.secret_id}); Ctrl-C stops it", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
