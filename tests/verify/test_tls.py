"""A pinned workspace endpoint over real TLS: connect to the checked IP, verify the name.

The HTTPS server listens on 127.0.0.1 with a certificate (from a test CA, ``trustme``)
for ``acme.example`` only. The injected resolver pins ``acme.example`` to 127.0.0.1, so a
successful answer shows that the request went to the pinned address while the handshake
sent, and the certificate was checked against, the host name: a check against the IP
would fail, as does a name the certificate does not cover.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import trustme

from byokctl.classify import Outcome, classify_exception
from byokctl.verify._http import Answer, Endpoint, checked_endpoint, fetch, make_client

KEY = "sk-canary-tls-0f1e2d3c4b5a6978"
NAME = "acme.example"


@dataclass
class TlsServer:
    port: int
    ca: trustme.CA
    #: The server names the clients' handshakes sent (SNI), and each request's headers.
    names: list[str | None] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
def tls_server() -> Iterator[TlsServer]:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(NAME).configure_cert(context)
    found = TlsServer(0, ca)

    def remember(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        found.names.append(name)

    context.sni_callback = remember  # type: ignore[assignment]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            found.headers.append({k.lower(): v for k, v in self.headers.items()})
            body = json.dumps({"data": [{"id": "gpt-4o"}]}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    found.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield found
    server.shutdown()
    server.server_close()


def _trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def _pinned_get(server: TlsServer, host: str) -> Answer:
    async def resolve(name: str, port: int) -> Sequence[str]:
        assert name == host
        return ["127.0.0.1"]

    endpoint = await checked_endpoint(
        Endpoint("azure_openai", f"https://{host}:{server.port}", trusted=False),
        resolver=resolve,
        allow_private=True,
    )
    assert endpoint.pinned_ip == "127.0.0.1"
    async with make_client(parallelism=1, tls=_trusting(server.ca)) as client:
        return await fetch(
            client,
            endpoint,
            "GET",
            "/openai/models",
            headers={"api-key": KEY},
            key=KEY,
            params={"api-version": "2024-10-21"},
        )


def test_pinned_request_checks_the_certificate_against_the_name(tls_server: TlsServer) -> None:
    answer = asyncio.run(_pinned_get(tls_server, NAME))
    assert answer.status == 200
    assert json.loads(answer.body)["data"][0]["id"] == "gpt-4o"
    assert tls_server.names == [NAME]  # SNI: the name, not the IP
    (headers,) = tls_server.headers
    assert headers["host"] == f"{NAME}:{tls_server.port}"
    assert headers["connection"] == "close"  # a pinned connection carries one request


def test_a_name_the_certificate_does_not_cover_is_refused(tls_server: TlsServer) -> None:
    with pytest.raises(httpx.ConnectError) as failure:
        asyncio.run(_pinned_get(tls_server, "other.example"))
    got = classify_exception("azure_openai", failure.value)
    assert got.outcome is Outcome.BAD_ENDPOINT
    assert "certificate" in got.detail
    assert tls_server.headers == []  # no request (and no key) went over that connection


def test_a_certificate_from_an_unknown_authority_is_refused(tls_server: TlsServer) -> None:
    async def untrusted() -> Answer:
        async def resolve(name: str, port: int) -> Sequence[str]:
            return ["127.0.0.1"]

        endpoint = await checked_endpoint(
            Endpoint("azure_openai", f"https://{NAME}:{tls_server.port}", trusted=False),
            resolver=resolve,
            allow_private=True,
        )
        # The default trust store: the test CA is not in it.
        async with make_client(parallelism=1) as client:
            return await fetch(
                client, endpoint, "GET", "/openai/models", headers={"api-key": KEY}, key=KEY
            )

    with pytest.raises(httpx.ConnectError) as failure:
        asyncio.run(untrusted())
    assert classify_exception("azure_openai", failure.value).outcome is Outcome.BAD_ENDPOINT
    assert tls_server.headers == []
