"""SES's SMTP interface as `send`'s transport (`SESMAIL_TRANSPORT=smtp`; docs/ses.md#smtp).

`SmtpTransport` is the second implementation of sesmail.transport's interface, imported only when
that transport is chosen (the API path never pays for it). What SMTP changes:
- SMTP has no TemplateID: the template named in the payload is rendered here, from the files
  shipped with the function (`SESMAIL_TEMPLATES_DIR`, default `templates/` beside it, which
  `make deploy` copies in), found by name through the config file's `Templates` map.
- No response fields, so no SES MessageId: the `Message-ID` header is generated (or taken from
  `SmtpMessageId`), returned as `MessageId`, and SES's callbacks carry it back as `messageId`.
- SES's own limits for SMTP: body (attachments aside) <= 1 MB, an attachment <= 5 MB, all
  attachments <= 10 MB, no Cc or Bcc, and a line of 2,000 characters or more breaks the
  transaction. The message is built so that no line comes near (base64 at 76, headers folded at 78).
- Refusals come back as `554 5.0.0 Error: … ##SES-response-json: {…}`: parsed into SES's code,
  so a caller sees the same code and status as on the API path.
- Retries (sesmail.transport's, docs/reliability.md#retries): a failure before the message data
  is written (connect, TLS, login, MAIL, RCPT, the DATA command) provably sent nothing and is
  retried, as are definite "not now" replies (4xx, `RequestLimitExceeded*`); once the data is on
  the wire, a lost connection or a missing reply leaves the outcome unknown and is never retried.
SMTP is disabled for individual (non-company) SES accounts.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import time
import uuid
from email.errors import MessageError
from typing import TYPE_CHECKING, Any

from . import log, rules, validation
from .envelopes import loads
from .errors import InvalidInput, OutcomeUnknown, SesRefused, Unavailable
from .ses import RETRYABLE_CODES
from .transport import NotSent, Outgoing, retried

if TYPE_CHECKING:
    from .config import Settings
    from .deadline import Deadline

__all__ = ["MAX_LINE", "Prepared", "SmtpTransport", "build_message", "parse_reply", "prepare", "variables"]

# SES's SMTP guide: "2,000 or more characters in a single line" breaks the transaction (docs/ses.md#smtp).
MAX_LINE = 2000
# SES's SMTP limits, read as decimal megabytes (the stricter reading).
MAX_BODY_BYTES = 1_000_000
MAX_ATTACHMENT_BYTES = 5_000_000
MAX_ATTACHMENTS_BYTES = 10_000_000
REPLY_MARK = "##SES-response-json:"
# SES writes template variables as {{name}}; inner spaces are tolerated, as people type them.
_VARIABLE = rules.TEMPLATE_VARIABLE
_CODE = re.compile(r"[A-Za-z]+(?:\.[A-Za-z0-9]+)*")
# Headers the transport writes itself; SmtpHeaders may not replace them.
_RESERVED = frozenset({"from", "to", "cc", "bcc", "subject", "date", "message-id", "mime-version", "reply-to",
                       "content-type", "content-transfer-encoding", "content-disposition", "return-path",
                       "sender"})
_UNSUPPORTED = "InvalidParameter.NotSupportedBySmtp"
# A Message-ID's two halves (RFC 5322 dot-atom text) and a header field name (printable ASCII, no colon).
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_MESSAGE_ID = re.compile(_ATOM + "@" + _ATOM)
_FIELD_NAME = re.compile(r"[!-9;-~]{1,76}")
_files: dict[str, tuple[int, str]] = {}


def variables(*texts: str) -> list[str]:
    """The `{{var}}` names used in the given template parts, in first-use order."""
    return list(dict.fromkeys(name for text in texts for name in _VARIABLE.findall(text or "")))


def _fill(text: str, data: dict, escape: bool) -> str:
    def value(match: re.Match) -> str:
        raw = data.get(match.group(1))
        out = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False)
        # SES forbids HTML in TemplateData values, so escaping never changes a valid mail.
        return html.escape(out) if escape else out
    return _VARIABLE.sub(value, text or "")


def _read(path: str) -> str | None:
    """A template file, cached per container (one stat per send, so a changed file is re-read)."""
    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError:
        return None
    cached = _files.get(path)
    if cached is None or cached[0] != stamp:
        with open(path, encoding="utf-8") as handle:
            cached = _files[path] = (stamp, handle.read())
    return cached[1]


def _bare(address: str) -> str:
    return address.rpartition("<")[2].rstrip(">").strip()


class Prepared(Outgoing):
    """One mail ready for SMTP: envelope, the message bytes and the Message-ID it carries (also
    the MessageId the caller is answered with)."""

    message_id: str

    def __init__(self, params: dict, sender: str, recipients: list[str], message_id: str, data: bytes) -> None:
        super().__init__(params, message_id)
        self.sender, self.recipients, self.data = sender, recipients, data


class SmtpTransport:
    """SendEmail through SES's SMTP service (sesmail.transport): no MessageId comes back, so the
    mail's Message-ID stands for it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def prepare(self, params: dict) -> Prepared:
        return prepare(self.settings, params)

    def send(self, mail: Outgoing, deadline: Deadline) -> str:
        if not isinstance(mail, Prepared):
            raise TypeError("SmtpTransport sends what its prepare() made")
        settings = self.settings
        retried("SMTP", deadline, settings.ses_attempts, lambda remaining: _send_once(settings, mail, remaining))
        # Logged without its domain part: a Message-ID reads like an address.
        log.note(SmtpMessageId=mail.message_id.partition("@")[0], Transport="smtp")
        return mail.message_id


