"""The local stack: the SES emulator, the functions behind one gateway, and the timers.

`make dev` runs `python -m local`, which calls `main()`. Tests start the same stack in-process
with `Stack(gateway_port=0, emulator_port=0, data_dir=...)`, or as a process exactly as `make dev`
does. `make fire TRIGGER=<TriggerName>` (`python -m local fire <TriggerName>`) fires a timer of
the running stack now; without a name it lists the timers.

The emulator is set up as a fresh SES account after `make sync` would be: sender checking on
(`noreply@sesmail.local`, `noreply@example.com`, `SESMAIL_DEFAULT_SENDER`,
`SESMAIL_EMULATOR_SENDERS`, and the config file's `Senders` and digest senders are known, from the
first second), the repo's templates approved, SES's limits enforced, and delivery callbacks posted
to the gateway's `/webhook?token=<first webhook secret>`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from typing import Any, Optional

from . import cron
from .functions import FunctionMissing, Functions
from .gateway import Gateway
from .rendering import load_templates, variables
from .ses_emulator import DEFAULT_APP_ID, SesEmulator
from .ses_smtp import DEFAULT_PASSWORD, SmtpEndpoint

__all__ = ["LOCAL_SECRET_ID", "LOCAL_SECRET_KEY", "Stack", "main"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCAL_SECRET_ID = "AKIDlocal"
LOCAL_SECRET_KEY = "local-secret-key"
DEFAULT_SENDER = "noreply@sesmail.local"
# The README's curl example sends as this address; documentation domains are verified locally.
KNOWN_SENDERS = (DEFAULT_SENDER, "noreply@example.com")
TIMER_RETRY_DELAY_S = 2.0  # SCF retries failed timer runs; it does not document the interval

# SESMAIL_EMULATOR_* settings of the local stack: (attribute, default, what 0 means)
EMULATOR_SETTINGS = {
    "SESMAIL_EMULATOR_RATE_LIMIT": ("rate_limit", 20, "off"),
    "SESMAIL_EMULATOR_RECIPIENT_HOURLY_LIMIT": ("recipient_hourly_limit", 10, "off"),
    "SESMAIL_EMULATOR_DAILY_QUOTA": ("daily_quota", 500, "off"),
    "SESMAIL_EMULATOR_TEMPLATE_REVIEW_SECONDS": ("template_review_seconds", 5.0, "at once"),
    "SESMAIL_EMULATOR_RECEIVER_UPLOAD_SECONDS": ("receiver_upload_seconds", 1.0, "at once"),
    "SESMAIL_EMULATOR_DEFERRED_SECONDS": ("deferred_seconds", 2.0, "at once"),
}


def _setting(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a number, not {raw!r}") from None
    if value < 0:
        raise SystemExit(f"{name} must not be negative")
    return value


class Stack:
    def __init__(self, gateway_port: int = 8080, emulator_port: int = 8090, data_dir: Optional[str] = None,
                 apigw: bool = False, host: str = "127.0.0.1", serverless_file: Optional[str] = None,
                 smtp_port: Optional[int] = None) -> None:
        self.data_dir = os.path.abspath(data_dir or os.path.join(ROOT, ".local-data"))
        self.host = host
        self.gateway_port = gateway_port
        self.apigw = apigw
        self.serverless_file = serverless_file
        app_id = os.environ.get("SESMAIL_EMULATOR_APP_ID") or DEFAULT_APP_ID
        if not (app_id.isascii() and app_id.isdigit()):
            raise SystemExit("SESMAIL_EMULATOR_APP_ID must be digits (the AppId in MessageIds and callbacks)")
        self.emulator = SesEmulator(secret_id=LOCAL_SECRET_ID, secret_key=LOCAL_SECRET_KEY, host=host,
                                    port=emulator_port, data_dir=self.data_dir,
                                    templates_dir=os.path.join(ROOT, "templates"), app_id=app_id)
        # SES's SMTP interface beside the API (SESMAIL_TRANSPORT=smtp sends through it); a free port
        # when the others are (tests), else 8025.
        self.smtp = SmtpEndpoint(self.emulator, host=host,
                                 port=smtp_port if smtp_port is not None else (0 if emulator_port == 0 else 8025),
                                 password=os.environ.get("SESMAIL_EMULATOR_SMTP_PASSWORD") or DEFAULT_PASSWORD)
        self.gateway: Optional[Gateway] = None
        self.functions: Optional[Functions] = None
        self.scheduler: Optional[cron.Scheduler] = None
        self._saved_env: dict[str, Optional[str]] = {}
        self.access: list[str] = []  # each client's effective access (the config file's Clients)
        self.senders: dict[str, str] = {}  # the config file's senders (address -> name), verified at start
        self._stopping = threading.Event()

    # ---- environment -------------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        """What the functions read, pointed at the emulator; a variable already set wins."""
        return {
            "TENCENTCLOUD_SECRETID": LOCAL_SECRET_ID,
            "TENCENTCLOUD_SECRETKEY": LOCAL_SECRET_KEY,
            "SESMAIL_SES_ENDPOINT": self.emulator.endpoint,
            "SESMAIL_SES_PROTOCOL": "http",
            "SESMAIL_API_KEYS": "dev-key",
            "SESMAIL_WEBHOOK_SECRETS": "dev-secret",
            "SESMAIL_DEFAULT_SENDER": DEFAULT_SENDER,
            "SESMAIL_DATABASE_URL": "sqlite:///" + os.path.join(self.data_dir, "sesmail.sqlite3"),
            # The SMTP transport (when SESMAIL_TRANSPORT=smtp): the emulator's SMTP endpoint, plain on
            # loopback, and the repo's templates (a deployed function has them in its own folder).
            "SESMAIL_SMTP_HOST": self.smtp.host,
            "SESMAIL_SMTP_PORT": str(self.smtp.port),
            "SESMAIL_SMTP_TLS": "none",
            "SESMAIL_SMTP_PASSWORD": self.smtp.password,
            "SESMAIL_TEMPLATES_DIR": os.path.join(ROOT, "templates"),
        }

    def _set_env(self, name: str, value: str, force: bool) -> None:
        if name not in self._saved_env:
            self._saved_env[name] = os.environ.get(name)
        if force or not os.environ.get(name):
            os.environ[name] = value

    def _restore_env(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()

    def _config_file(self) -> Optional[str]:
        """The functions' config, unless the project points them at its own: the repo's sesmail.json
        (digests, clients …) with the emulator's template IDs and each template's variables, as
        `make sync` would write them for this account."""
        own = [os.path.join(ROOT, "functions", name, "sesmail.json") for name in os.listdir(
            os.path.join(ROOT, "functions"))] if os.path.isdir(os.path.join(ROOT, "functions")) else []
        if os.environ.get("SESMAIL_CONFIG") or any(os.path.exists(path) for path in own):
            return None
        config: dict[str, Any] = {}
        if os.path.exists(os.path.join(ROOT, "sesmail.json")):
            with open(os.path.join(ROOT, "sesmail.json"), encoding="utf-8") as handle:
                config = json.load(handle)
        repo = load_templates(os.path.join(ROOT, "templates"))
        config["Templates"] = {t.name: t.template_id for t in repo}
        config["TemplateVariables"] = {str(t.template_id): variables(t.html, t.text) for t in repo}
        path = os.path.join(self.data_dir, "sesmail.json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(config, handle, indent=2)
        return path

    @staticmethod
    def function_settings() -> list[Any]:
        """Each function's settings as it will read them (the config file checked whole): a
        ConfigError names file, path and rule before anything serves."""
        from sesmail import config

        functions = os.path.join(ROOT, "functions")
        folders: list[Optional[str]] = [os.path.join(functions, name) for name in sorted(os.listdir(functions))
                                        if os.path.isfile(os.path.join(functions, name, "index.py"))]
        return [config.Settings(dict(os.environ), folder) for folder in folders or [None]]

    @staticmethod
    def check_config(settings: Optional[list[Any]] = None) -> list[str]:
        """The config checked whole (see `function_settings`); returns each client's effective access,
        for the banner."""
        from sesmail import policy

        access: list[str] = []
        for one in Stack.function_settings() if settings is None else settings:
            access = access or policy.describe_access(one)
        return access

    @staticmethod
    def config_senders(settings: list[Any]) -> dict[str, str]:
        """The senders the functions' config files name (address -> display name): each `Senders`
        entry and each digest's `FromEmailAddress`. `make sync` creates the former at SES; locally
        they are verified from the start, so what the repository ships sends at once."""
        senders: dict[str, str] = {}
        for one in settings:
            data = one.file if isinstance(one.file, dict) else {}
            for entry in data.get("Senders") or []:
                address = str(entry.get("EmailAddress") or "").strip()
                if "@" in address and not address.startswith("@"):  # an @domain names no sender
                    senders.setdefault(address.lower(), str(entry.get("EmailSenderName") or ""))
            for definition in (data.get("Digests") or {}).values():
                sender = str(definition.get("FromEmailAddress") or "")
                name, _, address = sender.rpartition("<")
                address = address.rstrip(">").strip()
                if "@" in address:
                    senders.setdefault(address.lower(), name.strip().strip('"'))
        return senders

    def _configure_emulator(self) -> None:
        emu = self.emulator
        for name, (attribute, default, _) in EMULATOR_SETTINGS.items():
            value = _setting(name, default)
            if isinstance(default, int):
                setattr(emu, attribute, int(value) or None)  # 0 turns a limit off
            else:
                setattr(emu, attribute, value)
        emu.template_check = True
        try:
            emu.set_chaos(os.environ.get("SESMAIL_EMULATOR_CHAOS", ""))
        except ValueError as exc:
            raise SystemExit(f"SESMAIL_EMULATOR_CHAOS: {exc}") from None
        extra = [s.strip() for s in os.environ.get("SESMAIL_EMULATOR_SENDERS", "").split(",") if s.strip()]
        for sender in (*KNOWN_SENDERS, os.environ.get("SESMAIL_DEFAULT_SENDER") or DEFAULT_SENDER, *extra):
            emu.add_sender(sender.rpartition("<")[2].rstrip(">").strip())
        for address, name in self.senders.items():  # the config file's, as `make sync` would create them
            emu.add_sender(address, name)
        secret = (os.environ.get("SESMAIL_WEBHOOK_SECRETS") or "").split(",")[0].strip()
        assert self.gateway is not None
        default_url = f"{self.gateway.url}/webhook?token={secret}" if secret else ""
        url = os.environ.get("SESMAIL_EMULATOR_CALLBACK_URL", default_url).strip()
        emu.callback_url = url if url and url.lower() != "off" else None
        emu.timer_source = self
        emu.functions_url = self.gateway.url  # the mail page's Stats tab asks the send function there

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Stack:
        os.makedirs(self.data_dir, exist_ok=True)
        tz = cron.zone(os.environ.get("TZ"))  # fail early on an unknown TZ
        self.emulator.start()
        try:
            self.smtp.start()
        except BaseException:
            self.emulator.stop()
            raise
        for name, value in self.environment().items():
            # SES credentials and endpoints are always the emulator's: never a real account by accident.
            self._set_env(name, value, force=name.startswith(("SESMAIL_SES_", "SESMAIL_SMTP_", "TENCENTCLOUD_")))
        if "TENCENTCLOUD_SESSIONTOKEN" in os.environ:
            self._saved_env.setdefault("TENCENTCLOUD_SESSIONTOKEN", os.environ["TENCENTCLOUD_SESSIONTOKEN"])
            del os.environ["TENCENTCLOUD_SESSIONTOKEN"]
        config_path = self._config_file()
        if config_path:
            self._set_env("SESMAIL_CONFIG", config_path, force=False)
        try:
            settings = self.function_settings()
            self.access = self.check_config(settings)
            self.senders = self.config_senders(settings)
        except BaseException:
            self.stop()
            raise
        no_proxy = os.environ.get("NO_PROXY", "")
        self._set_env("NO_PROXY", ",".join(filter(None, [no_proxy, "127.0.0.1", self.emulator.endpoint])),
                      force=True)
        self.functions = Functions(ROOT, region=os.environ.get("SESMAIL_REGION") or "ap-guangzhou",
                                   on_change=self._timers_changed, serverless_file=self.serverless_file)
        self._reset_config()
        self.gateway = Gateway(self.functions, host=self.host, port=self.gateway_port, apigw=self.apigw).start()
        # One-click unsubscribe (docs/topics.md): links point at this gateway's /unsubscribe and
        # /preferences; settings of one's own win (both at once: one alone stopped the start above).
        if not os.environ.get("SESMAIL_PUBLIC_URL"):
            self._set_env("SESMAIL_PUBLIC_URL", self.gateway.url, force=True)
            self._set_env("SESMAIL_UNSUBSCRIBE_SECRETS", "dev-unsubscribe-secret-0123456789", force=True)
            self._reset_config()
        self._configure_emulator()
        self.scheduler = cron.Scheduler(self.functions.timers, self._scheduled, tz).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self.scheduler:
            self.scheduler.stop()
        if self.gateway:
            self.gateway.stop()
        self.smtp.stop()
        self.emulator.stop()
        self.emulator.store.close()
        self._restore_env()
        self._reset_config()

    @staticmethod
    def _reset_config() -> None:
        # The layer parses the environment once per container; this process is the container.
        config = sys.modules.get("sesmail.config")
        if config is not None:
            config.reset()

    # ---- timers ---------------------------------------------------------------------------------

    def _timers_changed(self, timers: list[cron.Timer]) -> None:
        if self.scheduler is not None:
            self.scheduler.set_timers(timers, datetime.now(timezone.utc))
            print(f"[local] serverless.yml changed: {len(timers)} timer(s)", file=sys.stderr, flush=True)

    def _timer(self, name: str) -> cron.Timer:
        assert self.functions is not None
        self.functions.refresh()
        for timer in self.functions.timers:
            if timer.name == name:
                return timer
        raise KeyError(name)

    @staticmethod
    def timer_event(timer: cron.Timer, at: datetime) -> dict[str, Any]:
        """A timer event as SCF sends it (trigger-event docs; tests/fixtures/events/timer.json)."""
        return {"Type": "Timer", "TriggerName": timer.name,
                "Time": at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "Message": timer.argument}

    def timers(self) -> list[dict[str, Any]]:
        assert self.functions is not None and self.scheduler is not None
        self.functions.refresh()
        nexts = self.scheduler.next_times()
        out = []
        for t in self.functions.timers:
            when = nexts.get(t.name)
            out.append({"TriggerName": t.name, "Function": t.function, "CronExpression": t.cron.expression,
                        "Enabled": t.enabled, "Message": t.argument,
                        "Next": when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                        if t.enabled and when is not None else None})
        return out

    def fire(self, name: str) -> dict[str, Any]:
        """Invoke a timer's function now (once, no retry); KeyError for an unknown timer."""
        timer = self._timer(name)
        at = datetime.now(timezone.utc).replace(microsecond=0)
        return self._invoke_timer(timer, at, 1)

    def _scheduled(self, timer: cron.Timer, at: datetime) -> None:
        # Timer invocations are asynchronous at SCF: the scheduler never waits for the function.
        threading.Thread(target=self._run_timer, args=(timer, at), name=f"timer-{timer.name}", daemon=True).start()

    def _run_timer(self, timer: cron.Timer, at: datetime) -> None:
        assert self.functions is not None
        spec = self.functions.specs.get(timer.function)
        attempts = 1 + (spec.retries if spec else 2)
        for attempt in range(1, attempts + 1):
            outcome = self._invoke_timer(timer, at, attempt)
            if "Error" not in outcome or outcome.get("Missing") or self._stopping.wait(TIMER_RETRY_DELAY_S):
                return

    def _invoke_timer(self, timer: cron.Timer, at: datetime, attempt: int) -> dict[str, Any]:
        assert self.functions is not None
        event = self.timer_event(timer, at)
        out: dict[str, Any] = {"TriggerName": timer.name, "Function": timer.function, "Time": event["Time"],
                               "Attempt": attempt}
        try:
            out["Result"] = self.functions.invoke(timer.function, event)
        except FunctionMissing:
            out.update(Error=f"functions/{timer.function} does not exist or failed to load", Missing=True)
        except Exception as exc:  # a run error: SCF retries it (retryNum)
            out["Error"] = f"{type(exc).__name__}: {exc}"
            print(traceback.format_exc(), file=sys.stderr, flush=True)
        summary = out.get("Error") or json.dumps(out.get("Result"), ensure_ascii=False)[:300]
        print(f"[local] timer {timer.name} -> {timer.function} ({event['Time']}, attempt {attempt}): {summary}",
              file=sys.stderr, flush=True)
        return out

    # ---- the banner -------------------------------------------------------------------------------

    def banner(self) -> str:
        assert self.gateway is not None and self.functions is not None
        emu, gw = self.emulator, self.gateway.url
        present, errors = set(self.functions.names()), self.functions.errors

        def state(name: str) -> str:
            if name in present:
                return ""
            return "  (failed to load: see above)" if name in errors else "  (not written yet: 404)"
        templates = ", ".join(f"{r['id']} {r['name']}" for r in emu.store.templates())
        senders = ", ".join(sorted(emu.senders or []))
        lines = [
            "sesmail local stack: everything on this machine, no Tencent account",
            "",
            f"  Functions      {gw}  ({'API Gateway' if self.apigw else 'Function URL'} events)",
            f"    send         POST {gw}/send, GET /messages/<MessageId>, /suppressions, /addresses{state('send')}",
            f"    batch        POST {gw}/batch, GET /batch/tasks/<TaskId>, POST /digest/items{state('batch')}",
            f"    webhook      POST {gw}/webhook?token={os.environ.get('SESMAIL_WEBHOOK_SECRETS', '').split(',')[0]}"
            f"{state('webhook')}",
            f"    readers      {gw}/preferences?t=<token>  (the preference page; a marketing mail's preferences_url"
            f" and List-Unsubscribe carry the token; one-click: POST {gw}/unsubscribe?t=<token>)",
            f"  API key        {os.environ.get('SESMAIL_API_KEYS', '')}   (Authorization: Bearer <key>, or X-Api-Key)",
            *[f"  {'Clients' if index == 0 else '':<15}{line}" for index, line in enumerate(self.access)],
            f"  Mail page      {emu.url}/",
            f"  Mail JSON      {emu.url}/_local/messages  (newest first; /_local/messages/latest)",
            f"  SES emulator   {emu.url}  SecretId {emu.secret_id}  SecretKey {emu.secret_key}"
            f"  region {', '.join(sorted(emu.regions or ['any']))}  AppId {emu.app_id}",
            f"  SES SMTP       {self.smtp.host}:{self.smtp.port}  user: a sender address, password {self.smtp.password}"
            f"  (transport {os.environ.get('SESMAIL_TRANSPORT') or 'api'}; SESMAIL_TRANSPORT=smtp sends through it)",
            f"  Callbacks      -> {emu.callback_url or 'off'}",
            f"  Templates      {templates}",
            f"  Senders        {senders}  (default {os.environ.get('SESMAIL_DEFAULT_SENDER', '')})",
            f"  Limits         {emu.rate_limit or 'no'} req/s per action, {emu.recipient_hourly_limit or 'no'} mails"
            f"/hour per recipient, {emu.daily_quota or 'no'} mails/day (SESMAIL_EMULATOR_*)",
            f"  Chaos          {emu.chaos.describe()['Chaos'] or 'off'}  (SESMAIL_EMULATOR_CHAOS, POST /_local/chaos)",
            f"  Timers         {self._timer_lines() or 'none in serverless.yml'}",
            f"  Data           {self.data_dir}",
            "",
            "From a frontend (fetch):",
            f"  fetch('{gw}/send', {{method: 'POST', headers: {{'Authorization': 'Bearer dev-key',"
            " 'Content-Type': 'application/json'}, body: JSON.stringify({Destination: ['ada@example.com'],"
            " Subject: 'Hello', Template: {TemplateID: 2, TemplateData: {name: 'Ada'}}})})",
            "From an SDK (Python shown; Node: endpoint '127.0.0.1:PORT', protocol 'http:'):",
            f"  HttpProfile(endpoint='{emu.endpoint}', protocol='http'),"
            f" credential.Credential('{emu.secret_id}', '{emu.secret_key}')",
            "Try:",
            f"  curl -s {gw}/send -H 'Authorization: Bearer dev-key' \\",
            "    -d '{\"Destination\": [\"ada@example.com\"], \"Subject\": \"Hello\","
            " \"Template\": {\"TemplateID\": 2, \"TemplateData\": {\"name\": \"Ada\"}}}'",
            "  make fire TRIGGER=<TriggerName>     (runs a timer now; `make fire` lists them)",
            "Ctrl-C stops everything.",
        ]
        return "\n".join(lines)

    def _timer_lines(self) -> str:
        rows = self.timers()
        return "; ".join(f"{t['TriggerName']} ({t['CronExpression']} -> {t['Function']}"
                         f"{', next ' + t['Next'] if t['Next'] else ', enable: false: fire it by hand'})"
                         for t in rows)


