"""Templates as SES uses them (`{{var}}` placeholders) and the MIME message a send turns into.

Repo templates live in `templates/`: `<name>.html` and/or `<name>.txt`, with stable IDs in
`templates/templates.json` (`{"<name>": <TemplateID>}`), so code and tests can name an ID that
means the same on every laptop. Mails are rendered with the standard library's `EmailMessage`,
so what the page shows is a real RFC 5322 message (the `.eml` download opens in any mail client).
"""

from __future__ import annotations

import base64
import html as html_lib
import json
import mimetypes
import os
import re
from datetime import datetime, timezone
from email import policy
from email.header import Header
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, formataddr, parseaddr
from typing import Any, NamedTuple, Optional

__all__ = ["RepoTemplate", "build_mime", "encode_subject", "fill", "load_templates", "parse_mime", "variables"]

# SES writes variables as {{name}}; tolerate inner spaces, as people type them.
VAR_RE = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")


class RepoTemplate(NamedTuple):
    template_id: int
    name: str
    html: str
    text: str


def variables(*texts: str) -> list[str]:
    """The `{{var}}` names used in the given template parts, sorted."""
    return sorted({name for text in texts for name in VAR_RE.findall(text or "")})


def fill(text: str, data: dict[str, Any], escape: bool = False) -> str:
    """Replace `{{var}}` with its TemplateData value; unknown variables are left as written.

    HTML parts get the value escaped: SES forbids HTML in TemplateData values, so escaping never
    changes a valid mail, and a stray `<` cannot break the local page.
    """
    def value(match: re.Match) -> str:
        name = match.group(1)
        if name not in data:
            return match.group(0)
        raw = data[name]
        out = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False)
        return html_lib.escape(out) if escape else out
    return VAR_RE.sub(value, text or "")


def load_templates(directory: str) -> list[RepoTemplate]:
    """Read `templates.json` and each named template's `.html` / `.txt` files."""
    index_path = os.path.join(directory, "templates.json")
    with open(index_path, encoding="utf-8") as handle:
        index = json.load(handle)
    if not isinstance(index, dict):
        raise ValueError(f"{index_path}: expected an object of template name -> TemplateID")
    templates, seen = [], set()
    for name, template_id in index.items():
        if isinstance(template_id, bool) or not isinstance(template_id, int) or template_id < 1:
            raise ValueError(f"{index_path}: the TemplateID of {name!r} must be a positive integer")
        if template_id in seen:
            raise ValueError(f"{index_path}: TemplateID {template_id} is used twice")
        seen.add(template_id)
        parts = {}
        for ext in ("html", "txt"):
            path = os.path.join(directory, f"{name}.{ext}")
            if os.path.exists(path):
                with open(path, encoding="utf-8") as handle:
                    parts[ext] = handle.read()
        if not parts:
            raise ValueError(f"{directory}: template {name!r} has neither {name}.html nor {name}.txt")
        templates.append(RepoTemplate(template_id, name, parts.get("html", ""), parts.get("txt", "")))
    return templates


def encode_subject(subject: str) -> str:
    """The subject as SES callbacks carry it: non-ASCII MIME-encoded (`=?utf-8?b?...?=`)."""
    return subject if subject.isascii() else Header(subject, "utf-8").encode()


def build_mime(*, header_from: str, to: list[str], cc: list[str], reply_to: Optional[str], subject: str,
               html: str, text: str, attachments: list[dict[str, Any]], smtp_id: str, date: float,
               extra_headers: Optional[dict[str, str]] = None) -> bytes:
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = header_from
    if to:
        msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.fromtimestamp(date, timezone.utc))
    msg["Message-ID"] = f"<{smtp_id}>"
    msg["MIME-Version"] = "1.0"
    for name, value in (extra_headers or {}).items():
        msg[name] = value
    if text or not html:
        msg.set_content(text or "")
        if html:
            msg.add_alternative(html, subtype="html")
    else:
        msg.set_content(html, subtype="html")
    for item in attachments:
        content = base64.b64decode(item.get("Content") or "")
        name = str(item.get("FileName") or "attachment")
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        maintype, _, subtype = ctype.partition("/")
        msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes()


def parse_mime(raw: bytes) -> dict[str, Any]:
    """Headers, text, HTML and attachments of a stored message, for the page and the JSON API."""
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    out: dict[str, Any] = {"Headers": [[k, str(v)] for k, v in msg.items()], "Text": "", "Html": "",
                           "Attachments": []}
    for part in msg.walk():
        if part.is_multipart():
            continue
        if part.get_content_disposition() == "attachment":
            payload = part.get_payload(decode=True) or b""
            out["Attachments"].append({"FileName": part.get_filename() or "attachment",
                                       "ContentType": part.get_content_type(), "Size": len(payload),
                                       "Content": payload})
        elif part.get_content_type() == "text/plain" and not out["Text"]:
            out["Text"] = part.get_content().replace("\r\n", "\n")  # stored with SMTP's CRLF
        elif part.get_content_type() == "text/html" and not out["Html"]:
            out["Html"] = part.get_content().replace("\r\n", "\n")
    return out


def display_sender(value: str) -> str:
    """`Alias <addr>` as a proper From header (quoting the alias when it needs it)."""
    name, addr = parseaddr(value)
    return formataddr((name, addr)) if name else addr
