"""SendEmail validation (docs/api.md): every rule, its SES error code, the exact field path, and
messages that name the field and the rule but never echo the value."""

from __future__ import annotations

import base64
import copy
import json

import pytest

from sesmail.errors import InvalidInput
from sesmail.rules import SEND_EMAIL, validate_send_email
from sesmail.validation import json_schema, rule_table

# Offending string values carry this marker; no refusal message may contain it.
MARK = "xyzzy"
TEMPLATES = {"welcome": 100091}
DROP = object()  # removes a key in `payload(...)`
MiB = 1024 * 1024


def payload(**changes) -> dict:
    """A valid SendEmail payload with top-level fields replaced (or removed with DROP)."""
    out = {
        "FromEmailAddress": "Sender <noreply@mail.example.com>",
        "Destination": ["user@example.com"],
        "Subject": "Hello",
        "Template": {"TemplateID": 100091, "TemplateData": {"code": "1234"}},
    }
    for name, value in changes.items():
        if value is DROP:
            out.pop(name, None)
        else:
            out[name] = copy.deepcopy(value)
    return out


def template(**fields) -> dict:
    return {"Template": fields}


def attachment(name: str = "report.pdf", content: bytes | str = b"%PDF-1.4", **extra) -> dict:
    text = base64.b64encode(content).decode("ascii") if isinstance(content, bytes) else content
    return {"FileName": name, "Content": text, **extra}


def addresses(count: int, domain: str = "example.com") -> list[str]:
    return [f"{MARK}{index}@{domain}" for index in range(count)]


def valid(body, default_sender: str | None = None) -> dict:
    return validate_send_email(body, default_sender, TEMPLATES)


def refused(body, default_sender: str | None = None) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        validate_send_email(body, default_sender, TEMPLATES)
    exc = caught.value
    assert MARK not in str(exc) and MARK not in exc.message, "a refusal echoed the offending value"
    return exc


# --- one case per row of rule_table(SEND_EMAIL): (table field, rule) -> (changes, field at fault) ---

