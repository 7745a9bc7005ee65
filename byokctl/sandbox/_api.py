"""What every provider's stand-in shares: request and answer values, failures, shapes.

A provider stand-in (:class:`ProviderAPI`) maps a :class:`Request` to an :class:`Answer`
and never touches a socket, a clock or shared state. The server in ``_server.py`` does the
I/O, the waiting and the bookkeeping (flaky counters, the request log).
"""

from __future__ import annotations

import json
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import ClassVar

from byokctl.catalog import PROVIDERS

#: A JSON object as the sandbox writes it.
JSONObject = dict[str, object]

#: Seconds every rate-limited answer asks the client to wait.
RETRY_AFTER_SECONDS = 1

#: A fixed epoch for the models' creation times, so answers are reproducible.
_EPOCH = 1_700_000_000


class Failure(StrEnum):
    """A failure a provider stand-in renders in its own shape."""

    MISSING_KEY = "missing_key"
    INVALID_KEY = "invalid_key"
    NO_CREDITS = "no_credits"
    FORBIDDEN = "forbidden"
    RATE_LIMITED = "rate_limited"
    OUTAGE = "outage"
    #: A ``flaky`` key's first answers: a plain 503, the same for every provider.
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class StreamFailure:
    """A failure scripted to come inside a stream (a ``-after-N`` key), after ``after`` deltas."""

    failure: Failure
    after: int


@dataclass(frozen=True)
class Request:
    """One HTTP request, seen from below the provider's path prefix."""

    method: str
    #: The path below the provider's prefix, e.g. ``/v1/models`` for ``/openai/v1/models``.
    path: str
    #: The first value of each query parameter.
    query: Mapping[str, str]
    #: Header names in lower case.
    headers: Mapping[str, str]
    body: bytes = b""
    #: Set by the server for a ``-after-N`` key: a stream fails inside, everything else is OK.
    midstream: StreamFailure | None = None

    def json_object(self) -> JSONObject | None:
        """The body as a JSON object; ``None`` when it is missing or not an object."""
        try:
            value = json.loads(self.body or b"null")
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def bearer_token(self) -> str | None:
        """The token of ``Authorization: Bearer TOKEN``; ``None`` when absent or empty."""
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        token = token.strip()
        return token if scheme.lower() == "bearer" and token else None

    def header_key(self, name: str) -> str | None:
        """The non-empty value of header ``name`` (lower case)."""
        value = self.headers.get(name, "").strip()
        return value or None


@dataclass(frozen=True)
class Answer:
    """The HTTP answer: status, JSON body, extra headers; or a stream of body pieces.

    With ``stream`` set the body is ignored: the server sends the pieces in order, one HTTP
    chunk each (``Transfer-Encoding: chunked``), as the providers send server-sent events.
    """

    status: int
    body: JSONObject
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    stream: tuple[bytes, ...] | None = None


#: The content type of every server-sent-event stream.
EVENT_STREAM = "text/event-stream; charset=utf-8"


def sse(data: object, event: str | None = None) -> bytes:
    """One server-sent event: ``event: NAME`` (when given) and ``data: JSON`` (or a raw string)."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event is not None else ""
    return f"{head}data: {text}\n\n".encode()


def streamed(pieces: Sequence[bytes], content_type: str = EVENT_STREAM) -> Answer:
    """A 200 that streams ``pieces``."""
    return Answer(200, {}, {"cache-control": "no-cache"}, content_type, tuple(pieces))


def text_chunks(text: str) -> list[str]:
    """``text`` cut into the deltas a stream sends: one word (with its trailing space) each."""
    return re.findall(r"\S+\s*", text) or [text]


def estimate_tokens(text: str) -> int:
    """A deterministic token count for ``text``: one per 4 characters, at least 1."""
    return max(1, (len(text) + 3) // 4)


def texts_in(value: object) -> list[str]:
    """Every string under a ``text`` or ``content`` key (or a bare string) anywhere in ``value``."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [t for item in value for t in texts_in(item)]
    if isinstance(value, dict):
        return [
            t for k, v in value.items() if k in ("text", "content", "parts") for t in texts_in(v)
        ]
    return []


