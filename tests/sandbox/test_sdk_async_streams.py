"""The SDKs' async clients stream from the sandbox too (their own HTTP stacks' SSE parsing)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator

import anthropic
import openai
import pytest
from google import genai
from google.genai import errors, types

from byokctl.sandbox import Sandbox

from .conftest import base

HI = [{"role": "user", "content": "hi"}]

# google-genai's own aiohttp session subclass warns on import of its async path.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)


def reply(model: str) -> str:
    return f"Hello from the byokctl sandbox ({model})."


async def drain(items: AsyncIterable[str | None], into: list[str | None]) -> None:
    """Append every item to ``into`` (so that what came before a failure is kept)."""
    async for item in items:
        into.append(item)


def test_async_openai_stream_and_midstream_failure(sb: Sandbox) -> None:
    async def words(key: str) -> AsyncIterator[str | None]:
        async with openai.AsyncOpenAI(api_key=key, base_url=base(sb, "openai"), max_retries=0) as c:
            stream = await c.chat.completions.create(model="gpt-4o", messages=HI, stream=True)
            async for chunk in stream:
                yield chunk.choices[0].delta.content

    async def run() -> tuple[list[str | None], list[str | None]]:
        good: list[str | None] = []
        await drain(words("sk-good"), good)
        got: list[str | None] = []
        with pytest.raises(openai.APIError):
            await drain(words("sk-outage-after-2"), got)
        return good, got

    good, got = asyncio.run(run())
    assert "".join(w or "" for w in good) == reply("gpt-4o")
    assert got == ["", "Hello ", "from "]


def test_async_anthropic_stream_and_overload(sb: Sandbox) -> None:
    model = "claude-3-5-sonnet-20241022"

    async def words(key: str) -> AsyncIterator[str | None]:
        async with (
            anthropic.AsyncAnthropic(
                api_key=key, base_url=base(sb, "anthropic"), max_retries=0
            ) as c,
            c.messages.stream(model=model, max_tokens=64, messages=HI) as stream,
        ):
            async for text in stream.text_stream:
                yield text

    async def run() -> tuple[list[str | None], list[str | None], str | None]:
        good: list[str | None] = []
        await drain(words("good"), good)
        got: list[str | None] = []
        with pytest.raises(anthropic.APIStatusError) as caught:
            await drain(words("outage-after-1"), got)
        return good, got, caught.value.type

    good, got, error_type = asyncio.run(run())
    assert "".join(w or "" for w in good) == reply(model)
    assert got == ["Hello "]
    assert error_type == "overloaded_error"


def test_async_gemini_stream_and_errors(sb: Sandbox) -> None:
    model = "gemini-2.0-flash"

    def client(key: str) -> genai.Client:
        return genai.Client(
            api_key=key,
            http_options=types.HttpOptions(
                base_url=f"{sb.url}/gemini",
                api_version="v1beta",
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        )

    async def words(c: genai.Client) -> AsyncIterator[str | None]:
        async for chunk in await c.aio.models.generate_content_stream(model=model, contents="hi"):
            yield chunk.text

    async def run() -> tuple[list[str | None], list[str | None], str | None]:
        good, failing, invalid = client("g-good"), client("g-outage-after-3"), client("g-invalid")
        try:
            texts: list[str | None] = []
            await drain(words(good), texts)
            got: list[str | None] = []
            with pytest.raises(errors.ServerError):
                await drain(words(failing), got)
            with pytest.raises(errors.ClientError) as caught:
                await invalid.aio.models.generate_content(model=model, contents="hi")
            return texts, got, caught.value.status
        finally:
            for c in (good, failing, invalid):
                await c.aio.aclose()
                c.close()

    texts, got, status = asyncio.run(run())
    assert "".join(t or "" for t in texts) == reply(model)
    assert len(texts) == 6
    assert got == texts[:3]
    assert status == "INVALID_ARGUMENT"
