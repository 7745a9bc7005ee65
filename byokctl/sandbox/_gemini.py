"""Google Gemini (``/gemini/v1beta``): Google's error shape with ``details[]``, page tokens.

Gemini answers an invalid key with **400** ``INVALID_ARGUMENT`` and
``details[].reason = "API_KEY_INVALID"``, and tells a rate-limited client how long to wait
in ``details[].retryDelay`` (a ``google.rpc.RetryInfo``), not in a ``Retry-After`` header.

``…:streamGenerateContent?alt=sse`` streams ``data: GenerateContentResponse`` events (no
``[DONE]``; the last carries ``finishReason`` and the full ``usageMetadata``); without
``alt=sse`` the same responses come as one JSON array, sent in pieces. A stream scripted
to fail sends N responses, then ``data: {"error": …}``.
"""

from __future__ import annotations

import base64
import binascii
import json
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

#: Gemini's default page size; larger requests are cut to the maximum, as Google does.
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000

_SERVICE = "generativelanguage.googleapis.com"
_CONTENT_TYPE = "application/json; charset=UTF-8"
_TYPE = "type.googleapis.com/google.rpc."


def google_error(
    status: int, grpc_status: str, message: str, details: list[JSONObject] | None = None
) -> Answer:
    """``{"error": {"code", "message", "status", "details"}}``."""
    error: JSONObject = {"code": status, "message": message, "status": grpc_status}
    if details:
        error["details"] = details
    return Answer(status, {"error": error}, content_type=_CONTENT_TYPE)


