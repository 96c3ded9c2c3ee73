"""The local stack: the SES emulator and the functions behind one gateway, no Tencent account.

`make dev` runs `python -m local`, which calls `main()`. Tests start the same stack on free ports
with `Stack(gateway_port=0, emulator_port=0)`.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time

from .gateway import Gateway
from .ses_emulator import SesEmulator

__all__ = ["LOCAL_SECRET_ID", "LOCAL_SECRET_KEY", "Stack", "main"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCAL_SECRET_ID = "AKIDlocal"
LOCAL_SECRET_KEY = "local-secret-key"
FUNCTIONS = ("send",)  # batch and webhook join as their issues land


def _load(name: str):
    path = os.path.join(ROOT, "functions", name, "index.py")
    spec = importlib.util.spec_from_file_location(f"functions_{name}_index", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.main_handler


class Stack:
    def __init__(self, gateway_port: int = 8080, emulator_port: int = 8090, data_dir: str | None = None) -> None:
        self.data_dir = data_dir or os.path.join(ROOT, ".local-data")
        self.emulator = SesEmulator(secret_id=LOCAL_SECRET_ID, secret_key=LOCAL_SECRET_KEY, port=emulator_port)
        self.gateway_port = gateway_port
        self.gateway: Gateway | None = None

    def environment(self) -> dict[str, str]:
        """What the functions read, pointed at the emulator; a variable already set wins."""
        return {
            "TENCENTCLOUD_SECRETID": LOCAL_SECRET_ID,
            "TENCENTCLOUD_SECRETKEY": LOCAL_SECRET_KEY,
            "SESMAIL_SES_ENDPOINT": self.emulator.endpoint,
            "SESMAIL_SES_PROTOCOL": "http",
            "SESMAIL_API_KEYS": "dev-key",
            "SESMAIL_DATABASE_URL": "sqlite:///" + os.path.join(self.data_dir, "sesmail.sqlite3"),
        }

    def start(self) -> Stack:
        from sesmail import config

        self.emulator.start()
        os.makedirs(self.data_dir, exist_ok=True)
        for name, value in self.environment().items():
            if name.startswith(("SESMAIL_SES_", "TENCENTCLOUD_")):
                os.environ[name] = value  # always the emulator's: never a real account by accident
            else:
                os.environ.setdefault(name, value)
        no_proxy = os.environ.get("NO_PROXY", "")
        os.environ["NO_PROXY"] = ",".join(filter(None, [no_proxy, "127.0.0.1", self.emulator.endpoint]))
        config.reset()
        self.gateway = Gateway({name: _load(name) for name in FUNCTIONS}, port=self.gateway_port).start()
        return self

    def stop(self) -> None:
        if self.gateway:
            self.gateway.stop()
        self.emulator.stop()


def main() -> None:
    stack = Stack().start()
    assert stack.gateway
    print(f"sesmail local stack\n  functions: {stack.gateway.url} (send)\n"
          f"  SES emulator: http://{stack.emulator.endpoint}\n  API key: {os.environ['SESMAIL_API_KEYS']}\n"
          "Try:\n"
          f"  curl -s {stack.gateway.url}/send -H 'Authorization: Bearer dev-key' \\\n"
          "    -d '{\"FromEmailAddress\": \"noreply@example.com\", \"Destination\": [\"user@example.com\"],"
          " \"Subject\": \"Hello\", \"Template\": {\"TemplateID\": 1, \"TemplateData\": {\"name\": \"Ada\"}}}'\n"
          "Ctrl-C stops it.", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        stack.stop()
