"""One adapter per provider: the cheapest authenticated call, and the model ids it returns.

Each adapter speaks its provider's list-models API exactly as ``PROVIDERS.md`` describes
(path, auth headers, api-version, pagination) plus the extra call that exposes what a
list cannot: Azure's deployment, xAI's blocked keys, DeepSeek's empty balance. Adapters
classify answers but never catch transport exceptions: the runner does that, once.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Protocol
from urllib.parse import quote

from byokctl.catalog import PROVIDERS, mapping_setting
from byokctl.classify import (
    Classification,
    Outcome,
    classify_response,
    parse_answer,
    sanitize,
)
from byokctl.model import ProviderConfig
from byokctl.verify._http import Answer, Client, Endpoint, fetch

ANTHROPIC_VERSION: Final = "2023-06-01"
#: Pagination stops after this many pages: a real list is one or two pages long, and a
#: server that always says "more" must not keep us looping.
MAX_PAGES: Final = 20
ANTHROPIC_PAGE: Final = 1000
GEMINI_PAGE: Final = 1000


#: How an ``openai_compatible`` model was verified (the plan says which).
LISTED: Final = "listed"
COMPLETION: Final = "completion"


@dataclass(frozen=True)
class ModelList:
    """What a key can do: the classification of its answers and the model ids it may use.

    ``method`` is :data:`LISTED` when ``models`` is the server's list, :data:`COMPLETION`
    when the server lists no models and a 1-token completion of the model answered.
    """

    classification: Classification
    models: tuple[str, ...] = ()
    method: str = LISTED
    #: The account's balance where the provider reports one (DeepSeek), else ``None``.
    balance: float | None = None


class Adapter(Protocol):
    """Verifies one provider's credentials."""

    async def probe(
        self, client: Client, endpoint: Endpoint, config: ProviderConfig, key: str
    ) -> ModelList:
        """Call the provider; classify; return the model ids on success."""
        ...


def _display(provider: str) -> str:
    return PROVIDERS[provider].display_name


async def _get_json(
    client: Client,
    endpoint: Endpoint,
    path: str,
    headers: Mapping[str, str],
    *,
    key: str,
    params: Mapping[str, str] | None = None,
) -> tuple[Classification, Any]:
    """GET ``path``; the classification, and the parsed body when it is ok and JSON."""
    answer: Answer = await fetch(
        client, endpoint, "GET", path, headers=headers, key=key, params=params
    )
    result = classify_response(
        endpoint.provider, answer.status, answer.headers, answer.body, key=key
    )
    if result.outcome is not Outcome.OK:
        return result, None
    # fetch redacted the body's bytes; parse_answer redacts what JSON escapes spelled.
    doc = parse_answer(answer.body, key)
    if doc is None:
        return _malformed(endpoint.provider, "is not JSON"), None
    return result, doc


def _malformed(provider: str, what: str) -> Classification:
    return Classification(Outcome.UNEXPECTED, f"{_display(provider)}: the answer {what}")


def _ids(doc: Any, provider: str) -> tuple[str, ...] | None:
    """``data[].id`` of an OpenAI-shaped list, or ``None`` when the shape is wrong."""
    data = doc.get("data") if isinstance(doc, Mapping) else None
    if not isinstance(data, list):
        return None
    return tuple(str(m["id"]) for m in data if isinstance(m, Mapping) and "id" in m)


async def _openai_shaped(
    client: Client, endpoint: Endpoint, headers: Mapping[str, str], key: str
) -> ModelList:
    result, doc = await _get_json(client, endpoint, "/models", headers, key=key)
    if doc is None:
        return ModelList(result)
    ids = _ids(doc, endpoint.provider)
    if ids is None:
        return ModelList(_malformed(endpoint.provider, "is not a list of models"))
    return ModelList(result, ids)


class OpenAI:
    """``GET /models`` with a Bearer key (and the optional organization/project headers)."""

    async def probe(
        self, client: Client, endpoint: Endpoint, config: ProviderConfig, key: str
    ) -> ModelList:
        headers = {"Authorization": f"Bearer {key}"}
        if config.settings.get("organization"):
            headers["OpenAI-Organization"] = config.settings["organization"]
        if config.settings.get("project"):
            headers["OpenAI-Project"] = config.settings["project"]
        return await _openai_shaped(client, endpoint, headers, key)


