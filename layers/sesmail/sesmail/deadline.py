"""When an invocation must have answered.

SCF hands a Python function its limit as `time_limit_in_ms` in the context dict, with no
remaining-time method, so the clock starts when the handler does (docs/ses.md#scf-runtime).
"""

from __future__ import annotations

import time

__all__ = ["Deadline"]


class Deadline:
    """The invocation's time limit as a point on the monotonic clock."""

    __slots__ = ("at", "limit_s", "started")

    def __init__(self, time_limit_ms: float, started: float | None = None) -> None:
        self.started = time.monotonic() if started is None else started
        self.limit_s = time_limit_ms / 1000.0
        self.at = self.started + self.limit_s

    def remaining(self) -> float:
        """Seconds left until the limit (negative once past it)."""
        return self.at - time.monotonic()