RULE_CASES = {
    ("(body)", "an object; unknown fields refused"): ({"Bogus": MARK}, "Bogus"),
    ("FromEmailAddress", "an address or `Alias <address>`, at most 254 characters"):
        ({"FromEmailAddress": f"{MARK}-not-an-address"}, "FromEmailAddress"),
    ("Destination", "required"): ({"Destination": DROP}, "Destination"),
    ("Destination", "a list"): ({"Destination": f"{MARK}@example.com"}, "Destination"),
    ("Destination", "at least 1 item"): ({"Destination": []}, "Destination"),
    ("Destination", "at most 50 items"): ({"Destination": addresses(51)}, "Destination"),
    ("Cc", "a list"): ({"Cc": f"{MARK}@example.com"}, "Cc"),
    ("Cc", "at most 20 items"): ({"Cc": addresses(21)}, "Cc"),
    ("Bcc", "a list"): ({"Bcc": f"{MARK}@example.com"}, "Bcc"),
    ("Bcc", "at most 20 items"): ({"Bcc": addresses(21)}, "Bcc"),
    ("Subject", "required"): ({"Subject": DROP}, "Subject"),
    ("Subject", "a string"): ({"Subject": ["Hello"]}, "Subject"),
    ("Subject", "1 to 100 characters"): ({"Subject": MARK * 21}, "Subject"),
    ("Subject", "no line breaks or control characters (it is a mail header)"):
        ({"Subject": f"Hi\u2028Bcc: {MARK}@example.com"}, "Subject"),
    ("ReplyToAddresses", "an address or `Alias <address>`, at most 254 characters"):
        ({"ReplyToAddresses": f"{MARK}-not-an-address"}, "ReplyToAddresses"),
    ("Template", "an object; unknown fields refused"):
        (template(TemplateID=1, Bogus=MARK), "Template.Bogus"),
    ("Template.TemplateID", "an integer (or a string of digits)"):
        (template(TemplateID=f"{MARK}1"), "Template.TemplateID"),
    ("Template.TemplateID", "between 1 and 9223372036854775807"): (template(TemplateID=0), "Template.TemplateID"),
    ("Template.TemplateName", "a string"): (template(TemplateName=["welcome"]), "Template.TemplateName"),
    ("Template.TemplateName", "1 to 255 characters"): (template(TemplateName=MARK * 52), "Template.TemplateName"),
    ("Template.TemplateName", "no line breaks or control characters (it is a mail header)"):
        (template(TemplateName=f"{MARK}\nwelcome"), "Template.TemplateName"),
    ("Template.TemplateData", "a JSON object, or a string holding one"):
        (template(TemplateID=1, TemplateData=f'["{MARK}"]'), "Template.TemplateData"),
    ("Template.TemplateID", "TemplateID or TemplateName, exactly one"):
        (template(TemplateData={"a": MARK}), "Template.TemplateID"),
    ("Attachments", "a list"): ({"Attachments": attachment()}, "Attachments"),
    ("Attachments", "at most 10 items"): ({"Attachments": [attachment()] * 11}, "Attachments"),
    ("Attachments", "at most 4194304 bytes in total, decoded"):
        ({"Attachments": [attachment(content=b"\0" * (4 * MiB + 1))]}, "Attachments"),
    ("Attachments[]", "an object; unknown fields refused"):
        ({"Attachments": [attachment(Bogus=MARK)]}, "Attachments[0].Bogus"),
    ("Attachments[].FileName", "required"):
        ({"Attachments": [{"Content": "aGk="}]}, "Attachments[0].FileName"),
    ("Attachments[].FileName", "a string"): ({"Attachments": [attachment(name=5)]}, "Attachments[0].FileName"),
    ("Attachments[].FileName", "1 to 255 characters"):
        ({"Attachments": [attachment(name=MARK * 52)]}, "Attachments[0].FileName"),
    ("Attachments[].FileName", "no line breaks (it is a mail header)"):
        ({"Attachments": [attachment(name=f"{MARK}\r\n.txt")]}, "Attachments[0].FileName"),
    ("Attachments[].FileName", "no control characters, path separators or :*?\"<>|"):
        ({"Attachments": [attachment(name=f"../{MARK}.txt")]}, "Attachments[0].FileName"),
    ("Attachments[].Content", "required"):
        ({"Attachments": [{"FileName": "a.txt"}]}, "Attachments[0].Content"),
    ("Attachments[].Content", "a string"): ({"Attachments": [attachment(content=5)]}, "Attachments[0].Content"),
    ("Attachments[].Content", "not empty"): ({"Attachments": [attachment(content="")]}, "Attachments[0].Content"),
    ("Unsubscribe", "a string"): ({"Unsubscribe": True}, "Unsubscribe"),
    ("Unsubscribe", "one of \"0\"-\"12\""): ({"Unsubscribe": MARK}, "Unsubscribe"),
    ("TriggerType", "an integer (or a string of digits)"): ({"TriggerType": f"{MARK}1"}, "TriggerType"),
    ("TriggerType", "between 0 and 1"): ({"TriggerType": 2}, "TriggerType"),
    ("HeaderFrom", "an address or `Alias <address>`, at most 254 characters"):
        ({"HeaderFrom": f"{MARK}-not-an-address"}, "HeaderFrom"),
    ("SmtpMessageId", "a string"): ({"SmtpMessageId": 5}, "SmtpMessageId"),
    ("SmtpMessageId", "1 to 255 characters"): ({"SmtpMessageId": ""}, "SmtpMessageId"),
    ("SmtpMessageId", "no line breaks or control characters (it is a mail header)"):
        ({"SmtpMessageId": f"<{MARK}@example.com>\r\nBcc: a@example.com"}, "SmtpMessageId"),
    ("SmtpHeaders", "a JSON object of header name -> string value (or a string holding one)"):
        ({"SmtpHeaders": f'["{MARK}"]'}, "SmtpHeaders"),
    ("SmtpHeaders", "no line breaks or control characters in names or values (they are mail headers)"):
        ({"SmtpHeaders": {"X-Tag": f"{MARK}\x85Bcc: a@example.com"}}, "SmtpHeaders"),
    ("Topic", "a string"): ({"Topic": [MARK]}, "Topic"),
    ("Topic", "1 to 32 characters"): ({"Topic": MARK * 7}, "Topic"),
    ("FromEmailAddress", "no line breaks or control characters (it is a mail header)"):
        ({"FromEmailAddress": f"{MARK}\x0b <noreply@mail.example.com>"}, "FromEmailAddress"),
    ("ReplyToAddresses", "no line breaks or control characters (it is a mail header)"):
        ({"ReplyToAddresses": f"{MARK}\x0c <help@example.com>"}, "ReplyToAddresses"),
    ("HeaderFrom", "no line breaks or control characters (it is a mail header)"):
        ({"HeaderFrom": f"Shop\u2029{MARK} <shop@example.com>"}, "HeaderFrom"),
    ("Template.TemplateData",
     "values filled into the subject: no line breaks or control characters (it is a mail header)"):
        ({"Subject": "Hi {{ name }}", "Template": {"TemplateID": 1, "TemplateData": {"name": f"{MARK}\u2028"}}},
         "Template.TemplateData"),
    ("Template", "required; `Simple` is disused by SES"): ({"Template": DROP}, "Template"),
    **{(where, "a string"): ({field: value}, at_fault) for where, field, value, at_fault in (
        ("FromEmailAddress", "FromEmailAddress", 5, "FromEmailAddress"),
        ("Destination[]", "Destination", [5], "Destination[0]"),
        ("Cc[]", "Cc", [5], "Cc[0]"),
        ("Bcc[]", "Bcc", [5], "Bcc[0]"),
        ("ReplyToAddresses", "ReplyToAddresses", 5, "ReplyToAddresses"),
        ("HeaderFrom", "HeaderFrom", 5, "HeaderFrom"))},
    **{(where, "not empty"): ({field: value}, at_fault) for where, field, value, at_fault in (
        ("FromEmailAddress", "FromEmailAddress", "", "FromEmailAddress"),
        ("Destination[]", "Destination", [""], "Destination[0]"),
        ("Cc[]", "Cc", [""], "Cc[0]"),
        ("Bcc[]", "Bcc", [""], "Bcc[0]"),
        ("ReplyToAddresses", "ReplyToAddresses", "", "ReplyToAddresses"),
        ("HeaderFrom", "HeaderFrom", "", "HeaderFrom"))},
    **{(where, "a well-formed address, at most 254 characters"): ({field: [f"{MARK}-bad"]}, f"{field}[0]")
       for where, field in (("Destination[]", "Destination"), ("Cc[]", "Cc"), ("Bcc[]", "Bcc"))},
    ("Bcc[]", "no address also in Destination"):
        ({"Destination": [f"{MARK}@example.com"], "Bcc": [f"{MARK.upper()}@example.com"]}, "Bcc[0]"),
}


