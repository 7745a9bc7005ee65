"""The only HTTP client verification uses, and the rules for where a key may be sent.

* Redirects are never followed: a 3xx is an answer (classified ``bad_endpoint``), so a key
  is never re-sent to a ``Location`` someone else chose.
* Answers are read as a stream and abandoned past :data:`MAX_BODY_BYTES`.
* Connect and read timeouts are always set; ``trust_env`` is off, so neither ``.netrc``
  credentials nor proxy variables are mixed into requests that carry a customer's key.
  Cookies are never stored (one workspace's answer must not ride along with another's).
* The key travels only in headers. The transport's exception texts name the host and
  port, never a header, and URLs never carry a key.
* :func:`fetch` builds every request itself (URL, the default headers, the pinned
  ``Host`` and TLS name, timeouts) and reads every answer itself (gzip/deflate decoded
  under the cap); the transport below it (:mod:`byokctl.verify._transport`) moves bytes.
* Every answer is untrusted: a provider or gateway may echo the key it received (in a
  model id, an error message, a header). :func:`fetch` removes the request's key, in all
  its common encodings (:func:`~byokctl.model.secret_forms`), from the status line's
  headers and the body before the answer reaches anything else, success or error, so
  the cache, every rendering, the store and the logs only ever see the redacted answer.

A **workspace-supplied** endpoint (Azure OpenAI's ``endpoint``, ``openai_compatible``'s
``base_url``) is untrusted: it must be ``https`` (``openai_compatible`` may use ``http``
for a loopback host), and every address its host resolves to must be public unless the
operator allows it with ``BYOK_ALLOW_PRIVATE_ENDPOINTS``: ``1`` for every address, or a
comma-separated list of CIDRs (``10.20.0.0/16,127.0.0.0/8``) for those only. A literal IP
is judged as written, before any connection. The host is resolved once, through an injectable
resolver, and the request is **pinned** to the address that was checked (the URL carries
the IP; ``Host`` and the TLS SNI/certificate check use the name), so a DNS answer that
changes between the check and the connection (rebinding) cannot redirect the key to an
internal address. Pinned requests also ask for ``Connection: close``: a pooled connection
to a shared IP was authenticated for one host name and must not carry another's key.
Operator-supplied base URLs (``BYOK_<PROVIDER>_BASE_URL``, ``BYOK_SANDBOX_URL``) and the
catalog defaults are trusted as given.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from json import dumps
from typing import Final, Self
from urllib.parse import urlencode

import httpx

from byokctl.catalog import PROVIDERS, SANDBOX_URL_ENV, operator_base_url
from byokctl.classify import Classification, ClassifiedFailure, Outcome
from byokctl.model import ProviderConfig, redact_secret, redact_secret_bytes, secret_forms
from byokctl.verify._transport import AiohttpTransport, HttpxTransport, Outgoing, Transport

#: Larger answers are abandoned: a list of models is a few hundred KB at most.
MAX_BODY_BYTES: Final = 5 * 1024 * 1024
CONNECT_TIMEOUT: Final = 5.0
READ_TIMEOUT: Final = 15.0
#: How long the name resolution of a workspace endpoint may take.
RESOLVE_TIMEOUT: Final = 5.0

SANDBOX_ENV: Final = SANDBOX_URL_ENV
ALLOW_PRIVATE_ENV: Final = "BYOK_ALLOW_PRIVATE_ENDPOINTS"

#: ``(host, port) -> addresses``; injectable so tests never use DNS.
AddressResolver = Callable[[str, int], Awaitable[Sequence[str]]]


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """Resolve ``host`` with the system resolver, without blocking the event loop."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _refuse(provider: str, reason: str) -> ClassifiedFailure:
    name = PROVIDERS[provider].display_name
    return ClassifiedFailure(Classification(Outcome.BAD_ENDPOINT, f"{name}: {reason}"))


