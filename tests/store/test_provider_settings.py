"""``Store.provider_settings``: one workspace's providers without a secret (for the serve pages)."""

from __future__ import annotations

from byokctl.model import ProviderConfig, Secret, Workspace
from byokctl.store import Store
from tests.resolver.helpers import CANARY, put


def test_one_workspaces_providers_and_secret_field_names_never_a_value(store: Store) -> None:
    azure = ProviderConfig(
        "azure_openai",
        "gpt-4",
        {"endpoint": "https://acme.openai.azure.com", "api_version": "2024-06-01",
         "deployment": "gpt4-prod"},
        {"api_key": Secret(CANARY)},
    )  # fmt: skip
    openai = ProviderConfig("openai", "gpt-4o", {}, {"api_key": Secret(CANARY)})
    put(
        store,
        Workspace(
            "acme", ("ops@example.com",), "openai", {"openai": openai, "azure_openai": azure}
        ),
        Workspace("other", ("ops@example.com",)),
    )
    got = store.provider_settings("acme")
    assert got == {
        "azure_openai": {
            "model": "gpt-4",
            "settings": {"endpoint": "https://acme.openai.azure.com",
                         "api_version": "2024-06-01", "deployment": "gpt4-prod"},
            "secret_fields": ["api_key"],
        },
        "openai": {"model": "gpt-4o", "settings": {}, "secret_fields": ["api_key"]},
    }  # fmt: skip
    assert CANARY not in repr(got)
    assert store.provider_settings("other") == {}
    assert store.provider_settings("nobody") is None
