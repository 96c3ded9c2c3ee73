"""Settings: secrets and endpoints from `SESMAIL_*` variables, structure from one JSON file.

Read once per warm container (SPEC 3.1). SCF reserves the prefixes `SCF_`, `QCLOUD_` and
`TENCENTCLOUD_`, so every setting of ours starts with `SESMAIL_`. The JSON file (`SESMAIL_CONFIG`,
default `sesmail.json` beside the function) holds no secret; a missing file means defaults.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Callable

__all__ = ["DEFAULT_CLIENT", "Settings", "load", "reset"]

# Keys given without a client name share this scope (SPEC 3.3: "keys with no policy share one").
DEFAULT_CLIENT = "default"


def _number(env: dict, name: str, default: Any, low: Any, high: Any, kind: Callable[[str], Any] = int) -> Any:
    """A numeric setting within [low, high]; an unset or empty variable means the default."""
    raw = env.get(name, "")
    try:
        value = kind(raw) if raw.strip() else default
    except ValueError as exc:
        raise ValueError(f"{name} must be {'an integer' if kind is int else 'a number'}") from exc
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}")
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

    def __init__(self, env: dict, function_dir: str | None = None) -> None:
        self.region = env.get("SESMAIL_REGION") or "ap-guangzhou"
        self.ses_endpoint = env.get("SESMAIL_SES_ENDPOINT") or "ses.tencentcloudapi.com"
        self.ses_protocol = (env.get("SESMAIL_SES_PROTOCOL") or "https").lower()
        if self.ses_protocol not in ("https", "http"):
            raise ValueError("SESMAIL_SES_PROTOCOL must be https or http")
        self.api_keys = _api_keys(env.get("SESMAIL_API_KEYS"))
        self.webhook_secrets = _split(env.get("SESMAIL_WEBHOOK_SECRETS"))
        # The account's AppId: callbacks carrying another `username` are refused.
        self.appid = (env.get("SESMAIL_APPID") or "").strip() or None
        # Stored delivery events are personal data: kept this long after they were stored.
        self.event_ttl = _int(env, "SESMAIL_EVENT_TTL", 30 * 86400, 3600, 3650 * 86400)
        self.default_sender = env.get("SESMAIL_DEFAULT_SENDER") or None
        self.database_url = env.get("SESMAIL_DATABASE_URL") or (
            "sqlite:///" + os.path.join(tempfile.gettempdir(), "sesmail.sqlite3"))
        self.redis_url = env.get("SESMAIL_REDIS_URL") or None
        # SES's limit per action per account, the share each instance takes without Redis, and
        # the jitter margin the limiter leaves (sesmail.ratelimit).
        self.ses_rate = _float(env, "SESMAIL_SES_RATE", 20.0, 0.1, 10000.0)
        self.ses_rate_share = _float(env, "SESMAIL_SES_RATE_SHARE", 1.0, 0.001, 1.0)
        self.ses_rate_margin = _float(env, "SESMAIL_SES_RATE_MARGIN", 0.025, 0.0, 1.0)
        # How long idempotency records (and later, stored events) are kept: SPEC 3.3 says 24 h.
        self.idempotency_ttl = _int(env, "SESMAIL_IDEMPOTENCY_TTL", 86400, 60, 30 * 86400)
        # SES's status index lags the send; "no row" only means "not sent" after this long (SPEC 5).
        self.settle_seconds = _int(env, "SESMAIL_SETTLE_SECONDS", 300, 0, 3600)
        # Attempts for failures that provably did not send (SPEC 5: 3 to 5).
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
            raise ValueError("SESMAIL_TRANSPORT must be api or smtp")
        self.smtp_host = env.get("SESMAIL_SMTP_HOST") or "smtp.qcloudmail.com"
        self.smtp_port = _int(env, "SESMAIL_SMTP_PORT", 465, 1, 65535)
        self.smtp_tls = (env.get("SESMAIL_SMTP_TLS") or "ssl").strip().lower()
        if self.smtp_tls not in ("ssl", "starttls", "none"):
            raise ValueError("SESMAIL_SMTP_TLS must be ssl (TLS from the first byte), starttls or none")
        self.smtp_user = env.get("SESMAIL_SMTP_USER") or None  # default: the mail's sender address
        self.smtp_password = env.get("SESMAIL_SMTP_PASSWORD") or None
        # SMTP has no TemplateID: templates are rendered from these files (shipped with the function).
        self.templates_dir = env.get("SESMAIL_TEMPLATES_DIR") or os.path.join(function_dir or os.getcwd(),
                                                                              "templates")

        path = env.get("SESMAIL_CONFIG") or os.path.join(function_dir or os.getcwd(), "sesmail.json")
        self.config_path = path
        self.file = self._read_file(path)
        templates = self.file.get("Templates") or {}
        if not isinstance(templates, dict):
            raise ValueError(f"{path}: Templates must be an object of name -> TemplateID")
        self.templates: dict[str, int] = {str(k): int(v) for k, v in templates.items()}
        # Each template's variables by TemplateID (written by `make sync`): `send` refuses TemplateData
        # that lacks one before calling SES.
        variables = self.file.get("TemplateVariables") or {}
        if not isinstance(variables, dict) or not all(
                isinstance(names, list) and all(isinstance(n, str) for n in names) for names in variables.values()):
            raise ValueError(f"{path}: TemplateVariables must be an object of TemplateID -> [variable names]")
        self.template_variables: dict[str, list[str]] = {str(k): list(v) for k, v in variables.items()}
        hook = self.file.get("EventHook")
        if hook is not None and (not isinstance(hook, str) or ":" not in hook):
            raise ValueError(f"{path}: EventHook must be \"module:function\"")
        self.event_hook: str | None = hook

    @staticmethod
    def _read_file(path: str) -> dict:
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: the config file must hold a JSON object")
        return data


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
