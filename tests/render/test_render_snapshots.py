"""Snapshots of the three renderers, and what each must always say."""

from __future__ import annotations

import json

from syrupy.assertion import SnapshotAssertion

from byokctl.plan import Plan, diff
from byokctl.render import render_json, render_markdown, render_text
from tests.plan.plan_builders import live
from tests.render.render_sample import CREATED_AT, build_states


def test_text(sample_plan: Plan, text_snapshot: SnapshotAssertion) -> None:
    assert render_text(sample_plan, color=False) == text_snapshot


def test_text_in_colour(sample_plan: Plan, snapshot: SnapshotAssertion) -> None:
    coloured = render_text(sample_plan, color=True)
    assert coloured == snapshot  # amber shows the escape codes
    assert "\x1b[32m+\x1b[0m" in coloured
    plain = render_text(sample_plan, color=False)
    assert "\x1b[" not in plain


def test_text_without_targets(full_plan: Plan, text_snapshot: SnapshotAssertion) -> None:
    assert render_text(full_plan, color=False) == text_snapshot


def test_json(sample_plan: Plan, json_snapshot: SnapshotAssertion) -> None:
    assert render_json(sample_plan) == json_snapshot


def test_markdown(sample_plan: Plan, md_snapshot: SnapshotAssertion) -> None:
    assert render_markdown(sample_plan) == md_snapshot


def test_no_changes_in_every_format(snapshot: SnapshotAssertion) -> None:
    desired, _ = build_states()

    plan = diff(desired, live(*desired.workspaces.values(), serial=9), created_at=CREATED_AT)
    text = render_text(plan, color=False)
    assert text.rstrip().endswith("No changes. The live state matches the files.")
    assert text == snapshot(name="text")
    assert render_markdown(plan) == snapshot(name="markdown")
    assert json.loads(render_json(plan))["summary"]["has_changes"] is False


def test_final_line_and_markers(sample_plan: Plan) -> None:
    text = render_text(sample_plan, color=False)
    assert text.splitlines()[-1] == "Plan: 1 to add, 3 to change, 1 to destroy."
    assert text.startswith("Warning: this plan is partial")
    assert "~ providers.openai.api_key    = (sensitive value changed)" in text
    assert "  providers.azure_openai.api_key    = (sensitive)" in text
    assert "# drift: changed outside byokctl (by ui at" in text
    assert "# verify openai: ok (model listed)" in text
    assert "byokctl import" in text


def test_json_actions_and_markers(sample_plan: Plan) -> None:
    doc = json.loads(render_json(sample_plan))
    actions = {c["name"]: c["actions"] for c in doc["changes"]}
    assert actions == {
        "acme-support": ["create"],
        "beta-sales": ["update"],
        "contoso": ["update"],
        "delta-old": ["delete"],
        "echo": ["no-op"],
        "foxtrot": ["update"],
    }
    assert doc["summary"] == {
        "add": 1,
        "change": 3,
        "destroy": 1,
        "adopt": 1,
        "has_changes": True,
    }
    beta = next(c for c in doc["changes"] if c["name"] == "beta-sales")
    assert beta["drift"] is True
    assert beta["before"]["providers"]["openai"]["api_key"] == {"sensitive": True}
