"""SES's rules for the payloads we accept: its limits, its error codes, and the field tables of
SendEmail and BatchSendEmail, declared with the specs of `validation` (which does the checking).

Each table row is one field: its spec, whether it is required, and the SES code for each rule it
breaks; the same tables render the rule tables of docs/api.md and the schemas of openapi.json.
What a spec cannot say (a Bcc address also in Destination, a BeginTime in the past) is a
`CrossCheck` beside the table. Sources: SES's API pages for SendEmail
(https://cloud.tencent.com/document/api/1288/51034) and BatchSendEmail
(https://www.tencentcloud.com/document/api/1084/43052), its error codes
(https://cloud.tencent.com/document/api/1288/51060), and the SDK's models; docs/ses.md#limits
gathers them, with what Tencent leaves unsaid.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from .envelopes import loads
from .validation import (
    HEADER_CODE,
    HEADER_RULE,
    Address,
    Check,
    Checked,
    CrossCheck,
    Disused,
    Int,
    JsonObject,
    List,
    Object,
    Str,
    check_header,
    compact,
    join,
    refuse,
)

__all__ = [
    "ATTACHMENT",
    "BATCH_SEND_EMAIL",
    "BEIJING",
    "INT64_MAX",
    "MAX_RECIPIENT_DATA_BYTES",
    "SEND_EMAIL",
    "TEMPLATE",
    "TEMPLATE_VARIABLE",
    "begin_time",
    "check_template_variables",
    "subject_data",
    "validate_batch_send_email",
    "validate_send_email",
]

# --- SES's limits (docs/ses.md#limits) -----------------------------------------------------------
# Each with the code SES answers when it is broken, as the tables below use them.
MAX_TO = 50  # Destination, FailedOperation.TooManyRecipients
MAX_CC = 20  # Cc, likewise
MAX_BCC = 20  # Bcc, likewise
MAX_ATTACHMENTS = 10  # FailedOperation.TooManyAttachments
# Attachments in total, decoded (FailedOperation.AttachContentToolarge): base64 adds a third, and
# SES caps a whole request at 8 MB.
MAX_ATTACHMENT_BYTES = 4 * 1024 * 1024
MAX_FILE_NAME = 255  # FailedOperation.InvalidAttachName
SUBJECT_MIN, SUBJECT_MAX = 1, 100  # InvalidParameterValue.SubjectLengthError
INT64_MAX = 2**63 - 1  # TemplateID, ReceiverId: the SDK's Integer
UNSUBSCRIBE_CODES = tuple(str(n) for n in range(13))  # "0" (none) .. "12": languages in the current SDK
# BatchSendEmail: a recipient's TemplateData (ReceiverInputData) is at most 800 bytes of JSON
# (InvalidParameterValue.TemplateDataLenLimit).
MAX_RECIPIENT_DATA_BYTES = 800
MAX_INTERVAL_HOURS = 24 * 365  # CycleParam.IntervalTime: ours, a year; SES states none

# SES reads times and keys its status index by Beijing date (UTC+08:00).
BEIJING = timezone(timedelta(hours=8))

# A template variable as SES writes it ({{name}}; inner spaces tolerated). A subject's placeholders
# are filled from TemplateData by the SMTP transport; Tencent does not document whether SES's
# templating reaches the subject, so on the API path the same values are refused too.
TEMPLATE_VARIABLE = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")

# Patterns only some payloads need, compiled on first use (re keeps them): attachment names, and
# BatchSendEmail's times and recipient data. The send path's cold start pays for none of them.
_BAD_FILE_NAME = '[\x00-\x1f\x7f-\x9f\u2028\u2029/\\\\:*?"<>|]'
_LINE_BREAK = "[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]"  # str.splitlines()'s boundaries
_BEGIN_TIME = r"(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(Z|[+-]\d{2}:?\d{2})?"
_HTML_TAG = r"<\s*/?\s*[A-Za-z!][^>]*>"


# --- SendEmail (https://cloud.tencent.com/document/api/1288/51034) -------------------------------

class Attachments(List):
    """Attachments: count, file names and base64 per item; total decoded size across items."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rules = (*self.rules, (f"at most {MAX_ATTACHMENT_BYTES} bytes in total, decoded",
                                    "FailedOperation.AttachContentToolarge"))

    def compile(self) -> Check:
        items = super().compile()

        def check(value, path):
            attachments = items(value, path)
            total = 0
            for index, attachment in enumerate(attachments):
                try:
                    total += len(base64.b64decode(attachment["Content"], validate=True))
                except (binascii.Error, ValueError) as exc:
                    raise refuse("InvalidParameterValue.AttachContentIsWrong",
                                 f"{path}[{index}].Content", "is not valid base64") from exc
            if total > MAX_ATTACHMENT_BYTES:
                raise refuse("FailedOperation.AttachContentToolarge", path,
                             f"exceed {MAX_ATTACHMENT_BYTES} bytes in total before base64")
            return attachments

        return check


