"""The functions of the repo, loaded as SCF loads them and reloaded when their code changes.

On SCF a function's folder is `/var/user` and the layer is `/opt`, both on `sys.path`. Here the
layer's folder (`layers/sesmail`) goes on `sys.path` once, and a function's folder only while its
handler module is imported (three functions each have an `index.py`). Before each invocation
the `.py` files of the functions and the layer, the functions' `sesmail.json` and
`serverless.yml` are checked (one `stat` each): a changed layer re-imports the whole `sesmail`
package and every function, a changed function re-imports that function, a changed config file
(`SESMAIL_CONFIG`) is parsed again on the next invocation. The running process
never restarts, so the SES emulator's mail and the gateway's port stay.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
import traceback
import uuid
from typing import Any, Callable, Optional

from . import serverless
from .cron import Timer
from .serverless import FunctionSpec

__all__ = ["FunctionMissing", "Functions", "Handler"]

Handler = Callable[[Any, Any], Any]


class FunctionMissing(LookupError):
    """No such function (not written yet, or it failed to load: see `Functions.errors`)."""


class Functions:
    def __init__(self, root: str, layer_dir: Optional[str] = None, region: str = "ap-guangzhou",
                 on_change: Optional[Callable[[list[Timer]], None]] = None,
                 serverless_file: Optional[str] = None) -> None:
        self.root = os.path.abspath(root)
        self.serverless_file = os.path.abspath(serverless_file) if serverless_file else None
        self.layer_dir = os.path.abspath(layer_dir or os.path.join(self.root, "layers", "sesmail"))
        self.region = region
        self.on_change = on_change  # told the new timers after serverless.yml changed
        self.specs: dict[str, FunctionSpec] = {}
        self.timers: list[Timer] = []
        self.problems: list[str] = []
        self.errors: dict[str, str] = {}  # function -> why it failed to load
        self._handlers: dict[str, Handler] = {}
        self._stamps: dict[str, tuple] = {}
        self._lock = threading.RLock()
        if self.layer_dir not in sys.path:
            sys.path.insert(0, self.layer_dir)  # the layer is /opt
        self.refresh()

    # ---- change detection ----------------------------------------------------------------------

    def _files(self, top: str, suffixes: tuple[str, ...]) -> tuple:
        found = []
        for folder, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if d != "__pycache__" and not d.startswith(".")]
            for name in files:
                if name.endswith(suffixes):
                    path = os.path.join(folder, name)
                    try:
                        stat = os.stat(path)
                    except OSError:
                        continue
                    found.append((path, stat.st_mtime_ns, stat.st_size))
        return tuple(sorted(found))

    def _scan(self) -> dict[str, tuple]:
        stamps = {"layer": self._files(os.path.join(self.layer_dir, "sesmail"), (".py",))}
        yml = [self.serverless_file or os.path.join(self.root, "serverless.yml")]
        functions_dir = os.path.join(self.root, "functions")
        if os.path.isdir(functions_dir):
            for name in sorted(os.listdir(functions_dir)):
                folder = os.path.join(functions_dir, name)
                if os.path.isdir(folder):
                    stamps["fn:" + name] = self._files(folder, (".py", ".json"))
                    yml.append(os.path.join(folder, "serverless.yml"))
        stamps["yml"] = tuple((p, os.stat(p).st_mtime_ns) for p in yml if os.path.exists(p))
        # The config file the functions read (`make sync ARGS=--local` rewrites it while they run).
        config = os.environ.get("SESMAIL_CONFIG")
        stamps["config"] = (config, os.stat(config).st_mtime_ns) if config and os.path.exists(config) else (config,)
        return stamps

    def refresh(self) -> None:
        """Re-read what changed since the last call (cheap when nothing did)."""
        with self._lock:
            stamps = self._scan()
            if stamps == self._stamps:
                return
            first = not self._stamps
            layer_changed = not first and stamps["layer"] != self._stamps.get("layer")
            changed = {key for key in set(stamps) | set(self._stamps) if stamps.get(key) != self._stamps.get(key)}
            if first or changed - {"layer"}:
                # A new index.py or YAML file can add a function or a timer: read the declarations again.
                old_timers = [(t.name, t.cron.expression, t.argument, t.enabled) for t in self.timers]
                self.specs, self.timers, self.problems = serverless.read(self.root, self.serverless_file)
                if first or "yml" in changed:
                    for problem in self.problems:
                        print(f"[local] serverless.yml: {problem}", file=sys.stderr, flush=True)
                new_timers = [(t.name, t.cron.expression, t.argument, t.enabled) for t in self.timers]
                if not first and self.on_change is not None and new_timers != old_timers:
                    self.on_change(self.timers)
            if not first and "config" in changed and not layer_changed:
                config_module = sys.modules.get("sesmail.config")
                if config_module is not None:
                    config_module.reset()  # parsed once per container: this process is the container
            if layer_changed:
                # A fresh `sesmail` everywhere: functions imported against the old one keep stale objects.
                for name in [m for m in sys.modules if m == "sesmail" or m.startswith("sesmail.")]:
                    del sys.modules[name]
                print("[local] layer changed: reloading sesmail and every function", file=sys.stderr, flush=True)
            for name, spec in self.specs.items():
                key = "fn:" + name
                if first or layer_changed or stamps.get(key) != self._stamps.get(key) or name not in self._handlers:
                    self._load(spec, announce=not first)
            for name in list(self._handlers):
                if name not in self.specs:
                    del self._handlers[name]
            self._stamps = stamps

    def _load(self, spec: FunctionSpec, announce: bool) -> None:
        module_path, _, attr = spec.handler.rpartition(".")
        path = os.path.join(spec.src, *module_path.split(".")) + ".py"
        self._handlers.pop(spec.name, None)
        self.errors.pop(spec.name, None)
        if not os.path.exists(path):
            return  # not written yet: its routes answer 404
        # Drop modules imported from this function's folder, so a changed helper is re-read too.
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None) or ""
            if file.startswith(spec.src + os.sep):
                del sys.modules[name]
        module_name = f"functions_{spec.name}_{module_path.replace('.', '_')}"
        try:
            spec_obj = importlib.util.spec_from_file_location(module_name, path)
            assert spec_obj is not None and spec_obj.loader is not None
            module = importlib.util.module_from_spec(spec_obj)
            sys.modules[module_name] = module
            sys.path.insert(0, spec.src)  # /var/user, while the handler's own imports run
            try:
                spec_obj.loader.exec_module(module)
            finally:
                sys.path.remove(spec.src)
            self._handlers[spec.name] = getattr(module, attr)
            if announce:
                print(f"[local] reloaded functions/{spec.name}", file=sys.stderr, flush=True)
        except Exception:
            self.errors[spec.name] = traceback.format_exc()
            print(f"[local] functions/{spec.name} failed to load:\n{self.errors[spec.name]}", file=sys.stderr,
                  flush=True)

    # ---- invocation ------------------------------------------------------------------------------

    def handler(self, name: str) -> Optional[Handler]:
        self.refresh()
        with self._lock:
            return self._handlers.get(name)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._handlers)

    def context(self, name: str) -> dict[str, Any]:
        """The context SCF passes (a dict in Python; fields from SCF's "Basic Concepts" page)."""
        spec = self.specs.get(name)
        env = {"SCF_NAMESPACE": "default"}
        return {
            "request_id": str(uuid.uuid4()),
            "time_limit_in_ms": (spec.timeout if spec else serverless.UNDECLARED_TIMEOUT) * 1000,
            "memory_limit_in_mb": spec.memory if spec else 128,
            "function_name": name,
            "function_version": "$LATEST",
            "namespace": "default",
            "environment": json.dumps(env),
            "environ": ";".join(f"{k}={v}" for k, v in env.items()),
            "tencentcloud_region": self.region,
            "tencentcloud_appid": "1250000000",
            "tencentcloud_uin": "100000000001",
        }

    def invoke(self, name: str, event: Any) -> Any:
        """Call a function's handler as SCF would."""
        handler = self.handler(name)
        if handler is None:
            raise FunctionMissing(name)
        return handler(event, self.context(name))
