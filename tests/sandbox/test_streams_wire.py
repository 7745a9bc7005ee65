"""Streams on the wire (plain httpx): framing, event names, the ``-after-N`` marker, no key echoed."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import openai
import pytest

from byokctl.sandbox import Sandbox, marker_table
from byokctl.sandbox._markers import fail_after
from tests.waiting import wait_until

from .conftest import AUTH, base

HI = [{"role": "user", "content": "hi"}]

#: provider -> (path below its base URL, request body) of its streaming call.
STREAM_CALLS: dict[str, tuple[str, dict[str, object]]] = {
    "openai": ("/chat/completions", {"model": "gpt-4o", "messages": HI, "stream": True}),
    "xai": ("/chat/completions", {"model": "grok-4", "messages": HI, "stream": True}),
    "deepseek": (
        "/chat/completions",
        {"model": "deepseek-reasoner", "messages": HI, "stream": True},
    ),
    "azure_openai": (
        "/openai/deployments/gpt4-prod/chat/completions?api-version=2024-10-21",
        {"messages": HI, "stream": True},
    ),
    "anthropic": (
        "/v1/messages",
        {"model": "claude-3-5-sonnet-20241022", "max_tokens": 8, "messages": HI, "stream": True},
    ),
    "gemini": (
        "/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
        {"contents": [{"parts": [{"text": "hi"}]}]},
    ),
}


def events(body: str) -> list[tuple[str | None, str]]:
    """``(event name, data)`` of each server-sent event in ``body``."""
    out: list[tuple[str | None, str]] = []
    for block in body.split("\n\n"):
        if not block.strip():
            continue
        name, data = None, []
        for line in block.split("\n"):
            field, _, value = line.partition(": ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        out.append((name, "\n".join(data)))
    return out


def post_stream(http: httpx.Client, sb: Sandbox, provider: str, key: str) -> httpx.Response:
    path, body = STREAM_CALLS[provider]
    return http.post(base(sb, provider) + path, headers=AUTH[provider](key), json=body)


@pytest.mark.parametrize("provider", list(STREAM_CALLS))
def test_streams_are_chunked_server_sent_events(
    http: httpx.Client, sb: Sandbox, provider: str
) -> None:
    r = post_stream(http, sb, provider, "sk-good")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in r.headers
    parsed = events(r.text)
    assert len(parsed) >= 6  # at least one event per word of the reply
    for name, data in parsed:
        if data != "[DONE]":
            value = json.loads(data)
            if name is not None:
                assert value["type"] == name  # Anthropic's names match their data


def test_openai_stream_ends_with_done_and_usage_is_null_until_the_usage_chunk(
    http: httpx.Client, sb: Sandbox
) -> None:
    body = {
        "model": "gpt-4o",
        "messages": HI,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    r = http.post(base(sb, "openai") + "/chat/completions", headers=AUTH["openai"]("k"), json=body)
    parsed = [data for _, data in events(r.text)]
    assert parsed[-1] == "[DONE]"
    chunks = [json.loads(d) for d in parsed[:-1]]
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] == 17
    plain = dict(body, stream_options=None)
    r = http.post(base(sb, "openai") + "/chat/completions", headers=AUTH["openai"]("k"), json=plain)
    assert all("usage" not in json.loads(d) for _, d in events(r.text)[:-1])


def test_anthropic_stream_carries_a_ping(http: httpx.Client, sb: Sandbox) -> None:
    names = [name for name, _ in events(post_stream(http, sb, "anthropic", "k").text)]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]


def test_gemini_without_alt_sse_streams_one_json_array(http: httpx.Client, sb: Sandbox) -> None:
    path = "/models/gemini-2.0-flash:streamGenerateContent"
    auth = AUTH["gemini"]("k")
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    array = http.post(base(sb, "gemini") + path, headers=auth, json=body)
    assert array.headers["content-type"].startswith("application/json")
    sse = http.post(base(sb, "gemini") + path + "?alt=sse", headers=auth, json=body)
    as_sse = [json.loads(d) for _, d in events(sse.text)]
    as_array = array.json()
    assert isinstance(as_array, list)
    strip = [{k: v for k, v in c.items() if k != "responseId"} for c in as_array]
    assert strip == [{k: v for k, v in c.items() if k != "responseId"} for c in as_sse]
    failing = http.post(
        base(sb, "gemini") + path, headers=AUTH["gemini"]("outage-after-1"), json=body
    ).json()
    assert len(failing) == 2
    assert failing[-1]["error"]["status"] == "UNAVAILABLE"


@pytest.mark.parametrize("provider", list(STREAM_CALLS))
def test_no_stream_echoes_the_key(http: httpx.Client, sb: Sandbox, provider: str) -> None:
    for key in ("sk-CANARY-good", "sk-CANARY-outage-after-2"):
        r = post_stream(http, sb, provider, key)
        assert r.status_code == 200
        assert "CANARY" not in r.text
        assert "CANARY" not in str(r.headers)


def test_a_client_hanging_up_mid_stream_leaves_the_server_serving(sb: Sandbox) -> None:
    path, body = STREAM_CALLS["openai"]
    url = base(sb, "openai") + path
    with (
        httpx.Client(timeout=30, trust_env=False) as client,
        client.stream("POST", url, headers=AUTH["openai"]("k"), json=body) as r,
    ):
        first = next(r.iter_lines())
        assert first.startswith("data: ")
    with httpx.Client(timeout=30, trust_env=False) as client:
        again = client.post(url, headers=AUTH["openai"]("k"), json=body)
    assert events(again.text)[-1][1] == "[DONE]"


@pytest.mark.parametrize(
    ("key", "after"),
    [
        ("sk-outage-after-3", 3),
        ("sk-OUTAGE-AFTER-0", 0),
        ("after-12-invalid", 12),
        ("sk-outage", None),
        ("sk-outage-after-", None),
        ("sk-outage-after-1234567", None),  # more than 6 digits is not a count
    ],
)
def test_fail_after_parses_the_marker(key: str, after: int | None) -> None:
    assert fail_after(key) == after


def test_the_marker_table_and_the_docs_name_after_n() -> None:
    assert "after-N" in marker_table()
    doc = (Path(__file__).parents[2] / "docs" / "sandbox.md").read_text()
    assert "`-after-N`" in doc
    for endpoint in (
        "POST /chat/completions",
        "POST /responses",
        "POST /v1/messages/count_tokens",
        ":streamGenerateContent",
        ":countTokens",
        "GET /openai/models/{id}",
        "stream_options.include_usage",
        "reasoning_content",
        "Authorization: Bearer TOKEN",
    ):
        assert endpoint in doc, endpoint


#: A stream interval no test waits out: only ``stop`` ends it.
LONG = 600.0
#: A bound on waiting for a condition (a hang on a busy machine fails instead).
DEADLINE = 60.0


@pytest.mark.parametrize("provider", list(STREAM_CALLS))
def test_events_leave_one_by_one_not_at_the_end(provider: str) -> None:
    # With a long pause between events, the client holds the first event while the server
    # still holds the rest: the stream is written as it goes, not buffered to the end.
    path, body = STREAM_CALLS[provider]
    sb = Sandbox(stream_interval=LONG).start()
    try:
        url = base(sb, provider) + path
        with (
            httpx.Client(timeout=2 * DEADLINE, trust_env=False) as client,
            client.stream("POST", url, headers=AUTH[provider]("k"), json=body) as r,
        ):
            lines = r.iter_lines()
            first = next(line for line in lines if line.startswith("data: "))
            wait_until(lambda: sb.waiting == 1, timeout=DEADLINE)
            assert ')."' not in first  # the reply's last word, "(MODEL).", is still to come
            stopping = threading.Thread(target=sb.stop, daemon=True)
            stopping.start()  # cuts the pauses short: the rest follows at once
            rest = "\n".join(lines)
            stopping.join(DEADLINE)
        assert not stopping.is_alive()
        assert ')."' in rest
    finally:
        sb.stop()


def test_the_openai_sdk_yields_the_first_chunk_while_the_rest_is_held() -> None:
    sb = Sandbox(stream_interval=LONG).start()
    try:
        client = openai.OpenAI(api_key="k", base_url=base(sb, "openai"), max_retries=0)
        stream = iter(client.chat.completions.create(model="gpt-4o", messages=HI, stream=True))
        first = next(stream)
        assert first.choices[0].delta.role == "assistant"
        wait_until(lambda: sb.waiting == 1, timeout=DEADLINE)
        stopping = threading.Thread(target=sb.stop, daemon=True)
        stopping.start()
        text = "".join(c.choices[0].delta.content or "" for c in stream)
        stopping.join(DEADLINE)
        assert not stopping.is_alive()
        assert text == "Hello from the byokctl sandbox (gpt-4o)."
    finally:
        sb.stop()
