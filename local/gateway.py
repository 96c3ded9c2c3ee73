"""Local HTTP gateway: turns HTTP requests into the events SCF gives the functions.

By default each request becomes a Function URL event, exactly what a Function URL would give
the function (docs/api.md): `body` as text, lower-case `headers` with `x-scf-remote-addr`,
`httpMethod`, `path`, `queryString`. With `apigw=True` (`python -m local --apigw`) it becomes an
API Gateway integration event instead (`requestContext`, original-case headers,
`queryStringParameters`, `pathParameters`, `isBase64Encoded`), the shape of the retired trigger
that deployed functions may still receive. Which function serves a path is `ROUTES` below, the
route table of docs/api.md.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional, Union
from urllib.parse import parse_qsl, urlsplit

from . import httpserver
from .functions import FunctionMissing, Functions

__all__ = ["ROUTES", "Gateway", "route_for"]

Handler = Callable[[Any, Any], Any]

# Which function serves which path prefix (docs/api.md).
ROUTES = (
    ("/messages", "send"),
    ("/suppressions", "send"),
    ("/addresses", "send"),
    ("/send", "send"),
    ("/stats", "send"),
    ("/guard", "send"),
    ("/dashboard", "send"),
    ("/batch", "batch"),
    ("/digest", "batch"),
    ("/webhook", "webhook"),
    ("/unsubscribe", "webhook"),  # readers' links (docs/topics.md)
    ("/preferences", "webhook"),
)
# Above SCF's 6 MB synchronous limit plus headroom; the function itself answers 413 below this.
MAX_READ = 7 * 1024 * 1024


def route_for(path: str) -> Optional[str]:
    if path in ("", "/"):
        return "send"  # a bare Function URL is the send function
    for prefix, name in ROUTES:
        if path == prefix or path.startswith((prefix + "/", prefix + "?")):
            return name
    return None


def function_url_event(method: str, path: str, query: str, headers: list[tuple[str, str]], body: bytes,
                       client_ip: str) -> dict[str, Any]:
    lowered = {key.lower(): value for key, value in headers}
    lowered["x-scf-remote-addr"] = client_ip
    return {"body": body.decode("utf-8", errors="replace"), "headers": lowered, "httpMethod": method,
            "path": path or "/", "queryString": dict(parse_qsl(query, keep_blank_values=True))}


def apigw_event(method: str, path: str, query: str, headers: list[tuple[str, str]], body: bytes,
                client_ip: str) -> dict[str, Any]:
    query_params = dict(parse_qsl(query, keep_blank_values=True))
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:  # API Gateway base64-encodes bodies it cannot pass as text
        text, encoded = base64.b64encode(body).decode("ascii"), True
    return {
        "requestContext": {"serviceId": "service-local", "path": path or "/", "httpMethod": method,
                           "requestId": str(uuid.uuid4()), "identity": {}, "sourceIp": client_ip,
                           "stage": "release"},
        "headers": dict(headers), "body": text, "pathParameters": {}, "queryStringParameters": query_params,
        "headerParameters": {}, "stageVariables": {"stage": "release"}, "path": path or "/",
        "queryString": query_params, "httpMethod": method, "isBase64Encoded": encoded,
    }


class Gateway:
    """`Gateway(functions, port=8080).start()` serves in a daemon thread.

    `functions` is a `Functions` (reloading, with each function's context and time limit) or a
    plain `{"send": main_handler, ...}` dict.
    """

    def __init__(self, functions: Union[Functions, dict[str, Handler]], host: str = "127.0.0.1", port: int = 8080,
                 time_limit_ms: int = 30000, apigw: bool = False) -> None:
        self.functions = functions
        self.time_limit_ms = time_limit_ms
        self.apigw = apigw
        gateway = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # the functions log for us
                pass

            def _serve(self) -> None:
                gateway.serve(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = _serve

        self.server = ThreadingHTTPServer((host, port), RequestHandler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread: Optional[threading.Thread] = None

    def start(self) -> Gateway:
        self._thread = httpserver.serve(self.server, "gateway")
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _invoke(self, name: str, event: dict[str, Any]) -> Any:
        if isinstance(self.functions, Functions):
            return self.functions.invoke(name, event)
        handler = self.functions.get(name)
        if handler is None:
            raise FunctionMissing(name)
        return handler(event, {"request_id": str(uuid.uuid4()), "time_limit_in_ms": self.time_limit_ms,
                               "function_name": name, "memory_limit_in_mb": 128, "namespace": "default"})

    def serve(self, http: BaseHTTPRequestHandler) -> None:
        split = urlsplit(http.path)
        request_id = str(uuid.uuid4())
        if split.path == "/openapi.json" and http.command == "GET":
            # The HTTP routes' OpenAPI document (generated by local/docs.py), for tools like Schemathesis.
            with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "openapi.json"),
                      "rb") as handle:
                document = handle.read()
            http.send_response(200)
            http.send_header("Content-Type", "application/json")
            http.send_header("Content-Length", str(len(document)))
            http.end_headers()
            http.wfile.write(document)
            return
        try:
            length = int(http.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._error(http, 400, "InvalidParameter", "Content-Length is not a number", request_id)
            http.close_connection = True
            return
        if length > MAX_READ:
            self._error(http, 413, "RequestSizeLimitExceeded", "the request body is too large", request_id)
            http.close_connection = True
            return
        raw = http.rfile.read(length) if length else b""
        name = route_for(split.path)
        build = apigw_event if self.apigw else function_url_event
        event = build(http.command, split.path, split.query, list(http.headers.items()), raw, http.client_address[0])
        try:
            if name is None:
                raise FunctionMissing(split.path)
            result = self._invoke(name, event)
        except FunctionMissing:
            failed = isinstance(self.functions, Functions) and name in self.functions.errors
            if failed:
                self._error(http, 502, "InternalError", f"functions/{name} failed to load; see the console",
                            request_id)
            else:
                what = f"functions/{name} does not exist yet" if name else "no function serves this path"
                self._error(http, 404, "ResourceNotFound", what, request_id)
            return
        except Exception:
            # SCF reports a crashed invocation as a function error; the traceback goes to the console.
            print(f"[local] functions/{name} raised:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
            self._error(http, 502, "InternalError", f"functions/{name} raised an exception; see the console",
                        request_id)
            return
        self._answer(http, result)

    @staticmethod
    def _answer(http: BaseHTTPRequestHandler, result: Any) -> None:
        if isinstance(result, dict) and "statusCode" in result:
            status = int(result["statusCode"])
            headers = dict(result.get("headers") or {})
            body = result.get("body", "")
            if isinstance(body, str):
                payload = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
            else:
                payload = json.dumps(body).encode("utf-8")
        else:
            # Function URL: a return value without statusCode is sent as a JSON 200.
            status, headers, payload = 200, {"Content-Type": "application/json"}, json.dumps(result).encode("utf-8")
        http.send_response(status)
        for key, value in headers.items():
            if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                http.send_header(key, str(value))
        http.send_header("Content-Length", str(len(payload)))
        http.end_headers()
        if http.command != "HEAD":
            http.wfile.write(payload)

    @staticmethod
    def _error(http: BaseHTTPRequestHandler, status: int, code: str, message: str, request_id: str) -> None:
        payload = json.dumps({"Error": {"Code": code, "Message": message}, "RequestId": request_id}).encode("utf-8")
        http.send_response(status)
        http.send_header("Content-Type", "application/json")
        http.send_header("Content-Length", str(len(payload)))
        http.end_headers()
        if http.command != "HEAD":
            http.wfile.write(payload)
