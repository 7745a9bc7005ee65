"""Failures below HTTP, hostile answers, retries: over real loopback sockets."""

from __future__ import annotations

import socket

import httpx
import pytest

from byokctl.verify import Outcome, RetryPolicy, list_models
from byokctl.verify._http import MAX_BODY_BYTES
from tests.verify.conftest import ProviderServer, Reply
from tests.verify.shapes import config, env_for, model_list, serve_ok

CANARY = "sk-canary-chaos-5e4d3c2b1a009988"
ONCE = RetryPolicy(attempts=1)
FAST = httpx.Timeout(0.3, connect=0.3)


class Sleeps:
    """An injectable sleep that records instead of waiting."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def test_read_timeout(provider_server: ProviderServer) -> None:
    provider_server.route("/openai/v1/models", Reply(200, model_list("openai"), delay=1.0))
    got = list_models(
        config("openai", CANARY), env=env_for(provider_server), retry=ONCE, timeout=FAST
    )
    assert got.classification.outcome is Outcome.TIMEOUT


def test_connection_refused() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"BYOK_OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1"}
    got = list_models(config("openai", CANARY), env=env, retry=ONCE, timeout=FAST)
    assert got.classification.outcome is Outcome.OUTAGE
    assert CANARY not in got.classification.detail


def test_connection_reset(provider_server: ProviderServer) -> None:
    provider_server.route("/openai/v1/models", Reply(reset=True))
    got = list_models(config("openai", CANARY), env=env_for(provider_server), retry=ONCE)
    assert got.classification.outcome is Outcome.OUTAGE


def test_malformed_json(provider_server: ProviderServer) -> None:
    provider_server.route("/openai/v1/models", Reply(200, b'{"data": [ {"id": "gpt-4o"'))
    got = list_models(config("openai", CANARY), env=env_for(provider_server), retry=ONCE)
    assert got.classification.outcome is Outcome.UNEXPECTED
    assert "not JSON" in got.classification.detail


@pytest.mark.parametrize("declared", [True, False])
def test_huge_body_is_capped(provider_server: ProviderServer, declared: bool) -> None:
    size = 20 * 1024 * 1024
    if declared:
        provider_server.route("/openai/v1/models", Reply(200, size=size))
    else:
        # Chunked: no Content-Length to refuse up front; the stream is cut at the cap.
        provider_server.route(
            "/openai/v1/models",
            Reply(200, size=size, chunked=True),
        )
    got = list_models(config("openai", CANARY), env=env_for(provider_server), retry=ONCE)
    assert got.classification.outcome is Outcome.UNEXPECTED
    assert f"larger than {MAX_BODY_BYTES // (1024 * 1024)} MB" in got.classification.detail


def test_redirect_is_not_followed(
    provider_server: ProviderServer, other_server: ProviderServer
) -> None:
    serve_ok(other_server, "openai")
    provider_server.route(
        "/openai/v1/models",
        Reply(307, b"", {"location": other_server.url + "/openai/v1/models"}),
    )
    got = list_models(config("openai", CANARY), env=env_for(provider_server), retry=ONCE)
    assert got.classification.outcome is Outcome.BAD_ENDPOINT
    assert other_server.seen() == []  # the key never arrived at the redirect's target
    assert other_server.url not in got.classification.detail


def test_retries_transient_until_ok(provider_server: ProviderServer) -> None:
    provider_server.route(
        "/openai/v1/models",
        Reply(503, {"error": {"message": "overloaded"}}),
        Reply(503, {"error": {"message": "overloaded"}}),
        Reply(200, model_list("openai")),
    )
    sleeps = Sleeps()
    got = list_models(config("openai", CANARY), env=env_for(provider_server), sleep=sleeps)
    assert got.classification.outcome is Outcome.OK
    assert len(provider_server.seen()) == 3
    assert len(sleeps.calls) == 2
    assert sleeps.calls[0] <= 0.5 and sleeps.calls[1] <= 1.0  # full jitter under the ceiling


@pytest.mark.parametrize(
    "reply",
    [
        Reply(401, {"error": {"code": "invalid_api_key", "message": "bad"}}),
        Reply(429, {"error": {"code": "insufficient_quota", "type": "insufficient_quota"}}),
        Reply(403, {"error": {"message": "no"}}),
    ],
)
def test_sticky_is_not_retried(provider_server: ProviderServer, reply: Reply) -> None:
    provider_server.route("/openai/v1/models", reply)
    sleeps = Sleeps()
    got = list_models(config("openai", CANARY), env=env_for(provider_server), sleep=sleeps)
    assert got.classification.sticky
    assert len(provider_server.seen()) == 1
    assert sleeps.calls == []


def test_retry_after_is_honoured(provider_server: ProviderServer) -> None:
    provider_server.route(
        "/anthropic/v1/models",
        Reply(429, {"type": "error", "error": {"type": "rate_limit_error"}}, {"retry-after": "7"}),
        Reply(200, model_list("anthropic")),
    )
    sleeps = Sleeps()
    got = list_models(config("anthropic", CANARY), env=env_for(provider_server), sleep=sleeps)
    assert got.classification.outcome is Outcome.OK
    assert sleeps.calls == [7.0]


def test_retry_after_beyond_the_cap_is_reported_not_waited(provider_server: ProviderServer) -> None:
    provider_server.route(
        "/openai/v1/models",
        Reply(429, {"error": {"code": "rate_limit_exceeded"}}, {"retry-after": "3600"}),
    )
    sleeps = Sleeps()
    got = list_models(
        config("openai", CANARY),
        env=env_for(provider_server),
        sleep=sleeps,
        retry=RetryPolicy(retry_after_cap=10.0),
    )
    assert got.classification.outcome is Outcome.RATE_LIMITED
    assert sleeps.calls == []
    assert len(provider_server.seen()) == 1


def test_transient_gives_up_after_the_attempts(provider_server: ProviderServer) -> None:
    provider_server.route("/openai/v1/models", Reply(500, b""))
    sleeps = Sleeps()
    got = list_models(
        config("openai", CANARY),
        env=env_for(provider_server),
        sleep=sleeps,
        retry=RetryPolicy(attempts=4),
    )
    assert got.classification.outcome is Outcome.OUTAGE
    assert len(provider_server.seen()) == 4
    assert len(sleeps.calls) == 3
