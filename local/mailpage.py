"""The mail page (`GET /` on the emulator) and the `/_local` JSON API beside it.

The page is three static files beside this module (`mailpage.html`, `mailpage.css`,
`mailpage.js`): no framework, nothing fetched from a CDN, so it works offline. Its script reads
the JSON API below and builds every element with `textContent`, never `innerHTML`: subjects,
addresses and template data are whatever a caller sent, and on a shared dev stack that may be
someone's `<script>`. The page is served with a Content-Security-Policy that allows no inline
script or style; a mail's HTML part is shown in a sandboxed iframe served with a CSP `sandbox`
header, so a template's scripts never run in the page. The page polls `Version` (below) and
refreshes the list and the open mail when it changes, without reloading itself.

JSON API (PascalCase, as SES's own JSON):
  GET    /_local/messages                       newest first: {"Messages": [...], "Total", "Cursor", "Version"}
           ?limit=50&offset=0                   page (limit 0 to 1000; 0 answers only the counts)
           &q=words                             each word in the subject, sender or a recipient;
                                                `to:`, `subject:`, `from:`, `is:<state>` narrow a
                                                word, "quoted words" stay together
           &to=&subject=&from=&state=           the same, one field each
           &since=<Id>                          only mails newer than that Id (`Cursor` is the newest Id)
  GET    /_local/messages/<id>                  one mail (<id>: page Id, MessageId, or `latest`)
  GET    /_local/messages/<id>/raw              the .eml; /html the HTML part; /attachments/<n>
  POST   /_local/messages/<id>/events           JSON {"Event": "open", "Email"?, "Link"?} or the same as
                                                form fields (`curl -d Event=open`; `kind` for Event)
  POST   /_local/messages/<id>/one-click        POST the mail's List-Unsubscribe URL as a mailbox provider
                                                does (RFC 8058): {"Status": <its HTTP status>}
  DELETE /_local/messages                       forget every mail and event
  GET    /_local/templates                      loaded templates with IDs, status and variables
  GET|POST|DELETE /_local/chaos                 random faults ({"Chaos": "<spec>"}, see local.chaos)
  GET    /_local/timers, POST /_local/timers/<TriggerName>   list timers, fire one now
  GET    /_local/health                         {"Status": "ok"}
  GET    /_local/calls                          the API calls' Action and Outcome (the emulator answers it)

A state filter (`state=`, `is:`) keeps the mails with at least one event of that name by now,
for any recipient; `queued` keeps those with no delivery outcome yet. Each mail carries `State`,
its delivery outcome (the last of delivered, bounce, dropped, deferred), and `Badge`, the most
telling event of any of its recipients, which the list shows (BADGE_RANK).

POST, PUT and DELETE under `/_local` from another web origin are refused: a page on the web must
not clear or fake a developer's mail through their browser.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from typing import Any, Optional, Protocol
from urllib.parse import parse_qs, parse_qsl, quote, urlsplit

from . import delivery, rendering
from .chaos import Chaos
from .ses_account import Account

__all__ = ["BADGE_RANK", "STATES", "TimerSource", "badge_of", "handle", "message_json", "messages_json",
           "parse_search"]

JSON = "application/json"
HTML = "text/html; charset=utf-8"
Answer = tuple[int, str, bytes, dict[str, str]]
HERE = os.path.dirname(os.path.abspath(__file__))

# The list's badge: the most telling event of any recipient, most telling first. A spam report
# hurts the sender's reputation most and suppresses the address; an unsubscribe is the recipient
# saying no; a bounce or drop means the mail never arrived; a click says more than an open, and
# either more than "delivered" (which both imply); "deferred" only until the delivery comes. With
# no event yet the badge is "queued". One bounced recipient of three shows "bounce".
BADGE_RANK = ("spamreport", "unsubscribe", "bounce", "dropped", "click", "open", "delivered", "deferred")
# What the state filter takes: every event name, and `queued` (no delivery outcome yet).
STATES = ("queued", "delivered", "deferred", "bounce", "dropped", "open", "click", "spamreport", "unsubscribe")
DELIVERY_OUTCOMES = ("delivered", "bounce", "dropped", "deferred")
# Words a person types for a state (`is:bounced`, `is:spam`), to the event names.
STATE_ALIASES = {"bounced": "bounce", "opened": "open", "clicked": "click", "spam": "spamreport",
                 "complaint": "spamreport", "unsubscribed": "unsubscribe", "sent": "delivered"}
LIST_PARAMS = ("limit", "offset", "q", "to", "subject", "from", "state", "since")
MAX_LIMIT = 1000
MAX_INDEX = 10**12  # offsets and Ids: far above any local store, far below SQLite's integer range
MAX_TERMS = 20  # each term is a few SQL parameters; old SQLite builds allow 999 per statement

# The page is this origin's script and style only: no inline script, no inline style, no plugin.
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
ASSETS = {"page.js": ("mailpage.js", "text/javascript; charset=utf-8"),
          "page.css": ("mailpage.css", "text/css; charset=utf-8")}

# The events endpoint's fields, by lower-cased name (`kind` is what people type into curl).
EVENT_FIELDS = {"event": "Event", "kind": "Event", "email": "Email", "link": "Link"}
EVENT_USAGE = ('send JSON {"Event": "open", "Email": "<a recipient>", "Link": "<url>"} (Email and Link optional) '
               "or the same as form fields, e.g. curl -d Event=open (kind= also names the event)")


class TimerSource(Protocol):
    """What the local stack plugs in so timers can be listed and fired through `/_local/timers`."""

    def timers(self) -> list[dict[str, Any]]: ...

    def fire(self, name: str) -> dict[str, Any]: ...


class Refusal(Exception):
    """A request the API answers with a 4xx and a message naming the field and the rule."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _json(status: int, body: Any, headers: Optional[dict[str, str]] = None) -> Answer:
    return status, JSON, json.dumps(body, ensure_ascii=False).encode("utf-8"), dict(
        {"X-Content-Type-Options": "nosniff"}, **(headers or {}))


