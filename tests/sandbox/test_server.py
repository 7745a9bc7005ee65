"""The server itself: concurrency, slow and flaky keys, the request log, odd requests."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

import byokctl.sandbox
from byokctl.sandbox import Behaviour, Sandbox, base_urls_for, behaviour_for

from .conftest import AUTH, LIST_PATH, base


def test_public_api_is_pinned() -> None:
    assert sorted(byokctl.sandbox.__all__) == sorted(
        [
            "FLAKY_FAILURES",
            "MARKERS",
            "PROVIDER_APIS",
            "RETRY_AFTER_SECONDS",
            "SANDBOX_URL_ENV",
            "Behaviour",
            "LoggedRequest",
            "Marker",
            "Sandbox",
            "base_urls_for",
            "behaviour_for",
            "marker_table",
        ]
    )


@pytest.mark.parametrize(
    ("key", "behaviour"),
    [
        ("sk-proj-abc", Behaviour.VALID),
        ("sk-INVALID", Behaviour.INVALID),
        ("no-credits-here", Behaviour.NO_CREDITS),
        ("Rate-Limited", Behaviour.RATE_LIMITED),
        ("slow-flaky", Behaviour.SLOW),
        ("flaky-forbidden", Behaviour.FORBIDDEN),
    ],
)
def test_behaviour_for(key: str, behaviour: Behaviour) -> None:
    assert behaviour_for(key) is behaviour


def test_base_urls_match_the_agreed_paths(sb: Sandbox) -> None:
    root = sb.url
    assert root.startswith("http://127.0.0.1:")
    assert (
        sb.base_urls()
        == base_urls_for(root)
        == {
            "BYOK_OPENAI_BASE_URL": f"{root}/openai/v1",
            "BYOK_ANTHROPIC_BASE_URL": f"{root}/anthropic",
            "BYOK_GEMINI_BASE_URL": f"{root}/gemini/v1beta",
            "BYOK_AZURE_OPENAI_BASE_URL": f"{root}/azure",
            "BYOK_XAI_BASE_URL": f"{root}/xai/v1",
            "BYOK_DEEPSEEK_BASE_URL": f"{root}/deepseek",
        }
    )


def test_fifty_parallel_slow_requests_take_about_one_latency() -> None:
    latency = 0.3
    with (
        Sandbox(latency=latency) as sb,
        httpx.Client(trust_env=False, limits=httpx.Limits(max_connections=60), timeout=10) as http,
    ):
        url = base(sb, "openai") + "/models"

        def call(i: int) -> int:
            return http.get(url, headers=AUTH["openai"](f"sk-{i}")).status_code

        started = time.perf_counter()
        with ThreadPoolExecutor(50) as pool:
            statuses = list(pool.map(call, range(50)))
        elapsed = time.perf_counter() - started
        assert statuses == [200] * 50
        assert latency <= elapsed < 2.5 * latency, elapsed
        assert len(sb.requests) == 50


def test_slow_key_answers_ok_after_slow_seconds(http: httpx.Client, sb: Sandbox) -> None:
    started = time.perf_counter()
    r = http.get(base(sb, "gemini") + "/models", headers=AUTH["gemini"]("slow-key"))
    assert r.status_code == 200
    assert time.perf_counter() - started >= sb.slow_seconds


@pytest.mark.parametrize("provider", ["gemini", "anthropic", "azure_openai"])
def test_flaky_then_ok_per_provider_and_key(http: httpx.Client, sb: Sandbox, provider: str) -> None:
    url = base(sb, provider) + LIST_PATH[provider]
    statuses = [http.get(url, headers=AUTH[provider]("flaky-1")).status_code for _ in range(4)]
    assert statuses == [503, 503, 200, 200]
    # Another key, or the same key at another provider, starts its own count.
    assert http.get(url, headers=AUTH[provider]("flaky-2")).status_code == 503
    other = "deepseek"
    assert http.get(base(sb, other) + "/models", headers=AUTH[other]("flaky-1")).status_code == 503
    sb.reset()
    assert http.get(url, headers=AUTH[provider]("flaky-1")).status_code == 503


def test_request_log_never_holds_the_key(http: httpx.Client, sb: Sandbox) -> None:
    canary = "sk-CANARY-7f3a9c-do-not-log"
    for provider in AUTH:
        http.get(base(sb, provider) + LIST_PATH[provider], headers=AUTH[provider](canary))
        http.post(base(sb, provider) + "/nope", headers=AUTH[provider](canary), json={"k": canary})
    log = sb.requests
    assert len(log) == 12
    assert canary not in repr(log)
    assert canary.lower() not in repr(log).lower()
    assert {r.key_fingerprint for r in log} == {sb.fingerprint(canary)}
    assert {r.provider for r in log} == set(AUTH)
    assert log[0].method == "GET"
    assert log[0].path == "/openai/v1/models"


def test_answers_never_echo_the_key(http: httpx.Client, sb: Sandbox) -> None:
    for marker in ("", "invalid", "nocredits", "forbidden", "ratelimited", "outage"):
        canary = f"sk-CANARY-{marker}-91b2"
        for provider in AUTH:
            r = http.get(base(sb, provider) + LIST_PATH[provider], headers=AUTH[provider](canary))
            assert "CANARY" not in r.text
            assert "CANARY" not in str(r.headers)


def test_key_in_the_url_is_refused_and_not_logged(http: httpx.Client, sb: Sandbox) -> None:
    r = http.get(base(sb, "gemini") + "/models?key=sk-CANARY-url")
    assert r.status_code == 400
    assert "in the URL is refused" in r.json()["error"]["message"]
    assert "CANARY" not in repr(sb.requests)


def test_root_and_unknown_prefix(http: httpx.Client, sb: Sandbox) -> None:
    index = http.get(sb.url + "/").json()
    assert index["base_urls"] == sb.base_urls()
    assert http.get(sb.url + "/cohere/v1/models").status_code == 404
    assert http.get(sb.url + "/openaix/v1/models").status_code == 404


def test_wrong_method_is_a_404_in_the_providers_shape(http: httpx.Client, sb: Sandbox) -> None:
    r = http.delete(base(sb, "openai") + "/models", headers=AUTH["openai"]("k"))
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "Invalid URL (DELETE /openai/v1/models)"


def test_oversized_body_is_refused(sb: Sandbox) -> None:
    with socket.create_connection(("127.0.0.1", sb.port), timeout=5) as conn:
        conn.sendall(
            b"POST /openai/v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 99999999\r\n\r\n"
        )
        assert conn.recv(64).startswith(b"HTTP/1.1 413")


def test_stop_cuts_a_waiting_request_short() -> None:
    sb = Sandbox(latency=30).start()
    url = base(sb, "openai") + "/models"
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(
            httpx.get, url, headers=AUTH["openai"]("k"), trust_env=False, timeout=10
        )
        time.sleep(0.1)
        started = time.perf_counter()
        sb.stop()
        assert time.perf_counter() - started < 2
        assert pending.result().status_code == 200  # answered at once, not after 30 s


def test_validation() -> None:
    with pytest.raises(ValueError, match="negative"):
        Sandbox(latency=-1)
    with pytest.raises(RuntimeError):
        _ = Sandbox().url
