"""The retry policy both transports share (sesmail.transport), on a fake clock: what is repeated,
how often, never past the deadline, and which transport the settings pick."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sesmail import transport
from sesmail.deadline import Deadline
from sesmail.errors import OutcomeUnknown, SesRefused, Unavailable
from sesmail.transport import NotSent, retried


class Clock:
    """The transport module's time.sleep: sleeping moves this clock, which deadlines read."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def deadline(self, limit_ms: float) -> Deadline:
        return FakeDeadline(self, limit_ms)


class FakeDeadline(Deadline):
    __slots__ = ("clock",)

    def __init__(self, clock: Clock, limit_ms: float) -> None:
        super().__init__(limit_ms, started=clock.now)
        self.clock = clock

    def remaining(self) -> float:
        return self.at - self.clock.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(transport, "time", SimpleNamespace(sleep=fake.sleep))
    return fake


def failing(*outcomes):
    """A call that raises each of `outcomes` in turn (an exception) or returns it."""
    calls: list[float] = []

    def once(seconds: float):
        calls.append(seconds)
        outcome = outcomes[len(calls) - 1]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    once.calls = calls  # type: ignore[attr-defined]
    return once


def throttled() -> NotSent:
    return NotSent(SesRefused("RequestLimitExceeded", "SES SendEmail was not applied (RequestLimitExceeded)"))


def test_a_failure_that_provably_did_not_send_is_retried_until_it_answers(clock):
    once = failing(throttled(), throttled(), {"MessageId": "m"})
    assert retried("SendEmail", clock.deadline(20_000), 4, once) == {"MessageId": "m"}
    assert len(once.calls) == 3 and len(clock.slept) == 2
    # Jittered, exponential, capped: attempt n pauses up to min(cap, base * 2**n).
    assert all(0 <= pause <= min(transport.BACKOFF_CAP_S, transport.BACKOFF_BASE_S * 2 ** n)
               for n, pause in enumerate(clock.slept, start=1))
    # Each attempt may take what is left, less the margin kept to answer.
    assert once.calls[0] == pytest.approx(20.0 - transport.SAFETY_MARGIN_S)


def test_the_last_attempts_error_is_the_callers(clock):
    once = failing(*(throttled() for _ in range(3)))
    with pytest.raises(SesRefused) as raised:
        retried("SendEmail", clock.deadline(20_000), 3, once)
    assert raised.value.code == "RequestLimitExceeded" and len(once.calls) == 3


@pytest.mark.parametrize("error", [OutcomeUnknown("lost"), SesRefused("FailedOperation", "no"), ValueError("bug")])
def test_anything_else_is_never_retried(clock, error):
    once = failing(error, {"MessageId": "m"})
    with pytest.raises(type(error)):
        retried("SendEmail", clock.deadline(20_000), 4, once)
    assert len(once.calls) == 1 and clock.slept == []


def test_no_call_is_started_without_the_time_to_finish_it(clock):
    once = failing({"MessageId": "m"})
    deadline = clock.deadline(transport.SAFETY_MARGIN_S * 1000 + transport.MIN_CALL_S * 1000 - 1)
    with pytest.raises(Unavailable) as raised:
        retried("SMTP", deadline, 4, once)
    assert raised.value.code == "ResourceUnavailable.Timeout" and once.calls == []
    assert raised.value.message == "no time left for SES SMTP within the function's time limit"


def test_no_pause_runs_past_the_deadline(clock, monkeypatch):
    monkeypatch.setattr(transport.random, "uniform", lambda low, high: high)
    monkeypatch.setattr(transport, "BACKOFF_BASE_S", 1.0)
    monkeypatch.setattr(transport, "BACKOFF_CAP_S", 1.0)
    # 2.4 s: one call fits (1 s margin, 0.5 s minimum), a 1 s pause and another do not.
    once = failing(throttled(), {"MessageId": "m"})
    with pytest.raises(SesRefused):
        retried("SendEmail", clock.deadline(2_400), 4, once)
    assert len(once.calls) == 1 and clock.slept == []


class Limiter:
    def __init__(self, grant: bool = True) -> None:
        self.grant, self.asked, self.penalties = grant, 0, []

    def acquire(self, deadline_monotonic: float) -> bool:
        self.asked += 1
        return self.grant

    def penalize(self, seconds: float) -> None:
        self.penalties.append(seconds)


def test_every_attempt_waits_for_a_slot_and_throttling_slows_everyone(clock):
    limiter = Limiter()
    unreachable = NotSent(Unavailable("could not connect", code="ResourceUnavailable.SesUnreachable"))
    once = failing(throttled(), unreachable, {"MessageId": "m"})
    assert retried("SendEmail", clock.deadline(20_000), 4, once, limiter) == {"MessageId": "m"}
    assert limiter.asked == 3 and limiter.penalties == [1.0]  # only RequestLimitExceeded penalises


def test_no_slot_before_the_deadline_sends_nothing(clock):
    once = failing({"MessageId": "m"})
    with pytest.raises(Unavailable) as raised:
        retried("SendEmail", clock.deadline(20_000), 4, once, Limiter(grant=False))
    assert raised.value.code == "ResourceUnavailable.RateLimited" and once.calls == []


def test_the_settings_pick_the_transport():
    from sesmail.ses import ApiTransport
    from sesmail.smtp import SmtpTransport

    api = transport.transport_for(SimpleNamespace(transport="api", ses_attempts=4))  # type: ignore[arg-type]
    smtp = transport.transport_for(SimpleNamespace(transport="smtp", ses_attempts=4))  # type: ignore[arg-type]
    assert isinstance(api, ApiTransport) and isinstance(smtp, SmtpTransport)


def test_a_mail_whose_id_is_chosen_before_sending_answers_its_doubt_with_it():
    api_mail, smtp_mail = transport.Outgoing({}), transport.Outgoing({}, message_id="id@shop.example")
    assert api_mail.remembered() == {}
    assert transport.doubt_answer(api_mail.remembered(), "ses-id") == "ses-id"
    assert transport.doubt_answer(smtp_mail.remembered(), "ses-id") == "id@shop.example"
