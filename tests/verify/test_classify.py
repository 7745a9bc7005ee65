"""Every failure shape of PROVIDERS.md, for every provider, lands on the right Outcome."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import httpx
import pytest

from byokctl.classify import (
    STICKY,
    TRANSIENT,
    Classification,
    ClassifiedFailure,
    Outcome,
    classify_exception,
    classify_key_format,
    classify_response,
    key_format_problem,
    sanitize,
)
from byokctl.model import Secret


def _openai_err(code: str, type_: str = "invalid_request_error", msg: str = "x") -> Any:
    return {"error": {"message": msg, "type": type_, "param": None, "code": code}}


def _anthropic_err(type_: str, msg: str = "x") -> Any:
    return {"type": "error", "error": {"type": type_, "message": msg}}


def _gemini_err(code: int, status: str, msg: str = "x", details: list[Any] | None = None) -> Any:
    return {"error": {"code": code, "message": msg, "status": status, "details": details or []}}


_API_KEY_INVALID = [
    {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
    }
]
_RETRY_INFO = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]
_DAILY = [
    {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [
            {
                "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
            }
        ],
    }
]

CASES: list[tuple[str, int, Any, Outcome]] = [
    # --- openai
    ("openai", 200, {"object": "list", "data": []}, Outcome.OK),
    ("openai", 401, _openai_err("invalid_api_key", msg="Incorrect API key provided: sk-ab***yz"), Outcome.INVALID_KEY),
    ("openai", 429, _openai_err("insufficient_quota", "insufficient_quota"), Outcome.NO_CREDITS),
    ("openai", 429, _openai_err(None, "insufficient_quota"), Outcome.NO_CREDITS),  # type: ignore[arg-type]
    ("openai", 429, _openai_err("rate_limit_exceeded", "requests"), Outcome.RATE_LIMITED),
    ("openai", 403, _openai_err("unsupported_country_region_territory"), Outcome.PERMISSION),
    ("openai", 404, _openai_err("model_not_found", msg="The model `gpt-9` does not exist"), Outcome.MODEL_NOT_AVAILABLE),
    ("openai", 404, _openai_err(None, msg="Invalid URL (GET /v1/modelz)"), Outcome.BAD_ENDPOINT),  # type: ignore[arg-type]
    ("openai", 500, _openai_err("server_error", "server_error"), Outcome.OUTAGE),
    ("openai", 503, b"<html>Service Unavailable</html>", Outcome.OUTAGE),
    ("openai", 400, _openai_err("bad"), Outcome.UNEXPECTED),
    # --- anthropic
    ("anthropic", 200, {"data": [], "has_more": False}, Outcome.OK),
    ("anthropic", 401, _anthropic_err("authentication_error", "invalid x-api-key"), Outcome.INVALID_KEY),
    ("anthropic", 400, _anthropic_err("invalid_request_error", "Your credit balance is too low to access the Anthropic API."), Outcome.NO_CREDITS),
    ("anthropic", 402, _anthropic_err("billing_error"), Outcome.NO_CREDITS),
    ("anthropic", 429, _anthropic_err("rate_limit_error", "You have reached your specified API usage limits (spend limit)"), Outcome.NO_CREDITS),
    ("anthropic", 429, _anthropic_err("rate_limit_error", "Number of requests has exceeded your rate limit"), Outcome.RATE_LIMITED),
    ("anthropic", 403, _anthropic_err("permission_error"), Outcome.PERMISSION),
    ("anthropic", 404, _anthropic_err("not_found_error", "model: claude-9"), Outcome.MODEL_NOT_AVAILABLE),
    ("anthropic", 404, _anthropic_err("not_found_error", "Not Found"), Outcome.BAD_ENDPOINT),
    ("anthropic", 529, _anthropic_err("overloaded_error", "Overloaded"), Outcome.OUTAGE),
    ("anthropic", 500, _anthropic_err("api_error"), Outcome.OUTAGE),
    ("anthropic", 503, b"", Outcome.OUTAGE),
    # --- gemini
    ("gemini", 200, {"models": []}, Outcome.OK),
    ("gemini", 400, _gemini_err(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", _API_KEY_INVALID), Outcome.INVALID_KEY),
    ("gemini", 400, _gemini_err(400, "INVALID_ARGUMENT", "something", _API_KEY_INVALID), Outcome.INVALID_KEY),
    ("gemini", 400, _gemini_err(400, "FAILED_PRECONDITION", "User location is not supported / billing"), Outcome.NO_CREDITS),
    ("gemini", 429, _gemini_err(429, "RESOURCE_EXHAUSTED", "quota", _DAILY), Outcome.NO_CREDITS),
    ("gemini", 429, _gemini_err(429, "RESOURCE_EXHAUSTED", "slow down", _RETRY_INFO), Outcome.RATE_LIMITED),
    ("gemini", 403, _gemini_err(403, "PERMISSION_DENIED"), Outcome.PERMISSION),
    ("gemini", 404, _gemini_err(404, "NOT_FOUND", "models/gemini-9 is not found for API version v1beta"), Outcome.MODEL_NOT_AVAILABLE),
    ("gemini", 503, _gemini_err(503, "UNAVAILABLE"), Outcome.OUTAGE),
    ("gemini", 500, _gemini_err(500, "INTERNAL"), Outcome.OUTAGE),
    ("gemini", 504, _gemini_err(504, "DEADLINE_EXCEEDED"), Outcome.TIMEOUT),
    ("gemini", 400, _gemini_err(400, "INVALID_ARGUMENT", "bad page token"), Outcome.UNEXPECTED),
    # --- azure_openai
    ("azure_openai", 200, {"data": []}, Outcome.OK),
    ("azure_openai", 401, {"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint."}}, Outcome.INVALID_KEY),
    ("azure_openai", 404, {"error": {"code": "DeploymentNotFound", "message": "The API deployment for this resource does not exist."}}, Outcome.DEPLOYMENT_NOT_FOUND),
    ("azure_openai", 404, {"error": {"code": "404", "message": "Resource not found"}}, Outcome.BAD_ENDPOINT),
    ("azure_openai", 429, {"error": {"code": "429", "message": "Requests have exceeded the call rate limit. Please retry after 12 seconds."}}, Outcome.RATE_LIMITED),
    ("azure_openai", 403, {"error": {"code": "403", "message": "forbidden"}}, Outcome.PERMISSION),
    ("azure_openai", 403, {"error": {"code": "403", "message": "Out of call volume quota for OpenAI S0 pricing tier. To increase your call volume switch to a paid tier or raise your subscription's spending limit."}}, Outcome.NO_CREDITS),
    ("azure_openai", 500, {}, Outcome.OUTAGE),
    ("azure_openai", 502, b"Bad Gateway", Outcome.OUTAGE),
    # --- xai
    ("xai", 200, {"data": [], "object": "list"}, Outcome.OK),
    ("xai", 400, {"code": "Client specified an invalid argument", "error": "Incorrect API key provided: xa***ey. You can obtain an API key from https://console.x.ai."}, Outcome.INVALID_KEY),
    ("xai", 401, {"code": "unauthenticated", "error": "No auth token"}, Outcome.INVALID_KEY),
    ("xai", 403, {"code": "The caller does not have permission to execute the specified operation", "error": "Your newly created team doesn't have any credits yet."}, Outcome.NO_CREDITS),
    ("xai", 403, {"code": "permission-denied", "error": "The API key is blocked."}, Outcome.PERMISSION),
    ("xai", 404, {"code": "not found", "error": "The model grok-9 does not exist or your team does not have access to it."}, Outcome.MODEL_NOT_AVAILABLE),
    ("xai", 429, {"code": "rate", "error": "Too many requests"}, Outcome.RATE_LIMITED),
    ("xai", 503, b"", Outcome.OUTAGE),
    # --- deepseek
    ("deepseek", 200, {"object": "list", "data": []}, Outcome.OK),
    ("deepseek", 401, {"error": {"message": "Authentication Fails", "type": "authentication_error"}}, Outcome.INVALID_KEY),
    ("deepseek", 402, {"error": {"message": "Insufficient Balance", "type": "unknown_error"}}, Outcome.NO_CREDITS),
    ("deepseek", 429, {"error": {"message": "Rate Limit Reached"}}, Outcome.RATE_LIMITED),
    ("deepseek", 400, {"error": {"message": "Model Not Exist", "type": "invalid_request_error"}}, Outcome.MODEL_NOT_AVAILABLE),
    ("deepseek", 500, b"", Outcome.OUTAGE),
    ("deepseek", 503, {"error": {"message": "Server Overloaded"}}, Outcome.OUTAGE),
]  # fmt: skip


def _body(doc: Any) -> bytes:
    return doc if isinstance(doc, bytes) else json.dumps(doc).encode()


@pytest.mark.parametrize(("provider", "status", "doc", "expected"), CASES)
def test_classify_response(provider: str, status: int, doc: Any, expected: Outcome) -> None:
    got = classify_response(provider, status, {}, _body(doc))
    assert got.outcome is expected, got.detail
    assert "***" not in got.detail  # masked keys echoed by providers are removed
    assert len(got.detail) <= 240


@pytest.mark.parametrize(
    "provider", ["openai", "anthropic", "gemini", "azure_openai", "xai", "deepseek"]
)
@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirects_are_bad_endpoints(provider: str, status: int) -> None:
    got = classify_response(provider, status, {"location": "https://evil.example/x?k=1"}, b"")
    assert got.outcome is Outcome.BAD_ENDPOINT
    assert "evil" not in got.detail


def test_sticky_and_transient_partition_every_failure() -> None:
    assert set(Outcome) - {Outcome.OK} == STICKY | TRANSIENT
    assert not STICKY & TRANSIENT
    assert {
        Outcome.INVALID_KEY, Outcome.NO_CREDITS, Outcome.PERMISSION, Outcome.MODEL_NOT_AVAILABLE,
        Outcome.DEPLOYMENT_NOT_FOUND, Outcome.BAD_ENDPOINT, Outcome.INVALID_KEY_FORMAT,
    } == STICKY  # fmt: skip
    assert {Outcome.RATE_LIMITED, Outcome.OUTAGE, Outcome.TIMEOUT, Outcome.UNEXPECTED} == TRANSIENT
    assert Classification(Outcome.NO_CREDITS, "").sticky
    assert Classification(Outcome.RATE_LIMITED, "").transient
    assert not Classification(Outcome.OK, "").sticky
    assert not Classification(Outcome.OK, "").transient


@pytest.mark.parametrize(
    ("provider", "headers", "doc", "expected"),
    [
        ("openai", {"Retry-After": "3"}, _openai_err("rate_limit_exceeded"), 3.0),
        ("openai", {"retry-after-ms": "1500", "retry-after": "2"}, _openai_err("rate_limit_exceeded"), 1.5),
        ("anthropic", {"retry-after": "7"}, _anthropic_err("rate_limit_error"), 7.0),
        ("gemini", {}, _gemini_err(429, "RESOURCE_EXHAUSTED", "x", _RETRY_INFO), 37.0),
        ("azure_openai", {}, {"error": {"code": "429", "message": "Please retry after 12 seconds."}}, 12.0),
        ("xai", {"Retry-After": "Wed, 21 Oct 2026 07:28:30 GMT", "Date": "Wed, 21 Oct 2026 07:28:00 GMT"}, {}, 30.0),
        ("deepseek", {}, {}, None),
    ],
)  # fmt: skip
def test_retry_after(
    provider: str, headers: dict[str, str], doc: Any, expected: float | None
) -> None:
    got = classify_response(provider, 429, headers, _body(doc))
    assert got.outcome is Outcome.RATE_LIMITED
    assert got.retry_after == expected


def test_retry_after_only_on_transient() -> None:
    got = classify_response("openai", 401, {"retry-after": "5"}, b"{}")
    assert got.retry_after is None


def test_detail_never_contains_a_key() -> None:
    canary = "sk-canary-7f3a9c1e5b2d4f6a8c0e"
    Secret(canary)  # this process has now handled it: redact() scrubs it wherever it appears
    body = _openai_err("invalid_api_key", msg=f"Incorrect API key provided: {canary}\x1b[31m")
    got = classify_response("openai", 401, {}, _body(body))
    assert canary not in got.detail
    assert "canary" not in got.detail
    assert "\x1b" not in got.detail
    google = "AIzaSyD-canary0000000000000000000"
    assert "canary" not in sanitize(f"key {google} rejected")


def test_detail_is_capped() -> None:
    got = classify_response("openai", 500, {}, _body(_openai_err("x", msg="word " * 500)))
    assert len(got.detail) <= 240
    assert got.detail.endswith("…")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectTimeout("timed out"), Outcome.TIMEOUT),
        (httpx.ReadTimeout("timed out"), Outcome.TIMEOUT),
        (httpx.PoolTimeout("timed out"), Outcome.TIMEOUT),
        (TimeoutError(), Outcome.TIMEOUT),
        (httpx.ConnectError("[Errno 111] Connection refused"), Outcome.OUTAGE),
        (httpx.RemoteProtocolError("Server disconnected without sending a response."), Outcome.OUTAGE),
        (httpx.ReadError("[Errno 104] Connection reset by peer"), Outcome.OUTAGE),
        (ConnectionResetError(104, "reset"), Outcome.OUTAGE),
        (httpx.ConnectError("[Errno -2] Name or service not known"), Outcome.BAD_ENDPOINT),
        (httpx.InvalidURL("bad"), Outcome.BAD_ENDPOINT),
        (httpx.UnsupportedProtocol("ftp"), Outcome.BAD_ENDPOINT),
        (httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"), Outcome.BAD_ENDPOINT),
        (ValueError("weird"), Outcome.UNEXPECTED),
    ],
)  # fmt: skip
def test_classify_exception(exc: BaseException, expected: Outcome) -> None:
    assert classify_exception("openai", exc).outcome is expected


def test_classified_failure_passes_through() -> None:
    inner = Classification(Outcome.BAD_ENDPOINT, "refused")
    outer = RuntimeError("wrapper")
    outer.__cause__ = ClassifiedFailure(inner)
    assert classify_exception("azure_openai", outer) is inner


class _FakeSdkResponse:
    """Shaped like an httpx.Response as the SDKs keep it."""

    def __init__(self, status: int, headers: dict[str, str], content: bytes) -> None:
        self.status_code = status
        self.headers = headers
        self.content = content


class RateLimitError(Exception):
    """Shaped like openai.RateLimitError / anthropic.RateLimitError (duck-typed, no SDK import)."""

    def __init__(self, status: int, body: Any, response: _FakeSdkResponse | None) -> None:
        super().__init__("Error code: 429")
        self.status_code = status
        self.body = body
        self.response = response


class APITimeoutError(Exception):
    pass


class APIConnectionError(Exception):
    pass


def test_sdk_errors_are_classified_by_body() -> None:
    body = _openai_err("insufficient_quota", "insufficient_quota")
    exc = RateLimitError(429, body["error"], _FakeSdkResponse(429, {}, _body(body)))
    assert classify_exception("openai", exc).outcome is Outcome.NO_CREDITS
    # The response content unavailable: the parsed body decides.
    exc = RateLimitError(429, body["error"], None)
    assert classify_exception("openai", exc).outcome is Outcome.NO_CREDITS
    limited = _anthropic_err("rate_limit_error")
    resp = _FakeSdkResponse(429, {"retry-after": "4"}, _body(limited))
    got = classify_exception("anthropic", RateLimitError(429, limited, resp))
    assert (got.outcome, got.retry_after) == (Outcome.RATE_LIMITED, 4.0)
    assert (
        classify_exception("openai", APITimeoutError("Request timed out.")).outcome
        is Outcome.TIMEOUT
    )
    assert (
        classify_exception("openai", APIConnectionError("Connection error.")).outcome
        is Outcome.OUTAGE
    )


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("sk-abc-123456\n", "it ends with a line break"),
        ("sk-abc-123456\r\n", "it ends with a line break"),
        ("sk-abc-123456 ", "it ends with whitespace"),
        ("\tsk-abc-123456", "it starts with whitespace"),
        ("sk-abc 123456", "it contains whitespace (character 7 of 13)"),
        ("sk-abc\x00123456", "it contains a control character (character 7 of 13)"),
        ("sk-abc-12345\u00e9", "it contains a non-ASCII character (character 13 of 13)"),
        ("sk-abc\u00a0123456", "it contains whitespace (character 7 of 13)"),
    ],
)
def test_a_key_no_header_can_carry(key: str, problem: str) -> None:
    assert key_format_problem(key) == problem
    got = classify_key_format("openai", key)
    assert got is not None and got.outcome is Outcome.INVALID_KEY_FORMAT and got.sticky
    assert got.detail.startswith("OpenAI: the API key cannot be sent in an HTTP header: ")
    assert problem in got.detail and key.strip() not in got.detail


def test_a_key_any_header_can_carry() -> None:
    for key in ("sk-proj-abc_DEF-123", "AIzaSyA-bc", "a!~\"#$%&'()*+,-./:;<=>?@[\\]^`{|}"):
        assert key_format_problem(key) is None
        assert classify_key_format("gemini", key) is None


def test_classify_response_redacts_the_key_it_is_given() -> None:
    key = "sk-echo/given+key=1234567890ab"
    escaped = "".join(f"\\u{ord(c):04x}" for c in key)  # invisible to a byte scan
    body = '{"error":{"code":"invalid_api_key","message":"bad: ' + escaped + " / " + key + '"}}'
    got = classify_response("openai", 401, {"x-echo": key}, body.encode(), key=key)
    assert got.outcome is Outcome.INVALID_KEY
    assert key not in got.detail and got.detail.count("(sensitive)") == 2


def test_httpx_exceptions_are_known_by_their_class_names_subclasses_included() -> None:
    classify = classify_exception

    class GatewayTimeout(httpx.ReadTimeout):
        pass

    assert classify("openai", GatewayTimeout("slow")).outcome == Outcome.TIMEOUT
    assert classify("openai", httpx.ConnectError("refused")).outcome == Outcome.OUTAGE
    assert classify("openai", httpx.RemoteProtocolError("reset")).outcome == Outcome.OUTAGE
    assert classify("openai", httpx.UnsupportedProtocol("ftp")).outcome == Outcome.BAD_ENDPOINT

    class InvalidURL(Exception):  # the same name elsewhere is not httpx's
        pass

    assert classify("openai", InvalidURL("x")).outcome == Outcome.UNEXPECTED


def test_the_classifier_imports_no_http_library() -> None:
    code = (
        "import sys, byokctl.classify, byokctl.resolver; "
        "print(sorted(m for m in ('httpx', 'aiohttp', 'click', 'rich') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[]"