def test_every_row_of_the_rule_table_has_a_case_here():
    rows = {(field, rule) for field, rule, _ in rule_table(SEND_EMAIL)}
    assert rows == set(RULE_CASES)


@pytest.mark.parametrize(("field", "rule", "code"), rule_table(SEND_EMAIL),
                         ids=[f"{field}: {rule}" for field, rule, _ in rule_table(SEND_EMAIL)])
def test_each_rule_table_row_is_enforced_with_its_code_and_field(field, rule, code):
    changes, at_fault = RULE_CASES[(field, rule)]
    exc = refused(payload(**changes))
    assert exc.code in code.split(" / ")
    assert exc.field == at_fault


def test_the_valid_base_payload_is_accepted_and_normalised():
    assert valid(payload()) == {
        "FromEmailAddress": "Sender <noreply@mail.example.com>",
        "Destination": ["user@example.com"],
        "Subject": "Hello",
        "Template": {"TemplateID": 100091, "TemplateData": '{"code":"1234"}'},
    }


# --- recipients ---

@pytest.mark.parametrize(("field", "limit"), [("Destination", 50), ("Cc", 20), ("Bcc", 20)])
def test_recipient_lists_at_their_limit_are_accepted(field, limit):
    domain = "to.example.com" if field != "Destination" else "example.com"
    params = valid(payload(**{field: addresses(limit, domain)}))
    assert len(params[field]) == limit


def test_destination_over_50_is_refused_with_too_many_recipients():
    exc = refused(payload(Destination=addresses(51)))
    assert (exc.code, exc.field) == ("FailedOperation.TooManyRecipients", "Destination")


@pytest.mark.parametrize("field", ["Cc", "Bcc"])
def test_cc_or_bcc_over_20_is_refused_with_too_many_recipients(field):
    exc = refused(payload(**{field: addresses(21, "copy.example.com")}))
    assert (exc.code, exc.field) == ("FailedOperation.TooManyRecipients", field)


def test_empty_destination_is_refused_as_no_recipient():
    exc = refused(payload(Destination=[]))
    assert (exc.code, exc.field) == ("InvalidParameterValue.EmailAddressIsNULL", "Destination")


def test_an_empty_address_string_is_refused_as_null_address_at_its_index():
    exc = refused(payload(Destination=["user@example.com", ""]))
    assert (exc.code, exc.field) == ("InvalidParameterValue.EmailAddressIsNULL", "Destination[1]")


def test_an_address_in_both_destination_and_bcc_is_refused_case_insensitively():
    exc = refused(payload(Destination=[f"{MARK}@Example.com"],
                          Bcc=["other@example.com", f"{MARK.upper()}@EXAMPLE.COM"]))
    assert (exc.code, exc.field) == ("InvalidParameterValue.ReceiverEmailInvalid", "Bcc[1]")


def test_an_address_in_both_destination_and_cc_is_allowed():
    assert valid(payload(Cc=["user@example.com"]))["Cc"] == ["user@example.com"]


