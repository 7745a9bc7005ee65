"""One sandbox per test module (starting one per test costs a shutdown poll each), reset per test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from byokctl.sandbox import Sandbox

#: Where each provider's key goes, as the real clients send it.
AUTH = {
    "openai": lambda key: {"Authorization": f"Bearer {key}"},
    "anthropic": lambda key: {"x-api-key": key, "anthropic-version": "2023-06-01"},
    "gemini": lambda key: {"x-goog-api-key": key},
    "azure_openai": lambda key: {"api-key": key},
    "xai": lambda key: {"Authorization": f"Bearer {key}"},
    "deepseek": lambda key: {"Authorization": f"Bearer {key}"},
    "openai_compatible": lambda key: {"Authorization": f"Bearer {key}"},
}

#: Each provider's list-models path below its base URL (Azure needs an api-version).
LIST_PATH = {
    "openai": "/models",
    "anthropic": "/v1/models",
    "gemini": "/models",
    "azure_openai": "/openai/models?api-version=2024-06-01",
    "xai": "/models",
    "deepseek": "/models",
    "openai_compatible": "/models",
}


@pytest.fixture(scope="module")
def running() -> Iterator[Sandbox]:
    with Sandbox(port=0, latency=0.0, slow_seconds=0.3) as sb:
        yield sb


@pytest.fixture
def sb(running: Sandbox) -> Sandbox:
    running.reset()
    return running


@pytest.fixture
def http(sb: Sandbox) -> Iterator[httpx.Client]:
    # trust_env=False: no proxy from the environment may see these requests.
    with httpx.Client(timeout=10, trust_env=False) as client:
        yield client


def base(sb: Sandbox, provider: str) -> str:
    """The provider's base URL on this sandbox."""
    from byokctl.catalog import PROVIDERS

    return sb.base_urls()[PROVIDERS[provider].base_url_env]
