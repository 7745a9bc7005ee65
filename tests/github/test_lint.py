"""What we ship for GitHub is lint clean: the workflow/action schemas and ``zizmor --offline``.

Covers the repository's own workflows, the reference workflows, ``action.yml`` and what
``byokctl init`` writes. ``.ci/run`` runs the same checks on the repository.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from byokctl.cli import main

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml")) + sorted(
    (ROOT / "examples" / "gitops" / ".github" / "workflows").glob("*.yml")
)


def tool(name: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / name), *map(str, args)], capture_output=True, text=True, check=False
    )


def test_schemas_accept_the_workflows_and_the_action() -> None:
    assert len(WORKFLOWS) == 4
    done = tool("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *WORKFLOWS)
    assert done.returncode == 0, done.stdout + done.stderr
    done = tool(
        "check-jsonschema", "--builtin-schema", "vendor.github-actions", ROOT / "action.yml"
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schemas_do_reject_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    stepz: []\n")
    done = tool("check-jsonschema", "--builtin-schema", "vendor.github-workflows", broken)
    assert done.returncode == 1


def test_zizmor_finds_nothing() -> None:
    done = tool("zizmor", "--offline", "--no-progress", *WORKFLOWS, ROOT / "action.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No findings to report" in done.stdout + done.stderr


def test_zizmor_does_find_template_injection(tmp_path: Path) -> None:
    """The check can fail: an input inside run: is reported."""
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        "on: pull_request\npermissions: {}\njobs:\n  x:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ github.event.pull_request.title }}\n"
    )
    done = tool("zizmor", "--offline", "--no-progress", bad)
    assert done.returncode != 0
    assert "template-injection" in done.stdout + done.stderr


def test_what_init_writes_is_lint_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", str(tmp_path)]) == 0
    capsys.readouterr()
    written = sorted((tmp_path / ".github" / "workflows").glob("*.yml"))
    assert len(written) == 3
    done = tool("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *written)
    assert done.returncode == 0, done.stdout + done.stderr
    done = tool("zizmor", "--offline", "--no-progress", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_pre_commit_accepts_the_manifest_and_the_scaffolded_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    done = tool("pre-commit", "validate-manifest", ROOT / ".pre-commit-hooks.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert main(["init", str(tmp_path)]) == 0
    capsys.readouterr()
    done = tool("pre-commit", "validate-config", tmp_path / ".pre-commit-config.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
