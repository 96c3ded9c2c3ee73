"""Templates and sender addresses in the emulator, and what SendEmail checks against them."""

from __future__ import annotations

import base64
import json
import os

import pytest

from local.ses_emulator import SesEmulator
from tests.local.conftest import ROOT
from tests.local.helpers import call, code_of, make_client, template_data


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def send(**overrides):
    params = {"FromEmailAddress": "noreply@sesmail.local", "Destination": ["ada@example.com"], "Subject": "Hi",
              "Template": {"TemplateID": 2, "TemplateData": template_data(name="Ada")}}
    params.update(overrides)
    return params


def create(client, name="promo", html="<p>Hi {{name}}, {{offer}}</p>", text=""):
    content = {"Html": b64(html), "Text": b64(text)}
    return call(client, "CreateEmailTemplate", {"TemplateName": name, "TemplateContent": content})["TemplateID"]


# ---- templates --------------------------------------------------------------------------------------

def test_repo_templates_are_loaded_approved_with_their_stable_ids(ses, client):
    listed = call(client, "ListEmailTemplates", {"Offset": 0, "Limit": 10})
    with open(os.path.join(ROOT, "templates", "templates.json")) as handle:
        index = json.load(handle)
    assert {t["TemplateName"]: t["TemplateID"] for t in listed["TemplatesMetadata"]} == index
    assert {t["TemplateStatus"] for t in listed["TemplatesMetadata"]} == {0}
    assert listed["TotalCount"] == len(index)
    got = call(client, "GetEmailTemplate", {"TemplateID": index["welcome"]})
    assert (got["TemplateName"], got["TemplateStatus"]) == ("welcome", 0)
    assert "{{name}}" in base64.b64decode(got["TemplateContent"]["Html"]).decode()


def test_an_api_template_is_reviewed_before_it_can_be_used(ses, client, clock):
    ses.template_review_seconds = 60
    template_id = create(client)
    assert template_id >= 1000  # clear of the repo's IDs
    assert call(client, "GetEmailTemplate", {"TemplateID": template_id})["TemplateStatus"] == 1
    data = template_data(name="Ada", offer="10% off")
    refused = send(Template={"TemplateID": template_id, "TemplateData": data})
    assert code_of(client, "SendEmail", refused) == "FailedOperation.InvalidTemplateID"
    clock.advance(60)
    assert call(client, "GetEmailTemplate", {"TemplateID": template_id})["TemplateStatus"] == 0
    assert call(client, "SendEmail", refused)["MessageId"]
    assert ses.message("latest")["Html"] == "<p>Hi Ada, 10% off</p>\n"


def test_an_update_goes_back_to_review(ses, client, clock):
    template_id = create(client)
    clock.advance(1)
    assert call(client, "GetEmailTemplate", {"TemplateID": template_id})["TemplateStatus"] == 0
    ses.template_review_seconds = 30
    call(client, "UpdateEmailTemplate", {"TemplateID": template_id, "TemplateName": "promo2",
                                         "TemplateContent": {"Text": b64("Hello {{name}}")}})
    got = call(client, "GetEmailTemplate", {"TemplateID": template_id})
    assert (got["TemplateName"], got["TemplateStatus"]) == ("promo2", 1)
    assert base64.b64decode(got["TemplateContent"]["Text"]) == b"Hello {{name}}"


def test_a_rejected_template_is_refused_for_sending(ses, client):
    template_id = create(client)
    ses.review_template(template_id, approved=False, reason="spammy")
    [meta] = [t for t in call(client, "ListEmailTemplates", {"Offset": 0, "Limit": 100})["TemplatesMetadata"]
              if t["TemplateID"] == template_id]
    assert (meta["TemplateStatus"], meta["ReviewReason"]) == (2, "spammy")
    data = template_data(name="A", offer="B")
    assert code_of(client, "SendEmail", send(Template={"TemplateID": template_id, "TemplateData": data})) == \
        "FailedOperation.InvalidTemplateID"


def test_delete_email_template(ses, client):
    template_id = create(client)
    assert call(client, "DeleteEmailTemplate", {"TemplateID": template_id}) == {}
    assert code_of(client, "GetEmailTemplate", {"TemplateID": template_id}) == "InvalidParameterValue.TemplateNotExist"


@pytest.mark.parametrize(("action", "params", "code"), [
    ("CreateEmailTemplate", {"TemplateContent": {"Html": b64("x")}}, "InvalidParameterValue.TemplateNameIsNULL"),
    ("CreateEmailTemplate", {"TemplateName": "a\nb", "TemplateContent": {"Html": b64("x")}},
     "InvalidParameterValue.TemplateNameIllegal"),
    ("CreateEmailTemplate", {"TemplateName": "t", "TemplateContent": {}},
     "InvalidParameterValue.TemplateContentIsNULL"),
    ("CreateEmailTemplate", {"TemplateName": "t", "TemplateContent": {"Html": "%%%"}},
     "InvalidParameterValue.TemplateContentIsWrong"),
    ("UpdateEmailTemplate", {"TemplateID": 999, "TemplateName": "t", "TemplateContent": {"Html": b64("x")}},
     "InvalidParameterValue.TemplateNotExist"),
    ("GetEmailTemplate", {"TemplateID": 999}, "InvalidParameterValue.TemplateNotExist"),
    ("DeleteEmailTemplate", {"TemplateID": 999}, "InvalidParameterValue.TemplateNotExist"),
    ("ListEmailTemplates", {"Offset": 0, "Limit": 0}, "FailedOperation.InvalidLimit"),
])
def test_template_actions_refuse_with_the_documented_codes(ses, client, action, params, code):
    assert code_of(client, action, params) == code


