"""The stand-ins' streams without I/O: every provider, every N of ``-after-N``.

A stand-in maps a request to an answer without a socket, so the stream's events are
checked here directly; the SDK tests check the same streams over loopback.
"""

from __future__ import annotations

import json

import pytest

from byokctl.sandbox import PROVIDER_APIS
from byokctl.sandbox._api import Answer, Failure, Request, StreamFailure, text_chunks

HI = [{"role": "user", "content": "hi"}]
REPLY_DELTAS = 6  # "Hello from the byokctl sandbox (MODEL)." one word per delta

#: provider -> (path below its prefix, body, query) of a streaming call.
CALLS: dict[str, tuple[str, dict[str, object], dict[str, str]]] = {
    "openai": ("/v1/chat/completions", {"model": "gpt-4o", "messages": HI, "stream": True}, {}),
    "openai-responses": ("/v1/responses", {"model": "gpt-4o", "input": "hi", "stream": True}, {}),
    "xai": ("/v1/chat/completions", {"model": "grok-4", "messages": HI, "stream": True}, {}),
    "deepseek": (
        "/chat/completions",
        {"model": "deepseek-reasoner", "messages": HI, "stream": True},
        {},
    ),
    "azure_openai": (
        "/openai/deployments/gpt4-prod/chat/completions",
        {"messages": HI, "stream": True},
        {"api-version": "2024-10-21"},
    ),
    "anthropic": (
        "/v1/messages",
        {"model": "claude-3-5-sonnet-20241022", "max_tokens": 8, "messages": HI, "stream": True},
        {},
    ),
    "gemini": (
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent",
        {"contents": [{"parts": [{"text": "hi"}]}]},
        {"alt": "sse"},
    ),
}


def answer(call: str, midstream: StreamFailure | None = None) -> Answer:
    provider = call.partition("-")[0]
    path, body, query = CALLS[call]
    api = PROVIDER_APIS[provider]
    request = Request(
        method="POST",
        path=path,
        query=query,
        headers={"content-type": "application/json"},
        body=json.dumps(body).encode(),
        midstream=midstream,
    )
    endpoint = api.endpoint(request)
    assert endpoint is not None
    return endpoint.handle(request)


def datas(a: Answer) -> list[dict[str, object] | str]:
    assert a.stream is not None
    out: list[dict[str, object] | str] = []
    for piece in a.stream:
        line = next(x for x in piece.decode().split("\n") if x.startswith("data: "))
        text = line.removeprefix("data: ")
        out.append(text if text == "[DONE]" else json.loads(text))
    return out


def is_delta(call: str, event: dict[str, object] | str) -> bool:
    """Whether ``event`` is one of the deltas ``-after-N`` counts."""
    if not isinstance(event, dict):
        return False
    if call == "anthropic":
        return event.get("type") == "content_block_delta"
    if call == "openai-responses":
        return event.get("type") == "response.output_text.delta"
    if call == "gemini":
        return "candidates" in event
    choices = event.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    delta = choices[0]["delta"]
    return bool(delta.get("content") or delta.get("reasoning_content"))


def is_error(event: dict[str, object] | str) -> bool:
    return isinstance(event, dict) and (event.get("type") == "error" or "error" in event)


@pytest.mark.parametrize("call", list(CALLS))
def test_a_whole_stream_has_every_delta_and_no_error(call: str) -> None:
    events = datas(answer(call))
    deltas = [e for e in events if is_delta(call, e)]
    reasoning = len(text_chunks("The user greets me; deepseek-reasoner answers in kind."))
    assert len(deltas) == REPLY_DELTAS + (reasoning if call == "deepseek" else 0)
    assert not any(is_error(e) for e in events)


@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize("after", [0, 1, 3, 6, 40])
@pytest.mark.parametrize("failure", [Failure.OUTAGE, Failure.RATE_LIMITED, Failure.INVALID_KEY])
def test_after_n_sends_n_deltas_then_the_error_and_ends(
    call: str, after: int, failure: Failure
) -> None:
    whole = [e for e in datas(answer(call)) if is_delta(call, e)]
    a = answer(call, StreamFailure(failure, after))
    assert a.status == 200
    events = datas(a)
    assert is_error(events[-1])
    assert not any(is_error(e) for e in events[:-1])
    assert sum(is_delta(call, e) for e in events) == min(after, len(whole))
    assert "[DONE]" not in events
    assert not any(
        isinstance(e, dict)
        and e.get("type") in ("message_stop", "response.completed", "message_delta")
        for e in events
    )
    # The error is the provider's own body for that failure.
    provider = call.partition("-")[0]
    error = events[-1]
    assert isinstance(error, dict)
    expected = PROVIDER_APIS[provider].failure(failure).body
    if call == "openai-responses":
        assert error["error"]["message"] == expected["error"]["message"]  # type: ignore[index]
    else:
        strip = {k: v for k, v in error.items() if k != "request_id"}
        assert strip == {k: v for k, v in expected.items() if k != "request_id"}


def test_non_streaming_calls_ignore_a_midstream_failure() -> None:
    api = PROVIDER_APIS["openai"]
    body = json.dumps({"model": "gpt-4o", "messages": HI}).encode()
    request = Request(
        "POST", "/v1/chat/completions", {}, {}, body, StreamFailure(Failure.OUTAGE, 0)
    )
    endpoint = api.endpoint(request)
    assert endpoint is not None
    plain = endpoint.handle(request)
    assert plain.stream is None
    assert plain.status == 200


@pytest.mark.parametrize(
    "text", ["Hello from the byokctl sandbox (gpt-4o).", "one", "a  b\tc\n", "x y "]
)
def test_text_chunks_join_back_to_the_text(text: str) -> None:
    assert "".join(text_chunks(text)) == text.lstrip()