def _file_name(value, path):
    """A file name goes into the Content-Disposition header: a line break is refused as in every
    header-bound field; other control characters with SES's own code for attachment names."""
    if re.search(_BAD_FILE_NAME, value):
        if re.search(_LINE_BREAK, value):
            check_header(value, path)
        raise refuse("FailedOperation.InvalidAttachName", path,
                     "must not contain control characters, path separators or any of :*?\"<>|")


def _smtp_headers(value, path):
    """SmtpHeaders: SES takes a string of extra headers; we accept a JSON object of
    name -> value (or that object as a string), every name and value fit for a header."""
    try:
        headers = loads(value)
    except (ValueError, RecursionError):
        headers = None
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise refuse("InvalidParameterValue", path, "must be a JSON object of header name -> string value")
    for name, text in headers.items():
        check_header(name, path, "must not hold line breaks or control characters in a header name")
        check_header(text, path, "must not hold line breaks or control characters in a header value")


class _HeadersJson(JsonObject):
    def __init__(self, description: str, code: str) -> None:
        super().__init__(description, code)
        self.rules = (("a JSON object of header name -> string value (or a string holding one)", code),
                      ("no line breaks or control characters in names or values (they are mail headers)",
                       HEADER_CODE))

    def compile(self) -> Check:
        base = super().compile()

        def check(value, path):
            value = base(value, path)
            _smtp_headers(value, path)
            return value

        return check


def _template_reference(template: dict, path: str) -> None:
    has_id, has_name = "TemplateID" in template, "TemplateName" in template
    if has_id == has_name:
        raise refuse("MissingParameter" if not has_id else "InvalidParameter",
                     join(path, "TemplateID"), "or TemplateName is required, and not both")
    template.setdefault("TemplateData", "{}")


def _bcc_not_in_destination(payload: dict, path: str) -> None:
    bcc = payload.get("Bcc")
    if bcc:
        to = {address.lower() for address in payload.get("Destination", ())}
        for index, address in enumerate(bcc):
            if address.lower() in to:
                raise refuse("InvalidParameterValue.ReceiverEmailInvalid", f"Bcc[{index}]",
                             "is also in Destination (SES refuses an address in both)")


def _template_not_simple(payload: dict, path: str) -> None:
    if "Simple" in payload:
        raise refuse("FailedOperation.WithOutPermission", "Simple",
                     "is disused by SES: send with a Template")
    if "Template" not in payload:
        raise refuse("MissingParameter", "Template", "is required (SES sends templated mail only)")


def subject_data(subject: str, data: dict, path: str) -> None:
    """Refuse template variables whose values would put a line break or a control character into
    the Subject header once the subject's `{{name}}` placeholders are filled (as the SMTP transport
    fills them: a value that is not a string is written as JSON)."""
    for name in TEMPLATE_VARIABLE.findall(subject):
        if name in data:
            value = data[name]
            check_header(value if isinstance(value, str) else compact(value), path,
                         "fills the subject with a value holding line breaks or control characters")


