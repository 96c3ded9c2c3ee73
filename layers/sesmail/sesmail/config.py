"""Settings: secrets and endpoints from `SESMAIL_*` variables, structure from one JSON file.

Read once per warm container (docs/configuration.md). SCF reserves the prefixes `SCF_`, `QCLOUD_` and
`TENCENTCLOUD_`, so every setting of ours starts with `SESMAIL_`. The JSON file (`SESMAIL_CONFIG`,
default `sesmail.json` beside the function) holds no secret; a missing file means defaults. The
file is checked whole when it is read (`FILE_SCHEMA`): an unknown field, a wrong type, a scope,
digest or template name that does not exist is a `ConfigError` naming the file, the path
(`Clients.web.Scopes[1]`) and the rule.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from typing import Any, Callable

from .errors import ConfigError

__all__ = ["DEFAULT_CLIENT", "DIGEST_CLIENT", "FILE_SCHEMA", "GUARD_DEFAULTS", "SCOPES", "ConfigError", "Settings",
           "check_file", "load", "reset"]

# Keys given without a client name share this scope: keys with no policy share one.
DEFAULT_CLIENT = "default"
# The owner of what digests send, in the sent log and the task log: not a name a key's client can
# have (those are letters, digits, "-" and "_"), so no client ever sees digest mail as its own.
DIGEST_CLIENT = ":digest"


def _number(env: dict, name: str, default: Any, low: Any, high: Any, kind: Callable[[str], Any] = int) -> Any:
    """A numeric setting within [low, high]; an unset or empty variable means the default."""
    raw = env.get(name, "")
    try:
        value = kind(raw) if raw.strip() else default
    except ValueError as exc:
        raise ConfigError("environment", name, f"must be {'an integer' if kind is int else 'a number'}") from exc
    if not low <= value <= high:
        raise ConfigError("environment", name, f"must be between {low} and {high}")
    return value


def _int(env: dict, name: str, default: int, low: int, high: int) -> int:
    return _number(env, name, default, low, high)


def _float(env: dict, name: str, default: float, low: float, high: float) -> float:
    return _number(env, name, default, low, high, float)


def _split(raw: str | None) -> list[str]:
    return [part.strip() for part in (raw or "").split(",") if part.strip()]


def _api_keys(raw: str | None) -> dict[str, str]:
    """`SESMAIL_API_KEYS`: comma-separated `key` or `client=key` entries -> {key: client}.

    Naming the client lets one client's keys share an idempotency scope and a policy across a key
    rotation; a bare key belongs to the shared default client.
    """
    keys: dict[str, str] = {}
    for entry in _split(raw):
        client, sep, key = entry.partition("=")
        if sep and key and client.replace("-", "").replace("_", "").isalnum():
            keys[key] = client
        else:
            keys[entry] = DEFAULT_CLIENT
    return keys


class Settings:
    """Everything a function reads from its environment, parsed once."""

    def __init__(self, env: dict, function_dir: str | None = None, read_file: bool = True) -> None:
        """`read_file=False`: the environment only (`make sync`, which completes the file)."""
        self.region = env.get("SESMAIL_REGION") or "ap-guangzhou"
        self.ses_endpoint = env.get("SESMAIL_SES_ENDPOINT") or "ses.tencentcloudapi.com"
        self.ses_protocol = (env.get("SESMAIL_SES_PROTOCOL") or "https").lower()
        if self.ses_protocol not in ("https", "http"):
            raise ConfigError("environment", "SESMAIL_SES_PROTOCOL", "must be https or http")
        self.api_keys = _api_keys(env.get("SESMAIL_API_KEYS"))
        self.webhook_secrets = _split(env.get("SESMAIL_WEBHOOK_SECRETS"))
        # The account's AppId: callbacks carrying another `username` are refused.
        self.appid = (env.get("SESMAIL_APPID") or "").strip() or None
        # Stored delivery events are personal data: kept this long after they were stored.
        self.event_ttl = _int(env, "SESMAIL_EVENT_TTL", 30 * 86400, 3600, 3650 * 86400)
        self.default_sender = env.get("SESMAIL_DEFAULT_SENDER") or None
        # The key of the hash under which erased addresses keep their suppressions (and recipient
        # leases are stored): without it the hash is unkeyed, and a table of them can be reversed
        # with a dictionary of addresses.
        self.erasure_key = env.get("SESMAIL_ERASURE_KEY") or None
        self.database_url = env.get("SESMAIL_DATABASE_URL") or (
            "sqlite:///" + os.path.join(tempfile.gettempdir(), "sesmail.sqlite3"))
        self.redis_url = env.get("SESMAIL_REDIS_URL") or None
        # SES's limit per action per account, the share each instance takes without Redis, and
        # the jitter margin the limiter leaves (sesmail.ratelimit).
        self.ses_rate = _float(env, "SESMAIL_SES_RATE", 20.0, 0.1, 10000.0)
        self.ses_rate_share = _float(env, "SESMAIL_SES_RATE_SHARE", 1.0, 0.001, 1.0)
        self.ses_rate_margin = _float(env, "SESMAIL_SES_RATE_MARGIN", 0.025, 0.0, 1.0)
        # How long idempotency records (and the sent log) are kept (docs/reliability.md#idempotency-keys).
        self.idempotency_ttl = _int(env, "SESMAIL_IDEMPOTENCY_TTL", 86400, 60, 30 * 86400)
        # SES's status index lags the send; "no row" only means "not sent" after this long (docs/reliability.md#doubt).
        self.settle_seconds = _int(env, "SESMAIL_SETTLE_SECONDS", 300, 0, 3600)
        # Attempts for failures that provably did not send (docs/reliability.md#retries).
        self.ses_attempts = _int(env, "SESMAIL_SES_ATTEMPTS", 4, 1, 5)
        # Upper bounds for one SES call; the remaining invocation time lowers them further.
        self.ses_connect_timeout = _int(env, "SESMAIL_SES_CONNECT_TIMEOUT", 3, 1, 60)
        self.ses_read_timeout = _int(env, "SESMAIL_SES_READ_TIMEOUT", 15, 1, 120)
        # Reconciliation of lost callbacks: messages sent in the last N days, at least M seconds
        # ago (callbacks normally arrive within minutes), at most L per run.
        self.reconcile_days = _int(env, "SESMAIL_RECONCILE_DAYS", 3, 1, 30)
        self.reconcile_after = _int(env, "SESMAIL_RECONCILE_AFTER", 1800, 0, 86400)
        self.reconcile_limit = _int(env, "SESMAIL_RECONCILE_LIMIT", 2000, 1, 100000)
        # Used when the invocation context carries no time_limit_in_ms (local runs, direct calls).
        self.default_time_limit_ms = _int(env, "SESMAIL_TIME_LIMIT_MS", 30000, 1000, 900000)

        # How `send` reaches SES: the API (default) or SES's SMTP service (sesmail.smtp). SMTP is for
        # company accounts only (SES disables it for individual ones); its password is set per sender
        # address with UpdateEmailSmtpPassWord and arrives here as a secret variable.
        self.transport = (env.get("SESMAIL_TRANSPORT") or "api").strip().lower()
        if self.transport not in ("api", "smtp"):
            raise ConfigError("environment", "SESMAIL_TRANSPORT", "must be api or smtp")
        self.smtp_host = env.get("SESMAIL_SMTP_HOST") or "smtp.qcloudmail.com"
        self.smtp_port = _int(env, "SESMAIL_SMTP_PORT", 465, 1, 65535)
        self.smtp_tls = (env.get("SESMAIL_SMTP_TLS") or "ssl").strip().lower()
        if self.smtp_tls not in ("ssl", "starttls", "none"):
            raise ConfigError("environment", "SESMAIL_SMTP_TLS",
                              "must be ssl (TLS from the first byte), starttls or none")
        self.smtp_user = env.get("SESMAIL_SMTP_USER") or None  # default: the mail's sender address
        self.smtp_password = env.get("SESMAIL_SMTP_PASSWORD") or None
        # SMTP has no TemplateID: templates are rendered from these files (shipped with the function).
        self.templates_dir = env.get("SESMAIL_TEMPLATES_DIR") or os.path.join(function_dir or os.getcwd(),
                                                                              "templates")

        path = env.get("SESMAIL_CONFIG") or os.path.join(function_dir or os.getcwd(), "sesmail.json")
        self.config_path = path
        self.file = self._read_file(path) if read_file else {}
        check_file(path, self.file)
        self.templates: dict[str, int] = {str(k): int(v) for k, v in (self.file.get("Templates") or {}).items()}
        # Each template's variables by TemplateID (written by `make sync`): `send` refuses TemplateData
        # that lacks one before calling SES.
        variables = self.file.get("TemplateVariables") or {}
        self.template_variables: dict[str, list[str]] = {str(k): list(v) for k, v in variables.items()}
        self.event_hook: str | None = self.file.get("EventHook")
        # The reputation guard's limits (docs/deliverability.md#the-reputation-guard).
        self.guard: dict[str, Any] = dict(GUARD_DEFAULTS, **(self.file.get("Guard") or {}))
        # Topics and one-click unsubscribe (docs/topics.md): on when both settings are present.
        from .topics import read_settings

        self.public_url, self.unsubscribe_secrets = read_settings(env)
        self.topics: dict[str, dict] = dict(self.file.get("Topics") or {})

    @staticmethod
    def _read_file(path: str) -> dict:
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return {}
        except ValueError as exc:  # not JSON (UnicodeDecodeError is a ValueError too)
            raise ConfigError(path, "", "is not a JSON document") from exc
        if not isinstance(data, dict):
            raise ConfigError(path, "", "must hold a JSON object")
        return data


# -- the config file's schema --------------------------------------------------------------------
# Each check is `check(value, path, context)` and raises ConfigError; the context holds the file's
# name and what other fields refer to (template and digest names). A new top-level field is one
# more entry in FILE_SCHEMA; a new policy field one more entry in CLIENT_POLICY.

SCOPES = ("send", "batch", "digest", "stats", "admin")
_CLIENT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what SESMAIL_API_KEYS accepts before `=`
_DOMAIN = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
_ADDRESS_OR_DOMAIN = re.compile(r"(?:[^@\s<>\"]+)?@" + _DOMAIN)
_ORIGIN = re.compile(r"https?://[^/\s?#]+")
_HEADER_NAME = re.compile(r"[!-9;-~]{1,64}")  # RFC 5322 field name: printable ASCII but ":"
_Check = Callable[[Any, str, dict], None]


def _join(path: str, name: str) -> str:
    # A name in the file that looks like an address is masked: logs never carry one in full.
    if "@" in name:
        local, _, domain = name.partition("@")
        name = f"{local[:1]}***@{domain}"
    return f"{path}.{name}" if path else name


def _fail(context: dict, path: str, rule: str) -> ConfigError:
    return ConfigError(context["source"], path, rule)


def _string(rule: str = "must be a non-empty string", pattern: re.Pattern | None = None,
            choices: tuple[str, ...] | None = None) -> _Check:
    def check(value: Any, path: str, context: dict) -> None:
        if not isinstance(value, str) or not value or (pattern is not None and not pattern.fullmatch(value)) or (
                choices is not None and value not in choices):
            raise _fail(context, path, rule)
    return check


def _text(value: Any, path: str, context: dict) -> None:
    if not isinstance(value, str):
        raise _fail(context, path, "must be a string")


def _integer(low: int, high: int, digits_too: bool = False) -> _Check:
    def check(value: Any, path: str, context: dict) -> None:
        if digits_too and isinstance(value, str) and value.isdigit() and value.isascii():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _fail(context, path, f"must be an integer from {low} to {high}")
    return check


def _list(item: _Check, what: str) -> _Check:
    def check(value: Any, path: str, context: dict) -> None:
        if not isinstance(value, list):
            raise _fail(context, path, f"must be a list of {what}")
        for index, entry in enumerate(value):
            item(entry, f"{path}[{index}]", context)
    return check


def _map(item: _Check, what: str, names: re.Pattern | None = None, names_rule: str = "") -> _Check:
    """A JSON object of name -> item, any names (or names matching `names`)."""
    def check(value: Any, path: str, context: dict) -> None:
        if not isinstance(value, dict):
            raise _fail(context, path, f"must be an object of {what}")
        for name, entry in value.items():
            if names is not None and not names.fullmatch(name):
                raise _fail(context, _join(path, name), names_rule)
            item(entry, _join(path, name), context)
    return check


def _object(fields: dict[str, _Check], what: str, required: dict[str, str] | None = None,
            extra: _Check | None = None) -> _Check:
    """A JSON object with known fields only; `required` maps a field to the rule that makes it so."""
    def check(value: Any, path: str, context: dict) -> None:
        if not isinstance(value, dict):
            raise _fail(context, path, f"must be an object ({what})")
        for name, entry in value.items():
            field = fields.get(name)
            if field is None:
                raise _fail(context, _join(path, name), f"is not a field of {what}; known: {', '.join(fields)}")
            field(entry, _join(path, name), context)
        for name, rule in (required or {}).items():
            if name not in value:
                raise _fail(context, _join(path, name), rule)
        if extra is not None:
            extra(value, path, context)
    return check


def _template_name(value: Any, path: str, context: dict) -> None:
    _string()(value, path, context)
    if context["templates"] is not None and value not in context["templates"]:
        raise _fail(context, path, "names no template in Templates (`make sync` writes them)")


def _template_ref(value: Any, path: str, context: dict) -> None:
    """A template in a client's `Templates`: a name from `Templates`, or a TemplateID."""
    if isinstance(value, str):
        _template_name(value, path, context)
    else:
        _integer(1, 2**63 - 1)(value, path, context)


