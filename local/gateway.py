"""Local HTTP gateway: turns HTTP requests into Function URL events for the functions.

The function sees exactly what a Function URL would give it (SPEC 2): `body` as text,
lower-case `headers` with `x-scf-remote-addr`, `httpMethod`, `path`, `queryString`, and a
context dict with `request_id` and `time_limit_in_ms`. Never deployed.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

__all__ = ["Gateway", "route_for"]

Handler = Callable[[dict, dict], dict]

# SPEC 3.6: which function serves which path. Longest prefix first.
ROUTES = (
    ("/messages", "send"),
    ("/suppressions", "send"),
    ("/addresses", "send"),
    ("/send", "send"),
    ("/batch", "batch"),
    ("/digest", "batch"),
    ("/webhook", "webhook"),
)
# Above SCF's 6 MB synchronous limit plus headroom; the function itself answers 413 below this.
MAX_READ = 7 * 1024 * 1024


def route_for(path: str) -> str | None:
    if path in ("", "/"):
        return "send"  # a bare Function URL is the send function
    for prefix, name in ROUTES:
        if path == prefix or path.startswith((prefix + "/", prefix + "?")):
            return name
    return None


class Gateway:
    """`Gateway({"send": main_handler, …}, port=8080).start()` serves in a daemon thread."""

    def __init__(self, functions: dict[str, Handler], host: str = "127.0.0.1", port: int = 8080,
                 time_limit_ms: int = 30000) -> None:
        self.functions = functions
        self.time_limit_ms = time_limit_ms
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
        self._thread: threading.Thread | None = None

    def start(self) -> Gateway:
        self._thread = threading.Thread(target=self.server.serve_forever, name="gateway", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def serve(self, http: BaseHTTPRequestHandler) -> None:
        split = urlsplit(http.path)
        length = int(http.headers.get("Content-Length") or 0)
        if length > MAX_READ:
            self._reply(http, 413, {"Error": {"Code": "RequestSizeLimitExceeded",
                                              "Message": "the request body is too large"}})
            http.close_connection = True
            return
        raw = http.rfile.read(length) if length else b""
        name = route_for(split.path)
        handler = self.functions.get(name) if name else None
        if handler is None:
            self._reply(http, 404, {"Error": {"Code": "ResourceNotFound", "Message": "no function serves this path"
                                              }})
            return
        headers = {key.lower(): value for key, value in http.headers.items()}
        headers["x-scf-remote-addr"] = http.client_address[0]
        event = {
            "body": raw.decode("utf-8", errors="replace"),
            "headers": headers,
            "httpMethod": http.command,
            "path": split.path or "/",
            "queryString": dict(parse_qsl(split.query, keep_blank_values=True)),
        }
        context = {"request_id": str(uuid.uuid4()), "time_limit_in_ms": self.time_limit_ms,
                   "function_name": name, "memory_limit_in_mb": 128, "namespace": "default"}
        result = handler(event, context)
        status = int(result.get("statusCode", 200))
        body = result.get("body", "")
        payload = body.encode("utf-8") if isinstance(body, str) else json.dumps(body).encode("utf-8")
        http.send_response(status)
        for key, value in (result.get("headers") or {}).items():
            http.send_header(key, str(value))
        http.send_header("Content-Length", str(len(payload)))
        http.end_headers()
        if http.command != "HEAD":
            http.wfile.write(payload)

    @staticmethod
    def _reply(http: BaseHTTPRequestHandler, status: int, body: dict) -> None:
        payload = json.dumps(body).encode("utf-8")
        http.send_response(status)
        http.send_header("Content-Type", "application/json")
        http.send_header("Content-Length", str(len(payload)))
        http.end_headers()
        http.wfile.write(payload)
