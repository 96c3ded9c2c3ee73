"""Local fake of Tencent Cloud SES (API 2020-10-02) that the real SDK talks to over real HTTP.

Tests start it on port 0 and point `HttpProfile(endpoint=emu.endpoint, protocol="http")` at it;
`python -m local.ses_emulator --port 8090` runs it in the foreground; `make dev` runs it inside
the local stack (docs/local-stack.md). This module is the protocol (HTTP, signatures, regions,
parameter shapes, scripted faults, chaos, the delivery worker); `ses_auth` checks signatures;
`ses_schema` reads each action's fields from the SDK's models; `ses_actions` is the table of what
each action does (the families `ses_sending`, `ses_batch`, `ses_receivers`, `ses_identities`,
`ses_reports`, over the shared `ses_account`); `mailstore` keeps the state in SQLite (in memory
unless a data dir is given); `mailpage` serves the page and the `/_local` JSON API from the
account's store; `httpserver` is the server and connection handling it shares with the SCF fake.
The arrows point one way: this module -> `mailpage` and `ses_actions` -> `ses_account` ->
`mailstore` and `rendering`; none of them imports this module.

It answers any client of the API as SES does, not only this project's: requests signed with
TC3-HMAC-SHA256 (any `SignedHeaders` Tencent's signature page allows, the Python and the Node
SDK's host and service forms) or with the older HmacSHA1/HmacSHA256 signatures; POST with a JSON
or form-encoded body, and GET with the parameters in the query string (`Destination.0=...`,
`Template.TemplateID=...`, folded back into JSON). A GET that carries an action (`X-TC-Action`
or `Action=`) is an API call; any other GET is the mail page's. Then, in this order:
`MissingParameter` without an action, `NoSuchVersion`, `UnsupportedOperation` for an action it
does not implement, `UnsupportedRegion` outside `regions` (SES's: `SES_REGIONS`), and
`UnknownParameter` for a field the SDK's request model does not have (nested ones too).

One rule for integer fields, in every action: SES's own SendEmail example sends
`"TemplateID": "100091"` as a string, and the GET and v1 forms carry every value as a string, so
an integer field (per the SDK's models: `TemplateID`, `ReceiverId`, `TriggerType`, `TaskType`,
`Offset`, `Limit`...) takes a JSON integer or a string of up to 18 ASCII digits (an optional `-`),
and refuses any other string, a fraction, a boolean or an object with `InvalidParameterValue`.
Boolean fields likewise take `true`/`false` as strings. Tencent does not document this; it is
the emulator's choice, applied the same way everywhere.

`MessageId`s have SES's shape, `qcloudses-30-<AppId>-date-<YYYYmmddHHMMSS>-<13 letters and
digits>` (Beijing time), the AppId being `app_id` (`SESMAIL_EMULATOR_APP_ID`, default
1250000000), which callbacks also carry as `username`.

State a test reads: `calls` (one dict per authenticated request: Action, Params, Headers,
SignatureMethod, Outcome "ok" / "error:<Code>" / "dropped" / "http:<status>"), `sent` (accepted
SendEmail params plus MessageId and RequestTime), `store` (everything else); `GET /_local/calls`
lists the calls' Action and Outcome for a client in another process. Knobs, all off by
default so a bare emulator accepts what the SDK can send to SES: `senders` (None: any sender),
`template_check`, `rate_limit`, `recipient_hourly_limit`, `daily_quota`, `callback_url`, `clock`,
`auth_clock`, `regions` (SES's by default; None: any), the delays `receiver_upload_seconds`,
`template_review_seconds`, `deferred_seconds`, and the fault methods, which script the next
`times` requests of an action ("*" = any), oldest first.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import threading
import time
from collections import deque
from typing import Any, Callable, NamedTuple, Optional
from urllib.parse import parse_qsl, urlsplit

from . import delivery, httpserver, mailpage, rendering, ses_auth, ses_schema, statspage
from .chaos import Chaos
from .httpserver import Reply
from .mailpage import TimerSource
from .mailstore import MailStore
from .ses_actions import Actions, Handler
from .ses_common import ApiError, answer, json_or_none

__all__ = ["DEFAULT_APP_ID", "SES_REGIONS", "ApiError", "SesEmulator", "TimerSource", "from_args", "main"]

log = logging.getLogger("sesmail.local")

API_VERSION = "2020-10-02"
# The SDK's _check_error only parses bodies whose Content-Type is exactly one of its two known
# values; anything else (even with "; charset=utf-8") makes it return errors as empty successes.
JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"
# SendEmail's doc: "the whole API request ≤8 MB" (attachments ride base64 inside the JSON).
MAX_REQUEST_BYTES = 8 * 1024 * 1024
# The regions SES's API pages name: "本接口仅支持其中的: ap-guangzhou, ap-hongkong" on the Chinese site
# (e.g. https://cloud.tencent.com/document/api/1288/51036) and "This API only supports:
# ap-singapore" on the international site (e.g. https://www.tencentcloud.com/document/api/1084/39416).
SES_REGIONS = frozenset({"ap-guangzhou", "ap-hongkong", "ap-singapore"})
DEFAULT_APP_ID = "1250000000"  # the AppId of the emulated account (MessageIds, callbacks' `username`)


class _Request(NamedTuple):
    action: str
    version: Optional[str]
    region: Optional[str]
    params: Any  # a dict unless the body was not a JSON object
    signature_method: str  # TC3-HMAC-SHA256, HmacSHA256 or HmacSHA1


class SesEmulator(httpserver.Served):
    def __init__(self, secret_id: str = "AKIDlocal", secret_key: str = "local-secret-key",
                 token: Optional[str] = None, host: str = "127.0.0.1", port: int = 0,
                 data_dir: Optional[str] = None, templates_dir: Optional[str] = None,
                 app_id: str = DEFAULT_APP_ID) -> None:
        if not (app_id.isascii() and app_id.isdigit()):
            raise ValueError("app_id must be digits (an AppId)")
        self.secret_id = secret_id
        self.secret_key = secret_key
        self.token = token
        self.host = host
        self.port = port
        self.data_dir = data_dir
        self.templates_dir = templates_dir
        if data_dir:
            os.makedirs(data_dir, exist_ok=True)
        self.store = MailStore(os.path.join(data_dir, "ses-emulator.sqlite3") if data_dir else None)
        self.calls: list[dict[str, Any]] = []
        self.sender_check = False  # see the `senders` property
        self.unverified_domains: set[str] = set()  # CreateEmailAddress answers DomainNotVerified for these
        self.template_check = False  # True: a TemplateID the emulator does not know is refused
        self.rate_limit: Optional[int] = None  # requests per second per action (SES: 20)
        self.recipient_hourly_limit: Optional[int] = None  # mails per recipient per hour (SES: 10)
        self.daily_quota: Optional[int] = None  # mails per Beijing day (SES: 500 for a new account)
        self.max_request_bytes = MAX_REQUEST_BYTES
        self.callback_url: Optional[str] = None  # where delivery callbacks are posted; None: nowhere
        self.callback_retry_delays: tuple[float, ...] = (1.0, 2.0, 4.0)  # then the callback is dropped
        self.app_id = app_id  # in MessageIds, and the `username` of callbacks
        self.regions: Optional[frozenset[str]] = SES_REGIONS  # None: any region
        self.receiver_upload_seconds = 0.0  # a list stays "uploading" (status 2) this long
        self.template_review_seconds = 0.0  # an API-created template stays "reviewing" this long
        self.deferred_seconds = 2.0  # `deferred@` mail is delivered this long after its deferral
        self.clock: Callable[[], float] = time.time  # "now" for mails, limits, tasks and reviews
        # The SDK stamps X-TC-Timestamp with the real clock, so freshness is judged by a separate
        # clock: tests can move `clock` by days without every request expiring.
        self.auth_clock: Callable[[], float] = time.time
        self.chaos = Chaos()  # the local stack and main() read SESMAIL_EMULATOR_CHAOS
        self.timer_source: Optional[TimerSource] = None
        self.functions_url: Optional[str] = None  # the functions' gateway: the mail page's Stats tab asks it
        self.worker_paused = False  # tests that step through tasks call tick() themselves
        self._faults: list[dict[str, Any]] = []
        self._windows: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._tick_lock = threading.Lock()
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._server: Optional[httpserver.Server] = None
        self._thread: Optional[threading.Thread] = None
        self._worker: Optional[threading.Thread] = None
        self._actions = Actions(self)
        self.account = self._actions.account  # what the mail page and the SMTP endpoint read
        # Action name -> handler(params) -> response fields; tests may add or replace entries.
        self.actions: dict[str, Handler] = self._actions.table()
        if templates_dir:
            self.load_templates(templates_dir)

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> SesEmulator:
        self._stopping.clear()
        self._server = httpserver.Server((self.host, self.port), self, _Handler)
        self.port = self._server.server_address[1]
        self._thread = httpserver.serve(self._server, "ses-emulator")
        self._worker = threading.Thread(target=self._work, name="ses-emulator-delivery", daemon=True)
        self._worker.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # wakes handlers sleeping in a delay() fault, and the worker
        self._wakeup.set()
        httpserver.shut(server, self._thread)
        if self._worker is not None:
            self._worker.join()

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def reset(self) -> None:
        """Forget traffic: calls, mails and their events, lists, tasks, faults, chaos.

        Configuration stays: senders, templates, limits and callback URL.
        """
        with self._lock:
            self.calls.clear()
            self._faults.clear()
            self._windows.clear()
        self.chaos.clear()
        self.store.clear_mail()
        self.store.clear_receivers()
        self.store.clear_tasks()

    # ---- configuration -------------------------------------------------------------------------

    @property
    def senders(self) -> Optional[set[str]]:
        """Known sender addresses, or None when any sender is accepted (the default)."""
        if not self.sender_check:
            return None
        return {row["address"] for row in self.store.senders()}

    @senders.setter
    def senders(self, addresses: Optional[Any]) -> None:
        if addresses is None:
            self.sender_check = False
            return
        self.store.clear_senders()
        for address in addresses:
            self.store.add_sender(str(address), "", self.clock())
        self.sender_check = True

    def add_sender(self, address: str, name: str = "") -> None:
        """Know one more sender (what CreateEmailAddress does), and turn sender checking on."""
        self.store.add_sender(address, name, self.clock())
        self.sender_check = True

    def blacklist_add(self, address: str, reason: str = "") -> None:
        """Put an address on SES's blocklist now, as a hard bounce to it would (ListBlackEmailAddress
        shows it until DeleteBlackList takes it off). Listed addresses are not refused by sends."""
        self.store.add_blacklist_change(address, self.clock(), "add", reason)

    def load_templates(self, directory: str) -> list[rendering.RepoTemplate]:
        """Load (or reload) `templates/`: approved at once, with their stable IDs."""
        templates = rendering.load_templates(directory)
        for template in templates:
            self.store.put_repo_template(template.template_id, template.name, template.html, template.text,
                                         self.clock())
        self.templates_dir = directory
        return templates

    def review_template(self, template_id: int, approved: bool = True, reason: str = "") -> None:
        """Finish a template's review now (0 approved, 2 rejected), as SES's reviewers would."""
        if not self.store.review_template(template_id, 0 if approved else 2, reason):
            raise KeyError(template_id)

    def set_chaos(self, spec: str) -> None:
        """Random faults from now on (see `local.chaos` for the format); "" turns them off."""
        self.chaos.set(spec)

    # ---- fault injection -------------------------------------------------------------------

    def fail(self, action: str, code: str, message: str = "Error injected by the SES emulator.",
             times: int = 1) -> None:
        self._add_fault("outcome", action, times, kind="fail", code=code, message=message)

    def fail_http(self, action: str, status: int = 502, times: int = 1) -> None:
        self._add_fault("outcome", action, times, kind="http", status=status)

    def drop_before(self, action: str, times: int = 1) -> None:
        self._add_fault("outcome", action, times, kind="drop_before")

    def drop_after(self, action: str, times: int = 1) -> None:
        self._add_fault("outcome", action, times, kind="drop_after")

    def delay(self, action: str, seconds: float, times: int = 1) -> None:
        self._add_fault("delay", action, times, seconds=float(seconds))

    def wrong_content_type(self, action: str, times: int = 1) -> None:
        self._add_fault("content_type", action, times)

    def _add_fault(self, group: str, action: str, times: int, **fields: Any) -> None:
        if times < 1:
            raise ValueError("times must be >= 1")
        with self._lock:
            self._faults.append(dict(fields, group=group, action=action, times=times))

    def _take_faults(self, action: str) -> dict[str, dict[str, Any]]:
        """Consume, per group, the oldest fault matching `action` (caller holds the lock).

        Groups are independent so a modifier (delay, wrong Content-Type) can combine with one
        outcome (fail, fail_http, drop_before, drop_after) on the same request.
        """
        taken: dict[str, dict[str, Any]] = {}
        for fault in list(self._faults):
            if fault["group"] in taken or fault["action"] not in ("*", action):
                continue
            taken[fault["group"]] = fault
            fault["times"] -= 1
            if fault["times"] == 0:
                self._faults.remove(fault)
        return taken

    def admit(self, action: str) -> bool:
        """Whether one more request of `action` fits SES's per-second limit now (the SMTP endpoint's
        check; API requests are counted in process())."""
        with self._lock:
            return not self._rate_limited(action, self.clock())

    def _rate_limited(self, action: str, now: float) -> bool:
        """Sliding 1 s window of admitted requests per action (caller holds the lock)."""
        if self.rate_limit is None:
            return False
        window = self._windows.setdefault(action, deque())
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= self.rate_limit:
            return True
        window.append(now)
        return False

    # ---- request processing ----------------------------------------------------------------

    def process(self, headers: Any, body: bytes, method: str = "POST", target: str = "/") -> Reply:
        """Turn one HTTP request (case-insensitive headers, raw body) into the reply to send."""
        try:
            request = self._read(method, target, headers, body)
        except ApiError as exc:
            return _json_reply(exc.response())  # not recorded: never reached an action
        action, params = request.action, request.params
        call: dict[str, Any] = {"Action": action, "Params": params if isinstance(params, dict) else {},
                                "Headers": dict(headers.items()), "SignatureMethod": request.signature_method,
                                "Outcome": "ok"}
        with self._lock:
            self.calls.append(call)  # recorded before replying, so a test sees it once the SDK returns
            limited = self._rate_limited(action, self.clock())
            faults = {} if limited else self._take_faults(action)
        outcome = faults.get("outcome", {})
        if not outcome and not limited:
            outcome = self._chaos_outcome(action)
        delay = faults.get("delay", {}).get("seconds", 0.0) + outcome.get("latency", 0.0)
        ctype = "application/json; charset=utf-8" if "content_type" in faults else JSON_TYPE

        if outcome.get("kind") == "drop_before":
            call["Outcome"] = "dropped"
            return Reply(200, ctype, b"", drop=True, delay=delay)
        if outcome.get("kind") == "http":
            status = outcome["status"]
            call["Outcome"] = f"http:{status}"
            html = f"<html><body><h1>{status}</h1>injected by the SES emulator</body></html>"
            return Reply(status, "text/html", html.encode(), delay=delay)
        try:
            if limited:
                raise ApiError("RequestLimitExceeded", f"The request count exceeds the frequency limit "
                               f"`{self.rate_limit}` for a second. Please reduce the frequency of calls.")
            if outcome.get("kind") == "fail":
                raise ApiError(outcome["code"], outcome["message"])
            if len(body) > self.max_request_bytes:
                raise ApiError("RequestSizeLimitExceeded", "The request body exceeds 8 MB.")
            response = self._dispatch(request, call)
            if outcome.get("kind") == "fail_after":
                raise ApiError(outcome["code"], outcome["message"])
        except ApiError as exc:
            response = exc.response()
            call["Outcome"] = "error:" + exc.code
        except Exception as exc:  # an emulator bug: answer like Tencent would rather than hang the client
            log.exception("SES emulator error in %s", action)
            response = ApiError("InternalError", f"emulator error: {exc!r}").response()
            call["Outcome"] = "error:InternalError"
        if outcome.get("kind") == "drop_after":
            call["Outcome"] = "dropped"  # processed (and stored) but the reply is lost
            return Reply(200, ctype, b"", drop=True, delay=delay)
        return _json_reply(response, ctype, delay)

    def _chaos_outcome(self, action: str) -> dict[str, Any]:
        """The random fault of this request, in the shape of a scripted one."""
        drawn = self.chaos.draw(action)
        message = "Error injected by the SES emulator (chaos)."
        if drawn.drop_before:
            return {"kind": "drop_before", "latency": drawn.latency}
        if drawn.http_status is not None:
            return {"kind": "http", "status": drawn.http_status, "latency": drawn.latency}
        if drawn.error:
            return {"kind": "fail", "code": drawn.error, "message": message, "latency": drawn.latency}
        if drawn.drop_after:
            return {"kind": "drop_after", "latency": drawn.latency}
        if drawn.error_after:
            return {"kind": "fail_after", "code": drawn.error_after, "message": message, "latency": drawn.latency}
        return {"latency": drawn.latency}

    def _dispatch(self, request: _Request, call: dict[str, Any]) -> dict[str, Any]:
        action = request.action
        if not action:
            raise ApiError("MissingParameter", "The request is missing the action (X-TC-Action or Action).")
        if request.version != API_VERSION:
            raise ApiError("NoSuchVersion", f"The API version `{request.version}` does not exist.")
        handler = self.actions.get(action)
        if handler is None:
            raise ApiError("UnsupportedOperation", f"The action `{action}` is not supported.")
        if self.regions is not None:
            # SES's API pages list Region as required for every action.
            if not request.region:
                raise ApiError("MissingParameter", "The request is missing the region (X-TC-Region or Region).")
            if request.region not in self.regions:
                raise ApiError("UnsupportedRegion", f"The action `{action}` does not support the region "
                               f"`{request.region}`; SES serves {', '.join(sorted(self.regions))}.")
        params = request.params
        if not isinstance(params, dict):
            raise ApiError("InvalidParameter", "The request body must be a JSON object.")
        shape = ses_schema.request_shape(action)
        if shape is not None:
            params = ses_schema.normalise(params, shape)
            call["Params"] = params
        return handler(params)

    def _read(self, method: str, target: str, headers: Any, body: bytes) -> _Request:
        """The authenticated request: action, version, region and parameters, wherever the
        client's signature method and HTTP method put them."""
        split = urlsplit(target)
        form = (headers.get("Content-Type") or "").split(";")[0].strip().lower() == FORM_TYPE
        if headers.get("Authorization"):
            ses_auth.check_tc3(method=method, path=split.path, query=split.query, headers=headers, body=body,
                               secret_id=self.secret_id, secret_key=self.secret_key, now=self.auth_clock())
            # X-TC-Token is not part of the signature, so it is checked on its own.
            self._check_token(headers.get("X-TC-Token"))
            if method == "GET":
                params: Any = ses_schema.decode_flat(parse_qsl(split.query, keep_blank_values=True))
            elif form:
                params = ses_schema.decode_flat(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            else:
                params = json_or_none(body)
            return _Request(headers.get("X-TC-Action") or "", headers.get("X-TC-Version"),
                            headers.get("X-TC-Region"), params, "TC3-HMAC-SHA256")
        if method == "GET":
            pairs = parse_qsl(split.query, keep_blank_values=True)
        elif form:
            pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        else:
            pairs = []
        common = {name: value for name, value in pairs if name in ses_auth.V1_COMMON}
        if "Signature" not in common:
            raise ApiError("AuthFailure.SignatureFailure",
                           "The request is not signed (no Authorization header, no Signature parameter).")
        ses_auth.check_v1(method=method, path=split.path, host=headers.get("Host") or "", params=dict(pairs),
                          secret_id=self.secret_id, secret_key=self.secret_key, now=self.auth_clock())
        self._check_token(common.get("Token"))
        params = ses_schema.decode_flat((name, value) for name, value in pairs if name not in ses_auth.V1_COMMON)
        return _Request(common.get("Action") or "", common.get("Version"), common.get("Region"), params,
                        common.get("SignatureMethod") or "HmacSHA1")

    def _check_token(self, given: Optional[str]) -> None:
        if self.token is not None and not hmac.compare_digest((given or "").encode(), self.token.encode()):
            raise ApiError("AuthFailure.TokenFailure", "The token is invalid.")

    # ---- what was sent -------------------------------------------------------------------------

    @property
    def sent(self) -> list[dict[str, Any]]:
        """Accepted SendEmail requests, oldest first: the params plus MessageId and RequestTime."""
        return [dict(json.loads(row["params"]), MessageId=row["message_id"], RequestTime=int(row["request_time"]))
                for row in self.store.sent_requests()]

    def message(self, key: str) -> dict[str, Any]:
        """One stored mail as the JSON API shows it (`key`: page id, MessageId or `latest`)."""
        found = mailpage.message_json(self.account, key)
        if found is None:
            raise KeyError(key)
        return found

    def messages(self, limit: int = 50) -> list[dict[str, Any]]:
        return mailpage.messages_json(self.account, limit)["Messages"]

    def mime(self, row: Any) -> bytes:
        """The stored MIME of a mail; batch mails are rendered on first read and kept."""
        return self.account.mime(row)

    def simulate(self, key: str, kind: str, email: Optional[str] = None,
                 link: Optional[str] = None) -> dict[str, Any]:
        """Record an event now (open, click, bounce, softbounce, complaint, unsubscribe, ...) and
        post its callback. KeyError: no such mail; ValueError: unknown kind or recipient."""
        return self.account.simulate(key, kind, email, link)

    def smtp_mail(self, sender: str, recipients: list[str], raw: bytes, headers: dict[str, str]) -> str:
        """Store a message the SMTP endpoint accepted, as SES would (see `Sending.smtp_mail`)."""
        return self._actions.sending.smtp_mail(sender, recipients, raw, headers)

    # ---- the delivery worker ---------------------------------------------------------------------

    def wake(self) -> None:
        """New work for the worker (a send, a task, an event)."""
        self._wakeup.set()

    def tick(self) -> None:
        """Do what is due by `clock()`: run batch tasks, post callbacks. The worker calls this
        every 100 ms; tests with a fake clock call it after moving the clock."""
        with self._tick_lock:
            now = self.clock()
            self._actions.batch.run_due_tasks(now)
            self._post_callbacks(now)

    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                if not self.worker_paused:
                    self.tick()
            except Exception:  # keep delivering after an emulator bug; the log says what broke
                log.exception("SES emulator delivery worker")
            self._wakeup.wait(0.1)
            self._wakeup.clear()

    def _post_callbacks(self, now: float) -> None:
        for event in self.store.due_callbacks(now):
            if self._stopping.is_set():
                return
            url = self.callback_url
            if not url:
                self.store.callback_done(event["id"], "off", event["attempts"], None)
                continue
            error = delivery.post(url, json.loads(event["payload"]))
            attempts = event["attempts"] + 1
            if error is None:
                self.store.callback_done(event["id"], "posted", attempts, None)
            elif attempts > len(self.callback_retry_delays):
                # Tencent documents no retry for callbacks; ours gives up after a few tries.
                log.warning("callback %s for %s dropped after %d attempts: %s", event["event"],
                            event["message_id"], attempts, error)
                self.store.callback_done(event["id"], "failed", attempts, error)
            else:
                self.store.callback_retry(event["id"], attempts, now + self.callback_retry_delays[attempts - 1],
                                          error)

    # ---- the local HTTP API (mail page, /_local) -----------------------------------------------------

    def local_request(self, method: str, target: str, headers: Any, body: bytes) -> Reply:
        split = urlsplit(target)
        # The mail page's "Stats" tab: the send function's dashboard, its calls passed to the functions.
        parts = [part for part in split.path.split("/") if part]
        if parts == ["_local", "calls"] and method in ("GET", "HEAD"):
            with self._lock:
                calls = [{"Action": call["Action"], "Outcome": call["Outcome"]} for call in self.calls]
            return Reply(200, JSON_TYPE, json.dumps({"Calls": calls}).encode())
        stats_page = statspage.handle(self.functions_url, method, parts[1:], split.query, headers,
                                      mailpage.PAGE_CSP) if parts[:1] == ["_local"] else None
        if stats_page is not None:
            status, ctype, payload, extra = stats_page
            return Reply(status, ctype, payload, headers=tuple(extra.items()))
        status, ctype, payload, extra = mailpage.handle(self.account, self.chaos, self.timer_source, method,
                                                        split.path, split.query, headers, body)
        return Reply(status, ctype, payload, headers=tuple(extra.items()))


# ---- helpers ---------------------------------------------------------------------------------

def _json_reply(response: dict[str, Any], content_type: str = JSON_TYPE, delay: float = 0.0) -> Reply:
    return Reply(200, content_type, answer(response), delay=delay)


# ---- HTTP ------------------------------------------------------------------------------------

class _Handler(httpserver.Handler):
    server_version = "sesmail-ses-emulator"

    def do_POST(self) -> None:
        # Read the whole body even when dropping, so the close is a clean FIN the client sees as
        # "connection closed without response" rather than a reset racing its send.
        body = self._body()
        if body is None:
            return
        if urlsplit(self.path).path.startswith("/_local/"):
            self._send(self.server.emulator.local_request("POST", self.path, self.headers, body))
            return
        self._api(body)

    def do_GET(self) -> None:
        # The SDKs' reqMethod="GET" puts an SES call in a GET: X-TC-Action with a TC3 signature,
        # `Action=` in the query with a v1 one. That is the API's; any other GET is the page's.
        split = urlsplit(self.path)
        if not split.path.startswith("/_local/") and (
                self.headers.get("X-TC-Action") or any(name == "Action" for name, _ in parse_qsl(split.query))):
            body = self._body()
            if body is not None:
                self._api(body)
            return
        self._local()

    def _api(self, body: bytes) -> None:
        emulator = self.server.emulator
        reply = emulator.process(self.headers, body, self.command, self.path)
        if reply.delay:
            emulator._stopping.wait(reply.delay)  # stop() cuts the sleep short
        if reply.drop:
            self.close_connection = True
            return
        self._send(reply)

    def _local(self) -> None:
        body = self._body()
        if body is not None:
            self._send(self.server.emulator.local_request(self.command, self.path, self.headers, body))

    do_DELETE = do_HEAD = _local


def from_args(argv: Optional[list[str]] = None) -> SesEmulator:
    """The emulator main() runs, configured by its command line and environment, not started."""
    parser = argparse.ArgumentParser(description="Local fake of Tencent Cloud SES (API 2020-10-02).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--data-dir", help="keep mails and lists in SQLite here (default: in memory)")
    parser.add_argument("--templates", help="a templates/ directory to load (turns template checking on)")
    parser.add_argument("--callback-url", help="where to post delivery callbacks")
    parser.add_argument("--rate-limit", type=int, metavar="N",
                        help="refuse more than N requests of an action per second, as SES does at 20 (default: off)")
    args = parser.parse_args(argv)
    try:
        emu = SesEmulator(secret_id=os.environ.get("SESMAIL_LOCAL_SECRET_ID", "AKIDlocal"),
                          secret_key=os.environ.get("SESMAIL_LOCAL_SECRET_KEY", "local-secret-key"),
                          host=args.host, port=args.port, data_dir=args.data_dir, templates_dir=args.templates,
                          app_id=os.environ.get("SESMAIL_EMULATOR_APP_ID") or DEFAULT_APP_ID)
    except ValueError as exc:
        raise SystemExit(f"SESMAIL_EMULATOR_APP_ID: {exc}") from None
    emu.template_check = bool(args.templates)
    emu.callback_url = args.callback_url
    emu.rate_limit = args.rate_limit
    emu.set_chaos(os.environ.get("SESMAIL_EMULATOR_CHAOS", ""))
    return emu


def main(argv: Optional[list[str]] = None) -> None:
    emu = from_args(argv).start()
    print(f"SES emulator on http://{emu.endpoint} (SecretId {emu.secret_id}); Ctrl-C stops it", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()


if __name__ == "__main__":
    main()
