"""Fidelity: the official ``openai`` SDK parses the sandbox's answers and raises the right classes."""

from __future__ import annotations

import openai
import pytest

from byokctl.catalog import PROVIDERS
from byokctl.sandbox import Sandbox

from .conftest import base


def client(sb: Sandbox, key: str, provider: str = "openai") -> openai.OpenAI:
    # max_retries=0: the SDK would otherwise retry 429s and 5xx with backoff.
    return openai.OpenAI(api_key=key, base_url=base(sb, provider), max_retries=0)


@pytest.mark.parametrize("provider", ["openai", "xai", "deepseek"])
def test_models_list_parses(sb: Sandbox, provider: str) -> None:
    ids = [m.id for m in client(sb, "sk-good", provider).models.list()]
    assert ids == list(PROVIDERS[provider].known_models)


def test_retrieve_and_chat(sb: Sandbox) -> None:
    c = client(sb, "sk-good")
    assert c.models.retrieve("gpt-4o").id == "gpt-4o"
    reply = c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content
    assert reply.model == "gpt-4o"


def test_unknown_model_is_not_found(sb: Sandbox) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client(sb, "sk-good").chat.completions.create(
            model="gpt-9", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.code == "model_not_found"


@pytest.mark.parametrize(
    ("key", "exc_class", "code"),
    [
        ("sk-invalid-1", openai.AuthenticationError, "invalid_api_key"),
        ("sk-NoCredits-1", openai.RateLimitError, "insufficient_quota"),
        ("sk-ratelimited-1", openai.RateLimitError, "rate_limit_exceeded"),
        ("sk-forbidden-1", openai.PermissionDeniedError, None),
        ("sk-outage-1", openai.InternalServerError, None),
    ],
)
def test_error_classes(
    sb: Sandbox, key: str, exc_class: type[openai.APIStatusError], code: str | None
) -> None:
    with pytest.raises(exc_class) as caught:
        client(sb, key).models.list()
    assert caught.value.code == code


def test_the_two_429s_differ_by_body_and_retry_after(sb: Sandbox) -> None:
    with pytest.raises(openai.RateLimitError) as quota:
        client(sb, "sk-nocredits").models.list()
    with pytest.raises(openai.RateLimitError) as limited:
        client(sb, "sk-ratelimited").models.list()
    assert isinstance(quota.value.body, dict)
    assert quota.value.body["type"] == "insufficient_quota"
    assert "retry-after" not in quota.value.response.headers
    assert limited.value.response.headers["retry-after"] == "1"


def test_missing_key_is_authentication_error(sb: Sandbox) -> None:
    # The SDK refuses an empty api_key itself, so send a header that carries none.
    c = openai.OpenAI(api_key="unused", base_url=base(sb, "openai"), max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        c.models.list(extra_headers={"Authorization": "Bearer"})


def test_flaky_fails_twice_then_answers(sb: Sandbox) -> None:
    c = client(sb, "sk-flaky-openai")
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            c.models.list()
    assert [m.id for m in c.models.list()]


def test_xai_and_deepseek_error_classes(sb: Sandbox) -> None:
    # xAI: an invalid key is a 400, a credit problem a 403; DeepSeek: an empty balance is 402.
    with pytest.raises(openai.BadRequestError):
        client(sb, "invalid", "xai").models.list()
    with pytest.raises(openai.PermissionDeniedError):
        client(sb, "nocredits", "xai").models.list()
    with pytest.raises(openai.APIStatusError) as caught:
        client(sb, "nocredits", "deepseek").models.list()
    assert caught.value.status_code == 402


def test_azure_client_on_a_deployment(sb: Sandbox) -> None:
    az = openai.AzureOpenAI(
        api_key="azure-good",
        azure_endpoint=base(sb, "azure_openai"),
        api_version="2024-06-01",
        max_retries=0,
    )
    reply = az.chat.completions.create(
        model="gpt4-prod", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.model == "gpt-4"
    with pytest.raises(openai.NotFoundError) as caught:
        az.chat.completions.create(
            model="missing-deployment", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.code == "DeploymentNotFound"
    with pytest.raises(openai.AuthenticationError):
        openai.AzureOpenAI(
            api_key="azure-invalid",
            azure_endpoint=base(sb, "azure_openai"),
            api_version="2024-06-01",
            max_retries=0,
        ).models.list()
