"""Build trigger events from the real samples in tests/fixtures/events (see their README)."""

from __future__ import annotations

import base64
import copy
import json
import os

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "events")


def fixture(name: str) -> dict:
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return json.load(handle)


def sample_send_payload() -> dict:
    """The SendEmail body of the samples (SES's own template example)."""
    return json.loads(fixture("function-url-send.json")["body"])


def http_event(body=None, *, method: str = "POST", path: str = "/send", key: str | None = "dev-key",
               headers: dict | None = None, shape: str = "function-url", base64_body: bool = False,
               query: dict | None = None) -> dict:
    """A Function URL (default) or API Gateway event carrying `body` (a dict is JSON-encoded)."""
    if shape == "function-url":
        event = copy.deepcopy(fixture("function-url-send.json"))
        event["headers"].pop("authorization", None)
    else:
        event = copy.deepcopy(fixture("apigw-send.json"))
        event["headers"].pop("Authorization", None)
        event["requestContext"]["path"] = path
        event["requestContext"]["httpMethod"] = method
    if key is not None:
        event["headers"]["Authorization" if shape == "apigw" else "authorization"] = f"Bearer {key}"
    event["headers"].update(headers or {})
    event["httpMethod"] = method
    event["path"] = path
    if query is not None:
        event["queryString"] = query
        if shape == "apigw":
            event["queryStringParameters"] = query
    if body is None:
        event["body"] = ""
    else:
        text = body if isinstance(body, str) else json.dumps(body)
        if base64_body:
            text = base64.b64encode(text.encode("utf-8")).decode("ascii")
            event["isBase64Encoded"] = True
        event["body"] = text
    return event


def context(time_limit_ms: int = 30000, request_id: str = "req-test") -> dict:
    """An SCF context as the Python runtime passes it (a dict)."""
    return {"request_id": request_id, "time_limit_in_ms": time_limit_ms, "memory_limit_in_mb": 128,
            "function_name": "sesmail-send", "function_version": "$LATEST", "namespace": "default"}