@dataclass(frozen=True)
class Endpoint:
    """Where one provider configuration's requests go.

    ``base_url`` is what fingerprints and messages use. ``pinned_ip`` is set for a checked
    workspace endpoint: requests then connect to that address.
    """

    provider: str
    base_url: str
    trusted: bool
    pinned_ip: str | None = None

    def url(self, path: str) -> httpx.URL:
        """The URL to request for ``path`` (appended to the base URL's path)."""
        url = httpx.URL(self.base_url.rstrip("/") + path)
        if self.pinned_ip is not None:
            url = url.copy_with(host=self.pinned_ip)
        return url

    def pin_headers(self) -> dict[str, str]:
        """``Host`` for a pinned request (the URL carries the IP)."""
        if self.pinned_ip is None:
            return {}
        original = httpx.URL(self.base_url)
        host = original.host if original.port is None else f"{original.host}:{original.port}"
        return {"Host": host, "Connection": "close"}

    def server_name(self) -> str | None:
        """For a pinned request: the name TLS sends (SNI) and checks the certificate against."""
        if self.pinned_ip is None:
            return None
        return httpx.URL(self.base_url).host


def base_url_for(provider: str, config: ProviderConfig, env: Mapping[str, str]) -> Endpoint:
    """The operator override, else the sandbox, else the catalog default or workspace endpoint."""
    spec = PROVIDERS[provider]
    operator = operator_base_url(provider, env)
    if operator is not None:
        return Endpoint(provider, operator, trusted=True)
    if spec.default_base_url is not None:
        return Endpoint(provider, spec.default_base_url, trusted=True)
    setting = spec.endpoint_setting or "endpoint"
    return Endpoint(provider, config.settings.get(setting, "").strip().rstrip("/"), False)


def is_public_address(address: str) -> bool:
    """Whether ``address`` is a globally routable unicast address (not private, loopback, …)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:169.254.169.254 is 169.254.169.254
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


#: What the operator allows: ``True`` every address, else the networks listed (maybe none).
PrivateAllowance = bool | tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

#: Hosts ``openai_compatible`` may reach over plain ``http``: this machine only.
LOOPBACK_HOSTS: Final = frozenset({"localhost", "::1", "[::1]"})


def private_allowed(env: Mapping[str, str]) -> PrivateAllowance:
    """Which non-public addresses the operator allows workspace endpoints on.

    ``BYOK_ALLOW_PRIVATE_ENDPOINTS``: ``1``/``true``/``yes`` allows every address; a
    comma-separated list of CIDRs (``10.0.0.0/8,127.0.0.0/8``) allows those networks.
    An entry that is not a network is ignored (it allows nothing).
    """
    value = env.get(ALLOW_PRIVATE_ENV, "").strip()
    if value.lower() in ("1", "true", "yes"):
        return True
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for part in value.split(","):
        try:
            networks.append(ipaddress.ip_network(part.strip(), strict=False))
        except ValueError:
            continue
    return tuple(networks)


def _allowed(address: str, allowance: PrivateAllowance) -> bool:
    if allowance is True:
        return True
    if allowance is False:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in allowance)


def _loopback_host(host: str) -> bool:
    if host.lower() in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def checked_endpoint(
    endpoint: Endpoint, *, resolver: AddressResolver, allow_private: PrivateAllowance
) -> Endpoint:
    """A workspace endpoint, refused (``ClassifiedFailure``) or pinned to a checked address.

    Everything is decided before a connection: the scheme, the URL's shape, and every
    address of the host (a literal IP without any lookup).
    """
    if endpoint.trusted:
        return endpoint
    provider = endpoint.provider
    spec = PROVIDERS[provider]
    try:
        url = httpx.URL(endpoint.base_url)
    except httpx.InvalidURL:
        raise _refuse(provider, "the endpoint is not a valid URL") from None
    # openai_compatible's base_url has a path, and may be plain http on this machine.
    compatible = spec.endpoint_setting == "base_url"
    if url.scheme != "https" and not (
        compatible and url.scheme == "http" and _loopback_host(url.host)
    ):
        hint = " (http only for a loopback host)" if compatible else ""
        raise _refuse(provider, f"the endpoint must use https{hint}")
    if url.userinfo or not url.host or url.query or url.fragment:
        hint = " (a path is fine; no user, query or fragment)" if compatible else ""
        raise _refuse(provider, f"the endpoint must be a plain https://host URL{hint}")
    host = url.host
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        addresses: Sequence[str] = [host]
    except ValueError:
        try:
            addresses = await asyncio.wait_for(
                resolver(host, url.port or 443), timeout=RESOLVE_TIMEOUT
            )
        except (OSError, TimeoutError):
            raise _refuse(provider, f"the endpoint's host {host} does not resolve") from None
    if not addresses:
        raise _refuse(provider, f"the endpoint's host {host} does not resolve")
    for address in addresses:
        if not is_public_address(address) and not _allowed(address, allow_private):
            what = "is" if address == host else "resolves to"
            raise _refuse(
                provider,
                f"the endpoint {host} {what} a non-public address ({address}); refused "
                f"before connecting. An operator may allow it with {ALLOW_PRIVATE_ENV} "
                "(a comma-separated list of CIDRs, or 1 for all)",
            )
    return Endpoint(provider, endpoint.base_url, trusted=False, pinned_ip=addresses[0])


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, fully read (within the size cap)."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def default_timeout() -> httpx.Timeout:
    """Connect and read timeouts; no pool timeout (the semaphore bounds waiting)."""
    return httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT, pool=None)


@functools.cache
def _default_tls() -> ssl.SSLContext:
    """The CA bundle's context, built once per process (loading it costs ~30 ms)."""
    return httpx.create_ssl_context()


