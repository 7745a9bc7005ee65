"""The network under the verification client: one request out, one answer's raw bytes in.

:func:`~byokctl.verify._http.fetch` decides everything a request carries (URL with the
pinned address, headers, body, TLS name, timeouts) and everything done to its answer
(redirects refused, size cap, decoding, redaction); a :class:`Transport` only moves bytes.
Production uses :class:`AiohttpTransport`: aiohttp's connection pool and C HTTP parser,
called directly. Going through httpx's client as well (its request and response models,
URL parsing, cookie extraction, header objects) cost more CPU per request than the
network itself, and at 50 requests in flight the client's CPU, not the providers'
latency, set the wall time (``benchmarks/verify.py`` prints the figures).
:class:`HttpxTransport` runs the same requests over any ``httpx.AsyncBaseTransport``:
the seam tests inject to see exactly what would be sent.

What the aiohttp transport keeps from the client's rules (``_http.py``):

* redirects are never followed (``allow_redirects=False``: a 3xx is returned as is);
* no cookie is stored (a dummy jar), and neither the environment's proxies nor ``.netrc``
  are read (``trust_env=False``);
* bodies are passed through undecoded: ``fetch`` decodes gzip/deflate itself, so the size
  cap applies to what is held in memory;
* the connect/read timeouts and the TLS server name are honoured, so a pinned request
  still checks the certificate against the name, not the IP;
* ``Connection: close`` on a request closes its connection after the answer.

aiohttp's errors are translated here, once, to the httpx exception httpcore would have
raised for the same failure (``raise httpx.ConnectError(...) from exc``): the classifier
(:mod:`byokctl.classify`) knows httpx's exception types, so a refused, reset or timed-out
connection is classified the same whichever transport carried the request.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final, Protocol

import aiohttp
import httpx

#: aiohttp error → the httpx exception for the same failure; the first match wins, so the
#: more specific classes come first.
_TRANSLATION: Final[tuple[tuple[type[BaseException], type[httpx.TransportError]], ...]] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (TimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ClientSSLError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.ClientError, httpx.ReadError),
    (OSError, httpx.ReadError),
)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One request exactly as it goes out: nothing is added to it below ``fetch``."""

    method: str
    #: Absolute, with its query; for a pinned request its host is the checked address.
    url: str
    headers: Sequence[tuple[str, str]]
    body: bytes | None
    #: The name the TLS handshake sends and the certificate must match (pinned requests).
    server_name: str | None
    connect_timeout: float | None
    read_timeout: float | None


class Incoming(Protocol):
    """One answer: its status line and headers, and its body still to be read."""

    @property
    def status(self) -> int:
        """The status code."""
        ...

    @property
    def headers(self) -> Sequence[tuple[str, str]]:
        """The header fields as received (names in any case, repeated names repeated)."""
        ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive, undecoded."""
        ...

    async def close(self, *, complete: bool) -> None:
        """Hand the connection back (``complete``: the body was read to its end) or drop it."""
        ...


class Transport(Protocol):
    """Sends :class:`Outgoing` requests; raises httpx's exception types on failure."""

    async def send(self, request: Outgoing) -> Incoming:
        """Send ``request``; return its answer with the body still to be read."""
        ...

    async def aclose(self) -> None:
        """Close every connection."""
        ...


@contextmanager
def _translated(url: str) -> Iterator[None]:
    try:
        yield
    except httpx.HTTPError:
        raise
    except Exception as exc:
        for source, target in _TRANSLATION:
            if isinstance(exc, source):
                # aiohttp's texts name the host and port, never a header: no key is in them.
                raise target(f"{type(exc).__name__}: {exc}") from exc
        raise


def _text(raw: bytes) -> str:
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


class _AiohttpAnswer:
    __slots__ = ("_response", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers = [(_text(k), _text(v)) for k, v in response.raw_headers]

    async def chunks(self) -> AsyncIterator[bytes]:
        with _translated(str(self._response.url)):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def close(self, *, complete: bool) -> None:
        # A body read to its end hands the connection back to the pool; one abandoned
        # early (past the size cap, or after an error) closes it.
        if complete:
            self._response.release()
        else:
            self._response.close()


@functools.lru_cache(maxsize=16)
def _timeout(connect: float | None, read: float | None) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read)


class AiohttpTransport:
    """aiohttp's connections (one pool of ``max_connections``), called directly."""

    def __init__(self, *, tls: Callable[[], ssl.SSLContext], max_connections: int) -> None:
        """``tls`` makes the TLS context, asked for on the first ``https`` request only:
        loading a CA bundle costs ~30 ms, which a run against plain-HTTP stand-ins need
        not pay."""
        self._tls = tls
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Created on the first request: aiohttp binds a session to the running event loop.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0),
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                auto_decompress=False,
                # fetch sets every header itself (User-Agent, Accept, Accept-Encoding, …).
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
            )
        return self._session

    async def send(self, request: Outgoing) -> Incoming:
        """Send ``request`` and return its answer with the body still to be read."""
        session = self._open()
        with _translated(request.url):
            response = await session.request(
                request.method,
                request.url,
                headers=request.headers,
                data=request.body,
                allow_redirects=False,
                compress=None,
                timeout=_timeout(request.connect_timeout, request.read_timeout),
                # Every https request verifies against this context (never aiohttp's own).
                ssl=self._tls() if request.url[:6].lower() == "https:" else True,
                server_hostname=request.server_name,
            )
        return _AiohttpAnswer(response)

    async def aclose(self) -> None:
        """Close every pooled connection."""
        if self._session is not None:
            await self._session.close()
            self._session = None


class _HttpxAnswer:
    __slots__ = ("_response", "headers", "status")

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status = response.status_code
        self.headers = [(_text(k), _text(v)) for k, v in response.headers.raw]

    async def chunks(self) -> AsyncIterator[bytes]:
        stream = self._response.stream
        if not isinstance(stream, httpx.AsyncByteStream):
            raise TypeError("the transport returned a synchronous stream")
        async for chunk in stream:
            yield chunk

    async def close(self, *, complete: bool) -> None:
        await self._response.aclose()


class HttpxTransport:
    """The same requests over an ``httpx.AsyncBaseTransport`` (what tests inject)."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self._transport = transport

    async def send(self, request: Outgoing) -> Incoming:
        """Send ``request`` through the wrapped transport."""
        extensions: dict[str, object] = {
            "timeout": {
                "connect": request.connect_timeout,
                "read": request.read_timeout,
                "write": request.read_timeout,
                "pool": None,
            }
        }
        if request.server_name is not None:
            extensions["sni_hostname"] = request.server_name
        outgoing = httpx.Request(
            request.method,
            request.url,
            headers=list(request.headers),
            content=request.body,
            extensions=extensions,
        )
        return _HttpxAnswer(await self._transport.handle_async_request(outgoing))

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self._transport.aclose()
