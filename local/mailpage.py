"""The mail page (`GET /` on the emulator) and the `/_local` JSON API beside it.

The page is server-rendered HTML with plain forms for its buttons and a few lines of vanilla JS
that reload it when a mail or an event arrives: no framework, nothing fetched from a CDN, so it
works offline. A mail's HTML part is shown in a sandboxed iframe served with a CSP `sandbox`
header, so a template's scripts never run in the page.

JSON API (PascalCase, as SES's own JSON):
  GET    /_local/messages[?limit=50&offset=0]   newest first: {"Messages": [...], "Total", "Version"}
  GET    /_local/messages/<id>                  one mail (<id>: page Id, MessageId, or `latest`)
  GET    /_local/messages/<id>/raw              the .eml; /html the HTML part; /attachments/<n>
  POST   /_local/messages/<id>/events           {"Event": "open"|"click"|"bounce"|"softbounce"|
                                                 "complaint"|"unsubscribe"|..., "Email"?, "Link"?}
  DELETE /_local/messages                       forget every mail and event
  GET    /_local/templates                      loaded templates with IDs, status and variables
  GET|POST|DELETE /_local/chaos                 random faults ({"Chaos": "<spec>"}, see local.chaos)
  GET    /_local/timers, POST /_local/timers/<TriggerName>   list timers, fire one now
  GET    /_local/health                         {"Status": "ok"}
"""

from __future__ import annotations

import html
import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import parse_qs, quote

from . import rendering

if TYPE_CHECKING:
    from .ses_emulator import SesEmulator

__all__ = ["handle", "message_json", "messages_json"]

JSON = "application/json"
HTML = "text/html; charset=utf-8"
Answer = tuple[int, str, bytes, dict[str, str]]


def _json(status: int, body: Any, headers: Optional[dict[str, str]] = None) -> Answer:
    return status, JSON, json.dumps(body, ensure_ascii=False).encode("utf-8"), headers or {}


def _error(status: int, code: str, message: str) -> Answer:
    return _json(status, {"Error": {"Code": code, "Message": message}})


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- JSON views -----------------------------------------------------------------------------

