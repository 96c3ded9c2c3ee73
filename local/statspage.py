"""The mail page's "Stats" tab: the send function's dashboard, served under the emulator's origin.

The dashboard's page, script and style are the send function's own (functions/send/static); the
page asks this origin, under `/_local/api/`, for `GET /stats` and `GET /guard`, which are passed
to the functions' gateway with the caller's `Authorization` header and answered as the function
answered. So the page's Content-Security-Policy keeps `connect-src 'self'`, and the key the page
asks for is checked by the send function exactly as on a deployment.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from typing import Any, Optional

__all__ = ["handle"]

STATIC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "functions", "send", "static")
TYPES = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8"}
API = ("stats", "guard")
Answer = tuple[int, str, bytes, dict[str, str]]


def _headers(csp: str) -> dict[str, str]:
    return {"Cache-Control": "no-store", "Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer"}


def _read(name: str) -> bytes:
    with open(os.path.join(STATIC, name), "rb") as handle:
        return handle.read()


def handle(functions_url: Optional[str], method: str, parts: list[str], query: str, headers: Any,
           csp: str) -> Optional[Answer]:
    """`parts` after `_local`: `stats` (the page), `dashboard/<file>`, `api/stats|guard` (passed to
    the functions at `functions_url`); None for any other path (the mail page's own routes)."""
    if method not in ("GET", "HEAD"):
        return None
    if parts == ["stats"]:
        page = _read("dashboard.html").replace(b'"/dashboard/', b'"/_local/dashboard/').replace(
            b"<body>", b'<body data-api="/_local/api">', 1)
        return 200, "text/html; charset=utf-8", page, _headers(csp)
    if len(parts) == 2 and parts[0] == "dashboard" and parts[1] in TYPES:
        return 200, TYPES[parts[1]], _read(parts[1]), _headers(csp)
    if len(parts) == 2 and parts[0] == "api" and parts[1] in API:
        return _forward(functions_url, parts[1], query, headers)
    return None


def _forward(base: Optional[str], name: str, query: str, headers: Any) -> Answer:
    if not base:
        body = (b'{"Error": {"Code": "ResourceNotFound",'
                b' "Message": "no functions: this emulator runs without the local stack"}}')
        return 404, "application/json", body, {}
    request = urllib.request.Request(f"{base}/{name}" + (f"?{query}" if query else ""), method="GET")
    authorization = headers.get("Authorization")
    if authorization:
        request.add_header("Authorization", authorization)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as reply:
            return reply.status, "application/json", reply.read(), {"X-Content-Type-Options": "nosniff"}
    except urllib.error.HTTPError as exc:
        return exc.code, "application/json", exc.read(), {"X-Content-Type-Options": "nosniff"}
