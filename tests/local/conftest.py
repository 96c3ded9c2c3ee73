"""Fixtures of the emulator tests: an emulator set up like the local stack's, on a clock the test moves."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest

from local.ses_emulator import SesEmulator
from tests.local.helpers import SECRET_ID, SECRET_KEY, make_client

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
    # The SDK and requests both honour *_PROXY; a local emulator must be reached directly.
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
                "SESMAIL_EMULATOR_CHAOS"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def clock():
    return Clock(datetime(2026, 5, 1, 10, 0, tzinfo=BEIJING).timestamp())


@pytest.fixture
def ses(clock, tmp_path):
    """The repo's templates approved and checked, one known sender, the test's clock."""
    emu = SesEmulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, templates_dir=os.path.join(ROOT, "templates"),
                      data_dir=str(tmp_path / "emulator"))
    emu.clock = clock
    emu.template_check = True
    emu.senders = {"noreply@sesmail.local"}
    emu.start()
    yield emu
    emu.stop()
    emu.store.close()


@pytest.fixture
def client(ses):
    return make_client(ses)
