"""The official ``anthropic`` SDK streams messages from the sandbox and counts tokens.

Real HTTP over loopback; ``max_retries=0`` so a failure is one request.
"""

from __future__ import annotations

import anthropic
import pytest

from byokctl.catalog import PROVIDERS
from byokctl.sandbox import Sandbox

from .conftest import base

MODEL = PROVIDERS["anthropic"].known_models[0]
REPLY = f"Hello from the byokctl sandbox ({MODEL})."
PIECES = ["Hello ", "from ", "the ", "byokctl ", "sandbox ", f"({MODEL})."]
HI = [{"role": "user", "content": "hi"}]


def client(sb: Sandbox, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=key, base_url=base(sb, "anthropic"), max_retries=0)


def test_raw_stream_is_the_real_event_sequence(sb: Sandbox) -> None:
    events = list(
        client(sb, "good").messages.create(model=MODEL, max_tokens=64, messages=HI, stream=True)
    )
    # The SDK drops `ping` events; the wire test sees them.
    assert [e.type for e in events] == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * len(PIECES),
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0]
    assert start.type == "message_start"
    assert start.message.content == [] and start.message.stop_reason is None
    deltas = [e.delta.text for e in events if e.type == "content_block_delta"]
    assert deltas == PIECES
    end = events[-2]
    assert end.type == "message_delta"
    assert end.delta.stop_reason == "end_turn"
    assert end.usage.output_tokens == len(PIECES)


def test_stream_helper_text_and_final_message(sb: Sandbox) -> None:
    with client(sb, "good").messages.stream(model=MODEL, max_tokens=64, messages=HI) as stream:
        text = list(stream.text_stream)
        final = stream.get_final_message()
    assert text == PIECES
    assert final.content[0].type == "text"
    assert final.content[0].text == REPLY
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == len(PIECES)


def test_count_tokens(sb: Sandbox) -> None:
    c = client(sb, "good")
    short = c.messages.count_tokens(model=MODEL, messages=HI)
    long = c.messages.count_tokens(
        model=MODEL,
        system="You are a helpdesk assistant.",
        messages=[{"role": "user", "content": [{"type": "text", "text": "word " * 40}]}],
    )
    assert short.input_tokens >= 1
    assert long.input_tokens > short.input_tokens
    with pytest.raises(anthropic.NotFoundError):
        c.messages.count_tokens(model="claude-0", messages=HI)
    with pytest.raises(anthropic.AuthenticationError):
        client(sb, "invalid").messages.count_tokens(model=MODEL, messages=HI)


@pytest.mark.parametrize(
    ("key", "exc_class"),
    [
        ("invalid", anthropic.AuthenticationError),
        ("nocredits", anthropic.BadRequestError),
        ("forbidden", anthropic.PermissionDeniedError),
        ("ratelimited", anthropic.RateLimitError),
        ("outage", anthropic.OverloadedError),
    ],
)
def test_markers_fail_a_stream_before_it_starts(
    sb: Sandbox, key: str, exc_class: type[anthropic.APIStatusError]
) -> None:
    with pytest.raises(exc_class):
        client(sb, f"sk-ant-{key}").messages.create(
            model=MODEL, max_tokens=64, messages=HI, stream=True
        )
    with (
        pytest.raises(exc_class),
        client(sb, f"sk-ant-{key}").messages.stream(
            model=MODEL, max_tokens=64, messages=HI
        ) as stream,
    ):
        list(stream.text_stream)


@pytest.mark.parametrize("after", [0, 3])
def test_overloaded_error_mid_stream(sb: Sandbox, after: int) -> None:
    got: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        client(sb, f"outage-after-{after}").messages.stream(
            model=MODEL, max_tokens=64, messages=HI
        ) as stream,
    ):
        got.extend(stream.text_stream)
    assert got == PIECES[:after]
    assert caught.value.type == "overloaded_error"
    assert caught.value.status_code == 200  # the error came inside a 200 stream
    assert sb.requests[-1].status == 200


def test_after_n_keeps_calls_that_do_not_stream_ok(sb: Sandbox) -> None:
    c = client(sb, "ratelimited-after-1")
    assert c.messages.create(model=MODEL, max_tokens=64, messages=HI).content[0].type == "text"
    assert c.messages.count_tokens(model=MODEL, messages=HI).input_tokens >= 1
    events: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        events.extend(
            e.type for e in c.messages.create(model=MODEL, max_tokens=64, messages=HI, stream=True)
        )
    assert events == ["message_start", "content_block_start", "content_block_delta"]
    assert caught.value.type == "rate_limit_error"
