"""The server itself: concurrency, slow and flaky keys, the request log, odd requests."""

from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

import byokctl.sandbox
from byokctl.sandbox import Behaviour, Sandbox, base_urls_for, behaviour_for
from tests.waiting import wait_until

from .conftest import AUTH, LIST_PATH, base

#: A latency (or slow-key delay) no test waits out: only ``stop`` ends it.
LONG = 600.0
#: How long a request cut short by ``stop`` (or ``stop`` itself) may take: a bound
#: against a hang on a busy machine, far below ``LONG``.
DEADLINE = 60.0
#: The clients' timeout: past the waits above, so a failing test fails rather than hangs.
CLIENT_TIMEOUT = 2 * DEADLINE


def _get(url: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.get(url, headers=headers, trust_env=False, timeout=CLIENT_TIMEOUT)


def _stop_within_deadline(sb: Sandbox) -> None:
    """``sb.stop()``, failing (not hanging) if it waits for the held requests."""
    stopping = threading.Thread(target=sb.stop, daemon=True)
    stopping.start()
    stopping.join(DEADLINE)
    assert not stopping.is_alive(), f"stop() still waiting after {DEADLINE:g} s"


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
            "BYOK_OPENAI_COMPATIBLE_BASE_URL": f"{root}/compatible/v1",
        }
    )


def test_fifty_requests_wait_out_the_latency_at_the_same_time() -> None:
    # Concurrency without timing: all fifty are held in the latency at once (a server
    # answering one at a time would never get there), then stop answers them together.
    # The throughput figure (1,000 requests at 100 ms, parallelism 50) is
    # benchmarks/verify.py's.
    sb = Sandbox(latency=LONG).start()
    url = base(sb, "openai") + "/models"
    limits = httpx.Limits(max_connections=60)
    try:
        with (
            httpx.Client(trust_env=False, limits=limits, timeout=CLIENT_TIMEOUT) as http,
            ThreadPoolExecutor(50) as pool,
        ):
            pending = [
                pool.submit(lambda i=i: http.get(url, headers=AUTH["openai"](f"sk-{i}")))
                for i in range(50)
            ]
            wait_until(lambda: sb.waiting == 50, what="50 requests waiting at once")
            _stop_within_deadline(sb)
            statuses = [f.result(timeout=DEADLINE).status_code for f in pending]
    finally:
        sb.stop()
    assert statuses == [200] * 50
    assert len(sb.requests) == 50
    assert sb.waiting == 0


def test_slow_key_waits_slow_seconds_then_answers_ok(http: httpx.Client, sb: Sandbox) -> None:
    # The module's sandbox has slow_seconds 0.3: the slow key answers, and answers OK.
    r = http.get(base(sb, "gemini") + "/models", headers=AUTH["gemini"]("slow-key"))
    assert r.status_code == 200


def test_only_the_slow_key_is_held() -> None:
    sb = Sandbox(slow_seconds=LONG).start()
    url = base(sb, "gemini") + "/models"
    try:
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(_get, url, AUTH["gemini"]("slow-key"))
            wait_until(lambda: sb.waiting == 1, what="the slow key's request waiting")
            # Another key is answered while the slow one is still held.
            assert _get(url, AUTH["gemini"]("fast-key")).status_code == 200
            assert sb.waiting == 1 and not slow.done()
            _stop_within_deadline(sb)
            assert slow.result(timeout=DEADLINE).status_code == 200
    finally:
        sb.stop()
    assert [r.status for r in sb.requests] == [200, 200]


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
    assert len(log) == 2 * len(AUTH)
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
    sb = Sandbox(latency=LONG).start()
    url = base(sb, "openai") + "/models"
    try:
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(_get, url, AUTH["openai"]("k"))
            # Stop only once the request is held in the latency (not before it arrived).
            wait_until(lambda: sb.waiting == 1, what="the request waiting out the latency")
            _stop_within_deadline(sb)
            # Answered at once: DEADLINE is a small fraction of the latency.
            assert pending.result(timeout=DEADLINE).status_code == 200
    finally:
        sb.stop()
    assert sb.waiting == 0


def test_validation() -> None:
    with pytest.raises(ValueError, match="negative"):
        Sandbox(latency=-1)
    with pytest.raises(RuntimeError):
        _ = Sandbox().url