def _events_of(emu: SesEmulator, message_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    now = emu.clock()
    out: dict[str, list[dict[str, Any]]] = {m: [] for m in message_ids}
    for row in emu.store.events(message_ids):
        if row["due"] > now:
            continue  # not happened yet (a deferred mail's later delivery)
        payload = json.loads(row["payload"])
        out[row["message_id"]].append({
            "Event": row["event"], "Email": row["email"], "Timestamp": int(row["due"]),
            "Reason": payload.get("reason", ""), "BounceType": payload.get("bounceType", ""),
            "Link": payload.get("link", ""), "Callback": row["callback"], "Attempts": row["attempts"],
            "CallbackError": row["last_error"], "Payload": payload})
    return out


def _summary(row: Any, events: list[dict[str, Any]]) -> dict[str, Any]:
    source = json.loads(row["source"])
    finals = [e["Event"] for e in events if e["Event"] in ("delivered", "bounce", "dropped", "deferred")]
    return {
        "Id": row["id"], "MessageId": row["message_id"], "Action": row["action"], "TaskId": row["task_id"],
        "From": source.get("From"), "To": source.get("To", []), "Cc": source.get("Cc", []),
        "Bcc": source.get("Bcc", []), "ReplyTo": source.get("ReplyTo"), "Subject": row["subject"],
        "Date": _iso(row["request_time"]), "RequestTime": int(row["request_time"]),
        "TemplateID": row["template_id"], "TemplateName": source.get("TemplateName"),
        "TemplateData": source.get("TemplateData"), "State": finals[-1] if finals else "queued",
        "Events": events,
    }


def messages_json(emu: SesEmulator, limit: int = 50, offset: int = 0) -> dict[str, Any]:
    rows = emu.store.messages(limit, offset)
    events = _events_of(emu, [r["message_id"] for r in rows])
    return {"Messages": [_summary(r, events[r["message_id"]]) for r in rows], "Total": emu.store.message_count(),
            "Version": emu.store.version()}


def message_json(emu: SesEmulator, key: str) -> Optional[dict[str, Any]]:
    row = emu.store.message(key)
    if row is None:
        return None
    out = _summary(row, _events_of(emu, [row["message_id"]])[row["message_id"]])
    parsed = rendering.parse_mime(emu.mime(row))
    base = f"/_local/messages/{row['id']}"
    out.update(Headers=parsed["Headers"], Text=parsed["Text"], Html=parsed["Html"], Raw=base + "/raw",
               Attachments=[{"FileName": a["FileName"], "ContentType": a["ContentType"], "Size": a["Size"],
                             "Url": f"{base}/attachments/{i}"} for i, a in enumerate(parsed["Attachments"])])
    return out


def templates_json(emu: SesEmulator) -> dict[str, Any]:
    rows = emu.store.templates()
    return {"Templates": [
        {"TemplateID": r["id"], "TemplateName": r["name"], "TemplateStatus": emu._actions.template_status(r),
         "Origin": r["origin"], "Variables": rendering.variables(r["html"], r["text"]),
         "HasHtml": bool(r["html"]), "HasText": bool(r["text"])} for r in rows]}


# ---- routing ------------------------------------------------------------------------------------

def handle(emu: SesEmulator, method: str, path: str, query: str, headers: Any, body: bytes) -> Answer:
    args = {k: v[-1] for k, v in parse_qs(query).items()}
    parts = [p for p in path.split("/") if p]
    try:
        if method in ("GET", "HEAD") and not parts:
            return 200, HTML, page(emu, args.get("id")).encode("utf-8"), {"Cache-Control": "no-store"}
        if method == "GET" and parts == ["favicon.ico"]:
            return 204, "image/x-icon", b"", {}
        if parts[:1] != ["_local"]:
            return _error(404, "ResourceNotFound", "no such page")
        return _local(emu, method, parts[1:], args, headers, body)
    except ValueError as exc:
        return _error(400, "InvalidParameter", str(exc))


def _local(emu: SesEmulator, method: str, parts: list[str], args: dict[str, str], headers: Any,
           body: bytes) -> Answer:
    if parts == ["health"]:
        return _json(200, {"Status": "ok"})
    if parts == ["messages"]:
        if method == "DELETE":
            count = emu.store.message_count()
            emu.store.clear_mail()
            return _json(200, {"Deleted": count})
        return _json(200, messages_json(emu, int(args.get("limit", 50)), int(args.get("offset", 0))))
    if parts[:1] == ["messages"] and len(parts) >= 2:
        return _message_route(emu, method, parts[1], parts[2:], headers, body)
    if parts == ["templates"]:
        return _json(200, templates_json(emu))
    if parts == ["chaos"]:
        if method == "POST":
            spec = _chaos_spec(headers, body)
            emu.set_chaos(spec)
        elif method == "DELETE":
            emu.set_chaos("")
        return _json(200, emu.chaos.describe())
    if parts[:1] == ["timers"]:
        if emu.timer_source is None:
            return _error(404, "ResourceNotFound", "no timers: this emulator runs without the local stack")
        if len(parts) == 1:
            return _json(200, {"Timers": emu.timer_source.timers()})
        if method == "POST" and len(parts) == 2:
            try:
                return _json(200, emu.timer_source.fire(parts[1]))
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


def _message_route(emu: SesEmulator, method: str, key: str, rest: list[str], headers: Any, body: bytes) -> Answer:
    row = emu.store.message(key)
    if row is None:
        return _error(404, "ResourceNotFound", f"no mail {key!r}")
    if not rest and method in ("GET", "HEAD"):
        return _json(200, message_json(emu, str(row["id"])))
    if rest == ["raw"]:
        return 200, "message/rfc822", emu.mime(row), {
            "Content-Disposition": f'attachment; filename="{row["message_id"]}.eml"'}
    if rest == ["html"]:
        parsed = rendering.parse_mime(emu.mime(row))
        # The mail's own HTML, isolated: no scripts, no same-origin access to the page or the API.
        return 200, HTML, (parsed["Html"] or "<p><i>This mail has no HTML part.</i></p>").encode("utf-8"), {
            "Content-Security-Policy": "sandbox; default-src 'none'; img-src data: http: https:; "
                                       "style-src 'unsafe-inline'"}
    if len(rest) == 2 and rest[0] == "attachments" and rest[1].isdigit():
        attachments = rendering.parse_mime(emu.mime(row))["Attachments"]
        index = int(rest[1])
        if index >= len(attachments):
            return _error(404, "ResourceNotFound", "no such attachment")
        item = attachments[index]
        return 200, item["ContentType"], item["Content"], {
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(item['FileName'])}"}
    if rest == ["events"] and method == "POST":
        form = "application/x-www-form-urlencoded" in (headers.get("Content-Type") or "")
        if form:
            fields = {k: v[-1] for k, v in parse_qs(body.decode("utf-8")).items()}
        else:
            fields = json.loads(body or b"{}")
            if not isinstance(fields, dict):
                raise ValueError('expected {"Event": "...", "Email"?: "...", "Link"?: "..."}')
        try:
            payload = emu.simulate(str(row["id"]), str(fields.get("Event", "")), fields.get("Email") or None,
                                   fields.get("Link") or None)
        except ValueError as exc:
            if form:
                raise
            return _error(400, "InvalidParameterValue", str(exc))
        if form:  # the page's buttons: back to the mail, which now shows the event
            return 303, HTML, b"", {"Location": f"/?id={row['id']}"}
        return _json(200, {"Event": payload})
    return _error(405 if not rest else 404, "UnsupportedOperation" if not rest else "ResourceNotFound",
                  "no such route")


# ---- the page ----------------------------------------------------------------------------------------

STYLE = """
*{box-sizing:border-box}body{margin:0;font:14px/1.4 system-ui,sans-serif;color:#1d2330;background:#f3f5f8}
header{display:flex;align-items:center;gap:16px;padding:10px 18px;background:#1d2330;color:#fff}
header h1{font-size:16px;margin:0}header .info{opacity:.75;font-size:12px;flex:1}
header button{background:#fff;border:0;border-radius:4px;padding:5px 10px;cursor:pointer}
main{display:flex;height:calc(100vh - 48px)}
nav{width:360px;overflow:auto;border-right:1px solid #d6dbe3;background:#fff}
nav a{display:block;padding:9px 14px;border-bottom:1px solid #eef0f4;color:inherit;text-decoration:none}
nav a.sel{background:#e7efff}nav a:hover{background:#f3f6fb}
nav .subj{font-weight:600;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
nav .meta{font-size:12px;color:#5b6477;display:flex;justify-content:space-between;gap:8px}
.badge{display:inline-block;padding:0 6px;border-radius:8px;font-size:11px;background:#e3e6ec}
.delivered{background:#d8f3dc}.bounce,.dropped,.spamreport{background:#ffd9d9}.deferred,.queued{background:#fff1c7}
.open,.click,.unsubscribe{background:#dde8ff}
section{flex:1;overflow:auto;padding:16px 22px}section h2{margin:0 0 8px;font-size:18px}
table{border-collapse:collapse;width:100%;margin:6px 0 14px;background:#fff}
td,th{border:1px solid #e3e6ec;padding:4px 8px;text-align:left;vertical-align:top;font-size:13px}
th{background:#f7f8fa;width:140px}iframe{width:100%;height:420px;border:1px solid #d6dbe3;background:#fff}
pre{background:#fff;border:1px solid #e3e6ec;padding:10px;white-space:pre-wrap;margin:6px 0 14px}
.actions{display:flex;gap:6px;align-items:center;flex-wrap:wrap;margin:8px 0 14px}
.actions button{padding:5px 12px;border:1px solid #b9c1cf;border-radius:4px;background:#fff;cursor:pointer}
.actions button:hover{background:#eef2f9}h3{margin:14px 0 4px;font-size:14px}.empty{padding:40px;color:#5b6477}
"""

SCRIPT = """
(function(){var version=%s;setInterval(function(){fetch('/_local/messages?limit=1').then(function(r){
return r.json()}).then(function(d){if(d.Version!==version){location.reload()}}).catch(function(){})},1500)})();
function clearAll(){fetch('/_local/messages',{method:'DELETE'}).then(function(){location.href='/'})}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def page(emu: SesEmulator, selected: Optional[str]) -> str:
    listing = messages_json(emu, 200)
    items = listing["Messages"]
    current = message_json(emu, selected) if selected else (message_json(emu, "latest") if items else None)
    nav = []
    for item in items:
        chosen = current is not None and item["Id"] == current["Id"]
        to = ", ".join(item["To"] or item["Cc"] or item["Bcc"])
        nav.append(f'<a href="/?id={item["Id"]}" class="{"sel" if chosen else ""}" data-id="{item["Id"]}">'
                   f'<div class="subj">{_e(item["Subject"])}</div><div class="meta"><span>{_e(to)}</span>'
                   f'<span class="badge {_e(item["State"])}">{_e(item["State"])}</span></div>'
                   f'<div class="meta"><span>{_e(item["Date"])}</span><span>{len(item["Events"])} events</span>'
                   f'</div></a>')
    total = f'{listing["Total"]} mail{"" if listing["Total"] == 1 else "s"}'
    detail = _detail(current) if current else '<div class="empty">No mail yet. Send one through the gateway.</div>'
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>sesmail local mail</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>'
            f'<body><header><h1>sesmail · local mail</h1><span class="info">{total} · SES emulator '
            f'{_e(emu.url)} · nothing here leaves this machine</span>'
            f'<button type="button" onclick="clearAll()">Clear all</button></header>'
            f'<main><nav id="messages">{"".join(nav)}</nav><section id="message">{detail}</section></main>'
            f'<script>{SCRIPT % json.dumps(listing["Version"])}</script></body></html>')


def _detail(m: dict[str, Any]) -> str:
    def row(name: str, value: Any) -> str:
        return f"<tr><th>{_e(name)}</th><td>{_e(value)}</td></tr>" if value not in (None, "", []) else ""

    recipients = m["To"] + m["Cc"] + m["Bcc"]
    options = "".join(f'<option value="{_e(r)}">{_e(r)}</option>' for r in recipients)
    buttons = "".join(f'<button type="submit" name="Event" value="{kind}">{label}</button>'
                      for kind, label in (("open", "Open"), ("click", "Click"), ("bounce", "Bounce"),
                                          ("softbounce", "Soft bounce"), ("complaint", "Complaint"),
                                          ("unsubscribe", "Unsubscribe")))
    events = "".join(
        f'<tr><td>{_e(_iso(e["Timestamp"]))}</td><td><span class="badge {_e(e["Event"])}">{_e(e["Event"])}</span>'
        f'</td><td>{_e(e["Email"])}</td><td>{_e(e["BounceType"] or e["Link"] or e["Reason"])}</td>'
        f'<td>{_e(e["Callback"])}{" · " + _e(e["CallbackError"]) if e["CallbackError"] else ""}</td></tr>'
        for e in m["Events"])
    headers = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in m["Headers"])
    attachments = "".join(f'<li><a href="{_e(a["Url"])}">{_e(a["FileName"])}</a> ({_e(a["ContentType"])}, '
                          f'{a["Size"]} bytes)</li>' for a in m["Attachments"])
    template = f'{m["TemplateID"]} ({m["TemplateName"]})' if m["TemplateName"] else m["TemplateID"]
    return (f'<h2 id="subject">{_e(m["Subject"])}</h2><table>'
            f'{row("From", m["From"])}{row("To", ", ".join(m["To"]))}{row("Cc", ", ".join(m["Cc"]))}'
            f'{row("Bcc", ", ".join(m["Bcc"]))}{row("Reply-To", m["ReplyTo"])}{row("Date", m["Date"])}'
            f'{row("MessageId", m["MessageId"])}{row("TaskId", m["TaskId"])}{row("Template", template)}'
            f'{row("TemplateData", json.dumps(m["TemplateData"], ensure_ascii=False))}</table>'
            f'<form class="actions" method="post" action="/_local/messages/{m["Id"]}/events">'
            f'<span>Simulate for</span><select name="Email">{options}</select>{buttons}</form>'
            f'<h3>Events</h3><table id="events"><tr><th>Time (UTC)</th><th>Event</th><th>Recipient</th>'
            f'<th>Detail</th><th>Callback</th></tr>{events}</table>'
            f'<h3>HTML</h3><iframe sandbox title="HTML part" src="/_local/messages/{m["Id"]}/html"></iframe>'
            f'<h3>Text</h3><pre>{_e(m["Text"])}</pre>'
            f'<h3>Attachments</h3>{"<ul>" + attachments + "</ul>" if attachments else "<p>none</p>"}'
            f'<h3>Headers <a href="{_e(m["Raw"])}">(download .eml)</a></h3><table>{headers}</table>')