@pytest.mark.parametrize("bad", [
    f"{MARK}",
    f"{MARK}@",
    f"@{MARK}.com",
    f"{MARK}@localhost",
    f"{MARK}@@example.com",
    f"{MARK} @example.com",
    f"{MARK}@exa mple.com",
    f"{MARK}@-example.com",
    f"{MARK}..dots@example.com",
    f"{MARK}@example.com\n",
    f"Name <{MARK}@example.com>",  # recipients take a bare address only
    MARK * 13 + "@example.com",  # local part of 65 characters
    f"{MARK}@" + "a" * 250 + ".com",  # over 254 characters
])
def test_a_malformed_recipient_is_refused_with_its_index(bad):
    exc = refused(payload(Destination=["a@example.com", "b@example.com", "c@example.com", bad]))
    assert (exc.code, exc.field) == ("InvalidParameterValue.ReceiverEmailInvalid", "Destination[3]")


@pytest.mark.parametrize("field", ["Cc", "Bcc"])
def test_a_malformed_cc_or_bcc_address_is_refused_with_its_index(field):
    exc = refused(payload(**{field: ["ok@copy.example.com", f"{MARK}-not-an-address"]}))
    assert (exc.code, exc.field) == ("InvalidParameterValue.ReceiverEmailInvalid", f"{field}[1]")


@pytest.mark.parametrize("good", [
    "user@example.com",
    "first.last+tag@sub.example.co.uk",
    "o'brien@example.com",
    "user@xn--bcher-kva.example",
])
def test_well_formed_recipients_are_accepted(good):
    assert valid(payload(Destination=[good]))["Destination"] == [good]


def test_a_non_string_recipient_is_refused_as_invalid_parameter():
    exc = refused(payload(Destination=[5]))
    assert (exc.code, exc.field) == ("InvalidParameter", "Destination[0]")


# --- sender ---

@pytest.mark.parametrize("sender", [
    "noreply@mail.example.com",
    "QCLOUDTEAM <noreply@mail.qcloud.com>",
    "Example Shop Team <noreply@mail.example.com>",
    "示例 <noreply@mail.example.com>",
])
def test_a_sender_as_address_or_name_with_address_is_accepted(sender):
    assert valid(payload(FromEmailAddress=sender))["FromEmailAddress"] == sender


@pytest.mark.parametrize("sender", [
    f"{MARK}<noreply@mail.example.com>",  # no space before <
    f"Na:me{MARK} <noreply@mail.example.com>",  # colon in the alias
    f"<{MARK}@mail.example.com>",  # no alias at all
    f"Name  <{MARK}@mail.example.com",  # unclosed
    f"Name <{MARK}-not-an-address>",
    f'"{MARK}" <noreply@mail.example.com>',  # quotes in the alias
    f"{MARK}-not-an-address",
])
def test_a_malformed_sender_is_refused_as_incorrect_sender(sender):
    exc = refused(payload(FromEmailAddress=sender))
    assert (exc.code, exc.field) == ("FailedOperation.IncorrectSender", "FromEmailAddress")


def test_header_from_takes_the_named_form_too():
    assert valid(payload(HeaderFrom="Shop <shop@example.com>"))["HeaderFrom"] == "Shop <shop@example.com>"


def test_reply_to_takes_the_named_form_and_refuses_garbage_as_incorrect_email():
    assert valid(payload(ReplyToAddresses="Help <help@example.com>"))["ReplyToAddresses"] == "Help <help@example.com>"
    exc = refused(payload(ReplyToAddresses=f"Help<{MARK}@example.com>"))
    assert (exc.code, exc.field) == ("FailedOperation.IncorrectEmail", "ReplyToAddresses")


def test_an_omitted_sender_takes_the_configured_default():
    params = valid(payload(FromEmailAddress=DROP), default_sender="Default <default@example.com>")
    assert params["FromEmailAddress"] == "Default <default@example.com>"


def test_an_omitted_sender_without_a_default_is_refused_as_missing():
    exc = refused(payload(FromEmailAddress=DROP))
    assert (exc.code, exc.field) == ("MissingParameter", "FromEmailAddress")


def test_a_given_sender_wins_over_the_default():
    params = valid(payload(), default_sender="default@example.com")
    assert params["FromEmailAddress"] == "Sender <noreply@mail.example.com>"


# --- header-bound fields ---

