"""Errors a caller can act on, each with its Tencent Cloud error code and HTTP status (docs/api.md#errors).

Messages name fields and rules, never the values: addresses and template data are personal data.
"""

from __future__ import annotations

__all__ = [
    "ClientRateLimited",
    "ConfigError",
    "DigestNotAllowed",
    "Forbidden",
    "HeaderNotAllowed",
    "IdempotencyConflict",
    "IdempotencyInFlight",
    "InternalFailure",
    "InvalidInput",
    "MethodNotAllowed",
    "NotFound",
    "OriginNotAllowed",
    "OutcomeInDoubt",
    "OutcomeUnknown",
    "PayloadTooLarge",
    "PolicyRefusal",
    "ReceiverNotAllowed",
    "RecipientBusy",
    "RecipientRateLimited",
    "ReplyToNotAllowed",
    "ScopeNotAllowed",
    "SenderNotAllowed",
    "SesRefused",
    "SesmailError",
    "StoreUnavailable",
    "TemplateNotAllowed",
    "TooManyRecipients",
    "Unauthorized",
    "Unavailable",
    "status_for_ses_code",
]


class SesmailError(Exception):
    """Base: rendered as {"Error": {"Code", "Message", "Field"?}, "RequestId"} with STATUS."""

    STATUS = 400
    CODE = "InvalidParameter"
    OUTCOME: str | None = None  # "NotSent" / "Unknown" on 5xx, so a caller knows whether to retry

    def __init__(self, message: str, field: str | None = None, code: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code or self.CODE
        self.status = self.STATUS
        self.retry_after = retry_after

    def to_error(self) -> dict:
        error = {"Code": self.code, "Message": self.message}
        if self.field:
            error["Field"] = self.field
        if self.OUTCOME and self.status >= 500:
            error["Outcome"] = self.OUTCOME
        return error


class InvalidInput(SesmailError):
    """The payload breaks an SES rule; `code` is SES's own code for that rule."""


class Unauthorized(SesmailError):
    STATUS = 401
    CODE = "AuthFailure.InvalidAuthorization"


class Forbidden(SesmailError):
    STATUS = 403
    CODE = "AuthFailure.UnauthorizedOperation"


class PolicyRefusal(Forbidden):
    """A route outside the key's scopes, or a field outside its client's policy (config `Clients`).
    The message names the rule and `Field` the field, never the value that broke it."""

    CODE = "UnauthorizedOperation"


class ScopeNotAllowed(PolicyRefusal):
    CODE = "UnauthorizedOperation.ScopeNotAllowed"


class OriginNotAllowed(PolicyRefusal):
    CODE = "UnauthorizedOperation.OriginNotAllowed"


class TemplateNotAllowed(PolicyRefusal):
    CODE = "UnauthorizedOperation.TemplateNotAllowed"


class SenderNotAllowed(PolicyRefusal):
    CODE = "UnauthorizedOperation.SenderNotAllowed"


class ReplyToNotAllowed(PolicyRefusal):
    CODE = "UnauthorizedOperation.ReplyToNotAllowed"


class HeaderNotAllowed(PolicyRefusal):
    CODE = "UnauthorizedOperation.HeaderNotAllowed"


class DigestNotAllowed(PolicyRefusal):
    CODE = "UnauthorizedOperation.DigestNotAllowed"


class ReceiverNotAllowed(PolicyRefusal):
    CODE = "UnauthorizedOperation.ReceiverNotAllowed"


class TooManyRecipients(PolicyRefusal):
    CODE = "UnauthorizedOperation.TooManyRecipients"


class ClientRateLimited(SesmailError):
    """The client's `RequestsPerMinute`: retry after Retry-After."""

    STATUS = 429
    CODE = "RequestLimitExceeded.ClientRate"


class RecipientRateLimited(SesmailError):
    """The client's `MailsPerRecipientPerHour` (SES's own code for its per-recipient limit)."""

    STATUS = 429
    CODE = "FailedOperation.FrequencyLimit"


class NotFound(SesmailError):
    STATUS = 404
    CODE = "ResourceNotFound"


class MethodNotAllowed(SesmailError):
    STATUS = 405
    CODE = "UnsupportedOperation"


class IdempotencyConflict(SesmailError):
    """The Idempotency-Key was used before with another body."""

    STATUS = 409
    CODE = "ResourceInUse.IdempotencyKeyReused"


class IdempotencyInFlight(SesmailError):
    """The first request with this Idempotency-Key is still running: retry after a while."""

    STATUS = 409
    CODE = "ResourceInUse.IdempotencyKeyInFlight"


class PayloadTooLarge(SesmailError):
    STATUS = 413
    CODE = "RequestSizeLimitExceeded"


class InternalFailure(SesmailError):
    """A bug of ours: logged by type, answered without detail."""

    STATUS = 500
    CODE = "InternalError"


class ConfigError(SesmailError, ValueError):
    """The config file (or a `SESMAIL_*` variable) breaks a rule. `str()` names the file, the path
    (`Clients.web.Scopes[1]`) and the rule, for the log and for `make dev` / `make deploy`; a caller
    is told only that the service is misconfigured."""

    STATUS = 500
    CODE = "InternalError.InvalidConfiguration"

    def __init__(self, source: str, path: str, rule: str) -> None:
        super().__init__("the service's configuration is invalid; its operator must fix it (the log says where)")
        self.source, self.path, self.rule = source, path, rule

    def __str__(self) -> str:
        return f"{self.source}: {self.path}: {self.rule}" if self.path else f"{self.source}: {self.rule}"


class Unavailable(SesmailError):
    """SES could not be reached, or refused for a reason that provably did not send: safe to retry."""

    STATUS = 503
    CODE = "ResourceUnavailable"
    OUTCOME = "NotSent"


class RecipientBusy(Unavailable):
    """Another attempt to the same recipient from the same sender is in flight or in doubt; this
    one was not sent, and its Idempotency-Key (if any) is free: retry after Retry-After."""

    CODE = "ResourceInUse.OutcomeInDoubt"


class StoreUnavailable(Unavailable):
    CODE = "ResourceUnavailable.Store"


class OutcomeUnknown(SesmailError):
    """SES may or may not have sent: SendEmail is not idempotent, so this is never retried blindly.

    The Idempotency-Key (if any) stays "in doubt"; repeating the request with the same key resolves
    the doubt through GetSendEmailStatus before anything is sent again.
    """

    STATUS = 503
    CODE = "InternalError.OutcomeUnknown"
    OUTCOME = "Unknown"


class OutcomeInDoubt(OutcomeUnknown):
    """A repeat of an in-doubt request came before SES's status index could settle the question."""

    CODE = "ResourceInUse.OutcomeInDoubt"


class SesRefused(SesmailError):
    """SES answered with an error that did not send the mail; its code is passed through."""

    OUTCOME = "NotSent"

    def __init__(self, code: str, message: str, request_id: str | None = None) -> None:
        super().__init__(message, code=code)
        self.status = status_for_ses_code(code)
        self.ses_request_id = request_id


# SES (and Tencent Cloud common) error code prefix -> HTTP status for the caller. Longest prefix
# wins. Credential and CAM failures are ours, not the caller's, hence 502: the operator must fix
# the function's run role. Source of the codes: SES's error code list (docs/ses.md#errors) and the SDK's errorcodes.py.
_STATUS_BY_CODE_PREFIX = {
    "AuthFailure": 502,
    "UnauthorizedOperation": 502,
    "InvalidParameter": 400,
    "InvalidParameterValue": 400,
    "MissingParameter": 400,
    "UnknownParameter": 400,
    "UnsupportedOperation": 400,
    "FailedOperation": 400,
    "FailedOperation.EmailAddrInBlacklist": 403,
    "FailedOperation.ReceiverHasUnsubscribed": 403,
    "FailedOperation.RejectedByRecipients": 403,
    "FailedOperation.NoAttachPermission": 403,
    "FailedOperation.HighRejectionRate": 403,
    "FailedOperation.TemporaryBlocked": 403,
    "FailedOperation.InsufficientBalance": 403,
    "FailedOperation.InsufficientQuota": 403,
    "FailedOperation.NotAuthenticatedSender": 403,
    "FailedOperation.WithOutPermission": 403,
    "FailedOperation.FrequencyLimit": 429,
    "FailedOperation.ExceedSendLimit": 429,
    "FailedOperation.ServiceNotAvailable": 503,
    "OperationDenied": 403,
    "LimitExceeded": 429,
    "RequestLimitExceeded": 429,
    "ResourceNotFound": 404,
    "ResourceUnavailable": 503,
    "ResourceInsufficient": 503,
    "ServiceUnavailable": 503,
    "InternalError": 503,
}


def status_for_ses_code(code: str) -> int:
    probe = code
    while probe:
        status = _STATUS_BY_CODE_PREFIX.get(probe)
        if status is not None:
            return status
        probe = probe.rpartition(".")[0]
    return 502
