"""Each provider's real answer shapes (PROVIDERS.md), for the loopback provider server."""

from __future__ import annotations

from typing import Any

from byokctl.catalog import PROVIDERS
from byokctl.model import ProviderConfig, Secret
from tests.verify.conftest import ProviderServer, Reply

#: Where each provider lives on the test server, as an operator override would say.
PREFIX = {
    "openai": "/openai/v1",
    "anthropic": "/anthropic",
    "gemini": "/gemini/v1beta",
    "azure_openai": "/azure",
    "xai": "/xai/v1",
    "deepseek": "/deepseek",
    "openai_compatible": "/compatible/v1",
}
#: The list-models path under the prefix.
LIST_PATH = {
    "openai": "/models",
    "anthropic": "/v1/models",
    "gemini": "/models",
    "azure_openai": "/openai/models",
    "xai": "/models",
    "deepseek": "/models",
    "openai_compatible": "/models",
}
MODEL = {
    "openai": "gpt-4o",
    "anthropic": "claude-3-5-sonnet-20241022",
    "gemini": "gemini-2.0-flash",
    "azure_openai": "gpt-4o",
    "xai": "grok-3",
    "deepseek": "deepseek-chat",
    "openai_compatible": "llama-3.1-8b-instruct",
}
#: The model ids the compatible server lists in these tests (the catalog knows none).
COMPATIBLE_IDS = ("llama-3.1-8b-instruct", "qwen2.5-7b-instruct")
DEPLOYMENT = "gpt4o-prod"


def env_for(server: ProviderServer) -> dict[str, str]:
    """Operator overrides pointing every provider at ``server``."""
    return {PROVIDERS[p].base_url_env: server.url + prefix for p, prefix in PREFIX.items()}


def config(provider: str, key: str, model: str | None = None, **settings: str) -> ProviderConfig:
    if provider == "azure_openai":
        settings = {
            "endpoint": "https://acme.openai.azure.com",
            "api_version": "2024-06-01",
            "deployment": DEPLOYMENT,
            **settings,
        }
    if provider == "openai_compatible":
        settings = {"base_url": "https://llm.acme.example/v1", **settings}
    return ProviderConfig(provider, model or MODEL[provider], settings, {"api_key": Secret(key)})


def known_ids(provider: str) -> tuple[str, ...]:
    """The model ids a healthy account lists in these tests."""
    return COMPATIBLE_IDS if provider == "openai_compatible" else PROVIDERS[provider].known_models


def model_list(provider: str, ids: tuple[str, ...] | None = None) -> Any:
    ids = ids if ids is not None else known_ids(provider)
    if provider == "gemini":
        return {
            "models": [
                {"name": f"models/{m}", "supportedGenerationMethods": ["generateContent"]}
                for m in ids
            ]
        }
    if provider == "anthropic":
        return {
            "data": [{"id": m, "type": "model", "display_name": m} for m in ids],
            "has_more": False,
            "first_id": ids[0] if ids else None,
            "last_id": ids[-1] if ids else None,
        }
    return {"object": "list", "data": [{"id": m, "object": "model"} for m in ids]}


def _oai(code: str | None, type_: str, msg: str) -> Any:
    return {"error": {"message": msg, "type": type_, "param": None, "code": code}}


def _ant(type_: str, msg: str) -> Any:
    return {"type": "error", "error": {"type": type_, "message": msg}}


def _gem(code: int, status: str, msg: str, details: list[Any] | None = None) -> Any:
    return {"error": {"code": code, "message": msg, "status": status, "details": details or []}}


