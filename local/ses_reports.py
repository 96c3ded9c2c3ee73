"""What SES reports back: GetStatisticsReport (its `Volume` structure:
https://cloud.tencent.com/document/api/1288/51053) and the blocklist, ListBlackEmailAddress and
DeleteBlackList, computed from the mails and events stored (docs/local-stack.md).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from .ses_account import Account
from .ses_common import BEIJING, ApiError, beijing_time, json_or_none, paging

__all__ = ["Reports"]

_VOLUME_COUNTS = ("RequestCount", "AcceptedCount", "DeliveredCount", "OpenedCount", "ClickedCount", "BounceCount",
                  "UnsubscribeCount")
_VOLUME_EVENTS = {"delivered": "DeliveredCount", "open": "OpenedCount", "click": "ClickedCount",
                  "bounce": "BounceCount", "unsubscribe": "UnsubscribeCount"}


class Reports(Account):
    """Statistics and the blocklist."""

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
        for row in self.store.volume_rows(low, high):
            if ((domain and row["sender"].rpartition("@")[2].lower() != domain)
                    or (mailbox and row["email_lc"].rpartition("@")[2] != mailbox)):
                continue
            day = datetime.fromtimestamp(row["request_time"], BEIJING).strftime("%Y-%m-%d")
            volume = days.setdefault(day, dict.fromkeys(_VOLUME_COUNTS, 0))
            volume["RequestCount"] += 1
            volume["AcceptedCount"] += int(row["send_status"] == 0)
            sent_on[(row["message_id"], row["email_lc"])] = day
        once: set[tuple[str, str, str]] = set()
        for event in self.store.volume_events(low, high, self.settings.clock()):
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
        now = self.settings.clock()
        changes: list[tuple[float, int, str, str, str]] = []
        for row in self.store.bounces(now):
            payload = json_or_none(row["payload"]) or {}
            if payload.get("bounceType") == "hard_bounce":
                changes.append((row["due"], 0, "add", row["email"], str(payload.get("reason") or "")))
        for row in self.store.blacklist_changes(now):
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
        now = self.settings.clock()
        for email in emails:  # an address not on the list is simply not there afterwards either
            self.store.add_blacklist_change(email, now, "remove")
        return {}


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
