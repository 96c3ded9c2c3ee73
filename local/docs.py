"""Generated parts of the documentation, from the same declarations the validation runs on.

`python -m local.docs` (`make docs`) rewrites the blocks between `<!-- generated:NAME -->` and
`<!-- /generated:NAME -->` in the files of TARGETS (the rule tables of docs/api.md), and
openapi.json; a test fails when either is out of date.
"""

from __future__ import annotations

import json
import os

from sesmail import rules, validation

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _table(spec: validation.Object) -> str:
    lines = ["| field | rule | code when broken |", "|---|---|---|"]
    for field, rule, code in validation.rule_table(spec):
        lines.append(f"| `{field}` | {rule.replace('|', '&#124;')} | `{code}` |")
    return "\n".join(lines)


def send_email_rules() -> str:
    return _table(rules.SEND_EMAIL)


def batch_send_email_rules() -> str:
    return _table(rules.BATCH_SEND_EMAIL)


BLOCKS = {"send-rules": send_email_rules, "batch-rules": batch_send_email_rules}
# Which file holds which generated blocks (paths relative to the repository's root).
TARGETS = {"docs/api.md": ("send-rules", "batch-rules")}


def render(text: str, names: tuple[str, ...] = tuple(BLOCKS), source: str = "the text") -> str:
    """`text` with each named block rebuilt; a block whose markers are missing is an error."""
    for name in names:
        build = BLOCKS[name]
        start, end = f"<!-- generated:{name} -->", f"<!-- /generated:{name} -->"
        head, found, rest = text.partition(start)
        _, closed, tail = rest.partition(end)
        if not (found and closed):
            raise ValueError(f"{source}: the block {name!r} needs both of its markers")
        text = head + start + "\n" + build() + "\n" + end + tail
    return text


def stale() -> list[str]:
    """The TARGETS whose generated blocks differ from what `make docs` would write."""
    out = []
    for path, names in TARGETS.items():
        with open(os.path.join(ROOT, path), encoding="utf-8") as handle:
            text = handle.read()
        if render(text, names, path) != text:
            out.append(path)
    return out


def main() -> None:
    for path, names in TARGETS.items():
        full = os.path.join(ROOT, path)
        with open(full, encoding="utf-8") as handle:
            text = handle.read()
        rendered = render(text, names, path)
        if rendered != text:
            with open(full, "w", encoding="utf-8") as handle:
                handle.write(rendered)
            print(f"rewrote {path}")
    write_openapi()


OPENAPI = os.path.join(ROOT, "openapi.json")


