"""SES's SMTP interface, emulated beside the API emulator (docs/ses.md has what SES documents for
it): what the SMTP transport of `send` (`SESMAIL_TRANSPORT=smtp`) talks to in `make dev` and in tests.

It enforces what SES documents for SMTP and answers as SES does: business refusals as
`554 5.0.0 Error: transaction failed, blame it on the weather: ##SES-response-json: {…}` with SES's
code inside; a line of 2,000 characters or more as SES's system error (no JSON). Checked: AUTH with
a known sender address and the SMTP password (`SESMAIL_EMULATOR_SMTP_PASSWORD`, default
`dev-smtp-password`; SES sets it per address with UpdateEmailSmtpPassWord), MAIL FROM = the logged-in
address, From / To / Subject present, MIME-Version empty or 1.0, Content-Type among the allowed
ones, attachments in base64 with `Content-Disposition: attachment`, no Cc or Bcc, body <= 1 MB,
an attachment <= 5 MB, all <= 10 MB, at most 50 recipients, SES's rate, per-recipient and daily
limits (the emulator's settings). An accepted message is stored in the emulator's mail store with
a MessageId of SES's own, shows on the mail page and gets delivery callbacks carrying its
Message-ID as `messageId`.

Scripted faults for tests: `fail(code, message)` answers the next message(s) with that refusal;
`drop_after_data()` takes the next message and closes the connection before answering (the reply
is lost: the sender cannot know whether the mail went out).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import uuid
import warnings
from email import policy
from email.parser import BytesParser
from typing import TYPE_CHECKING, Any, Optional

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from .ses_common import ApiError, is_address

if TYPE_CHECKING:
    from .ses_emulator import SesEmulator

__all__ = ["DEFAULT_PASSWORD", "SmtpEndpoint", "refusal"]

log = logging.getLogger("sesmail.local")

DEFAULT_PASSWORD = "dev-smtp-password"
PREFIX = "554 5.0.0 Error: transaction failed, blame it on the weather: "
MAX_LINE = 2000
MAX_BODY = 1_000_000
MAX_ATTACHMENT = 5_000_000
MAX_ATTACHMENTS = 10_000_000
MAX_RECIPIENTS = 50
TEXT_TYPES = ("text/plain", "text/html")
MULTIPART_TYPES = ("multipart/mixed", "multipart/related", "multipart/alternative")


def refusal(code: str, message: str) -> str:
    """A business refusal in SES's SMTP format (docs/ses.md)."""
    body = {"Response": {"RequestId": str(uuid.uuid4()), "QcloudError": {"Error": {"Code": code, "Message": message}}}}
    return PREFIX + "##SES-response-json: " + json.dumps(body, separators=(",", ":"))