def prepare(settings: Settings, params: dict, now: float | None = None) -> Prepared:
    """Check what SMTP can carry, render the template from its files and build the message.
    `params` is a validated SendEmail payload (sesmail.rules)."""
    for name in ("Cc", "Bcc"):
        if params.get(name):
            raise InvalidInput(f"{name} is not supported by SES's SMTP interface (SESMAIL_TRANSPORT=smtp)",
                               field=name, code=_UNSUPPORTED)
    if params.get("Unsubscribe") not in (None, "0"):
        raise InvalidInput("Unsubscribe (SES's unsubscribe link) is not supported by SES's SMTP interface",
                           field="Unsubscribe", code=_UNSUPPORTED)
    template = params["Template"]
    template_id = template["TemplateID"]
    names = {id_: template_name for template_name, id_ in settings.templates.items()}
    found = names.get(template_id)
    parts = [_read(os.path.join(settings.templates_dir, f"{found}.{ext}")) if found else None
             for ext in ("html", "txt")]
    if found is None or (parts[0] is None and parts[1] is None):
        raise InvalidInput("names no template this function ships for SMTP (the config's Templates map and the "
                           "files in SESMAIL_TEMPLATES_DIR)", field="Template.TemplateID",
                           code="FailedOperation.InvalidTemplateID")
    html_part, text_part = parts
    data = loads(template.get("TemplateData") or "{}")
    missing = [v for v in variables(params["Subject"], html_part or "", text_part or "") if v not in data]
    if missing:
        raise InvalidInput("lacks variable(s) of the template: " + ", ".join(missing), field="Template.TemplateData",
                           code="InvalidParameterValue.TemplateNotMatchData")
    subject = _fill(params["Subject"], data, escape=False)
    # The API path's rule (sesmail.rules), so both transports refuse the same values.
    validation.check_header(subject, "Template.TemplateData",
                       "fills the subject with a value holding line breaks or control characters")
    rendered_html = _fill(html_part, data, escape=True) if html_part is not None else None
    rendered_text = _fill(text_part, data, escape=False) if text_part is not None else None
    body_bytes = sum(len(p.encode("utf-8")) for p in (rendered_html, rendered_text) if p)
    if body_bytes > MAX_BODY_BYTES:
        raise InvalidInput(f"renders a body larger than SMTP's {MAX_BODY_BYTES} bytes", field="Template",
                           code="FailedOperation.EmailContentToolarge")
    attachments = []
    total = 0
    for index, attachment in enumerate(params.get("Attachments") or ()):
        content = base64.b64decode(attachment["Content"])  # valid: rules checked it
        if len(content) > MAX_ATTACHMENT_BYTES:
            raise InvalidInput(f"exceeds SMTP's {MAX_ATTACHMENT_BYTES} bytes for one attachment",
                               field=f"Attachments[{index}].Content", code="FailedOperation.AttachContentToolarge")
        total += len(content)
        attachments.append((attachment["FileName"], content))
    if total > MAX_ATTACHMENTS_BYTES:
        raise InvalidInput(f"exceed SMTP's {MAX_ATTACHMENTS_BYTES} bytes in total", field="Attachments",
                           code="FailedOperation.AttachContentToolarge")
    sender = _bare(params["FromEmailAddress"])
    message_id = _message_id(params.get("SmtpMessageId"), sender)
    extra = _extra_headers(params.get("SmtpHeaders"))
    try:
        data_bytes = build_message(
            header_from=params.get("HeaderFrom") or params["FromEmailAddress"], to=list(params["Destination"]),
            reply_to=params.get("ReplyToAddresses"), subject=subject, html_body=rendered_html,
            text_body=rendered_text, attachments=attachments, message_id=message_id,
            date=time.time() if now is None else now, extra_headers=extra)
    except (ValueError, TypeError, IndexError, MessageError) as exc:  # a value the email package cannot write
        raise InvalidInput("a header of this mail cannot be written as MIME (SmtpHeaders, HeaderFrom, "
                           "ReplyToAddresses, or a file name)", code="InvalidParameterValue") from exc
    longest = max(len(line) for line in data_bytes.split(b"\r\n"))
    if longest >= MAX_LINE:  # folding could not break something (a header without spaces)
        raise InvalidInput(f"a header line would reach {MAX_LINE} characters, which SES's SMTP refuses",
                           field="SmtpHeaders" if extra else None, code="InvalidParameterValue.LineTooLong")
    return Prepared(params, sender, [_bare(a) for a in params["Destination"]], message_id, data_bytes)