# Every line boundary str.splitlines() knows, then other control characters: none fits in a header.
LINE_BREAKS = ["\r", "\n", "\r\n", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
CONTROLS = ["\x00", "\x07", "\x1b", "\x7f", "\x9b"]
HEADER_FIELDS = [
    (lambda bad: {"Subject": f"Hi{bad}"}, "Subject"),
    (lambda bad: {"Attachments": [attachment(name=f"a{bad}.txt")]}, "Attachments[0].FileName"),
    (lambda bad: {"SmtpMessageId": f"<id{bad}@example.com>"}, "SmtpMessageId"),
    (lambda bad: {"FromEmailAddress": f"Shop{bad} <noreply@mail.example.com>"}, "FromEmailAddress"),
    (lambda bad: {"HeaderFrom": f"Shop{bad} <shop@example.com>"}, "HeaderFrom"),
    (lambda bad: {"ReplyToAddresses": f"Help{bad} <help@example.com>"}, "ReplyToAddresses"),
    (lambda bad: {"SmtpHeaders": {"X-Tag": f"a{bad}b"}}, "SmtpHeaders"),
    (lambda bad: {"SmtpHeaders": json.dumps({f"X-{bad}Tag": "a"})}, "SmtpHeaders"),
    (lambda bad: {"Subject": "Hi {{name}}", "Template": {"TemplateID": 1, "TemplateData": {"name": f"A{bad}"}}},
     "Template.TemplateData"),
]
HEADER_FIELD_IDS = ["Subject", "FileName", "SmtpMessageId", "FromEmailAddress", "HeaderFrom", "ReplyToAddresses",
                    "SmtpHeaders-value", "SmtpHeaders-name", "subject-variable"]


@pytest.mark.parametrize("breaker", LINE_BREAKS + CONTROLS, ids=[repr(c) for c in LINE_BREAKS + CONTROLS])
@pytest.mark.parametrize(("changes", "field"), HEADER_FIELDS, ids=HEADER_FIELD_IDS)
def test_a_line_break_or_control_character_in_a_header_bound_field_is_refused(changes, field, breaker):
    exc = refused(payload(**changes(f"{MARK}{breaker}Bcc: victim@example.com")))
    # A file name keeps SES's own code for other control characters (InvalidAttachName).
    code = ("FailedOperation.InvalidAttachName" if field.endswith("FileName") and breaker in CONTROLS
            else "InvalidParameterValue.HeaderLineBreak")
    assert (exc.code, exc.field) == (code, field)


def test_the_header_rule_covers_every_line_boundary_of_splitlines():
    from sesmail.validation import header_safe

    boundaries = [chr(n) for n in range(0x110000) if len(f"a{chr(n)}b".splitlines()) > 1]
    assert boundaries and not any(header_safe(f"a{char}b") for char in boundaries)
    assert header_safe("Tab\tand unicode: caf\u00e9 \u4f60\u597d \U0001f600")


@pytest.mark.parametrize(("changes", "field"), [
    ({"Subject": "Order\t{{ id }}", "Template": {"TemplateID": 1, "TemplateData": {"id": 7, "x": "a\nb"}}},
     "Subject"),  # a TAB is whitespace a header may hold; a variable the subject does not use is free
    ({"Subject": "Hi {{name}}", "Template": {"TemplateID": 1, "TemplateData": {"name": {"nested": "a\nb"}}}},
     "Subject"),  # a value that is not a string is written as JSON, where a line break is escaped
    ({"SmtpHeaders": {"X-Note": "caf\u00e9 \u4f60\u597d"}}, "SmtpHeaders"),
], ids=["tab-and-unused-variable", "json-value", "unicode-header"])
def test_header_bound_values_that_fit_in_a_header_are_accepted(changes, field):
    assert field in valid(payload(**changes))


@pytest.mark.parametrize("headers", [
    {"X-Tag": f"{MARK}\r\nBcc: victim@example.com"},
    {f"X-{MARK}\nBcc": "victim@example.com"},
])
def test_cr_or_lf_in_smtp_headers_is_refused(headers):
    for value in (headers, json.dumps(headers)):
        exc = refused(payload(SmtpHeaders=value))
        assert (exc.code, exc.field) == ("InvalidParameterValue.HeaderLineBreak", "SmtpHeaders")


def test_smtp_headers_as_an_object_is_serialised_compactly():
    assert valid(payload(SmtpHeaders={"X-Tag": "a b"}))["SmtpHeaders"] == '{"X-Tag":"a b"}'


def test_smtp_headers_with_a_non_string_value_is_refused():
    exc = refused(payload(SmtpHeaders={"X-Count": 5}))
    assert (exc.code, exc.field) == ("InvalidParameterValue", "SmtpHeaders")


# --- subject ---

@pytest.mark.parametrize("subject", ["x", "x" * 100, "订" * 100])
def test_a_subject_of_1_to_100_characters_is_accepted(subject):
    assert valid(payload(Subject=subject))["Subject"] == subject


@pytest.mark.parametrize("subject", ["", MARK + "x" * 96, "订" * 101])
def test_a_subject_of_0_or_over_100_characters_is_refused_with_subject_length_error(subject):
    exc = refused(payload(Subject=subject))
    assert (exc.code, exc.field) == ("InvalidParameterValue.SubjectLengthError", "Subject")


# --- attachments ---

def test_ten_attachments_are_accepted():
    assert len(valid(payload(Attachments=[attachment(f"f{n}.txt") for n in range(10)]))["Attachments"]) == 10


def test_eleven_attachments_are_refused_with_too_many_attachments():
    exc = refused(payload(Attachments=[attachment(f"f{n}.txt") for n in range(11)]))
    assert (exc.code, exc.field) == ("FailedOperation.TooManyAttachments", "Attachments")


@pytest.mark.parametrize("content", [f"{MARK}!!", "aGk", "aG k=", "aGk=\n", "====", "%%%%"])
def test_invalid_base64_content_is_refused_with_its_path(content):
    exc = refused(payload(Attachments=[attachment(), attachment("b.txt", content=content)]))
    assert (exc.code, exc.field) == ("InvalidParameterValue.AttachContentIsWrong", "Attachments[1].Content")


def test_attachments_of_exactly_4_mib_decoded_in_total_are_accepted():
    half = b"\0" * (2 * MiB)
    params = valid(payload(Attachments=[attachment("a.bin", half), attachment("b.bin", half)]))
    assert len(params["Attachments"]) == 2


@pytest.mark.parametrize("sizes", [[4 * MiB + 1], [2 * MiB, 2 * MiB + 1]], ids=["one", "two"])
def test_attachments_over_4_mib_decoded_in_total_are_refused_as_too_large(sizes):
    files = [attachment(f"f{n}.bin", b"\0" * size) for n, size in enumerate(sizes)]
    exc = refused(payload(Attachments=files))
    assert (exc.code, exc.field) == ("FailedOperation.AttachContentToolarge", "Attachments")


@pytest.mark.parametrize("name", [
    f"../{MARK}.txt", f"{MARK}\\x.txt", f"{MARK}:x.txt", f"{MARK}*.txt", f"{MARK}?.txt",
    f'{MARK}".txt', f"{MARK}<.txt", f"{MARK}>.txt", f"{MARK}|.txt", f"{MARK}\x00.txt", f"{MARK}\t.txt",
    f"{MARK}\x7f.txt", "", MARK * 51 + ".txt",
])
def test_a_bad_file_name_is_refused_as_invalid_attach_name(name):
    exc = refused(payload(Attachments=[attachment(name=name)]))
    assert (exc.code, exc.field) == ("FailedOperation.InvalidAttachName", "Attachments[0].FileName")


@pytest.mark.parametrize("name", ["report.pdf", "报告 2024.xlsx", "a" * 255, "x (1).tar.gz"])
def test_ordinary_file_names_are_accepted(name):
    assert valid(payload(Attachments=[attachment(name=name)]))["Attachments"][0]["FileName"] == name


# --- TriggerType, Unsubscribe ---

@pytest.mark.parametrize("value", [0, 1, "0", "1"])
def test_trigger_type_0_or_1_is_accepted_as_an_int(value):
    assert valid(payload(TriggerType=value))["TriggerType"] == int(value)


@pytest.mark.parametrize(("value", "code"), [
    (2, "InvalidParameterValue"),
    (-1, "InvalidParameterValue"),
    (True, "InvalidParameter"),
    (False, "InvalidParameter"),
    (1.0, "InvalidParameter"),
    ("one", "InvalidParameter"),
])
def test_trigger_type_other_than_0_or_1_is_refused(value, code):
    exc = refused(payload(TriggerType=value))
    assert (exc.code, exc.field) == (code, "TriggerType")


@pytest.mark.parametrize("value", [str(n) for n in range(13)])
def test_unsubscribe_0_to_12_as_a_string_is_accepted(value):
    assert valid(payload(Unsubscribe=value))["Unsubscribe"] == value


def test_unsubscribe_as_an_int_is_normalised_to_its_string():
    assert valid(payload(Unsubscribe=5))["Unsubscribe"] == "5"


@pytest.mark.parametrize("value", ["13", 13, "-1", "05", " 5", ""])
def test_unsubscribe_outside_0_to_12_is_refused(value):
    exc = refused(payload(Unsubscribe=value))
    assert (exc.code, exc.field) == ("InvalidParameterValue", "Unsubscribe")


# --- Template ---

@pytest.mark.parametrize(("given", "expected"), [(1, 1), (2**63 - 1, 2**63 - 1), ("100091", 100091)])
def test_template_id_between_1_and_int64_max_is_accepted(given, expected):
    assert valid(payload(**template(TemplateID=given)))["Template"]["TemplateID"] == expected


@pytest.mark.parametrize(("value", "code"), [
    (0, "FailedOperation.InvalidTemplateID"),
    (-5, "FailedOperation.InvalidTemplateID"),
    (2**63, "FailedOperation.InvalidTemplateID"),
    (str(2**63), "FailedOperation.InvalidTemplateID"),
    ("-5", "InvalidParameter"),
    ("12a", "InvalidParameter"),
    (1.5, "InvalidParameter"),
    (True, "InvalidParameter"),
    ("١٢", "InvalidParameter"),  # non-ASCII digits
])
def test_template_id_outside_1_to_int64_max_is_refused(value, code):
    exc = refused(payload(**template(TemplateID=value)))
    assert (exc.code, exc.field) == (code, "Template.TemplateID")


def test_template_data_given_as_an_object_is_serialised_compactly():
    data = {"name": "张三", "items": [1, 2], "nested": {"a": None}}
    params = valid(payload(**template(TemplateID=1, TemplateData=data)))
    assert params["Template"]["TemplateData"] == '{"name":"张三","items":[1,2],"nested":{"a":null}}'


def test_template_data_given_as_a_json_object_string_is_passed_unchanged():
    text = '{ "code" : "1234" }'
    assert valid(payload(**template(TemplateID=1, TemplateData=text)))["Template"]["TemplateData"] == text


@pytest.mark.parametrize("data", ["[1]", "not json", 5, '"text"', "", "null", ["a"], True,
                                  '{"a":' * 100000])
def test_template_data_that_is_not_a_json_object_is_refused_as_wrong_content_json(data):
    exc = refused(payload(**template(TemplateID=1, TemplateData=data)))
    assert (exc.code, exc.field) == ("FailedOperation.WrongContentJson", "Template.TemplateData")


@pytest.mark.parametrize("template_fields", [{"TemplateID": 1}, {"TemplateID": 1, "TemplateData": None}])
def test_omitted_template_data_becomes_an_empty_object(template_fields):
    assert valid(payload(Template=template_fields))["Template"] == {"TemplateID": 1, "TemplateData": "{}"}


def test_template_name_is_resolved_to_its_id_through_the_map():
    params = valid(payload(**template(TemplateName="welcome")))
    assert params["Template"] == {"TemplateID": 100091, "TemplateData": "{}"}


def test_an_unknown_template_name_is_refused_as_template_not_exist():
    exc = refused(payload(**template(TemplateName=f"{MARK}-unknown")))
    assert (exc.code, exc.field) == ("InvalidParameterValue.TemplateNotExist", "Template.TemplateName")


def test_a_template_name_with_no_map_configured_is_refused():
    with pytest.raises(InvalidInput) as caught:
        validate_send_email(payload(**template(TemplateName="welcome")), None, None)
    assert caught.value.code == "InvalidParameterValue.TemplateNotExist"


def test_both_template_id_and_template_name_are_refused():
    exc = refused(payload(**template(TemplateID=1, TemplateName="welcome")))
    assert (exc.code, exc.field) == ("InvalidParameter", "Template.TemplateID")


def test_neither_template_id_nor_template_name_is_refused_as_missing():
    exc = refused(payload(**template(TemplateData={"a": 1})))
    assert (exc.code, exc.field) == ("MissingParameter", "Template.TemplateID")


def test_a_missing_template_is_refused_as_missing_parameter():
    exc = refused(payload(Template=DROP))
    assert (exc.code, exc.field) == ("MissingParameter", "Template")


def test_simple_content_is_refused_as_without_permission():
    exc = refused(payload(Simple={"Html": base64.b64encode(MARK.encode()).decode(), "Text": MARK}))
    assert (exc.code, exc.field) == ("FailedOperation.WithOutPermission", "Simple")


def test_simple_content_without_a_template_is_still_refused_as_without_permission():
    exc = refused(payload(Template=DROP, Simple={"Text": MARK}))
    assert (exc.code, exc.field) == ("FailedOperation.WithOutPermission", "Simple")


def test_a_template_that_is_not_an_object_is_refused():
    exc = refused(payload(Template=100091))
    assert (exc.code, exc.field) == ("InvalidParameter", "Template")


# --- unknown fields, nulls, the body itself ---

@pytest.mark.parametrize(("changes", "field"), [
    ({"Bogus": MARK}, "Bogus"),
    ({"destination": [f"{MARK}@example.com"]}, "destination"),  # field names are case-sensitive
    ({"Template": {"TemplateID": 1, "TemplateDatas": MARK}}, "Template.TemplateDatas"),
    ({"Attachments": [attachment(), attachment(Mime=MARK)]}, "Attachments[1].Mime"),
])
def test_an_unknown_field_is_refused_with_its_path(changes, field):
    exc = refused(payload(**changes))
    assert (exc.code, exc.field) == ("UnknownParameter", field)


@pytest.mark.parametrize("name", ["Cc", "Bcc", "ReplyToAddresses", "Attachments", "Unsubscribe", "TriggerType",
                                  "HeaderFrom", "SmtpMessageId", "SmtpHeaders", "Simple"])
def test_a_json_null_optional_field_is_treated_as_absent(name):
    assert name not in valid(payload(**{name: None}))


def test_a_json_null_sender_takes_the_default_sender():
    params = valid(payload(FromEmailAddress=None), default_sender="default@example.com")
    assert params["FromEmailAddress"] == "default@example.com"


@pytest.mark.parametrize("name", ["Destination", "Subject"])
def test_a_json_null_required_field_is_refused_as_missing(name):
    exc = refused(payload(**{name: None}))
    assert (exc.code, exc.field) == ("MissingParameter", name)


def test_a_json_null_template_is_refused_as_missing():
    exc = refused(payload(Template=None))
    assert (exc.code, exc.field) == ("MissingParameter", "Template")


@pytest.mark.parametrize("body", [[payload()], f"{MARK}", 5, None, True])
def test_a_body_that_is_not_an_object_is_refused_as_invalid_parameter(body):
    exc = refused(body)
    assert exc.code == "InvalidParameter"
    assert exc.field is None


def test_validation_does_not_modify_the_callers_payload():
    original = payload(**template(TemplateName="welcome", TemplateData={"a": 1}))
    before = copy.deepcopy(original)
    valid(original)
    assert original == before


# --- the declaration rendered as documentation ---

def test_json_schema_is_a_closed_object_schema_listing_every_field():
    schema = json_schema(SEND_EMAIL)
    json.dumps(schema)  # plain JSON data
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"Destination", "Subject"}
    assert set(schema["properties"]) == {
        "FromEmailAddress", "Destination", "Cc", "Bcc", "Subject", "ReplyToAddresses", "Template", "Simple",
        "Attachments", "Unsubscribe", "TriggerType", "HeaderFrom", "SmtpMessageId", "SmtpHeaders", "Topic"}


