"""The request shapes of SES's actions, read from the Tencent Cloud SDK's own request models.

`tencentcloud.ses.v20201002.models` documents every request field with its type in the model's
constructor docstring (`:type TemplateID: int`, `:type Destination: list of str`,
`:type Template: :class:`tencentcloud.ses.v20201002.models.Template``). From that the emulator
knows, for every action, without a hand-kept list:

- which fields exist, so anything else is refused with `UnknownParameter`, as SES refuses it;
- which fields are integers or booleans, so one rule for strings in them holds in every action;
- how a flat GET query or form body (`Destination.0=…`, `Template.TemplateID=…`: what the SDKs
  send with `reqMethod="GET"` or with the older HmacSHA1/HmacSHA256 signatures) folds back into
  the JSON shape the actions take.

A newer SDK brings its new fields with it. Actions the SDK does not know (a test's own entries
in `SesEmulator.actions`) get no shape, and their parameters pass unchecked.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
from collections.abc import Iterable
from typing import Any, NamedTuple, Optional

from .ses_common import ApiError

__all__ = ["Field", "decode_flat", "model_shape", "normalise", "request_shape"]

_TYPE_RE = re.compile(r":type (\w+): (.+)")
_CLASS_RE = re.compile(r":class:`tencentcloud\.\w+\.v\d+\.models\.(\w+)`")
SES_MODELS = "tencentcloud.ses.v20201002.models"
_INTEGER_RE = re.compile(r"-?[0-9]{1,18}", re.ASCII)  # within int64; longer is no SES value
_INDEX_RE = re.compile(r"[0-9]+", re.ASCII)
_SCALARS = ("str", "int", "bool", "float")


class Field(NamedTuple):
    kind: str  # "str", "int", "bool", "float", "object" (a model) or "any" (a type not understood)
    many: bool  # a list of `kind`
    shape: Optional[dict[str, Field]] = None  # the fields of an "object"


def request_shape(action: str, module: str = SES_MODELS) -> Optional[dict[str, Field]]:
    """The fields of `<action>Request` in the SDK's models, or None when the SDK has no such action.
    `module` names another product's models (the SCF fake: `tencentcloud.scf.v20180416.models`)."""
    return model_shape(action + "Request", module)


@functools.cache
def model_shape(name: str, module: str = SES_MODELS) -> Optional[dict[str, Field]]:
    """The fields of the SDK's model `name` (a request, a response or a data type), or None."""
    models = importlib.import_module(module)  # imported once, on the first API call

    if not inspect.isclass(getattr(models, name, None)):
        return None
    return _shape(models, name, ())


def _shape(models: Any, name: str, seen: tuple[str, ...]) -> dict[str, Field]:
    doc = inspect.getdoc(getattr(models, name).__init__) or ""
    return {field: _field(models, kind.strip(), (*seen, name)) for field, kind in _TYPE_RE.findall(doc)}


def _field(models: Any, kind: str, seen: tuple[str, ...]) -> Field:
    many = kind.startswith("list of ")
    if many:
        kind = kind[len("list of "):].strip()
    if kind in _SCALARS:
        return Field(kind, many)
    match = _CLASS_RE.fullmatch(kind)
    name = match.group(1) if match else kind
    if inspect.isclass(getattr(models, name, None)) and name not in seen:
        return Field("object", many, _shape(models, name, seen))
    return Field("any", many)


def decode_flat(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """`[("Destination.0", "a@x"), ("Template.TemplateID", "4")]` -> `{"Destination": ["a@x"],
    "Template": {"TemplateID": "4"}}`: the SDKs' flattening (`_format_params` in Python,
    `mergeData` in Node) undone. Values stay strings; `normalise` types them."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        *parents, leaf = key.split(".")
        node = root
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[leaf] = value
    return {key: _lists(value) for key, value in root.items()}


def _lists(node: Any) -> Any:
    """Objects whose keys are all indices become lists, in index order."""
    if not isinstance(node, dict):
        return node
    items = {key: _lists(value) for key, value in node.items()}
    if items and all(_INDEX_RE.fullmatch(key) for key in items):
        return [items[key] for key in sorted(items, key=int)]
    return items


def normalise(params: dict[str, Any], shape: dict[str, Field], prefix: str = "") -> dict[str, Any]:
    """`params` checked against `shape`: an unknown field is `UnknownParameter`; integer and
    boolean fields take their string forms ("4", "true") and refuse other strings with
    `InvalidParameterValue`. Anything else is left to the action, which answers with its own
    codes (a string where a list belongs, an empty subject...). Paths are named as the flat
    forms name them: `Template.TemplateID`, `Attachments.0.FileName`."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        path = prefix + str(name)
        field = shape.get(name)
        if field is None:
            raise ApiError("UnknownParameter", f"The parameter `{path}` is not recognized.")
        if value is None:
            out[name] = None
        elif field.many and isinstance(value, list):
            out[name] = [_value(item, field, f"{path}.{index}") for index, item in enumerate(value)]
        elif field.many:
            out[name] = value
        else:
            out[name] = _value(value, field, path)
    return out


def _value(value: Any, field: Field, path: str) -> Any:
    if field.kind == "int":
        return _integer(value, path)
    if field.kind == "bool":
        return _boolean(value, path)
    if field.kind == "object" and field.shape is not None and isinstance(value, dict):
        return normalise(value, field.shape, path + ".")
    return value


def _integer(value: Any, path: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER_RE.fullmatch(value):
        return int(value)
    raise ApiError("InvalidParameterValue", f"`{path}` must be an integer (a JSON number or a string of digits).")


def _boolean(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ApiError("InvalidParameterValue", f"`{path}` must be a boolean (true or false).")
