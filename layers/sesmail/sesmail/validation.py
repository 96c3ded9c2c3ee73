"""How a payload is checked: field specs compiled into checkers, and rendered as JSON Schema and rule tables.

A payload is declared once (the SES payloads in `rules`) as a tree of the specs below. The tree is
compiled into nested closures that check a payload (a few microseconds: no schema library,
nothing recompiled per call) and is rendered as JSON Schema (openapi.json) and as the rule tables
of docs/api.md, so the documentation cannot drift from what is enforced.

Every refusal names the field (`Destination[3]`, `Attachments[0].Content`) and the rule, carries a
Tencent Cloud error code (docs/api.md#errors), and never echoes the value. This module knows
the common codes (`InvalidParameter`, `MissingParameter`, `UnknownParameter`, …) and what a mail
header cannot carry; SES's own limits and codes are in `rules`.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from .envelopes import loads
from .errors import InvalidInput
from .log import json_encoder_for

__all__ = [
    "HEADER_CODE",
    "HEADER_PATTERN",
    "HEADER_RULE",
    "HEADER_UNSAFE",
    "Address",
    "Check",
    "Checked",
    "CrossCheck",
    "Disused",
    "Int",
    "JsonObject",
    "List",
    "Object",
    "Spec",
    "Str",
    "check_header",
    "compact",
    "header_safe",
    "join",
    "json_schema",
    "refuse",
    "rule_table",
]

# A compiled spec: (value, path) -> the value, normalised; raises InvalidInput. Values are JSON.
Check = Callable[[Any, str], Any]
# JSON as SES receives it: compact, UTF-8 as is, no NaN.
compact = json_encoder_for(separators=(",", ":"), allow_nan=False)

# An address as SES accepts it: ASCII dot-atom local part and a dotted domain (IDNs in punycode).
_ADDRESS_PATTERN = (
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
_ADDRESS = re.compile(_ADDRESS_PATTERN)
# `Alias <address>`: SES wants one space before `<` and no colon in the alias; the address is
# checked in the same pass.
_NAMED_ADDRESS = re.compile(r'([^<>:"\r\n]*[^<>:"\r\n ]) <(' + _ADDRESS_PATTERN + ")>")

# What a mail header cannot carry, on either transport: every line boundary of str.splitlines()
# (CR, LF, VT, FF, the separators FS/GS/RS, NEL, U+2028, U+2029), where a header line would end
# (Python's email package, which builds the SMTP transport's mail, refuses them; SES's API does not
# refuse them up front), and every other control character (C0 but TAB, DEL, C1), which no header
# field may hold. One rule for both transports, in every header-bound field (HEADER_RULE), refused
# as InvalidParameterValue.HeaderLineBreak before any call.
HEADER_UNSAFE = "\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029"
_HEADER_UNSAFE = re.compile(f"[{HEADER_UNSAFE}]")
HEADER_CODE = "InvalidParameterValue.HeaderLineBreak"
HEADER_RULE = ("no line breaks or control characters (it is a mail header)", HEADER_CODE)
# The same set as a JSON Schema pattern (ECMA-262 escapes, which Python's re reads too).
HEADER_PATTERN = "^[^\\u0000-\\u0008\\u000a-\\u001f\\u007f-\\u009f\\u2028\\u2029]*$"


def refuse(code: str, path: str, rule: str) -> InvalidInput:
    """The refusal of the value at `path` (the body when empty): the field and the rule, never the value."""
    return InvalidInput(f"{path or 'the body'} {rule}", field=path or None, code=code)


def header_safe(value: str) -> bool:
    """True when `value` can be written into a mail header as it is (see HEADER_UNSAFE)."""
    return _HEADER_UNSAFE.search(value) is None


def check_header(value: str, path: str, rule: str = "must not contain line breaks or control characters "
                 "(it becomes a mail header)") -> None:
    """Refuse, as InvalidParameterValue.HeaderLineBreak at `path`, a value no mail header can carry."""
    if _HEADER_UNSAFE.search(value) is not None:
        raise refuse(HEADER_CODE, path, rule)


def join(path: str, name: str) -> str:
    """`Template` + `TemplateID` -> `Template.TemplateID`: the path a refusal names."""
    return f"{path}.{name}" if path else name


class Spec:
    """A field's rule: `compile()` gives the checker, `schema()` the JSON Schema, `rules` the docs."""

    description = ""
    rules: tuple[tuple[str, str], ...] = ()  # (rule text, error code), for the rule tables

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
                raise refuse("InvalidParameter", path, "must be a string")
            if not low <= len(value) <= (high if high is not None else len(value)):
                rule = f"must be {low} to {high} characters" if high is not None else "must not be empty"
                raise refuse(length_code, path, rule)
            if header and unsafe(value) is not None:
                check_header(value, path)
            if choices is not None and value not in choices:
                raise refuse(choice_code, path, f"must be one of \"{choices[0]}\" to \"{choices[-1]}\"")
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
                raise refuse("InvalidParameter", path, "must be an integer")
            if not low <= value <= high:
                raise refuse(code, path, f"must be between {low} and {high}")
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
        fullmatch, named_match, unsafe = _ADDRESS.fullmatch, _NAMED_ADDRESS.fullmatch, _HEADER_UNSAFE.search

        def check(value, path):
            if not isinstance(value, str):
                raise refuse("InvalidParameter", path, "must be a string")
            if not value:
                raise refuse("InvalidParameterValue.EmailAddressIsNULL", path, "must not be empty")
            if named and unsafe(value) is not None:
                check_header(value, path)  # the alias is free text in the From or Reply-To header
            if named and value.endswith(">"):
                match = named_match(value)
                address = match.group(2) if match else None
            else:
                address = value if fullmatch(value) else None
            if address is None or len(address) > 254 or address.find("@") > 64:  # one "@": the local part
                raise refuse(code, path, "is not a well-formed email address"
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
                raise refuse("InvalidParameter", path, "must be a list")
            if len(value) > high:
                raise refuse(high_code, path, f"has more than {high} items")
            if len(value) < low:
                raise refuse(low_code, path, f"must have at least {low} item")
            out = []  # a loop, not a comprehension: one frame less per list (and per refusal)
            for index, entry in enumerate(value):
                out.append(item(entry, f"{path}[{index}]"))
            return out

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
                    return compact(value)
                if isinstance(value, str) and isinstance(loads(value), dict):
                    return value
            except (ValueError, RecursionError):
                pass
            raise refuse(code, path, "must be a JSON object (or a string holding one)")

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
                raise refuse("InvalidParameter", path, "must be a JSON object")
            out = {}
            for name, entry in value.items():
                field_check = compiled.get(name)
                if field_check is None:
                    raise refuse("UnknownParameter", join(path, str(name)), "is not a known field")
                if entry is not None:  # JSON null reads as "not given", as the SDK serialises it
                    out[name] = field_check(entry, f"{path}.{name}" if path else name)  # join(), inlined
            for name in required:
                if name not in out:
                    raise refuse(missing_code, join(path, name), "is required")
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


class Checked(Str):
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


def json_schema(spec: Spec) -> dict:
    """JSON Schema of a payload, for the OpenAPI document."""
    return spec.schema()


def rule_table(spec: Object, path: str = "") -> list[tuple[str, str, str]]:
    """(field, rule, code) rows describing a payload, nested objects flattened: the rule tables of docs/api.md."""
    rows: list[tuple[str, str, str]] = [(path or "(body)", rule, code) for rule, code in spec.rules]
    for name, (field, required) in spec.fields.items():
        where = join(path, name)
        if required:
            rows.append((where, "required", spec.missing_code))
        child = field.item if isinstance(field, List) else field
        if child is not field or not isinstance(field, Object):
            rows.extend((where, rule, code) for rule, code in field.rules)
        if child is not field and not isinstance(child, Object):
            rows.extend((where + "[]", rule, code) for rule, code in child.rules)
        if isinstance(child, Object):
            rows.extend(rule_table(child, where + ("[]" if child is not field else "")))
    rows.extend((join(path, cross.field), cross.rule, cross.code) for cross in spec.checks)
    return rows
