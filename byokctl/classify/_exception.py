"""Classifying a failure that produced no HTTP answer, or an SDK error carrying one.

Pure: no I/O, and no import of any HTTP library: an exception is recognised by the names
of its classes (``httpx.TimeoutException`` and its subclasses, the SDKs' status errors),
so the resolver stays light and an application's own client still classifies right.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final

from byokctl.classify._outcome import (
    SHORT_NAMES,
    Classification,
    ClassifiedFailure,
    Outcome,
    meaning,
    sanitize,
)
from byokctl.classify._response import classify_response

# --- exceptions --------------------------------------------------------------------------

_DNS_WORDS: Final = (
    "name or service not known",
    "nodename nor servname",
    "no address associated",
    "getaddrinfo failed",
    "name resolution",
    "no such host",
)


# httpx's exception classes by qualified name: an exception is one of them when any class
# of its MRO has that name (so subclasses count, as ``isinstance`` would), without importing
# httpx (which imports click and rich when installed) or asking whether it is loaded.
_INVALID_URL: Final = frozenset(
    {"httpx.InvalidURL", "httpx.UnsupportedProtocol", "httpx.TooManyRedirects"}
)
_TIMEOUTS: Final = frozenset({"httpx.TimeoutException"})
_CONNECT: Final = frozenset({"httpx.ConnectError"})
# The SDKs' connection error (openai, anthropic) wraps the transport's.
_TRANSPORT: Final = frozenset(
    {"httpx.TransportError", "openai.APIConnectionError", "anthropic.APIConnectionError"}
)


# Any client's connection error of that name (the official SDKs' wrap the transport's).
_SDK_CONNECT: Final = "APIConnectionError"


def _is_a(exc: BaseException, names: frozenset[str]) -> bool:
    return any(f"{c.__module__.partition('.')[0]}.{c.__qualname__}" in names
               for c in type(exc).__mro__)  # fmt: skip


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _sdk_status(provider: str, exc: BaseException, key: str | None) -> Classification | None:
    """The official SDKs' ``APIStatusError``: ``status_code``, ``response``, ``body``."""
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int):
        return None
    response = getattr(exc, "response", None)
    headers: Mapping[str, str] = {}
    raw_headers = getattr(response, "headers", None)
    if isinstance(raw_headers, Mapping):
        headers = {str(k): str(v) for k, v in raw_headers.items()}
    content: bytes = b""
    try:
        got = getattr(response, "content", b"")
        content = got if isinstance(got, bytes) else b""
    except Exception:
        content = b""
    if not content:
        body = getattr(exc, "body", None)
        if body is not None:
            # The SDKs keep the parsed error body (sometimes only its inner "error").
            wrapped = body if isinstance(body, Mapping) and "error" in body else {"error": body}
            try:
                content = json.dumps(wrapped).encode()
            except (TypeError, ValueError):
                content = b""
    return classify_response(provider, status, headers, content, key=key)


def classify_exception(
    provider: str, exc: BaseException, *, key: str | None = None
) -> Classification:
    """Classify a failure that produced no HTTP answer (or an SDK error carrying one).

    ``key``: the key the failed request carried, removed from an SDK error's answer as in
    :func:`classify_response`.
    """
    name = SHORT_NAMES.get(provider, provider)
    for link in _chain(exc):
        if isinstance(link, ClassifiedFailure):
            return link.classification
        sdk = _sdk_status(provider, link, key)
        if sdk is not None:
            return sdk
    for link in _chain(exc):
        kind = type(link).__name__
        text = str(link).lower()
        if _is_a(link, _INVALID_URL):
            return Classification(Outcome.BAD_ENDPOINT, sanitize(f"{name}: invalid endpoint URL"))
        if any(w in text for w in _DNS_WORDS) or kind == "gaierror":
            return Classification(
                Outcome.BAD_ENDPOINT, f"{name}: the endpoint's host name does not resolve"
            )
        if "certificate" in text or kind in ("SSLCertVerificationError", "CertificateError"):
            return Classification(
                Outcome.BAD_ENDPOINT, f"{name}: the endpoint's TLS certificate is not valid"
            )
        if isinstance(link, TimeoutError) or _is_a(link, _TIMEOUTS) or "Timeout" in kind:
            return Classification(Outcome.TIMEOUT, f"{name}: {meaning(Outcome.TIMEOUT)}")
    for link in _chain(exc):
        kind = type(link).__name__
        if isinstance(link, ConnectionRefusedError) or _is_a(link, _CONNECT):
            return Classification(Outcome.OUTAGE, f"{name}: could not connect to the provider")
        if (
            isinstance(link, ConnectionError)
            or _is_a(link, _TRANSPORT)
            or kind == "APIConnectionError"
        ):
            return Classification(
                Outcome.OUTAGE, f"{name}: the connection failed ({type(link).__name__})"
            )
    return Classification(
        Outcome.UNEXPECTED, f"{name}: verification failed unexpectedly ({type(exc).__name__})"
    )
