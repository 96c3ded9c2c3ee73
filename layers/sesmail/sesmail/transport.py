"""How a SendEmail reaches SES: one interface, two transports, one retry policy.

`transport_for(settings)` picks the transport `SESMAIL_TRANSPORT` names: SES's API
(`sesmail.ses.ApiTransport`, the default) or its SMTP interface (`sesmail.smtp.SmtpTransport`,
imported only then). Each `prepare`s a validated payload, refusing what it cannot carry before
anything is stored, and `send`s it within the invocation's deadline, answering its MessageId.

SES's SendEmail is not idempotent: a retry after a lost reply sends twice. So `retried` repeats
only failures that provably sent nothing (a transport raises them as `NotSent`), with jittered
backoff, at most `SESMAIL_SES_ATTEMPTS` times and never past the deadline. Anything that leaves
the outcome open is raised as OutcomeUnknown and never repeated (docs/reliability.md#retries).
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Callable, Protocol, TypeVar

from . import log
from .errors import SesmailError, Unavailable

if TYPE_CHECKING:
    from .config import Settings
    from .deadline import Deadline
    from .ratelimit import Limiter

__all__ = ["NotSent", "Outgoing", "Transport", "doubt_answer", "retried", "transport_for"]

# Time kept back from the function's limit to answer the caller and write the record.
SAFETY_MARGIN_S = 1.0
# Below this, a call is not started at all: it could not finish.
MIN_CALL_S = 0.5
BACKOFF_BASE_S = 0.2
BACKOFF_CAP_S = 2.0
# The idempotency record's field for a MessageId chosen before sending (SMTP's Message-ID).
_CHOSEN_ID = "SmtpMessageId"

T = TypeVar("T")


class NotSent(Exception):
    """A failure that provably sent nothing, so another attempt is safe. `final` is the error the
    caller gets once no attempt is left: NotSent itself never leaves `retried`."""

    def __init__(self, final: SesmailError) -> None:
        super().__init__(str(final))
        self.final = final


def retried(action: str, deadline: Deadline, attempts: int, once: Callable[[float], T],
            limiter: Limiter | None = None) -> T:
    """`once(seconds)` until it answers: again after a NotSent, up to `attempts` times, with a
    jittered pause, and only while a call still fits before the deadline. `seconds` is the time
    the call may take. With a `limiter` (sesmail.ratelimit), every attempt waits for its slot."""
    for attempt in range(1, attempts + 1):
        if limiter is not None and not limiter.acquire(deadline.at - SAFETY_MARGIN_S - MIN_CALL_S):
            raise Unavailable(f"no slot under SES's rate limit for {action} within the function's time limit",
                              code="ResourceUnavailable.RateLimited", retry_after=1)
        remaining = deadline.remaining() - SAFETY_MARGIN_S
        if remaining < MIN_CALL_S:
            # Nothing was asked of SES: a new request, with a time limit of its own, may be sent at once.
            raise Unavailable(f"no time left for SES {action} within the function's time limit",
                              code="ResourceUnavailable.Timeout", retry_after=1)
        try:
            return once(remaining)
        except NotSent as retry:
            if attempt == attempts:
                raise retry.final from retry.__cause__
            pause = random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** attempt))
            if deadline.remaining() - SAFETY_MARGIN_S - pause < MIN_CALL_S:
                raise retry.final from retry.__cause__
            if limiter is not None and retry.final.code.startswith("RequestLimitExceeded"):
                limiter.penalize(1.0)  # another instance is sending too: everyone slows down
            log.warning("SES call not applied, retrying", Action=action, Code=retry.final.code,
                        Attempt=attempt, PauseSeconds=round(pause, 3))
            time.sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover


class Outgoing:
    """A validated SendEmail as its transport prepared it. `message_id` is set when the transport
    chooses the id before sending (SMTP's Message-ID: SES's SMTP reply carries no MessageId);
    over the API, SES assigns it in its answer."""

    def __init__(self, params: dict, message_id: str | None = None) -> None:
        self.params, self.message_id = params, message_id

    def remembered(self) -> dict:
        """What an idempotency record keeps of this mail so that a doubt answers as it would have."""
        return {} if self.message_id is None else {_CHOSEN_ID: self.message_id}


def doubt_answer(attempt: dict, row_message_id: str) -> str:
    """The MessageId a doubt resolved as sent answers with: the one chosen before sending, else
    SES's own from its status row (docs/reliability.md#doubt)."""
    return str(attempt.get(_CHOSEN_ID) or row_message_id)


class Transport(Protocol):
    """SES's API or its SMTP interface, behind one pair of methods."""

    def prepare(self, params: dict) -> Outgoing:
        """Refuse (InvalidInput) what this transport cannot carry; called before anything is stored."""
        ...

    def send(self, mail: Outgoing, deadline: Deadline) -> str:
        """Send `mail`, retried only while provably not sent; its MessageId. Raises OutcomeUnknown
        when SES may have sent it, any other SesmailError when it certainly did not."""
        ...


def transport_for(settings: Settings) -> Transport:
    """The transport `SESMAIL_TRANSPORT` names (docs/configuration.md), made once per settings."""
    global _chosen
    if _chosen is not None and _chosen[0] is settings:
        return _chosen[1]
    chosen: Transport
    if settings.transport == "smtp":
        from .smtp import SmtpTransport

        chosen = SmtpTransport(settings)
    else:
        from .ses import ApiTransport

        chosen = ApiTransport(settings)
    _chosen = (settings, chosen)
    return chosen


_chosen: tuple[Settings, Transport] | None = None  # the warm container's settings and their transport
