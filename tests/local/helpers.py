"""The real SDK pointed at an emulator, and the few calls the emulator tests share."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional

import pytest
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.ses.v20201002 import ses_client

from local.ses_emulator import SesEmulator
from tests.conftest import ROOT

SECRET_ID = "AKIDlocal"
SECRET_KEY = "local-secret-key"


def no_proxy(monkeypatch) -> None:
    """The SDK and requests both honour *_PROXY; a local emulator must be reached directly (and
    without the chaos the local stack would read)."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
                "SESMAIL_EMULATOR_CHAOS"):
        monkeypatch.delenv(var, raising=False)


@contextlib.contextmanager
def stack_emulator(data_dir: Optional[str] = None,
                   clock: Optional[Callable[[], float]] = None) -> Iterator[SesEmulator]:
    """An SES emulator set up like the local stack's: the repo's templates approved and checked, one
    known sender (noreply@sesmail.local); started on a free port, stopped and its store closed after."""
    emu = SesEmulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, templates_dir=os.path.join(ROOT, "templates"),
                      data_dir=data_dir)
    if clock is not None:
        emu.clock = clock
    emu.template_check = True
    emu.senders = {"noreply@sesmail.local"}
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()
        emu.store.close()


def make_client(emu, timeout: float = 10) -> ses_client.SesClient:
    hp = HttpProfile(endpoint=emu.endpoint, protocol="http", reqTimeout=timeout)
    return ses_client.SesClient(credential.Credential(SECRET_ID, SECRET_KEY), "ap-guangzhou",
                                ClientProfile(httpProfile=hp, language="en-US"))


def call(client, action: str, params: dict[str, Any]) -> dict[str, Any]:
    """One action through the SDK's generic JSON call; the Response object without RequestId."""
    response = client.call_json(action, params)["Response"]
    response.pop("RequestId")
    return response


def code_of(client, action: str, params: dict[str, Any]) -> str:
    with pytest.raises(TencentCloudSDKException) as info:
        client.call_json(action, params)
    return info.value.code


def template_data(**values: Any) -> str:
    return json.dumps(values)


class Receiver:
    """An HTTP endpoint that records JSON POSTs (a callback receiver), answering with `statuses` in turn."""

    def __init__(self, statuses: tuple[int, ...] = (200,)) -> None:
        self.bodies: list[Any] = []
        self.statuses = list(statuses)
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.arrived:
                    status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                    if status == 200:
                        receiver.bodies.append(json.loads(body))
                    receiver.content_types.append(self.headers.get("Content-Type"))
                    receiver.arrived.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.content_types: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhook?token=t"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Any]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.bodies) >= count, timeout)
        return list(self.bodies)

    def attempts(self) -> int:
        with self.arrived:
            return len(self.content_types)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check, timeout: float = 30.0, what: str = "the stack"):
    """Poll until `check()` returns something true; no test asserts on how long that takes."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
