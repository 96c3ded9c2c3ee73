"""In-process fake of Tencent Cloud SES (API 2020-10-02) that the real SDK talks to over real HTTP.

Tests start it on port 0 and point `HttpProfile(endpoint=emu.endpoint, protocol="http")` at it;
`python -m local.ses_emulator --port 8090` runs it in the foreground. Standard library only.

State a test reads: `calls` (one dict per authenticated request: Action, Params, Headers, Outcome
"ok" / "error:<Code>" / "dropped" / "http:<status>") and `sent` (accepted SendEmail params plus
MessageId and RequestTime). Knobs: `senders`, `rate_limit`, `clock`, `auth_clock`, and the fault
methods, which script the next `times` requests of an action ("*" = any), oldest first.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import hmac
import json
import os
import re
import secrets
import socket
import threading
import time
import uuid
from collections import deque
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, NamedTuple, Optional

__all__ = ["SesEmulator", "main"]

API_VERSION = "2020-10-02"
# The SDK's _check_error only parses bodies whose Content-Type is exactly one of its two known
# values; anything else (even with "; charset=utf-8") makes it return errors as empty successes.
JSON_TYPE = "application/json"
MAX_SKEW = 300  # seconds; Tencent answers AuthFailure.SignatureExpire beyond +-5 min
BEIJING = timezone(timedelta(hours=8))  # SES keys GetSendEmailStatus.RequestDate by Beijing date
STATUS_LOOKBACK_DAYS = 90  # FailedOperation.NotSupportDate: "only the last 90 days"
MAX_ATTACH_BYTES = 4 * 1024 * 1024  # decoded total, per the SDK's Attachment.Content doc

_AUTH_RE = re.compile(
    r"TC3-HMAC-SHA256\s+Credential=([^/\s]+)/(\d{4}-\d{2}-\d{2})/([^/\s]+)/tc3_request,\s*"
    r"SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})", re.ASCII)
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


class ApiError(Exception):
    """An SES error answer: HTTP 200 with {"Response": {"Error": {...}, "RequestId"}}."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def response(self) -> dict[str, Any]:
        return {"Error": {"Code": self.code, "Message": self.message}}


class _Reply(NamedTuple):
    status: int
    content_type: str
    body: bytes
    drop: bool = False  # close the connection instead of answering
    delay: float = 0.0


