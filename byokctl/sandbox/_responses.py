"""OpenAI's Responses API (``POST /v1/responses``), streamed or not, for any OpenAI-shaped API.

A stream is named server-sent events (``event: TYPE`` + ``data: {"type": TYPE,
"sequence_number": n, …}``), no ``[DONE]``:

``response.created`` → ``response.in_progress`` → ``response.output_item.added`` →
``response.content_part.added`` → ``response.output_text.delta`` (N of them) →
``response.output_text.done`` → ``response.content_part.done`` →
``response.output_item.done`` → ``response.completed``.

A stream scripted to fail sends N deltas, then ``event: error`` with the error nested
under ``error`` (as the live API sends it; the flat ``code``/``message``/``param`` the
reference documents are there too), and ends.
"""

from __future__ import annotations

from byokctl.sandbox._api import (
    Answer,
    JSONObject,
    chat_text,
    estimate_tokens,
    new_id,
    sse,
    streamed,
    text_chunks,
    texts_in,
)

_CREATED = 1_700_000_000


def _usage(body: JSONObject) -> JSONObject:
    prompt = estimate_tokens(" ".join(texts_in(body.get("input"))))
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 9,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + 9,
    }


def _part(text: str) -> JSONObject:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message(ident: str, status: str, parts: list[JSONObject]) -> JSONObject:
    return {
        "id": ident,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": parts,
    }


def _response(
    ident: str,
    model: str,
    status: str,
    output: list[JSONObject],
    usage: JSONObject | None,
) -> JSONObject:
    return {
        "id": ident,
        "object": "response",
        "created_at": _CREATED,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }


def _error_fields(error: JSONObject) -> JSONObject:
    """``type``, ``code``, ``message``, ``param`` of an error body (OpenAI's or xAI's shape)."""
    inner = error.get("error")
    if isinstance(inner, dict):
        code = inner.get("code") or inner.get("type")
        return {
            "type": inner.get("type") or code,
            "code": code,
            "message": inner.get("message"),
            "param": inner.get("param"),
        }
    code = error.get("code")
    return {"type": code, "code": code, "message": str(inner), "param": None}


def responses_answer(
    model: str, body: JSONObject, *, failure: tuple[int, JSONObject] | None = None
) -> Answer:
    """The answer to ``POST …/responses`` for ``model``: a stream when ``"stream": true``."""
    resp_id, msg_id = f"resp_{new_id()}", f"msg_{new_id()}"
    text = chat_text(model)
    usage = _usage(body)
    if body.get("stream") is not True:
        done = _message(msg_id, "completed", [_part(text)])
        return Answer(200, _response(resp_id, model, "completed", [done], usage))

    events: list[bytes] = []

    def emit(type_: str, **fields: object) -> None:
        events.append(sse({"type": type_, "sequence_number": len(events), **fields}, type_))

    location: JSONObject = {"item_id": msg_id, "output_index": 0, "content_index": 0}
    emit("response.created", response=_response(resp_id, model, "in_progress", [], None))
    emit("response.in_progress", response=_response(resp_id, model, "in_progress", [], None))
    emit("response.output_item.added", output_index=0, item=_message(msg_id, "in_progress", []))
    emit("response.content_part.added", **location, part=_part(""))
    deltas = text_chunks(text)
    if failure is not None:
        after, error = failure
        for delta in deltas[:after]:
            emit("response.output_text.delta", **location, delta=delta, logprobs=[])
        fields = _error_fields(error)
        emit("error", error=fields, **{k: v for k, v in fields.items() if k != "type"})
        return streamed(events)
    for delta in deltas:
        emit("response.output_text.delta", **location, delta=delta, logprobs=[])
    emit("response.output_text.done", **location, text=text, logprobs=[])
    emit("response.content_part.done", **location, part=_part(text))
    done = _message(msg_id, "completed", [_part(text)])
    emit("response.output_item.done", output_index=0, item=done)
    emit("response.completed", response=_response(resp_id, model, "completed", [done], usage))
    return streamed(events)
