"""The official ``google-genai`` SDK against the sandbox: models, generate, stream, count.

Pointed at the sandbox through ``http_options`` (``base_url`` + ``api_version``); one
attempt per call (``HttpRetryOptions(attempts=1)``) so a failure is one request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from google import genai
from google.genai import errors, types

from byokctl.catalog import PROVIDERS
from byokctl.sandbox import Sandbox

MODEL = "gemini-2.0-flash"
REPLY = f"Hello from the byokctl sandbox ({MODEL})."
PIECES = ["Hello ", "from ", "the ", "byokctl ", "sandbox ", f"({MODEL})."]

#: Makes a client for a key, pointed at the sandbox.
Connect = Callable[[str], genai.Client]


@pytest.fixture
def connect(sb: Sandbox) -> Iterator[Connect]:
    clients: list[genai.Client] = []

    def make(key: str) -> genai.Client:
        c = genai.Client(
            api_key=key,
            http_options=types.HttpOptions(
                base_url=f"{sb.url}/gemini",
                api_version="v1beta",
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        )
        clients.append(c)  # the SDK closes a client's connections once it is collected
        return c

    yield make
    for c in clients:
        c.close()


def test_models_list_pages_through_all(sb: Sandbox, connect: Connect) -> None:
    names = [m.name for m in connect("g-good").models.list(config={"page_size": 4})]
    assert names == [f"models/{m}" for m in PROVIDERS["gemini"].known_models]
    assert len([r for r in sb.requests if r.path.endswith("/models")]) == 2


def test_generate_content(connect: Connect) -> None:
    response = connect("g-good").models.generate_content(model=MODEL, contents="hi")
    assert response.text == REPLY
    assert response.candidates is not None
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert response.usage_metadata is not None
    assert response.usage_metadata.candidates_token_count == len(PIECES)


def test_stream_yields_chunks_and_the_final_text(sb: Sandbox, connect: Connect) -> None:
    chunks = list(connect("g-good").models.generate_content_stream(model=MODEL, contents="hi"))
    assert [c.text for c in chunks] == PIECES
    assert chunks[-1].candidates is not None
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert all(c.candidates and c.candidates[0].finish_reason is None for c in chunks[:-1])
    assert chunks[-1].usage_metadata is not None
    assert chunks[-1].usage_metadata.total_token_count is not None
    assert sb.requests[-1].path == f"/gemini/v1beta/models/{MODEL}:streamGenerateContent"


def test_count_tokens(connect: Connect) -> None:
    c = connect("g-good")
    short = c.models.count_tokens(model=MODEL, contents="hi")
    long = c.models.count_tokens(model=MODEL, contents="word " * 40)
    assert short.total_tokens is not None and long.total_tokens is not None
    assert 1 <= short.total_tokens < long.total_tokens
    with pytest.raises(errors.ClientError) as caught:
        c.models.count_tokens(model="gemini-0", contents="hi")
    assert caught.value.code == 404


#: marker -> (exception class, HTTP status, Google status)
MARKERS = {
    "invalid": (errors.ClientError, 400, "INVALID_ARGUMENT"),
    "nocredits": (errors.ClientError, 400, "FAILED_PRECONDITION"),
    "forbidden": (errors.ClientError, 403, "PERMISSION_DENIED"),
    "ratelimited": (errors.ClientError, 429, "RESOURCE_EXHAUSTED"),
    "outage": (errors.ServerError, 503, "UNAVAILABLE"),
}


@pytest.mark.parametrize("marker", list(MARKERS))
def test_markers_are_the_sdks_own_errors(connect: Connect, marker: str) -> None:
    exc_class, code, status = MARKERS[marker]
    c = connect(f"g-{marker}")
    with pytest.raises(exc_class) as plain:
        c.models.generate_content(model=MODEL, contents="hi")
    with pytest.raises(exc_class) as streamed:
        list(c.models.generate_content_stream(model=MODEL, contents="hi"))
    for caught in (plain, streamed):
        assert (caught.value.code, caught.value.status) == (code, status)


@pytest.mark.parametrize(
    ("marker", "failure"),
    [("outage", (errors.ServerError, 503)), ("ratelimited", (errors.ClientError, 429))],
)
@pytest.mark.parametrize("after", [0, 4])
def test_after_n_fails_inside_the_stream(
    sb: Sandbox,
    connect: Connect,
    marker: str,
    failure: tuple[type[errors.APIError], int],
    after: int,
) -> None:
    exc_class, code = failure
    c = connect(f"g-{marker}-after-{after}")
    assert c.models.generate_content(model=MODEL, contents="hi").text == REPLY
    got: list[str | None] = []
    with pytest.raises(exc_class) as caught:
        got.extend(
            chunk.text for chunk in c.models.generate_content_stream(model=MODEL, contents="hi")
        )
    assert got == PIECES[:after]
    assert caught.value.code == code
    assert sb.requests[-1].status == 200
