"""The official ``openai`` SDK streams from the sandbox: OpenAI, Azure, xAI, DeepSeek (and
every other OpenAI-shaped stand-in, e.g. the compatible provider, under its catalog path).

Real HTTP over loopback; ``max_retries=0`` so a failure is one request.
"""

from __future__ import annotations

import openai
import pytest

from byokctl.sandbox import PROVIDER_APIS, Sandbox
from byokctl.sandbox._openai import OpenAIAPI

from .conftest import base

#: Every stand-in that speaks OpenAI's API at its catalog base URL (Azure has its own
#: client and paths). A provider added as an ``OpenAIAPI`` subclass joins these tests.
OPENAI_SHAPED = [p for p, api in PROVIDER_APIS.items() if isinstance(api, OpenAIAPI)]
HI = [{"role": "user", "content": "hi"}]


def model_of(provider: str) -> str:
    return PROVIDER_APIS[provider].models[0]


def reply(model: str) -> str:
    return f"Hello from the byokctl sandbox ({model})."


def pieces(model: str) -> list[str]:
    return ["Hello ", "from ", "the ", "byokctl ", "sandbox ", f"({model})."]


def client(sb: Sandbox, key: str, provider: str = "openai") -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=base(sb, provider), max_retries=0)


def azure(sb: Sandbox, **auth: str) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(
        azure_endpoint=base(sb, "azure_openai"), api_version="2024-10-21", max_retries=0, **auth
    )


def test_the_openai_shaped_providers_are_covered() -> None:
    assert {"openai", "xai", "deepseek"} <= set(OPENAI_SHAPED)


