"""Anthropic (``/anthropic``): ``/v1/models`` paginated by ``limit``/``after_id``/``before_id``.

``POST /v1/messages`` with ``"stream": true`` answers Anthropic's named events:
``message_start`` → ``content_block_start`` → ``ping`` → ``content_block_delta`` (N of them) →
``content_block_stop`` → ``message_delta`` → ``message_stop``. A stream scripted to fail
sends N deltas, then ``event: error`` (e.g. ``overloaded_error``), and ends.
"""

from __future__ import annotations

from typing import ClassVar

from byokctl.sandbox._api import (
    RETRY_AFTER_SECONDS,
    Answer,
    Endpoint,
    Failure,
    JSONObject,
    ProviderAPI,
    Request,
    chat_text,
    created_iso,
    display_name,
    estimate_tokens,
    int_param,
    new_id,
    path_parts,
    sse,
    streamed,
    text_chunks,
    texts_in,
)

#: Anthropic's default page size and its maximum.
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000


def anthropic_error(
    status: int, type_: str, message: str, headers: dict[str, str] | None = None
) -> Answer:
    """``{"type": "error", "error": {"type", "message"}, "request_id"}``."""
    request_id = f"req_{new_id()}"
    body: JSONObject = {
        "type": "error",
        "error": {"type": type_, "message": message},
        "request_id": request_id,
    }
    return Answer(status, body, {"request-id": request_id, **(headers or {})})


