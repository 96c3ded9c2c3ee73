"""What the local stack takes from `serverless.yml`: each function's handler, time limit, and timers.

Reads the forms Tencent's Serverless Cloud Framework documents (serverless-components/tencent-scf
and tencent-multi-scf, docs/configure.md): one or more `component: scf` documents (in
`serverless.yml`, or in `functions/<name>/serverless.yml`), and `component: multi-scf` with
`inputs.functions` and `inputs.triggers`. `${env:NAME}` takes the environment's value; anything
unresolved falls back to the component's documented default. A function found under
`functions/<name>/index.py` but in no YAML file runs with `index.main_handler` and a 30 s limit, so
a function being written is served before it is deployable. The routes a function serves are the
gateway's table (local/gateway.py), keyed by its folder name.

A failed timer run is retried as SCF retries asynchronous invocations: twice, SCF's default. The
component applies `retryNum` (and `msgTTL`) only with `asyncRunEnable: true`, so they count here
only then; without it they are reported as having no effect.
"""

from __future__ import annotations

import glob
import os
import re
from typing import Any, NamedTuple, Optional

from .cron import Cron, Timer

__all__ = ["FunctionSpec", "read"]

DEFAULT_HANDLER = "index.main_handler"
COMPONENT_TIMEOUT = 3  # seconds: the scf component's documented default
ASYNC_RETRIES = 2  # SCF's default retries of a failed asynchronous (timer) run
UNDECLARED_TIMEOUT = 30  # a function no YAML mentions yet
_ENV_RE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


class FunctionSpec(NamedTuple):
    name: str  # the folder name under functions/, which picks its routes (send, batch, webhook)
    src: str  # absolute path of the code folder (/var/user on SCF)
    handler: str  # "<module>.<function>", e.g. index.main_handler
    timeout: int  # seconds
    memory: int  # MB
    retries: int  # async retries of a failed timer run (retryNum)
    declared_in: Optional[str]  # the YAML file, or None


def _resolve(value: Any) -> Any:
    """`${env:NAME}` from the environment; None when a variable is missing."""
    if not isinstance(value, str):
        return value
    missing = False

    def sub(match: re.Match) -> str:
        nonlocal missing
        found = os.environ.get(match.group(1))
        if found is None:
            missing = True
            return ""
        return found
    out = _ENV_RE.sub(sub, value)
    return None if missing or "${" in out else out


def _int(value: Any, default: int) -> int:
    value = _resolve(value)
    try:
        return int(value) if value is not None and not isinstance(value, bool) else default
    except (TypeError, ValueError):
        return default


def _retries(inputs: dict[str, Any], where: str, problems: list[str]) -> int:
    """`retryNum` where the component applies it (`asyncRunEnable: true`), else SCF's default."""
    if _resolve(inputs.get("asyncRunEnable")) in (True, "true", "TRUE"):
        return _int(inputs.get("retryNum"), ASYNC_RETRIES)
    ignored = [key for key in ("retryNum", "msgTTL") if key in inputs]
    if ignored:
        problems.append(f"{where}: {' and '.join(ignored)} take effect only with asyncRunEnable: true; SCF keeps its"
                        f" defaults ({ASYNC_RETRIES} retries, 6 h)")
    return ASYNC_RETRIES


def _src_dir(src: Any, base: str) -> Optional[str]:
    if isinstance(src, dict):
        src = src.get("src")
    src = _resolve(src)
    if not isinstance(src, str) or not src:
        return None
    return os.path.normpath(os.path.join(base, src))


def _timer(params: Any, function: str, index: int, problems: list[str]) -> Optional[Timer]:
    if not isinstance(params, dict):
        return None
    expression = _resolve(params.get("cronExpression"))
    name = str(_resolve(params.get("name")) or f"{function}-timer-{index}")
    if not isinstance(expression, str):
        problems.append(f"timer {name!r}: no cronExpression")
        return None
    try:
        cron = Cron(expression)
    except ValueError as exc:
        problems.append(f"timer {name!r}: {exc}")
        return None
    enable = _resolve(params.get("enable"))
    argument = _resolve(params.get("argument"))
    # The component's documented default for `enable` is false: such a timer can only be fired by hand.
    return Timer(name=name, function=function, cron=cron, argument="" if argument is None else str(argument),
                 enabled=enable is True or str(enable).lower() == "true")


