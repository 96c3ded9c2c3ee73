"""Recipient lists: CreateReceiver, CreateReceiverDetail[WithData], ListReceivers,
ListReceiverDetails (https://cloud.tencent.com/document/api/1288/97935) and DeleteReceiver. Uploads
finish asynchronously at SES, after `receiver_upload_seconds` here (docs/local-stack.md).
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from .ses_account import Account
from .ses_common import ApiError, beijing_time, has_control, int_param, is_address, json_or_none, paging

__all__ = ["Receivers"]

MAX_DETAILS_PER_CALL = 20_000  # CreateReceiverDetail[WithData]: "一次最大支持2万"
MAX_DETAILS_PER_LIST = 50_000  # "收件人列表中收件人地址的总量...目前是限制5万条"
MAX_TEMPLATE_DATA_BYTES = 800  # ReceiverInputData.TemplateData, the whole JSON
_HTML_TAG_RE = re.compile(r"<\s*/?\s*[A-Za-z][^>]*>")


class Receivers(Account):
    """The account's recipient lists and their addresses."""

    def create_receiver(self, p: dict[str, Any]) -> dict[str, Any]:
        name, desc = p.get("ReceiversName"), p.get("Desc")
        if not isinstance(name, str) or not name.strip() or len(name) > 200 or has_control(name):
            raise ApiError("InvalidParameterValue.ReceiverNameIllegal", "The recipient list name is not valid.")
        if desc is not None and (not isinstance(desc, str) or not 1 <= len(desc) <= 300 or has_control(desc)):
            # ReceiverDescIllegal: "no special characters, 1-300 characters" (errorcodes.py)
            raise ApiError("InvalidParameterValue.ReceiverDescIllegal", "The description must be 1-300 characters.")
        receiver_id = self.store.create_receiver(name, desc or "", self.settings.clock())
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
        receiver = self.store.receiver(int_param(p, "ReceiverId") or 0)
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
        now = self.settings.clock()
        self.store.add_details(receiver["id"], rows, now, now + self.settings.receiver_upload_seconds)
        return counts

    def list_receivers(self, p: dict[str, Any]) -> dict[str, Any]:
        offset, limit = paging(p)
        status = int_param(p, "Status", required=False)
        keyword = p.get("KeyWord")
        rows = [(r, self.receiver_status(r)) for r in self.store.receivers(keyword if keyword else None)]
        if status is not None:
            rows = [(r, s) for r, s in rows if s == status]
        data = [{"ReceiverId": r["id"], "ReceiversName": r["name"], "Count": r["count"], "Desc": r["description"],
                 "ReceiversStatus": s, "CreateTime": beijing_time(r["created"]), "InvalidCount": r["invalid"]}
                for r, s in rows[offset:offset + limit]]
        return {"TotalCount": len(rows), "Data": data}

    def list_receiver_details(self, p: dict[str, Any]) -> dict[str, Any]:
        offset, limit = paging(p)
        receiver_id = int_param(p, "ReceiverId")
        receiver = self.store.receiver(receiver_id or 0)
        if receiver is None:
            raise ApiError("OperationDenied.ReceiverNotExist", "The recipient group does not exist.")
        total, rows = self.store.detail_page(receiver["id"], p.get("Email") or None,
                                                 int_param(p, "Status", required=False), limit, offset)
        data = [{"Email": r["email"], "CreateTime": beijing_time(r["created"]), "TemplateData": r["template_data"],
                 "Reason": r["reason"], "Status": r["status"], "EmailId": r["id"]} for r in rows]
        return {"TotalCount": total, "Data": data, "ValidCount": receiver["count"],
                "InvalidCount": receiver["invalid"]}

    def delete_receiver(self, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("ReceiverId") is None:
            raise ApiError("MissingParameter.ReceiverIdNecessary", "The recipient list ID is required.")
        if not self.store.delete_receiver(int_param(p, "ReceiverId") or 0):
            raise ApiError("OperationDenied.ReceiverNotExist", "The recipient group does not exist.")
        return {}
