"""What an account sends with: templates (Create/Update/Get/List/DeleteEmailTemplate), sender
addresses (Create/List/DeleteEmailAddress, UpdateEmailSmtpPassWord) and sender domains
(ListEmailIdentities, GetEmailIdentity), with the codes of Tencent's API pages for each action and
the SDK's errorcodes.py; the structures (`TemplatesMetadata`, `EmailSender`, `DNSAttributes`):
https://cloud.tencent.com/document/api/1288/51053.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import string
from typing import Any

from .ses_account import Account
from .ses_common import ApiError, has_control, int_param, is_address, paging

__all__ = ["Identities"]

MAX_SENDERS_PER_DOMAIN = 10  # CreateEmailAddress: "up to 10 sender addresses for each domain"
REPUTATION_LEVEL = 1  # a new account's (ListEmailIdentities); reputation is not modelled


class Identities(Account):
    """Templates, sender addresses and sender domains."""

    # ---- templates ------------------------------------------------------------------------------------

    def create_email_template(self, p: dict[str, Any]) -> dict[str, Any]:
        name = _template_name(p)
        html, text = _template_content(p)
        now = self.settings.clock()
        template_id = self.store.create_template(name, html, text, now, now + self.settings.template_review_seconds)
        return {"TemplateID": template_id}

    def update_email_template(self, p: dict[str, Any]) -> dict[str, Any]:
        template_id = int_param(p, "TemplateID") or 0
        name = _template_name(p)
        html, text = _template_content(p)
        if self.store.template(template_id) is None:
            raise ApiError("InvalidParameterValue.TemplateNotExist", "The template does not exist.")
        # UpdateEmailTemplate's doc: an updated template must pass review again.
        self.store.update_template(template_id, name, html, text,
                                       self.settings.clock() + self.settings.template_review_seconds)
        return {}

    def get_email_template(self, p: dict[str, Any]) -> dict[str, Any]:
        template = self.store.template(int_param(p, "TemplateID") or 0)
        if template is None:
            raise ApiError("InvalidParameterValue.TemplateNotExist", "The template does not exist.")
        return {"TemplateContent": {"Html": _b64(template["html"]), "Text": _b64(template["text"])},
                "TemplateStatus": self.template_status(template), "TemplateName": template["name"]}

    def list_email_templates(self, p: dict[str, Any]) -> dict[str, Any]:
        offset, limit = paging(p)
        rows = self.store.templates(limit, offset)
        metadata = [{"CreatedTimestamp": int(r["created"]), "TemplateName": r["name"],
                     "TemplateStatus": self.template_status(r), "TemplateID": r["id"], "ReviewReason": r["reason"]}
                    for r in rows]
        return {"TemplatesMetadata": metadata, "TotalCount": self.store.template_count()}

    def delete_email_template(self, p: dict[str, Any]) -> dict[str, Any]:
        if not self.store.delete_template(int_param(p, "TemplateID") or 0):
            raise ApiError("InvalidParameterValue.TemplateNotExist", "The template does not exist.")
        return {}

    # ---- sender addresses -------------------------------------------------------------------------------

    def create_email_address(self, p: dict[str, Any]) -> dict[str, Any]:
        address, name = p.get("EmailAddress"), p.get("EmailSenderName")
        if not address:
            raise ApiError("MissingParameter", "The request is missing `EmailAddress`.")
        if not is_address(address) or len(address) > 254:
            raise ApiError("InvalidParameterValue.IllegalEmailAddress", "The email address is not valid.")
        if name is not None and (not isinstance(name, str) or ":" in name or has_control(name)):
            raise ApiError("InvalidParameterValue.IllegalSenderName", "The sender alias is incorrect.")
        domain = address.rpartition("@")[2].lower()
        # Domains are not modelled beyond this: `emu.unverified_domains`, and any domain whose first
        # label is `unverified` (unverified.example.com), count as unverified; every other is verified.
        if domain in self.settings.unverified_domains or domain.split(".")[0] == "unverified":
            raise ApiError("OperationDenied.DomainNotVerified",
                           "Domain verification failed. Check whether the domain has passed verification.")
        if sum(1 for s in self.store.senders() if s["address"].endswith("@" + domain)) >= MAX_SENDERS_PER_DOMAIN:
            raise ApiError("OperationDenied.ExceedSenderLimit", "The number of sender addresses exceeds the limit.")
        if not self.store.add_sender(address, name or "", self.settings.clock()):
            raise ApiError("InvalidParameterValue.RepeatEmailAddress", "This email address already exists.")
        return {}

    def list_email_address(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"EmailSenders": [{"EmailAddress": s["address"], "EmailSenderName": s["name"],
                                  "CreatedTimestamp": int(s["created"]), "SmtpPwdType": 1 if s["smtp_password"] else 0}
                                 for s in self.store.senders()]}

    def delete_email_address(self, p: dict[str, Any]) -> dict[str, Any]:
        address = p.get("EmailAddress")
        if not address:
            raise ApiError("MissingParameter", "The request is missing `EmailAddress`.")
        if not self.store.delete_sender(str(address)):
            raise ApiError("InvalidParameterValue.NoSuchSender", "You have no such sender address.")
        return {}

    def update_email_smtp_password(self, p: dict[str, Any]) -> dict[str, Any]:
        """The SMTP password of one sender address; the emulated SMTP interface then takes it (and
        no longer the shared dev password) for that address."""
        password, address = p.get("Password"), p.get("EmailAddress")
        for name, value in (("Password", password), ("EmailAddress", address)):
            if value is None or value == "":
                raise ApiError("MissingParameter", f"The request is missing `{name}`.")
        sender = self.store.sender(address) if isinstance(address, str) else None
        if sender is None:
            raise ApiError("InvalidParameterValue.NoSuchSender", "You have no such sender address.")
        if not isinstance(password, str) or not _strong_smtp_password(password):
            raise ApiError("InvalidParameterValue.InvalidSmtpPassWord",
                           "The password must be 10-20 characters with at least 2 different digits, "
                           "2 different lowercase and 2 different uppercase letters.")
        if sender["smtp_password"] == password:
            raise ApiError("OperationDenied.RepeatPassWord", "The password cannot be the same as the previous one.")
        self.store.set_smtp_password(sender["address"], password)
        return {}

    # ---- sender domains ----------------------------------------------------------------------------------

    def identities(self) -> list[str]:
        """The sender domains: those of the known sender addresses, all verified (domains and their
        DNS are not modelled beyond `CreateEmailAddress`'s check)."""
        return sorted({s["address"].rpartition("@")[2].lower() for s in self.store.senders()})

    def list_email_identities(self, p: dict[str, Any]) -> dict[str, Any]:
        domains = self.identities()
        # Limit and Offset are optional here; without them the first 100 (Limit's maximum elsewhere).
        offset, limit = paging({"Offset": p.get("Offset") or 0, "Limit": 100 if p.get("Limit") is None else p["Limit"]})
        quota = self.settings.daily_quota or 0  # 0: the emulator enforces no daily quota
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


def _template_name(p: dict[str, Any]) -> str:
    name = p.get("TemplateName")
    if name is None or name == "":
        raise ApiError("InvalidParameterValue.TemplateNameIsNULL", "The template name cannot be empty.")
    if not isinstance(name, str) or len(name) > 255 or has_control(name):
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


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


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
