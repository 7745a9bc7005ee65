"""The plan's contract as properties: applying plan(desired, live) to live yields desired."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from byokctl.model import DesiredState, LiveState, LiveWorkspace, ProviderConfig, Secret, Workspace
from byokctl.plan import apply_to, diff, planfile
from tests.plan.plan_builders import EDITED_AT, NOW

NAMES = ("alpha", "beta", "gamma", "delta", "omega")
KEYS = ("sk-CANARY-prop-aaaa", "sk-CANARY-prop-bbbb", "sk-CANARY-prop-cccc")


@st.composite
def provider_configs(draw: st.DrawFn, provider: str) -> ProviderConfig:
    settings_: dict[str, str] = {}
    if provider == "azure_openai":
        settings_ = {
            "endpoint": draw(st.sampled_from(["https://a.openai.azure.com", "https://b.x.com"])),
            "api_version": "2024-06-01",
            "deployment": draw(st.sampled_from(["prod", "eu"])),
        }
    secrets = {"api_key": Secret(draw(st.sampled_from(KEYS)))} if draw(st.booleans()) else {}
    model = draw(st.sampled_from(["m1", "m2"]))
    return ProviderConfig(provider, model, settings_, secrets)


@st.composite
def workspaces(draw: st.DrawFn, name: str) -> Workspace:
    ids = draw(st.sets(st.sampled_from(["openai", "azure_openai", "xai"]), max_size=3))
    providers = {pid: draw(provider_configs(pid)) for pid in sorted(ids)}
    enabled = draw(st.sampled_from([None, *sorted(ids)]))
    notify = tuple(draw(st.lists(st.sampled_from(["a@x", "b@x"]), max_size=2)))
    return Workspace(name, notify, enabled, providers)


@st.composite
def desired_states(draw: st.DrawFn) -> DesiredState:
    names = draw(st.sets(st.sampled_from(NAMES)))
    return DesiredState({n: draw(workspaces(n)) for n in sorted(names)}, {})


@st.composite
def live_states(draw: st.DrawFn) -> LiveState:
    names = draw(st.sets(st.sampled_from(NAMES)))
    return LiveState(
        draw(st.integers(0, 5)),
        {
            n: LiveWorkspace(
                draw(workspaces(n)),
                managed=draw(st.booleans()),
                drifted=draw(st.booleans()),
                updated_at=EDITED_AT,
                updated_by="ui",
            )
            for n in sorted(names)
        },
    )


def _as_live(workspaces_: dict[str, Workspace], serial: int) -> LiveState:
    return LiveState(
        serial,
        {n: LiveWorkspace(w, True, False, EDITED_AT, "byokctl") for n, w in workspaces_.items()},
    )


@settings(max_examples=200, deadline=None)
@given(desired_states(), live_states())
def test_applying_the_plan_yields_the_desired_state(desired: DesiredState, live: LiveState) -> None:
    plan = diff(desired, live, created_at=NOW)
    result = apply_to({n: lw.workspace for n, lw in live.workspaces.items()}, plan)
    left_alone = {
        n: lw.workspace
        for n, lw in live.workspaces.items()
        if not lw.managed and n not in desired.workspaces
    }
    assert result == {**desired.workspaces, **left_alone}
    # A second plan after applying is empty: a second apply is a no-op.
    again = diff(desired, _as_live(dict(desired.workspaces), live.serial + 1), created_at=NOW)
    assert not again.has_changes
    # The saved form reads back as the same plan, and holds no key.
    text = planfile.dumps(plan)
    assert planfile.differences(planfile.loads(text), plan) == []
    assert not any(key in text for key in KEYS)


@settings(max_examples=100, deadline=None)
@given(desired_states())
def test_a_state_against_itself_has_no_changes(desired: DesiredState) -> None:
    plan = diff(desired, _as_live(dict(desired.workspaces), 3), created_at=NOW)
    assert not plan.has_changes
    assert plan.summary == (0, 0, 0)
    assert all(not c.fields for c in plan.changes)


@settings(max_examples=100, deadline=None)
@given(desired_states(), live_states(), st.sets(st.sampled_from(NAMES)))
def test_a_targeted_plan_touches_only_its_targets(
    desired: DesiredState, live: LiveState, targets: set[str]
) -> None:
    plan = diff(desired, live, created_at=NOW, targets=targets)
    before = {n: lw.workspace for n, lw in live.workspaces.items()}
    result = apply_to(before, plan)
    for name in set(before) | set(result):
        if name not in targets:
            assert result.get(name) == before.get(name)
