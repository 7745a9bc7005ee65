"""Every failure class of PROVIDERS.md, for every provider, lands on the right rule.

Real provider error bodies go through ``Resolver.report``; a sticky class routes the
workspace to Neo as ``provider_failed:<outcome>`` at once, a transient one trips the
breaker (threshold 1 here) as ``circuit_open:<outcome>``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from byokctl.resolver import BreakerPolicy, ProviderResponse, Resolver
from byokctl.store import MasterKey, open_store
from tests.resolver.helpers import put, workspace


def _j(doc: object) -> bytes:
    return json.dumps(doc).encode()


_OPENAI_QUOTA = _j(
    {
        "error": {
            "message": "You exceeded your current quota",
            "type": "insufficient_quota",
            "code": "insufficient_quota",
        }
    }
)
_OPENAI_RATE = _j(
    {
        "error": {
            "message": "Rate limit reached for gpt-4o",
            "type": "requests",
            "code": "rate_limit_exceeded",
        }
    }
)
_ANTHROPIC = lambda t, m: _j({"type": "error", "error": {"type": t, "message": m}})  # noqa: E731


def _GEMINI(code, status, msg, reason=None):
    return _j(
        {
            "error": {
                "code": code,
                "message": msg,
                "status": status,
                "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}]
                if reason
                else [],
            }
        }
    )


#: (provider, status, body, headers, expected route reason)
CASES = [
    # openai
    ("openai", 401, _j({"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}}), {}, "provider_failed:invalid_key"),
    ("openai", 429, _OPENAI_QUOTA, {}, "provider_failed:no_credits"),
    ("openai", 429, _OPENAI_RATE, {"retry-after": "2"}, "circuit_open:rate_limited"),
    ("openai", 500, _j({"error": {"message": "The server had an error"}}), {}, "circuit_open:outage"),
    ("openai", 503, b"", {}, "circuit_open:outage"),
    ("openai", 404, _j({"error": {"message": "The model `gpt-9` does not exist", "code": "model_not_found"}}), {}, "provider_failed:model_not_available"),
    ("openai", 403, _j({"error": {"message": "Project does not have access"}}), {}, "provider_failed:permission"),
    # anthropic
    ("anthropic", 401, _ANTHROPIC("authentication_error", "invalid x-api-key"), {}, "provider_failed:invalid_key"),
    ("anthropic", 400, _ANTHROPIC("invalid_request_error", "Your credit balance is too low to access the Anthropic API."), {}, "provider_failed:no_credits"),
    ("anthropic", 402, _ANTHROPIC("billing_error", "billing"), {}, "provider_failed:no_credits"),
    ("anthropic", 429, _ANTHROPIC("rate_limit_error", "Number of requests has exceeded your rate limit"), {"retry-after": "5"}, "circuit_open:rate_limited"),
    ("anthropic", 529, _ANTHROPIC("overloaded_error", "Overloaded"), {}, "circuit_open:outage"),
    ("anthropic", 500, _ANTHROPIC("api_error", "Internal server error"), {}, "circuit_open:outage"),
    # gemini
    ("gemini", 400, _GEMINI(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", "API_KEY_INVALID"), {}, "provider_failed:invalid_key"),
    ("gemini", 400, _GEMINI(400, "FAILED_PRECONDITION", "User location is not supported or billing is not enabled"), {}, "provider_failed:no_credits"),
    ("gemini", 429, _GEMINI(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted"), {}, "circuit_open:rate_limited"),
    ("gemini", 503, _GEMINI(503, "UNAVAILABLE", "The model is overloaded."), {}, "circuit_open:outage"),
    ("gemini", 504, _GEMINI(504, "DEADLINE_EXCEEDED", "Deadline exceeded"), {}, "circuit_open:timeout"),
    # azure openai
    ("azure_openai", 401, _j({"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint."}}), {}, "provider_failed:invalid_key"),
    ("azure_openai", 404, _j({"error": {"code": "DeploymentNotFound", "message": "The API deployment for this resource does not exist."}}), {}, "provider_failed:deployment_not_found"),
    ("azure_openai", 429, _j({"error": {"code": "429", "message": "Requests have exceeded the call rate limit. Please retry after 7 seconds."}}), {}, "circuit_open:rate_limited"),
    ("azure_openai", 503, b"", {}, "circuit_open:outage"),
    # xai
    ("xai", 400, _j({"code": "Client specified an invalid argument", "error": "Incorrect API key provided: xa***ey. You can obtain an API key from https://console.x.ai."}), {}, "provider_failed:invalid_key"),
    ("xai", 403, _j({"code": "The caller does not have permission", "error": "Your newly created team doesn't have any credits yet."}), {}, "provider_failed:no_credits"),
    ("xai", 429, _j({"code": "Too many requests", "error": "rate limited"}), {}, "circuit_open:rate_limited"),
    ("xai", 502, b"bad gateway", {}, "circuit_open:outage"),
    # deepseek
    ("deepseek", 401, _j({"error": {"message": "Authentication Fails (no such user)", "type": "authentication_error"}}), {}, "provider_failed:invalid_key"),
    ("deepseek", 402, _j({"error": {"message": "Insufficient Balance", "type": "unknown_error"}}), {}, "provider_failed:no_credits"),
    ("deepseek", 429, _j({"error": {"message": "Rate Limit Reached"}}), {}, "circuit_open:rate_limited"),
    ("deepseek", 503, _j({"error": {"message": "Server overloaded"}}), {}, "circuit_open:outage"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("provider", "status", "body", "headers", "expected"),
    CASES,
    ids=[f"{c[0]}-{c[1]}-{c[4]}" for c in CASES],
)
def test_failure_class_lands_on_its_rule(  # noqa: PLR0917 - pytest parameters
    tmp_path: Path, provider: str, status: int, body: bytes, headers: dict[str, str], expected: str
) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    key = MasterKey.generate()
    with open_store(url, master_key=key) as store:
        put(store, workspace("acme", provider))
    policy = BreakerPolicy(threshold=1)
    with Resolver.from_url(url, master_key=key, refresh_interval=None, breaker=policy, env={}) as r:
        route = r.resolve("acme", "assist")
        assert route.provider == provider
        r.report(route, ProviderResponse(status, body, headers))
        after = r.resolve("acme", "assist")
        assert (after.provider, after.reason) == ("neo", expected)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (TimeoutError("timed out"), "circuit_open:timeout"),
        (ConnectionRefusedError("refused"), "circuit_open:outage"),
    ],
)
def test_exceptions_land_on_the_breaker(tmp_path: Path, exc: Exception, expected: str) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    key = MasterKey.generate()
    with open_store(url, master_key=key) as store:
        put(store, workspace("acme", "openai"))
    policy = BreakerPolicy(threshold=1)
    with Resolver.from_url(url, master_key=key, refresh_interval=None, breaker=policy, env={}) as r:
        r.report(r.resolve("acme", "assist"), exc)
        assert r.resolve("acme", "assist").reason == expected