@dataclass(frozen=True)
class Endpoint:
    """A route's handler, plus the failures it answers itself instead of the generic shape.

    ``overrides`` exists for status endpoints whose point is to report a condition with a
    200: DeepSeek's balance says ``is_available: false`` for an empty account.
    """

    handle: Callable[[Request], Answer]
    overrides: Mapping[Failure, Callable[[Request], Answer]] = field(default_factory=dict)


class ProviderAPI(ABC):
    """One provider's stand-in: its routes, auth header, and error shapes."""

    #: The catalog id (``byokctl.catalog.PROVIDERS``).
    id: ClassVar[str]
    #: Every path of this provider starts with it, e.g. ``/openai``.
    prefix: ClassVar[str]

    @property
    def models(self) -> tuple[str, ...]:
        """The model ids every valid key may use: the catalog's known models."""
        return PROVIDERS[self.id].known_models

    @abstractmethod
    def api_key(self, request: Request) -> str | None:
        """The key from the provider's auth header; ``None`` when missing or empty."""

    @abstractmethod
    def endpoint(self, request: Request) -> Endpoint | None:
        """The route for the request; ``None`` for an unknown path or method."""

    @abstractmethod
    def failure(self, failure: Failure) -> Answer:
        """``failure`` in the provider's real status and error shape."""

    @abstractmethod
    def bad_request(self, message: str) -> Answer:
        """A 400 for a malformed request, in the provider's shape."""

    @abstractmethod
    def not_found(self, request: Request) -> Answer:
        """A 404 for an unknown path, in the provider's shape."""

    def precondition(self, request: Request) -> Answer | None:
        """An error for a request that is authenticated but not well-formed (e.g. no version)."""
        del request
        return None

    def stream_error(self, request: Request) -> tuple[int, JSONObject] | None:
        """``(after, error body)`` for a stream scripted to fail inside; ``None`` otherwise."""
        if request.midstream is None:
            return None
        return request.midstream.after, self.failure(request.midstream.failure).body


# --- shapes and helpers ------------------------------------------------------------------


def created_unix(index: int) -> int:
    """A stable, distinct creation time for the ``index``-th model of a list."""
    return _EPOCH + index * 86_400


def created_iso(index: int) -> str:
    """:func:`created_unix` as RFC 3339, as Anthropic writes it."""
    return datetime.fromtimestamp(created_unix(index), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_DATE_SUFFIX = re.compile(r"-\d{8}$")


def display_name(model_id: str) -> str:
    """A human name for a model id: ``claude-3-5-sonnet-20241022`` -> ``Claude 3.5 Sonnet``."""
    words: list[str] = []
    for part in _DATE_SUFFIX.sub("", model_id).split("-"):
        if part.isdigit() and words and words[-1].replace(".", "").isdigit():
            words[-1] += f".{part}"  # "3-5" is version 3.5
        else:
            words.append(part[:1].upper() + part[1:])
    return " ".join(words)


def path_parts(path: str) -> list[str]:
    """The non-empty segments of ``path``."""
    return [p for p in path.split("/") if p]


def chat_text(model: str) -> str:
    """The canned reply of every inference endpoint."""
    return f"Hello from the byokctl sandbox ({model})."


def int_param(value: str | None, *, default: int, low: int, high: int) -> int | None:
    """An integer query parameter in ``[low, high]``; ``None`` when it is malformed."""
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        return None
    return number if low <= number <= high else None


def openai_model(models: Sequence[str], index: int, owned_by: str) -> JSONObject:
    """One model object in OpenAI's shape (also xAI's and DeepSeek's)."""
    return {
        "id": models[index],
        "object": "model",
        "created": created_unix(index),
        "owned_by": owned_by,
    }


def openai_model_list(models: Sequence[str], owned_by: str) -> JSONObject:
    """``GET /models`` in OpenAI's shape (also xAI's and DeepSeek's)."""
    return {
        "object": "list",
        "data": [openai_model(models, i, owned_by) for i in range(len(models))],
    }


def new_id() -> str:
    """A random id for a reply object (``chatcmpl-…``, ``msg_…``)."""
    return uuid.uuid4().hex[:24]


def openai_chat_completion(model: str) -> JSONObject:
    """A ``chat.completion`` object with the canned reply."""
    text = chat_text(model)
    return {
        "id": f"chatcmpl-{new_id()}",
        "object": "chat.completion",
        "created": _EPOCH,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 8, "completion_tokens": 9, "total_tokens": 17},
        "system_fingerprint": "fp_sandbox",
    }