def openapi() -> dict:
    """The HTTP routes of the three functions, request bodies from the validation declarations."""
    error = {"type": "object", "required": ["Error", "RequestId"], "properties": {
        "Error": {"type": "object", "required": ["Code", "Message"], "properties": {
            "Code": {"type": "string", "description": "Tencent Cloud error code (SES's own where SES has one)"},
            "Message": {"type": "string"}, "Field": {"type": "string", "description": "path of the field at fault"},
            "Outcome": {"type": "string", "enum": ["NotSent", "Unknown"]}}},
        "RequestId": {"type": "string"}}}

    def answers(ok: dict, *statuses: int) -> dict:
        out = {"200": {"description": "OK", "content": {"application/json": {"schema": ok}}}}
        for status in statuses:
            out[str(status)] = {"description": "refused (see docs/api.md#errors)",
                                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        return out

    def body(schema: dict) -> dict:
        return {"required": True, "content": {"application/json": {"schema": schema}}}

    keyed: list[dict] = [{"bearer": []}, {"apiKey": []}]
    idem = {"name": "Idempotency-Key", "in": "header", "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": 255}}
    address = {"name": "address", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 254}}
    message = {"type": "object", "properties": {"MessageId": {"type": "string"}, "RequestId": {"type": "string"}}}
    # An SES TaskId is an integer; a schedule sesmail keeps itself is `sched-` and 24 hex digits.
    task_id = {"oneOf": [{"type": "integer"}, {"type": "string", "pattern": "^sched-[0-9a-f]{24}$"}]}
    task = {"type": "object", "properties": {"TaskId": task_id, "TaskIds": {"type": "array", "items": task_id},
                                             "Suppressed": {"type": "array", "items": {"type": "string"}},
                                             "ScheduledBy": {"type": "string", "enum": ["sesmail"]},
                                             "NextSendTime": {"type": "string"},
                                             "RequestId": {"type": "string"}}}
    plain = {"type": "object"}
    digest_item = {"type": "object", "required": ["Digest", "Email", "Item"], "additionalProperties": False,
                   "properties": {"Digest": {"type": "string"}, "Email": {"type": "string"},
                                  "Item": {"type": "object"}}}
    send_schema = validation.json_schema(rules.SEND_EMAIL)
    return {
        "openapi": "3.0.3",
        "info": {"title": "sesmail", "version": "1", "description": "Tencent Cloud SES behind SCF functions. "
                 "Generated by `python -m local.docs` from the declarations the validation runs on."},
        "servers": [{"url": "http://127.0.0.1:8080", "description": "the local stack (make dev)"}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
                                "token": {"type": "apiKey", "in": "query", "name": "token"}},
            "schemas": {"Error": error, "SendEmail": send_schema,
                        "BatchSendEmail": validation.json_schema(rules.BATCH_SEND_EMAIL)}},
        "paths": {
            "/send": {"post": {"summary": "SES SendEmail", "security": keyed, "parameters": [idem],
                               "requestBody": body({"$ref": "#/components/schemas/SendEmail"}),
                               "responses": answers(message, 400, 401, 403, 409, 413, 429, 502, 503)}},
            "/messages/{MessageId}": {"get": {
                "summary": "what is known about a message", "security": keyed,
                "parameters": [{"name": "MessageId", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": answers(plain, 401, 404)}},
            "/suppressions": {"get": {"summary": "the suppression list", "security": keyed,
                                      "parameters": [
                                          {"name": "Offset", "in": "query", "required": False,
                                           "schema": {"type": "integer", "minimum": 0}},
                                          {"name": "Limit", "in": "query", "required": False,
                                           "schema": {"type": "integer", "minimum": 1, "maximum": 100}}],
                                      "responses": answers(plain, 400, 401)}},
            "/suppressions/{address}": {
                "put": {"summary": "suppress an address", "security": keyed, "parameters": [address],
                        "requestBody": {"required": False, "content": {"application/json": {"schema": {
                            "type": "object", "additionalProperties": False, "properties": {
                                "Scope": {"type": "string", "enum": ["all", "marketing", "topic"]},
                                "Topic": {"type": "string", "description": "one topic's marketing mail "
                                          "(docs/topics.md)"},
                                "Reason": {"type": "string", "minLength": 1, "maxLength": 64}}}}}},
                        "responses": answers(plain, 400, 401)},
                "delete": {"summary": "lift an address's suppressions (?Topic=: that topic's only)", "security": keyed,
                           "parameters": [address, {"name": "Topic", "in": "query", "required": False,
                                                    "schema": {"type": "string"}}],
                           "responses": answers(plain, 400, 401, 404)}},
            "/addresses/{address}": {"delete": {"summary": "erase everything stored about an address",
                                                "security": keyed, "parameters": [address],
                                                "responses": answers(plain, 400, 401)}},
            "/batch": {"post": {"summary": "SES BatchSendEmail, on a list or inline recipients", "security": keyed,
                                "parameters": [idem],
                                "requestBody": body({"$ref": "#/components/schemas/BatchSendEmail"}),
                                "responses": answers(task, 400, 401, 403, 409, 413, 429, 502, 503)}},
            "/batch/tasks/{TaskId}": {
                "get": {"summary": "a task's status (an SES task, or a schedule sesmail keeps)", "security": keyed,
                        "parameters": [{"name": "TaskId", "in": "path", "required": True, "schema": task_id}],
                        "responses": answers(plain, 400, 401, 404)},
                "delete": {"summary": "cancel a schedule sesmail keeps (docs/topics.md#schedules)", "security": keyed,
                           "parameters": [{"name": "TaskId", "in": "path", "required": True, "schema": task_id}],
                           "responses": answers(plain, 400, 401, 404)}},
            "/digest/items": {"post": {"summary": "queue digest items", "security": keyed,
                                       "requestBody": body({"oneOf": [digest_item,
                                                                      {"type": "array", "items": digest_item}]}),
                                       "responses": answers(plain, 400, 401, 404)}},
            "/stats": {"get": {
                "summary": "statistics from the aggregates, per day, template, sender or domain", "security": keyed,
                "parameters": [
                    {"name": "Days", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": 90}},
                    {"name": "By", "in": "query", "required": False,
                     "schema": {"type": "string", "enum": ["day", "template", "sender", "domain"]}},
                    {"name": "Source", "in": "query", "required": False,
                     "schema": {"type": "string", "enum": ["ses"]}}],
                "responses": answers(plain, 400, 401, 403)}},
            "/guard": {"get": {"summary": "the reputation guard's domains, the account as *, and their rates",
                               "security": keyed, "responses": answers(plain, 400, 401, 403)}},
            "/guard/{Domain}": {"delete": {
                "summary": "lift the guard for a sender domain (or * for the account) for 24 hours", "security": keyed,
                "parameters": [{"name": "Domain", "in": "path", "required": True,
                                "schema": {"type": "string", "maxLength": 253}}],
                "responses": answers(plain, 400, 401, 403)}},
            "/webhook": {"post": {"summary": "SES event callbacks (any path)", "security": [{"token": []}],
                                  "requestBody": body({"oneOf": [plain, {"type": "array", "items": plain}]}),
                                  "responses": answers(plain, 400, 403, 503)}},
        },
    }


def write_openapi() -> None:
    with open(OPENAPI, "w", encoding="utf-8") as handle:
        json.dump(openapi(), handle, indent=1, ensure_ascii=False)
        handle.write("\n")


if __name__ == "__main__":
    main()
