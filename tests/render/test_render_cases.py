"""Edge cases of the renderers: adoption without changes, drift that already matches,
values that could break Markdown."""

from __future__ import annotations

from byokctl.model import ProviderConfig, Secret
from byokctl.plan import diff
from byokctl.render import render_markdown, render_text
from tests.plan.plan_builders import NOW, desired, live, workspace


def test_an_adoption_without_configuration_change_is_listed() -> None:
    same = workspace("legacy", notify=("a@x",))
    plan = diff(desired(same), live(same, unmanaged=("legacy",)), created_at=NOW)
    text = render_text(plan, color=False)
    assert "# legacy will be adopted, with no configuration change" in text
    assert '~ workspace "legacy" {}' in text
    assert text.splitlines()[-1] == "Plan: 0 to add, 0 to change, 0 to destroy."
    assert "<b>~ adopt</b> <code>legacy</code>" in render_markdown(plan)


def test_drift_that_already_matches_the_files_is_recorded_by_apply() -> None:
    # Nothing to change, but apply must record the workspace as managed again, or the
    # drift mark (and this note) would stay forever.
    same = workspace("w")
    plan = diff(desired(same), live(same, drifted=("w",)), created_at=NOW)
    assert plan.has_changes
    text = render_text(plan, color=False)
    assert "w will be recorded as managed again, with no configuration change" in text
    assert "changed outside byokctl (by ui at 2026-11-26T09:30:00+00:00); it matches" in text
    assert text.splitlines()[-1] == "Plan: 0 to add, 0 to change, 0 to destroy."


def test_markdown_survives_hostile_values() -> None:
    config = ProviderConfig(
        "azure_openai",
        "gpt-4",
        settings={"endpoint": "https://x.example/```</details><b>", "deployment": "d|e"},
        secrets={"api_key": Secret("sk-CANARY-hostile-0001")},
    )
    plan = diff(desired(workspace("w<x>", config)), live(), created_at=NOW)
    markdown = render_markdown(plan)
    assert "<code>w&lt;x&gt;</code>" in markdown
    assert "````diff" in markdown  # a longer fence than the value's backticks
    # Inside a fenced block "</details>" is literal text (CommonMark); only the real one
    # starts a line.
    assert markdown.count("\n</details>") == 1
    assert "sk-CANARY-hostile-0001" not in markdown
