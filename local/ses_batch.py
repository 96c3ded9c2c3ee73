"""BatchSendEmail and its tasks (ListSendTasks): immediate, scheduled and recurring sends to a
recipient list, run by the emulator's delivery worker a chunk at a time.

The fields and codes are those of Tencent's API pages for the two actions (the structures they
share, `TimedEmailParam`, `CycleEmailParam`, `SendTaskData`: https://cloud.tencent.com/document/api/1288/51053);
docs/local-stack.md says how tasks run here.
"""

from __future__ import annotations

import copy
import json
import logging
import sqlite3
import uuid
from typing import Any, Optional

from . import rendering
from .ses_account import Account
from .ses_common import ApiError, bare_address, beijing_time, int_param, json_or_none, paging, parse_begin_time

__all__ = ["Batch"]

log = logging.getLogger("sesmail.local")

TASK_CHUNK = 2_000  # recipients a batch task sends per worker pass, so callbacks keep flowing
# ListSendTasks / SendTaskData.TaskStatus
TASK_PENDING, TASK_SENDING, TASK_ERROR, TASK_DONE = 1, 5, 7, 10
# GetSendEmailStatus.SendStatus codes for refusals SES records per recipient
SEND_FREQUENCY_LIMIT, SEND_DAILY_LIMIT = 1006, 1010


class Batch(Account):
    """Batch tasks: created by BatchSendEmail, listed by ListSendTasks, run by `run_due_tasks`."""

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
        now = self.settings.clock()
        next_run, interval = self._schedule(p, task_type, now)
        if p.get("Attachments"):
            # "Attachments.N ... This parameter is currently unavailable" (BatchSendEmail's page).
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
        receiver = self.store.receiver(receiver_id or 0)
        if receiver is None:
            raise ApiError("OperationDenied.ReceiverNotExist", "The recipient group does not exist.")
        if self.receiver_status(receiver) != 3 or receiver["count"] == 0:
            raise ApiError("OperationDenied.ReceiverStatusError",
                           "The recipient group is empty or hasn't been completely uploaded.")
        if row is not None:
            self._check_list_data(row, receiver_id or 0, data)
        task_id = self.store.create_task({
            "task_type": task_type, "status": TASK_PENDING, "receiver_id": receiver_id,
            "receivers_name": receiver["name"], "params": dict(copy.deepcopy(p), _Interval=interval),
            "template": {"TemplateID": template_id, "TemplateName": row["name"] if row else None,
                         "Html": row["html"] if row else None, "Text": row["text"] if row else None},
            "created": now, "next_run": next_run, "request_count": receiver["count"]})
        self.settings.wake()
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
            rows = self.store.details(receiver_id, after, 5000)
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
        for task in self.store.due_tasks(now):
            try:
                self._run_chunk(task, now)
            except Exception as exc:  # an emulator bug must not wedge the worker on one task
                log.exception("batch task %s failed", task["id"])
                self.store.update_task(task["id"], status=TASK_ERROR, err=f"emulator error: {exc!r}",
                                           updated=now)

    def _run_chunk(self, task: sqlite3.Row, now: float) -> None:
        store = self.store
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
            limit = self.settings.recipient_hourly_limit
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
        total, rows = self.store.tasks(int_param(p, "Status", required=False),
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