# ---- command line ----------------------------------------------------------------------------------

def _fire(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m local fire",
                                     description="Fire a timer of the running local stack now (make fire "
                                                 "TRIGGER=<TriggerName>); without a name, list its timers.")
    parser.add_argument("trigger", metavar="TriggerName", nargs="?")
    parser.add_argument("--emulator", default=os.environ.get("SESMAIL_EMULATOR_URL", "http://127.0.0.1:8090"),
                        help="the running stack's SES emulator (default %(default)s)")
    args = parser.parse_args(argv)
    base = f"{args.emulator.rstrip('/')}/_local/timers"
    if args.trigger:
        request = urllib.request.Request(f"{base}/{urllib.parse.quote(args.trigger, safe='')}", data=b"",
                                         method="POST")
    else:
        request = urllib.request.Request(base)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=900) as reply:
            result = json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        print(exc.read().decode("utf-8", "replace"), file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"no local stack answers at {args.emulator} ({exc}); start it with `make dev`", file=sys.stderr)
        return 1
    if not args.trigger:
        timers = result.get("Timers") or []
        print("make fire TRIGGER=<TriggerName> runs one of the timers now:" if timers else
              "the running stack has no timers (serverless.yml declares none)")
        for timer in timers:
            when = f"next {timer['Next']}" if timer.get("Next") else "enable: false, fired by hand only"
            print(f"  {timer['TriggerName']:<24} {timer['CronExpression']:<20} -> {timer['Function']}  ({when})")
        return 0
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 1 if "Error" in result else 0


