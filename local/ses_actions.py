"""The one dispatch table of the emulated SES account: action name -> handler(params) -> fields.

Each family of actions lives in a module of its own, all of them `Account`s over the same
settings and store: `ses_sending` (SendEmail, GetSendEmailStatus, SMTP mail), `ses_batch`
(BatchSendEmail and its tasks), `ses_receivers` (recipient lists), `ses_identities` (templates,
sender addresses and domains) and `ses_reports` (statistics, the blocklist). `SesEmulator` (the
protocol: HTTP, signatures, faults) looks the action up here; this module never imports it.
"""

from __future__ import annotations

from typing import Any, Callable

from .ses_account import Account, AccountSettings
from .ses_batch import Batch
from .ses_identities import Identities
from .ses_receivers import Receivers
from .ses_reports import Reports
from .ses_sending import Sending

__all__ = ["Actions", "Handler"]

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class Actions:
    """The action families of one emulated account, and the table that names their handlers."""

    def __init__(self, settings: AccountSettings) -> None:
        self.account = Account(settings)
        self.sending = Sending(settings)
        self.batch = Batch(settings)
        self.receivers = Receivers(settings)
        self.identities = Identities(settings)
        self.reports = Reports(settings)

    def table(self) -> dict[str, Handler]:
        sending, batch, receivers = self.sending, self.batch, self.receivers
        identities, reports = self.identities, self.reports
        return {
            "SendEmail": sending.send_email,
            "BatchSendEmail": batch.batch_send_email,
            "GetSendEmailStatus": sending.get_send_email_status,
            "ListSendTasks": batch.list_send_tasks,
            "CreateReceiver": receivers.create_receiver,
            "CreateReceiverDetail": receivers.create_receiver_detail,
            "CreateReceiverDetailWithData": receivers.create_receiver_detail_with_data,
            "ListReceivers": receivers.list_receivers,
            "ListReceiverDetails": receivers.list_receiver_details,
            "DeleteReceiver": receivers.delete_receiver,
            "CreateEmailTemplate": identities.create_email_template,
            "UpdateEmailTemplate": identities.update_email_template,
            "GetEmailTemplate": identities.get_email_template,
            "ListEmailTemplates": identities.list_email_templates,
            "DeleteEmailTemplate": identities.delete_email_template,
            "CreateEmailAddress": identities.create_email_address,
            "ListEmailAddress": identities.list_email_address,
            "DeleteEmailAddress": identities.delete_email_address,
            "UpdateEmailSmtpPassWord": identities.update_email_smtp_password,
            "ListEmailIdentities": identities.list_email_identities,
            "GetEmailIdentity": identities.get_email_identity,
            "GetStatisticsReport": reports.get_statistics_report,
            "ListBlackEmailAddress": reports.list_black_email_address,
            "DeleteBlackList": reports.delete_black_list,
        }
