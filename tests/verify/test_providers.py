"""Every provider's adapter against a real loopback server: requests, pagination, outcomes."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from byokctl.catalog import PROVIDERS
from byokctl.verify import Outcome, RetryPolicy, list_models
from tests.verify.conftest import ProviderServer, Reply, Seen
from tests.verify.shapes import (
    DEPLOYMENT,
    FAILURES,
    LIST_PATH,
    PREFIX,
    config,
    env_for,
    known_ids,
    model_list,
    serve_ok,
)

CANARY = "sk-canary-1f2e3d4c5b6a79880011"
ONCE = RetryPolicy(attempts=1)
ALL = sorted(PROVIDERS)


async def _no_sleep(_: float) -> None:
    return None


@pytest.mark.parametrize("provider", ALL)
def test_valid_key_lists_models(provider_server: ProviderServer, provider: str) -> None:
    serve_ok(provider_server, provider)
    got = list_models(config(provider, CANARY), env=env_for(provider_server), retry=ONCE)
    assert got.classification.outcome is Outcome.OK, got.classification.detail
    assert set(got.models) == set(known_ids(provider))
    for seen in provider_server.seen():
        assert CANARY not in seen.path and CANARY not in str(seen.query)
        assert CANARY in " ".join(seen.headers.values())


AUTH = {
    "openai": ("authorization", f"Bearer {CANARY}"),
    "anthropic": ("x-api-key", CANARY),
    "gemini": ("x-goog-api-key", CANARY),
    "azure_openai": ("api-key", CANARY),
    "xai": ("authorization", f"Bearer {CANARY}"),
    "deepseek": ("authorization", f"Bearer {CANARY}"),
    "openai_compatible": ("authorization", f"Bearer {CANARY}"),
}


@pytest.mark.parametrize("provider", ALL)
def test_request_shape(provider_server: ProviderServer, provider: str) -> None:
    serve_ok(provider_server, provider)
    list_models(config(provider, CANARY), env=env_for(provider_server), retry=ONCE)
    first = provider_server.seen(PREFIX[provider] + LIST_PATH[provider])[0]
    header, value = AUTH[provider]
    assert first.method == "GET"
    assert first.headers[header] == value
    if provider == "anthropic":
        assert first.headers["anthropic-version"] == "2023-06-01"
    if provider == "azure_openai":
        assert first.query == {"api-version": "2024-06-01"}
        deployment = provider_server.seen(f"{PREFIX[provider]}/openai/deployments/{DEPLOYMENT}")
        assert deployment[0].query == {"api-version": "2024-06-01"}
    paths = {s.path for s in provider_server.seen()}
    if provider == "xai":
        assert "/xai/v1/api-key" in paths
    if provider == "deepseek":
        assert "/deepseek/user/balance" in paths


def test_openai_organization_and_project_headers(provider_server: ProviderServer) -> None:
    serve_ok(provider_server, "openai")
    cfg = config("openai", CANARY, organization="org-1", project="proj-1")
    list_models(cfg, env=env_for(provider_server), retry=ONCE)
    seen = provider_server.seen()[0]
    assert (seen.headers["openai-organization"], seen.headers["openai-project"]) == (
        "org-1",
        "proj-1",
    )


def test_anthropic_pagination(provider_server: ProviderServer) -> None:
    ids = [f"claude-{i}" for i in range(5)] + ["claude-3-5-sonnet-20241022"]

    def page(seen: Seen) -> Reply:
        start = ids.index(seen.query["after_id"]) + 1 if "after_id" in seen.query else 0
        chunk = ids[start : start + 2]
        return Reply(
            200,
            {
                "data": [{"id": m, "type": "model"} for m in chunk],
                "has_more": start + 2 < len(ids),
                "first_id": chunk[0],
                "last_id": chunk[-1],
            },
        )

    provider_server.route("/anthropic/v1/models", page)
    got = list_models(config("anthropic", CANARY), env=env_for(provider_server), retry=ONCE)
    assert got.models == tuple(ids)
    assert got.classification.outcome is Outcome.OK
    queries = [s.query for s in provider_server.seen()]
    assert queries[0] == {"limit": "1000"}
    assert queries[1] == {"limit": "1000", "after_id": "claude-1"}
    assert len(queries) == 3


def test_gemini_pagination_and_generation_filter(provider_server: ProviderServer) -> None:
    pages = {
        "": ({"name": "models/gemini-2.0-flash", "supportedGenerationMethods": ["generateContent"]}, "t1"),
        "t1": ({"name": "models/text-embedding-004", "supportedGenerationMethods": ["embedContent"]}, "t2"),
        "t2": ({"name": "models/gemini-2.5-pro", "supportedGenerationMethods": ["generateContent", "countTokens"]}, None),
    }  # fmt: skip

    def page(seen: Seen) -> Reply:
        model, token = pages[seen.query.get("pageToken", "")]
        doc = {"models": [model], **({"nextPageToken": token} if token else {})}
        return Reply(200, doc)

    provider_server.route("/gemini/v1beta/models", page)
    got = list_models(config("gemini", CANARY), env=env_for(provider_server), retry=ONCE)
    assert got.models == ("gemini-2.0-flash", "gemini-2.5-pro")
    assert [s.query.get("pageToken") for s in provider_server.seen()] == [None, "t1", "t2"]
    assert all(s.query["pageSize"] == "1000" for s in provider_server.seen())


def test_endless_pagination_stops(provider_server: ProviderServer) -> None:
    provider_server.route(
        "/gemini/v1beta/models",
        Reply(200, {**model_list("gemini", ("gemini-2.0-flash",)), "nextPageToken": "again"}),
    )
    got = list_models(config("gemini", CANARY), env=env_for(provider_server), retry=ONCE)
    assert got.classification.outcome is Outcome.OK
    assert len(provider_server.seen()) == 20


CASES = [(p, outcome) for p in ALL for outcome in FAILURES[p]]


@pytest.mark.parametrize(("provider", "expected"), CASES)
def test_failures(provider_server: ProviderServer, provider: str, expected: str) -> None:
    serve_ok(provider_server, provider)
    provider_server.route(PREFIX[provider] + LIST_PATH[provider], FAILURES[provider][expected])
    got = list_models(
        config(provider, CANARY), env=env_for(provider_server), retry=ONCE, sleep=_no_sleep
    )
    assert got.classification.outcome == expected, got.classification.detail
    assert got.models == ()
    assert "***" not in got.classification.detail
    assert CANARY not in got.classification.detail


@pytest.mark.parametrize("provider", ALL)
def test_model_not_available(provider_server: ProviderServer, provider: str) -> None:
    serve_ok(provider_server, provider)
    cfg = config(provider, CANARY, model="no-such-model-1")
    got = list_models(cfg, env=env_for(provider_server), retry=ONCE)
    assert got.classification.outcome is Outcome.MODEL_NOT_AVAILABLE
    assert "no-such-model-1" in got.classification.detail


@pytest.mark.parametrize("provider", sorted(set(ALL) - {"azure_openai"}))
def test_every_per_feature_model_must_be_available_to_the_key(
    provider_server: ProviderServer, provider: str
) -> None:
    serve_ok(provider_server, provider)
    known = known_ids(provider)
    good = replace(config(provider, CANARY), models={"summarize": known[-1]})
    got = list_models(good, env=env_for(provider_server), retry=ONCE)
    assert got.classification.outcome is Outcome.OK, got.classification.detail
    assert "and the models for summarize are available" in got.classification.detail
    bad = replace(good, models={"summarize": known[-1], "auto_reply": "no-such-model-2"})
    got = list_models(bad, env=env_for(provider_server), retry=ONCE)
    assert got.classification.outcome is Outcome.MODEL_NOT_AVAILABLE
    assert "no-such-model-2 (the auto_reply model)" in got.classification.detail
    assert CANARY not in got.classification.detail


def test_anthropic_latest_alias_is_available(provider_server: ProviderServer) -> None:
    serve_ok(provider_server, "anthropic")
    cfg = config("anthropic", CANARY, model="claude-3-5-sonnet-latest")
    got = list_models(cfg, env=env_for(provider_server), retry=ONCE)
    assert got.classification.outcome is Outcome.OK


def test_azure_deployment_not_found(provider_server: ProviderServer) -> None:
    serve_ok(provider_server, "azure_openai")
    provider_server.route(
        f"/azure/openai/deployments/{DEPLOYMENT}",
        Reply(404, {"error": {"code": "DeploymentNotFound", "message": "The API deployment for this resource does not exist."}}),
    )  # fmt: skip
    got = list_models(config("azure_openai", CANARY), env=env_for(provider_server), retry=ONCE)
    assert got.classification.outcome is Outcome.DEPLOYMENT_NOT_FOUND


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, Outcome.OK), (400, Outcome.OK), (404, Outcome.DEPLOYMENT_NOT_FOUND)],
)
def test_azure_retired_deployments_api_falls_back_to_a_request(
    provider_server: ProviderServer, status: int, expected: Outcome
) -> None:
    serve_ok(provider_server, "azure_openai")
    provider_server.route(
        f"/azure/openai/deployments/{DEPLOYMENT}", Reply(404, {"error": {"code": "404", "message": "Resource not found"}})
    )  # fmt: skip
    body = {"error": {"code": "DeploymentNotFound", "message": "no"}} if status == 404 else {}
    provider_server.route(
        f"/azure/openai/deployments/{DEPLOYMENT}/chat/completions", Reply(status, body)
    )
    got = list_models(config("azure_openai", CANARY), env=env_for(provider_server), retry=ONCE)
    assert got.classification.outcome is expected
    post = provider_server.seen(f"/azure/openai/deployments/{DEPLOYMENT}/chat/completions")[0]
    assert post.method == "POST"
    assert json.loads(post.body)["max_tokens"] == 1


def test_azure_deployment_name_stays_one_path_segment(provider_server: ProviderServer) -> None:
    serve_ok(provider_server, "azure_openai")
    cfg = config("azure_openai", CANARY, deployment="../../models")
    list_models(cfg, env=env_for(provider_server), retry=ONCE)
    paths = [s.path for s in provider_server.seen()]
    assert "/azure/openai/deployments/..%2F..%2Fmodels" in paths


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"api_key_blocked": True}, Outcome.INVALID_KEY),
        ({"api_key_disabled": True}, Outcome.INVALID_KEY),
        ({"team_blocked": True}, Outcome.PERMISSION),
    ],
)
def test_xai_blocked_key(
    provider_server: ProviderServer, doc: dict[str, bool], expected: Outcome
) -> None:
    serve_ok(provider_server, "xai")
    provider_server.route("/xai/v1/api-key", Reply(200, doc))
    got = list_models(config("xai", CANARY), env=env_for(provider_server), retry=ONCE)
    assert got.classification.outcome is expected


@pytest.mark.parametrize(
    "doc",
    [
        {"is_available": False, "balance_infos": []},
        {"is_available": True, "balance_infos": [{"currency": "CNY", "total_balance": "0.00"}]},
    ],
)
def test_deepseek_empty_balance(provider_server: ProviderServer, doc: object) -> None:
    serve_ok(provider_server, "deepseek")
    provider_server.route("/deepseek/user/balance", Reply(200, doc))
    got = list_models(config("deepseek", CANARY), env=env_for(provider_server), retry=ONCE)
    assert got.classification.outcome is Outcome.NO_CREDITS


def test_sandbox_url_expands_to_every_provider(provider_server: ProviderServer) -> None:
    for provider in ALL:
        serve_ok(provider_server, provider)
    env = {"BYOK_SANDBOX_URL": provider_server.url}
    for provider in ALL:
        got = list_models(config(provider, CANARY), env=env, retry=ONCE)
        assert got.classification.outcome is Outcome.OK, (provider, got.classification.detail)


def test_explicit_base_url_beats_sandbox(provider_server: ProviderServer) -> None:
    serve_ok(provider_server, "openai")
    env = {
        "BYOK_SANDBOX_URL": "http://127.0.0.1:9",
        "BYOK_OPENAI_BASE_URL": provider_server.url + "/openai/v1",
    }
    got = list_models(config("openai", CANARY), env=env, retry=ONCE)
    assert got.classification.outcome is Outcome.OK