def _digest_name(value: Any, path: str, context: dict) -> None:
    _string()(value, path, context)
    if value not in context["digests"]:
        raise _fail(context, path, "names no digest declared under Digests")


def _topic_name(value: Any, path: str, context: dict) -> None:
    _string()(value, path, context)
    if value not in context["topics"]:
        raise _fail(context, path, "names no topic declared under Topics")


def _one_template(value: dict, path: str, context: dict) -> None:
    if ("TemplateID" in value) == ("TemplateName" in value):
        raise _fail(context, _join(path, "TemplateName"), "or TemplateID is required, and not both")


def _reply_to(value: Any, path: str, context: dict) -> None:
    if value != "*":
        _list(_string("must be an address or @domain (\"ReplyTo\": \"*\" allows any)", _ADDRESS_OR_DOMAIN),
              "addresses or @domains, or \"*\"")(value, path, context)


_SENDERS = _list(_string("must be an address or @domain", _ADDRESS_OR_DOMAIN), "addresses or @domains")

# A client's policy (docs/security.md#policies). What each field bounds is enforced in
# sesmail.policy; here only its shape.
CLIENT_POLICY: dict[str, _Check] = {
    "Scopes": _list(_string("must be one of " + ", ".join(SCOPES), choices=SCOPES), "scopes"),
    "Templates": _list(_template_ref, "template names or TemplateIDs"),
    "Senders": _SENDERS,
    "ReplyTo": _reply_to,
    "Headers": _list(_string("must be a header name (printable ASCII, no colon)", _HEADER_NAME), "header names"),
    "Digests": _list(_digest_name, "digest names"),
    "Receivers": _list(_integer(1, 2**63 - 1), "ReceiverIds"),
    "MaxRecipients": _integer(1, 10_000_000),
    "RequestsPerMinute": _integer(1, 1_000_000),
    "MailsPerRecipientPerHour": _integer(1, 1_000_000),
    "Origins": _list(_string("must be an origin: scheme://host[:port], no path", _ORIGIN), "web origins"),
}