def _scf(doc: dict[str, Any], path: str, root: str, problems: list[str]) -> tuple[list[FunctionSpec], list[Timer]]:
    inputs = doc.get("inputs") or {}
    src = _src_dir(inputs.get("src"), os.path.dirname(path)) or os.path.dirname(path)
    name = os.path.basename(src) if os.path.dirname(src) == os.path.join(root, "functions") else str(
        _resolve(doc.get("name")) or os.path.basename(src))
    spec = FunctionSpec(name, src, str(_resolve(inputs.get("handler")) or DEFAULT_HANDLER),
                        _int(inputs.get("timeout"), COMPONENT_TIMEOUT), _int(inputs.get("memorySize"), 128),
                        _retries(inputs, name, problems), path)
    timers = []
    for index, event in enumerate(inputs.get("events") or []):
        if isinstance(event, dict) and "timer" in event:
            timer_doc = event["timer"] or {}
            timer = _timer(timer_doc.get("parameters", timer_doc), name, index, problems)
            if timer is not None:
                timers.append(timer)
    return [spec], timers


def _multi_scf(doc: dict[str, Any], path: str, root: str,
               problems: list[str]) -> tuple[list[FunctionSpec], list[Timer]]:
    inputs = doc.get("inputs") or {}
    base_src = _src_dir(inputs.get("src"), os.path.dirname(path)) or os.path.dirname(path)
    specs, names = [], {}
    for key, fn in (inputs.get("functions") or {}).items():
        fn = fn or {}
        src = _src_dir(fn.get("src"), os.path.dirname(path)) or base_src
        name = os.path.basename(src) if os.path.dirname(src) == os.path.join(root, "functions") else str(key)
        names[key] = name
        specs.append(FunctionSpec(name, src, str(_resolve(fn.get("handler")) or DEFAULT_HANDLER),
                                  _int(fn.get("timeout", inputs.get("timeout")), COMPONENT_TIMEOUT),
                                  _int(fn.get("memorySize", inputs.get("memorySize")), 128),
                                  _retries(fn, name, problems), path))
    timers = []
    for index, trigger in enumerate(inputs.get("triggers") or []):
        if isinstance(trigger, dict) and trigger.get("type") == "timer":
            function = names.get(trigger.get("function"), str(trigger.get("function")))
            timer = _timer(trigger.get("parameters"), function, index, problems)
            if timer is not None:
                timers.append(timer)
    return specs, timers


def read(root: str, main_file: Optional[str] = None) -> tuple[dict[str, FunctionSpec], list[Timer], list[str]]:
    """(functions by name, timers, problems worth printing) for the repo at `root`.

    `main_file` replaces the repo's `serverless.yml` (`python -m local --serverless FILE`).
    """
    import yaml  # a dev dependency: the deployed functions never read YAML

    root = os.path.abspath(root)
    specs: dict[str, FunctionSpec] = {}
    timers: list[Timer] = []
    problems: list[str] = []
    main = os.path.abspath(main_file) if main_file else os.path.join(root, "serverless.yml")
    paths = [main, *sorted(glob.glob(os.path.join(root, "functions", "*", "serverless.yml")))]
    for path in paths:
        if not os.path.exists(path):
            continue
        try:
            with open(path, encoding="utf-8") as handle:
                docs = [d for d in yaml.safe_load_all(handle) if isinstance(d, dict)]
            for doc in docs:
                component = doc.get("component")
                if component == "scf":
                    found, found_timers = _scf(doc, path, root, problems)
                elif component == "multi-scf":
                    found, found_timers = _multi_scf(doc, path, root, problems)
                else:
                    continue  # layers and other components serve no requests
                specs.update({s.name: s for s in found})
                timers += found_timers
        except (OSError, ValueError, yaml.YAMLError) as exc:
            problems.append(f"{os.path.relpath(path, root)}: {exc}")
    for index_py in sorted(glob.glob(os.path.join(root, "functions", "*", "index.py"))):
        src = os.path.dirname(index_py)
        name = os.path.basename(src)
        if name not in specs:
            specs[name] = FunctionSpec(name, src, DEFAULT_HANDLER, UNDECLARED_TIMEOUT, 128, 2, None)
    seen: set[str] = set()
    for timer in timers:
        if timer.name in seen:
            problems.append(f"timer {timer.name!r} is declared twice; the last one wins")
        seen.add(timer.name)
    unique = {t.name: t for t in timers}
    return specs, list(unique.values()), problems
