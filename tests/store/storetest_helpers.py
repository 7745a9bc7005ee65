"""Shared helpers for the store tests (imported by the tests and by the worker script)."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from byokctl.model import ProviderConfig, Secret, Workspace
from byokctl.store import MasterKey, Store, open_store

#: A canary secret prefix: no file, message or log outside ciphertext may contain it.
CANARY = "sk-canary-7f3c9d2e"


@dataclass(frozen=True)
class Backend:
    """A fresh, empty store location for one test (see the ``backend`` fixture)."""

    name: str
    url: str

    def open(self, key: MasterKey, extra: Iterable[MasterKey] = ()) -> Store:
        """Open a new store object (a new connection) on this location."""
        return open_store(self.url, master_key=key, extra_keys=extra)


@dataclass(frozen=True)
class FieldChange:
    """A stand-in for the plan's field change (apply reads only ``path``)."""

    path: str


@dataclass(frozen=True)
class Change:
    """A stand-in for the plan's ``Change`` (apply reads name/action/after/fields)."""

    name: str
    action: str
    after: Workspace | None
    fields: Sequence[FieldChange] = field(default_factory=tuple)


def canary_key(tag: str = "") -> str:
    """A fresh canary API key."""
    return f"{CANARY}-{tag}-{secrets.token_hex(8)}"


def workspace(
    name: str,
    *,
    key: str | None = None,
    model: str = "gpt-4o",
    enabled: str | None = "openai",
    notify: tuple[str, ...] = ("ops@acme.example",),
    azure: bool = False,
) -> Workspace:
    """A workspace with an OpenAI provider (and optionally Azure OpenAI)."""
    providers = {
        "openai": ProviderConfig(
            "openai", model, settings={}, secrets={"api_key": Secret(key or canary_key(name))}
        )
    }
    if azure:
        providers["azure_openai"] = ProviderConfig(
            "azure_openai",
            "gpt-4",
            settings={
                "endpoint": "https://acme.openai.azure.com",
                "api_version": "2024-06-01",
                "deployment": "gpt4-prod",
            },
            secrets={"api_key": Secret(canary_key(name + "-az"))},
        )
    return Workspace(name=name, notify=notify, enabled=enabled, providers=providers)


def upserts(workspaces: Sequence[Workspace], action: str = "create") -> list[Change]:
    """Plan-like changes that create (or update) each workspace."""
    return [
        Change(w.name, action, w, tuple(FieldChange(f"providers.{p}") for p in w.providers))
        for w in workspaces
    ]


def generation(g: int, size: int) -> dict[str, Workspace]:
    """The deterministic desired state number ``g`` used by the crash test (g=0: empty)."""
    if g == 0:
        return {}
    out = {}
    for i in range(size):
        if (i + g) % 7 == 0:  # each generation deletes some and re-creates others
            continue
        name = f"ws-{i:04d}"
        out[name] = workspace(name, key=f"{CANARY}-gen{g}-{i}", model=f"model-gen-{g}")
    return out


def changes_between(old: dict[str, Workspace], new: dict[str, Workspace]) -> list[Change]:
    """Changes that turn ``old`` into ``new`` (every kept workspace is rewritten)."""
    out = [Change(n, "update" if n in old else "create", w) for n, w in new.items()]
    out += [Change(n, "delete", None) for n in old if n not in new]
    return out