def _subject_variables(payload: dict, path: str) -> None:
    subject, template = payload.get("Subject"), payload.get("Template")
    if subject and template and "TemplateData" in template and TEMPLATE_VARIABLE.search(subject):
        subject_data(subject, loads(template["TemplateData"]), join(path, "Template.TemplateData"))


_SUBJECT_VARIABLES = CrossCheck("Template.TemplateData", "values filled into the subject: " + HEADER_RULE[0],
                                HEADER_CODE, _subject_variables)

_RECIPIENT = Address("recipient address", "InvalidParameterValue.ReceiverEmailInvalid")

TEMPLATE = Object(
    "The approved SES template and its variables.",
    {
        "TemplateID": (Int("SES template ID", 1, INT64_MAX, "FailedOperation.InvalidTemplateID"), False),
        "TemplateName": (Str("name resolved to a TemplateID through the config file's Templates map",
                             min_len=1, max_len=255, length_code="InvalidParameterValue.TemplateNotExist"),
                         False),
        "TemplateData": (JsonObject("variables of the template; `{}` when omitted"), False),
    },
    checks=(CrossCheck("TemplateID", "TemplateID or TemplateName, exactly one",
                       "MissingParameter / InvalidParameter", _template_reference),),
)

ATTACHMENT = Object(
    "One attachment.",
    {
        "FileName": (Checked("file name shown to the recipient", _file_name,
                             ("no line breaks (it is a mail header)", HEADER_CODE),
                             ("no control characters, path separators or :*?\"<>|",
                              "FailedOperation.InvalidAttachName"),
                             min_len=1, max_len=MAX_FILE_NAME, length_code="FailedOperation.InvalidAttachName",
                             header=False, pattern='^[^\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029/\\\\:*?"<>|]*$'),
                     True),
        "Content": (Str("the file, base64-encoded", min_len=1, header=False,
                        length_code="InvalidParameterValue.AttachContentIsWrong"), True),
    },
)

# sesmail's extension (docs/topics.md): the config file's topic a marketing mail belongs to; whether
# it names one is checked against the config in sesmail.topics.
_TOPIC = Str("a topic of the config file's Topics (marketing mail; sesmail's extension)", min_len=1, max_len=32,
             length_code="InvalidParameterValue.UnknownTopic", header=False)

SEND_EMAIL = Object(
    "SES SendEmail, with SES's own field names (API 2020-10-02).",
    {
        "FromEmailAddress": (Address("sender; may be omitted when SESMAIL_DEFAULT_SENDER is set",
                                     "FailedOperation.IncorrectSender", named=True), False),
        "Destination": (List("To recipients (all see each other)", _RECIPIENT, MAX_TO,
                             "FailedOperation.TooManyRecipients", min_items=1,
                             min_code="InvalidParameterValue.EmailAddressIsNULL"), True),
        "Cc": (List("Cc recipients", _RECIPIENT, MAX_CC, "FailedOperation.TooManyRecipients"), False),
        "Bcc": (List("Bcc recipients; none may also be in Destination", _RECIPIENT, MAX_BCC,
                     "FailedOperation.TooManyRecipients"), False),
        "Subject": (Str("subject", min_len=SUBJECT_MIN, max_len=SUBJECT_MAX,
                        length_code="InvalidParameterValue.SubjectLengthError"), True),
        "ReplyToAddresses": (Address("reply-to address", "FailedOperation.IncorrectEmail", named=True), False),
        "Template": (TEMPLATE, False),
        "Simple": (Disused("disused by SES: always refused"), False),
        "Attachments": (Attachments("attachments", ATTACHMENT, MAX_ATTACHMENTS,
                                    "FailedOperation.TooManyAttachments"), False),
        "Unsubscribe": (Str("unsubscribe link language, \"0\" (none) to \"12\"", choices=UNSUBSCRIBE_CODES,
                            accept_int=True, header=False), False),
        "TriggerType": (Int("0 marketing (default), 1 transactional", 0, 1), False),
        "HeaderFrom": (Address("From header, best in the sender's domain", "FailedOperation.IncorrectSender",
                               named=True), False),
        "SmtpMessageId": (Str("Message-ID header", min_len=1, max_len=255), False),
        "SmtpHeaders": (_HeadersJson("extra headers: a JSON object of name -> value",
                                     code="InvalidParameterValue"), False),
        "Topic": (_TOPIC, False),
    },
    checks=(
        CrossCheck("Template", "required; `Simple` is disused by SES", "MissingParameter / "
                   "FailedOperation.WithOutPermission", _template_not_simple),
        CrossCheck("Bcc[]", "no address also in Destination", "InvalidParameterValue.ReceiverEmailInvalid",
                   _bcc_not_in_destination),
        _SUBJECT_VARIABLES,
    ),
)

