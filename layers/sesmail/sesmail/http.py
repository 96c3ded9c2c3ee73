"""HTTP plumbing shared by the functions: routing, API-key auth, responses (docs/api.md).

A function declares its few routes as data and hands every event to `App.handle`. Responses use
the integrated-response shape both Function URLs and API Gateway accept. Errors use Tencent
Cloud's vocabulary, so a caller sees the same code whether this layer or SES refused.
"""

from __future__ import annotations

import hmac
import os
import re
import time
import uuid
from typing import TYPE_CHECKING, Any, Callable

from . import config, envelopes, log, policy
from . import store as stores
from .deadline import Deadline
from .errors import (
    ConfigError,
    InternalFailure,
    MethodNotAllowed,
    NotFound,
    OriginNotAllowed,
    SesmailError,
    Unauthorized,
)

if TYPE_CHECKING:
    from .store import Store

__all__ = ["App", "Call", "Response", "Route", "error_response", "response"]

JSON_HEADERS = {"Content-Type": "application/json"}
# One encoder for every response, made once (json.dumps with options makes one per call).
_encode = log.json_encoder_for(separators=(",", ":"), allow_nan=False)


def response(status: int, body: dict, headers: dict | None = None) -> dict:
    out_headers = {**JSON_HEADERS, **headers} if headers else dict(JSON_HEADERS)
    return {"isBase64Encoded": False, "statusCode": status, "headers": out_headers, "body": _encode(body)}


def error_response(error: SesmailError, request_id: str) -> dict:
    headers = {**JSON_HEADERS, "X-Request-Id": request_id}
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, int(error.retry_after)))
    return {"isBase64Encoded": False, "statusCode": error.status, "headers": headers,
            "body": _encode({"Error": error.to_error(), "RequestId": request_id})}


