"""``byokctl validate`` through click's runner, and once through the real console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from syrupy.assertion import SnapshotAssertion

from byokctl.cli import cli, main
from tests.config.test_rules import ENC, workspace


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    ws = tmp_path / "workspaces"
    ws.mkdir()
    (ws / "acme.yaml").write_text(workspace())
    (ws / "globex.yaml").write_text(
        workspace(
            name="globex",
            enabled="gemini",
            providers=f"    openai:\n      model: gpt-4o-mni\n      api_key: {ENC}\n",
        )
    )
    (ws / "broken.yaml").write_text("apiVersion: byok/v1\nkind: Workspace\nkind: Workspace\n")
    return tmp_path


def test_text_report(repo: Path, snapshot: SnapshotAssertion) -> None:
    result = CliRunner().invoke(cli, ["validate"], standalone_mode=False)
    assert result.return_value == 1
    assert result.output == snapshot


def test_json_report(repo: Path, snapshot: SnapshotAssertion) -> None:
    result = CliRunner().invoke(cli, ["validate", "--format", "json"], standalone_mode=False)
    assert result.return_value == 1
    doc = json.loads(result.output)
    assert doc["valid"] is False
    assert doc["error_count"] == 2
    assert doc == snapshot


def test_valid_files_exit_0(repo: Path) -> None:
    (repo / "workspaces" / "globex.yaml").unlink()
    (repo / "workspaces" / "broken.yaml").unlink()
    assert main(["validate"]) == 0


def test_usage_error_exits_1_not_2(repo: Path) -> None:
    # 2 means "changes present" under --detailed-exitcode; a typo must never look like that.
    assert main(["validate", "--no-such-flag"]) == 1
    assert main(["no-such-command"]) == 1


def test_help_and_version_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert main(["--version"]) == 0
    assert "byokctl" in capsys.readouterr().out


def test_console_script_in_a_subprocess(repo: Path) -> None:
    script = shutil.which("byokctl", path=os.path.dirname(sys.executable))
    assert script, "the byokctl console script is not installed next to this Python"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOPS_AGE")}
    proc = subprocess.run(
        [script, "validate", "workspaces/acme.yaml"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "1 file valid" in proc.stdout
    proc = subprocess.run(
        [script, "validate"], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 1
    assert "workspaces/broken.yaml:3:1: error: duplicate key 'kind'" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
