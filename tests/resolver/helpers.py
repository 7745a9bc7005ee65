"""Shared helpers for the resolver tests (also imported by the worker process)."""

from __future__ import annotations

from datetime import UTC, datetime

from byokctl.model import ProviderConfig, Secret, Workspace
from byokctl.store import AuditEntry, Store, WorkspaceWrite

#: A canary API key: no test output, e-mail, log or repr may ever contain it.
CANARY = "sk-canary-0123456789abcdef-DO-NOT-LEAK"

MODELS = {
    "openai": "gpt-4o",
    "anthropic": "claude-3-5-sonnet-20241022",
    "gemini": "gemini-2.0-flash",
    "azure_openai": "gpt-4",
    "xai": "grok-3",
    "deepseek": "deepseek-chat",
}


class Clock:
    """An injectable clock: POSIX seconds that move only when a test says so."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def workspace(
    name: str,
    provider: str | None = "openai",
    *,
    key: str = CANARY,
    notify: tuple[str, ...] = ("ops@example.com",),
    model: str | None = None,
) -> Workspace:
    """A workspace with ``provider`` enabled (``None``: Neo) holding ``key``."""
    if provider is None:
        return Workspace(name=name, notify=notify)
    settings = (
        {"endpoint": "https://acme.openai.azure.com", "api_version": "2024-06-01",
         "deployment": "gpt4-prod"}
        if provider == "azure_openai"
        else {}
    )  # fmt: skip
    cfg = ProviderConfig(
        provider=provider,
        model=model or MODELS[provider],
        settings=settings,
        secrets={"api_key": Secret(key)},
    )
    return Workspace(name=name, notify=notify, enabled=provider, providers={provider: cfg})


def put(store: Store, *workspaces: Workspace) -> int:
    """Write workspaces the way apply does (one transaction, audited); return the serial."""
    serial = store.serial()
    audit = AuditEntry("test", datetime.now(UTC), "apply", serial + 1)
    return store.write(
        [WorkspaceWrite.upsert(w) for w in workspaces], expected_serial=serial, audit=audit
    )