@dataclass(frozen=True)
class _Page:
    """One page of a paginated list: its model ids, and the query of the next page."""

    ids: tuple[str, ...]
    next_params: Mapping[str, str] | None


async def _paginated(
    client: Client,
    endpoint: Endpoint,
    path: str,
    headers: Mapping[str, str],
    key: str,
    *,
    params: Mapping[str, str],
    read: Callable[[Any], _Page | None],
) -> ModelList:
    """Follow ``read``'s next-page queries for at most :data:`MAX_PAGES` pages.

    ``read`` returns ``None`` for a document that is not a page of models.
    """
    ids: list[str] = []
    result = Classification(Outcome.UNEXPECTED, "")
    for _ in range(MAX_PAGES):
        result, doc = await _get_json(client, endpoint, path, headers, key=key, params=params)
        if doc is None:
            return ModelList(result)
        page = read(doc)
        if page is None:
            return ModelList(_malformed(endpoint.provider, "is not a list of models"))
        ids += page.ids
        if page.next_params is None:
            return ModelList(result, tuple(ids))
        params = page.next_params
    return ModelList(result, tuple(ids))


class Anthropic:
    """``GET /v1/models`` paginated by ``limit``/``after_id`` until ``has_more`` is false."""

    async def probe(
        self, client: Client, endpoint: Endpoint, config: ProviderConfig, key: str
    ) -> ModelList:
        headers = {"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION}
        params = {"limit": str(ANTHROPIC_PAGE)}
        return await _paginated(
            client, endpoint, "/v1/models", headers, key, params=params, read=self._page
        )

    @staticmethod
    def _page(doc: Any) -> _Page | None:
        ids = _ids(doc, "anthropic")
        if ids is None:
            return None
        last = doc.get("last_id") or (ids[-1] if ids else None)
        if not doc.get("has_more") or not last:
            return _Page(ids, None)
        return _Page(ids, {"limit": str(ANTHROPIC_PAGE), "after_id": str(last)})


class Gemini:
    """``GET /models`` paginated by ``pageSize``/``pageToken``; ids lose ``models/``.

    Only models that can generate content are listed (embedding models cannot power the
    product's AI features). The key goes in ``x-goog-api-key``, never in ``?key=``.
    """

    async def probe(
        self, client: Client, endpoint: Endpoint, config: ProviderConfig, key: str
    ) -> ModelList:
        headers = {"x-goog-api-key": key}
        params = {"pageSize": str(GEMINI_PAGE)}
        return await _paginated(
            client, endpoint, "/models", headers, key, params=params, read=self._page
        )

    @staticmethod
    def _page(doc: Any) -> _Page | None:
        models = doc.get("models", []) if isinstance(doc, Mapping) else None
        if not isinstance(models, list):
            return None
        ids: list[str] = []
        for m in models:
            if not isinstance(m, Mapping) or not isinstance(m.get("name"), str):
                continue
            methods = m.get("supportedGenerationMethods")
            if isinstance(methods, list) and "generateContent" not in methods:
                continue
            ids.append(m["name"].removeprefix("models/"))
        token = doc.get("nextPageToken")
        if not token:
            return _Page(tuple(ids), None)
        return _Page(tuple(ids), {"pageSize": str(GEMINI_PAGE), "pageToken": str(token)})


class AzureOpenAI:
    """``GET {endpoint}/openai/models`` and ``GET .../openai/deployments/{d}``, with api-version.

    Where the deployments API is retired (a plain 404 without ``DeploymentNotFound``), a
    minimal chat request to the deployment tells whether it exists (one token at most).
    """

    async def probe(
        self, client: Client, endpoint: Endpoint, config: ProviderConfig, key: str
    ) -> ModelList:
        headers = {"api-key": key}
        version = {"api-version": config.settings.get("api_version", "")}
        result, doc = await _get_json(
            client, endpoint, "/openai/models", headers, key=key, params=version
        )
        if doc is None:
            return ModelList(result)
        ids = _ids(doc, "azure_openai")
        if ids is None:
            return ModelList(_malformed("azure_openai", "is not a list of models"))
        path = f"/openai/deployments/{_segment(config.settings.get('deployment', ''))}"
        answer = await fetch(
            client, endpoint, "GET", path, headers=headers, key=key, params=version
        )
        check = classify_response(
            "azure_openai", answer.status, answer.headers, answer.body, key=key
        )
        if check.outcome is Outcome.BAD_ENDPOINT and answer.status == 404:
            answer = await fetch(
                client,
                endpoint,
                "POST",
                f"{path}/chat/completions",
                headers=headers,
                key=key,
                params=version,
                json={"messages": [{"role": "user", "content": "ping"}], "max_tokens": 1},
            )
            check = classify_response(
                "azure_openai", answer.status, answer.headers, answer.body, key=key
            )
            if answer.status == 400:  # the deployment exists; it disliked the tiny request
                check = Classification(Outcome.OK, check.detail)
        if check.outcome is not Outcome.OK:
            return ModelList(check)
        return ModelList(result, ids)


def _segment(name: str) -> str:
    """A deployment name as exactly one URL path segment: it cannot walk to another path."""
    if name in ("", ".", ".."):
        return "%2E" * len(name) or "%20"
    return quote(name, safe="")


class _ModelsThenStatus(ABC):
    """``GET /models`` with a Bearer key, then a status call: what a model list cannot show.

    A failing status call is the verdict; a status that reports a problem
    (:meth:`problem`) replaces the list's ok.
    """

    status_path: ClassVar[str]

    @abstractmethod
    def problem(self, status: Mapping[str, Any]) -> Classification | None:
        """What the status document says is wrong, or ``None`` when nothing is."""

    def balance(self, status: Mapping[str, Any]) -> float | None:
        """The balance the status document reports, if it reports one."""
        del status
        return None

    async def probe(
        self, client: Client, endpoint: Endpoint, config: ProviderConfig, key: str
    ) -> ModelList:
        headers = {"Authorization": f"Bearer {key}"}
        listed = await _openai_shaped(client, endpoint, headers, key)
        if listed.classification.outcome is not Outcome.OK:
            return listed
        result, doc = await _get_json(client, endpoint, self.status_path, headers, key=key)
        if result.outcome is not Outcome.OK:
            return ModelList(result)
        if not isinstance(doc, Mapping):
            return listed
        problem = self.problem(doc)
        if problem is not None:
            return ModelList(problem)
        return ModelList(listed.classification, listed.models, balance=self.balance(doc))


class XAI(_ModelsThenStatus):
    """``GET /models``, then ``GET /api-key``: a blocked key or team still lists models."""

    status_path: ClassVar[str] = "/api-key"

    def problem(self, status: Mapping[str, Any]) -> Classification | None:
        if status.get("api_key_blocked") or status.get("api_key_disabled"):
            return Classification(Outcome.INVALID_KEY, "xAI: the API key is blocked or disabled")
        if status.get("team_blocked"):
            return Classification(Outcome.PERMISSION, "xAI: the team is blocked")
        return None


class DeepSeek(_ModelsThenStatus):
    """``GET /models``, then ``GET /user/balance``: an empty balance lists models too."""

    status_path: ClassVar[str] = "/user/balance"

    def problem(self, status: Mapping[str, Any]) -> Classification | None:
        if _empty_balance(status):
            return Classification(Outcome.NO_CREDITS, "DeepSeek: the account balance is empty")
        return None

    def balance(self, status: Mapping[str, Any]) -> float | None:
        """The largest ``total_balance`` of ``balance_infos`` (one per currency)."""
        infos = status.get("balance_infos")
        totals: list[float] = []
        for info in infos if isinstance(infos, list) else ():
            try:
                totals.append(float(info["total_balance"]))
            except (KeyError, TypeError, ValueError):
                continue
        return max(totals) if totals else None


def _empty_balance(doc: Mapping[str, Any]) -> bool:
    if doc.get("is_available") is False:
        return True
    infos = doc.get("balance_infos")
    if not isinstance(infos, list) or not infos:
        return False
    totals = []
    for info in infos:
        try:
            totals.append(float(info.get("total_balance", 0)) if isinstance(info, Mapping) else 0)
        except (TypeError, ValueError):
            return False
    return all(t <= 0 for t in totals)


class OpenAICompatible:
    """``GET {base_url}/models``; a server that lists none: a 1-token chat completion.

    The key (optional: a server without auth gets none) goes as ``Authorization:
    Bearer``; the workspace's non-secret ``headers`` ride along (credential headers are
    refused at validate). A 404, 405 or 501 for ``/models`` means the server does not
    list models (Ollama's older API, some vLLM and proxy set-ups): then a completion of
    at most one token asks whether the model answers.
    """

    async def probe(
        self, client: Client, endpoint: Endpoint, config: ProviderConfig, key: str
    ) -> ModelList:
        headers = mapping_setting(config.settings, "headers")
        if key:
            headers["Authorization"] = f"Bearer {key}"
        answer = await fetch(client, endpoint, "GET", "/models", headers=headers, key=key)
        if answer.status not in (404, 405, 501):
            result = classify_response(
                endpoint.provider, answer.status, answer.headers, answer.body, key=key or None
            )
            if result.outcome is not Outcome.OK:
                return ModelList(result)
            ids = _ids(parse_answer(answer.body, key or None), endpoint.provider)
            if ids is None:
                return ModelList(_malformed(endpoint.provider, "is not a list of models"))
            return ModelList(result, ids)
        answer = await fetch(
            client,
            endpoint,
            "POST",
            "/chat/completions",
            headers=headers,
            key=key,
            json={
                "model": config.model,
                "messages": [{"role": "user", "content": "ping"}],
                "max_tokens": 1,
            },
        )
        result = classify_response(
            endpoint.provider, answer.status, answer.headers, answer.body, key=key or None
        )
        return ModelList(
            result, (config.model,) if result.outcome is Outcome.OK else (), COMPLETION
        )


#: Every provider's adapter, by provider id.
ADAPTERS: Final[Mapping[str, Adapter]] = {
    "openai": OpenAI(),
    "anthropic": Anthropic(),
    "gemini": Gemini(),
    "azure_openai": AzureOpenAI(),
    "xai": XAI(),
    "deepseek": DeepSeek(),
    "openai_compatible": OpenAICompatible(),
}


def model_available(provider: str, model: str, models: tuple[str, ...]) -> bool:
    """Whether ``model`` is among ``models`` (Anthropic ``-latest`` aliases are not listed)."""
    if model in models:
        return True
    if provider == "anthropic" and model.endswith("-latest"):
        stem = model.removesuffix("latest")
        return any(m.startswith(stem) for m in models)
    return False


def judge(provider: str, config: ProviderConfig, listed: ModelList) -> Classification:
    """The final verdict: the answer's classification, then whether the chosen model is there."""
    if listed.classification.outcome is not Outcome.OK:
        return listed.classification
    name = config.settings.get("name") or _display(provider)
    if listed.method == COMPLETION:
        return Classification(
            Outcome.OK,
            sanitize(f"{config.model} answered a 1-token completion (the server lists no models)"),
        )
    if provider == "azure_openai":
        deployment = config.settings.get("deployment", "")
        if config.model not in listed.models:
            return Classification(
                Outcome.MODEL_NOT_AVAILABLE,
                sanitize(f"{name}: the resource does not offer model {config.model}"),
            )
        return Classification(
            Outcome.OK, sanitize(f"deployment {deployment} exists; {config.model} is offered")
        )
    # The default model first, then each feature's own (spec.providers.<p>.models).
    for feature, model in (("", config.model), *sorted(config.models.items())):
        if model_available(provider, model, listed.models):
            continue
        close = difflib.get_close_matches(model, listed.models, n=3, cutoff=0.5)
        hint = f"; closest: {', '.join(close)}" if close else ""
        whose = f"{model} (the {feature} model)" if feature else model
        return Classification(
            Outcome.MODEL_NOT_AVAILABLE,
            sanitize(
                f"{name}: {whose} is not among the {len(listed.models)} models "
                f"this key can use{hint}"
            ),
        )
    extra = (
        f" and the models for {', '.join(sorted(config.models))} are" if config.models else " is"
    )
    how = " (listed by GET /models)" if PROVIDERS[provider].free_form_models else ""
    return Classification(
        Outcome.OK,
        sanitize(
            f"{config.model}{extra} available ({len(listed.models)} models for this key){how}"
        ),
    )