_send_email = SEND_EMAIL.compile()


def _sender_and_template(params: dict, default_sender: str | None, templates: dict[str, int] | None,
                         missing_code: str = "MissingParameter") -> dict:
    """The default sender filled in, and Template.TemplateName resolved to its TemplateID."""
    if "FromEmailAddress" not in params:
        if not default_sender:
            raise refuse(missing_code, "FromEmailAddress", "is required (no SESMAIL_DEFAULT_SENDER is configured)")
        params["FromEmailAddress"] = default_sender
    template = params["Template"]
    name = template.pop("TemplateName", None)
    if name is not None:
        template_id = (templates or {}).get(name)
        if template_id is None:
            raise refuse("InvalidParameterValue.TemplateNotExist", "Template.TemplateName",
                         "names no template in the config file's Templates map")
        template["TemplateID"] = template_id
    return params


def validate_send_email(payload: Any, default_sender: str | None = None,
                        templates: dict[str, int] | None = None) -> dict:
    """A SendEmail payload checked and normalised into the parameters SES takes, or InvalidInput."""
    return _sender_and_template(_send_email(payload, ""), default_sender, templates)


def check_template_variables(params: dict, variables: dict[str, list[str]]) -> None:
    """Refuse TemplateData that lacks a variable of its template, when the template's variables
    are known (the config file's `TemplateVariables`, written by `make sync`): SES would refuse it
    with this code after a round trip. Extra keys are fine, as they are at SES."""
    template = params.get("Template") or {}
    names = variables.get(str(template.get("TemplateID")))
    if not names:
        return
    data = loads(template.get("TemplateData") or "{}")
    missing = [name for name in names if name not in data]
    if missing:
        raise refuse("InvalidParameterValue.TemplateNotMatchData", "Template.TemplateData",
                     f"lacks {len(missing)} variable(s) of the template: " + ", ".join(missing))


# --- BatchSendEmail (https://www.tencentcloud.com/document/api/1084/43052) ---------------------

def _begin_time(value: str, path: str) -> None:
    if not re.fullmatch(_BEGIN_TIME, value):
        raise refuse("InvalidParameterValue", path,
                     "must be `YYYY-MM-DD HH:MM:SS` (Beijing time) or carry an offset (`+00:00`)")


def begin_time(value: str) -> datetime:
    """BeginTime as an aware datetime. Tencent's docs do not state the zone and its console works
    in Beijing time, so a naive time is read as UTC+08:00; an explicit offset is honoured."""
    match = re.fullmatch(_BEGIN_TIME, value)
    assert match
    zone = match.group(3)
    text = f"{match.group(1)}T{match.group(2)}" + ("+00:00" if zone == "Z" else zone or "+08:00")
    return datetime.fromisoformat(text if zone is None or ":" in text[-6:] else text[:-2] + ":" + text[-2:])


