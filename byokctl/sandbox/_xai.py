"""xAI (``/xai/v1``): OpenAI's success shapes, xAI's own ``{"code", "error"}`` error shape.

xAI names its ``code`` after the gRPC status behind the answer; an invalid key is a 400
("Client specified an invalid argument"), not a 401.
"""

from __future__ import annotations

from typing import ClassVar

from byokctl.sandbox._api import (
    RETRY_AFTER_SECONDS,
    Answer,
    Endpoint,
    Failure,
    JSONObject,
    Request,
    path_parts,
)
from byokctl.sandbox._openai import OpenAIAPI

_INVALID_ARGUMENT = "Client specified an invalid argument"
_UNAUTHENTICATED = "The request does not have valid authentication credentials for the operation"
_PERMISSION_DENIED = "The caller does not have permission to execute the specified operation"
_NOT_FOUND = "Some requested entity was not found"
_EXHAUSTED = "Some resource has been exhausted"
_UNAVAILABLE = "The service is currently unavailable"


def xai_error(status: int, code: str, error: str, headers: dict[str, str] | None = None) -> Answer:
    """``{"code": GRPC_STATUS_TEXT, "error": MESSAGE}``."""
    return Answer(status, {"code": code, "error": error}, headers or {})


class XaiAPI(OpenAIAPI):
    """Models and chat as OpenAI, plus ``GET /v1/api-key`` (is the key or team blocked?)."""

    id: ClassVar[str] = "xai"
    prefix: ClassVar[str] = "/xai"
    owned_by: ClassVar[str] = "xai"

    def endpoint(self, request: Request) -> Endpoint | None:
        if request.method == "GET" and path_parts(request.path) == ["v1", "api-key"]:
            # A permission problem is what this endpoint exists to report: a 200 that says
            # the key is blocked. Every other marker answers as on any other endpoint.
            return Endpoint(
                lambda _r: Answer(200, _api_key_info(blocked=False)),
                overrides={Failure.FORBIDDEN: lambda _r: Answer(200, _api_key_info(blocked=True))},
            )
        return super().endpoint(request)

    def unknown_model(self, model: str) -> Answer:
        return xai_error(
            404,
            _NOT_FOUND,
            f"The model {model} does not exist or your team does not have access to it.",
        )

    def failure(self, failure: Failure) -> Answer:
        match failure:
            case Failure.MISSING_KEY:
                return xai_error(
                    401,
                    _UNAUTHENTICATED,
                    "No API key provided. Pass it as a bearer token in the Authorization header.",
                )
            case Failure.INVALID_KEY:
                return xai_error(
                    400,
                    _INVALID_ARGUMENT,
                    "Incorrect API key provided. You can obtain an API key from https://console.x.ai.",
                )
            case Failure.NO_CREDITS:
                return xai_error(
                    403,
                    _PERMISSION_DENIED,
                    "Your newly created team doesn't have any credits yet. You can purchase "
                    "credits on https://console.x.ai.",
                )
            case Failure.FORBIDDEN:
                return xai_error(
                    403,
                    _PERMISSION_DENIED,
                    "The API key is not permitted to use this endpoint or model (see its ACLs).",
                )
            case Failure.RATE_LIMITED:
                return xai_error(
                    429,
                    _EXHAUSTED,
                    "Your team has exceeded its requests per second rate limit. Please retry.",
                    {"retry-after": str(RETRY_AFTER_SECONDS)},
                )
            case Failure.OUTAGE | Failure.UNAVAILABLE:
                return xai_error(503, _UNAVAILABLE, "Service temporarily unavailable.")

    def bad_request(self, message: str) -> Answer:
        return xai_error(400, _INVALID_ARGUMENT, message)

    def not_found(self, request: Request) -> Answer:
        return xai_error(404, _NOT_FOUND, f"No handler for {request.method} {request.path}")


def _api_key_info(*, blocked: bool) -> JSONObject:
    """``GET /v1/api-key``; never echoes the key, not even redacted."""
    return {
        "redacted_api_key": "xai-****",
        "user_id": "sandbox-user",
        "name": "sandbox key",
        "create_time": "2025-01-01T00:00:00Z",
        "modify_time": "2025-01-01T00:00:00Z",
        "modified_by": "sandbox-user",
        "team_id": "sandbox-team",
        "acls": ["api-key:model:*", "api-key:endpoint:*"],
        "api_key_id": "sandbox-key-id",
        "team_blocked": False,
        "api_key_blocked": blocked,
        "api_key_disabled": False,
    }
