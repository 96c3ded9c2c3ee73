"""Fixtures of the fault-injection suite, and its figures printed at the end of the run."""

from __future__ import annotations

import pytest

from sesmail import config, store
from tests.fuzz.harness import Figures, figures_of, postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, env, monkeypatch):
    """The store's database: the env fixture's SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield request.param, env["SESMAIL_DATABASE_URL"]
        return
    with postgres_database() as url:
        monkeypatch.setenv("SESMAIL_DATABASE_URL", url)
        config.reset()
        store.reset()
        yield request.param, url
        store.reset()


@pytest.fixture
def fault_figures(request) -> Figures:
    return figures_of(request.config, "_sesmail_fault_figures")


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    figures = getattr(config, "_sesmail_fault_figures", None)
    if figures is not None and (figures.counts or figures.notes):
        terminalreporter.section("sesmail fault-injection figures")
        for line in figures.lines():
            terminalreporter.write_line(line)
