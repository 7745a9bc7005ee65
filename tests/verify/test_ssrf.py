"""Workspace-supplied endpoints: https only, public addresses only, pinned to the checked IP.

Names are resolved by an injected resolver (no DNS), and the autouse loopback guard fails
any test whose code tries to connect beyond loopback.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import pytest

from byokctl.verify import Outcome, RetryPolicy, is_public_address, list_models
from byokctl.verify._http import Endpoint
from tests.verify.conftest import ProviderServer
from tests.verify.shapes import config, serve_ok

CANARY = "sk-canary-ssrf-0a1b2c3d4e5f6071"
ONCE = RetryPolicy(attempts=1)


def resolver_for(answers: dict[str, Sequence[str]], calls: list[str] | None = None):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> Sequence[str]:
        if calls is not None:
            calls.append(host)
        if host not in answers:
            raise OSError("no such host")
        return answers[host]

    return resolve


class Recording(httpx.AsyncBaseTransport):
    """Records requests and answers 200 without touching the network (pinning unit test)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path.endswith("/openai/models"):
            return httpx.Response(200, json={"data": [{"id": "gpt-4o"}]})
        return httpx.Response(200, json={"id": "d", "model": "gpt-4o"})


@pytest.mark.parametrize(
    ("endpoint", "answers"),
    [
        ("https://evil.example", {"evil.example": ["169.254.169.254"]}),
        ("https://evil.example", {"evil.example": ["10.0.0.1"]}),
        ("https://evil.example", {"evil.example": ["::1"]}),
        ("https://evil.example", {"evil.example": ["::ffff:169.254.169.254"]}),
        ("https://evil.example", {"evil.example": ["203.0.113.9", "127.0.0.1"]}),  # one bad apple
        ("https://evil.example", {"evil.example": ["100.64.0.1"]}),  # carrier-grade NAT
        ("https://169.254.169.254", {}),
        ("https://10.0.0.1", {}),
        ("https://[::1]", {}),
        ("https://[fe80::1]", {}),
        ("https://0.0.0.0", {}),
    ],
)
def test_private_endpoints_are_refused(endpoint: str, answers: dict[str, Sequence[str]]) -> None:
    transport = Recording()
    cfg = config("azure_openai", CANARY, endpoint=endpoint)
    got = list_models(cfg, env={}, resolver=resolver_for(answers), transport=transport, retry=ONCE)
    assert got.classification.outcome is Outcome.BAD_ENDPOINT
    assert "non-public" in got.classification.detail
    assert transport.requests == []


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://acme.openai.azure.com",
        "ftp://acme",
        "https://user:pw@acme.openai.azure.com",
        "not a url",
        "",
    ],
)
def test_non_https_endpoints_are_refused(endpoint: str) -> None:
    transport = Recording()
    cfg = config("azure_openai", CANARY, endpoint=endpoint)
    resolver = resolver_for({"acme.openai.azure.com": ["20.1.2.3"]})
    got = list_models(cfg, env={}, resolver=resolver, transport=transport, retry=ONCE)
    assert got.classification.outcome is Outcome.BAD_ENDPOINT
    assert transport.requests == []


def test_unresolvable_endpoint() -> None:
    cfg = config("azure_openai", CANARY, endpoint="https://nowhere.example")
    got = list_models(cfg, env={}, resolver=resolver_for({}), transport=Recording(), retry=ONCE)
    assert got.classification.outcome is Outcome.BAD_ENDPOINT
    assert "does not resolve" in got.classification.detail


def test_public_endpoint_is_pinned_to_the_checked_address() -> None:
    transport = Recording()
    calls: list[str] = []
    cfg = config("azure_openai", CANARY, endpoint="https://acme.openai.azure.com")
    resolver = resolver_for({"acme.openai.azure.com": ["20.1.2.3"]}, calls)
    got = list_models(cfg, env={}, resolver=resolver, transport=transport, retry=ONCE)
    assert got.classification.outcome is Outcome.OK
    assert calls == ["acme.openai.azure.com"]  # resolved once: no second (rebound) answer
    for request in transport.requests:
        assert request.url.host == "20.1.2.3"
        assert request.headers["host"] == "acme.openai.azure.com"
        assert request.extensions["sni_hostname"] == "acme.openai.azure.com"
        assert request.headers["connection"] == "close"
        assert CANARY not in str(request.url)


def test_operator_may_allow_private_endpoints(provider_server: ProviderServer) -> None:
    """With BYOK_ALLOW_PRIVATE_ENDPOINTS=1 a private address is allowed, still pinned."""
    transport = Recording()
    cfg = config("azure_openai", CANARY, endpoint="https://azure.internal")
    resolver = resolver_for({"azure.internal": ["10.0.0.7"]})
    env = {"BYOK_ALLOW_PRIVATE_ENDPOINTS": "1"}
    got = list_models(cfg, env=env, resolver=resolver, transport=transport, retry=ONCE)
    assert got.classification.outcome is Outcome.OK
    assert {r.url.host for r in transport.requests} == {"10.0.0.7"}


def test_operator_override_is_trusted(provider_server: ProviderServer) -> None:
    serve_ok(provider_server, "azure_openai")
    cfg = config("azure_openai", CANARY, endpoint="https://evil.example")
    env = {"BYOK_AZURE_OPENAI_BASE_URL": provider_server.url + "/azure"}
    got = list_models(cfg, env=env, resolver=resolver_for({}), retry=ONCE)
    assert got.classification.outcome is Outcome.OK


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("20.1.2.3", True),
        ("2606:4700::1111", True),
        ("169.254.169.254", False),
        ("10.0.0.1", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("127.0.0.1", False),
        ("::1", False),
        ("fd00::1", False),
        ("fe80::1%eth0", False),
        ("::ffff:10.0.0.1", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("nonsense", False),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(address) is public


def test_pinned_ipv6_url() -> None:
    ep = Endpoint(
        "azure_openai", "https://acme.example:8443", trusted=False, pinned_ip="2606:4700::1"
    )
    assert str(ep.url("/openai/models")) == "https://[2606:4700::1]:8443/openai/models"
    assert ep.pin_headers()["Host"] == "acme.example:8443"