class SesEmulator:
    def __init__(self, secret_id: str = "AKIDlocal", secret_key: str = "local-secret-key",
                 token: Optional[str] = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.secret_id = secret_id
        self.secret_key = secret_key
        self.token = token
        self.host = host
        self.port = port
        self.calls: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.senders: Optional[set[str]] = None  # None: every sender counts as verified
        self.rate_limit: Optional[int] = None  # requests per second per action
        self.clock: Callable[[], float] = time.time  # "now" for stored mails and rate limits
        # The SDK stamps X-TC-Timestamp with the real clock, so freshness is judged by a separate
        # clock: tests can move `clock` by days without every request expiring.
        self.auth_clock: Callable[[], float] = time.time
        self._faults: list[dict[str, Any]] = []
        self._windows: dict[str, deque[float]] = {}
        self._seq = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        # Later issues add BatchSendEmail, receivers and templates here.
        self.actions: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "SendEmail": self._send_email,
            "GetSendEmailStatus": self._get_send_email_status,
            "ListSendTasks": self._list_send_tasks,
        }

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> SesEmulator:
        self._stopping.clear()
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="ses-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # wakes handlers sleeping in a delay() fault
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> SesEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.sent.clear()
            self._faults.clear()
            self._windows.clear()

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

    def process(self, headers: Any, body: bytes) -> _Reply:
        """Turn one HTTP request (case-insensitive headers, raw body) into the reply to send."""
        try:
            self._authenticate(headers, body)
        except ApiError as exc:
            return _json_reply(exc.response())  # not recorded: never reached an action
        action = headers.get("X-TC-Action") or ""
        params = _json_or_none(body)
        call: dict[str, Any] = {"Action": action, "Params": params if isinstance(params, dict) else {},
                                "Headers": dict(headers.items()), "Outcome": "ok"}
        with self._lock:
            self.calls.append(call)  # recorded before replying, so a test sees it once the SDK returns
            limited = self._rate_limited(action, self.clock())
            faults = {} if limited else self._take_faults(action)
        outcome = faults.get("outcome", {})
        delay = faults.get("delay", {}).get("seconds", 0.0)
        ctype = "application/json; charset=utf-8" if "content_type" in faults else JSON_TYPE

        if outcome.get("kind") == "drop_before":
            call["Outcome"] = "dropped"
            return _Reply(200, ctype, b"", drop=True, delay=delay)
        if outcome.get("kind") == "http":
            status = outcome["status"]
            call["Outcome"] = f"http:{status}"
            html = f"<html><body><h1>{status}</h1>injected by the SES emulator</body></html>"
            return _Reply(status, "text/html", html.encode(), delay=delay)
        try:
            if limited:
                raise ApiError("RequestLimitExceeded", f"The request count exceeds the frequency limit "
                               f"`{self.rate_limit}` for a second. Please reduce the frequency of calls.")
            if outcome.get("kind") == "fail":
                raise ApiError(outcome["code"], outcome["message"])
            response = self._dispatch(action, params, headers.get("X-TC-Version"))
        except ApiError as exc:
            response = exc.response()
            call["Outcome"] = "error:" + exc.code
        except Exception as exc:  # an emulator bug: answer like Tencent would rather than hang the client
            response = ApiError("InternalError", f"emulator error: {exc!r}").response()
            call["Outcome"] = "error:InternalError"
        if outcome.get("kind") == "drop_after":
            call["Outcome"] = "dropped"  # processed (and stored) but the reply is lost
            return _Reply(200, ctype, b"", drop=True, delay=delay)
        return _json_reply(response, ctype, delay)

    def _dispatch(self, action: str, params: Any, version: Optional[str]) -> dict[str, Any]:
        if not action:
            raise ApiError("MissingParameter", "The request is missing the X-TC-Action header.")
        if version != API_VERSION:
            raise ApiError("NoSuchVersion", f"The API version `{version}` does not exist.")
        handler = self.actions.get(action)
        if handler is None:
            raise ApiError("UnsupportedOperation", f"The action `{action}` is not supported.")
        if not isinstance(params, dict):
            raise ApiError("InvalidParameter", "The request body must be a JSON object.")
        return handler(params)

    def _authenticate(self, headers: Any, body: bytes) -> None:
        auth = headers.get("Authorization")
        if not auth:
            raise ApiError("AuthFailure.SignatureFailure", "The request is not signed (no Authorization).")
        match = _AUTH_RE.fullmatch(auth.strip())
        if match is None:
            raise ApiError("AuthFailure.InvalidAuthorization", "Authorization header format error.")
        secret_id, date, service, signed_headers, signature = match.groups()
        if not hmac.compare_digest(secret_id.encode(), self.secret_id.encode()):
            raise ApiError("AuthFailure.SecretIdNotFound", "The SecretId is not found.")
        stamp = headers.get("X-TC-Timestamp") or ""
        if not (stamp.isascii() and stamp.isdigit()):
            raise ApiError("AuthFailure.SignatureFailure", "X-TC-Timestamp is missing or not an integer.")
        if abs(self.auth_clock() - int(stamp)) > MAX_SKEW:
            raise ApiError("AuthFailure.SignatureExpire", "The signature expired: the timestamp differs "
                           "from server time by more than 5 minutes.")
        host = headers.get("Host") or ""
        bare = host.split("]")[0] + "]" if host.startswith("[") else host.split(":")[0]
        # The Python SDK signs Host with its port and service "ses"; the Node SDK signs the bare
        # hostname and names the service after the endpoint's first label ("127" for 127.0.0.1).
        if (signed_headers != "content-type;host" or service not in ("ses", bare.split(".")[0])
                or date != datetime.fromtimestamp(int(stamp), timezone.utc).strftime("%Y-%m-%d")):
            raise ApiError("AuthFailure.SignatureFailure", "The signature scope is not valid.")
        # Hash the raw bytes: re-serialising the JSON would change separators and key order.
        payload = b"UNSIGNED-PAYLOAD" if headers.get("X-TC-Content-SHA256") == "UNSIGNED-PAYLOAD" else body
        for signed_host in dict.fromkeys((host, bare)):
            expected = _tc3_signature(self.secret_key, date, service, stamp,
                                      headers.get("Content-Type") or "", signed_host, payload)
            if hmac.compare_digest(expected.encode(), signature.encode()):
                break
        else:
            raise ApiError("AuthFailure.SignatureFailure", "The provided credentials could not be validated.")
        # X-TC-Token is not part of the signature, so it is checked on its own.
        if self.token is not None and not hmac.compare_digest(
                (headers.get("X-TC-Token") or "").encode(), self.token.encode()):
            raise ApiError("AuthFailure.TokenFailure", "The token is invalid.")

    # ---- actions ---------------------------------------------------------------------------

    def _send_email(self, p: dict[str, Any]) -> dict[str, Any]:
        sender = p.get("FromEmailAddress")
        if not sender:
            raise ApiError("MissingParameter", "The request is missing `FromEmailAddress`.")
        address = _sender_address(sender)
        if self.senders is not None and address not in self.senders:
            raise ApiError("FailedOperation.NotAuthenticatedSender", "The sender is not verified.")
        subject = p.get("Subject")
        if not isinstance(subject, str) or not 1 <= len(subject) <= 100:
            raise ApiError("InvalidParameterValue.SubjectLengthError", "Subject must be 1-100 characters.")
        lists = {name: p.get(name) or [] for name in ("Destination", "Cc", "Bcc")}
        if not all(isinstance(v, list) for v in lists.values()):
            raise ApiError("InvalidParameter", "Destination, Cc and Bcc must be lists.")
        # SDK doc: "at least one of Destination/Cc/Bcc"; SES names the empty case EmailAddressIsNULL.
        if not any(lists.values()):
            raise ApiError("InvalidParameterValue.EmailAddressIsNULL", "The recipient address is empty.")
        for name, cap in (("Destination", 50), ("Cc", 20), ("Bcc", 20)):
            if len(lists[name]) > cap:
                raise ApiError("FailedOperation.TooManyRecipients", f"`{name}` takes at most {cap}.")
        if not all(_is_address(a) for v in lists.values() for a in v):
            raise ApiError("InvalidParameterValue.ReceiverEmailInvalid", "A recipient address is invalid.")
        _check_template(p)
        _check_attachments(p.get("Attachments"))

        now = self.clock()
        with self._lock:
            self._seq += 1
            stamp = datetime.fromtimestamp(now, BEIJING).strftime("%Y%m%d%H%M%S")
            message_id = f"qcloudses-{stamp}{self._seq:06d}-{secrets.token_hex(7)}"
            self.sent.append(dict(copy.deepcopy(p), MessageId=message_id, RequestTime=int(now)))
        return {"MessageId": message_id}

    def _get_send_email_status(self, p: dict[str, Any]) -> dict[str, Any]:
        day = p.get("RequestDate")
        if not day:
            raise ApiError("MissingParameter", "The request is missing `RequestDate`.")
        try:
            if not isinstance(day, str) or not _DATE_RE.fullmatch(day):
                raise ValueError(day)
            wanted = datetime.strptime(day, "%Y-%m-%d").date()
        except ValueError:
            raise ApiError("InvalidParameterValue.WrongDate", "RequestDate must be YYYY-MM-DD.") from None
        offset, limit = _paging(p)
        today = datetime.fromtimestamp(self.clock(), BEIJING).date()
        if (today - wanted).days > STATUS_LOOKBACK_DAYS:
            raise ApiError("FailedOperation.NotSupportDate", "Only the last 90 days can be queried.")
        message_id, to = p.get("MessageId"), str(p.get("ToEmailAddress") or "").lower()
        with self._lock:
            mails = sorted(self.sent, key=lambda m: m["RequestTime"])
        rows = []
        for mail in mails:
            stamp = mail["RequestTime"]
            if (datetime.fromtimestamp(stamp, BEIJING).date() != wanted
                    or (message_id and mail["MessageId"] != message_id)):
                continue
            for rcpt in (mail.get("Destination") or []) + (mail.get("Cc") or []) + (mail.get("Bcc") or []):
                if to and rcpt.lower() != to:
                    continue
                rows.append({"MessageId": mail["MessageId"], "ToEmailAddress": rcpt,
                             "FromEmailAddress": _sender_address(mail["FromEmailAddress"]),
                             "SendStatus": 0, "DeliverStatus": 1, "DeliverMessage": "",
                             "RequestTime": stamp, "DeliverTime": stamp, "UserOpened": False,
                             "UserClicked": False, "UserUnsubscribed": False, "UserComplainted": False})
        return {"EmailStatusList": rows[offset:offset + limit]}

    def _list_send_tasks(self, p: dict[str, Any]) -> dict[str, Any]:
        _paging(p)
        return {"Data": [], "TotalCount": 0}