DIGEST: dict[str, _Check] = {
    "FromEmailAddress": _string(),
    "Subject": _string(),
    "Template": _object({"TemplateName": _template_name, "TemplateID": _integer(1, 2**63 - 1)},
                        "a digest's template", extra=_one_template),
    "TemplateData": _map(_string("must be a JMESPath expression over the recipient's items"),
                         "variable name -> JMESPath expression"),
    "TriggerType": _integer(0, 1),
    "MaxAttempts": _integer(1, 100),
    "BatchAbove": _integer(0, 10_000_000),
    "Workers": _integer(1, 64),
    "Topic": _topic_name,
}


def _fraction(value: Any, path: str, context: dict) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise _fail(context, path, "must be a number between 0 and 1 (0.05 is 5 %)")


# The reputation guard's defaults (docs/deliverability.md#the-reputation-guard): "a good bounce rate
# should not exceed 5%" (https://www.tencentcloud.com/document/product/1084/42369), and mailbox
# providers ask bulk senders to keep spam reports under 0.3 %.
GUARD_DEFAULTS: dict[str, Any] = {"BounceRate": 0.05, "ComplaintRate": 0.003, "MinVolume": 500, "MinEvents": 3,
                                  "WindowHours": 24}
GUARD: dict[str, _Check] = {
    "BounceRate": _fraction,
    "ComplaintRate": _fraction,
    "MinVolume": _integer(1, 100_000_000),
    "MinEvents": _integer(1, 1_000_000),
    "WindowHours": _integer(1, 168),
}

