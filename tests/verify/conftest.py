"""A programmable provider server on real loopback sockets, and a guard against leaving loopback.

``provider_server`` answers canned status/headers/bodies per path (or per a handler
function) and records every request it received, headers included, so tests can assert
what reached it and what did not. ``_loopback_only`` (autouse) fails any test in this
folder that tries to resolve a name through DNS or connect to a non-loopback address:
the connection attempt is refused before a packet leaves the machine.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest


@dataclass(frozen=True)
class Reply:
    """One canned answer. ``body`` may be bytes or a JSON-able value."""

    status: int = 200
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    #: Abort the connection with a TCP RST instead of answering.
    reset: bool = False
    #: Stream this many bytes of body instead of ``body``.
    size: int | None = None
    #: Send the streamed body with chunked transfer encoding (no Content-Length).
    chunked: bool = False


@dataclass(frozen=True)
class Seen:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


Handler = Callable[[Seen], Reply]


class ProviderServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 with per-path canned replies."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self._routes: dict[str, Handler] = {}
        self._lock = threading.Lock()
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                split = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(
                    self.command,
                    split.path,
                    dict(parse_qsl(split.query)),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                with server._lock:
                    server.requests.append(seen)
                    handler = server._routes.get(split.path)
                reply = handler(seen) if handler else Reply(404, {"error": {"message": "no route"}})
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.reset:
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.close_connection = True
                    self.connection.close()
                    return
                payload = (
                    reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                )
                size = reply.size if reply.size is not None else len(payload)
                try:
                    self.send_response(reply.status)
                    headers = {"content-type": "application/json", **reply.headers}
                    for k, v in headers.items():
                        self.send_header(k, v)
                    if reply.chunked:
                        self.send_header("transfer-encoding", "chunked")
                    else:
                        self.send_header("content-length", str(size))
                    self.end_headers()
                    if reply.size is None:
                        self.wfile.write(payload)
                    else:
                        chunk = b"x" * 65536
                        frame = b"%x\r\n%s\r\n" % (len(chunk), chunk) if reply.chunked else chunk
                        for _ in range(size // len(chunk)):
                            self.wfile.write(frame)
                        if reply.chunked:
                            self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_GET = do_POST = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )
        self._thread.start()

    def route(self, path: str, *replies: Reply | Handler) -> None:
        """Answer ``path`` with ``replies`` in turn (the last one repeats), or a handler."""
        if len(replies) == 1 and callable(replies[0]):
            handler: Handler = replies[0]
        else:
            queue = [r for r in replies if isinstance(r, Reply)]
            lock = threading.Lock()

            def handler(_: Seen) -> Reply:
                with lock:
                    return queue.pop(0) if len(queue) > 1 else queue[0]

        with self._lock:
            self._routes[path] = handler

    def seen(self, path: str | None = None) -> list[Seen]:
        """Requests received (for ``path`` only, when given)."""
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def provider_server() -> Iterator[ProviderServer]:
    server = ProviderServer()
    yield server
    server.close()


@pytest.fixture
def other_server() -> Iterator[ProviderServer]:
    """A second loopback server on another port (a redirect's target)."""
    server = ProviderServer()
    yield server
    server.close()


# --- never leave loopback ----------------------------------------------------------------


def _is_loopback(host: object) -> bool:
    if not isinstance(host, str):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Refuse, and fail the test on, any DNS lookup or connection beyond loopback."""
    violations: list[str] = []
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and not _is_loopback(name):
            violations.append(f"getaddrinfo({name!r})")
            raise socket.gaierror(socket.EAI_NONAME, "blocked by the loopback-only guard")
        return real_getaddrinfo(host, *args, **kwargs)

    def check(address: Any) -> None:
        if isinstance(address, tuple) and not _is_loopback(address[0]):
            violations.append(f"connect({address[0]!r})")
            raise ConnectionRefusedError("blocked by the loopback-only guard")

    def connect(self: socket.socket, address: Any) -> None:
        check(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield violations
    assert not violations, f"a test tried to leave loopback: {violations}"
