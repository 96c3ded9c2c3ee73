"""Fixtures of the emulator tests: an emulator set up like the local stack's, on a clock the test moves."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest

from tests.local.helpers import make_client, no_proxy, stack_emulator

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BEIJING = timezone(timedelta(hours=8))


class Clock:
    """A clock that moves only when told to."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    no_proxy(monkeypatch)


@pytest.fixture
def clean_env(monkeypatch):
    """No SESMAIL_ or TENCENTCLOUD_ variable and no HTTP proxy: the local stack as on a fresh machine."""
    for name in list(os.environ):
        if name.startswith(("SESMAIL_", "TENCENTCLOUD_")) or name.lower() in ("http_proxy", "https_proxy"):
            monkeypatch.delenv(name)


@pytest.fixture
def clock():
    return Clock(datetime(2026, 5, 1, 10, 0, tzinfo=BEIJING).timestamp())


@pytest.fixture
def ses(clock, tmp_path):
    """The repo's templates approved and checked, one known sender, the test's clock."""
    with stack_emulator(data_dir=str(tmp_path / "emulator"), clock=clock) as emu:
        yield emu


@pytest.fixture
def client(ses):
    return make_client(ses)
