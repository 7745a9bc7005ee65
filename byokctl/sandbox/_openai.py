"""OpenAI (``/openai/v1``) and DeepSeek (``/deepseek``), which copies OpenAI's API shapes.

Chat completions and the Responses API stream when asked (``_openai_stream``,
``_responses``); a subclass under another prefix (xAI, an OpenAI-compatible server) gets
both by inheriting :class:`OpenAIAPI`.
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
    openai_model,
    openai_model_list,
    path_parts,
)
from byokctl.sandbox._openai_stream import chat_answer
from byokctl.sandbox._responses import responses_answer


def openai_error(
    status: int,
    message: str,
    *,
    type_: str,
    code: str | None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """``{"error": {"message", "type", "param", "code"}}`` — OpenAI's (and DeepSeek's) shape."""
    body: JSONObject = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return Answer(status, body, headers or {})


_RETRY = {"retry-after": str(RETRY_AFTER_SECONDS)}


class OpenAIAPI(ProviderAPI):
    """``GET /v1/models``, ``/v1/models/{id}``, ``POST /v1/chat/completions``, ``/v1/responses``.

    Both ``POST`` endpoints stream when the body says ``"stream": true``.
    """

    id: ClassVar[str] = "openai"
    prefix: ClassVar[str] = "/openai"
    owned_by: ClassVar[str] = "system"
    #: Path segments before the resource name (``v1``); DeepSeek also serves them without.
    versions: ClassVar[tuple[tuple[str, ...], ...]] = (("v1",),)

    def api_key(self, request: Request) -> str | None:
        return request.bearer_token()

    def endpoint(self, request: Request) -> Endpoint | None:
        parts = path_parts(request.path)
        for version in self.versions:
            if tuple(parts[: len(version)]) == version:
                return self._route(request.method, parts[len(version) :])
        return None

    def _route(self, method: str, parts: list[str]) -> Endpoint | None:
        if method == "GET" and parts == ["models"]:
            return Endpoint(lambda _r: Answer(200, openai_model_list(self.models, self.owned_by)))
        if method == "GET" and len(parts) == 2 and parts[0] == "models":
            return Endpoint(lambda _r: self._model(parts[1]))
        if method == "POST" and parts == ["chat", "completions"]:
            return Endpoint(self._chat)
        if method == "POST" and parts == ["responses"]:
            return Endpoint(self._responses)
        return None

    def _model(self, model: str) -> Answer:
        if model not in self.models:
            return self.unknown_model(model)
        return Answer(200, openai_model(self.models, self.models.index(model), self.owned_by))

    def _chat(self, request: Request) -> Answer:
        body = request.json_object()
        if body is None or not isinstance(body.get("model"), str):
            return self.bad_request("We could not parse the JSON body of your request.")
        model = str(body["model"])
        if model not in self.models:
            return self.unknown_model(model)
        failure = self.stream_error(request)
        return chat_answer(model, body, failure=failure, reasoning=self.reasons(model))

    def _responses(self, request: Request) -> Answer:
        body = request.json_object()
        if body is None or not isinstance(body.get("model"), str):
            return self.bad_request("Missing required parameter: 'model'.")
        model = str(body["model"])
        if model not in self.models:
            return self.unknown_model(model)
        return responses_answer(model, body, failure=self.stream_error(request))

    def reasons(self, model: str) -> bool:
        """Whether ``model`` answers with ``reasoning_content`` (DeepSeek's reasoner)."""
        del model
        return False

    def unknown_model(self, model: str) -> Answer:
        """The answer for a model this key cannot use."""
        return openai_error(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            type_="invalid_request_error",
            code="model_not_found",
        )

    def failure(self, failure: Failure) -> Answer:
        match failure:
            case Failure.MISSING_KEY:
                return openai_error(
                    401,
                    "You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                    type_="invalid_request_error",
                    code=None,
                )
            case Failure.INVALID_KEY:
                return openai_error(
                    401,
                    "Incorrect API key provided. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    type_="invalid_request_error",
                    code="invalid_api_key",
                )
            case Failure.NO_CREDITS:
                return openai_error(
                    429,
                    "You exceeded your current quota, please check your plan and billing "
                    "details. For more information on this error, read the docs: "
                    "https://platform.openai.com/docs/guides/error-codes/api-errors.",
                    type_="insufficient_quota",
                    code="insufficient_quota",
                )
            case Failure.FORBIDDEN:
                return openai_error(
                    403,
                    "You have insufficient permissions for this operation. Missing scopes: "
                    "api.model.read. Check that you have the correct role in your organization "
                    "and project, and if you're using a restricted API key, that it has the "
                    "necessary scopes.",
                    type_="invalid_request_error",
                    code=None,
                )
            case Failure.RATE_LIMITED:
                return openai_error(
                    429,
                    "Rate limit reached for requests on requests per min (RPM): Limit 3, "
                    f"Used 3, Requested 1. Please try again in {RETRY_AFTER_SECONDS}s.",
                    type_="requests",
                    code="rate_limit_exceeded",
                    headers={
                        **_RETRY,
                        "x-ratelimit-remaining-requests": "0",
                        "x-ratelimit-reset-requests": f"{RETRY_AFTER_SECONDS}s",
                    },
                )
            case Failure.OUTAGE | Failure.UNAVAILABLE:
                return openai_error(
                    503,
                    "The server is overloaded or not ready yet.",
                    type_="server_error",
                    code=None,
                )

    def bad_request(self, message: str) -> Answer:
        return openai_error(400, message, type_="invalid_request_error", code=None)

    def not_found(self, request: Request) -> Answer:
        return openai_error(
            404,
            f"Invalid URL ({request.method} {self.prefix}{request.path})",
            type_="invalid_request_error",
            code=None,
        )


class DeepSeekAPI(OpenAIAPI):
    """OpenAI's shapes, with DeepSeek's statuses (402 for an empty balance) and its balance."""

    id: ClassVar[str] = "deepseek"
    prefix: ClassVar[str] = "/deepseek"
    owned_by: ClassVar[str] = "deepseek"
    # DeepSeek serves its API both at the root and under /v1.
    versions: ClassVar[tuple[tuple[str, ...], ...]] = (("v1",), ())

    def endpoint(self, request: Request) -> Endpoint | None:
        if request.method == "GET" and path_parts(request.path) == ["user", "balance"]:
            return Endpoint(
                lambda _r: Answer(200, _balance(available=True)),
                overrides={Failure.NO_CREDITS: lambda _r: Answer(200, _balance(available=False))},
            )
        return super().endpoint(request)

    def reasons(self, model: str) -> bool:
        return model == "deepseek-reasoner"

    def unknown_model(self, model: str) -> Answer:
        del model  # DeepSeek does not repeat the name
        return openai_error(400, "Model Not Exist", type_="invalid_request_error", code=None)

    def failure(self, failure: Failure) -> Answer:
        match failure:
            case Failure.MISSING_KEY | Failure.INVALID_KEY:
                return openai_error(
                    401,
                    "Authentication Fails, Your api key is invalid",
                    type_="authentication_error",
                    code="invalid_request_error",
                )
            case Failure.NO_CREDITS:
                return openai_error(
                    402, "Insufficient Balance", type_="unknown_error", code="invalid_request_error"
                )
            case Failure.FORBIDDEN:
                return openai_error(
                    403,
                    "Permission denied: this API key may not use this resource",
                    type_="permission_error",
                    code="invalid_request_error",
                )
            case Failure.RATE_LIMITED:
                return openai_error(
                    429,
                    "Rate Limit Reached",
                    type_="rate_limit_error",
                    code="invalid_request_error",
                    headers=dict(_RETRY),
                )
            case Failure.OUTAGE | Failure.UNAVAILABLE:
                return openai_error(
                    503, "Server Overloaded", type_="server_error", code="invalid_request_error"
                )


def _balance(*, available: bool) -> JSONObject:
    """``GET /user/balance``: an empty account is ``is_available: false`` with a zero balance."""
    total = "10.00" if available else "0.00"
    return {
        "is_available": available,
        "balance_infos": [
            {
                "currency": "USD",
                "total_balance": total,
                "granted_balance": "0.00",
                "topped_up_balance": total,
            }
        ],
    }
