"""The network under the verification client: httpx's interface over aiohttp's connections.

Verification keeps httpx's client for everything a caller sees (requests, responses,
timeouts, the exception types :mod:`byokctl.classify` reads, and the ``transport``
seam tests inject) and replaces only the part below it. httpx's own transport
(httpcore over anyio) costs about 1.5 ms of CPU per request on this machine, and checks
every pooled connection on every request; at 50 requests in flight that CPU, not the
providers' latency, set the wall time. aiohttp's connection pool and C HTTP parser do
the same job in about a fifth of that (``benchmarks/verify.py`` prints the figures).

What the transport keeps from the client's rules (``_http.py``):

* redirects are never followed (``allow_redirects=False``: a 3xx is returned as is);
* no cookie is stored (a dummy jar), and neither the environment's proxies nor ``.netrc``
  are read (``trust_env=False``);
* bodies are passed through undecoded: httpx decodes gzip/deflate, so the size cap in
  :func:`~byokctl.verify._http.fetch` still applies to what is held in memory;
* the ``timeout`` (connect, read) and ``sni_hostname`` request extensions are honoured,
  so a pinned request still checks the certificate against the name, not the IP;
* ``Connection: close`` on a request closes its connection after the answer.

aiohttp's errors are translated here, once, to the httpx exception httpcore would have
raised for the same failure (``raise httpx.ConnectError(...) from exc``), so the
classification of a refused, reset or timed-out connection is the same as before.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Final

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


@contextmanager
def _translated(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except httpx.HTTPError:
        raise
    except Exception as exc:
        for source, target in _TRANSLATION:
            if isinstance(exc, source):
                # aiohttp's texts name the host and port, never a header: no key is in them.
                raise target(f"{type(exc).__name__}: {exc}", request=request) from exc
        raise


class _Body(httpx.AsyncByteStream):
    """An answer's body, read from aiohttp as it arrives."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _translated(self._request):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        # A body read to its end hands the connection back to the pool; one abandoned
        # early (past the size cap) closes it.
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport whose connections are aiohttp's (one pool of ``max_connections``)."""

    def __init__(self, *, tls: ssl.SSLContext, max_connections: int) -> None:
        self._tls = tls
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Created on the first request: aiohttp binds a session to the running event loop.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections, limit_per_host=0, ssl=self._tls
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                auto_decompress=False,
                # httpx sets every header itself (User-Agent, Accept, Host, …).
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and return its answer with the body still to be read."""
        session = self._open()
        timeout = request.extensions.get("timeout", {})
        sni = request.extensions.get("sni_hostname")
        body = await request.aread()
        with _translated(request):
            response = await session.request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=body or None,
                allow_redirects=False,
                compress=None,
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=timeout.get("connect"), sock_read=timeout.get("read")
                ),
                server_hostname=sni,
            )
        extensions: dict[str, object] = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode("latin-1", "replace")
        return httpx.Response(
            status_code=response.status,
            headers=list(response.raw_headers),
            stream=_Body(response, request),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        """Close every pooled connection."""
        if self._session is not None:
            await self._session.close()
            self._session = None
