"""The pure diff: actions, field paths, reasons, drift, adoption, targets. No I/O."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

import pytest

from byokctl.model import DesiredState, FallbackPolicy, LiveState, ProviderConfig, Secret
from byokctl.plan import Action, FieldAction, FieldChange, Plan, apply_to, diff
from tests.plan.plan_builders import NOW, azure, desired, live, openai, workspace


def _plan(d: DesiredState, lv: LiveState, targets: Collection[str] | None = None) -> Plan:
    return diff(d, lv, created_at=NOW, targets=targets)


def test_create_update_delete_noop_sorted_by_name() -> None:
    plan = _plan(
        desired(workspace("b-new"), workspace("c-same"), workspace("a-changed", notify=("x@y",))),
        live(workspace("a-changed"), workspace("c-same"), workspace("d-gone")),
    )
    assert [(c.name, c.action) for c in plan.changes] == [
        ("a-changed", Action.UPDATE),
        ("b-new", Action.CREATE),
        ("c-same", Action.NOOP),
        ("d-gone", Action.DELETE),
    ]
    assert plan.summary == (1, 1, 1)
    assert plan.has_changes
    assert plan.serial == 1
    assert plan.created_at == NOW
    assert plan.change("b-new").reason == "new workspace"
    assert plan.change("d-gone").reason == "removed from the files"
    assert plan.change("c-same").reason == "matches the files"


def test_the_plan_keeps_the_desired_workspace_for_apply() -> None:
    want = workspace("w", openai(), enabled="openai")
    plan = _plan(desired(want), live())
    change = plan.change("w")
    assert change.after is want
    assert change.before is None
    assert change.after_view is not None
    assert change.after_view.providers["openai"].secrets == ("api_key",)


def test_field_paths_values_and_reasons() -> None:
    before = workspace(
        "w",
        openai("gpt-4o", "sk-CANARY-plan-old-key"),
        ProviderConfig("anthropic", "claude-3-opus-20240229", secrets={"api_key": Secret("k" * 9)}),
        azure("https://old.openai.azure.com"),
        enabled="openai",
        notify=("a@x",),
    )
    after = workspace(
        "w",
        openai("gpt-4.1", "sk-CANARY-plan-new-key"),
        azure("https://new.openai.azure.com"),
        ProviderConfig("xai", "grok-3", secrets={"api_key": Secret("x" * 9)}),
        enabled=None,
        notify=("a@x", "b@x"),
    )
    change = _plan(desired(after), live(before)).change("w")
    assert change.action is Action.UPDATE
    assert change.fields == (
        FieldChange("enabled", FieldAction.CHANGE, "openai", None),
        FieldChange("notify", FieldAction.CHANGE, ("a@x",), ("a@x", "b@x")),
        FieldChange("providers.anthropic.model", FieldAction.REMOVE, "claude-3-opus-20240229"),
        FieldChange("providers.anthropic.api_key", FieldAction.REMOVE, sensitive=True),
        FieldChange(
            "providers.azure_openai.endpoint",
            FieldAction.CHANGE,
            "https://old.openai.azure.com",
            "https://new.openai.azure.com",
        ),
        FieldChange("providers.openai.model", FieldAction.CHANGE, "gpt-4o", "gpt-4.1"),
        FieldChange("providers.openai.api_key", FieldAction.CHANGE, sensitive=True),
        FieldChange("providers.xai.model", FieldAction.ADD, None, "grok-3"),
        FieldChange("providers.xai.api_key", FieldAction.ADD, sensitive=True),
    )
    assert change.reasons == (
        "enabled: openai -> none (Neo)",
        "notify changed",
        "azure_openai endpoint changed",
        "openai model changed (gpt-4o -> gpt-4.1)",
        "openai api_key rotated",
        "provider xai added",
        "provider anthropic removed",
    )


def test_enabling_a_provider_from_neo() -> None:
    change = _plan(
        desired(workspace("w", openai(), enabled="openai")), live(workspace("w", openai()))
    ).change("w")
    assert change.reasons == ("enabled: none (Neo) -> openai",)


def test_an_unchanged_key_is_no_field_change() -> None:
    change = _plan(
        desired(workspace("w", openai("gpt-4.1"))), live(workspace("w", openai("gpt-4o")))
    ).change("w")
    assert [f.path for f in change.fields] == ["providers.openai.model"]


def test_sensitive_field_changes_never_carry_a_value() -> None:
    with pytest.raises(ValueError, match="must not carry a value"):
        FieldChange("providers.openai.api_key", FieldAction.ADD, None, "sk-x", sensitive=True)


def test_unmanaged_live_workspaces_are_left_alone_and_listed() -> None:
    plan = _plan(desired(), live(workspace("legacy"), unmanaged=("legacy",)))
    assert plan.changes == ()
    assert plan.unmanaged == ("legacy",)
    assert not plan.has_changes


def test_an_unmanaged_workspace_in_the_files_is_adopted() -> None:
    same = workspace("w", openai(), enabled="openai")
    noop = _plan(desired(same), live(same, unmanaged=("w",))).change("w")
    assert noop.action is Action.NOOP
    assert noop.adopt
    assert noop.is_change
    update = _plan(desired(replace(same, notify=("a@x",))), live(same, unmanaged=("w",))).change(
        "w"
    )
    assert update.action is Action.UPDATE
    assert update.adopt
    assert update.reasons[0] == "adopting a live workspace byokctl did not manage yet"
    plan = _plan(desired(same), live(same, unmanaged=("w",)))
    assert plan.has_changes  # adopting writes "managed" to the store
    assert plan.summary == (0, 0, 0)
    assert plan.adoptions == ("w",)


def test_drift_is_marked_with_who_and_when() -> None:
    files = workspace("w", openai("gpt-4o"))
    changed_in_ui = workspace("w", openai("gpt-4.1"))
    change = _plan(desired(files), live(changed_in_ui, drifted=("w",))).change("w")
    assert change.drift
    assert change.drift_reason == (
        "changed outside byokctl (by ui at 2026-11-26T09:30:00+00:00); the files restore it"
    )
    deleted = _plan(desired(), live(changed_in_ui, drifted=("w",))).change("w")
    assert deleted.action is Action.DELETE
    assert deleted.drift
    assert deleted.drift_reason.endswith("it is no longer in the files")
    matching = _plan(desired(files), live(files, drifted=("w",))).change("w")
    assert matching.action is Action.NOOP
    assert matching.drift
    assert not _plan(desired(files), live(changed_in_ui)).change("w").drift


def test_targets_limit_the_plan_and_are_recorded() -> None:
    plan = _plan(
        desired(workspace("a"), workspace("b")),
        live(workspace("c"), workspace("d"), unmanaged=("d",)),
        targets=["b", "c", "d", "b"],
    )
    assert [c.name for c in plan.changes] == ["b", "c"]
    assert plan.targets == ("b", "c", "d")
    assert plan.partial
    assert plan.unmanaged == ("d",)
    assert _plan(desired(), live()).targets is None


def test_apply_to_follows_the_plan() -> None:
    a, b = workspace("a", openai(), enabled="openai"), workspace("b")
    plan = _plan(desired(a), live(b, workspace("a")))
    assert apply_to({"a": workspace("a"), "b": b}, plan) == {"a": a}


def test_apply_to_refuses_a_plan_without_workspaces() -> None:
    plan = _plan(desired(workspace("a")), live())
    hollow = replace(plan, changes=tuple(replace(c, after=None) for c in plan.changes))
    with pytest.raises(ValueError, match="recompute it"):
        apply_to({}, hollow)


def test_repr_of_a_plan_shows_no_secret() -> None:
    key = "sk-CANARY-plan-repr-key"
    plan = _plan(desired(workspace("w", openai(key=key))), live())
    assert key not in repr(plan)
    assert key not in str(plan.changes)


def test_public_surface() -> None:
    import byokctl.plan
    import byokctl.render

    assert sorted(byokctl.plan.__all__) == [
        "Action",
        "Change",
        "CheckFinding",
        "CredentialCheck",
        "FieldAction",
        "FieldChange",
        "FieldValue",
        "Plan",
        "ProviderView",
        "WorkspaceView",
        "apply_to",
        "diff",
    ]
    assert sorted(byokctl.render.__all__) == [
        "GITHUB_COMMENT_LIMIT",
        "render_json",
        "render_markdown",
        "render_text",
    ]


def test_deepdiff_paths_become_the_dotted_field_paths() -> None:
    cfg = replace(openai(), models={"summarize": "gpt-4o-mini", "assist": "gpt-4.1"})
    before = replace(workspace("w", cfg, enabled="openai"), notify=("a@x.example",))
    after = replace(
        workspace("w", replace(cfg, models={"summarize": "gpt-4.1-mini"}), azure()),
        notify=("a@x.example", "b@x.example"),
        fallback=FallbackPolicy(return_="on_recovery"),
    )
    plan = diff(desired(after), live(before), created_at=NOW)
    fields = {f.path: f for f in plan.change("w").fields}
    assert fields["notify"] == FieldChange(
        "notify", FieldAction.CHANGE, ("a@x.example",), ("a@x.example", "b@x.example")
    )  # an item added inside the list: the field changed, with both whole values
    assert fields["fallback.return"].after == "on_recovery"
    assert fields["providers.openai.models.summarize"] == FieldChange(
        "providers.openai.models.summarize", FieldAction.CHANGE, "gpt-4o-mini", "gpt-4.1-mini"
    )
    assert fields["providers.openai.models.assist"].action is FieldAction.REMOVE
    # A provider added whole: each of its fields, the key without a value.
    assert fields["providers.azure_openai.endpoint"].action is FieldAction.ADD
    assert fields["providers.azure_openai.api_key"] == FieldChange(
        "providers.azure_openai.api_key", FieldAction.ADD, sensitive=True
    )
    assert fields["enabled"].before == "openai" and fields["enabled"].after is None
    assert (
        "openai model for summarize changed (gpt-4o-mini -> gpt-4.1-mini)"
        in plan.change("w").reasons
    )
