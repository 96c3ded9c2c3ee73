"""SES's API: the client (credentials, endpoint, timeouts) and the API transport of SendEmail.

SendEmail and BatchSendEmail are not idempotent at SES: a retry after a lost reply sends twice.
So a call is retried only when the failure proves nothing was sent:
- `RequestLimitExceeded*` and `FailedOperation.ServiceNotAvailable` ("not applied, please retry"),
- the connection could not be opened (refused, DNS, connect timeout).
Anything that leaves the outcome open (the connection dropped after the request was written, a
read timeout, `InternalError*`, an HTTP 5xx, an unreadable reply) raises OutcomeUnknown and is
never retried. Every other SES error is raised as SesRefused with SES's own code. The retry loop
is the one both transports share (sesmail.transport; docs/reliability.md#retries).

The SDK is imported on the first call, not at cold start: a refused payload never pays for it.
SDK traps handled here (docs/ses.md#sdk): no retry by default, a 60 s default timeout, error
replies read only when Content-Type is exactly `application/json`, `ServerNetworkError` messages
are the raw reply bytes, and SCF's credential variables are not the ones the SDK's provider reads.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from . import log
from .errors import OutcomeUnknown, SesRefused, Unavailable
from .transport import NotSent, Outgoing, retried

if TYPE_CHECKING:
    from .config import Settings
    from .deadline import Deadline
    from .ratelimit import Limiter

__all__ = ["ApiTransport", "SesClient", "client_for", "reset"]

# Failures SES documents as "nothing was done, retry".
RETRYABLE_CODES = frozenset({
    "RequestLimitExceeded",
    "RequestLimitExceeded.UinLimitExceeded",
    "RequestLimitExceeded.GlobalRegionUinLimitExceeded",
    "RequestLimitExceeded.IPLimitExceeded",
    "FailedOperation.ServiceNotAvailable",
})
# SDK codes raised before any byte left this process.
_LOCAL_CODES = frozenset({"ClientError", "ClientParamsError", "InvalidCredential"})


def _not_sent_cause(exc: BaseException) -> bool:
    """True when a network error happened while opening the connection, before the request
    was written: urllib3's NewConnectionError (refused, DNS) or ConnectTimeoutError, which the
    SDK flattens into ClientNetworkError with the requests exception as its context."""
    from requests import exceptions as rex
    from urllib3 import exceptions as u3

    seen = 0
    cause: BaseException | None = exc
    while cause is not None and seen < 8:
        if isinstance(cause, rex.ConnectTimeout):
            return True
        if isinstance(cause, (u3.NewConnectionError, u3.ConnectTimeoutError)):
            return True
        if isinstance(cause, u3.MaxRetryError):
            return isinstance(cause.reason, (u3.NewConnectionError, u3.ConnectTimeoutError))
        if isinstance(cause, rex.ConnectionError) and cause.args and isinstance(cause.args[0], BaseException):
            cause = cause.args[0]
        else:
            cause = cause.__cause__ or cause.__context__
        seen += 1
    return False


class SesClient:
    """One SDK client per warm container; credentials re-read when the role rotates them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: Any = None
        self._credentials: tuple | None = None

    def _sdk_client(self):
        env = os.environ
        credentials = (env.get("TENCENTCLOUD_SECRETID", ""), env.get("TENCENTCLOUD_SECRETKEY", ""),
                       env.get("TENCENTCLOUD_SESSIONTOKEN") or None)
        if not credentials[0] or not credentials[1]:
            raise Unavailable("SES credentials are missing: the function needs a run role (SCF sets "
                              "TENCENTCLOUD_SECRETID/SECRETKEY/SESSIONTOKEN from it)",
                              code="ResourceUnavailable.NoCredentials")
        if self._client is None or credentials != self._credentials:
            from tencentcloud.common import credential
            from tencentcloud.common.profile.client_profile import ClientProfile
            from tencentcloud.common.profile.http_profile import HttpProfile
            from tencentcloud.ses.v20201002 import ses_client

            settings = self.settings
            http_profile = HttpProfile(protocol=settings.ses_protocol, endpoint=settings.ses_endpoint,
                                       reqTimeout=settings.ses_read_timeout, keepAlive=True)
            # English messages; the SDK's own retryer stays off (NoopRetryer): retries are ours.
            profile = ClientProfile(httpProfile=http_profile, language="en-US")
            self._client = ses_client.SesClient(credential.Credential(*credentials), settings.region, profile)
            self._credentials = credentials
        return self._client

    def call(self, action: str, params: dict, deadline: Deadline, limiter: Limiter | None = None) -> dict:
        """Call one SES action; the `Response` object on success, or one of our errors. With a
        `limiter` (sesmail.ratelimit), every attempt, retries included, waits for its slot."""
        if limiter is not None:
            # The SDK's first import and client take a while: done before the limiter counts the
            # request as sent, so that it leaves when the limiter believes it does.
            self._sdk_client()
        return retried(action, deadline, self.settings.ses_attempts,
                       lambda remaining: self._call_once(action, params, remaining), limiter)

    def _call_once(self, action: str, params: dict, remaining: float) -> dict:
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

        settings = self.settings
        client = self._sdk_client()
        # requests takes (connect, read); the SDK passes HttpProfile.reqTimeout through as is.
        client.request.conn.timeout = (min(settings.ses_connect_timeout, remaining),
                                       min(settings.ses_read_timeout, remaining))
        try:
            reply = client.call_json(action, params)
        except TencentCloudSDKException as exc:
            raise self._classify(action, exc) from exc
        except Exception as exc:  # reading or parsing the reply failed after the request went out
            raise OutcomeUnknown(f"SES {action}: the reply could not be read; the outcome is unknown",
                                 ) from exc
        response = reply.get("Response") if isinstance(reply, dict) else None
        if not isinstance(response, dict):
            raise OutcomeUnknown(f"SES {action}: the reply had no Response object; the outcome is unknown")
        error = response.get("Error")
        if isinstance(error, dict):
            # The SDK skips error replies whose Content-Type is not exactly application/json.
            raise self._classify(action, TencentCloudSDKException(
                str(error.get("Code")), str(error.get("Message")), response.get("RequestId")))
        return response

    def _classify(self, action: str, exc: Any) -> Exception:
        code = str(exc.code or "")
        if code in RETRYABLE_CODES:
            return NotSent(SesRefused(code, f"SES {action} was not applied ({code})", exc.requestId))
        if code == "ClientNetworkError":
            if _not_sent_cause(exc):
                return NotSent(Unavailable(f"SES {action}: could not connect to SES",
                                           code="ResourceUnavailable.SesUnreachable"))
            return OutcomeUnknown(f"SES {action}: the connection failed after the request was sent "
                                  "(dropped or timed out); the outcome is unknown")
        if code == "ServerNetworkError":
            # Non-200 HTTP status; the message is the raw reply body (bytes) and is not passed on.
            return OutcomeUnknown(f"SES {action}: SES answered with an HTTP error; the outcome is unknown")
        if code.startswith("InternalError"):
            return OutcomeUnknown(f"SES {action}: SES reported {code}; the outcome is unknown", code=code)
        if code in _LOCAL_CODES:
            return Unavailable(f"SES {action}: the SDK refused the call before sending ({code})",
                               code="ResourceUnavailable.SesClient")
        if exc.requestId is None:
            # The SDK names non-API failures after the exception class (reading the reply failed).
            return OutcomeUnknown(f"SES {action}: the reply could not be read; the outcome is unknown")
        message = str(exc.message or code)
        return SesRefused(code, message, exc.requestId)


class ApiTransport:
    """SendEmail through SES's API (sesmail.transport): SES assigns the MessageId in its answer."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def prepare(self, params: dict) -> Outgoing:
        return Outgoing(params)  # the API takes every payload the rules accept

    def send(self, mail: Outgoing, deadline: Deadline) -> str:
        reply = client_for(self.settings).call("SendEmail", mail.params, deadline)
        message_id = reply.get("MessageId")
        if not isinstance(message_id, str) or not message_id:
            # The SDK's Content-Type trap: an error reply it did not read looks like a success.
            raise OutcomeUnknown("SES SendEmail answered without a MessageId; the outcome is unknown")
        log.note(MessageId=message_id, SesRequestId=reply.get("RequestId"))
        return message_id


_clients: dict[int, SesClient] = {}


def client_for(settings: Settings) -> SesClient:
    """The warm container's client for these settings."""
    client = _clients.get(id(settings))
    if client is None or client.settings is not settings:
        client = _clients[id(settings)] = SesClient(settings)
    return client


def reset() -> None:
    """Forget the warm container's clients (tests switch endpoints and settings between cases)."""
    _clients.clear()