def test_json_schema_carries_the_ses_limits():
    props = json_schema(SEND_EMAIL)["properties"]
    assert props["Destination"]["maxItems"] == 50
    assert props["Destination"]["minItems"] == 1
    assert props["Cc"]["maxItems"] == props["Bcc"]["maxItems"] == 20
    assert props["Attachments"]["maxItems"] == 10
    assert (props["Subject"]["minLength"], props["Subject"]["maxLength"]) == (1, 100)
    assert props["Unsubscribe"]["enum"] == [str(n) for n in range(13)]
    assert (props["TriggerType"]["minimum"], props["TriggerType"]["maximum"]) == (0, 1)
    assert props["Template"]["additionalProperties"] is False
    assert props["Attachments"]["items"]["additionalProperties"] is False
    assert set(props["Attachments"]["items"]["required"]) == {"FileName", "Content"}


@pytest.mark.parametrize("field", ["Destination[]", "Cc[]", "Bcc[]"])
def test_rule_table_lists_the_recipient_address_rule(field):
    assert (field, "a well-formed address, at most 254 characters",
            "InvalidParameterValue.ReceiverEmailInvalid") in rule_table(SEND_EMAIL)


def test_rule_table_rows_are_field_rule_code_strings():
    rows = rule_table(SEND_EMAIL)
    assert rows and all(len(row) == 3 and all(isinstance(part, str) and part for part in row) for row in rows)


# --- where the rules live: cold start ------------------------------------------------------------

def _modules_after(code: str) -> set[str]:
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", code + "; import sys; print(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=os.path.join(root, "layers", "sesmail")))
    return set(out.stdout.split())


def test_the_webhook_path_loads_neither_the_payload_tables_nor_the_validation_engine():
    # The webhook compares addresses (client policies) but validates no SendEmail payload.
    loaded = _modules_after("import sesmail.http, sesmail.policy, sesmail.events, sesmail.webhook")
    assert "sesmail.addresses" in loaded
    assert not {"sesmail.rules", "sesmail.validation"} & loaded


def test_batch_send_email_is_compiled_on_first_use_only():
    from sesmail import rules

    loaded = _modules_after("import sesmail.rules; assert sesmail.rules._batch_send_email is None")
    assert "sesmail.rules" in loaded
    checked = rules.validate_batch_send_email({
        "FromEmailAddress": "noreply@mail.example.com", "ReceiverId": 1, "Subject": "Hello", "TaskType": 1,
        "Template": {"TemplateID": 100091}})
    assert checked["ReceiverId"] == 1 and rules._batch_send_email is not None