def _recipient_data(value: str, path: str) -> None:
    """A list row's TemplateData (ReceiverInputData): at most 800 bytes, and SES takes only flat
    values without HTML tags there (InValidTemplateData): refused here, before a list is built."""
    if len(value.encode("utf-8")) > MAX_RECIPIENT_DATA_BYTES:
        raise refuse("InvalidParameterValue.TemplateDataLenLimit", path,
                     f"must be at most {MAX_RECIPIENT_DATA_BYTES} bytes of compact JSON")
    if any(isinstance(v, (dict, list)) or (isinstance(v, str) and re.search(_HTML_TAG, v))
           for v in loads(value).values()):
        raise refuse("InvalidParameterValue.InValidTemplateData", path,
                     "values must be plain: no nested objects or lists, no HTML tags")


class _SizedJson(JsonObject):
    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.rules = (*self.rules, (f"at most {MAX_RECIPIENT_DATA_BYTES} bytes as compact JSON",
                                    "InvalidParameterValue.TemplateDataLenLimit"),
                      ("flat values, no HTML tags", "InvalidParameterValue.InValidTemplateData"),
                      ("values filled into the subject: " + HEADER_RULE[0], HEADER_CODE))

    def compile(self) -> Check:
        base = super().compile()

        def check(value, path):
            # Re-serialised compactly, so the limit counts the bytes SES receives.
            value = compact(loads(base(value, path)))
            _recipient_data(value, path)
            return value

        return check


def _task_params(payload: dict, path: str) -> None:
    task_type = payload.get("TaskType")
    if task_type == 2 and "TimedParam" not in payload:
        raise refuse("MissingParameter.TimedParamNecessary", "TimedParam", "is required when TaskType is 2")
    if task_type == 3 and "CycleParam" not in payload:
        raise refuse("MissingParameter.CycleParamNecessary", "CycleParam", "is required when TaskType is 3")


def _receivers(payload: dict, path: str) -> None:
    if ("ReceiverId" in payload) == ("Recipients" in payload):
        raise refuse("MissingParameter.SendParamNecessary" if "ReceiverId" not in payload else "InvalidParameter",
                     "ReceiverId", "or Recipients is required, and not both")
    seen: set[str] = set()
    for index, recipient in enumerate(payload.get("Recipients") or ()):
        email = recipient["Email"].lower()
        if email in seen:
            raise refuse("InvalidParameterValue.DuplicateRecipient", f"Recipients[{index}].Email",
                         "repeats an earlier recipient (SES would mail it twice)")
        seen.add(email)


def _no_attachments(payload: dict, path: str) -> None:
    if "Attachments" in payload:
        raise refuse("InvalidParameter.AttachmentsNotSupported", "Attachments",
                     "are not supported by BatchSendEmail")
    _template_not_simple(payload, path)


_BEGIN = Checked("`YYYY-MM-DD HH:MM:SS`, Beijing time unless an offset is given", _begin_time,
                 ("`YYYY-MM-DD HH:MM:SS` (Beijing) or with an offset; not in the past",
                  "InvalidParameterValue / InvalidParameterValue.BeginTimeBeforeNow"), min_len=19, max_len=25)

RECIPIENT = Object("One recipient of an inline list.", {
    "Email": (_RECIPIENT, True),
    "TemplateData": (_SizedJson("this recipient's template variables"), False),
})