class Response:
    """What a route returns: a status, a JSON body (or, as text, a page or its script and style, its
    type named by `headers`' Content-Type) and extra headers."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, body: dict | str, headers: dict | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}


class Call:
    """One invocation as a route sees it: the request, settings, deadline and caller, and the store
    (opened once, on first use)."""

    __slots__ = ("_store", "client", "deadline", "direct_payload", "params", "request", "request_id", "settings",
                 "trusted")

    def __init__(self, request: envelopes.Request | None, settings: config.Settings,
                 deadline: Deadline, request_id: str) -> None:
        self.request = request
        self.settings = settings
        self.deadline = deadline
        self.request_id = request_id
        self.params: dict[str, str] = {}
        self.client = config.DEFAULT_CLIENT
        self.trusted = False  # a direct invocation: SCF's CAM already authorised the caller
        self.direct_payload: Any = None
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        """The database of `SESMAIL_DATABASE_URL`, opened once per invocation and only by a route
        that uses it: a refused request, a probe or a preflight never asks for it."""
        store = self._store
        if store is None:
            store = self._store = stores.open_store(self.settings.database_url)
        return store

    @store.setter
    def store(self, store: Store) -> None:
        self._store = store

    def header(self, name: str) -> str | None:
        return self.request.headers.get(name) if self.request else None

    def payload(self) -> Any:
        """The JSON payload: the parsed body, or the event itself for a direct invocation."""
        if self.request is None:
            return envelopes.check_payload(self.direct_payload)
        return envelopes.parse_json_body(self.request.body)


class Route:
    """`GET /messages/{MessageId}` -> handler(call). `scope` is what a key whose client has a policy
    needs for it (`send`, `batch`, `digest`, `stats`; `admin` has every scope; a route that names
    none needs `admin`); `public` routes skip the API key (their handler checks a token)."""

    def __init__(self, method: str, pattern: str, handler: Callable[[Call], Response], public: bool = False,
                 scope: str | None = None):
        if scope is not None and scope not in policy.SCOPES:
            raise ValueError(f"Route {method} {pattern}: unknown scope; known: {', '.join(policy.SCOPES)}")
        self.method = method
        self.pattern = pattern
        self.handler = handler
        self.public = public
        self.scope = scope or "admin"
        self.name = f"{method} {pattern}"  # what the request's log line calls it
        # "*" matches every path (the webhook takes callbacks on any path).
        self.regex = re.compile(".*" if pattern == "*" else
                                "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern.rstrip("/") or "/") + "/?$")


def _cors_headers(origin: str) -> dict[str, str]:
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin",
            "Access-Control-Expose-Headers": "X-Request-Id, Retry-After, Idempotent-Replayed"}


def _authenticate(call: Call) -> None:
    """API key from `Authorization: Bearer <key>` or `X-Api-Key: <key>`, compared in constant time
    against every configured key (none configured: every request is refused; docs/security.md#api-keys)."""
    headers = call.request.headers if call.request else {}
    supplied = (headers.get("x-api-key") or "").strip()
    if not supplied:
        scheme, _, token = (headers.get("authorization") or "").partition(" ")
        supplied = token.strip() if scheme.lower() == "bearer" else ""
    if not supplied:
        raise Unauthorized("an API key is required: Authorization: Bearer <key> or X-Api-Key")
    client = None
    candidate = supplied.encode("utf-8", "surrogatepass")
    for key, owner in call.settings.api_keys.items():
        if hmac.compare_digest(candidate, key.encode("utf-8")) and client is None:
            client = owner
    if client is None:
        raise Unauthorized("the API key is not valid")
    call.client = client


class App:
    """A function's routes and the one entry point SCF calls."""

    def __init__(self, function_file: str, name: str, routes: list[Route], direct: Route | None = None,
                 timer: Callable[[Call, dict], Response] | None = None):
        self.function_dir = os.path.dirname(os.path.abspath(function_file))
        self.name = name
        self.routes = routes
        self._static: dict[tuple[str, str], Route] = {}  # (method, path) -> its route, for paths without parameters
        self.direct = direct  # the route a direct invocation (SCF Invoke API) takes, if any
        self.direct_name = f"invoke {direct.pattern}" if direct is not None else ""
        self.timer = timer  # what a timer event runs, if this function has timers

    def _preflight(self, call: Call) -> dict:
        """CORS preflight: browsers send no credentials with it, so it is answered from the union
        of every client's `Origins`; the real request is then checked against its key's own."""
        origin = call.request.headers.get("origin", "") if call.request else ""
        clients = call.settings.file.get("Clients") or {}
        allowed = any(isinstance(p, dict) and origin in (p.get("Origins") or ()) for p in clients.values())
        if not allowed:
            raise OriginNotAllowed("this web origin is not allowed", field="Origin")
        headers = dict(_cors_headers(origin), **{
            "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE",
            "Access-Control-Allow-Headers": "Authorization, X-Api-Key, Content-Type, Idempotency-Key",
            "Access-Control-Max-Age": "600", "X-Request-Id": call.request_id})
        return {"isBase64Encoded": False, "statusCode": 204, "headers": headers, "body": ""}

    def _match(self, request: envelopes.Request) -> tuple[Route, dict]:
        known = self._static.get((request.method, request.path))
        if known is not None:
            return known, {}
        allowed = []
        for route in self.routes:
            match = route.regex.match(request.path)
            if match:
                if route.method == request.method or (request.method == "HEAD" and route.method == "GET"):
                    params = match.groupdict()
                    if not params and len(self._static) < 256:  # a path without parameters, remembered
                        self._static[(request.method, request.path)] = route
                    return route, params
                allowed.append(route.method)
        if allowed:
            raise MethodNotAllowed(f"{request.method} is not supported on this path; allowed: "
                                   + ", ".join(sorted(set(allowed))))
        raise NotFound("no such route")

    def handle(self, event: Any, context: Any) -> dict:
        started = time.monotonic()
        context = context if isinstance(context, dict) else {}
        request_id = str(context.get("request_id") or "") or str(uuid.uuid4())
        route_name = "-"
        status = 500
        code = None
        cors: dict[str, str] = {}  # CORS headers for an allowed browser origin, on every answer
        log.bind(RequestId=request_id, Function=self.name)
        try:
            settings = config.load(self.function_dir)
            deadline = Deadline(context.get("time_limit_in_ms") or settings.default_time_limit_ms, started)
            kind = envelopes.kind(event)
            if kind == "http":
                request = envelopes.Request.from_http_event(event)
                if request.request_id and not context.get("request_id"):
                    request_id = request.request_id
                    log.bind(RequestId=request_id, Function=self.name)
                call = Call(request, settings, deadline, request_id)
                if request.method == "OPTIONS" and "origin" in request.headers:
                    route_name = "OPTIONS (CORS preflight)"
                    status = 204
                    return self._preflight(call)
                route, call.params = self._match(request)
                route_name = route.name
                if not route.public:
                    _authenticate(call)
                    # A client without a policy (a server-side one) has nothing more to check.
                    if policy.policy_for(settings, call.client) is not None:
                        origin = request.headers.get("origin")
                        if policy.check_origin(settings, call.client, origin) and origin:
                            cors = _cors_headers(origin)
                        policy.check_scope(settings, call.client, route.scope)
                        policy.check_request(settings, call.client)
            elif kind == "timer" and self.timer is not None:
                route_name = "timer"
                call = Call(None, settings, deadline, request_id)
                call.trusted = True
                result = self.timer(call, envelopes.extract(envelopes.TIMER, event))
                status = result.status
                assert isinstance(result.body, dict)  # a timer answers JSON
                return response(status, dict(result.body, RequestId=request_id))
            elif kind == "direct" and self.direct is not None:
                route = self.direct
                route_name = self.direct_name
                call = Call(None, settings, deadline, request_id)
                call.trusted = True
                call.direct_payload = event
            else:
                raise NotFound(f"this function does not take {kind} events")
            result = route.handler(call)
            status = result.status
            headers = {"X-Request-Id": request_id, **cors}
            headers.update(result.headers)
            if isinstance(result.body, str):  # a page (text/html): its own headers name its type
                return {"isBase64Encoded": False, "statusCode": status, "headers": headers, "body": result.body}
            body = dict(result.body)
            body.setdefault("RequestId", request_id)
            return response(status, body, headers)
        except SesmailError as exc:
            status, code = exc.status, exc.code
            if isinstance(exc, ConfigError):
                # The operator's fault, not the caller's: the log names file, path and rule; the
                # caller learns only that the service is misconfigured.
                log.error("invalid configuration", ConfigFile=exc.source, ConfigPath=exc.path, Rule=exc.rule)
            if route_name == "timer" and (exc.status >= 500 or exc.status == 429):
                # Timer runs are asynchronous: raising makes SCF retry the event later, and the
                # run key (TriggerName + Time) makes that retry safe.
                raise
            answer = error_response(exc, request_id)
            if cors:
                answer["headers"].update(cors)
            return answer
        except Exception as exc:  # a bug: logged by type, never with the payload
            code = "InternalError"
            log.error("unhandled error", Error=type(exc).__name__)
            return error_response(InternalFailure("internal error"), request_id)
        finally:
            log.summary("request", Route=route_name, Status=status, Code=code,
                        Millis=round((time.monotonic() - started) * 1000, 2))