def _message_id(given: str | None, sender: str) -> str:
    """The Message-ID without angle brackets, as SES's callbacks carry it (`messageId`)."""
    if given is None:
        return f"{uuid.uuid4()}@{sender.rpartition('@')[2]}"
    bare = given.strip().strip("<>").strip()
    if not _MESSAGE_ID.fullmatch(bare):
        raise InvalidInput("must look like `id@domain` (it becomes the Message-ID header)", field="SmtpMessageId",
                           code="InvalidParameterValue")
    return bare


def _extra_headers(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    headers = loads(raw)
    out = {}
    for name, value in headers.items():
        if not _FIELD_NAME.fullmatch(str(name)):
            raise InvalidInput("holds a name that is not a header field name", field="SmtpHeaders",
                               code="InvalidParameterValue")
        if str(name).lower() in _RESERVED:
            raise InvalidInput(f"may not set {name}: the SMTP transport writes it", field="SmtpHeaders",
                               code="InvalidParameterValue")
        out[str(name)] = str(value)
    return out


def build_message(*, header_from: str, to: list[str], reply_to: str | None, subject: str, html_body: str | None,
                  text_body: str | None, attachments: list[tuple[str, bytes]], message_id: str, date: float,
                  extra_headers: dict[str, str] | None = None) -> bytes:
    """The MIME message as SES's SMTP header table wants it (docs/ses.md#smtp): From, To, Subject, an
    allowed Content-Type (`text/plain; charset=UTF-8`, `text/html; charset=UTF-8`,
    multipart/alternative or /mixed), MIME-Version 1.0, attachments as application/octet-stream in
    base64 with `Content-Disposition: attachment`. CRLF line ends; no line longer than 78."""
    from datetime import datetime, timezone
    from email import policy
    from email.message import EmailMessage
    from email.utils import format_datetime

    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = header_from
    msg["To"] = ", ".join(to)
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.fromtimestamp(date, timezone.utc))
    msg["Message-ID"] = f"<{message_id}>"
    for name, value in (extra_headers or {}).items():
        msg[name] = value
    # base64 for text too: its lines are 76 characters whatever the template's are.
    if text_body is not None:
        msg.set_content(text_body, subtype="plain", charset="utf-8", cte="base64")
        if html_body is not None:
            msg.add_alternative(html_body, subtype="html", charset="utf-8", cte="base64")
    else:
        msg.set_content(html_body or "", subtype="html", charset="utf-8", cte="base64")
    for file_name, content in attachments:
        msg.add_attachment(content, maintype="application", subtype="octet-stream", filename=file_name)
    for part in msg.walk():
        if part is not msg:
            del part["MIME-Version"]  # the email package repeats it on every part; once is what SES reads
    # SES lists the allowed values literally (`text/plain; charset=UTF-8`); the email package quotes
    # the parameter. Only Content-Type lines can hold this: every body is base64.
    return msg.as_bytes().replace(b'; charset="utf-8"', b"; charset=UTF-8")