def test_send_email_with_an_unknown_template_is_refused_when_templates_are_checked(ses, client):
    unknown = send(Template={"TemplateID": 424242, "TemplateData": "{}"})
    assert code_of(client, "SendEmail", unknown) == "FailedOperation.InvalidTemplateID"
    ses.template_check = False  # the bare emulator's default: SES's own copy is assumed
    assert call(client, "SendEmail", unknown)["MessageId"]
    assert "TemplateID 424242" in ses.message("latest")["Text"]


def test_template_data_missing_a_variable_is_refused(ses, client):
    data = send(Template={"TemplateID": 2, "TemplateData": template_data(nickname="Ada")})
    assert code_of(client, "SendEmail", data) == "InvalidParameterValue.TemplateNotMatchData"
    assert ses.sent == []
    extra = send(Template={"TemplateID": 2, "TemplateData": template_data(name="Ada", unused=1)})
    assert call(client, "SendEmail", extra)["MessageId"]  # extra keys are tolerated


def test_templates_render_into_subject_text_and_escaped_html(ses, client):
    data = template_data(name="Ada <3")
    call(client, "SendEmail", send(Subject="Hi {{name}}", Template={"TemplateID": 2, "TemplateData": data}))
    mail = ses.message("latest")
    assert mail["Subject"] == "Hi Ada <3"
    assert "Welcome, Ada <3!" in mail["Text"]
    assert "Welcome, Ada &lt;3!" in mail["Html"]
    assert (mail["TemplateID"], mail["TemplateName"]) == (2, "welcome")


# ---- senders ----------------------------------------------------------------------------------------

def test_an_unknown_sender_is_refused_until_its_address_is_created(ses, client):
    params = send(FromEmailAddress="Sales <sales@mail.example.com>")
    assert code_of(client, "SendEmail", params) == "FailedOperation.NotAuthenticatedSender"
    assert call(client, "CreateEmailAddress", {"EmailAddress": "sales@mail.example.com",
                                               "EmailSenderName": "Sales"}) == {}
    assert call(client, "SendEmail", params)["MessageId"]
    senders = call(client, "ListEmailAddress", {})["EmailSenders"]
    assert [(s["EmailAddress"], s["EmailSenderName"], s["SmtpPwdType"]) for s in senders] == [
        ("noreply@sesmail.local", "", 0), ("sales@mail.example.com", "Sales", 0)]
    call(client, "DeleteEmailAddress", {"EmailAddress": "sales@mail.example.com"})
    assert code_of(client, "SendEmail", params) == "FailedOperation.NotAuthenticatedSender"


@pytest.mark.parametrize(("params", "code"), [
    ({}, "MissingParameter"),
    ({"EmailAddress": "not an address"}, "InvalidParameterValue.IllegalEmailAddress"),
    ({"EmailAddress": "a@example.com", "EmailSenderName": "Bad: name"}, "InvalidParameterValue.IllegalSenderName"),
    ({"EmailAddress": "noreply@sesmail.local"}, "InvalidParameterValue.RepeatEmailAddress"),
])
def test_create_email_address_refuses_with_the_documented_codes(ses, client, params, code):
    assert code_of(client, "CreateEmailAddress", params) == code


def test_at_most_10_senders_per_domain(ses, client):
    for i in range(9):
        call(client, "CreateEmailAddress", {"EmailAddress": f"s{i}@sesmail.local"})
    assert code_of(client, "CreateEmailAddress", {"EmailAddress": "one-more@sesmail.local"}) == \
        "OperationDenied.ExceedSenderLimit"


def test_delete_of_an_unknown_sender_is_refused(ses, client):
    assert code_of(client, "DeleteEmailAddress", {"EmailAddress": "x@example.com"}) == \
        "InvalidParameterValue.NoSuchSender"


def test_a_bare_emulator_accepts_any_sender_and_any_template():
    with SesEmulator() as emu:
        client = make_client(emu)
        params = send(FromEmailAddress="anyone@anywhere.example", Template={"TemplateID": 7, "TemplateData": "{}"})
        assert call(client, "SendEmail", params)["MessageId"]
        assert emu.senders is None


def test_unsupported_actions_answer_unsupported_operation(ses, client):
    for action in ("CreateEmailIdentity", "CreateCustomBlacklist", "GetAbuseReport"):
        assert code_of(client, action, {}) == "UnsupportedOperation"