# A topic readers can unsubscribe from (docs/topics.md): its name and how the preference page shows it.
_TOPIC_TEXT = {"DisplayName": _string(), "Description": _text}
TOPIC: dict[str, _Check] = dict(_TOPIC_TEXT, Translations=_map(
    _object(_TOPIC_TEXT, "a topic's translation", required={"DisplayName": "is required"}),
    "language -> {DisplayName, Description}", re.compile(r"en|zh"), "a language is en or zh"))

FILE_SCHEMA: dict[str, _Check] = {
    "Senders": _list(_object({"EmailAddress": _string("must be an address", _ADDRESS_OR_DOMAIN),
                              "EmailSenderName": _text},
                             "a sender", required={"EmailAddress": "is required"}), "senders"),
    "Templates": _map(_integer(1, 2**63 - 1, digits_too=True), "template name -> TemplateID"),
    "TemplateVariables": _map(_list(_string(), "variable names"), "TemplateID -> [variable names]"),
    "Digests": _map(_object(DIGEST, "a digest", required={"Template": "is required"}), "digest name -> digest",
                    _CLIENT_NAME, "a digest's name is 1 to 64 letters, digits, - or _"),
    "Clients": _map(_object(CLIENT_POLICY, "a client's policy", required={
        "Scopes": "is required: a policy names the scopes its keys may use (" + ", ".join(SCOPES) + ")"}),
        "client name -> policy", _CLIENT_NAME, "a client's name is 1 to 64 letters, digits, - or _ "
        "(as before `=` in SESMAIL_API_KEYS)"),
    "EventHook": _string("must be \"module:function\"", re.compile(r"[\w.]+:\w+")),
    "Guard": _object(GUARD, "the reputation guard's limits"),
    "Topics": _map(_object(TOPIC, "a topic", required={"DisplayName": "is required"}), "topic name -> topic",
                   re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}"), "a topic's name is 1 to 32 letters, digits, - or _"),
}


def check_file(source: str, data: dict, synced: bool = False) -> None:
    """The whole config file against FILE_SCHEMA, or ConfigError naming `source`, path and rule.
    Template names are checked against `Templates` once it holds any (`make sync` writes it; before
    that SES refuses an unknown name itself), or always with `synced` (`make deploy`)."""
    templates = data.get("Templates")
    digests = data.get("Digests")
    topics = data.get("Topics")
    names = set(templates) if isinstance(templates, dict) else set()
    context: dict[str, Any] = {"source": source, "templates": names if names or synced else None,
                               "digests": set(digests) if isinstance(digests, dict) else set(),
                               "topics": set(topics) if isinstance(topics, dict) else set()}
    _object(FILE_SCHEMA, "the config file")(data, "", context)


_cached: dict[str | None, Settings] = {}


def load(function_dir: str | None = None) -> Settings:
    """The container's settings (parsed on first use)."""
    settings = _cached.get(function_dir)
    if settings is None:
        settings = _cached[function_dir] = Settings(dict(os.environ), function_dir)
    return settings


def reset() -> None:
    """Forget parsed settings (tests change the environment between cases)."""
    _cached.clear()
