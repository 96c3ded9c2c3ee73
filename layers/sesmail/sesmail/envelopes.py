"""Envelopes: where the request lives in each SCF trigger event, as JMESPath expressions.

The expressions are data; `extract` is the one place they run. Shapes (see tests/fixtures/events):
- Function URL: `body`, lower-case `headers`, `httpMethod`, `path`, `queryString`; client IP in
  the `x-scf-remote-addr` header; no `requestContext`, no `isBase64Encoded`.
- API Gateway (being retired by Tencent): the same plus `requestContext` (request id, source IP),
  `queryStringParameters`, `pathParameters`, header names in any case, and `isBase64Encoded` when
  the API has Base64 enabled.
- Timer: `{"Type": "Timer", "TriggerName", "Time", "Message"}`; `Message` is the trigger's argument.
- Direct invocation (SCF Invoke API): the event is the payload itself.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from typing import Any, Callable

import jmespath
from jmespath import functions as jp_functions

from .errors import InvalidInput, PayloadTooLarge

__all__ = [
    "HTTP_REQUEST",
    "MAX_BODY_BYTES",
    "TIMER",
    "TIMER_MESSAGE_JSON",
    "Request",
    "extract",
    "kind",
    "loads",
    "parse_json_body",
]

# Request facts of an HTTP trigger, Function URL and API Gateway alike.
HTTP_REQUEST = (
    "{Method: httpMethod || requestContext.httpMethod, Path: path || requestContext.path,"
    " Headers: headers, Query: queryString || queryStringParameters, Body: body,"
    " Base64: isBase64Encoded, SourceIp: requestContext.sourceIp || headers.\"x-scf-remote-addr\","
    " RequestId: requestContext.requestId}"
)
TIMER = "{TriggerName: TriggerName, Time: Time, Message: Message}"
# The timer argument when it holds JSON (a batch payload or {"Job": ...}); null otherwise.
TIMER_MESSAGE_JSON = "sesmail_json(Message)"

# SCF's limit for a synchronous event is 6 MB (docs/ses.md#scf-runtime); anything larger is refused unread.
MAX_BODY_BYTES = 6 * 1024 * 1024
# Bounds on headers (what common servers allow): a flood of them is refused, not processed.
MAX_HEADERS = 100
MAX_HEADER_BYTES = 16 * 1024


class _Functions(jp_functions.Functions):
    """Custom JMESPath functions: parse JSON text and decode base64, yielding null when they can't."""

    @jp_functions.signature({"types": ["string", "null"]})
    def _func_sesmail_json(self, text):
        try:
            return loads(text) if text else None
        except (ValueError, RecursionError):
            return None

    @jp_functions.signature({"types": ["string", "null"]})
    def _func_sesmail_base64(self, text):
        try:
            return base64.b64decode(text or "", validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None


_OPTIONS = jmespath.Options(custom_functions=_Functions())
_compiled: dict[str, Callable[[object], object]] = {}


def _false(value: object) -> bool:
    # JMESPath's falsy values: null, false, "", [] and {} (but not 0).
    return value is None or value is False or value == "" or value == [] or value == {}


def _closure(node: dict) -> Callable[[object], object] | None:
    """Turn the common part of a parsed JMESPath tree (fields, a.b, ||, &&, {k: v}) into one plain
    Python function, made once per expression per container: several times faster per event than
    walking the tree, and the handler runs on every request. Anything else returns None and is left
    to jmespath's own interpreter."""
    temporaries = iter(range(1 << 30))
    source = _source(node, "event", temporaries)
    if source is None:
        return None
    namespace: dict[str, Any] = {"_false": _false}
    exec(compile(f"def run(event):\n    return {source}\n", "<envelope>", "exec"), namespace)  # our own text
    return namespace["run"]


def _source(node: dict, value: str, temporaries: Iterator[int], dicts: frozenset = frozenset()) -> str | None:
    """A Python expression computing `node` on the variable named `value` (None: not in the fast
    path). Intermediate values live in walrus temporaries `_t<n>`, evaluated once each; `dicts`
    names the variables already known to hold a dict."""
    kind, children = node["type"], node["children"]
    if kind == "field":
        if value in dicts:
            return f"{value}.get({node['value']!r})"
        return f"({value}.get({node['value']!r}) if isinstance({value}, dict) else None)"
    if kind == "subexpression":  # a.b: each step on the previous one's value
        source = value
        for child in children:
            temporary = source if source.isidentifier() else f"_t{next(temporaries)}"
            step = _source(child, temporary, temporaries, dicts if temporary is value else frozenset())
            if step is None:
                return None
            source = step if temporary is source else f"({step} if ({temporary} := {source}) is {temporary} else None)"
        return source
    if kind in ("or_expression", "and_expression"):
        temporary = f"_t{next(temporaries)}"
        left, right = (_source(child, value, temporaries, dicts) for child in children)
        if left is None or right is None:
            return None
        chosen = (right, temporary) if kind == "or_expression" else (temporary, right)
        return f"({chosen[0]} if _false({temporary} := {left}) else {chosen[1]})"
    if kind == "multi_select_dict":
        if value not in dicts:  # one isinstance() for all the fields read from a dict
            known = _source(node, value, temporaries, dicts | {value})
            other = _multi_select(children, value, temporaries, dicts)
            return None if known is None or other is None else \
                f"(None if {value} is None else ({known} if isinstance({value}, dict) else {other}))"
        return _multi_select(children, value, temporaries, dicts)
    return None


def _multi_select(children: list, value: str, temporaries: Iterator[int], dicts: frozenset) -> str | None:
    pairs = []
    for child in children:  # key_val_pair nodes
        part = _source(child["children"][0], value, temporaries, dicts) if child["type"] == "key_val_pair" else None
        if part is None:
            return None
        pairs.append(f"{child['value']!r}: {part}")
    return f"{{{', '.join(pairs)}}}"


def extract(expression: str, event: object):
    """Evaluate one envelope expression against an event (compiled once per container)."""
    run = _compiled.get(expression)
    if run is None:
        parsed = jmespath.compile(expression)
        run = _closure(parsed.parsed) or (lambda value: parsed.search(value, options=_OPTIONS))
        _compiled[expression] = run
    return run(event)


def kind(event: object) -> str:
    """"http", "timer" or "direct" (anything else: the SCF Invoke API passes the payload as is)."""
    if isinstance(event, dict):
        if "httpMethod" in event:
            return "http"
        if event.get("Type") == "Timer":
            return "timer"
    return "direct"


class Request:
    """The facts of one HTTP invocation; header names lower-cased (HTTP's are case-insensitive)."""

    __slots__ = ("body", "headers", "method", "path", "query", "request_id", "source_ip")

    def __init__(self, method: str, path: str, headers: dict, query: dict, body: str | None,
                 source_ip: str | None, request_id: str | None) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.query = query
        self.body = body
        self.source_ip = source_ip
        self.request_id = request_id

    @classmethod
    def from_http_event(cls, event: dict) -> Request:
        facts = extract(HTTP_REQUEST, event)
        raw_headers = facts["Headers"]
        headers = ({str(k).lower(): str(v) for k, v in raw_headers.items()}
                   if isinstance(raw_headers, dict) else {})
        if len(headers) > MAX_HEADERS or sum(map(len, headers)) + sum(map(len, headers.values())) > MAX_HEADER_BYTES:
            raise InvalidInput(f"at most {MAX_HEADERS} headers and {MAX_HEADER_BYTES} bytes of them",
                               code="InvalidParameter.HeadersTooLarge")
        query = facts["Query"] if isinstance(facts["Query"], dict) else {}
        body = facts["Body"]
        if body is not None and not isinstance(body, str):
            body = json.dumps(body)  # a test harness may hand over a parsed body
        if body and len(body) > MAX_BODY_BYTES // 4 and len(body.encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"the request body exceeds {MAX_BODY_BYTES} bytes")
        if body and facts["Base64"] is True:
            try:
                body = base64.b64decode(body, validate=True).decode("utf-8")
            except (binascii.Error, ValueError) as exc:
                raise InvalidInput("isBase64Encoded is true but the body is not base64 of UTF-8 text",
                                   code="InvalidParameter.BodyEncoding") from exc
        method = str(facts["Method"] or "GET").upper()
        path = str(facts["Path"] or "/")
        try:  # the path and query reach SQL and logs: text only
            path.encode("utf-8")
            if query:
                _check_text(query)
        except (ValueError, RecursionError) as exc:
            raise InvalidInput("the path or query string is not valid text", code="InvalidParameter.BodyEncoding") \
                from exc
        return cls(method, path, headers, query, body, facts["SourceIp"], facts["RequestId"])


def _no_constant(name: str):
    # Python's json accepts NaN and Infinity; JSON (and SES) does not.
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    # 1e400 parses to inf: as unsendable as the NaN/Infinity literals.
    value = float(text)
    if value in (_INF, -_INF):
        raise ValueError("a number out of range is not JSON SES can take")
    return value


_INF = float("inf")
_decode = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite).decode
# A \uD800-\uDFFF escape may be half of a surrogate pair, or an unpaired one that no UTF-8
# encoder (nor SES) accepts; only bodies that have one are walked.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def loads(text: str):
    """Strict JSON: ValueError for NaN/Infinity/out-of-range numbers and unpaired surrogates."""
    text.encode("utf-8")  # UnicodeEncodeError (a ValueError) on a raw unpaired surrogate
    return _loads_text(text)