@pytest.mark.parametrize("provider", OPENAI_SHAPED)
def test_chat_stream_yields_word_chunks_and_the_final_text(sb: Sandbox, provider: str) -> None:
    model = model_of(provider)
    stream = client(sb, "sk-good", provider).chat.completions.create(
        model=model, messages=HI, stream=True
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert text == pieces(model)
    assert "".join(text) == reply(model)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1
    assert all(c.usage is None for c in chunks)


@pytest.mark.parametrize("provider", OPENAI_SHAPED)
def test_include_usage_adds_a_final_chunk_with_no_choices(sb: Sandbox, provider: str) -> None:
    chunks = list(
        client(sb, "sk-good", provider).chat.completions.create(
            model=model_of(provider),
            messages=HI,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    *body, last = chunks
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (8, 9)
    assert all(c.usage is None and c.choices for c in body)


def test_the_stream_helper_accumulates_the_message(sb: Sandbox) -> None:
    with client(sb, "sk-good").chat.completions.stream(model="gpt-4o", messages=HI) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert "".join(deltas) == reply("gpt-4o")
    assert final.choices[0].message.content == reply("gpt-4o")


def test_deepseek_reasoner_streams_reasoning_content_first(sb: Sandbox) -> None:
    chunks = list(
        client(sb, "sk-ds", "deepseek").chat.completions.create(
            model="deepseek-reasoner", messages=HI, stream=True
        )
    )
    deltas = [c.choices[0].delta for c in chunks[1:-1]]
    reasoning = [getattr(d, "reasoning_content", None) for d in deltas]
    content = [d.content for d in deltas]
    thought = [r for r in reasoning if r is not None]
    assert "".join(thought) == "The user greets me; deepseek-reasoner answers in kind."
    # All of the reasoning comes before any of the answer.
    first_answer = content.index("Hello ")
    assert all(r is None for r in reasoning[first_answer:])
    assert all(c is None for c in content[:first_answer])
    assert "".join(c for c in content if c) == reply("deepseek-reasoner")
    plain = client(sb, "sk-ds", "deepseek").chat.completions.create(
        model="deepseek-reasoner", messages=HI
    )
    assert getattr(plain.choices[0].message, "reasoning_content", None) == "".join(thought)
    chat = list(
        client(sb, "sk-ds", "deepseek").chat.completions.create(
            model="deepseek-chat", messages=HI, stream=True
        )
    )
    assert all(getattr(c.choices[0].delta, "reasoning_content", None) is None for c in chat)


def test_responses_api_without_streaming(sb: Sandbox) -> None:
    response = client(sb, "sk-good").responses.create(model="gpt-4o", input="hello there")
    assert response.status == "completed"
    assert response.output_text == reply("gpt-4o")
    assert response.usage is not None
    assert response.usage.output_tokens == 9


def test_responses_api_stream_events(sb: Sandbox) -> None:
    events = list(client(sb, "sk-good").responses.create(model="gpt-4o", input="hi", stream=True))
    types = [e.type for e in events]
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 6,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == reply("gpt-4o")
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == reply("gpt-4o")


def test_responses_stream_helper_gives_the_final_response(sb: Sandbox) -> None:
    with client(sb, "sk-good", "xai").responses.stream(model="grok-4", input="hi") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == final.output_text == reply("grok-4")


def test_azure_stream_with_its_content_filter_chunk(sb: Sandbox) -> None:
    chunks = list(
        azure(sb, api_key="azure-good").chat.completions.create(
            model="gpt4-prod",
            messages=HI,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    # Azure's first chunk has no choices, only the prompt's filter results.
    assert chunks[0].choices == []
    assert getattr(chunks[0], "prompt_filter_results", None)
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == reply("gpt-4")


def test_azure_entra_id_token_and_model_retrieval(sb: Sandbox) -> None:
    entra = azure(sb, azure_ad_token="eyJ0eXAi.entra-good")
    assert entra.models.retrieve("gpt-4o").id == "gpt-4o"
    chunks = list(entra.chat.completions.create(model="gpt-4o-eu", messages=HI, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == reply("gpt-4o")
    assert sb.requests[-1].key_fingerprint == sb.fingerprint("eyJ0eXAi.entra-good")
    with pytest.raises(openai.NotFoundError):
        entra.models.retrieve("gpt-9")
    with pytest.raises(openai.AuthenticationError):
        azure(sb, azure_ad_token="eyJ.entra-invalid").models.retrieve("gpt-4o")


def test_azure_responses_api_on_a_deployment(sb: Sandbox) -> None:
    az = azure(sb, api_key="azure-good")
    assert az.responses.create(model="gpt4-prod", input="hi").output_text == reply("gpt-4")
    with az.responses.stream(model="gpt-4o-mini-eu", input="hi") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == reply("gpt-4o-mini")
    assert sb.requests[-1].path == "/azure/openai/responses"
    with pytest.raises(openai.NotFoundError) as caught:
        az.responses.create(model="missing-one", input="hi", stream=True)
    assert caught.value.code == "DeploymentNotFound"
    failing = azure(sb, api_key="azure-outage-after-2").responses.create(
        model="gpt4-prod", input="hi", stream=True
    )
    with pytest.raises(openai.APIError) as mid:
        list(failing)
    assert mid.value.code == "ServiceUnavailable"


# --- failure markers -----------------------------------------------------------------

#: provider -> marker -> the SDK's exception class for it, before a stream starts.
PRE_STREAM = {
    "openai": {
        "invalid": openai.AuthenticationError,
        "nocredits": openai.RateLimitError,
        "forbidden": openai.PermissionDeniedError,
        "ratelimited": openai.RateLimitError,
        "outage": openai.InternalServerError,
    },
    "xai": {
        "invalid": openai.BadRequestError,
        "nocredits": openai.PermissionDeniedError,
        "forbidden": openai.PermissionDeniedError,
        "ratelimited": openai.RateLimitError,
        "outage": openai.InternalServerError,
    },
    "deepseek": {
        "invalid": openai.AuthenticationError,
        "nocredits": openai.APIStatusError,  # 402: the SDK has no class of its own for it
        "forbidden": openai.PermissionDeniedError,
        "ratelimited": openai.RateLimitError,
        "outage": openai.InternalServerError,
    },
}
PRE_CASES = [(p, m, e) for p, table in PRE_STREAM.items() for m, e in table.items()]


@pytest.mark.parametrize(("provider", "marker", "exc_class"), PRE_CASES)
def test_markers_fail_a_stream_before_it_starts(
    sb: Sandbox, provider: str, marker: str, exc_class: type[openai.APIStatusError]
) -> None:
    with pytest.raises(exc_class) as caught:
        client(sb, f"sk-{marker}-1", provider).chat.completions.create(
            model=model_of(provider), messages=HI, stream=True
        )
    assert caught.value.status_code == sb.requests[-1].status


@pytest.mark.parametrize(
    ("marker", "exc_class"),
    [
        ("invalid", openai.AuthenticationError),
        ("nocredits", openai.PermissionDeniedError),
        ("ratelimited", openai.RateLimitError),
        ("outage", openai.InternalServerError),
    ],
)
def test_azure_markers_fail_a_stream_before_it_starts(
    sb: Sandbox, marker: str, exc_class: type[openai.APIStatusError]
) -> None:
    for auth in ({"api_key": f"azure-{marker}"}, {"azure_ad_token": f"eyJ.{marker}"}):
        with pytest.raises(exc_class):
            azure(sb, **auth).chat.completions.create(model="gpt4-prod", messages=HI, stream=True)


def test_responses_stream_fails_before_it_starts(sb: Sandbox) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        client(sb, "sk-nocredits").responses.create(model="gpt-4o", input="hi", stream=True)
    assert caught.value.code == "insufficient_quota"


def test_flaky_key_fails_twice_then_streams(sb: Sandbox) -> None:
    c = client(sb, "sk-flaky-stream")
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            c.chat.completions.create(model="gpt-4o", messages=HI, stream=True)
    assert "".join(
        ch.choices[0].delta.content or ""
        for ch in c.chat.completions.create(model="gpt-4o", messages=HI, stream=True)
    ) == reply("gpt-4o")


@pytest.mark.parametrize("provider", OPENAI_SHAPED)
@pytest.mark.parametrize("after", [0, 2, 5])
def test_after_n_fails_inside_the_stream(sb: Sandbox, provider: str, after: int) -> None:
    model = model_of(provider)
    got: list[str] = []
    stream = client(sb, f"sk-outage-after-{after}", provider).chat.completions.create(
        model=model, messages=HI, stream=True
    )
    with pytest.raises(openai.APIError) as caught:
        got.extend(c.choices[0].delta.content or "" for c in stream)
    assert not isinstance(caught.value, openai.APIStatusError)  # the answer was a 200
    assert got == ["", *pieces(model)[:after]]  # the role chunk, then `after` deltas
    assert sb.requests[-1].status == 200


def test_after_n_keeps_every_call_that_does_not_stream_ok(sb: Sandbox) -> None:
    c = client(sb, "sk-ratelimited-after-3")
    assert next(m.id for m in c.models.list()) == "gpt-4o"
    assert c.chat.completions.create(model="gpt-4o", messages=HI).choices[0].message.content
    with pytest.raises(openai.APIError) as caught:
        list(c.chat.completions.create(model="gpt-4o", messages=HI, stream=True))
    assert caught.value.code == "rate_limit_exceeded"


def test_after_n_fails_inside_a_responses_stream(sb: Sandbox) -> None:
    events: list[str] = []
    stream = client(sb, "sk-outage-after-2").responses.create(
        model="gpt-4o", input="hi", stream=True
    )
    with pytest.raises(openai.APIError) as caught:
        events.extend(e.type for e in stream)
    assert events.count("response.output_text.delta") == 2
    assert "response.completed" not in events
    assert "overloaded" in caught.value.message


def test_after_n_fails_inside_an_azure_stream(sb: Sandbox) -> None:
    stream = azure(sb, api_key="azure-outage-after-1").chat.completions.create(
        model="gpt4-prod", messages=HI, stream=True
    )
    got: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        got.extend(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert got == ["", "Hello "]
    assert caught.value.code == "ServiceUnavailable"
