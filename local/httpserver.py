"""The HTTP plumbing the SES emulator and the SCF fake share: a threaded server that tracks its
connections (so `stop` frees handler threads parked on idle keep-alive connections), a handler
base with keep-alive and no Nagle, and the thread that serves it.

It imports no other module of the local stack: `ses_emulator` and `scf_emulator` both import it.
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple, Optional, TypeVar

__all__ = ["Handler", "Reply", "Served", "Server", "serve", "shut"]

_Self = TypeVar("_Self", bound="Served")


class Reply(NamedTuple):
    status: int
    content_type: str
    body: bytes
    drop: bool = False  # close the connection instead of answering
    delay: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()


class Handler(BaseHTTPRequestHandler):
    """Connection handling only; a subclass answers (`do_POST`…) and names itself (`server_version`)."""

    # HTTP/1.1 keep-alive without Nagle: otherwise Nagle + delayed ACK stall each reply on a
    # reused connection by ~40 ms (headers and body go out as two writes).
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 300  # idle keep-alive connections of abandoned clients eventually free their thread
    server: Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request on stderr drowns test and dev output

    def _body(self) -> Optional[bytes]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.send_error(400, "bad Content-Length")
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, reply: Reply) -> None:
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers:
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)
        except OSError:  # the client gave up (e.g. read timeout during a delay fault)
            self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: Any, handler: type[Handler]) -> None:
        self.emulator = emulator  # what the handler answers for: the SesEmulator or the ScfEmulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def track(self, conn: socket.socket, alive: bool) -> None:
        with self._connections_lock:
            (self._connections.add if alive else self._connections.discard)(conn)

    def close_connections(self) -> None:
        """Unblock handler threads parked on idle keep-alive connections."""
        with self._connections_lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Served:
    """An emulator that serves on `host:port` (port 0: a free one, known once started): `with` starts
    and stops it."""

    host: str
    port: int

    def start(self: _Self) -> _Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Self) -> _Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"


def serve(server: ThreadingHTTPServer, name: str) -> threading.Thread:
    """Serve `server` on a daemon thread called `name` (started)."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True)
    thread.start()
    return thread


def shut(server: Server, thread: Optional[threading.Thread]) -> None:
    """Stop serving, close the socket and every open connection, and wait for the serving thread."""
    server.shutdown()
    server.server_close()
    server.close_connections()
    if thread is not None:
        thread.join()
