"""OpenAI-shaped chat completions, streamed or not: OpenAI, Azure, xAI, DeepSeek, compatible.

Pure functions of the model and the request body, so any OpenAI-shaped stand-in (under
any path prefix) answers ``POST …/chat/completions`` with :func:`chat_answer`. A stream is
server-sent events, one ``chat.completion.chunk`` per ``data:`` line:

1. (Azure only) a chunk with empty ``choices`` and ``prompt_filter_results``;
2. the role chunk (``delta: {"role": "assistant", "content": ""}``);
3. one chunk per delta: ``reasoning_content`` first for a reasoning model (DeepSeek's
   ``deepseek-reasoner``), then ``content``;
4. the finish chunk (``delta: {}``, ``finish_reason: "stop"``);
5. with ``stream_options.include_usage``: a chunk with empty ``choices`` and the usage
   (every earlier chunk then carries ``"usage": null``, as OpenAI's do);
6. ``data: [DONE]``.

A stream scripted to fail (``-after-N`` keys) sends N deltas, then ``data: {"error": …}``
in the provider's error shape, and ends without ``[DONE]``.
"""

from __future__ import annotations

from byokctl.sandbox._api import (
    Answer,
    JSONObject,
    chat_text,
    new_id,
    openai_chat_completion,
    sse,
    streamed,
    text_chunks,
)

#: The fixed creation time of every chat object (as in ``openai_chat_completion``).
_CREATED = 1_700_000_000

#: Azure's content-filter verdict on a prompt or a delta: nothing filtered.
_FILTER_OK: JSONObject = {
    name: {"filtered": False, "severity": "safe"}
    for name in ("hate", "self_harm", "sexual", "violence")
}


def wants_stream(body: JSONObject) -> bool:
    """Whether the request body asks for a stream (``"stream": true``)."""
    return body.get("stream") is True


def wants_usage(body: JSONObject) -> bool:
    """Whether a stream should end with a usage chunk (``stream_options.include_usage``)."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def reasoning_text(model: str) -> str:
    """The canned chain of thought of a reasoning model."""
    return f"The user greets me; {model} answers in kind."


def chat_usage(reasoning: str | None) -> JSONObject:
    """The usage object; a reasoning model counts its reasoning tokens too."""
    completion = 9 + (len(text_chunks(reasoning)) if reasoning else 0)
    usage: JSONObject = {
        "prompt_tokens": 8,
        "completion_tokens": completion,
        "total_tokens": 8 + completion,
    }
    if reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": completion - 9}
    return usage


def chat_answer(
    model: str,
    body: JSONObject,
    *,
    failure: tuple[int, JSONObject] | None = None,
    reasoning: bool = False,
    azure: bool = False,
) -> Answer:
    """The answer to ``POST …/chat/completions`` for ``model``: a stream when asked for one.

    ``failure`` is ``(after, error body)`` from :meth:`ProviderAPI.stream_error`;
    ``reasoning`` adds ``reasoning_content`` (DeepSeek's reasoner); ``azure`` adds Azure's
    content-filter results.
    """
    thought = reasoning_text(model) if reasoning else None
    if wants_stream(body):
        pieces = chat_stream(
            model,
            include_usage=wants_usage(body),
            failure=failure,
            reasoning=thought,
            azure=azure,
        )
        return streamed(pieces)
    message: JSONObject = {"role": "assistant", "content": chat_text(model), "refusal": None}
    if thought is not None:
        message["reasoning_content"] = thought
    choice: JSONObject = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
    completion = openai_chat_completion(model) | {"choices": [choice], "usage": chat_usage(thought)}
    if azure:
        choice["content_filter_results"] = _FILTER_OK
        completion["prompt_filter_results"] = [
            {"prompt_index": 0, "content_filter_results": _FILTER_OK}
        ]
    return Answer(200, completion)


def chat_stream(
    model: str,
    *,
    include_usage: bool = False,
    failure: tuple[int, JSONObject] | None = None,
    reasoning: str | None = None,
    azure: bool = False,
) -> list[bytes]:
    """The server-sent events of a streamed chat completion (see the module's docstring)."""
    ident = f"chatcmpl-{new_id()}"

    def chunk(
        delta: JSONObject | None, finish: str | None = None, usage: JSONObject | None = None
    ) -> bytes:
        value: JSONObject = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": _CREATED,
            "model": model,
            "system_fingerprint": "fp_sandbox",
            "choices": [],
        }
        if delta is not None:
            choice: JSONObject = {
                "index": 0,
                "delta": delta,
                "logprobs": None,
                "finish_reason": finish,
            }
            if azure and delta.get("content"):
                choice["content_filter_results"] = _FILTER_OK
            value["choices"] = [choice]
        if include_usage:
            value["usage"] = usage
        return sse(value)

    events: list[bytes] = []
    if azure:
        events.append(
            sse(
                {
                    "choices": [],
                    "created": 0,
                    "id": "",
                    "model": "",
                    "object": "",
                    "prompt_filter_results": [
                        {"prompt_index": 0, "content_filter_results": _FILTER_OK}
                    ],
                }
            )
        )
    first: JSONObject = {"role": "assistant", "content": "", "refusal": None}
    deltas: list[JSONObject] = []
    if reasoning is not None:
        first = {"role": "assistant", "content": None, "reasoning_content": ""}
        deltas += [{"content": None, "reasoning_content": p} for p in text_chunks(reasoning)]
        deltas += [{"content": p, "reasoning_content": None} for p in text_chunks(chat_text(model))]
    else:
        deltas += [{"content": p} for p in text_chunks(chat_text(model))]
    events.append(chunk(first))
    if failure is not None:
        after, error = failure
        events += [chunk(d) for d in deltas[:after]]
        events.append(sse(error))
        return events
    events += [chunk(d) for d in deltas]
    events.append(chunk({}, "stop"))
    if include_usage:
        events.append(chunk(None, usage=chat_usage(reasoning)))
    events.append(sse("[DONE]"))
    return events
