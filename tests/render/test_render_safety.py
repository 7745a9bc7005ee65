"""No renderer or saved plan ever shows a secret, and Markdown stays under its limit."""

from __future__ import annotations

import re

import pytest

from byokctl.model import DesiredState, LiveState, ProviderConfig, Secret, SourceFile, Workspace
from byokctl.plan import Plan, diff, planfile
from byokctl.render import GITHUB_COMMENT_LIMIT, render_json, render_markdown, render_text
from tests.render.render_sample import CANARIES, CREATED_AT


def test_canaries_never_appear_in_any_rendering(sample_plan: Plan) -> None:
    outputs = [
        render_text(sample_plan, color=False),
        render_text(sample_plan, color=True),
        render_json(sample_plan),
        render_markdown(sample_plan),
        planfile.dumps(sample_plan),
        render_text(planfile.loads(planfile.dumps(sample_plan)), color=False),
        repr(sample_plan),
    ]
    for output in outputs:
        for canary in CANARIES:
            assert canary not in output


def test_a_saved_plan_renders_like_the_computed_one(sample_plan: Plan) -> None:
    loaded = planfile.loads(planfile.dumps(sample_plan))
    assert render_text(loaded, color=False) == render_text(sample_plan, color=False)
    assert render_markdown(loaded) == render_markdown(sample_plan)
    assert render_json(loaded) == render_json(sample_plan)


def _big_plan(count: int, *, targets: bool = False) -> Plan:
    workspaces = {
        f"ws-{i:05d}": Workspace(
            f"ws-{i:05d}",
            ("ops@example.com",),
            "openai",
            {
                "openai": ProviderConfig(
                    "openai", "gpt-4o", secrets={"api_key": Secret(CANARIES[0])}
                )
            },
        )
        for i in range(count)
    }
    sources = {n: SourceFile(f"workspaces/{n}.yaml", "0" * 64) for n in workspaces}
    return diff(
        DesiredState(workspaces, sources),
        LiveState(0, {}),
        created_at=CREATED_AT,
        targets=list(workspaces) if targets else None,
    )


def _details_count(markdown: str) -> int:
    return markdown.count("<details>")


def test_markdown_of_thousands_is_cut_with_a_note() -> None:
    plan = _big_plan(5000, targets=True)
    markdown = render_markdown(plan)
    assert len(markdown) <= GITHUB_COMMENT_LIMIT
    assert markdown.startswith(
        "### byokctl plan\n\n**Plan: 5000 to add, 0 to change, 0 to destroy.**"
    )
    assert "and 4,990 more" in markdown  # the target list in the summary is bounded
    kept = _details_count(markdown)
    assert kept > 50
    match = re.search(r"\*\*([\d,]+) more workspaces cut\*\*", markdown)
    assert match is not None
    assert kept + int(match.group(1).replace(",", "")) == 5000
    assert markdown.count("<details>") == markdown.count("</details>")
    assert CANARIES[0] not in markdown


@pytest.mark.parametrize("limit", [400, 1000, 2500, 4096, 10_000])
def test_markdown_never_exceeds_any_limit(limit: int) -> None:
    plan = _big_plan(200)
    markdown = render_markdown(plan, limit=limit)
    assert len(markdown) <= limit
    if limit >= 2500:  # room for the summary, the note and at least one workspace
        kept = _details_count(markdown)
        assert kept >= 1
        assert f"**{200 - kept:,} more workspaces cut**" in markdown


def test_markdown_that_fits_is_not_cut() -> None:
    markdown = render_markdown(_big_plan(20))
    assert _details_count(markdown) == 20
    assert "cut" not in markdown


def test_deepdiff_never_sees_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every value deepdiff is given, and everything it answers, is free of plaintext keys."""
    import deepdiff

    from tests.render.render_sample import build_states

    real = deepdiff.DeepDiff
    seen: list[object] = []

    def spy(t1: object, t2: object, **kwargs: object) -> object:
        result = real(t1, t2, **kwargs)
        seen.extend([t1, t2, result, result.to_dict() if hasattr(result, "to_dict") else None])
        return result

    monkeypatch.setattr(deepdiff, "DeepDiff", spy)
    desired, live = build_states()  # rotations, removals and additions of keys among them
    plan = diff(desired, live, created_at=CREATED_AT)
    assert seen, "the diff did not use deepdiff"

    def walk(value: object) -> None:
        assert not isinstance(value, Secret)
        if isinstance(value, dict):
            for key, child in value.items():
                walk(key)
                walk(child)
        elif isinstance(value, (list, tuple, set)):
            for child in value:
                walk(child)

    for value in seen:
        walk(value)
        text = repr(value) + str(value)
        for canary in CANARIES:
            assert canary not in text
    assert any(c.sensitive for change in plan.changes for c in change.fields)