BATCH_SEND_EMAIL = Object(
    "SES BatchSendEmail, with SES's own field names; `Recipients` instead of `ReceiverId` creates the lists.",
    {
        "FromEmailAddress": (Address("sender; may be omitted when SESMAIL_DEFAULT_SENDER is set",
                                     "FailedOperation.IncorrectSender", named=True), False),
        "ReceiverId": (Int("an existing SES recipient list", 1, INT64_MAX, "InvalidParameterValue"), False),
        "Recipients": (List("inline recipients: lists are created for them", RECIPIENT, 10_000_000,
                            "InvalidParameterValue", min_items=1,
                            min_code="InvalidParameterValue.EmailAddressIsNULL"), False),
        "Subject": (Str("subject", min_len=SUBJECT_MIN, max_len=SUBJECT_MAX,
                        length_code="InvalidParameterValue.SubjectLengthError"), True),
        "TaskType": (Int("1 immediate, 2 scheduled (TimedParam), 3 recurring (CycleParam)", 1, 3), True),
        "ReplyToAddresses": (Address("reply-to address", "FailedOperation.IncorrectEmail", named=True), False),
        "Template": (TEMPLATE, False),
        "Simple": (Disused("disused by SES: always refused"), False),
        "Attachments": (Disused("not supported by BatchSendEmail: always refused"), False),
        "TimedParam": (Object("when a scheduled task starts", {"BeginTime": (_BEGIN, True)}), False),
        "CycleParam": (Object("when a recurring task starts and its interval", {
            "BeginTime": (_BEGIN, True),
            "IntervalTime": (Int("hours between runs", 1, MAX_INTERVAL_HOURS), True),
            "TermCycle": (Int("1 ends the recurrence (for updates)", 0, 1), False),
        }), False),
        "Unsubscribe": (Str("unsubscribe link language, \"0\" (none) to \"12\"", choices=UNSUBSCRIBE_CODES,
                            accept_int=True, header=False), False),
        "ADLocation": (Int("ad tag: 0 none, 1 before the subject, 2 after", 0, 2), False),
        "Topic": (_TOPIC, False),
    },
    checks=(
        CrossCheck("Template", "required; `Simple` is disused; no `Attachments`", "MissingParameter / "
                   "FailedOperation.WithOutPermission / InvalidParameter.AttachmentsNotSupported", _no_attachments),
        CrossCheck("ReceiverId", "ReceiverId or Recipients, exactly one; no recipient twice",
                   "MissingParameter.SendParamNecessary / InvalidParameter / "
                   "InvalidParameterValue.DuplicateRecipient", _receivers),
        CrossCheck("TaskType", "2 needs TimedParam, 3 needs CycleParam",
                   "MissingParameter.TimedParamNecessary / MissingParameter.CycleParamNecessary", _task_params),
        _SUBJECT_VARIABLES,
    ),
)

_batch_send_email: Check | None = None  # compiled on first use: the send function never needs it


def validate_batch_send_email(payload: Any, default_sender: str | None = None,
                              templates: dict[str, int] | None = None, now: datetime | None = None) -> dict:
    """A BatchSendEmail payload checked and normalised: BeginTimes converted to Beijing time for
    SES, and inline recipients' TemplateData merged over Template.TemplateData (the common part)."""
    global _batch_send_email
    if _batch_send_email is None:  # two threads may both compile it: the same checker either way
        _batch_send_email = BATCH_SEND_EMAIL.compile()
    params = _sender_and_template(_batch_send_email(payload, ""), default_sender, templates,
                                  "MissingParameter.SendParamNecessary")
    now = now or datetime.now(timezone.utc)
    for name in ("TimedParam", "CycleParam"):
        if name in params:
            start = begin_time(params[name]["BeginTime"])
            if start < now:
                raise refuse("InvalidParameterValue.BeginTimeBeforeNow", f"{name}.BeginTime", "is in the past")
            params[name]["BeginTime"] = start.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")
    if "Recipients" in params:
        common = loads(params["Template"].pop("TemplateData", "{}"))
        filled = TEMPLATE_VARIABLE.search(params["Subject"]) is not None
        for index, recipient in enumerate(params["Recipients"]):
            if common:
                data = compact({**common, **loads(recipient.get("TemplateData", "{}"))})
                _recipient_data(data, f"Recipients[{index}].TemplateData")
                recipient["TemplateData"] = data
            recipient.setdefault("TemplateData", "{}")
            if filled:
                subject_data(params["Subject"], loads(recipient["TemplateData"]), f"Recipients[{index}].TemplateData")
    return params
