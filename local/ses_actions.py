"""What the emulated SES account does with each action: the rules Tencent documents, and state.

`SesEmulator` (the protocol: HTTP, TC3, faults) hands every authenticated request to one method
here by action name. Error codes are the ones Tencent's API pages and the SDK's errorcodes.py
give for the action (seeds 000-004); where Tencent documents none for a case, the closest
documented code is used and the comment says so.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import html as html_lib
import json
import logging
import re
import secrets
import sqlite3
import string
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable, Optional

from . import delivery, rendering
from .ses_common import (
    BEIJING,
    ApiError,
    bare_address,
    beijing_time,
    int_param,
    is_address,
    json_or_none,
    paging,
    parse_begin_time,
)

if TYPE_CHECKING:
    from .ses_emulator import SesEmulator

__all__ = ["Actions"]

log = logging.getLogger("sesmail.local")

STATUS_LOOKBACK_DAYS = 90  # FailedOperation.NotSupportDate: "only the last 90 days"
MAX_ATTACH_BYTES = 4 * 1024 * 1024  # decoded total, per the SDK's Attachment.Content doc
MAX_DETAILS_PER_CALL = 20_000  # CreateReceiverDetail[WithData]: "一次最大支持2万"
MAX_DETAILS_PER_LIST = 50_000  # "收件人列表中收件人地址的总量...目前是限制5万条"
MAX_TEMPLATE_DATA_BYTES = 800  # ReceiverInputData.TemplateData, the whole JSON
MAX_SENDERS_PER_DOMAIN = 10  # CreateEmailAddress: "up to 10 sender addresses for each domain"
TASK_CHUNK = 2_000  # recipients a batch task sends per worker pass, so callbacks keep flowing
# ListSendTasks / SendTaskData.TaskStatus
TASK_PENDING, TASK_SENDING, TASK_ERROR, TASK_DONE = 1, 5, 7, 10
# GetSendEmailStatus.SendStatus codes for refusals SES records per recipient
SEND_FREQUENCY_LIMIT, SEND_DAILY_LIMIT = 1006, 1010
_HTML_TAG_RE = re.compile(r"<\s*/?\s*[A-Za-z][^>]*>")
# A Message-ID the email package can write: RFC 5322 dot-atom text on both sides of the "@".
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_MESSAGE_ID = re.compile(_ATOM + "@" + _ATOM, re.ASCII)
_ID_ALPHABET = string.ascii_letters + string.digits


class Actions:
    """The action handlers of one emulated account; state lives in `emu.store`."""

    def __init__(self, emu: SesEmulator) -> None:
        self.emu = emu

    def table(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {
            "SendEmail": self.send_email,
            "BatchSendEmail": self.batch_send_email,
            "GetSendEmailStatus": self.get_send_email_status,
            "ListSendTasks": self.list_send_tasks,
            "CreateReceiver": self.create_receiver,
            "CreateReceiverDetail": self.create_receiver_detail,
            "CreateReceiverDetailWithData": self.create_receiver_detail_with_data,
            "ListReceivers": self.list_receivers,
            "ListReceiverDetails": self.list_receiver_details,
            "DeleteReceiver": self.delete_receiver,
            "CreateEmailTemplate": self.create_email_template,
            "UpdateEmailTemplate": self.update_email_template,
            "GetEmailTemplate": self.get_email_template,
            "ListEmailTemplates": self.list_email_templates,
            "DeleteEmailTemplate": self.delete_email_template,
            "CreateEmailAddress": self.create_email_address,
            "ListEmailAddress": self.list_email_address,
            "DeleteEmailAddress": self.delete_email_address,
            "UpdateEmailSmtpPassWord": self.update_email_smtp_password,
            "ListEmailIdentities": self.list_email_identities,
            "GetEmailIdentity": self.get_email_identity,
            "GetStatisticsReport": self.get_statistics_report,
            "ListBlackEmailAddress": self.list_black_email_address,
            "DeleteBlackList": self.delete_black_list,
        }

    # ---- SendEmail -------------------------------------------------------------------------------

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
        now = self.emu.clock()
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
        self.emu.store.add_mails([mail])
        self.emu.wake()

    def new_message_id(self, now: float) -> str:
        """SES's shape: `qcloudses-30-<AppId>-date-<Beijing YYYYmmddHHMMSS>-<13 letters and digits>`.

        Real ones: `qcloudses-30-251200670-date-20220601142439-8jolHvR2XcXC1` (the callback
        sample), `qcloudses-30-4123414323-date-20210101094334-syNARhMTbKI1` (GetSendEmailStatus'
        example). Tencent does not explain the `30` or the tail, which ends in `1` in every
        sample; the emulator copies the form, and 72 random bits keep its ids unique.
        """
        stamp = datetime.fromtimestamp(now, BEIJING).strftime("%Y%m%d%H%M%S")
        tail = "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))
        return f"qcloudses-30-{self.emu.app_id}-date-{stamp}-{tail}1"

    def sender_known(self, address: str) -> bool:
        return not self.emu.sender_check or self.emu.store.sender(address) is not None

    def usable_template(self, template_id: int, code: str) -> Optional[sqlite3.Row]:
        """The approved template, or None when unknown and template checking is off."""
        template = self.emu.store.template(template_id)
        if template is None:
            if self.emu.template_check:
                raise ApiError(code, "The template does not exist or has not been approved.")
            return None
        if self.template_status(template) != 0:
            raise ApiError(code, "The template does not exist or has not been approved.")
        return template

    def template_status(self, template: sqlite3.Row) -> int:
        """0 approved, 1 reviewing, 2 rejected: API templates pass review after a delay."""
        if template["status"] is not None:
            return int(template["status"])
        return 0 if self.emu.clock() >= template["approve_at"] else 1

    @staticmethod
    def check_variables(template: sqlite3.Row, data: dict[str, Any]) -> None:
        # Tencent: "模板变量与收件人列表参数不一一对应" (TemplateNotMatchData) is the documented code
        # closest to a variable the data leaves out; extra keys are tolerated.
        missing = [name for name in rendering.variables(template["html"], template["text"]) if name not in data]
        if missing:
            raise ApiError("InvalidParameterValue.TemplateNotMatchData",
                           f"TemplateData lacks the template variables: {', '.join(missing)}.")

    def check_frequency(self, recipients: list[str], now: float) -> None:
        limit = self.emu.recipient_hourly_limit
        if limit is None:
            return
        for email in recipients:
            if self.emu.store.count_to(email.lower(), now - 3600) >= limit:
                raise ApiError("FailedOperation.FrequencyLimit",
                               f"Too many mails to the same address: at most {limit} per hour.")

    def quota_left(self, now: float) -> Optional[int]:
        if self.emu.daily_quota is None:
            return None
        day = datetime.fromtimestamp(now, BEIJING).replace(hour=0, minute=0, second=0, microsecond=0)
        used = self.emu.store.count_between(day.timestamp(), (day + timedelta(days=1)).timestamp())
        return max(0, self.emu.daily_quota - used)

    def check_quota(self, count: int, now: float) -> None:
        left = self.quota_left(now)
        if left is not None and count > left:
            raise ApiError("FailedOperation.ExceedSendLimit",
                           f"The daily sending limit ({self.emu.daily_quota} mails) is reached.")

    @staticmethod
    def mail_row(action: str, task_id: Optional[int], message_id: str, now: float, sender: str, subject: str,
                 template_id: Optional[int], smtp_id: str, params: dict[str, Any], source: dict[str, Any],
                 mime: Optional[bytes]) -> dict[str, Any]:
        return {"action": action, "task_id": task_id, "message_id": message_id, "request_time": now,
                "sender": sender, "subject": subject, "template_id": template_id, "smtp_id": smtp_id,
                "params": params, "source": source, "mime": mime}

    def planned(self, mail: dict[str, Any], email: str, now: float) -> list[tuple]:
        return [self.event_row(mail, email, event, now + offset, extra)
                for offset, event, extra in delivery.planned_events(email, self.emu.deferred_seconds)]

    def event_row(self, mail: Any, email: str, event: str, due: float, extra: dict[str, str]) -> tuple:
        payload = delivery.callback_payload(
            event=event, email=email, message_id=mail["message_id"], timestamp=due, app_id=self.emu.app_id,
            sender=mail["sender"], template_id=mail["template_id"], subject=mail["subject"],
            smtp_id=mail["smtp_id"], task_id=mail["task_id"], extra=extra)
        return (email, event, due, payload, "pending" if self.emu.callback_url else "off")

    @staticmethod
    def render(source: dict[str, Any], attachments: list[dict[str, Any]], smtp_id: str, now: float,
               extra_headers: Optional[dict[str, str]] = None) -> bytes:
        data = source["TemplateData"]
        if source.get("Html") is None and source.get("Text") is None:
            # Template checking is off and SES would have its own copy: show the data instead.
            rows = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in data.items())
            html = (f"<p>TemplateID {source['TemplateID']} is not a template this emulator knows "
                    f"(templates/templates.json); its TemplateData:</p><table>{rows}</table>")
            text = f"TemplateID {source['TemplateID']} (unknown to the emulator); TemplateData:\n" + "".join(
                f"  {k}: {v}\n" for k, v in data.items())
        else:
            html = rendering.fill(source.get("Html") or "", data, escape=True)
            text = rendering.fill(source.get("Text") or "", data)
        return rendering.build_mime(
            header_from=rendering.display_sender(source["From"]), to=source["To"], cc=source["Cc"],
            reply_to=source.get("ReplyTo"), subject=rendering.fill(source["Subject"], data), html=html, text=text,
            attachments=attachments, smtp_id=smtp_id, date=now, extra_headers=extra_headers)

    # ---- SMTP (local.ses_smtp hands accepted messages here) ----------------------------------------

    def smtp_mail(self, sender: str, recipients: list[str], raw: bytes, headers: dict[str, str]) -> str:
        """Store a message the SMTP endpoint accepted, as SES would record it: SES's limits per
        recipient and per day, a MessageId of SES's own, the caller's Message-ID kept as `smtp_id`
        (callbacks carry it as `messageId`), delivery events planned. Returns the MessageId."""
        now = self.emu.clock()
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
        now = self.emu.clock()
        if (datetime.fromtimestamp(now, BEIJING).date() - wanted.date()).days > STATUS_LOOKBACK_DAYS:
            raise ApiError("FailedOperation.NotSupportDate", "Only the last 90 days can be queried.")
        to = str(p.get("ToEmailAddress") or "").lower() or None
        rows = self.emu.store.status_rows(wanted.timestamp(), (wanted + timedelta(days=1)).timestamp(),
                                          p.get("MessageId") or None, to, limit, offset)
        events: dict[tuple[str, str], list[sqlite3.Row]] = {}
        for event in self.emu.store.events(sorted({r["message_id"] for r in rows})):
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

    # ---- BatchSendEmail and its tasks -----------------------------------------------------------------

    def batch_send_email(self, p: dict[str, Any]) -> dict[str, Any]:
        template = p.get("Template")
        if not p.get("FromEmailAddress") or p.get("ReceiverId") is None or not isinstance(template, dict):
            raise ApiError("MissingParameter.SendParamNecessary",
                           "Sender address, recipient group, and email template are required.")
        receiver_id = int_param(p, "ReceiverId")
        subject = p.get("Subject")
        if not isinstance(subject, str) or not 1 <= len(subject) <= 100:
            raise ApiError("InvalidParameterValue.SubjectLengthError",
                           "The email subject must contain 1 to 100 characters.")
        task_type = p.get("TaskType")
        if task_type not in (1, 2, 3) or isinstance(task_type, bool):
            raise ApiError("InvalidParameterValue", "TaskType must be 1 (immediate), 2 (scheduled) or 3 (recurring).")
        now = self.emu.clock()
        next_run, interval = self._schedule(p, task_type, now)
        if p.get("Attachments"):
            # "Attachments.N ... This parameter is currently unavailable" (seed 001).
            raise ApiError("FailedOperation.NoAttachPermission", "Attachments are not supported for BatchSendEmail.")
        address = bare_address(p["FromEmailAddress"])
        if not self.sender_known(address):
            raise ApiError("OperationDenied.SendAddressStatusError",
                           "The sender address does not exist or hasn't been approved.")
        template_id = template.get("TemplateID")
        if isinstance(template_id, bool) or not isinstance(template_id, int) or template_id <= 0:
            raise ApiError("OperationDenied.TemplateStatusError",
                           "The email template does not exist or hasn't been approved.")
        row = self.usable_template(template_id, "OperationDenied.TemplateStatusError")
        data: Optional[dict[str, Any]] = None
        if template.get("TemplateData") is not None:
            data = json_or_none(template["TemplateData"]) if isinstance(template["TemplateData"], str) else None
            if not isinstance(data, dict):
                raise ApiError("InvalidParameterValue.TemplateDataError", "Template parameters must be in JSON format.")
        receiver = self.emu.store.receiver(receiver_id or 0)
        if receiver is None:
            raise ApiError("OperationDenied.ReceiverNotExist", "The recipient group does not exist.")
        if self.receiver_status(receiver) != 3 or receiver["count"] == 0:
            raise ApiError("OperationDenied.ReceiverStatusError",
                           "The recipient group is empty or hasn't been completely uploaded.")
        if row is not None:
            self._check_list_data(row, receiver_id or 0, data)
        task_id = self.emu.store.create_task({
            "task_type": task_type, "status": TASK_PENDING, "receiver_id": receiver_id,
            "receivers_name": receiver["name"], "params": dict(copy.deepcopy(p), _Interval=interval),
            "template": {"TemplateID": template_id, "TemplateName": row["name"] if row else None,
                         "Html": row["html"] if row else None, "Text": row["text"] if row else None},
            "created": now, "next_run": next_run, "request_count": receiver["count"]})
        self.emu.wake()
        return {"TaskId": task_id}

    def _schedule(self, p: dict[str, Any], task_type: int, now: float) -> tuple[float, Optional[float]]:
        """(first run, interval in seconds) of a task."""
        if task_type == 1:
            return now, None
        if task_type == 2:
            timed = p.get("TimedParam")
            if not isinstance(timed, dict) or not timed.get("BeginTime"):
                raise ApiError("MissingParameter.TimedParamNecessary",
                               "For a scheduled sending task, you must select the start time.")
            begin = self._begin(timed["BeginTime"], now)
            return begin, None
        cycle = p.get("CycleParam")
        if not isinstance(cycle, dict) or not cycle.get("BeginTime") or cycle.get("IntervalTime") is None:
            raise ApiError("MissingParameter.CycleParamNecessary",
                           "For a recurring sending task, you must select the start time and recurrence.")
        hours = cycle["IntervalTime"]
        if isinstance(hours, bool) or not isinstance(hours, int) or hours < 1:
            raise ApiError("InvalidParameterValue", "CycleParam.IntervalTime must be a positive number of hours.")
        return self._begin(cycle["BeginTime"], now), hours * 3600.0

    @staticmethod
    def _begin(value: Any, now: float) -> float:
        begin = parse_begin_time(value)
        if begin is None:
            raise ApiError("InvalidParameterValue", "BeginTime must be `YYYY-MM-DD HH:MM:SS` (Beijing time).")
        if begin < now:
            raise ApiError("InvalidParameterValue.BeginTimeBeforeNow",
                           "The start time cannot be earlier than the current time.")
        return begin

    def _check_list_data(self, template: sqlite3.Row, receiver_id: int, data: Optional[dict[str, Any]]) -> None:
        names = rendering.variables(template["html"], template["text"])
        if not names:
            return
        after = 0
        while True:
            rows = self.emu.store.details(receiver_id, after, 5000)
            if not rows:
                return
            for row in rows:
                own = json_or_none(row["template_data"]) if row["template_data"] else None
                merged = own if isinstance(own, dict) else (data or {})
                if any(name not in merged for name in names):
                    raise ApiError("InvalidParameterValue.TemplateNotMatchData",
                                   "Template variables do not match recipient list parameters.")
            after = rows[-1]["id"]

    def run_due_tasks(self, now: float) -> None:
        """Send the next chunk of every task that is due (the worker calls this)."""
        for task in self.emu.store.due_tasks(now):
            try:
                self._run_chunk(task, now)
            except Exception as exc:  # an emulator bug must not wedge the worker on one task
                log.exception("batch task %s failed", task["id"])
                self.emu.store.update_task(task["id"], status=TASK_ERROR, err=f"emulator error: {exc!r}",
                                           updated=now)

    def _run_chunk(self, task: sqlite3.Row, now: float) -> None:
        store = self.emu.store
        receiver = store.receiver(task["receiver_id"])
        if receiver is None:
            store.update_task(task["id"], status=TASK_ERROR, err="The recipient group does not exist.", updated=now)
            return
        params = json.loads(task["params"])
        template = json.loads(task["template"])
        request_count, send_count = task["request_count"], task["send_count"]
        if task["cursor"] == 0 and task["status"] == TASK_PENDING and send_count:
            request_count += receiver["count"]  # a recurring task's next run
        rows = store.details(task["receiver_id"], task["cursor"], TASK_CHUNK)
        shared = json_or_none((params.get("Template") or {}).get("TemplateData") or "")
        address = bare_address(params["FromEmailAddress"])
        domain = address.rpartition("@")[2]
        quota = self.quota_left(now)
        sent_now: dict[str, int] = {}  # mails of this chunk per recipient, not stored yet
        mails = []
        for row in rows:
            own = json_or_none(row["template_data"]) if row["template_data"] else None
            data = own if isinstance(own, dict) else (shared if isinstance(shared, dict) else {})
            email = row["email"]
            message_id = self.new_message_id(now)
            smtp_id = f"{uuid.uuid4()}@{domain}"
            source = {"From": params["FromEmailAddress"], "To": [email], "Cc": [], "Bcc": [],
                      "ReplyTo": params.get("ReplyToAddresses"), "Subject": params["Subject"],
                      "TemplateID": template["TemplateID"], "TemplateName": template["TemplateName"],
                      "TemplateData": data}
            # Rendered when first read: a 50,000-recipient task would otherwise spend a minute of CPU
            # on MIME nobody looks at. The template was copied into the task when it was created.
            mail = self.mail_row("BatchSendEmail", task["id"], message_id, now, address,
                                 rendering.fill(params["Subject"], data), template["TemplateID"], smtp_id,
                                 {"ReceiverId": task["receiver_id"], "Email": email}, source, None)
            status = 0
            limit = self.emu.recipient_hourly_limit
            if limit is not None and store.count_to(email.lower(), now - 3600) + sent_now.get(
                    email.lower(), 0) >= limit:
                status = SEND_FREQUENCY_LIMIT
            elif quota is not None:
                if quota <= 0:
                    status = SEND_DAILY_LIMIT
                else:
                    quota -= 1
            mail["rcpts"] = [(email, status)]
            if not status:
                sent_now[email.lower()] = sent_now.get(email.lower(), 0) + 1
            if status:
                reason = "frequency limit" if status == SEND_FREQUENCY_LIMIT else "daily sending limit reached"
                mail["events"] = [self.event_row(mail, email, "dropped", now, {"reason": reason})]
            else:
                mail["events"] = self.planned(mail, email, now)
            mails.append(mail)
        send_count += len(rows)
        columns: dict[str, Any] = {"send_count": send_count, "request_count": request_count, "updated": now}
        if len(rows) == TASK_CHUNK:
            columns.update(status=TASK_SENDING, cursor=rows[-1]["id"],
                           cache_count=max(0, request_count - send_count))
        elif params.get("_Interval"):
            columns.update(status=TASK_PENDING, cursor=0, cache_count=0,
                           next_run=task["next_run"] + params["_Interval"] * max(
                               1, int((now - task["next_run"]) // params["_Interval"]) + 1))
        else:
            columns.update(status=TASK_DONE, cursor=rows[-1]["id"] if rows else task["cursor"], cache_count=0)
        store.add_mails(mails, task["id"], **columns)

    def list_send_tasks(self, p: dict[str, Any]) -> dict[str, Any]:
        offset, limit = paging(p)
        total, rows = self.emu.store.tasks(int_param(p, "Status", required=False),
                                           int_param(p, "ReceiverId", required=False),
                                           int_param(p, "TaskType", required=False), limit, offset)
        data = []
        for row in rows:
            params = json.loads(row["params"])
            template = params.get("Template") or {}
            data.append({
                "TaskId": row["id"], "FromEmailAddress": params.get("FromEmailAddress"),
                "ReceiverId": row["receiver_id"], "TaskStatus": row["status"], "TaskType": row["task_type"],
                "RequestCount": row["request_count"], "SendCount": row["send_count"],
                "CacheCount": row["cache_count"], "CreateTime": beijing_time(row["created"]),
                "UpdateTime": beijing_time(row["updated"]), "Subject": params.get("Subject"),
                "Template": {"TemplateID": template.get("TemplateID"),
                             "TemplateData": template.get("TemplateData") or ""},
                "CycleParam": params.get("CycleParam"), "TimedParam": params.get("TimedParam"),
                "ErrMsg": row["err"], "ReceiversName": row["receivers_name"]})
        return {"TotalCount": total, "Data": data}

    # ---- recipient lists --------------------------------------------------------------------------------

    def receiver_status(self, receiver: sqlite3.Row) -> int:
        """1 waiting for an upload, 2 uploading, 3 done: uploads finish asynchronously at SES."""
        if receiver["ready_at"] is None:
            return 1
        return 3 if self.emu.clock() >= receiver["ready_at"] else 2

    def create_receiver(self, p: dict[str, Any]) -> dict[str, Any]:
        name, desc = p.get("ReceiversName"), p.get("Desc")
        if not isinstance(name, str) or not name.strip() or len(name) > 200 or _has_control(name):
            raise ApiError("InvalidParameterValue.ReceiverNameIllegal", "The recipient list name is not valid.")
        if desc is not None and (not isinstance(desc, str) or not 1 <= len(desc) <= 300 or _has_control(desc)):
            # ReceiverDescIllegal: "no special characters, 1-300 characters" (errorcodes.py)
            raise ApiError("InvalidParameterValue.ReceiverDescIllegal", "The description must be 1-300 characters.")
        receiver_id = self.emu.store.create_receiver(name, desc or "", self.emu.clock())
        if receiver_id is None:
            raise ApiError("InvalidParameterValue.RepeatReceiverName", "A recipient list has this name already.")
        return {"ReceiverId": receiver_id}

    def create_receiver_detail(self, p: dict[str, Any]) -> dict[str, Any]:
        receiver = self._receiver_for_upload(p)
        emails = p.get("Emails")
        if not isinstance(emails, list) or not emails:
            raise ApiError("MissingParameter.EmailsNecessary", "Recipient addresses are required.")
        return self._upload(receiver, [(e, "") for e in emails])

    def create_receiver_detail_with_data(self, p: dict[str, Any]) -> dict[str, Any]:
        receiver = self._receiver_for_upload(p)
        datas = p.get("Datas")
        if not isinstance(datas, list) or not datas:
            raise ApiError("MissingParameter.EmailsNecessary", "Recipient addresses are required.")
        rows = []
        for item in datas:
            if not isinstance(item, dict):
                raise ApiError("InvalidParameter", "Datas must be a list of {Email, TemplateData} objects.")
            data = item.get("TemplateData")
            if data is None or data == "":
                rows.append((item.get("Email"), ""))
                continue
            parsed = json_or_none(data) if isinstance(data, str) else None
            if not isinstance(parsed, dict):
                raise ApiError("InvalidParameterValue.TemplateDataError", "Template parameters must be in JSON format.")
            if len(data.encode("utf-8")) > MAX_TEMPLATE_DATA_BYTES:
                raise ApiError("InvalidParameterValue.TemplateDataLenLimit",
                               f"TemplateData exceeds {MAX_TEMPLATE_DATA_BYTES} bytes for one recipient.")
            if any(isinstance(v, (dict, list)) or (isinstance(v, str) and _HTML_TAG_RE.search(v))
                   for v in parsed.values()):
                raise ApiError("InvalidParameterValue.InValidTemplateData",
                               "Template parameters of a recipient cannot contain HTML tags or nested values.")
            rows.append((item.get("Email"), data))
        return self._upload(receiver, rows)

    def _receiver_for_upload(self, p: dict[str, Any]) -> sqlite3.Row:
        if p.get("ReceiverId") is None:
            raise ApiError("MissingParameter.ReceiverIdNecessary", "The recipient list ID is required.")
        receiver = self.emu.store.receiver(int_param(p, "ReceiverId") or 0)
        if receiver is None:
            raise ApiError("OperationDenied.ReceiverNotExist", "The recipient group does not exist.")
        if self.receiver_status(receiver) == 2:
            raise ApiError("OperationDenied.ReceiverIsOperating",
                           "The recipient list is being uploaded; try again once its status is 3.")
        return receiver

    def _upload(self, receiver: sqlite3.Row, items: list[tuple[Any, str]]) -> dict[str, Any]:
        if len(items) > MAX_DETAILS_PER_CALL:
            raise ApiError("LimitExceeded.ReceiverDetailRequestLimit",
                           f"At most {MAX_DETAILS_PER_CALL} recipients per request.")
        if receiver["count"] + receiver["invalid"] + len(items) > MAX_DETAILS_PER_LIST:
            raise ApiError("LimitExceeded.ReceiverDetailCountLimit",
                           f"A recipient list holds at most {MAX_DETAILS_PER_LIST} addresses.")
        rows, seen = [], set()
        counts = {"TotalCount": len(items), "ValidCount": 0, "TooLongCount": 0, "EmptyEmailCount": 0,
                  "RepeatCount": 0}
        for email, data in items:
            if not isinstance(email, str) or not email.strip():
                counts["EmptyEmailCount"] += 1
                continue
            email = email.strip()
            if len(email) > 254:
                counts["TooLongCount"] += 1
                continue
            if email.lower() in seen:
                # SES does not deduplicate ("需要用户自己保证收件人地址不重复"): counted, and kept.
                counts["RepeatCount"] += 1
            seen.add(email.lower())
            if is_address(email):
                rows.append((email, data, 1, ""))
                counts["ValidCount"] += 1
            else:
                rows.append((email, data, 2, "invalid address"))
        now = self.emu.clock()
        self.emu.store.add_details(receiver["id"], rows, now, now + self.emu.receiver_upload_seconds)
        return counts

    def list_receivers(self, p: dict[str, Any]) -> dict[str, Any]:
        offset, limit = paging(p)
        status = int_param(p, "Status", required=False)
        keyword = p.get("KeyWord")
        rows = [(r, self.receiver_status(r)) for r in self.emu.store.receivers(keyword if keyword else None)]
        if status is not None:
            rows = [(r, s) for r, s in rows if s == status]
        data = [{"ReceiverId": r["id"], "ReceiversName": r["name"], "Count": r["count"], "Desc": r["description"],
                 "ReceiversStatus": s, "CreateTime": beijing_time(r["created"]), "InvalidCount": r["invalid"]}
                for r, s in rows[offset:offset + limit]]
        return {"TotalCount": len(rows), "Data": data}

    def list_receiver_details(self, p: dict[str, Any]) -> dict[str, Any]:
        offset, limit = paging(p)
        receiver_id = int_param(p, "ReceiverId")
        receiver = self.emu.store.receiver(receiver_id or 0)
        if receiver is None:
            raise ApiError("OperationDenied.ReceiverNotExist", "The recipient group does not exist.")
        total, rows = self.emu.store.detail_page(receiver["id"], p.get("Email") or None,
                                                 int_param(p, "Status", required=False), limit, offset)
        data = [{"Email": r["email"], "CreateTime": beijing_time(r["created"]), "TemplateData": r["template_data"],
                 "Reason": r["reason"], "Status": r["status"], "EmailId": r["id"]} for r in rows]
        return {"TotalCount": total, "Data": data, "ValidCount": receiver["count"],
                "InvalidCount": receiver["invalid"]}

    def delete_receiver(self, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("ReceiverId") is None:
            raise ApiError("MissingParameter.ReceiverIdNecessary", "The recipient list ID is required.")
        if not self.emu.store.delete_receiver(int_param(p, "ReceiverId") or 0):
            raise ApiError("OperationDenied.ReceiverNotExist", "The recipient group does not exist.")
        return {}

    # ---- templates ------------------------------------------------------------------------------------

    def create_email_template(self, p: dict[str, Any]) -> dict[str, Any]:
        name = _template_name(p)
        html, text = _template_content(p)
        now = self.emu.clock()
        template_id = self.emu.store.create_template(name, html, text, now, now + self.emu.template_review_seconds)
        return {"TemplateID": template_id}

    def update_email_template(self, p: dict[str, Any]) -> dict[str, Any]:
        template_id = int_param(p, "TemplateID") or 0
        name = _template_name(p)
        html, text = _template_content(p)
        if self.emu.store.template(template_id) is None:
            raise ApiError("InvalidParameterValue.TemplateNotExist", "The template does not exist.")
        # UpdateEmailTemplate's doc: an updated template must pass review again.
        self.emu.store.update_template(template_id, name, html, text,
                                       self.emu.clock() + self.emu.template_review_seconds)
        return {}

    def get_email_template(self, p: dict[str, Any]) -> dict[str, Any]:
        template = self.emu.store.template(int_param(p, "TemplateID") or 0)
        if template is None:
            raise ApiError("InvalidParameterValue.TemplateNotExist", "The template does not exist.")
        return {"TemplateContent": {"Html": _b64(template["html"]), "Text": _b64(template["text"])},
                "TemplateStatus": self.template_status(template), "TemplateName": template["name"]}

    def list_email_templates(self, p: dict[str, Any]) -> dict[str, Any]:
        offset, limit = paging(p)
        rows = self.emu.store.templates(limit, offset)
        metadata = [{"CreatedTimestamp": int(r["created"]), "TemplateName": r["name"],
                     "TemplateStatus": self.template_status(r), "TemplateID": r["id"], "ReviewReason": r["reason"]}
                    for r in rows]
        return {"TemplatesMetadata": metadata, "TotalCount": self.emu.store.template_count()}

    def delete_email_template(self, p: dict[str, Any]) -> dict[str, Any]:
        if not self.emu.store.delete_template(int_param(p, "TemplateID") or 0):
            raise ApiError("InvalidParameterValue.TemplateNotExist", "The template does not exist.")
        return {}

    # ---- sender addresses -------------------------------------------------------------------------------

    def create_email_address(self, p: dict[str, Any]) -> dict[str, Any]:
        address, name = p.get("EmailAddress"), p.get("EmailSenderName")
        if not address:
            raise ApiError("MissingParameter", "The request is missing `EmailAddress`.")
        if not is_address(address) or len(address) > 254:
            raise ApiError("InvalidParameterValue.IllegalEmailAddress", "The email address is not valid.")
        if name is not None and (not isinstance(name, str) or ":" in name or _has_control(name)):
            raise ApiError("InvalidParameterValue.IllegalSenderName", "The sender alias is incorrect.")
        domain = address.rpartition("@")[2].lower()
        # Domains are not modelled beyond this: `emu.unverified_domains`, and any domain whose first
        # label is `unverified` (unverified.example.com), count as unverified; every other is verified.
        if domain in self.emu.unverified_domains or domain.split(".")[0] == "unverified":
            raise ApiError("OperationDenied.DomainNotVerified",
                           "Domain verification failed. Check whether the domain has passed verification.")
        if sum(1 for s in self.emu.store.senders() if s["address"].endswith("@" + domain)) >= MAX_SENDERS_PER_DOMAIN:
            raise ApiError("OperationDenied.ExceedSenderLimit", "The number of sender addresses exceeds the limit.")
        if not self.emu.store.add_sender(address, name or "", self.emu.clock()):
            raise ApiError("InvalidParameterValue.RepeatEmailAddress", "This email address already exists.")
        return {}

    def list_email_address(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"EmailSenders": [{"EmailAddress": s["address"], "EmailSenderName": s["name"],
                                  "CreatedTimestamp": int(s["created"]), "SmtpPwdType": 1 if s["smtp_password"] else 0}
                                 for s in self.emu.store.senders()]}

    def delete_email_address(self, p: dict[str, Any]) -> dict[str, Any]:
        address = p.get("EmailAddress")
        if not address:
            raise ApiError("MissingParameter", "The request is missing `EmailAddress`.")
        if not self.emu.store.delete_sender(str(address)):
            raise ApiError("InvalidParameterValue.NoSuchSender", "You have no such sender address.")
        return {}

    def update_email_smtp_password(self, p: dict[str, Any]) -> dict[str, Any]:
        """The SMTP password of one sender address; the emulated SMTP interface then takes it (and
        no longer the shared dev password) for that address."""
        password, address = p.get("Password"), p.get("EmailAddress")
        for name, value in (("Password", password), ("EmailAddress", address)):
            if value is None or value == "":
                raise ApiError("MissingParameter", f"The request is missing `{name}`.")
        sender = self.emu.store.sender(address) if isinstance(address, str) else None
        if sender is None:
            raise ApiError("InvalidParameterValue.NoSuchSender", "You have no such sender address.")
        if not isinstance(password, str) or not _strong_smtp_password(password):
            raise ApiError("InvalidParameterValue.InvalidSmtpPassWord",
                           "The password must be 10-20 characters with at least 2 different digits, "
                           "2 different lowercase and 2 different uppercase letters.")
        if sender["smtp_password"] == password:
            raise ApiError("OperationDenied.RepeatPassWord", "The password cannot be the same as the previous one.")
        self.emu.store.set_smtp_password(sender["address"], password)
        return {}

    # ---- sender domains ----------------------------------------------------------------------------------

    def identities(self) -> list[str]:
        """The sender domains: those of the known sender addresses, all verified (domains and their
        DNS are not modelled beyond `CreateEmailAddress`'s check)."""
        return sorted({s["address"].rpartition("@")[2].lower() for s in self.emu.store.senders()})

    def list_email_identities(self, p: dict[str, Any]) -> dict[str, Any]:
        domains = self.identities()
        # Limit and Offset are optional here; without them the first 100 (Limit's maximum elsewhere).
        offset, limit = paging({"Offset": p.get("Offset") or 0, "Limit": 100 if p.get("Limit") is None else p["Limit"]})
        quota = self.emu.daily_quota or 0  # 0: the emulator enforces no daily quota
        page = [{"IdentityName": domain, "IdentityType": "DOMAIN", "SendingEnabled": True,
                 "CurrentReputationLevel": REPUTATION_LEVEL, "DailyQuota": quota, "SendIp": [], "TagList": [],
                 "DKIMOption": 0} for domain in domains[offset:offset + limit]]
        return {"EmailIdentities": page, "MaxReputationLevel": REPUTATION_LEVEL, "MaxDailyQuota": quota,
                "Total": len(domains)}

    def get_email_identity(self, p: dict[str, Any]) -> dict[str, Any]:
        name = p.get("EmailIdentity")
        if name is None or name == "":
            raise ApiError("MissingParameter", "The request is missing `EmailIdentity`.")
        if not isinstance(name, str) or "@" in name or not is_address("x@" + name):
            raise ApiError("InvalidParameterValue.InvalidEmailIdentity", "The domain is not valid.")
        if name.lower() not in self.identities():
            raise ApiError("InvalidParameterValue.NotExistDomain",
                           "The domain has not been created; create the sender domain first.")
        return {"IdentityType": "DOMAIN", "VerifiedForSendingStatus": True, "Attributes": _dns_records(name.lower()),
                "DKIMOption": 0, "TagList": []}

    # ---- statistics ---------------------------------------------------------------------------------------

    def get_statistics_report(self, p: dict[str, Any]) -> dict[str, Any]:
        """Volumes per Beijing day of sending, from what the emulator stored: RequestCount every
        recipient asked for, AcceptedCount those not refused (frequency, quota), then what happened
        by now: recipients delivered, bounced (hard or soft), who clicked or unsubscribed, and every
        open (the Volume doc: "打开邮件总次数", opens in total). Days without mail are left out, as in
        Tencent's example answer; OverallVolume's SendDate is StartDate, as there."""
        start, end = _date_param(p, "StartDate"), _date_param(p, "EndDate")
        if end < start:
            raise ApiError("InvalidParameterValue.WrongDate", "EndDate must not be before StartDate.")
        domain = str(p.get("Domain") or "").lower()
        mailbox = str(p.get("ReceivingMailboxType") or "").lower()
        low, high = start.timestamp(), (end + timedelta(days=1)).timestamp()
        days: dict[str, dict[str, int]] = {}
        sent_on: dict[tuple[str, str], str] = {}  # (MessageId, recipient) -> day
        for row in self.emu.store.volume_rows(low, high):
            if ((domain and row["sender"].rpartition("@")[2].lower() != domain)
                    or (mailbox and row["email_lc"].rpartition("@")[2] != mailbox)):
                continue
            day = datetime.fromtimestamp(row["request_time"], BEIJING).strftime("%Y-%m-%d")
            volume = days.setdefault(day, dict.fromkeys(_VOLUME_COUNTS, 0))
            volume["RequestCount"] += 1
            volume["AcceptedCount"] += int(row["send_status"] == 0)
            sent_on[(row["message_id"], row["email_lc"])] = day
        once: set[tuple[str, str, str]] = set()
        for event in self.emu.store.volume_events(low, high, self.emu.clock()):
            key = (event["message_id"], event["email"].lower())
            field = _VOLUME_EVENTS.get(event["event"])
            if key not in sent_on or field is None or (field != "OpenedCount" and (*key, field) in once):
                continue
            once.add((*key, field))
            days[sent_on[key]][field] += 1
        overall = {name: sum(volume[name] for volume in days.values()) for name in _VOLUME_COUNTS}
        return {"DailyVolumes": [dict(SendDate=day, **days[day]) for day in sorted(days)],
                "OverallVolume": dict(SendDate=start.strftime("%Y-%m-%d"), **overall)}

    # ---- the blocklist --------------------------------------------------------------------------------------

    def blacklist(self) -> list[tuple[float, str, str]]:
        """(since, address, reason) of every address on SES's blocklist now, oldest first: a hard
        bounce puts the recipient there ("In the case of a hard bounce, Tencent Cloud will blocklist
        the recipient address", ListBlackEmailAddress's doc), DeleteBlackList takes it off, and
        `SesEmulator.blacklist_add` puts one there by hand."""
        now = self.emu.clock()
        changes: list[tuple[float, int, str, str, str]] = []
        for row in self.emu.store.bounces(now):
            payload = json_or_none(row["payload"]) or {}
            if payload.get("bounceType") == "hard_bounce":
                changes.append((row["due"], 0, "add", row["email"], str(payload.get("reason") or "")))
        for row in self.emu.store.blacklist_changes(now):
            changes.append((row["at"], 1, row["kind"], row["email"], row["reason"]))
        listed: dict[str, tuple[float, str, str]] = {}
        for at, _, kind, email, reason in sorted(changes, key=lambda change: change[:2]):
            if kind == "add":
                listed.setdefault(email.lower(), (at, email, reason))
            else:
                listed.pop(email.lower(), None)
        return sorted(listed.values())

    def list_black_email_address(self, p: dict[str, Any]) -> dict[str, Any]:
        start, end = _date_param(p, "StartDate"), _date_param(p, "EndDate")
        offset, limit = paging(p)
        wanted = str(p.get("EmailAddress") or "").lower()
        rows = [(at, email, reason) for at, email, reason in self.blacklist()
                if start.date() <= datetime.fromtimestamp(at, BEIJING).date() <= end.date()
                and (not wanted or email.lower() == wanted)]
        return {"BlackList": [{"BounceTime": beijing_time(at), "EmailAddress": email, "IspDesc": reason}
                              for at, email, reason in rows[offset:offset + limit]],
                "TotalCount": len(rows)}

    def delete_black_list(self, p: dict[str, Any]) -> dict[str, Any]:
        emails = p.get("EmailAddressList")
        if emails is None:
            raise ApiError("MissingParameter", "The request is missing `EmailAddressList`.")
        if not isinstance(emails, list) or not emails or not all(isinstance(e, str) and e for e in emails):
            raise ApiError("InvalidParameterValue", "EmailAddressList must list at least one address.")
        now = self.emu.clock()
        for email in emails:  # an address not on the list is simply not there afterwards either
            self.emu.store.add_blacklist_change(email, now, "remove")
        return {}


# ---- helpers -------------------------------------------------------------------------------------

REPUTATION_LEVEL = 1  # a new account's (ListEmailIdentities); reputation is not modelled
_VOLUME_COUNTS = ("RequestCount", "AcceptedCount", "DeliveredCount", "OpenedCount", "ClickedCount", "BounceCount",
                  "UnsubscribeCount")
_VOLUME_EVENTS = {"delivered": "DeliveredCount", "open": "OpenedCount", "click": "ClickedCount",
                  "bounce": "BounceCount", "unsubscribe": "UnsubscribeCount"}


def _date_param(p: dict[str, Any], name: str) -> datetime:
    """A required `YYYY-MM-DD` field as Beijing midnight."""
    value = p.get(name)
    if value is None or value == "":
        raise ApiError("MissingParameter", f"The request is missing `{name}`.")
    try:
        if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value, re.ASCII):
            raise ValueError(name)
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=BEIJING)
    except ValueError:
        raise ApiError("InvalidParameterValue.WrongDate", f"{name} must be a date, YYYY-MM-DD.") from None


