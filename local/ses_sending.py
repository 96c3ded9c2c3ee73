"""SendEmail, GetSendEmailStatus, and mail that arrives over SES's SMTP interface.

Error codes are the ones Tencent's API pages and the SDK's errorcodes.py give for the action
(SendEmail: https://cloud.tencent.com/document/api/1288/51034; its data structures, e.g.
`SendEmailStatus`: https://cloud.tencent.com/document/api/1288/51053); where Tencent documents
none for a case, the closest documented code is used and the comment says so. What the emulator
models and leaves out: docs/local-stack.md.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import sqlite3
import uuid
from datetime import datetime, timedelta
from typing import Any

from . import delivery, rendering
from .ses_account import Account
from .ses_common import BEIJING, ApiError, bare_address, is_address, json_or_none, paging

__all__ = ["Sending"]

STATUS_LOOKBACK_DAYS = 90  # FailedOperation.NotSupportDate: "only the last 90 days"
MAX_ATTACH_BYTES = 4 * 1024 * 1024  # decoded total, per the SDK's Attachment.Content doc
# A Message-ID the email package can write: RFC 5322 dot-atom text on both sides of the "@".
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_MESSAGE_ID = re.compile(_ATOM + "@" + _ATOM, re.ASCII)


class Sending(Account):
    """One mail at a time: the API's SendEmail, the SMTP endpoint's messages, and their status."""

    def send_email(self, p: dict[str, Any]) -> dict[str, Any]:
        sender = p.get("FromEmailAddress")
        if not sender:
            raise ApiError("MissingParameter", "The request is missing `FromEmailAddress`.")
        address = bare_address(sender)
        if not self.sender_known(address):
            raise ApiError("FailedOperation.NotAuthenticatedSender", "The sender is not verified.")
        subject = p.get("Subject")
        if not isinstance(subject, str) or not 1 <= len(subject) <= 100:
            raise ApiError("InvalidParameterValue.SubjectLengthError", "Subject must be 1-100 characters.")
        # The SDK's doc: "Destination/Cc/Bcc三个参数必须至少存在一个" (at least one of the three). None of
        # them at all is a missing parameter, as the send function says; present but empty is
        # what SES names EmailAddressIsNULL.
        if all(p.get(name) is None for name in ("Destination", "Cc", "Bcc")):
            raise ApiError("MissingParameter", "The request is missing `Destination` (or Cc or Bcc).")
        lists = {name: p.get(name) or [] for name in ("Destination", "Cc", "Bcc")}
        if not all(isinstance(v, list) for v in lists.values()):
            raise ApiError("InvalidParameter", "Destination, Cc and Bcc must be lists.")
        if not any(lists.values()):
            raise ApiError("InvalidParameterValue.EmailAddressIsNULL", "The recipient address is empty.")
        for name, cap in (("Destination", 50), ("Cc", 20), ("Bcc", 20)):
            if len(lists[name]) > cap:
                raise ApiError("FailedOperation.TooManyRecipients", f"`{name}` takes at most {cap}.")
        if not all(is_address(a) for v in lists.values() for a in v):
            raise ApiError("InvalidParameterValue.ReceiverEmailInvalid", "A recipient address is invalid.")
        template_id, data = _check_template(p)
        template = self.usable_template(template_id, "FailedOperation.InvalidTemplateID")
        if template is not None:
            self.check_variables(template, data)
        _check_attachments(p.get("Attachments"))

        recipients = lists["Destination"] + lists["Cc"] + lists["Bcc"]
        now = self.settings.clock()
        self.check_frequency(recipients, now)
        self.check_quota(len(recipients), now)
        message_id = self.new_message_id(now)
        # SES documents nothing about a malformed SmtpMessageId: one that is not `id@domain` (blank,
        # "<>", stray characters) gets a generated Message-ID, as an absent one does.
        smtp_id = str(p.get("SmtpMessageId") or "").strip().strip("<>").strip()
        if not _MESSAGE_ID.fullmatch(smtp_id):
            smtp_id = f"{uuid.uuid4()}@{address.rpartition('@')[2]}"
        source = {"From": p.get("HeaderFrom") or sender, "To": lists["Destination"], "Cc": lists["Cc"],
                  "Bcc": lists["Bcc"], "ReplyTo": p.get("ReplyToAddresses"), "Subject": subject,
                  "TemplateID": template_id, "TemplateName": template["name"] if template else None,
                  "TemplateData": data, "Html": template["html"] if template else None,
                  "Text": template["text"] if template else None}
        mime = self.render(source, p.get("Attachments") or [], smtp_id, now, _smtp_headers(p.get("SmtpHeaders")))
        mail = self.mail_row("SendEmail", None, message_id, now, address, rendering.fill(subject, data), template_id,
                             smtp_id, copy.deepcopy(p), source, mime)
        self._store_mail(mail, recipients, now)
        return {"MessageId": message_id}

    def _store_mail(self, mail: dict[str, Any], recipients: list[str], now: float) -> None:
        """Store an accepted mail with its recipients and planned delivery events, then wake the worker."""
        mail["rcpts"] = [(email, 0) for email in recipients]
        mail["events"] = [event for email in recipients for event in self.planned(mail, email, now)]
        self.store.add_mails([mail])
        self.settings.wake()

    # ---- SMTP (local.ses_smtp hands accepted messages here) ----------------------------------------

    def smtp_mail(self, sender: str, recipients: list[str], raw: bytes, headers: dict[str, str]) -> str:
        """Store a message the SMTP endpoint accepted, as SES would record it: SES's limits per
        recipient and per day, a MessageId of SES's own, the caller's Message-ID kept as `smtp_id`
        (callbacks carry it as `messageId`), delivery events planned. Returns the MessageId."""
        now = self.settings.clock()
        self.check_frequency(recipients, now)
        self.check_quota(len(recipients), now)
        message_id = self.new_message_id(now)
        smtp_id = headers.get("Message-ID", "").strip().strip("<>") or f"{uuid.uuid4()}@{sender.rpartition('@')[2]}"
        source = {"From": headers.get("From") or sender, "To": recipients, "Cc": [], "Bcc": [],
                  "ReplyTo": headers.get("Reply-To"), "Subject": headers.get("Subject", ""), "TemplateID": None,
                  "TemplateName": None, "TemplateData": None}
        mail = self.mail_row("SMTP", None, message_id, now, sender, headers.get("Subject", ""), None, smtp_id,
                             {"MailFrom": sender, "RcptTo": recipients}, source, raw)
        self._store_mail(mail, recipients, now)
        return message_id

    # ---- GetSendEmailStatus ------------------------------------------------------------------------

    def get_send_email_status(self, p: dict[str, Any]) -> dict[str, Any]:
        day = p.get("RequestDate")
        if not day:
            raise ApiError("MissingParameter", "The request is missing `RequestDate`.")
        try:
            if not isinstance(day, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day, re.ASCII):
                raise ValueError(day)
            wanted = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=BEIJING)
        except ValueError:
            raise ApiError("InvalidParameterValue.WrongDate", "RequestDate must be YYYY-MM-DD.") from None
        offset, limit = paging(p)
        now = self.settings.clock()
        if (datetime.fromtimestamp(now, BEIJING).date() - wanted.date()).days > STATUS_LOOKBACK_DAYS:
            raise ApiError("FailedOperation.NotSupportDate", "Only the last 90 days can be queried.")
        to = str(p.get("ToEmailAddress") or "").lower() or None
        rows = self.store.status_rows(wanted.timestamp(), (wanted + timedelta(days=1)).timestamp(),
                                          p.get("MessageId") or None, to, limit, offset)
        events: dict[tuple[str, str], list[sqlite3.Row]] = {}
        for event in self.store.events(sorted({r["message_id"] for r in rows})):
            if event["due"] <= now:  # what has happened by now
                events.setdefault((event["message_id"], event["email"]), []).append(event)
        out = []
        for row in rows:
            seen = events.get((row["message_id"], row["email"]), [])
            names = [e["event"] for e in seen]
            finals = [e for e in seen if e["event"] in ("delivered", "bounce", "dropped")]
            failures = [e for e in seen if e["event"] in ("bounce", "dropped", "deferred")]
            out.append({
                "MessageId": row["message_id"], "ToEmailAddress": row["email"], "FromEmailAddress": row["sender"],
                "SendStatus": row["send_status"],
                "DeliverStatus": 2 if row["send_status"] else delivery.deliver_status(names),
                "DeliverMessage": json.loads(failures[-1]["payload"]).get("reason", "") if failures else "",
                "RequestTime": int(row["request_time"]),
                "DeliverTime": int(finals[-1]["due"]) if finals else 0,
                "UserOpened": "open" in names, "UserClicked": "click" in names,
                "UserUnsubscribed": "unsubscribe" in names, "UserComplainted": "spamreport" in names,
            })
        return {"EmailStatusList": out}


def _check_template(p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    template = p.get("Template")
    if template is None:
        # Accounts without the legacy whitelist may only send templates.
        if p.get("Simple") is not None:
            raise ApiError("FailedOperation.WithOutPermission", "Only template sending is allowed.")
        raise ApiError("MissingParameter", "The request is missing `Template`.")
    if not isinstance(template, dict):
        raise ApiError("InvalidParameter", "`Template` must be an object.")
    template_id = template.get("TemplateID")
    if isinstance(template_id, bool) or not isinstance(template_id, int) or template_id <= 0:
        raise ApiError("FailedOperation.InvalidTemplateID", "The template ID is invalid or unavailable.")
    data = template.get("TemplateData")
    if data is None:
        raise ApiError("FailedOperation.MissingEmailContent", "TemplateData and Simple cannot both be empty.")
    # TemplateData is a JSON object serialised into a *string*, not a nested object.
    parsed = json_or_none(data) if isinstance(data, str) else None
    if not isinstance(parsed, dict):
        raise ApiError("FailedOperation.WrongContentJson", "TemplateData must be a JSON object string.")
    return template_id, parsed


def _check_attachments(attachments: Any) -> None:
    if not attachments:
        return
    if not isinstance(attachments, list):
        raise ApiError("InvalidParameter", "`Attachments` must be a list.")
    if len(attachments) > 10:
        raise ApiError("FailedOperation.TooManyAttachments", "At most 10 attachments are allowed.")
    total = 0
    for item in attachments:
        name = item.get("FileName") if isinstance(item, dict) else None
        if not isinstance(name, str) or not 1 <= len(name) <= 255:
            raise ApiError("FailedOperation.InvalidAttachName", "The attachment name is not supported.")
        try:
            content = base64.b64decode(item.get("Content") or "", validate=True)
        except (TypeError, ValueError):  # binascii.Error is a ValueError
            content = b""
        if not content:
            raise ApiError("InvalidParameterValue.AttachContentIsWrong", "Attachment content is not base64.")
        total += len(content)
    if total > MAX_ATTACH_BYTES:
        raise ApiError("FailedOperation.AttachContentToolarge", "Attachments exceed 4 MB in total.")


def _smtp_headers(raw: Any) -> dict[str, str]:
    """SmtpHeaders: a JSON object (as a string) of extra headers; anything else is ignored."""
    parsed = json_or_none(raw) if isinstance(raw, str) else raw
    if not isinstance(parsed, dict):
        return {}
    return {str(k): str(v) for k, v in parsed.items()
            if not any(c in str(k) + str(v) for c in "\r\n") and str(k).lower() not in _RESERVED_HEADERS}


_RESERVED_HEADERS = {"from", "to", "cc", "bcc", "subject", "date", "message-id", "mime-version", "content-type",
                     "content-transfer-encoding", "reply-to"}