def _error(status: int, code: str, message: str) -> Answer:
    return _json(status, {"Error": {"Code": code, "Message": message}})


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- JSON views -----------------------------------------------------------------------------

def _events_of(account: Account, message_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    now = account.settings.clock()
    out: dict[str, list[dict[str, Any]]] = {m: [] for m in message_ids}
    for row in account.store.events(message_ids):
        if row["due"] > now:
            continue  # not happened yet (a deferred mail's later delivery)
        payload = json.loads(row["payload"])
        out[row["message_id"]].append({
            "Event": row["event"], "Email": row["email"], "Timestamp": int(row["due"]),
            "Reason": payload.get("reason", ""), "BounceType": payload.get("bounceType", ""),
            "Link": payload.get("link", ""), "Callback": row["callback"], "Attempts": row["attempts"],
            "CallbackError": row["last_error"], "Payload": payload})
    return out


def badge_of(events: list[dict[str, Any]]) -> str:
    """The most telling event name among `events` (BADGE_RANK), or `queued`."""
    names = {e["Event"] for e in events}
    return next((name for name in BADGE_RANK if name in names), "queued")


def _summary(row: Any, events: list[dict[str, Any]]) -> dict[str, Any]:
    source = json.loads(row["source"])
    finals = [e["Event"] for e in events if e["Event"] in DELIVERY_OUTCOMES]
    return {
        "Id": row["id"], "MessageId": row["message_id"], "Action": row["action"], "TaskId": row["task_id"],
        "From": source.get("From"), "To": source.get("To", []), "Cc": source.get("Cc", []),
        "Bcc": source.get("Bcc", []), "ReplyTo": source.get("ReplyTo"), "Subject": row["subject"],
        "Date": _iso(row["request_time"]), "RequestTime": int(row["request_time"]),
        "TemplateID": row["template_id"], "TemplateName": source.get("TemplateName"),
        "TemplateData": source.get("TemplateData"), "State": finals[-1] if finals else "queued",
        "Badge": badge_of(events), "Events": events,
    }


def messages_json(account: Account, limit: int = 50, offset: int = 0,
                  search: Optional[dict[str, list[str]]] = None, since: int = 0) -> dict[str, Any]:
    """The list the page and `GET /_local/messages` show; `search` as parse_search returns it."""
    terms = search or {}
    states = terms.get("state", [])
    now = account.settings.clock()
    total, rows = account.store.search_messages(
        now, words=terms.get("words", []), to=terms.get("to", []), subject=terms.get("subject", []),
        sender=terms.get("from", []), events_all=[s for s in states if s != "queued"],
        events_none=DELIVERY_OUTCOMES if "queued" in states else (), since_id=since, limit=limit, offset=offset)
    events = _events_of(account, [r["message_id"] for r in rows])
    return {"Messages": [_summary(r, events[r["message_id"]]) for r in rows], "Total": total,
            "Cursor": account.store.newest_id(), "Version": account.store.version_at(now)}


def message_json(account: Account, key: str) -> Optional[dict[str, Any]]:
    row = account.store.message(key)
    if row is None:
        return None
    out = _summary(row, _events_of(account, [row["message_id"]])[row["message_id"]])
    parsed = rendering.parse_mime(account.mime(row))
    base = f"/_local/messages/{row['id']}"
    out.update(Headers=parsed["Headers"], Text=parsed["Text"], Html=parsed["Html"], Raw=base + "/raw",
               Attachments=[{"FileName": a["FileName"], "ContentType": a["ContentType"], "Size": a["Size"],
                             "Url": f"{base}/attachments/{i}"} for i, a in enumerate(parsed["Attachments"])])
    return out


def templates_json(account: Account) -> dict[str, Any]:
    rows = account.store.templates()
    return {"Templates": [
        {"TemplateID": r["id"], "TemplateName": r["name"], "TemplateStatus": account.template_status(r),
         "Origin": r["origin"], "Variables": rendering.variables(r["html"], r["text"]),
         "HasHtml": bool(r["html"]), "HasText": bool(r["text"])} for r in rows]}


# ---- search -----------------------------------------------------------------------------------------

_TOKEN = re.compile(r'(?:(to|subject|from|is|state):)?(?:"([^"]*)"?|(\S+))', re.IGNORECASE)


def _state(value: str, field: str) -> str:
    name = STATE_ALIASES.get(value.lower(), value.lower())
    if name not in STATES:
        raise Refusal(400, "InvalidParameterValue", f"`{field}` must be one of {', '.join(STATES)}")
    return name


def parse_search(q: str = "", **fields: str) -> dict[str, list[str]]:
    """Search terms by field (words, to, subject, from, state) from a Mailpit-like query
    (`ada to:example.com is:bounced "order 1001"`) plus single fields (`to=`, `subject=`, ...)."""
    terms: dict[str, list[str]] = {"words": [], "to": [], "subject": [], "from": [], "state": []}
    for match in _TOKEN.finditer(q):
        prefix, quoted, bare = match.group(1), match.group(2), match.group(3)
        value = (quoted if quoted is not None else bare or "").strip()
        if not value:
            continue
        field = (prefix or "words").lower()
        if field in ("is", "state"):
            terms["state"].append(_state(value, "q"))
        else:
            terms[field].append(value)
    for field, value in fields.items():
        if value.strip():
            terms[field].append(_state(value.strip(), field) if field == "state" else value.strip())
    if sum(len(values) for values in terms.values()) > MAX_TERMS:
        raise Refusal(400, "InvalidParameterValue", f"a search takes at most {MAX_TERMS} terms")
    return terms


def _whole(args: dict[str, str], name: str, default: int, top: int) -> int:
    text = args.get(name, "").strip()
    if not text:
        return default
    if not (text.isascii() and text.isdigit()) or int(text) > top:
        raise Refusal(400, "InvalidParameterValue", f"`{name}` must be a whole number from 0 to {top}")
    return int(text)


def _list(account: Account, args: dict[str, str]) -> Answer:
    unknown = sorted(set(args) - set(LIST_PARAMS))
    if unknown:
        raise Refusal(400, "UnknownParameter", f"unknown parameter `{unknown[0][:40]}`; this list takes "
                      + ", ".join(LIST_PARAMS))
    search = parse_search(args.get("q", ""), to=args.get("to", ""), subject=args.get("subject", ""),
                          **{"from": args.get("from", "")}, state=args.get("state", ""))
    return _json(200, messages_json(account, _whole(args, "limit", 50, MAX_LIMIT), _whole(args, "offset", 0, MAX_INDEX),
                                    search, _whole(args, "since", 0, MAX_INDEX)), {"Cache-Control": "no-store"})


# ---- routing ------------------------------------------------------------------------------------

def handle(account: Account, chaos: Chaos, timers: Optional[TimerSource], method: str, path: str, query: str,
           headers: Any, body: bytes) -> Answer:
    """The page, its assets and the `/_local` API: (status, Content-Type, body, extra headers)."""
    args = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    parts = [p for p in path.split("/") if p]
    try:
        if method in ("GET", "HEAD") and not parts:
            return 200, HTML, _asset("mailpage.html"), {
                "Cache-Control": "no-store", "Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer"}
        if method == "GET" and parts == ["favicon.ico"]:
            return 204, "image/x-icon", b"", {}
        if parts[:1] != ["_local"]:
            return _error(404, "ResourceNotFound", "no such page")
        if method not in ("GET", "HEAD") and _cross_origin(headers):
            return _error(403, "UnauthorizedOperation", "requests that change mail must come from this "
                          "page's own origin or from a tool that sends no Origin header (curl, scripts)")
        if method in ("GET", "HEAD") and len(parts) == 2 and parts[1] in ASSETS:
            name, ctype = ASSETS[parts[1]]
            return 200, ctype, _asset(name), {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
        return _local(account, chaos, timers, method, parts[1:], args, headers, body)
    except Refusal as exc:
        return _error(exc.status, exc.code, exc.message)
    except ValueError as exc:
        return _error(400, "InvalidParameter", str(exc))


def _asset(name: str) -> bytes:
    """A page file, read on each request so an edit shows on the next reload."""
    with open(os.path.join(HERE, name), "rb") as handle:
        return handle.read()


def _cross_origin(headers: Any) -> bool:
    """True for a browser request sent by a page of another origin (what a CSRF is)."""
    if (headers.get("Sec-Fetch-Site") or "").lower() in ("cross-site", "same-site"):
        return True
    origin = headers.get("Origin")
    if origin is None:
        return False  # curl, scripts, SDKs; and browsers on same-origin GETs
    return origin == "null" or urlsplit(origin).netloc.lower() != (headers.get("Host") or "").lower()


def _local(account: Account, chaos: Chaos, timers: Optional[TimerSource], method: str, parts: list[str],
           args: dict[str, str], headers: Any, body: bytes) -> Answer:
    if parts == ["health"]:
        return _json(200, {"Status": "ok"})
    if parts == ["messages"]:
        if method == "DELETE":
            count = account.store.message_count()
            account.store.clear_mail()
            return _json(200, {"Deleted": count})
        if method in ("GET", "HEAD"):
            return _list(account, args)
        return _error(405, "UnsupportedOperation", "/_local/messages takes GET (the list) or DELETE (clear all)")
    if parts[:1] == ["messages"] and len(parts) >= 2:
        return _message_route(account, method, parts[1], parts[2:], headers, body)
    if parts == ["templates"]:
        return _json(200, templates_json(account))
    if parts == ["chaos"]:
        if method == "POST":
            chaos.set(_chaos_spec(headers, body))
        elif method == "DELETE":
            chaos.set("")
        return _json(200, chaos.describe())
    if parts[:1] == ["timers"]:
        if timers is None:
            return _error(404, "ResourceNotFound", "no timers: this emulator runs without the local stack")
        if len(parts) == 1:
            return _json(200, {"Timers": timers.timers()})
        if method == "POST" and len(parts) == 2:
            try:
                return _json(200, timers.fire(parts[1]))
            except KeyError:
                return _error(404, "ResourceNotFound", f"no timer named {parts[1]!r}")
    return _error(404, "ResourceNotFound", "no such route")


def _chaos_spec(headers: Any, body: bytes) -> str:
    text = body.decode("utf-8")
    if "json" in (headers.get("Content-Type") or "") or text.lstrip().startswith("{"):
        parsed = json.loads(text or "{}")
        if not isinstance(parsed, dict) or not isinstance(parsed.get("Chaos", ""), str):
            raise ValueError('expected {"Chaos": "<spec>"}')
        return str(parsed.get("Chaos", ""))
    return text


def _event_fields(headers: Any, body: bytes) -> dict[str, str]:
    """Event, Email and Link from a JSON body or form fields (what `curl -d` sends), by name."""
    ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Refusal(400, "InvalidParameter", "the body is not UTF-8; " + EVENT_USAGE) from None
    items: list[tuple[str, Any]]
    if "json" in ctype or text.lstrip().startswith(("{", "[")):  # `curl -d '{...}'` says it is a form
        try:
            parsed = json.loads(text or "{}")
        except ValueError:
            raise Refusal(400, "InvalidParameter", "the body is not valid JSON; " + EVENT_USAGE) from None
        if not isinstance(parsed, dict):
            raise Refusal(400, "InvalidParameter", "the JSON body must be an object; " + EVENT_USAGE)
        items = list(parsed.items())
    elif ctype in ("", "application/x-www-form-urlencoded", "text/plain"):
        items = parse_qsl(text.strip(), keep_blank_values=True)
    else:
        raise Refusal(400, "InvalidParameter", "the body must be application/json or "
                      "application/x-www-form-urlencoded; " + EVENT_USAGE)
    fields: dict[str, str] = {}
    for key, value in items:
        name = EVENT_FIELDS.get(str(key).lower())
        if name is not None and value is None:
            continue  # JSON null: as if absent
        if name is None:
            raise Refusal(400, "UnknownParameter", f"unknown field `{str(key)[:40]}`; " + EVENT_USAGE)
        if not isinstance(value, str):
            raise Refusal(400, "InvalidParameterValue", f"`{name}` must be a string; " + EVENT_USAGE)
        if name in fields and fields[name] != value:
            raise Refusal(400, "InvalidParameter", f"`{name}` is given twice with different values")
        fields[name] = value.strip()
    if not fields.get("Event"):
        raise Refusal(400, "MissingParameter", "`Event` is required, one of "
                      + ", ".join(delivery.SIMULATED) + "; " + EVENT_USAGE)
    if fields["Event"] not in delivery.SIMULATED:
        raise Refusal(400, "InvalidParameterValue", "`Event` must be one of " + ", ".join(delivery.SIMULATED))
    return fields


def _one_click(account: Account, row: Any) -> Answer:
    """What a mailbox provider does when its reader presses "Unsubscribe" (RFC 8058): POST the
    https (here: loopback http) URL of the mail's List-Unsubscribe header with the body
    `List-Unsubscribe=One-Click`, from the server, following no redirect (docs/topics.md)."""
    import urllib.error
    import urllib.request

    headers = {name.lower(): value for name, value in rendering.parse_mime(account.mime(row))["Headers"]}
    url = next((part.strip() for part in re.findall(r"<([^<>]+)>", headers.get("list-unsubscribe", ""))
                if urlsplit(part.strip()).scheme in ("http", "https")), None)
    if not url or headers.get("list-unsubscribe-post", "").strip() != "List-Unsubscribe=One-Click":
        return _error(400, "InvalidParameterValue", "this mail has no one-click List-Unsubscribe (RFC 8058)")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    request = urllib.request.Request(url, data=b"List-Unsubscribe=One-Click", method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=10) as reply:
            status = reply.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        return _error(502, "ResourceUnavailable", f"the unsubscribe URL did not answer: {type(exc).__name__}")
    return _json(200, {"Status": status})


def _message_route(account: Account, method: str, key: str, rest: list[str], headers: Any, body: bytes) -> Answer:
    row = account.store.message(key)
    if row is None:
        return _error(404, "ResourceNotFound", "no such mail (the list is GET /_local/messages)")
    if not rest and method in ("GET", "HEAD"):
        return _json(200, message_json(account, str(row["id"])))
    if rest == ["raw"]:
        return 200, "message/rfc822", account.mime(row), {
            "Content-Disposition": f'attachment; filename="{row["message_id"]}.eml"'}
    if rest == ["html"]:
        parsed = rendering.parse_mime(account.mime(row))
        # The mail's own HTML, isolated: no scripts, no same-origin access to the page or the API.
        return 200, HTML, (parsed["Html"] or "<p><i>This mail has no HTML part.</i></p>").encode("utf-8"), {
            "Content-Security-Policy": "sandbox; default-src 'none'; img-src data: http: https:; "
                                       "style-src 'unsafe-inline'"}
    if len(rest) == 2 and rest[0] == "attachments" and rest[1].isdigit():
        attachments = rendering.parse_mime(account.mime(row))["Attachments"]
        index = int(rest[1])
        if index >= len(attachments):
            return _error(404, "ResourceNotFound", "no such attachment")
        item = attachments[index]
        # A download, never a page of this origin, whatever type the sender claimed.
        return 200, item["ContentType"], item["Content"], {
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(item['FileName'])}",
            "Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff"}
    if rest == ["one-click"] and method == "POST":
        return _one_click(account, row)
    if rest == ["events"]:
        if method != "POST":
            return _error(405, "UnsupportedOperation", "events are simulated with POST; " + EVENT_USAGE)
        fields = _event_fields(headers, body)
        try:
            payload = account.simulate(str(row["id"]), fields["Event"], fields.get("Email") or None,
                                   fields.get("Link") or None)
        except ValueError:  # the kind was checked: the address is not one of this mail's recipients
            return _error(400, "InvalidParameterValue", "`Email` must be a recipient of this mail (To, Cc or Bcc)")
        return _json(200, {"Event": payload})
    return _error(405 if not rest else 404, "UnsupportedOperation" if not rest else "ResourceNotFound",
                  "no such route")
