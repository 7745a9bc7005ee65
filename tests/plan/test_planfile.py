"""The saved-plan format: round trip, no secret, staleness and sameness checks."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from byokctl.errors import ByokError, StalePlanError
from byokctl.model import SourceFile
from byokctl.plan import Plan, diff, planfile
from tests.plan.plan_builders import NOW, azure, desired, live, openai, workspace

OLD_KEY = "sk-CANARY-planfile-old-1"
NEW_KEY = "sk-CANARY-planfile-new-2"


def _rotation_plan(new_key: str = NEW_KEY) -> Plan:
    return diff(
        desired(
            workspace("w", openai("gpt-4.1", new_key), azure(), enabled="openai"),
            workspace("created", openai(key=new_key)),
        ),
        live(workspace("w", openai("gpt-4o", OLD_KEY), azure()), workspace("gone"), serial=4),
        created_at=NOW,
    )


def test_round_trip_keeps_everything_but_the_secrets(tmp_path: Path) -> None:
    plan = _rotation_plan()
    path = tmp_path / "plan.json"
    planfile.write_plan(path, plan)
    loaded = planfile.read_plan(path)
    assert planfile.differences(loaded, plan) == []
    assert loaded.serial == 4
    assert loaded.created_at == NOW
    assert loaded.sources == plan.sources
    assert loaded.summary == plan.summary
    assert [c.fields for c in loaded.changes] == [c.fields for c in plan.changes]
    assert [c.after_view for c in loaded.changes] == [c.after_view for c in plan.changes]
    assert all(c.after is None and c.before is None for c in loaded.changes)
    assert planfile.dumps(loaded) == path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["plan.json"]  # no temp file left


def test_the_file_holds_no_secret_and_says_which_changed(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    planfile.write_plan(path, _rotation_plan())
    text = path.read_text()
    for key in (OLD_KEY, NEW_KEY, "azure-CANARY-plan-key-1"):
        assert key not in text
    doc = json.loads(text)
    assert doc["format_version"] == planfile.FORMAT_VERSION
    (w,) = [c for c in doc["changes"] if c["name"] == "w"]
    assert w["actions"] == ["update"]
    assert {"path": "providers.openai.api_key", "action": "change", "sensitive": True} in w[
        "fields"
    ]
    assert w["after"]["providers"]["openai"]["api_key"] == {"sensitive": True}
    assert w["after"]["providers"]["azure_openai"]["endpoint"] == "https://acme.openai.azure.com"


def test_check_fresh_accepts_an_unchanged_state() -> None:
    plan = _rotation_plan()
    hashes = {s.path: s.sha256 for s in plan.sources.values()}
    planfile.check_fresh(plan, current_serial=4, current_hashes=hashes)


def test_check_fresh_says_which_moved_and_what_to_do() -> None:
    plan = _rotation_plan()
    hashes = {s.path: s.sha256 for s in plan.sources.values()}
    hashes["workspaces/w.yaml"] = "b" * 64
    del hashes["workspaces/created.yaml"]
    hashes["workspaces/extra.yaml"] = "c" * 64
    with pytest.raises(StalePlanError) as caught:
        planfile.check_fresh(plan, current_serial=6, current_hashes=hashes)
    message = str(caught.value)
    assert "the live state moved from serial 4 to 6" in message
    assert "file workspaces/w.yaml changed" in message
    assert "file workspaces/created.yaml was removed" in message
    assert "file workspaces/extra.yaml is new" in message
    assert caught.value.hint is not None
    assert "byokctl plan" in caught.value.hint


def test_check_same_sees_a_rotation_but_not_the_key_value() -> None:
    saved = planfile.loads(planfile.dumps(_rotation_plan()))
    # Another new key value: the same plan as far as a reviewer can tell.
    planfile.check_same(saved, _rotation_plan("sk-CANARY-planfile-other-3"))
    # No rotation at all: a different plan.
    with pytest.raises(StalePlanError, match="workspace w would change differently"):
        planfile.check_same(saved, _rotation_plan(OLD_KEY))


def test_differences_ignore_checks_but_see_targets() -> None:
    plan = _rotation_plan()
    assert planfile.differences(plan, replace(plan, created_at=NOW.replace(year=2030))) == []
    narrowed = diff(desired(workspace("w")), live(workspace("w")), created_at=NOW, targets=["w"])
    found = planfile.differences(plan, narrowed)
    assert found[0].startswith("targets differ")
    assert "workspace created is no longer in the plan" in found


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not JSON"),
        ("[]", "no format_version"),
        ('{"format_version": "2.0"}', "plan format 2.0; this byokctl reads 1.x"),
        ('{"format_version": "1.0"}', "not a valid byokctl plan"),
    ],
)
def test_a_bad_file_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(ByokError, match=message):
        planfile.loads(text, origin="plan.json")


def test_a_newer_minor_version_is_read() -> None:
    doc = planfile.to_document(_rotation_plan())
    doc["format_version"] = "1.7"
    doc["something_new"] = {"ignored": True}
    assert planfile.loads(json.dumps(doc)).serial == 4


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ByokError, match="cannot read plan file"):
        planfile.read_plan(tmp_path / "nope.json")


def test_sources_are_recorded_by_workspace() -> None:
    plan = _rotation_plan()
    assert plan.sources["w"] == SourceFile("workspaces/w.yaml", "a" * 64)


def test_the_documented_example_is_a_valid_plan() -> None:
    doc = Path(__file__).parents[2] / "docs" / "plan-json.md"
    example = doc.read_text().split("## Example", 1)[1].split("```json\n", 1)[1].split("```")[0]
    plan = planfile.loads(example)
    assert plan.summary == (0, 1, 0)
    assert plan.changes[0].fields[1].sensitive
    assert json.loads(planfile.dumps(plan)) == json.loads(example)


def test_differences_ignore_credential_checks() -> None:
    from byokctl.plan import CredentialCheck

    plan = _rotation_plan()
    checked = replace(
        plan,
        changes=tuple(
            replace(c, checks=(CredentialCheck("openai", "invalid_key"),)) for c in plan.changes
        ),
    )
    assert planfile.differences(planfile.loads(planfile.dumps(checked)), plan) == []
    assert planfile.loads(planfile.dumps(checked)).changes[0].checks == (
        CredentialCheck("openai", "invalid_key"),
    )


def test_policy_and_per_feature_models_round_trip_and_make_a_saved_plan_differ(
    tmp_path: Path,
) -> None:
    from byokctl.model import FallbackPolicy

    base = workspace("w", openai("gpt-4o", OLD_KEY), enabled="openai")
    cfg = replace(base.providers["openai"], models={"summarize": "gpt-4o-mini"})
    capped = replace(
        base, providers={"openai": cfg}, fallback=FallbackPolicy(max_neo_credits=9, per="day")
    )
    plan = diff(desired(capped), live(base, serial=2), created_at=NOW)
    path = tmp_path / "plan.json"
    planfile.write_plan(path, plan)
    loaded = planfile.read_plan(path)
    assert planfile.differences(loaded, plan) == []
    assert [c.after_view for c in loaded.changes] == [c.after_view for c in plan.changes]
    (after,) = [c.after_view for c in loaded.changes]
    assert after is not None and after.fallback == {"max_neo_credits": 9, "per": "day"}
    assert after.providers["openai"].models == {"summarize": "gpt-4o-mini"}
    # The same files with another cap, or another per-feature model, are another plan.
    for other in (
        replace(capped, fallback=FallbackPolicy(max_neo_credits=10, per="day")),
        replace(capped, providers={"openai": replace(cfg, models={"summarize": "gpt-4.1"})}),
    ):
        recomputed = diff(desired(other), live(base, serial=2), created_at=NOW)
        assert planfile.differences(loaded, recomputed) != []
