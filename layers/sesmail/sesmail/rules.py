"""SES limits and payload validation: one declarative description per payload.

Each payload (SendEmail now; BatchSendEmail later) is declared once as a tree of field specs. The
same tree is compiled into nested closures that validate a payload (a few microseconds: no
schema library, nothing recompiled per call) and rendered as JSON Schema and as the rule table in
the README, so the documentation cannot drift from what is enforced.

Every refusal names the field (`Destination[3]`, `Attachments[0].Content`) and the rule, carries
SES's own error code where SES has one, and never echoes the value.
Sources: SendEmail (seed 000), SDK models and errorcodes (tencent-facts.md 2-3), SPEC 3.3.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from .envelopes import loads
from .errors import InvalidInput

__all__ = [
    "BATCH_SEND_EMAIL",
    "SEND_EMAIL",
    "Address",
    "Attachments",
    "Int",
    "JsonObject",
    "List",
    "Object",
    "Str",
    "address_hash",
    "bare_address",
    "check_header",
    "header_safe",
    "json_schema",
    "rule_table",
    "subject_data",
    "validate_batch_send_email",
    "validate_send_email",
]

# SES limits (SendEmail seed 000, SDK model docstrings).
MAX_TO = 50
MAX_CC = 20
MAX_BCC = 20
MAX_ATTACHMENTS = 10
MAX_ATTACHMENT_BYTES = 4 * 1024 * 1024  # total, before base64 (the request itself is capped at 8 MB)
MAX_FILE_NAME = 255
SUBJECT_MIN, SUBJECT_MAX = 1, 100
INT64_MAX = 2**63 - 1
UNSUBSCRIBE_CODES = tuple(str(n) for n in range(13))  # "0".."12" in the current SDK
# BatchSendEmail: per-recipient TemplateData (ReceiverInputData) is at most 800 bytes of JSON.
MAX_RECIPIENT_DATA_BYTES = 800
MAX_INTERVAL_HOURS = 24 * 365

Check = Callable[[Any, str], Any]
_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode

# An address as SES accepts it: ASCII dot-atom local part and a dotted domain (IDNs in punycode).
_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
# `Alias <address>`: SES wants one space before `<` and no colon in the alias.
_NAMED = re.compile(r'([^<>:"\r\n]*[^<>:"\r\n ]) <([^<>\s]+)>')
_BAD_FILE_NAME = re.compile('[\x00-\x1f\x7f-\x9f\u2028\u2029/\\\\:*?"<>|]')

# What a mail header cannot carry, on either transport: every line boundary of str.splitlines()
# (CR, LF, VT, FF, the separators FS/GS/RS, NEL, U+2028, U+2029), where a header line would end
# (Python's email package, which builds the SMTP transport's mail, refuses them; SES's API does not
# refuse them up front), and every other control character (C0 but TAB, DEL, C1), which no header
# field may hold. One rule for both transports, in every header-bound field (HEADER_RULE), refused
# as InvalidParameterValue.HeaderLineBreak before any call.
HEADER_UNSAFE = "\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029"
_HEADER_UNSAFE = re.compile(f"[{HEADER_UNSAFE}]")
_LINE_BREAK = re.compile("[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")  # str.splitlines()'s boundaries
HEADER_CODE = "InvalidParameterValue.HeaderLineBreak"
HEADER_RULE = ("no line breaks or control characters (it is a mail header)", HEADER_CODE)
# The same set as a JSON Schema pattern (ECMA-262 escapes, which Python's re reads too).
HEADER_PATTERN = "^[^\\u0000-\\u0008\\u000a-\\u001f\\u007f-\\u009f\\u2028\\u2029]*$"
# A template variable as SES writes it ({{name}}; inner spaces tolerated). A subject's placeholders
# are filled from TemplateData by the SMTP transport; Tencent does not document whether SES's
# templating reaches the subject, so on the API path the same values are refused too.
TEMPLATE_VARIABLE = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")


def bare_address(address: str) -> str:
    """`Alias <a@example.com>` -> `a@example.com`, lower-cased: how addresses are compared and stored."""
    return address.rpartition("<")[2].rstrip(">").strip().lower()


def address_hash(key: str | None, address: str) -> str:
    """The normalised address (`bare_address`) as 64 hex digits: HMAC-SHA256 under `key` (the
    `SESMAIL_ERASURE_KEY`), so a table of these cannot be reversed with a dictionary of addresses;
    without a key a plain SHA-256, which can. What an erased address's suppressions are kept under."""
    import hashlib

    data = bare_address(address).encode("utf-8", "surrogatepass")
    if key:
        import hmac

        return hmac.new(key.encode("utf-8", "surrogatepass"), data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


def _refuse(code: str, path: str, rule: str) -> InvalidInput:
    return InvalidInput(f"{path or 'the body'} {rule}", field=path or None, code=code)


def header_safe(value: str) -> bool:
    """True when `value` can be written into a mail header as it is (see HEADER_UNSAFE)."""
    return _HEADER_UNSAFE.search(value) is None


def check_header(value: str, path: str, rule: str = "must not contain line breaks or control characters "
                 "(it becomes a mail header)") -> None:
    """Refuse, as InvalidParameterValue.HeaderLineBreak at `path`, a value no mail header can carry."""
    if _HEADER_UNSAFE.search(value) is not None:
        raise _refuse(HEADER_CODE, path, rule)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class Spec:
    """A field's rule: `compile()` gives the checker, `schema()` the JSON Schema, `rules` the docs."""

    description = ""
    rules: tuple[tuple[str, str], ...] = ()  # (rule text, error code) for the README table

    def compile(self) -> Check:
        raise NotImplementedError

    def schema(self) -> dict:
        raise NotImplementedError


class Str(Spec):
    """A string of bounded length; `header=True` forbids CR/LF (it ends up in a mail header)."""

    def __init__(self, description: str, min_len: int = 0, max_len: int | None = None,
                 length_code: str = "InvalidParameterValue", header: bool = True,
                 choices: tuple[str, ...] | None = None, choice_code: str = "InvalidParameterValue",
                 accept_int: bool = False) -> None:
        self.description = description
        self.min_len, self.max_len, self.length_code = min_len, max_len, length_code
        self.header, self.choices, self.choice_code, self.accept_int = header, choices, choice_code, accept_int
        rules = [("a string", "InvalidParameter")]
        if max_len is not None:
            rules.append((f"{min_len} to {max_len} characters", length_code))
        elif min_len:
            rules.append(("not empty", length_code))
        if header:
            rules.append(HEADER_RULE)
        if choices:
            rules.append((f"one of \"{choices[0]}\"-\"{choices[-1]}\"", choice_code))
        self.rules = tuple(rules)

    def compile(self) -> Check:
        low, high, length_code = self.min_len, self.max_len, self.length_code
        header, choices, choice_code, accept_int = self.header, self.choices, self.choice_code, self.accept_int
        unsafe = _HEADER_UNSAFE.search

        def check(value, path):
            if accept_int and type(value) is int:
                value = str(value)
            if not isinstance(value, str):
                raise _refuse("InvalidParameter", path, "must be a string")
            if not low <= len(value) <= (high if high is not None else len(value)):
                rule = f"must be {low} to {high} characters" if high is not None else "must not be empty"
                raise _refuse(length_code, path, rule)
            if header and unsafe(value) is not None:
                check_header(value, path)
            if choices is not None and value not in choices:
                raise _refuse(choice_code, path, f"must be one of \"{choices[0]}\" to \"{choices[-1]}\"")
            return value

        return check

    def schema(self) -> dict:
        out: dict = {"type": "string", "description": self.description}
        if self.min_len:
            out["minLength"] = self.min_len
        if self.max_len is not None:
            out["maxLength"] = self.max_len
        if self.header:
            out["pattern"] = HEADER_PATTERN
        if self.choices:
            out["enum"] = list(self.choices)
        return out


class Disused(Spec):
    """A field SES still lists but no longer serves; a cross-field check refuses it by name."""

    def __init__(self, description: str) -> None:
        self.description = description

    def compile(self) -> Check:
        return lambda value, path: value

    def schema(self) -> dict:
        return {"description": self.description, "deprecated": True}


class Int(Spec):
    """An integer in [low, high]; a string of digits is accepted too (SES's own examples quote IDs)."""

    def __init__(self, description: str, low: int, high: int, code: str = "InvalidParameterValue") -> None:
        self.description, self.low, self.high, self.code = description, low, high, code
        self.rules = (("an integer (or a string of digits)", "InvalidParameter"),
                      (f"between {low} and {high}", code))

    def compile(self) -> Check:
        low, high, code = self.low, self.high, self.code

        def check(value, path):
            if type(value) is str and value.isdigit() and value.isascii() and len(value) <= 20:
                value = int(value)
            if type(value) is not int:  # bool is an int subclass: refused here on purpose
                raise _refuse("InvalidParameter", path, "must be an integer")
            if not low <= value <= high:
                raise _refuse(code, path, f"must be between {low} and {high}")
            return value

        return check

    def schema(self) -> dict:
        return {"type": "integer", "minimum": self.low, "maximum": self.high, "description": self.description}


class Address(Spec):
    """One address; `named=True` also takes `Alias <address>` (senders and From headers)."""

    def __init__(self, description: str, code: str, named: bool = False) -> None:
        self.description, self.code, self.named = description, code, named
        form = "an address or `Alias <address>`" if named else "a well-formed address"
        self.rules = (("a string", "InvalidParameter"), ("not empty", "InvalidParameterValue.EmailAddressIsNULL"),
                      *((HEADER_RULE,) if named else ()),  # a bare address is ASCII without controls
                      (form + ", at most 254 characters", code))

    def compile(self) -> Check:
        code, named = self.code, self.named
        fullmatch, named_match = _ADDRESS.fullmatch, _NAMED.fullmatch

        def check(value, path):
            if not isinstance(value, str):
                raise _refuse("InvalidParameter", path, "must be a string")
            if not value:
                raise _refuse("InvalidParameterValue.EmailAddressIsNULL", path, "must not be empty")
            address = value
            if named:
                check_header(value, path)  # the alias is free text in the From or Reply-To header
            if named and value.endswith(">"):
                match = named_match(value)
                address = match.group(2) if match else ""
            if len(address) > 254 or not fullmatch(address) or len(address.partition("@")[0]) > 64:
                raise _refuse(code, path, "is not a well-formed email address"
                              + (" (or `Alias <address>`)" if named else ""))
            return value

        return check

    def schema(self) -> dict:
        out = {"type": "string", "maxLength": 254 if not self.named else 512, "description": self.description}
        if self.named:
            out["pattern"] = HEADER_PATTERN
        return out


class List(Spec):
    def __init__(self, description: str, item: Spec, max_items: int, max_code: str,
                 min_items: int = 0, min_code: str = "InvalidParameterValue") -> None:
        self.description, self.item = description, item
        self.max_items, self.max_code, self.min_items, self.min_code = max_items, max_code, min_items, min_code
        rules = [(f"at most {max_items} items", max_code)]
        if min_items:
            rules.insert(0, (f"at least {min_items} item", min_code))
        self.rules = (("a list", "InvalidParameter"), *rules)

    def compile(self) -> Check:
        item = self.item.compile()
        low, high, low_code, high_code = self.min_items, self.max_items, self.min_code, self.max_code

        def check(value, path):
            if not isinstance(value, list):
                raise _refuse("InvalidParameter", path, "must be a list")
            if len(value) > high:
                raise _refuse(high_code, path, f"has more than {high} items")
            if len(value) < low:
                raise _refuse(low_code, path, f"must have at least {low} item")
            return [item(entry, f"{path}[{index}]") for index, entry in enumerate(value)]

        return check

    def schema(self) -> dict:
        out = {"type": "array", "items": self.item.schema(), "maxItems": self.max_items,
               "description": self.description}
        if self.min_items:
            out["minItems"] = self.min_items
        return out


class JsonObject(Spec):
    """SES's TemplateData: a string holding a JSON object; an object is accepted and serialised."""

    def __init__(self, description: str, code: str = "FailedOperation.WrongContentJson") -> None:
        self.description, self.code = description, code
        self.rules = (("a JSON object, or a string holding one", code),)

    def compile(self) -> Check:
        code = self.code

        def check(value, path):
            try:
                if isinstance(value, dict):
                    return _compact(value)
                if isinstance(value, str) and isinstance(loads(value), dict):
                    return value
            except (ValueError, RecursionError):
                pass
            raise _refuse(code, path, "must be a JSON object (or a string holding one)")

        return check

    def schema(self) -> dict:
        return {"oneOf": [{"type": "object"}, {"type": "string", "contentMediaType": "application/json"}],
                "description": self.description}


class CrossCheck:
    """A rule across fields: `run(payload, path)` raises InvalidInput; field/rule/code document it."""

    def __init__(self, field: str, rule: str, code: str, run: Callable[[dict, str], None]) -> None:
        self.field, self.rule, self.code, self.run = field, rule, code, run


class Object(Spec):
    """Named fields, some required; unknown fields refused; cross-field `checks` run last."""

    def __init__(self, description: str, fields: dict[str, tuple[Spec, bool]],
                 checks: tuple[CrossCheck, ...] = (),
                 missing_code: str = "MissingParameter") -> None:
        self.description, self.fields, self.checks, self.missing_code = description, fields, checks, missing_code
        self.rules = (("an object; unknown fields refused", "UnknownParameter"),)

    def compile(self) -> Check:
        compiled = {name: spec.compile() for name, (spec, _) in self.fields.items()}
        required = tuple(name for name, (_, needed) in self.fields.items() if needed)
        checks, missing_code = tuple(cross.run for cross in self.checks), self.missing_code

        def check(value, path):
            if not isinstance(value, dict):
                raise _refuse("InvalidParameter", path, "must be a JSON object")
            out = {}
            for name, entry in value.items():
                field_check = compiled.get(name)
                if field_check is None:
                    raise _refuse("UnknownParameter", _join(path, str(name)), "is not a known field")
                if entry is not None:  # JSON null reads as "not given", as the SDK serialises it
                    out[name] = field_check(entry, _join(path, name))
            for name in required:
                if name not in out:
                    raise _refuse(missing_code, _join(path, name), "is required")
            for cross_check in checks:
                cross_check(out, path)
            return out

        return check

    def schema(self) -> dict:
        return {
            "type": "object",
            "description": self.description,
            "properties": {name: spec.schema() for name, (spec, _) in self.fields.items()},
            "required": [name for name, (_, needed) in self.fields.items() if needed],
            "additionalProperties": False,
        }


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
                    raise _refuse("InvalidParameterValue.AttachContentIsWrong",
                                  f"{path}[{index}].Content", "is not valid base64") from exc
            if total > MAX_ATTACHMENT_BYTES:
                raise _refuse("FailedOperation.AttachContentToolarge", path,
                              f"exceed {MAX_ATTACHMENT_BYTES} bytes in total before base64")
            return attachments

        return check


def _file_name(value, path):
    """A file name goes into the Content-Disposition header: a line break is refused as in every
    header-bound field; other control characters with SES's own code for attachment names."""
    if _BAD_FILE_NAME.search(value):
        if _LINE_BREAK.search(value):
            check_header(value, path)
        raise _refuse("FailedOperation.InvalidAttachName", path,
                      "must not contain control characters, path separators or any of :*?\"<>|")


class _Checked(Str):
    """A string spec with extra rule rows checked by one function (`pattern`: its JSON Schema)."""

    def __init__(self, description: str, extra: Callable[[str, str], None], *rules: tuple[str, str],
                 pattern: str | None = None, **kwargs) -> None:
        super().__init__(description, **kwargs)
        self.extra, self.pattern = extra, pattern
        self.rules = (*self.rules, *rules)

    def schema(self) -> dict:
        out = super().schema()
        if self.pattern:
            out["pattern"] = self.pattern
        return out

    def compile(self) -> Check:
        base, extra = super().compile(), self.extra

        def check(value, path):
            value = base(value, path)
            extra(value, path)
            return value

        return check


def _smtp_headers(value, path):
    """SmtpHeaders: SES takes a string of extra headers; we accept a JSON object of
    name -> value (or that object as a string), every name and value fit for a header."""
    try:
        headers = loads(value)
    except (ValueError, RecursionError):
        headers = None
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise _refuse("InvalidParameterValue", path, "must be a JSON object of header name -> string value")
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
        raise _refuse("MissingParameter" if not has_id else "InvalidParameter",
                      _join(path, "TemplateID"), "or TemplateName is required, and not both")
    template.setdefault("TemplateData", "{}")


def _bcc_not_in_destination(payload: dict, path: str) -> None:
    bcc = payload.get("Bcc")
    if bcc:
        to = {address.lower() for address in payload.get("Destination", ())}
        for index, address in enumerate(bcc):
            if address.lower() in to:
                raise _refuse("InvalidParameterValue.ReceiverEmailInvalid", f"Bcc[{index}]",
                              "is also in Destination (SES refuses an address in both)")


def _template_not_simple(payload: dict, path: str) -> None:
    if "Simple" in payload:
        raise _refuse("FailedOperation.WithOutPermission", "Simple",
                      "is disused by SES: send with a Template")
    if "Template" not in payload:
        raise _refuse("MissingParameter", "Template", "is required (SES sends templated mail only)")


def subject_data(subject: str, data: dict, path: str) -> None:
    """Refuse template variables whose values would put a line break or a control character into
    the Subject header once the subject's `{{name}}` placeholders are filled (as the SMTP transport
    fills them: a value that is not a string is written as JSON)."""
    for name in TEMPLATE_VARIABLE.findall(subject):
        if name in data:
            value = data[name]
            check_header(value if isinstance(value, str) else _compact(value), path,
                         "fills the subject with a value holding line breaks or control characters")


def _subject_variables(payload: dict, path: str) -> None:
    subject, template = payload.get("Subject"), payload.get("Template")
    if subject and template and "TemplateData" in template and TEMPLATE_VARIABLE.search(subject):
        subject_data(subject, loads(template["TemplateData"]), _join(path, "Template.TemplateData"))


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
        "FileName": (_Checked("file name shown to the recipient", _file_name,
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
            raise _refuse(missing_code, "FromEmailAddress", "is required (no SESMAIL_DEFAULT_SENDER is configured)")
        params["FromEmailAddress"] = default_sender
    template = params["Template"]
    name = template.pop("TemplateName", None)
    if name is not None:
        template_id = (templates or {}).get(name)
        if template_id is None:
            raise _refuse("InvalidParameterValue.TemplateNotExist", "Template.TemplateName",
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
        raise _refuse("InvalidParameterValue.TemplateNotMatchData", "Template.TemplateData",
                      f"lacks {len(missing)} variable(s) of the template: " + ", ".join(missing))


# --- BatchSendEmail (seeds 001/002) ---------------------------------------------------------

# SES reads times and keys its status index by Beijing date (UTC+08:00).
BEIJING = timezone(timedelta(hours=8))
_BEGIN_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(Z|[+-]\d{2}:?\d{2})?")


def _begin_time(value: str, path: str) -> None:
    if not _BEGIN_TIME.fullmatch(value):
        raise _refuse("InvalidParameterValue", path,
                      "must be `YYYY-MM-DD HH:MM:SS` (Beijing time) or carry an offset (`+00:00`)")


def begin_time(value: str) -> datetime:
    """BeginTime as an aware datetime. Tencent's docs do not state the zone and its console works
    in Beijing time, so a naive time is read as UTC+08:00; an explicit offset is honoured."""
    match = _BEGIN_TIME.fullmatch(value)
    assert match
    zone = match.group(3)
    text = f"{match.group(1)}T{match.group(2)}" + ("+00:00" if zone == "Z" else zone or "+08:00")
    return datetime.fromisoformat(text if zone is None or ":" in text[-6:] else text[:-2] + ":" + text[-2:])


_HTML_TAG = re.compile(r"<\s*/?\s*[A-Za-z!][^>]*>")


def _recipient_data(value: str, path: str) -> None:
    """A list row's TemplateData (ReceiverInputData): at most 800 bytes, and SES takes only flat
    values without HTML tags there (InValidTemplateData): refused here, before a list is built."""
    if len(value.encode("utf-8")) > MAX_RECIPIENT_DATA_BYTES:
        raise _refuse("InvalidParameterValue.TemplateDataLenLimit", path,
                      f"must be at most {MAX_RECIPIENT_DATA_BYTES} bytes of compact JSON")
    if any(isinstance(v, (dict, list)) or (isinstance(v, str) and _HTML_TAG.search(v)) for v in loads(value).values()):
        raise _refuse("InvalidParameterValue.InValidTemplateData", path,
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
            value = _compact(loads(base(value, path)))
            _recipient_data(value, path)
            return value

        return check


def _task_params(payload: dict, path: str) -> None:
    task_type = payload.get("TaskType")
    if task_type == 2 and "TimedParam" not in payload:
        raise _refuse("MissingParameter.TimedParamNecessary", "TimedParam", "is required when TaskType is 2")
    if task_type == 3 and "CycleParam" not in payload:
        raise _refuse("MissingParameter.CycleParamNecessary", "CycleParam", "is required when TaskType is 3")


def _receivers(payload: dict, path: str) -> None:
    if ("ReceiverId" in payload) == ("Recipients" in payload):
        raise _refuse("MissingParameter.SendParamNecessary" if "ReceiverId" not in payload else "InvalidParameter",
                      "ReceiverId", "or Recipients is required, and not both")
    seen: set[str] = set()
    for index, recipient in enumerate(payload.get("Recipients") or ()):
        email = recipient["Email"].lower()
        if email in seen:
            raise _refuse("InvalidParameterValue.DuplicateRecipient", f"Recipients[{index}].Email",
                          "repeats an earlier recipient (SES would mail it twice)")
        seen.add(email)


def _no_attachments(payload: dict, path: str) -> None:
    if "Attachments" in payload:
        raise _refuse("InvalidParameter.AttachmentsNotSupported", "Attachments",
                      "are not supported by BatchSendEmail")
    _template_not_simple(payload, path)


_BEGIN = _Checked("`YYYY-MM-DD HH:MM:SS`, Beijing time unless an offset is given", _begin_time,
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

_batch_send_email = BATCH_SEND_EMAIL.compile()


def validate_batch_send_email(payload: Any, default_sender: str | None = None,
                              templates: dict[str, int] | None = None, now: datetime | None = None) -> dict:
    """A BatchSendEmail payload checked and normalised: BeginTimes converted to Beijing time for
    SES, and inline recipients' TemplateData merged over Template.TemplateData (the common part)."""
    params = _sender_and_template(_batch_send_email(payload, ""), default_sender, templates,
                                  "MissingParameter.SendParamNecessary")
    now = now or datetime.now(timezone.utc)
    for name in ("TimedParam", "CycleParam"):
        if name in params:
            start = begin_time(params[name]["BeginTime"])
            if start < now:
                raise _refuse("InvalidParameterValue.BeginTimeBeforeNow", f"{name}.BeginTime", "is in the past")
            params[name]["BeginTime"] = start.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")
    if "Recipients" in params:
        common = loads(params["Template"].pop("TemplateData", "{}"))
        filled = TEMPLATE_VARIABLE.search(params["Subject"]) is not None
        for index, recipient in enumerate(params["Recipients"]):
            if common:
                data = _compact({**common, **loads(recipient.get("TemplateData", "{}"))})
                _recipient_data(data, f"Recipients[{index}].TemplateData")
                recipient["TemplateData"] = data
            recipient.setdefault("TemplateData", "{}")
            if filled:
                subject_data(params["Subject"], loads(recipient["TemplateData"]), f"Recipients[{index}].TemplateData")
    return params


def json_schema(spec: Spec) -> dict:
    """JSON Schema of a payload, for the OpenAPI document."""
    return spec.schema()


def rule_table(spec: Object, path: str = "") -> list[tuple[str, str, str]]:
    """(field, rule, code) rows describing a payload, nested objects flattened, for the README."""
    rows: list[tuple[str, str, str]] = [(path or "(body)", rule, code) for rule, code in spec.rules]
    for name, (field, required) in spec.fields.items():
        where = _join(path, name)
        if required:
            rows.append((where, "required", spec.missing_code))
        child = field.item if isinstance(field, List) else field
        if child is not field or not isinstance(field, Object):
            rows.extend((where, rule, code) for rule, code in field.rules)
        if child is not field and not isinstance(child, Object):
            rows.extend((where + "[]", rule, code) for rule, code in child.rules)
        if isinstance(child, Object):
            rows.extend(rule_table(child, where + ("[]" if child is not field else "")))
    rows.extend((_join(path, cross.field), cross.rule, cross.code) for cross in spec.checks)
    return rows
