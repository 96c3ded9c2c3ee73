"""`make sync`: the senders and templates kept in git, made real at SES.

- Senders declared in the config file (`Senders: [{"EmailAddress", "EmailSenderName"}]`) are
  created with CreateEmailAddress. One that exists (`InvalidParameterValue.RepeatEmailAddress`)
  is fine; an unverified domain and the sender limit end the run with what to do.
- Templates under `templates/` (`<name>.html` and/or `<name>.txt`, `{{var}}` placeholders) are
  created or updated (CreateEmailTemplate / UpdateEmailTemplate, base64 bodies) only when their
  content differs from SES's copy (GetEmailTemplate); SES reviews every new or changed template
  before it can be sent, so each one's review status is reported (0 approved, 1 reviewing,
  2 rejected, with SES's reason).
- The config file gets the name -> TemplateID map (`Templates`) and each template's variables
  (`TemplateVariables`, by TemplateID), so callers may name a template and `send` can refuse
  TemplateData that misses a variable before calling SES. Other keys are left as they are.
- `--dry-run` calls only SES's read actions and writes nothing: it prints what would change.

SES is reached exactly as the functions reach it (sesmail.ses: the same SESMAIL_* and
TENCENTCLOUD_* variables, the same retry policy), so the local emulator (`make dev`) serves as SES.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
from typing import Any, Callable

__all__ = ["STATUS", "SyncError", "local_templates", "run", "template_variables"]

# TemplatesMetadata.TemplateStatus / GetEmailTemplate.TemplateStatus
STATUS = {0: "approved", 1: "reviewing", 2: "rejected"}
CALL_TIMEOUT_MS = 60_000  # one SES call; a command line has no function time limit
PAGE = 100  # ListEmailTemplates' largest Limit
_VARIABLE = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")  # SES's {{var}}, inner spaces tolerated

# What to do when SES refuses a sender (CreateEmailAddress's codes: https://cloud.tencent.com/document/api/1288/51052).
SENDER_ADVICE = {
    "OperationDenied.DomainNotVerified": (
        "its domain {domain} is not verified at SES. Add the domain (SES console: Email configuration -> Sender "
        "domain, or CreateEmailIdentity), publish the SPF/DKIM/MX records SES shows at your DNS provider, wait "
        "until SES marks it verified, then run `make sync` again."),
    "OperationDenied.ExceedSenderLimit": (
        "SES's limit of sender addresses is reached (10 per domain). Delete an unused sender (SES console, or "
        "DeleteEmailAddress), use another verified domain, or ask Tencent Cloud support for a higher limit; then "
        "run `make sync` again."),
    "InvalidParameterValue.IllegalEmailAddress": "SES finds the address malformed: fix it in the config file.",
    "InvalidParameterValue.IllegalSenderName": (
        "SES refuses the EmailSenderName (no colon, no control characters): fix it in the config file."),
}


class SyncError(Exception):
    """A problem with the inputs (config file, templates): nothing was changed at SES because of it."""


def template_variables(*texts: str) -> list[str]:
    """The `{{var}}` names a template uses, sorted (what `send` checks TemplateData against)."""
    return sorted({name for text in texts for name in _VARIABLE.findall(text or "")})


def local_templates(directory: str) -> dict[str, dict[str, str]]:
    """{name: {"Html": …, "Text": …}} for every `<name>.html` / `<name>.txt` in `directory`."""
    found: dict[str, dict[str, str]] = {}
    for entry in sorted(os.listdir(directory)):
        name, dot, ext = entry.rpartition(".")
        if not dot or ext not in ("html", "txt"):
            continue
        if not name or len(name) > 255 or any(ord(c) < 32 or c in "/\\" for c in name):
            raise SyncError(f"{entry}: not a usable SES TemplateName")
        with open(os.path.join(directory, entry), encoding="utf-8") as handle:
            found.setdefault(name, {})["Html" if ext == "html" else "Text"] = handle.read()
    return found


def _senders(config: dict, path: str) -> list[dict[str, str]]:
    senders = config.get("Senders") or []
    if not isinstance(senders, list):
        raise SyncError(f"{path}: Senders must be a list of {{\"EmailAddress\", \"EmailSenderName\"}}")
    out = []
    for index, sender in enumerate(senders):
        address = sender.get("EmailAddress") if isinstance(sender, dict) else None
        name = sender.get("EmailSenderName", "") if isinstance(sender, dict) else None
        if not isinstance(address, str) or "@" not in address or not isinstance(name, str) or set(sender) - {
                "EmailAddress", "EmailSenderName"}:
            raise SyncError(f"{path}: Senders[{index}] must be {{\"EmailAddress\": \"a@domain\", "
                            "\"EmailSenderName\": \"optional name\"}")
        out.append({"EmailAddress": address.strip(), "EmailSenderName": name})
    return out


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _unb64(text: Any) -> str:
    try:
        return base64.b64decode(text or "").decode("utf-8") if text else ""
    except ValueError:
        return "\x00unreadable"  # never equal to a local file: the template is updated


class _Ses:
    """SES calls through the layer's client, each with its own time limit and under SES's rate."""

    def __init__(self, settings: Any) -> None:
        from sesmail import ratelimit
        from sesmail.ses import client_for

        self.client = client_for(settings)
        self.limiter = ratelimit.LocalLimiter(settings.ses_rate)

    def __call__(self, action: str, params: dict) -> dict:
        from sesmail.deadline import Deadline

        return self.client.call(action, params, Deadline(CALL_TIMEOUT_MS), self.limiter)


def _list_templates(ses: Callable[[str, dict], dict]) -> list[dict]:
    rows: list[dict] = []
    offset = 0
    while True:
        page = ses("ListEmailTemplates", {"Offset": offset, "Limit": PAGE})
        found = [row for row in page.get("TemplatesMetadata") or [] if isinstance(row, dict)]
        rows += found
        if len(found) < PAGE:
            return rows
        offset += PAGE


def run(config_path: str, templates_dir: str, dry_run: bool = False, ses: Callable[[str, dict], dict] | None = None,
        out: Callable[[str], None] | None = None) -> int:
    """Sync; returns the exit status (0 done, 1 something at SES needs the user's action)."""
    from sesmail import config as config_module
    from sesmail.errors import SesmailError, SesRefused

    def say(line: str) -> None:
        (out or (lambda text: print(text, flush=True)))(line)

    try:
        with open(config_path, encoding="utf-8") as handle:
            config = json.load(handle)
    except FileNotFoundError:
        config = {}
    if not isinstance(config, dict):
        raise SyncError(f"{config_path}: the config file must hold a JSON object")
    senders = _senders(config, config_path)
    templates = local_templates(templates_dir)
    if ses is None:
        # The SES connection only: the config file is what this run completes (its Templates).
        ses = _Ses(config_module.Settings(dict(os.environ), read_file=False))
    mode = " (dry run: nothing is changed)" if dry_run else ""
    say(f"sync{mode}: {len(senders)} sender(s) from {config_path}, {len(templates)} template(s) from {templates_dir}")
    failed = False

    # -- senders -------------------------------------------------------------------------------
    try:
        existing = {str(s.get("EmailAddress", "")).lower(): s for s in ses("ListEmailAddress", {}).get(
            "EmailSenders") or [] if isinstance(s, dict)}
        for index, sender in enumerate(senders, 1):
            address, name = sender["EmailAddress"], sender["EmailSenderName"]
            where = f"[{index}/{len(senders)}] sender {address}"
            known = existing.get(address.lower())
            if known is not None:
                note = "" if (known.get("EmailSenderName") or "") == name else (
                    f" (SES keeps the name {known.get('EmailSenderName')!r}: SES has no update for it; delete and"
                    " re-create the sender to change it)")
                say(f"{where}: exists{note}")
                continue
            if dry_run:
                say(f"{where}: would be created (CreateEmailAddress)")
                continue
            params = {"EmailAddress": address, **({"EmailSenderName": name} if name else {})}
            try:
                ses("CreateEmailAddress", params)
                say(f"{where}: created")
            except SesRefused as exc:
                if exc.code == "InvalidParameterValue.RepeatEmailAddress":
                    say(f"{where}: exists")
                    continue
                advice = SENDER_ADVICE.get(exc.code)
                if advice is None:
                    raise
                failed = True
                say(f"{where}: NOT created ({exc.code}): " + advice.format(domain=address.rpartition("@")[2]))

        # -- templates -----------------------------------------------------------------------------
        mapped: dict[str, Any] = config["Templates"] if isinstance(config.get("Templates"), dict) else {}
        at_ses = _list_templates(ses)
        by_id = {row.get("TemplateID"): row for row in at_ses}
        by_name: dict[str, list[dict]] = {}
        for row in at_ses:
            by_name.setdefault(str(row.get("TemplateName")), []).append(row)
        result: dict[str, int] = {}
        pending: list[str] = []
        for index, (name, content) in enumerate(sorted(templates.items()), 1):
            where = f"[{index}/{len(templates)}] template {name}"
            template_id: int | None = int(mapped[name]) if str(mapped.get(name)).isdigit() else None
            if template_id not in by_id:  # not mapped yet, or deleted at SES: look for it by name
                candidates = sorted(by_name.get(name, []), key=lambda row: int(row.get("TemplateID") or 0))
                template_id = candidates[-1].get("TemplateID") if candidates else None
            body = {key: _b64(value) for key, value in content.items() if value}
            if not body:
                raise SyncError(f"{templates_dir}: template {name!r} is empty (SES needs Html or Text)")
            if template_id is None:
                if dry_run:
                    say(f"{where}: would be created (CreateEmailTemplate), then reviewed by SES")
                    continue
                reply = ses("CreateEmailTemplate", {"TemplateName": name, "TemplateContent": body})
                template_id = int(reply["TemplateID"])
                say(f"{where}: created as TemplateID {template_id}")
            else:
                current = ses("GetEmailTemplate", {"TemplateID": int(template_id)})
                theirs = current.get("TemplateContent") or {}
                same = all(_unb64(theirs.get(key)) == (content.get(key) or "") for key in ("Html", "Text"))
                if same:
                    say(f"{where}: unchanged (TemplateID {template_id})")
                elif dry_run:
                    say(f"{where}: would be updated (UpdateEmailTemplate, TemplateID {template_id}); SES reviews "
                        "it again before it can be sent")
                else:
                    ses("UpdateEmailTemplate", {"TemplateID": int(template_id), "TemplateName": name,
                                                "TemplateContent": body})
                    say(f"{where}: updated (TemplateID {template_id}); SES reviews it again")
            result[name] = int(template_id)
            pending.append(name)
        for name in sorted(set(by_name) - set(templates)):
            say(f"template {name} is at SES but not in {templates_dir}: left alone")

        # -- review status ---------------------------------------------------------------------------
        if result:
            latest: dict[Any, dict] = {row.get("TemplateID"): row
                                       for row in (_list_templates(ses) if not dry_run else at_ses)}
            for name in pending:
                row = latest.get(result[name]) or {}
                status: Any = row.get("TemplateStatus")
                reason = f": {row.get('ReviewReason')}" if status == 2 and row.get("ReviewReason") else ""
                say(f"review: {name} (TemplateID {result[name]}) {STATUS.get(status) or f'status {status}'}{reason}")
                if status == 2:
                    failed = True
    except SesRefused as exc:
        say(f"SES refused {exc.code}: {exc.message}")
        return 1
    except SesmailError as exc:
        say(f"SES could not be reached or answered unclearly ({exc.code}): {exc.message}")
        return 1

    # -- the config file ---------------------------------------------------------------------------
    new_map = dict(mapped)
    new_map.update(result)
    kept_ids = {str(value) for value in new_map.values()}
    variables = {key: value for key, value in (config.get("TemplateVariables") or {}).items() if key in kept_ids}
    variables.update({str(result[name]): template_variables(*templates[name].values()) for name in result})
    updated = dict(config, Templates=dict(sorted(new_map.items())),
                   TemplateVariables=dict(sorted(variables.items(), key=lambda item: int(item[0])
                                                 if item[0].isdigit() else 0)))
    if updated == config:
        say(f"config: {config_path} is up to date")
    elif dry_run:
        new = len(templates) - len(result)
        say(f"config: {config_path} would be written: Templates and TemplateVariables"
            + (f" (with the IDs SES gives the {new} new template(s))" if new else ""))
    else:
        temporary = config_path + ".tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(updated, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
        os.replace(temporary, config_path)
        say(f"config: {config_path} written (Templates, TemplateVariables)")
    if failed:
        say("some senders or templates need your action (above); run `make sync` again afterwards")
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover - `python -m deploy sync` is the entry point
    sys.exit("use: python -m deploy sync")
