"""Shared fixtures: an SES emulator over real HTTP, a clean environment, the functions."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys

import pytest

from local.ses_emulator import SesEmulator
from sesmail import config, log, policy, ses, store

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A machine that booted a moment ago: `time.monotonic()` starts near 0 there, and a test that mixes
# a fake clock with the real one fails only on such a machine. `SESMAIL_TEST_UPTIME=<seconds>` makes
# this test process see the machine as up that long (CI sets 60, so the clock cannot matter).
if os.environ.get("SESMAIL_TEST_UPTIME"):
    import time as _time

    _real_monotonic = _time.monotonic
    _boot = _real_monotonic() - float(os.environ["SESMAIL_TEST_UPTIME"])
    _time.monotonic = lambda: _real_monotonic() - _boot
SECRET_ID, SECRET_KEY = "AKIDtest", "test-secret-key"


SECRETS = (SECRET_KEY, "dev-key", "web-key-1", "web-key-2", "hook-secret-1", "hook-secret-2", "role-token")
# An address as it must never appear in a log line: masked ones read `a***@example.com`.
FULL_ADDRESS = re.compile(r"[A-Za-z0-9._%+-]*[A-Za-z0-9_%+-]@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


@pytest.fixture(autouse=True)
def clean_logs(monkeypatch):
    """Every log line of every test is checked: no secret, no unmasked address (docs/security.md)."""
    write = log._write
    dirty: list[str] = []

    def checked(level, message, fields):
        write(level, message, fields)
        line = log._encode(dict(fields, Message=message, **log.context()))
        if any(secret in line for secret in SECRETS) or FULL_ADDRESS.search(line.replace("***@", "")):
            dirty.append(line)

    monkeypatch.setattr(log, "_write", checked)
    yield
    assert not dirty, f"a log line carries a secret or a full address: {dirty[:3]}"


@pytest.fixture(scope="session")
def emulator():
    emu = SesEmulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, port=0).start()
    yield emu
    emu.stop()


@pytest.fixture
def ses_fake(emulator):
    emulator.reset()
    yield emulator
    emulator.reset()


@pytest.fixture
def env(monkeypatch, tmp_path, ses_fake):
    """The environment an SCF function sees, pointed at the emulator and a fresh SQLite file."""
    for name in list(os.environ):
        if name.startswith(("SESMAIL_", "TENCENTCLOUD_")):
            monkeypatch.delenv(name)
    settings_file = tmp_path / "sesmail.json"
    settings_file.write_text(json.dumps({"Templates": {"welcome": 100091}}))
    values = {
        "TENCENTCLOUD_SECRETID": SECRET_ID,
        "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
        "SESMAIL_SES_ENDPOINT": ses_fake.endpoint,
        "SESMAIL_SES_PROTOCOL": "http",
        "SESMAIL_API_KEYS": "dev-key,web=web-key-1,web=web-key-2",
        "SESMAIL_WEBHOOK_SECRETS": "hook-secret-1,hook-secret-2",
        "SESMAIL_DATABASE_URL": f"sqlite:///{tmp_path}/sesmail.sqlite3",
        "SESMAIL_CONFIG": str(settings_file),
        "NO_PROXY": f"127.0.0.1,127.0.0.1:{ses_fake.port},localhost",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    monkeypatch.delenv("http_proxy", raising=False)
    config.reset()
    store.reset()
    policy.reset()
    ses.reset()
    yield values
    config.reset()
    store.reset()
    ses.reset()


def load_function(name: str):
    """functions/<name>/index.py as SCF loads it (each function's module is called `index`)."""
    path = os.path.join(ROOT, "functions", name, "index.py")
    spec = importlib.util.spec_from_file_location(f"functions_{name}_index", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def send(env):
    """The send function's main_handler."""
    return load_function("send").main_handler


@pytest.fixture
def webhook(env):
    """The webhook function's main_handler."""
    return load_function("webhook").main_handler


@pytest.fixture
def synced_config(tmp_path, monkeypatch):
    """The repository's sesmail.json as `make sync` leaves it (its templates' IDs written in), in the
    test's folder, where `make deploy` reads it."""
    from deploy import scf

    with open(os.path.join(ROOT, "sesmail.json"), encoding="utf-8") as handle:
        settings = json.load(handle)
    settings["Templates"] = {"welcome": 1, "code": 2, "order": 3, "digest": 4}
    path = tmp_path / "sesmail.json"
    path.write_text(json.dumps(settings))
    monkeypatch.setattr(scf, "CONFIG_FILE", str(path))
    return path
