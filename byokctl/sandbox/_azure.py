"""Azure OpenAI (``/azure``): ``api-key`` or Entra ID auth, ``api-version`` on every call.

The base URL replaces a workspace's ``endpoint`` (``https://RESOURCE.openai.azure.com``),
so paths start with ``/openai``. A deployment name containing ``missing`` does not exist.
An Entra ID token (``Authorization: Bearer TOKEN``) is taken like a key: its markers
choose the behaviour. Chat streams as OpenAI's, with Azure's content-filter results.
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
    created_unix,
    path_parts,
)
from byokctl.sandbox._openai_stream import chat_answer
from byokctl.sandbox._responses import responses_answer


def azure_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Answer:
    """``{"error": {"code", "message"}}`` — Azure's shape (``code`` is often the status)."""
    return Answer(status, {"error": {"code": code, "message": message}}, headers or {})


def _squash(name: str) -> str:
    return name.lower().replace("-", "").replace(".", "").replace("_", "")


class AzureOpenAIAPI(ProviderAPI):
    """Models of the resource, deployment lookup, and chat on a deployment."""

    id: ClassVar[str] = "azure_openai"
    prefix: ClassVar[str] = "/azure"

    def api_key(self, request: Request) -> str | None:
        return request.header_key("api-key") or request.bearer_token()

    def precondition(self, request: Request) -> Answer | None:
        # Azure answers a call without (or with an unknown) api-version with a bare 404.
        if not request.query.get("api-version"):
            return self.not_found(request)
        return None

    def endpoint(self, request: Request) -> Endpoint | None:
        parts = path_parts(request.path)
        if not parts or parts[0] != "openai":
            return None
        parts = parts[1:]
        if request.method == "GET" and parts == ["models"]:
            return Endpoint(self._list)
        if request.method == "GET" and len(parts) == 2 and parts[0] == "models":
            return Endpoint(lambda _r: self._model(parts[1]))
        if request.method == "GET" and len(parts) == 2 and parts[0] == "deployments":
            return Endpoint(lambda _r: self._deployment(parts[1]))
        if (
            request.method == "POST"
            and len(parts) == 4
            and parts[0] == "deployments"
            and parts[2:] == ["chat", "completions"]
        ):
            return Endpoint(lambda r: self._chat(parts[1], r))
        if request.method == "POST" and parts == ["responses"]:
            return Endpoint(self._responses)
        return None

    def deployment_model(self, deployment: str) -> str:
        """The model behind a deployment: the longest known model id its name contains.

        ``gpt4-prod`` serves ``gpt-4``, ``gpt-4o-mini-eu`` serves ``gpt-4o-mini``; a name
        that contains none serves the first known model.
        """
        squashed = _squash(deployment)
        matches = [m for m in self.models if _squash(m) in squashed]
        return max(matches, key=len) if matches else self.models[0]

    def _entry(self, index: int) -> JSONObject:
        return {
            "id": self.models[index],
            "object": "model",
            "status": "succeeded",
            "created_at": created_unix(index),
            "capabilities": {
                "chat_completion": True,
                "completion": False,
                "embeddings": False,
                "fine_tune": False,
                "inference": True,
            },
            "lifecycle_status": "generally-available",
        }

    def _list(self, request: Request) -> Answer:
        del request
        data = [self._entry(i) for i in range(len(self.models))]
        return Answer(200, {"object": "list", "data": data})

    def _model(self, model: str) -> Answer:
        """``GET /openai/models/{id}``: one model the resource offers, or a 404."""
        if model not in self.models:
            return azure_error(404, "NotFound", f"The model '{model}' does not exist.")
        return Answer(200, self._entry(self.models.index(model)))

    def _deployment(self, deployment: str) -> Answer:
        if "missing" in deployment.lower():
            return self.deployment_not_found()
        return Answer(
            200,
            {
                "id": deployment,
                "object": "deployment",
                "model": self.deployment_model(deployment),
                "owner": "organization-owner",
                "status": "succeeded",
                "scale_settings": {"scale_type": "standard"},
                "created_at": created_unix(0),
                "updated_at": created_unix(0),
            },
        )

    def _chat(self, deployment: str, request: Request) -> Answer:
        if "missing" in deployment.lower():
            return self.deployment_not_found()
        body = request.json_object()
        if body is None:
            return self.bad_request("The request body is not a JSON object.")
        model = self.deployment_model(deployment)
        return chat_answer(model, body, failure=self.stream_error(request), azure=True)

    def _responses(self, request: Request) -> Answer:
        """``POST /openai/responses``: the Responses API, ``model`` naming the deployment."""
        body = request.json_object()
        if body is None or not isinstance(body.get("model"), str):
            return self.bad_request("Missing required parameter: 'model'.")
        deployment = str(body["model"])
        if "missing" in deployment.lower():
            return self.deployment_not_found()
        model = self.deployment_model(deployment)
        return responses_answer(model, body, failure=self.stream_error(request))

    def deployment_not_found(self) -> Answer:
        """404 ``DeploymentNotFound``: the workspace names a deployment that does not exist."""
        return azure_error(
            404,
            "DeploymentNotFound",
            "The API deployment for this resource does not exist. If you created the "
            "deployment within the last 5 minutes, please wait a moment and try again.",
        )

    def failure(self, failure: Failure) -> Answer:
        match failure:
            case Failure.MISSING_KEY:
                return azure_error(
                    401,
                    "401",
                    "Access denied due to missing subscription key. Make sure to include "
                    "subscription key when making requests to an API.",
                )
            case Failure.INVALID_KEY:
                return azure_error(
                    401,
                    "401",
                    "Access denied due to invalid subscription key or wrong API endpoint. Make "
                    "sure to provide a valid key for an active subscription and use a correct "
                    "regional API endpoint for your resource.",
                )
            case Failure.NO_CREDITS:
                # Unconfirmed for Azure OpenAI (billed through the subscription): this is the
                # Cognitive Services answer for an exhausted quota.
                return azure_error(
                    403,
                    "403",
                    "Out of call volume quota for OpenAI S0 pricing tier. To increase your call "
                    "volume switch to a paid tier or raise your subscription's spending limit.",
                )
            case Failure.FORBIDDEN:
                return azure_error(
                    403,
                    "PermissionDenied",
                    "The principal does not have access to API/Operation.",
                )
            case Failure.RATE_LIMITED:
                return azure_error(
                    429,
                    "429",
                    "Requests to the ChatCompletions_Create Operation under Azure OpenAI API "
                    "have exceeded call rate limit of your current OpenAI S0 pricing tier. "
                    f"Please retry after {RETRY_AFTER_SECONDS} seconds. Please go here: "
                    "https://aka.ms/oai/quotaincrease if you would like to further increase "
                    "the default rate limit.",
                    {
                        "retry-after": str(RETRY_AFTER_SECONDS),
                        "retry-after-ms": str(RETRY_AFTER_SECONDS * 1000),
                    },
                )
            case Failure.OUTAGE | Failure.UNAVAILABLE:
                return azure_error(
                    503,
                    "ServiceUnavailable",
                    "The service is temporarily unable to process your request. Please try "
                    "again later.",
                )

    def bad_request(self, message: str) -> Answer:
        return azure_error(400, "BadRequest", message)

    def not_found(self, request: Request) -> Answer:
        del request
        return azure_error(404, "404", "Resource not found")
