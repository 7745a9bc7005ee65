"""Snapshots of the three renderers, and what each must always say."""

from __future__ import annotations

import json
from dataclasses import replace

from syrupy.assertion import SnapshotAssertion

from byokctl.model import DesiredState, FallbackPolicy, ProviderConfig, Secret, Workspace
from byokctl.plan import CheckFinding, Plan, diff
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


def _refused(plan: Plan) -> Plan:
    """``plan`` as verification leaves it when apply would refuse it (and warn)."""
    return replace(
        plan,
        errors=(
            CheckFinding(
                "beta-sales",
                "openai",
                "invalid_key",
                "OpenAI: the API key is invalid or revoked (HTTP 401: <b>bad</b> `key`)",
            ),
            CheckFinding(
                "contoso", "azure_openai", "not_verified", "the provider was not verified"
            ),
        ),
        warnings=(
            CheckFinding(
                "acme-support",
                "openai",
                "outage",
                "OpenAI: the provider is unavailable or overloaded (HTTP 503)",
            ),
        ),
    )


def test_refused_plan_in_every_format(sample_plan: Plan, snapshot: SnapshotAssertion) -> None:
    plan = _refused(sample_plan)
    text = render_text(plan, color=False)
    assert text.startswith("Error: apply would refuse this plan: 2 workspaces")
    assert text.index("beta-sales: openai (enabled): invalid_key") < text.index("Warning:")
    assert text.index("Warning: the provider could not confirm") < text.index("byokctl will")
    assert text == snapshot(name="text")

    md = render_markdown(plan)
    # Above the fold: right under the heading, before the summary and every <details>.
    caution = md.index("> [!CAUTION]")
    assert caution < md.index("**Plan:") < md.index("<details>")
    assert md.index("> [!WARNING]\n> The provider could not confirm") < md.index("**Plan:")
    assert "`beta-sales`: openai `invalid_key`" in md
    # Provider text stays in a code span (no HTML or Markdown in it is interpreted), and a
    # backtick in it cannot close the span.
    assert "`OpenAI: the API key is invalid or revoked (HTTP 401: <b>bad</b> 'key')`" in md
    assert md == snapshot(name="markdown")

    doc = json.loads(render_json(plan))
    assert list(doc)[:3] == ["format_version", "errors", "warnings"]
    assert [(e["workspace"], e["provider"], e["outcome"]) for e in doc["errors"]] == [
        ("beta-sales", "openai", "invalid_key"),
        ("contoso", "azure_openai", "not_verified"),
    ]
    assert doc["errors"][0]["message"].startswith("beta-sales: openai (enabled): invalid_key (")
    assert doc["warnings"][0]["outcome"] == "outage"


def test_refused_plan_markdown_lists_a_bounded_number(sample_plan: Plan) -> None:
    many = tuple(CheckFinding(f"ws-{i:04}", "openai", "invalid_key", "x" * 240) for i in range(500))
    md = render_markdown(replace(sample_plan, errors=many), limit=20_000)
    assert len(md) <= 20_000
    assert "ws-0009" in md and "ws-0010" not in md
    assert "and 490 more" in md


def _policy_plan() -> Plan:
    """One workspace gains a fallback policy and a model per feature; one loses its policy."""
    key = Secret("sk-CANARY-policy-0007")
    plain = ProviderConfig("openai", "gpt-4o", secrets={"api_key": key})
    per_feature = replace(plain, models={"summarize": "gpt-4o-mini", "auto_reply": "gpt-4.1-mini"})
    before = Workspace("golf", ("ops@golf.example",), "openai", {"openai": plain})
    after = replace(
        before,
        providers={"openai": per_feature},
        fallback=FallbackPolicy(neo=True, max_neo_credits=500, per="month", return_="on_recovery"),
    )
    strict = replace(before, name="hotel", fallback=FallbackPolicy(neo=False))
    relaxed = replace(strict, fallback=FallbackPolicy())
    desired = DesiredState({"golf": after, "hotel": relaxed}, {})
    return diff(desired, live(before, strict, serial=4), created_at=CREATED_AT)


def test_policy_and_per_feature_model_changes_in_every_format(snapshot: SnapshotAssertion) -> None:
    plan = _policy_plan()
    text = render_text(plan, color=False)
    assert "fallback.max_neo_credits" in text and "providers.openai.models.summarize" in text
    assert "sk-CANARY" not in text
    assert text == snapshot(name="text")
    md = render_markdown(plan)
    assert "fallback.neo" in md
    assert md == snapshot(name="markdown")
    doc = json.loads(render_json(plan))
    golf = next(c for c in doc["changes"] if c["name"] == "golf")
    assert golf["after"]["fallback"] == {
        "max_neo_credits": 500, "per": "month", "return": "on_recovery",
    }  # fmt: skip
    assert golf["after"]["providers"]["openai"]["models"] == {
        "auto_reply": "gpt-4.1-mini", "summarize": "gpt-4o-mini",
    }  # fmt: skip
    assert "fallback" not in next(c for c in doc["changes"] if c["name"] == "hotel")["after"]
    assert render_json(plan) == snapshot(name="json")