def _error_info(reason: str, **metadata: str) -> JSONObject:
    return {
        "@type": f"{_TYPE}ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {"service": _SERVICE, **metadata},
    }


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _page_offset(token: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    label, _, number = text.partition(":")
    return int(number) if label == "offset" and number.isdigit() else None


class GeminiAPI(ProviderAPI):
    """``GET /v1beta/models``, ``GET /v1beta/models/{m}``, ``POST …/models/{m}:generateContent``."""

    id: ClassVar[str] = "gemini"
    prefix: ClassVar[str] = "/gemini"

    def api_key(self, request: Request) -> str | None:
        return request.header_key("x-goog-api-key")

    def endpoint(self, request: Request) -> Endpoint | None:
        parts = path_parts(request.path)
        if len(parts) < 2 or parts[0] not in ("v1beta", "v1") or parts[1] != "models":
            return None
        if request.method == "GET" and len(parts) == 2:
            return Endpoint(self._list)
        if len(parts) == 3:
            model, _, verb = parts[2].partition(":")
            if request.method == "GET" and not verb:
                return Endpoint(lambda _r: self._model(model, "get"))
            if request.method == "POST" and verb in ("generateContent", "streamGenerateContent"):
                return Endpoint(lambda r: self._generate(model, verb, r))
            if request.method == "POST" and verb == "countTokens":
                return Endpoint(lambda r: self._count_tokens(model, r))
        return None

    def _entry(self, model: str) -> JSONObject:
        return {
            "name": f"models/{model}",
            "version": "001",
            "displayName": display_name(model),
            "description": f"{display_name(model)} (byokctl sandbox)",
            "inputTokenLimit": 1_048_576,
            "outputTokenLimit": 8192,
            "supportedGenerationMethods": ["generateContent", "countTokens"],
        }

    def _list(self, request: Request) -> Answer:
        size = int_param(
            request.query.get("pageSize"), default=DEFAULT_PAGE_SIZE, low=0, high=2**31
        )
        if size is None:
            return self.bad_request("Invalid value for pageSize: must be a non-negative integer.")
        size = min(size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)  # 0 means "the default"
        token = request.query.get("pageToken") or None
        start = 0 if token is None else _page_offset(token)
        if start is None or start > len(self.models):
            return self.bad_request("Invalid page token.")
        end = min(len(self.models), start + size)
        body: JSONObject = {"models": [self._entry(m) for m in self.models[start:end]]}
        if end < len(self.models):
            body["nextPageToken"] = _page_token(end)
        return Answer(200, body, content_type=_CONTENT_TYPE)

    def _model(self, model: str, method: str) -> Answer:
        if model not in self.models:
            return self.unknown_model(model, method)
        return Answer(200, self._entry(model), content_type=_CONTENT_TYPE)

    def _generate(self, model: str, verb: str, request: Request) -> Answer:
        if model not in self.models:
            return self.unknown_model(model, verb)
        body = request.json_object()
        if body is None:
            return self.bad_request("Invalid JSON payload received.")
        prompt = _prompt_tokens(body)
        text = chat_text(model)
        pieces = text_chunks(text)
        ident = new_id()

        def response(parts: str, last: bool) -> JSONObject:
            candidate: JSONObject = {"content": {"parts": [{"text": parts}], "role": "model"}}
            usage: JSONObject = {"promptTokenCount": prompt, "totalTokenCount": prompt}
            if last:
                candidate["finishReason"] = "STOP"
                usage = {
                    "promptTokenCount": prompt,
                    "candidatesTokenCount": len(pieces),
                    "totalTokenCount": prompt + len(pieces),
                }
            candidate["index"] = 0
            return {
                "candidates": [candidate],
                "usageMetadata": usage,
                "modelVersion": model,
                "responseId": ident,
            }

        if verb == "generateContent":
            return Answer(200, response(text, last=True), content_type=_CONTENT_TYPE)
        chunks = [response(p, last=i == len(pieces) - 1) for i, p in enumerate(pieces)]
        if (failure := self.stream_error(request)) is not None:
            after, error = failure
            chunks = [*chunks[:after], error]
        if request.query.get("alt") == "sse":
            return streamed([sse(c) for c in chunks], "text/event-stream")
        # Without alt=sse Google streams one JSON array, an element at a time.
        array = [json.dumps(c).encode() for c in chunks]
        return streamed([b"[" + array[0], *(b",\r\n" + a for a in array[1:]), b"]"], _CONTENT_TYPE)

    def _count_tokens(self, model: str, request: Request) -> Answer:
        """``POST models/{m}:countTokens``: ``totalTokens`` of ``contents`` (or of the request)."""
        if model not in self.models:
            return self.unknown_model(model, "countTokens")
        body = request.json_object()
        if body is None:
            return self.bad_request("Invalid JSON payload received.")
        inner = body.get("generateContentRequest")
        tokens = _prompt_tokens(inner if isinstance(inner, dict) else body)
        return Answer(
            200,
            {
                "totalTokens": tokens,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}],
            },
            content_type=_CONTENT_TYPE,
        )

    def unknown_model(self, model: str, method: str) -> Answer:
        """The answer for a model this key cannot use."""
        return google_error(
            404,
            "NOT_FOUND",
            f"models/{model} is not found for API version v1beta, or is not supported for "
            f"{method}. Call ListModels to see the list of available models and their "
            "supported methods.",
        )

    def failure(self, failure: Failure) -> Answer:
        match failure:
            case Failure.MISSING_KEY:
                return google_error(
                    401,
                    "UNAUTHENTICATED",
                    "Request is missing required authentication credential. Expected OAuth 2 "
                    "access token, login cookie or other valid authentication credential.",
                    [_error_info("CREDENTIALS_MISSING")],
                )
            case Failure.INVALID_KEY:
                message = "API key not valid. Please pass a valid API key."
                return google_error(
                    400,
                    "INVALID_ARGUMENT",
                    message,
                    [
                        _error_info("API_KEY_INVALID"),
                        {
                            "@type": f"{_TYPE}LocalizedMessage",
                            "locale": "en-US",
                            "message": message,
                        },
                    ],
                )
            case Failure.NO_CREDITS:
                return google_error(
                    400,
                    "FAILED_PRECONDITION",
                    "Gemini API free tier is not available in your country. Please enable "
                    "billing on your project in Google AI Studio.",
                )
            case Failure.FORBIDDEN:
                return google_error(
                    403,
                    "PERMISSION_DENIED",
                    f"Requests to this API {_SERVICE} method "
                    "google.ai.generativelanguage.v1beta.ModelService.ListModels are blocked.",
                    [_error_info("API_KEY_SERVICE_BLOCKED")],
                )
            case Failure.RATE_LIMITED:
                return google_error(
                    429,
                    "RESOURCE_EXHAUSTED",
                    "Resource has been exhausted (e.g. check quota).",
                    [
                        {
                            "@type": f"{_TYPE}QuotaFailure",
                            "violations": [
                                {
                                    "quotaMetric": f"{_SERVICE}/generate_requests",
                                    "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                                }
                            ],
                        },
                        {"@type": f"{_TYPE}RetryInfo", "retryDelay": f"{RETRY_AFTER_SECONDS}s"},
                    ],
                )
            case Failure.OUTAGE | Failure.UNAVAILABLE:
                return google_error(
                    503, "UNAVAILABLE", "The model is overloaded. Please try again later."
                )

    def bad_request(self, message: str) -> Answer:
        return google_error(400, "INVALID_ARGUMENT", message)

    def not_found(self, request: Request) -> Answer:
        return google_error(404, "NOT_FOUND", f"Method not found: {request.method} {request.path}")


def _prompt_tokens(body: JSONObject) -> int:
    """The sandbox's token count of a request's ``contents`` and ``systemInstruction``."""
    return estimate_tokens(
        " ".join(texts_in(body.get("systemInstruction")) + texts_in(body.get("contents")))
    )