class AnthropicAPI(ProviderAPI):
    """``GET /v1/models``, ``GET /v1/models/{id}``, ``POST /v1/messages`` (+ ``/count_tokens``)."""

    id: ClassVar[str] = "anthropic"
    prefix: ClassVar[str] = "/anthropic"

    def api_key(self, request: Request) -> str | None:
        # PROVIDERS.md's header is x-api-key; the official SDK (2.x) sends the same key as
        # `Authorization: Bearer`, so the real API takes both.
        return request.header_key("x-api-key") or request.bearer_token()

    def precondition(self, request: Request) -> Answer | None:
        if not request.header_key("anthropic-version"):
            return anthropic_error(
                400, "invalid_request_error", "anthropic-version: header is required"
            )
        return None

    def endpoint(self, request: Request) -> Endpoint | None:
        parts = path_parts(request.path)
        if request.method == "GET" and parts == ["v1", "models"]:
            return Endpoint(self._list)
        if request.method == "GET" and len(parts) == 3 and parts[:2] == ["v1", "models"]:
            return Endpoint(lambda _r: self._model(parts[2]))
        if request.method == "POST" and parts == ["v1", "messages"]:
            return Endpoint(self._message)
        if request.method == "POST" and parts == ["v1", "messages", "count_tokens"]:
            return Endpoint(self._count_tokens)
        return None

    def _entry(self, index: int) -> JSONObject:
        model = self.models[index]
        return {
            "type": "model",
            "id": model,
            "display_name": display_name(model),
            "created_at": created_iso(index),
        }

    def _list(self, request: Request) -> Answer:
        limit = int_param(request.query.get("limit"), default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
        if limit is None:
            return self.bad_request(f"limit: must be an integer from 1 to {MAX_LIMIT}")
        ids = list(self.models)
        after, before = request.query.get("after_id"), request.query.get("before_id")
        if after is not None and before is not None:
            return self.bad_request("after_id and before_id cannot both be given")
        for cursor in (after, before):
            if cursor is not None and cursor not in ids:
                return self.bad_request(f"unknown model id in cursor: {cursor}")
        if before is not None:
            # The page just before the cursor; `has_more` says whether more lie before it.
            end = ids.index(before)
            start = max(0, end - limit)
            has_more = start > 0
        else:
            start = ids.index(after) + 1 if after is not None else 0
            end = min(len(ids), start + limit)
            has_more = end < len(ids)
        page = [self._entry(i) for i in range(start, end)]
        return Answer(
            200,
            {
                "data": page,
                "has_more": has_more,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
            },
        )

    def _model(self, model: str) -> Answer:
        if model not in self.models:
            return self.unknown_model(model)
        return Answer(200, self._entry(self.models.index(model)))

    def _message(self, request: Request) -> Answer:
        body = request.json_object()
        if body is None or not isinstance(body.get("model"), str):
            return self.bad_request("model: Field required")
        model = str(body["model"])
        if model not in self.models:
            return self.unknown_model(model)
        text = chat_text(model)
        usage = {"input_tokens": _input_tokens(body), "output_tokens": len(text_chunks(text))}
        message: JSONObject = {
            "id": f"msg_{new_id()}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage,
        }
        if body.get("stream") is not True:
            return Answer(200, message)
        start = message | {
            "content": [],
            "stop_reason": None,
            "usage": usage | {"output_tokens": 1},
        }
        events = [
            sse({"type": "message_start", "message": start}, "message_start"),
            sse(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                "content_block_start",
            ),
            sse({"type": "ping"}, "ping"),
        ]
        deltas = [
            sse(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": piece},
                },
                "content_block_delta",
            )
            for piece in text_chunks(text)
        ]
        if (failure := self.stream_error(request)) is not None:
            after, error = failure
            return streamed([*events, *deltas[:after], sse(error, "error")])
        return streamed(
            [
                *events,
                *deltas,
                sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
                sse(
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                        "usage": {"output_tokens": usage["output_tokens"]},
                    },
                    "message_delta",
                ),
                sse({"type": "message_stop"}, "message_stop"),
            ]
        )

    def _count_tokens(self, request: Request) -> Answer:
        """``POST /v1/messages/count_tokens``: ``{"input_tokens": N}`` for the request's text."""
        body = request.json_object()
        if body is None or not isinstance(body.get("model"), str):
            return self.bad_request("model: Field required")
        if not isinstance(body.get("messages"), list):
            return self.bad_request("messages: Field required")
        model = str(body["model"])
        if model not in self.models:
            return self.unknown_model(model)
        return Answer(200, {"input_tokens": _input_tokens(body)})

    def unknown_model(self, model: str) -> Answer:
        """The answer for a model this key cannot use."""
        return anthropic_error(404, "not_found_error", f"model: {model}")

    def failure(self, failure: Failure) -> Answer:
        match failure:
            case Failure.MISSING_KEY:
                return anthropic_error(401, "authentication_error", "x-api-key header is required")
            case Failure.INVALID_KEY:
                return anthropic_error(401, "authentication_error", "invalid x-api-key")
            case Failure.NO_CREDITS:
                return anthropic_error(
                    400,
                    "invalid_request_error",
                    "Your credit balance is too low to access the Anthropic API. Please go to "
                    "Plans & Billing to upgrade or purchase credits.",
                )
            case Failure.FORBIDDEN:
                return anthropic_error(
                    403,
                    "permission_error",
                    "Your API key does not have permission to use the specified resource.",
                )
            case Failure.RATE_LIMITED:
                return anthropic_error(
                    429,
                    "rate_limit_error",
                    "Number of requests has exceeded your per-minute rate limit. Please try "
                    "again later.",
                    {
                        "retry-after": str(RETRY_AFTER_SECONDS),
                        "anthropic-ratelimit-requests-remaining": "0",
                    },
                )
            case Failure.OUTAGE:
                return anthropic_error(529, "overloaded_error", "Overloaded")
            case Failure.UNAVAILABLE:
                return anthropic_error(503, "api_error", "Service temporarily unavailable")

    def bad_request(self, message: str) -> Answer:
        return anthropic_error(400, "invalid_request_error", message)

    def not_found(self, request: Request) -> Answer:
        del request
        return anthropic_error(404, "not_found_error", "Not found")


def _input_tokens(body: JSONObject) -> int:
    """The sandbox's token count of a messages request: its system prompt and messages."""
    return estimate_tokens(" ".join(texts_in(body.get("system")) + texts_in(body.get("messages"))))