#: What every request carries besides its own headers (``fetch`` adds no others).
_DEFAULT_HEADERS: Final = (
    ("User-Agent", "byokctl-verify"),
    ("Accept", "*/*"),
    ("Accept-Encoding", "gzip, deflate"),
    ("Connection", "keep-alive"),
)
_BY_NAME: Final = {name.lower(): (name, value) for name, value in _DEFAULT_HEADERS}
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})


class Client:
    """The safe client: no redirects, timeouts, no env credentials or proxies, no cookies.

    An async context manager; leaving it closes every connection. Requests go out only
    through :func:`fetch`, which applies the rules of this module.
    """

    def __init__(self, transport: Transport, timeout: httpx.Timeout) -> None:
        self.transport = transport
        self.connect_timeout = timeout.connect
        self.read_timeout = timeout.read

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.transport.aclose()


def make_client(
    *,
    parallelism: int,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: httpx.Timeout | None = None,
    tls: ssl.SSLContext | None = None,
) -> Client:
    """The safe client over aiohttp's connections (at most ``parallelism`` of them).

    A ``transport`` (httpx's interface, as tests inject) carries the same requests instead.
    """
    moved: Transport
    if transport is None:
        moved = AiohttpTransport(
            tls=_default_tls if tls is None else lambda: tls, max_connections=parallelism
        )
    else:
        moved = HttpxTransport(transport)
    return Client(moved, timeout or default_timeout())


@functools.lru_cache(maxsize=256)
def _target(endpoint: Endpoint, path: str) -> str:
    """The absolute URL of ``path`` (parsed once per endpoint and path, not per request)."""
    url = endpoint.url(path)
    if url.scheme not in ("http", "https") or not url.host:
        raise httpx.UnsupportedProtocol(f"not an http(s) URL with a host: {url.scheme}://")
    return str(url)


def _headers(*layers: Mapping[str, str]) -> list[tuple[str, str]]:
    """The default headers and ``layers`` merged by name, case-insensitively; later wins."""
    merged = dict(_BY_NAME)
    for layer in layers:
        for name, value in layer.items():
            merged[name.lower()] = (name, value)
    return list(merged.values())