def parse_reply(text: str) -> dict | None:
    """{"Code", "Message", "RequestId"} from an SMTP refusal carrying `##SES-response-json: {…}`,
    or None. Lenient on purpose: the documented sample nests the error as
    `Response.QcloudError.Error`, its field table as `QcloudError.Code`, the sample runs the
    message into the code ("FailedOperation.MissingEmailContent. The operation failed…") and is
    cut short; a multi-line reply may break the JSON. Fields are read by pattern when it does not parse."""
    at = text.find(REPLY_MARK)
    if at < 0:
        return None
    raw = text[at + len(REPLY_MARK):].strip()
    code = message = request_id = None
    try:
        body: Any = json.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict):
        response: dict = body["Response"] if isinstance(body.get("Response"), dict) else body
        request_id = response.get("RequestId")
        qcloud: dict = response["QcloudError"] if isinstance(response.get("QcloudError"), dict) else {}
        for holder in (qcloud.get("Error"), qcloud, response.get("Error")):
            if isinstance(holder, dict) and isinstance(holder.get("Code"), str):
                code, message = holder["Code"], holder.get("Message")
                break
    if code is None:
        found = {key: re.search(rf'"{key}"\s*:\s*"([^"]*)', raw) for key in ("Code", "Message", "RequestId")}
        code = found["Code"].group(1) if found["Code"] else None
        message = found["Message"].group(1) if found["Message"] else None
        request_id = found["RequestId"].group(1) if found["RequestId"] else None
    match = _CODE.match(code or "")
    if not match:
        return None
    rest = code[match.end():].lstrip(". ").strip()  # type: ignore[index]
    return {"Code": match.group(0), "Message": str(message or rest or match.group(0))[:500],
            "RequestId": request_id if isinstance(request_id, str) else None}


def _refusal(status: int, text: str, after_data: bool = False) -> Exception:
    """A definite SMTP refusal as our error: 4xx (not now) and RequestLimitExceeded* are retryable;
    InternalError* once the message was sent leaves the outcome unknown (as on the API path)."""
    if "SMTPForbidden" in text:
        # "SMTP Disabled for Individual Customers" (docs/ses.md#smtp): the operator's to fix, not the caller's.
        return SesRefused("UnauthorizedOperation.SmtpForbidden", "SES disables SMTP for individual (non-company) "
                          "accounts: use SESMAIL_TRANSPORT=api")
    parsed = parse_reply(text)
    if parsed is not None:
        if parsed["Code"].startswith("InternalError") and after_data:  # SES may or may not have sent it
            return OutcomeUnknown(f"SES SMTP reported {parsed['Code']}; the outcome is unknown", code=parsed["Code"])
        refused = SesRefused(parsed["Code"], f"SES SMTP: {parsed['Message']}", parsed["RequestId"])
        if parsed["Code"] in RETRYABLE_CODES or parsed["Code"].startswith("RequestLimitExceeded"):
            return NotSent(refused)
        return refused
    if 400 <= status < 500:
        return NotSent(Unavailable(f"SES SMTP answered {status}: not accepted now",
                                   code="ResourceUnavailable.SmtpTransient"))
    return SesRefused("FailedOperation", f"SES SMTP refused the mail ({status})")


