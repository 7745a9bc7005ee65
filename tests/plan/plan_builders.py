"""Builders for plan tests: small workspaces and states, no I/O (imported by the tests)."""

from __future__ import annotations

from datetime import UTC, datetime

from byokctl.model import (
    DesiredState,
    LiveState,
    LiveWorkspace,
    ProviderConfig,
    Secret,
    SourceFile,
    Workspace,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
EDITED_AT = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


def openai(model: str = "gpt-4o", key: str = "sk-CANARY-plan-openai-1") -> ProviderConfig:
    return ProviderConfig("openai", model, secrets={"api_key": Secret(key)})


def azure(endpoint: str = "https://acme.openai.azure.com") -> ProviderConfig:
    return ProviderConfig(
        "azure_openai",
        "gpt-4",
        settings={"endpoint": endpoint, "api_version": "2024-06-01", "deployment": "gpt4-prod"},
        secrets={"api_key": Secret("azure-CANARY-plan-key-1")},
    )


def workspace(
    name: str,
    *providers: ProviderConfig,
    enabled: str | None = None,
    notify: tuple[str, ...] = (),
) -> Workspace:
    return Workspace(name, notify, enabled, {p.provider: p for p in providers})


def desired(*workspaces: Workspace) -> DesiredState:
    return DesiredState(
        {w.name: w for w in workspaces},
        {w.name: SourceFile(f"workspaces/{w.name}.yaml", "a" * 64) for w in workspaces},
    )


def live(
    *workspaces: Workspace,
    serial: int = 1,
    unmanaged: tuple[str, ...] = (),
    drifted: tuple[str, ...] = (),
) -> LiveState:
    return LiveState(
        serial,
        {
            w.name: LiveWorkspace(
                w,
                managed=w.name not in unmanaged,
                drifted=w.name in drifted,
                updated_at=EDITED_AT,
                updated_by="ui" if w.name in drifted else "byokctl",
            )
            for w in workspaces
        },
    )