def _dev(argv: list[str]) -> int:
    from sesmail.errors import ConfigError

    parser = argparse.ArgumentParser(prog="python -m local", description="Run the sesmail local stack (make dev). "
                                     "`python -m local fire <TriggerName>` (make fire TRIGGER=<TriggerName>) "
                                     "fires a timer of a running stack.")
    parser.add_argument("--gateway-port", type=int, default=8080)
    parser.add_argument("--emulator-port", type=int, default=8090)
    parser.add_argument("--smtp-port", type=int, default=None, help="SES's SMTP interface, emulated (default 8025)")
    parser.add_argument("--data-dir", default=None, help="where mail and the functions' store live "
                                                          "(default .local-data/)")
    parser.add_argument("--apigw", action="store_true", help="send API Gateway events instead of Function URL ones")
    parser.add_argument("--serverless", metavar="FILE", help="read functions and timers from FILE instead of "
                                                              "serverless.yml (try a timer before declaring it)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[local] %(message)s")

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # SIGTERM stops as cleanly as Ctrl-C

    signal.signal(signal.SIGTERM, terminate)
    # A shell that starts us in the background hands us SIGINT ignored; Ctrl-C must still stop us.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        stack = Stack(args.gateway_port, args.emulator_port, args.data_dir, apigw=args.apigw,
                      serverless_file=args.serverless, smtp_port=args.smtp_port).start()
    except ConfigError as exc:  # the config file (or a SESMAIL_* variable): file, path and rule
        print(f"cannot start the local stack: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"cannot start the local stack: {exc} (is `make dev` already running?)", file=sys.stderr)
        return 1
    try:
        print(stack.banner(), flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
        print("sesmail local stack stopped", flush=True)
    return 0


def main(argv: Optional[list[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["fire"]:
        raise SystemExit(_fire(argv[1:]))
    raise SystemExit(_dev(argv[1:] if argv[:1] == ["dev"] else argv))