def _send_once(settings: Settings, mail: Prepared, remaining: float) -> None:
    import smtplib
    import ssl

    if not settings.smtp_password:
        raise Unavailable("SESMAIL_SMTP_PASSWORD is not set (SES's SMTP password of the sender address, set with "
                          "UpdateEmailSmtpPassWord)", code="ResourceUnavailable.NoCredentials")
    host, port, tls = settings.smtp_host, settings.smtp_port, settings.smtp_tls
    data_started = done = False
    client: smtplib.SMTP | None = None
    try:
        if tls == "ssl":
            client = smtplib.SMTP_SSL(host, port, timeout=min(settings.ses_connect_timeout, remaining),
                                      context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(host, port, timeout=min(settings.ses_connect_timeout, remaining))
        if client.sock is not None:  # connected: from now on, the read timeout bounds each reply
            client.sock.settimeout(min(settings.ses_read_timeout, remaining))
        client.ehlo()
        if tls == "starttls":
            client.starttls(context=ssl.create_default_context())
            client.ehlo()
        client.login(settings.smtp_user or mail.sender, settings.smtp_password)
        for command, argument in (("mail", mail.sender), *(("rcpt", r) for r in mail.recipients)):
            status, reply = getattr(client, command)(argument)
            if status not in (250, 251):
                raise _refusal(status, reply.decode("utf-8", "replace"))
        status, reply = client.docmd("DATA")
        if status != 354:
            raise _refusal(status, reply.decode("utf-8", "replace"))
        data_started = True
        # Dot-stuffing (RFC 5321 4.5.2), then the terminating line.
        client.send(re.sub(rb"(?m)^\.", b"..", mail.data).rstrip(b"\r\n") + b"\r\n.\r\n")
        status, reply = client.getreply()
        if status != 250:  # a definite answer: the mail was not accepted
            raise _refusal(status, reply.decode("utf-8", "replace"), after_data=True)
        done = True
    except smtplib.SMTPAuthenticationError as exc:
        raise SesRefused("AuthFailure.SmtpAuthentication", "SES SMTP refused the login: check SESMAIL_SMTP_USER "
                         "and SESMAIL_SMTP_PASSWORD (UpdateEmailSmtpPassWord)") from exc
    except smtplib.SMTPResponseException as exc:
        # Greeting, EHLO, STARTTLS or AUTH answered with an error: nothing of the mail was sent.
        text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        if parse_reply(text) is not None or "SMTPForbidden" in text:
            raise _refusal(exc.smtp_code, text) from exc
        raise NotSent(Unavailable(f"SES SMTP answered {exc.smtp_code} before the message was sent",
                                  code="ResourceUnavailable.SmtpSession")) from exc
    except (smtplib.SMTPException, OSError) as exc:  # refused, DNS, timeouts, TLS, a dropped connection
        if data_started:
            raise OutcomeUnknown("SES SMTP: the connection failed after the message was sent; the outcome is "
                                 "unknown") from exc
        raise NotSent(Unavailable("SES SMTP: could not connect, or the session broke before the message was sent",
                                  code="ResourceUnavailable.SesUnreachable")) from exc
    finally:
        if client is not None:
            try:
                client.quit() if done else client.close()
            except Exception:
                pass
