"""OpenAI-compatible servers (``/compatible/v1``, ``/compatible-unlisted/v1``).

A gateway or self-hosted server (LiteLLM, vLLM, OpenRouter, Ollama) speaks OpenAI's
shapes with its own model ids. Two stand-ins:

* ``/compatible/v1`` lists its models (``GET /v1/models``) and wants a Bearer key;
* ``/compatible-unlisted/v1`` lists none (``GET /v1/models`` is a 404, as on servers
  that only serve inference) and takes requests without a key (a server without auth);
  a key, when sent, picks a behaviour like everywhere else.
"""

from __future__ import annotations

from typing import ClassVar

from byokctl.sandbox._api import Endpoint, Request, path_parts
from byokctl.sandbox._openai import OpenAIAPI

#: The model ids the compatible stand-ins serve (free-form, as a gateway's are).
COMPATIBLE_MODELS: tuple[str, ...] = (
    "llama-3.1-8b-instruct",
    "meta-llama/Llama-3.3-70B-Instruct",
    "qwen2.5-7b-instruct",
    "mistral-small-3.1",
    "openai/gpt-4o-mini",
)


class CompatibleAPI(OpenAIAPI):
    """OpenAI's models and chat completions under ``/compatible``, with gateway model ids."""

    id: ClassVar[str] = "openai_compatible"
    prefix: ClassVar[str] = "/compatible"
    owned_by: ClassVar[str] = "gateway"

    @property
    def models(self) -> tuple[str, ...]:
        return COMPATIBLE_MODELS


class UnlistedCompatibleAPI(CompatibleAPI):
    """A server that lists no models and needs no key: only chat completions answer."""

    prefix: ClassVar[str] = "/compatible-unlisted"

    def api_key(self, request: Request) -> str | None:
        # No auth: a request without a key is served (as the valid key "").
        return request.bearer_token() or ""

    def endpoint(self, request: Request) -> Endpoint | None:
        parts = path_parts(request.path)
        if parts[:1] == ["v1"] and parts[1:2] == ["models"]:
            return None  # the 404 of a server without a model list
        return super().endpoint(request)


#: Stand-ins served besides the one-per-provider table (same provider, another prefix).
VARIANT_APIS: tuple[OpenAIAPI, ...] = (UnlistedCompatibleAPI(),)
