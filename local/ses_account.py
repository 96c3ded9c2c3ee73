"""The emulated SES account that every action family shares: its settings, and the rules and
records more than one action needs (MessageIds, known senders and templates, SES's per-recipient
and daily limits, stored mails and their delivery events).

`SesEmulator` (the protocol: HTTP, signatures, faults) owns the settings and hands them in as an
`AccountSettings`; the action families (`ses_sending`, `ses_batch`, `ses_receivers`,
`ses_identities`, `ses_reports`) are `Account`s, and so is what the mail page reads. Nothing here
imports the emulator: the arrows point from the server to the actions to the store.
See docs/local-stack.md for what the emulator models.
"""

from __future__ import annotations

import html as html_lib
import json
import re
import secrets
import sqlite3
import string
from datetime import datetime, timedelta
from typing import Any, Callable, Optional, Protocol

from . import delivery, rendering
from .mailstore import MailStore
from .ses_common import BEIJING, ApiError

__all__ = ["Account", "AccountSettings"]

_ID_ALPHABET = string.ascii_letters + string.digits


class AccountSettings(Protocol):
    """What the actions read of the emulator's configuration (all of it set on `SesEmulator`)."""

    store: MailStore
    clock: Callable[[], float]  # "now" for mails, limits, tasks and reviews
    app_id: str  # in MessageIds, and the `username` of callbacks
    sender_check: bool  # False: any sender is accepted
    template_check: bool  # True: a TemplateID the emulator does not know is refused
    unverified_domains: set[str]
    recipient_hourly_limit: Optional[int]
    daily_quota: Optional[int]
    callback_url: Optional[str]
    deferred_seconds: float
    receiver_upload_seconds: float
    template_review_seconds: float

    def wake(self) -> None:
        """New work for the delivery worker (a send, a task, an event)."""