#: provider → outcome → the list-models reply that means it.
FAILURES: dict[str, dict[str, Reply]] = {
    "openai": {
        "invalid_key": Reply(401, _oai("invalid_api_key", "invalid_request_error", "Incorrect API key provided: sk-ab***yz.")),
        "no_credits": Reply(429, _oai("insufficient_quota", "insufficient_quota", "You exceeded your current quota")),
        "permission": Reply(403, _oai("unsupported_country_region_territory", "request_forbidden", "Country not supported")),
        "rate_limited": Reply(429, _oai("rate_limit_exceeded", "requests", "Rate limit reached"), {"retry-after": "1"}),
        "outage": Reply(503, _oai(None, "server_error", "The engine is currently overloaded")),
        "bad_endpoint": Reply(404, _oai(None, "invalid_request_error", "Invalid URL (GET /v1/models)")),
        "unexpected": Reply(418, b"teapot"),
    },
    "anthropic": {
        "invalid_key": Reply(401, _ant("authentication_error", "invalid x-api-key")),
        "no_credits": Reply(400, _ant("invalid_request_error", "Your credit balance is too low to access the Anthropic API.")),
        "permission": Reply(403, _ant("permission_error", "Your API key does not have permission")),
        "rate_limited": Reply(429, _ant("rate_limit_error", "Number of requests has exceeded your rate limit"), {"retry-after": "1"}),
        "outage": Reply(529, _ant("overloaded_error", "Overloaded")),
        "bad_endpoint": Reply(404, _ant("not_found_error", "Not Found")),
        "unexpected": Reply(200, b"{not json"),
    },
    "gemini": {
        "invalid_key": Reply(400, _gem(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}])),
        "no_credits": Reply(400, _gem(400, "FAILED_PRECONDITION", "Billing is not enabled")),
        "permission": Reply(403, _gem(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers")),
        "rate_limited": Reply(429, _gem(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted", [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}])),
        "outage": Reply(503, _gem(503, "UNAVAILABLE", "The service is currently unavailable.")),
        "timeout": Reply(504, _gem(504, "DEADLINE_EXCEEDED", "Deadline exceeded")),
        "unexpected": Reply(200, {"models": "nope"}),
    },
    "azure_openai": {
        "invalid_key": Reply(401, {"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint."}}),
        "permission": Reply(403, {"error": {"code": "403", "message": "Forbidden"}}),
        "rate_limited": Reply(429, {"error": {"code": "429", "message": "Please retry after 1 seconds."}}),
        "outage": Reply(500, {"error": {"code": "InternalServerError", "message": "boom"}}),
        "bad_endpoint": Reply(404, {"error": {"code": "404", "message": "Resource not found"}}),
    },
    "xai": {
        "invalid_key": Reply(400, {"code": "Client specified an invalid argument", "error": "Incorrect API key provided: xa***ey. You can obtain an API key from https://console.x.ai."}),
        "no_credits": Reply(403, {"code": "The caller does not have permission to execute the specified operation", "error": "Your newly created team doesn't have any credits yet."}),
        "permission": Reply(403, {"code": "permission-denied", "error": "forbidden"}),
        "rate_limited": Reply(429, {"code": "rate", "error": "Too many requests"}, {"retry-after": "1"}),
        "outage": Reply(503, b"upstream unavailable"),
    },
    "deepseek": {
        "invalid_key": Reply(401, {"error": {"message": "Authentication Fails, Your api key: ****ab is invalid", "type": "authentication_error"}}),
        "no_credits": Reply(402, {"error": {"message": "Insufficient Balance", "type": "unknown_error"}}),
        "rate_limited": Reply(429, {"error": {"message": "Rate Limit Reached"}}, {"retry-after": "1"}),
        "outage": Reply(503, {"error": {"message": "Server overloaded"}}),
    },
    "openai_compatible": {
        "invalid_key": Reply(401, {"error": {"message": "Authentication Error, Invalid proxy server token passed.", "type": "auth_error", "code": "401"}}),
        "no_credits": Reply(402, {"error": {"message": "Insufficient credits", "code": 402}}),
        "permission": Reply(403, {"error": {"message": "key not allowed to access model", "type": "key_model_access_denied"}}),
        "rate_limited": Reply(429, {"error": {"message": "Rate limit exceeded"}}, {"retry-after": "1"}),
        "outage": Reply(502, b"Bad Gateway"),
        "unexpected": Reply(200, {"data": "nope"}),
    },
}  # fmt: skip


def serve_ok(server: ProviderServer, provider: str, ids: tuple[str, ...] | None = None) -> None:
    """Make ``provider`` answer like a healthy account on ``server``."""
    prefix = PREFIX[provider]
    server.route(prefix + LIST_PATH[provider], Reply(200, model_list(provider, ids)))
    if provider == "azure_openai":
        server.route(
            f"{prefix}/openai/deployments/{DEPLOYMENT}",
            Reply(200, {"id": DEPLOYMENT, "model": "gpt-4o", "status": "succeeded"}),
        )
    if provider == "xai":
        server.route(
            prefix + "/api-key",
            Reply(
                200, {"api_key_blocked": False, "api_key_disabled": False, "team_blocked": False}
            ),
        )
    if provider == "deepseek":
        server.route(
            prefix + "/user/balance",
            Reply(
                200,
                {
                    "is_available": True,
                    "balance_infos": [{"currency": "USD", "total_balance": "5.00"}],
                },
            ),
        )