def _loads_text(text: str):
    """`loads` of text known to encode as UTF-8."""
    value = _decode(text)
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        _check_text(value)
    return value


def check_payload(value):
    """A payload that arrived as Python objects (a direct invocation) checked as `loads` checks
    text: no unpaired surrogate anywhere, no non-finite number."""
    try:
        _check_text(value)
    except ValueError as exc:  # UnicodeEncodeError included
        raise InvalidInput("the payload holds an unpaired UTF-16 surrogate or a non-finite number",
                           code="InvalidParameter.BodyEncoding") from exc
    except RecursionError as exc:
        raise InvalidInput("the payload is nested too deeply", code="InvalidParameter.JsonParseError") from exc
    return value


def _check_text(value) -> None:
    if isinstance(value, str):
        value.encode("utf-8")  # UnicodeEncodeError (a ValueError) on an unpaired surrogate
    elif isinstance(value, float) and (value != value or value in (_INF, -_INF)):
        raise ValueError("a non-finite number is not JSON")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_text(item)
    elif isinstance(value, list):
        for item in value:
            _check_text(item)


def parse_json_body(body: str | None):
    """The body as JSON; refused (docs/api.md#errors) when it is empty or not JSON."""
    if not body:
        raise InvalidInput("the request body is empty; a JSON object is expected",
                           code="MissingParameter")
    try:
        body.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput("the request body is not valid UTF-8 text", code="InvalidParameter.BodyEncoding") from exc
    try:
        return _loads_text(body)  # encodes: checked just above
    except UnicodeEncodeError as exc:
        raise InvalidInput("the request body has an unpaired UTF-16 surrogate escape",
                           code="InvalidParameter.BodyEncoding") from exc
    except ValueError as exc:
        raise InvalidInput("the request body is not valid JSON", code="InvalidParameter.JsonParseError") from exc
    except RecursionError as exc:
        raise InvalidInput("the request body is nested too deeply",
                           code="InvalidParameter.JsonParseError") from exc