class _Smtp(SMTP):
    # Long lines must reach the handler (SES refuses them with its own answer), not aiosmtpd's 500.
    line_length_limit = 4 * 1024 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        with warnings.catch_warnings():  # AUTH without TLS, on loopback: on purpose
            warnings.simplefilter("ignore")
            super().__init__(*args, **kwargs)


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _Smtp(self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        # Port 0 picks a free port: learn which before aiosmtpd connects to check it is up.
        server: Any = self.server
        if self.port == 0 and server is not None:
            self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpEndpoint:
    def __init__(self, emulator: SesEmulator, host: str = "127.0.0.1", port: int = 0,
                 password: str = DEFAULT_PASSWORD) -> None:
        self.emulator = emulator
        self.host = host
        self.port = port
        self.password = password
        self.received: list[dict[str, Any]] = []  # what reached DATA, accepted or not: {MessageId?, Reply}
        self._faults: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._controller: Optional[_Controller] = None

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self) -> SmtpEndpoint:
        # AUTH without TLS is what a loopback emulator wants; aiosmtpd warns about it on every session.
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._controller = _Controller(
                _Handler(self), hostname=self.host, port=self.port, auth_required=True, auth_require_tls=False,
                authenticator=self._authenticate, data_size_limit=32 * 1024 * 1024)
            self._controller.start()
        self.port = self._controller.port
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- faults ---------------------------------------------------------------------------------

    def fail(self, code: str, message: str = "Error injected by the SES emulator.", times: int = 1) -> None:
        with self._lock:
            self._faults.append({"kind": "fail", "code": code, "message": message, "times": times})

    def drop_after_data(self, times: int = 1) -> None:
        with self._lock:
            self._faults.append({"kind": "drop", "times": times})

    def _take_fault(self) -> Optional[dict[str, Any]]:
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            fault["times"] -= 1
            if fault["times"] <= 0:
                self._faults.pop(0)
            return fault

    # ---- the protocol ----------------------------------------------------------------------------

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace")
        # A sender address with its own SMTP password (UpdateEmailSmtpPassWord) takes only that one.
        sender = self.emulator.store.sender(login)
        password = (sender["smtp_password"] if sender is not None else None) or self.password
        ok = (auth_data.password.decode("utf-8", "replace") == password
              and self.emulator.account.sender_known(login))
        return AuthResult(success=ok, handled=False, auth_data=login if ok else None)

    def accept(self, session: Any, envelope: Any) -> str:
        """The reply to one message (the end of DATA)."""
        raw = bytes(envelope.original_content or envelope.content or b"")
        try:
            message_id = self._check_and_store(session, envelope, raw)
        except ApiError as exc:
            reply = refusal(exc.code, exc.message)
            self.received.append({"Reply": reply})
            return reply
        except _SystemError as exc:
            self.received.append({"Reply": str(exc)})
            return str(exc)
        except _Drop as drop:
            self.received.append({"MessageId": str(drop), "Reply": None})
            raise
        self.received.append({"MessageId": message_id, "Reply": "250 OK"})
        return f"250 2.0.0 Ok: queued as {message_id}"

    def _check_and_store(self, session: Any, envelope: Any, raw: bytes) -> str:
        if any(len(line) >= MAX_LINE for line in raw.split(b"\r\n")):
            raise _SystemError(PREFIX + "smtp: too longer line in input stream")
        fault = self._take_fault()
        if fault is not None and fault["kind"] == "fail":
            raise ApiError(fault["code"], fault["message"])
        if not self.emulator.admit("SMTP"):
            raise ApiError("RequestLimitExceeded.SmtpRateLimit", "smtp sending frequency limit")
        msg = BytesParser(policy=policy.default).parsebytes(raw)
        for header, text in (("From", "msg.From is null"), ("Subject", "msg.Subject is null"),
                             ("To", "msg.To is null")):
            if not str(msg.get(header) or "").strip():
                raise ApiError("FailedOperation", text)
        for header in ("Cc", "Bcc"):
            if msg.get(header) is not None:
                raise ApiError("FailedOperation", f"{header} is not supported over SMTP")
        if str(msg.get("MIME-Version") or "1.0").strip() != "1.0":
            raise ApiError("FailedOperation", "Mime-Version must in [1.0]")
        self._check_parts(msg)
        recipients = list(envelope.rcpt_tos)
        if len(recipients) > MAX_RECIPIENTS:
            raise ApiError("FailedOperation.TooManyRecipients", "Too many recipients.")
        if not all(is_address(r) for r in recipients):
            raise ApiError("InvalidParameterValue.ReceiverEmailInvalid", "A recipient address is invalid.")
        headers = {name: str(msg.get(name) or "") for name in ("From", "Subject", "Message-ID", "Reply-To")}
        message_id = self.emulator.smtp_mail(envelope.mail_from, recipients, raw, headers)
        if fault is not None and fault["kind"] == "drop":
            raise _Drop(message_id)
        return message_id

    def _check_parts(self, msg: Any) -> None:
        body = attachments = 0
        top = msg.get_content_type()
        if top not in TEXT_TYPES + MULTIPART_TYPES:
            raise ApiError("FailedOperation", "Content-Type must in [text/plain; charset=UTF-8, text/html; charset="
                                              "UTF-8, multipart/mixed, multipart/related, multipart/alternative]")
        for part in msg.walk():
            if part.is_multipart():
                if part.get_content_type() not in MULTIPART_TYPES:
                    raise ApiError("FailedOperation", "Content-Type must in [...]")
                continue
            cte = str(part.get("Content-Transfer-Encoding") or "").strip().lower()
            payload = part.get_payload(decode=False)
            if part.get_content_disposition() == "attachment" or part.get_filename():
                if part.get_content_disposition() != "attachment":
                    raise ApiError("FailedOperation", "Content-Disposition must be attachment")
                if cte != "base64":
                    raise ApiError("FailedOperation", "Content-Transfer-Encoding must in [base64]")
                size = _b64_size(payload, "Incorrect attachment content. Make sure the base64 content is correct.")
                if size > MAX_ATTACHMENT:
                    raise ApiError("FailedOperation", "The attachments are too large. Make sure they do not exceed "
                                                      "the limit.")
                attachments += size
                continue
            if part.get_content_type() not in TEXT_TYPES or str(part.get_param("charset") or "").lower() != "utf-8":
                raise ApiError("FailedOperation", "Content-Type must in [text/plain; charset=UTF-8, text/html; "
                                                  "charset=UTF-8, ...]")
            if cte == "base64":
                body += _b64_size(payload, "Incorrect body content. Make sure the base64 content is correct.")
            else:
                body += len(str(payload).encode("utf-8"))
        if not body:
            raise ApiError("FailedOperation", "msg.Body is null")
        if body > MAX_BODY:
            raise ApiError("FailedOperation", "The email is too large. Remove some content and try again.")
        if attachments > MAX_ATTACHMENTS:
            raise ApiError("FailedOperation", "The attachments are too large. Make sure they do not exceed the limit.")


def _b64_size(payload: Any, message: str) -> int:
    try:
        return len(base64.b64decode("".join(str(payload).split()), validate=True))
    except (binascii.Error, ValueError):
        raise ApiError("FailedOperation", message) from None


class _SystemError(Exception):
    """An SMTP-level failure SES answers without its JSON."""


class _Drop(Exception):
    """Taken and stored; the connection is closed instead of answering."""


class _Handler:
    def __init__(self, endpoint: SmtpEndpoint) -> None:
        self.endpoint = endpoint

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, mail_options: list) -> str:
        if (address or "").lower() != str(session.auth_data or "").lower():
            return "553 5.7.1 Sender address rejected: not owned by the logged-in user"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        try:
            return self.endpoint.accept(session, envelope)
        except _Drop:
            server.transport.close()  # the mail is stored; its "250" never reaches the sender
            return "250 OK"
        except Exception:  # an emulator bug: answer like a server error rather than hang the client
            log.exception("SES emulator SMTP endpoint")
            return "451 4.3.0 Error: internal error of the SES emulator"
