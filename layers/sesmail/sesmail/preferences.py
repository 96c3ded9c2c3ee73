"""The readers' routes of the webhook function: one-click unsubscribe (RFC 8058) and the
preference page (docs/topics.md).

No API key: the token in `?t=` is the authority (sesmail.topics). `POST /unsubscribe` is what a
mailbox provider sends when its reader presses "unsubscribe" (RFC 8058: the body
`List-Unsubscribe=One-Click`, url-encoded or multipart/form-data; answered 200, never redirected).
`GET /preferences` (and `GET /unsubscribe`, which some clients open instead of posting) shows the
page; it never changes anything, because mail scanners fetch every link. `POST /preferences`
saves the page's form. A page is plain HTML with one inline style allowed by its hash: it works
without JavaScript.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import log, topics
from .addresses import address_hash
from .errors import Forbidden, InvalidInput, NotFound, SesmailError
from .http import Call, Response

__all__ = ["one_click", "page", "save"]

MAX_FORM_BYTES = 16 * 1024

_STYLE = """
:root{color-scheme:light;font-family:system-ui,-apple-system,"Segoe UI","PingFang SC","Microsoft YaHei",sans-serif}
body{margin:0;background:#f6f7f9;color:#1a1a1a;line-height:1.5}
main{max-width:36rem;margin:0 auto;padding:1.5rem 1rem 3rem}
h1{font-size:1.5rem;margin:0 0 .5rem}
.card{background:#fff;border:1px solid #c9ced6;border-radius:.5rem;padding:1rem;margin:1rem 0}
fieldset{border:0;margin:0;padding:0}
legend{font-weight:600;font-size:1.1rem;margin-bottom:.5rem;padding:0}
.choice{display:flex;gap:.75rem;align-items:flex-start;padding:.6rem 0;border-top:1px solid #e3e6ea}
.choice:first-of-type{border-top:0}
input[type=checkbox]{width:1.4rem;height:1.4rem;margin:.1rem 0 0;flex:none;accent-color:#0b57d0}
label{font-weight:500;cursor:pointer}
.state,.hint{display:block;color:#4a4f57;font-weight:400;font-size:.95rem}
button{font:inherit;font-weight:600;border-radius:.4rem;padding:.7rem 1.1rem;cursor:pointer;min-height:44px}
.primary{background:#0b57d0;color:#fff;border:2px solid #0b57d0}
.secondary{background:#fff;color:#0b3d91;border:2px solid #0b3d91}
:focus-visible{outline:3px solid #b3261e;outline-offset:2px}
.status{background:#e6f4ea;border:1px solid #1e7b34;color:#0d3d1a;padding:.75rem 1rem;border-radius:.4rem}
.error{background:#fdecea;border-color:#b3261e;color:#5c1410}
"""
_CSP_STYLE = "'sha256-" + base64.b64encode(hashlib.sha256(_STYLE.encode("utf-8")).digest()).decode("ascii") + "'"

TEXT = {
    "en": {
        "title": "Email preferences",
        "intro": "Choose which emails {address} receives from us.",
        "topics": "Topics",
        "subscribed": "Subscribed",
        "unsubscribed": "Unsubscribed",
        "all": "Unsubscribe from all marketing mail",
        "all_hint": "Service messages, such as receipts and password resets, still arrive.",
        "save": "Save preferences",
        "saved": "Your preferences are saved.",
        "quick": "Unsubscribe from “{topic}”",
        "quick_all": "Unsubscribe from all marketing mail",
        "quick_done": "You are unsubscribed from “{topic}”.",
        "quick_all_done": "You are unsubscribed from all marketing mail.",
        "invalid_title": "This link does not work",
        "invalid": "This link is not valid. Please use the link in the most recent email you received from us.",
        "none": "There are no topics to choose from.",
    },
    "zh": {
        "title": "邮件订阅设置",
        "intro": "选择 {address} 接收我们的哪些邮件。",
        "topics": "主题",
        "subscribed": "已订阅",
        "unsubscribed": "已退订",
        "all": "退订所有营销邮件",
        "all_hint": "收据、密码重置等服务类邮件仍会照常发送。",
        "save": "保存设置",
        "saved": "您的设置已保存。",
        "quick": "退订“{topic}”",
        "quick_all": "退订所有营销邮件",
        "quick_done": "您已退订“{topic}”。",
        "quick_all_done": "您已退订所有营销邮件。",
        "invalid_title": "此链接无法使用",
        "invalid": "此链接无效。请使用您最近收到的邮件中的链接。",
        "none": "目前没有可选择的主题。",
    },
}
_LANGUAGE = re.compile(r"\s*([A-Za-z]{1,8})(?:-[A-Za-z0-9]{1,8})*\s*(?:;\s*q\s*=\s*([0-9.]{1,5}))?\s*")


def language(accept: str | None) -> str:
    """`en` or `zh`, whichever `Accept-Language` prefers (English when it names neither)."""
    best, best_q = "en", 0.0
    for part in (accept or "").split(",")[:20]:
        match = _LANGUAGE.fullmatch(part)
        if not match:
            continue
        try:
            q = float(match.group(2)) if match.group(2) else 1.0
        except ValueError:
            continue
        name = match.group(1).lower()
        if name in TEXT and q > best_q:
            best, best_q = name, q
    return best


# -- shared ---------------------------------------------------------------------------------------

def _reader(call: Call) -> topics.Reader:
    settings = call.settings
    if not topics.enabled(settings):
        raise NotFound("one-click unsubscribe is not configured here", field="t")
    query = call.request.query if call.request else {}
    return topics.open_token(settings.unsubscribe_secrets, query.get("t"))


def _store_and_hash(call: Call, address: str) -> tuple[Any, str]:
    return call.store, address_hash(call.settings.erasure_key, address)


def _suppress(call: Call, address: str, scope: str, source: str) -> None:
    store, _ = _store_and_hash(call, address)
    store.suppress(address, scope, "unsubscribe", source, time.time())


def _form(call: Call) -> dict[str, list[str]]:
    """The body's fields: url-encoded or multipart/form-data (RFC 7578), as lists of values."""
    body = (call.request.body if call.request else None) or ""
    if len(body) > MAX_FORM_BYTES:
        raise InvalidInput(f"the form is larger than {MAX_FORM_BYTES} bytes", code="InvalidParameterValue")
    kind = call.header("content-type") or ""
    if kind.split(";")[0].strip().lower() == "multipart/form-data":
        return _multipart(kind, body)
    return parse_qs(body, keep_blank_values=True, max_num_fields=200)


_BOUNDARY = re.compile(r'boundary=(?:"([^"]{1,70})"|([^\s;]{1,70}))', re.IGNORECASE)
_FIELD_NAME = re.compile(r'\bname="([^"]*)"', re.IGNORECASE)


def _multipart(kind: str, body: str) -> dict[str, list[str]]:
    match = _BOUNDARY.search(kind)
    if not match:
        raise InvalidInput("multipart/form-data without a boundary", field="Content-Type",
                           code="InvalidParameterValue")
    boundary = "--" + (match.group(1) or match.group(2))
    fields: dict[str, list[str]] = {}
    for part in body.split(boundary)[1:]:
        if part.startswith("--"):
            break  # the closing delimiter
        head, separator, value = part.partition("\r\n\r\n")
        if not separator:
            head, separator, value = part.partition("\n\n")
        name = _FIELD_NAME.search(head)
        if separator and name:
            fields.setdefault(name.group(1), []).append(value.rstrip("\r\n") if value.endswith("\n") else value)
    return fields


# -- POST /unsubscribe ----------------------------------------------------------------------------

def one_click(call: Call) -> Response:
    """RFC 8058: the reader is suppressed for the token's topic (all marketing mail without one),
    and an `unsubscribe` event is stored with "Source": "one-click" and its Topic."""
    reader = _reader(call)
    fields = _form(call)
    if "One-Click" not in fields.get("List-Unsubscribe", []):
        raise InvalidInput("the body must be List-Unsubscribe=One-Click (RFC 8058)", field="List-Unsubscribe",
                           code="InvalidParameterValue")
    scope = topics.topic_scope(reader.topic) if reader.topic else "marketing"
    now = time.time()
    store, _ = _store_and_hash(call, reader.address)
    store.suppress(reader.address, scope, "unsubscribe", "one-click", now)
    settings = call.settings
    # The mail that carried the link, if the sent log still holds it: its history shows the event.
    # The token was made just before SES was called; the send was logged within its function's
    # time limit (SCF's longest is 900 s).
    message_id = store.sent_to(reader.address, reader.issued - 5, reader.issued + 900)
    details = {"Source": "one-click", "Topic": reader.topic}
    row = {"event_id": hashlib.sha256(b"one-click\n" + reader.tag + scope.encode("ascii")).hexdigest(),
           "message_id": message_id, "email": reader.address, "event": "unsubscribe", "event_time": int(now),
           "details": details, "raw": json.dumps(details, separators=(",", ":")), "polled": False,
           "stored_at": now, "expires_at": now + settings.event_ttl, "smtp_message_id": None}
    # Counted in the statistics' Unsubscribes like SES's own (once per mail and address: an SES
    # unsubscribe event for the same mail adds nothing more).
    from . import stats

    stored, _ = store.ingest_events([row], stats.facts(settings, [{}], [row], now))
    log.note(OneClick=True, Topic=reader.topic, Email=log.mask(reader.address), Stored=stored)
    if stored:
        from .webhook import _run_hook

        _run_hook(settings, [row])  # the user's EventHook sees it like SES's own unsubscribes
    return Response(200, {"Unsubscribed": True, "Topic": reader.topic or topics.ALL_TOPICS},
                    {"Cache-Control": "no-store"})


# -- the page -------------------------------------------------------------------------------------

def _headers(lang: str, settings: Any) -> dict[str, str]:
    origin = urlsplit(settings.public_url or "")
    form_action = "'self'" + (f" {origin.scheme}://{origin.netloc}" if origin.netloc else "")
    return {"Content-Type": "text/html; charset=utf-8", "Content-Language": "zh-CN" if lang == "zh" else "en",
            "Content-Security-Policy": f"default-src 'none'; style-src {_CSP_STYLE}; form-action {form_action};"
                                       " frame-ancestors 'none'; base-uri 'none'",
            "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
            "Cache-Control": "no-store", "Vary": "Accept-Language"}


def _document(lang: str, title: str, content: str) -> str:
    return (f'<!doctype html>\n<html lang="{"zh-CN" if lang == "zh" else "en"}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<meta name="referrer" content="no-referrer">'
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
            f"<body><main>{content}</main></body></html>\n")


def _topic_text(definition: dict, lang: str) -> tuple[str, str]:
    local = (definition.get("Translations") or {}).get(lang) or {}
    return (str(local.get("DisplayName") or definition.get("DisplayName") or ""),
            str(local.get("Description") or definition.get("Description") or ""))


def _render(call: Call, reader: topics.Reader, token: str, lang: str, notice: str | None = None) -> Response:
    settings = call.settings
    words = TEXT[lang]
    store, hashed = _store_and_hash(call, reader.address)
    scopes = store.suppression_scopes(reader.address, hashed)
    action = html.escape(topics.preferences_url(settings, token), quote=True)
    parts = [f"<h1>{html.escape(words['title'])}</h1>",
             "<p>" + html.escape(words["intro"]).replace(
                 "{address}", f"<strong>{html.escape(log.mask(reader.address) or '')}</strong>") + "</p>"]
    if notice:
        parts.append(f'<p class="status" role="status">{html.escape(notice)}</p>')
    # The link's own topic first, as one button: the quickest way out.
    quick_scope = topics.topic_scope(reader.topic) if reader.topic else "marketing"
    if quick_scope not in scopes and (reader.topic is None or reader.topic in settings.topics):
        label = (words["quick"].replace("{topic}", _topic_text(settings.topics[reader.topic], lang)[0])
                 if reader.topic else words["quick_all"])
        parts.append(f'<form class="card" method="post" action="{action}">'
                     '<input type="hidden" name="action" value="unsubscribe">'
                     f'<button class="primary" type="submit">{html.escape(label)}</button></form>')
    rows = []
    for name, definition in settings.topics.items():
        display, description = _topic_text(definition, lang)
        subscribed = topics.topic_scope(name) not in scopes
        ident = "topic-" + html.escape(name, quote=True)
        state = words["subscribed" if subscribed else "unsubscribed"]
        hint = f'<span class="hint">{html.escape(description)}</span>' if description else ""
        rows.append(f'<div class="choice"><input type="checkbox" id="{ident}" name="topic"'
                    f' value="{html.escape(name, quote=True)}"{" checked" if subscribed else ""}'
                    f' aria-describedby="{ident}-state"><label for="{ident}">{html.escape(display)}'
                    f'<span class="state" id="{ident}-state">{html.escape(state)}</span>{hint}</label></div>')
    topic_block = ("".join(rows) if rows else f"<p>{html.escape(words['none'])}</p>")
    all_off = "marketing" in scopes
    parts.append(
        f'<form class="card" method="post" action="{action}"><input type="hidden" name="action" value="save">'
        f'<fieldset><legend>{html.escape(words["topics"])}</legend>{topic_block}</fieldset>'
        f'<div class="choice"><input type="checkbox" id="all" name="all" value="1"{" checked" if all_off else ""}'
        f' aria-describedby="all-hint"><label for="all">{html.escape(words["all"])}'
        f'<span class="hint" id="all-hint">{html.escape(words["all_hint"])}</span></label></div>'
        f'<p><button class="primary" type="submit">{html.escape(words["save"])}</button></p></form>')
    return Response(200, _document(lang, words["title"], "".join(parts)), _headers(lang, settings))


def _invalid(call: Call, lang: str, error: SesmailError) -> Response:
    words = TEXT[lang]
    body = _document(lang, words["invalid_title"], f"<h1>{html.escape(words['invalid_title'])}</h1>"
                     f'<p class="status error" role="alert">{html.escape(words["invalid"])}</p>')
    log.note(Code=error.code)
    return Response(error.status if error.status in (403, 404) else 400, body, _headers(lang, call.settings))


def page(call: Call) -> Response:
    """GET /preferences?t= (and GET /unsubscribe?t=): the page; nothing changes."""
    lang = language(call.header("accept-language"))
    try:
        reader = _reader(call)
    except (Forbidden, NotFound) as exc:
        return _invalid(call, lang, exc)
    return _render(call, reader, str(call.request.query.get("t")) if call.request else "", lang)


def save(call: Call) -> Response:
    """POST /preferences?t=: the page's form. `action=unsubscribe` is the link's own topic (or all
    marketing mail); `action=save` sets every topic (checked: subscribed) and "all marketing mail"."""
    lang = language(call.header("accept-language"))
    try:
        reader = _reader(call)
    except (Forbidden, NotFound) as exc:
        return _invalid(call, lang, exc)
    token = str(call.request.query.get("t")) if call.request else ""
    fields = _form(call)
    settings = call.settings
    words = TEXT[lang]
    store, hashed = _store_and_hash(call, reader.address)
    action = (fields.get("action") or ["save"])[0]
    if action == "unsubscribe":
        scope = topics.topic_scope(reader.topic) if reader.topic else "marketing"
        _suppress(call, reader.address, scope, "preferences")
        notice = (words["quick_done"].replace("{topic}", _topic_text(settings.topics.get(reader.topic) or {}, lang)[0]
                                              or reader.topic) if reader.topic else words["quick_all_done"])
        log.note(Preferences="unsubscribe", Topic=reader.topic, Email=log.mask(reader.address))
        return _render(call, reader, token, lang, notice)
    current = store.suppression_scopes(reader.address, hashed)
    wanted = set(fields.get("topic") or [])
    add, lift = [], []
    for name in settings.topics:
        scope = topics.topic_scope(name)
        if name in wanted and scope in current:
            lift.append(scope)
        elif name not in wanted and scope not in current:
            add.append(scope)
    everything = "1" in (fields.get("all") or [])
    if everything and "marketing" not in current:
        add.append("marketing")
    elif not everything and "marketing" in current:
        lift.append("marketing")
    for scope in add:
        _suppress(call, reader.address, scope, "preferences")
    store.unsuppress_scopes(reader.address, hashed, lift)  # a resubscribe: only here or by an admin key
    log.note(Preferences="save", Added=len(add), Lifted=len(lift), Email=log.mask(reader.address))
    return _render(call, reader, token, lang, words["saved"])