def _strong_smtp_password(password: str) -> bool:
    """SES's rule (the SDK's errorcodes.py, InvalidSmtpPassWord): 10 to 20 characters, with at least
    2 different digits, 2 different lowercase and 2 different uppercase letters."""
    classes = (string.digits, string.ascii_lowercase, string.ascii_uppercase)
    return 10 <= len(password) <= 20 and all(len({c for c in password if c in chars}) >= 2 for chars in classes)


def _dns_records(domain: str) -> list[dict[str, Any]]:
    """What GetEmailIdentity lists for a verified domain: the SPF record of Tencent's
    CreateEmailIdentity example and a DKIM key at `qcloud._domainkey.<domain>` as in its
    GetEmailIdentity example (this key is the emulator's own, made up)."""
    key = base64.b64encode(hashlib.sha256(("sesmail-local-dkim:" + domain).encode()).digest()).decode()
    records = [("TXT", domain, "v=spf1 include:qcloudmail.com ~all"),
               ("TXT", "qcloud._domainkey." + domain, "v=DKIM1; k=rsa; p=" + key)]
    return [{"Type": kind, "SendDomain": name, "ExpectedValue": value, "CurrentValue": value, "Status": True}
            for kind, name, value in records]

def _esc(value: Any) -> str:
    return html_lib.escape(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))


def _has_control(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


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


def _template_name(p: dict[str, Any]) -> str:
    name = p.get("TemplateName")
    if name is None or name == "":
        raise ApiError("InvalidParameterValue.TemplateNameIsNULL", "The template name cannot be empty.")
    if not isinstance(name, str) or len(name) > 255 or _has_control(name):
        raise ApiError("InvalidParameterValue.TemplateNameIllegal", "The template name is not valid.")
    return name


def _template_content(p: dict[str, Any]) -> tuple[str, str]:
    content = p.get("TemplateContent")
    if not isinstance(content, dict) or not (content.get("Html") or content.get("Text")):
        raise ApiError("InvalidParameterValue.TemplateContentIsNULL", "Html or Text is required.")
    parts = []
    for key in ("Html", "Text"):
        raw = content.get(key) or ""
        try:
            parts.append(base64.b64decode(raw, validate=True).decode("utf-8") if raw else "")
        except (TypeError, ValueError, binascii.Error):
            raise ApiError("InvalidParameterValue.TemplateContentIsWrong",
                           f"TemplateContent.{key} must be base64 of UTF-8 text.") from None
    return parts[0], parts[1]