async def fetch(
    client: Client,
    endpoint: Endpoint,
    method: str,
    path: str,
    *,
    headers: Mapping[str, str],
    key: str,
    params: Mapping[str, str] | None = None,
    json: object | None = None,
    max_bytes: int = MAX_BODY_BYTES,
) -> Answer:
    """Send one request and read its answer, abandoning it past ``max_bytes``.

    ``key`` is the key the request carries (in ``headers``): the answer comes back with
    every form of it redacted (see the module docstring).
    """
    url = _target(endpoint, path)
    if params:
        url += ("&" if "?" in url else "?") + urlencode(params)
    body: bytes | None = None
    extra: dict[str, str] = {}
    if json is not None:
        body = dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        extra = {"Content-Type": "application/json"}
    request = Outgoing(
        method=method,
        url=url,
        headers=_headers(headers, extra, endpoint.pin_headers()),
        body=body,
        server_name=endpoint.server_name(),
        connect_timeout=client.connect_timeout,
        read_timeout=client.read_timeout,
    )
    response = await client.transport.send(request)
    complete = False
    try:
        fields = response.headers
        if response.status in _REDIRECTS and any(n.lower() == "location" for n, _ in fields):
            return Answer(response.status, {}, b"")
        found = _joined(fields)
        declared = found.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise _too_large(endpoint.provider, max_bytes)
        decoder = _Decoder(found.get("content-encoding", ""), max_bytes)
        chunks: list[bytes] = []
        size = 0
        # Decoded as it arrives, so the cap applies to what is held in memory.
        async for raw in response.chunks():
            chunk = decoder.decode(raw)
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(endpoint.provider, max_bytes)
            chunks.append(chunk)
        complete = True
        chunk = decoder.flush()
        if size + len(chunk) > max_bytes:
            raise _too_large(endpoint.provider, max_bytes)
        chunks.append(chunk)
        return _without_key(Answer(response.status, found, b"".join(chunks)), key)
    finally:
        await response.close(complete=complete)


def _joined(fields: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Header fields by lower-case name, a repeated name's values joined with ``", "``."""
    found: dict[str, str] = {}
    for name, value in fields:
        lower = name.lower()
        found[lower] = f"{found[lower]}, {value}" if lower in found else value
    return found


class _Decoder:
    """Undoes ``Content-Encoding`` (gzip, deflate; others pass through), within a cap.

    Each stage is asked for at most one byte more than the cap, so a small compressed
    answer cannot unfold into a large one in memory (a "zip bomb").
    """

    def __init__(self, encodings: str, max_bytes: int) -> None:
        self._limit = max_bytes + 1
        # The last encoding applied is the first undone.
        names = [e.strip().lower() for e in encodings.split(",")]
        self._stages = [_Stage(n) for n in reversed(names) if n in ("gzip", "x-gzip", "deflate")]

    def decode(self, data: bytes) -> bytes:
        for stage in self._stages:
            data = stage.decode(data, self._limit)
            if len(data) >= self._limit:  # over the cap: the caller refuses the answer
                break
        return data

    def flush(self) -> bytes:
        data = b""
        for stage in self._stages:
            data = stage.decode(data, self._limit) + stage.flush()
            if len(data) >= self._limit:
                break
        return data


class _Stage:
    def __init__(self, name: str) -> None:
        self._deflate = name == "deflate"
        self._first = True
        wbits = zlib.MAX_WBITS if self._deflate else zlib.MAX_WBITS | 16
        self._zlib = zlib.decompressobj(wbits)

    def decode(self, data: bytes, limit: int) -> bytes:
        if not data:
            return b""
        try:
            try:
                out = self._zlib.decompress(data, limit)
            except zlib.error:
                if not (self._deflate and self._first):
                    raise
                # "deflate" is sometimes sent raw, without the zlib header (as httpx reads it).
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                out = self._zlib.decompress(data, limit)
        except zlib.error as exc:
            raise httpx.DecodingError(f"the answer's {self._name} encoding is corrupt") from exc
        self._first = False
        return out

    @property
    def _name(self) -> str:
        return "deflate" if self._deflate else "gzip"

    def flush(self) -> bytes:
        try:
            return self._zlib.flush()
        except zlib.error as exc:
            raise httpx.DecodingError(f"the answer's {self._name} encoding is corrupt") from exc


def _without_key(answer: Answer, key: str) -> Answer:
    """``answer`` with ``key`` redacted from every header and from the body."""
    headers = answer.headers
    forms = secret_forms(key) if key else ()
    blob = "\n".join(f"{k}\n{v}" for k, v in headers.items())
    # Most answers hold no form of the key in any header: one scan says so.
    if any(form in blob for form in forms):
        headers = {redact_secret(k, key): redact_secret(v, key) for k, v in headers.items()}
    return Answer(answer.status, headers, redact_secret_bytes(answer.body, key))


def _too_large(provider: str, max_bytes: int) -> ClassifiedFailure:
    name = PROVIDERS[provider].display_name
    return ClassifiedFailure(
        Classification(
            Outcome.UNEXPECTED,
            f"{name}: the answer is larger than {max_bytes // (1024 * 1024)} MB; not read",
        )
    )