# ---- helpers ---------------------------------------------------------------------------------

def _tc3_signature(secret_key: str, date: str, service: str, stamp: str, content_type: str,
                   host: str, payload: bytes) -> str:
    """TC3-HMAC-SHA256 over a POST to "/" signing only content-type and host."""
    body_hash = hashlib.sha256(payload).hexdigest()
    canonical = f"POST\n/\n\ncontent-type:{content_type}\nhost:{host}\n\ncontent-type;host\n{body_hash}"
    scope = f"{date}/{service}/tc3_request"
    to_sign = f"TC3-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = ("TC3" + secret_key).encode()
    for part in (date, service, "tc3_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def _sender_address(sender: Any) -> str:
    """The bare address of "Alias <addr>" (SES's alias form) or of a plain address."""
    sender = str(sender).strip()
    if sender.endswith(">") and "<" in sender:
        alias, _, rest = sender.rpartition("<")
        if ":" in alias:  # SES: the alias must not contain a colon
            raise ApiError("InvalidParameterValue.IllegalSenderName", "The sender alias is not valid.")
        sender = rest[:-1].strip()
    if not _is_address(sender):
        raise ApiError("FailedOperation.IncorrectSender", "The sender address format is incorrect.")
    return sender


def _is_address(value: Any) -> bool:
    if not isinstance(value, str) or value.count("@") != 1 or any(c.isspace() for c in value):
        return False
    local, domain = value.split("@")
    return bool(local and domain)


def _check_template(p: dict[str, Any]) -> None:
    template = p.get("Template")
    if template is None:
        # Accounts without the legacy whitelist may only send templates.
        if p.get("Simple") is not None:
            raise ApiError("FailedOperation.WithOutPermission", "Only template sending is allowed.")
        raise ApiError("MissingParameter", "The request is missing `Template`.")
    if not isinstance(template, dict):
        raise ApiError("InvalidParameter", "`Template` must be an object.")
    template_id = template.get("TemplateID")
    if isinstance(template_id, bool) or not isinstance(template_id, int) or template_id <= 0:
        raise ApiError("FailedOperation.InvalidTemplateID", "The template ID is invalid or unavailable.")
    data = template.get("TemplateData")
    if data is None:
        raise ApiError("FailedOperation.MissingEmailContent", "TemplateData and Simple cannot both be empty.")
    # TemplateData is a JSON object serialised into a *string*, not a nested object.
    if not isinstance(data, str) or not isinstance(_json_or_none(data), dict):
        raise ApiError("FailedOperation.WrongContentJson", "TemplateData must be a JSON object string.")


def _check_attachments(attachments: Any) -> None:
    if not attachments:
        return
    if not isinstance(attachments, list):
        raise ApiError("InvalidParameter", "`Attachments` must be a list.")
    if len(attachments) > 10:
        raise ApiError("FailedOperation.TooManyAttachments", "At most 10 attachments are allowed.")
    total = 0
    for item in attachments:
        name = item.get("FileName") if isinstance(item, dict) else None
        if not isinstance(name, str) or not 1 <= len(name) <= 255:
            raise ApiError("FailedOperation.InvalidAttachName", "The attachment name is not supported.")
        try:
            content = base64.b64decode(item.get("Content") or "", validate=True)
        except (TypeError, ValueError):  # binascii.Error is a ValueError
            content = b""
        if not content:
            raise ApiError("InvalidParameterValue.AttachContentIsWrong", "Attachment content is not base64.")
        total += len(content)
    if total > MAX_ATTACH_BYTES:
        raise ApiError("FailedOperation.AttachContentToolarge", "Attachments exceed 4 MB in total.")


def _paging(p: dict[str, Any]) -> tuple[int, int]:
    offset, limit = p.get("Offset", 0), p.get("Limit")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ApiError("InvalidParameterValue", "Offset must be a non-negative integer.")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
        raise ApiError("FailedOperation.InvalidLimit", "Limit must be between 1 and 100.")
    return offset, limit


def _json_or_none(text: Any) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _json_reply(response: dict[str, Any], content_type: str = JSON_TYPE, delay: float = 0.0) -> _Reply:
    body = json.dumps({"Response": dict(response, RequestId=str(uuid.uuid4()))}).encode()
    return _Reply(200, content_type, body, delay=delay)


# ---- HTTP ------------------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keep-alive without Nagle: otherwise Nagle + delayed ACK stall each reply on a
    # reused connection by ~40 ms (headers and body go out as two writes).
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "sesmail-ses-emulator"
    timeout = 300  # idle keep-alive connections of abandoned clients eventually free their thread
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request on stderr drowns test and dev output

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.send_error(400, "bad Content-Length")
            return
        # Read the whole body even when dropping, so the close is a clean FIN the client sees as
        # "connection closed without response" rather than a reset racing its send.
        reply = self.server.emulator.process(self.headers, self.rfile.read(length))
        if reply.delay:
            self.server.emulator._stopping.wait(reply.delay)  # stop() cuts the sleep short
        if reply.drop:
            self.close_connection = True
            return
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:  # the client gave up (e.g. read timeout during a delay fault)
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: SesEmulator) -> None:
        self.emulator = emulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, conn: socket.socket, alive: bool) -> None:
        with self._connections_lock:
            (self._connections.add if alive else self._connections.discard)(conn)

    def close_connections(self) -> None:
        """Unblock handler threads parked on idle keep-alive connections."""
        with self._connections_lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="Local fake of Tencent Cloud SES (API 2020-10-02).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args(argv)
    emu = SesEmulator(secret_id=os.environ.get("SESMAIL_LOCAL_SECRET_ID", "AKIDlocal"),
                      secret_key=os.environ.get("SESMAIL_LOCAL_SECRET_KEY", "local-secret-key"),
                      host=args.host, port=args.port).start()
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