class Account:
    """The rules and records shared by the action families; state lives in `settings.store`."""

    def __init__(self, settings: AccountSettings) -> None:
        self.settings = settings

    @property
    def store(self) -> MailStore:
        return self.settings.store

    def new_message_id(self, now: float) -> str:
        """SES's shape: `qcloudses-30-<AppId>-date-<Beijing YYYYmmddHHMMSS>-<13 letters and digits>`.

        Real ones: `qcloudses-30-251200670-date-20220601142439-8jolHvR2XcXC1` (the callback
        sample), `qcloudses-30-4123414323-date-20210101094334-syNARhMTbKI1` (GetSendEmailStatus'
        example). Tencent does not explain the `30` or the tail, which ends in `1` in every
        sample; the emulator copies the form, and 72 random bits keep its ids unique.
        """
        stamp = datetime.fromtimestamp(now, BEIJING).strftime("%Y%m%d%H%M%S")
        tail = "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))
        return f"qcloudses-30-{self.settings.app_id}-date-{stamp}-{tail}1"

    def sender_known(self, address: str) -> bool:
        return not self.settings.sender_check or self.store.sender(address) is not None

    def usable_template(self, template_id: int, code: str) -> Optional[sqlite3.Row]:
        """The approved template, or None when unknown and template checking is off."""
        template = self.store.template(template_id)
        if template is None:
            if self.settings.template_check:
                raise ApiError(code, "The template does not exist or has not been approved.")
            return None
        if self.template_status(template) != 0:
            raise ApiError(code, "The template does not exist or has not been approved.")
        return template

    def template_status(self, template: sqlite3.Row) -> int:
        """0 approved, 1 reviewing, 2 rejected: API templates pass review after a delay."""
        if template["status"] is not None:
            return int(template["status"])
        return 0 if self.settings.clock() >= template["approve_at"] else 1

    @staticmethod
    def check_variables(template: sqlite3.Row, data: dict[str, Any]) -> None:
        # Tencent: "模板变量与收件人列表参数不一一对应" (TemplateNotMatchData) is the documented code
        # closest to a variable the data leaves out; extra keys are tolerated.
        missing = [name for name in rendering.variables(template["html"], template["text"]) if name not in data]
        if missing:
            raise ApiError("InvalidParameterValue.TemplateNotMatchData",
                           f"TemplateData lacks the template variables: {', '.join(missing)}.")

    def check_frequency(self, recipients: list[str], now: float) -> None:
        limit = self.settings.recipient_hourly_limit
        if limit is None:
            return
        for email in recipients:
            if self.store.count_to(email.lower(), now - 3600) >= limit:
                raise ApiError("FailedOperation.FrequencyLimit",
                               f"Too many mails to the same address: at most {limit} per hour.")

    def quota_left(self, now: float) -> Optional[int]:
        if self.settings.daily_quota is None:
            return None
        day = datetime.fromtimestamp(now, BEIJING).replace(hour=0, minute=0, second=0, microsecond=0)
        used = self.store.count_between(day.timestamp(), (day + timedelta(days=1)).timestamp())
        return max(0, self.settings.daily_quota - used)

    def check_quota(self, count: int, now: float) -> None:
        left = self.quota_left(now)
        if left is not None and count > left:
            raise ApiError("FailedOperation.ExceedSendLimit",
                           f"The daily sending limit ({self.settings.daily_quota} mails) is reached.")

    @staticmethod
    def mail_row(action: str, task_id: Optional[int], message_id: str, now: float, sender: str, subject: str,
                 template_id: Optional[int], smtp_id: str, params: dict[str, Any], source: dict[str, Any],
                 mime: Optional[bytes]) -> dict[str, Any]:
        return {"action": action, "task_id": task_id, "message_id": message_id, "request_time": now,
                "sender": sender, "subject": subject, "template_id": template_id, "smtp_id": smtp_id,
                "params": params, "source": source, "mime": mime}

    def planned(self, mail: dict[str, Any], email: str, now: float) -> list[tuple]:
        return [self.event_row(mail, email, event, now + offset, extra)
                for offset, event, extra in delivery.planned_events(email, self.settings.deferred_seconds)]

    def event_row(self, mail: Any, email: str, event: str, due: float, extra: dict[str, str]) -> tuple:
        payload = delivery.callback_payload(
            event=event, email=email, message_id=mail["message_id"], timestamp=due, app_id=self.settings.app_id,
            sender=mail["sender"], template_id=mail["template_id"], subject=mail["subject"],
            smtp_id=mail["smtp_id"], task_id=mail["task_id"], extra=extra)
        return (email, event, due, payload, "pending" if self.settings.callback_url else "off")

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

    def receiver_status(self, receiver: sqlite3.Row) -> int:
        """1 waiting for an upload, 2 uploading, 3 done: uploads finish asynchronously at SES."""
        if receiver["ready_at"] is None:
            return 1
        return 3 if self.settings.clock() >= receiver["ready_at"] else 2

    # ---- stored mails, as the mail page and the API show them -----------------------------------

    def mime(self, row: Any) -> bytes:
        """The stored MIME of a mail; batch mails are rendered on first read and kept."""
        if row["mime"] is not None:
            return bytes(row["mime"])
        source = json.loads(row["source"])
        if row["task_id"] is not None:
            task = self.store.task(row["task_id"])
            template = json.loads(task["template"]) if task else {}
            source.update(Html=template.get("Html"), Text=template.get("Text"))
        mime = self.render(source, [], row["smtp_id"], row["request_time"])
        self.store.set_mime(row["id"], mime)
        return mime

    def simulate(self, key: str, kind: str, email: Optional[str] = None,
                 link: Optional[str] = None) -> dict[str, Any]:
        """Record an event now (open, click, bounce, softbounce, complaint, unsubscribe, ...) and
        post its callback. KeyError: no such mail; ValueError: unknown kind or recipient."""
        row = self.store.message(key)
        if row is None:
            raise KeyError(key)
        if kind not in delivery.SIMULATED:
            raise ValueError(f"unknown event {kind!r}; one of {', '.join(delivery.SIMULATED)}")
        recipients = [r["email"] for r in self.store.recipients(row["message_id"])]
        if email is None:
            email = recipients[0]
        elif email.lower() not in {r.lower() for r in recipients}:
            raise ValueError("that address is not a recipient of this mail")
        event, extra = delivery.SIMULATED[kind]
        extra = dict(extra)
        if event == "click":
            extra["link"] = link or _first_link(self.mime(row)) or "https://example.com/"
        event_row = self.event_row(row, email, event, self.settings.clock(), extra)
        self.store.add_events(row["message_id"], [event_row])
        self.settings.wake()
        return event_row[3]


def _first_link(mime: bytes) -> Optional[str]:
    """The first link of the HTML part: what a click "clicks" unless told otherwise."""
    match = re.search(r"href=[\"'](https?://[^\"']+)[\"']", rendering.parse_mime(mime)["Html"])
    return match.group(1) if match else None


def _esc(value: Any) -> str:
    return html_lib.escape(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
