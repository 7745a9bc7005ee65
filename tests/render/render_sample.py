"""A plan with every kind of change, for the renderers' tests (no I/O)."""

from __future__ import annotations

from dataclasses import replace
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
from byokctl.plan import CredentialCheck, Plan, diff

#: Secret values that must never appear in any rendering or saved plan.
CANARIES = (
    "sk-CANARY-openai-old-0001",
    "sk-CANARY-openai-new-0002",
    "sk-ant-CANARY-0003",
    "azure-CANARY-key-0004",
    "sk-CANARY-created-0005",
    "xai-CANARY-adopt-0006",
)
CREATED_AT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
EDITED_AT = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


def _openai(model: str, key: str) -> ProviderConfig:
    return ProviderConfig("openai", model, secrets={"api_key": Secret(key)})


def _azure(endpoint: str, deployment: str) -> ProviderConfig:
    return ProviderConfig(
        "azure_openai",
        "gpt-4",
        settings={"endpoint": endpoint, "api_version": "2024-06-01", "deployment": deployment},
        secrets={"api_key": Secret(CANARIES[3])},
    )


def _live(ws: Workspace, *, managed: bool = True, drifted: bool = False) -> LiveWorkspace:
    by = "ui" if drifted else "byokctl:ci"
    return LiveWorkspace(ws, managed=managed, drifted=drifted, updated_at=EDITED_AT, updated_by=by)


def build_states() -> tuple[DesiredState, LiveState]:
    """Desired and live states that produce every kind of change."""
    anthropic = ProviderConfig(
        "anthropic", "claude-3-opus-20240229", secrets={"api_key": Secret(CANARIES[2])}
    )
    desired = {
        # create
        "acme-support": Workspace(
            "acme-support",
            ("ops@acme.example",),
            "openai",
            {"openai": _openai("gpt-4o", CANARIES[4])},
        ),
        # update, drifted: model changed and key rotated, anthropic removed
        "beta-sales": Workspace(
            "beta-sales",
            ("ai@beta.example",),
            "openai",
            {"openai": _openai("gpt-4.1", CANARIES[1])},
        ),
        # update: azure endpoint and deployment changed, key kept; switched to Neo
        "contoso": Workspace(
            "contoso",
            ("it@contoso.example",),
            None,
            {"azure_openai": _azure("https://contoso-eu.openai.azure.com", "gpt4-eu")},
        ),
        # no-op
        "echo": Workspace("echo", (), None, {}),
        # adoption of an unmanaged live workspace, with a notify change
        "foxtrot": Workspace(
            "foxtrot",
            ("new@foxtrot.example",),
            "xai",
            {"xai": ProviderConfig("xai", "grok-3", secrets={"api_key": Secret(CANARIES[5])})},
        ),
        # outside the targets
        "golf": Workspace("golf", (), None, {}),
    }
    live = {
        "beta-sales": _live(
            Workspace(
                "beta-sales",
                ("ai@beta.example",),
                "openai",
                {"openai": _openai("gpt-4o", CANARIES[0]), "anthropic": anthropic},
            ),
            drifted=True,
        ),
        "contoso": _live(
            Workspace(
                "contoso",
                ("it@contoso.example",),
                "azure_openai",
                {"azure_openai": _azure("https://contoso.openai.azure.com", "gpt4-prod")},
            )
        ),
        # delete
        "delta-old": _live(Workspace("delta-old", (), "anthropic", {"anthropic": anthropic})),
        "echo": _live(desired["echo"]),
        "foxtrot": _live(
            Workspace(
                "foxtrot",
                ("old@foxtrot.example",),
                "xai",
                {"xai": ProviderConfig("xai", "grok-3", secrets={"api_key": Secret(CANARIES[5])})},
            ),
            managed=False,
        ),
        # unmanaged, not in the files: left alone
        "legacy-desk": _live(Workspace("legacy-desk"), managed=False),
    }
    sources = {
        name: SourceFile(f"workspaces/{name}.yaml", f"{i:064x}")
        for i, name in enumerate(sorted(desired))
    }
    return DesiredState(desired, sources), LiveState(serial=7, workspaces=live)


TARGETS = ("acme-support", "beta-sales", "contoso", "delta-old", "echo", "foxtrot", "legacy-desk")


def sample_plan() -> Plan:
    """Create, update (drift, rotation, azure, Neo), delete, no-op, adopt, unmanaged,
    a target warning and one credential check."""
    desired, live = build_states()
    plan = diff(desired, live, created_at=CREATED_AT, targets=TARGETS)
    # The verification slot, filled as a later issue will fill it.
    changes = tuple(
        replace(c, checks=(CredentialCheck("openai", "ok", "model listed"),))
        if c.name == "acme-support"
        else c
        for c in plan.changes
    )
    return Plan(
        changes=changes,
        serial=plan.serial,
        sources=plan.sources,
        created_at=plan.created_at,
        targets=plan.targets,
        unmanaged=plan.unmanaged,
    )


def full_plan() -> Plan:
    """The same states without ``--target``."""
    desired, live = build_states()
    return diff(desired, live, created_at=CREATED_AT)
