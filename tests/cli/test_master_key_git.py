"""The master key stays out of git: .byok/ ignores itself, and tracked keys or stores warn."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from tests.cli.running import run_cli

NEO_ONLY = "apiVersion: byok/v1\nkind: Workspace\nmetadata: {name: acme}\nspec:\n  providers: {}\n"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t.example", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    _git(tmp_path, "init", "-q")
    (tmp_path / "workspaces").mkdir()
    (tmp_path / "workspaces" / "acme.yaml").write_text(NEO_ONLY)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_embedded_default_keeps_itself_out_of_git(repo: Path) -> None:
    code, _, err = run_cli("apply", "--auto-approve", "--no-verify")
    assert code == 0, err
    assert (repo / ".byok" / "master.key").exists()
    assert (repo / ".byok" / "state.db").exists()
    assert (repo / ".byok" / ".gitignore").read_text().splitlines()[-1] == "*"

    _git(repo, "add", "-A")
    assert _git(repo, "ls-files") == "workspaces/acme.yaml\n"


def test_an_existing_directory_is_left_alone(repo: Path) -> None:
    (repo / ".byok").mkdir()
    code, _, err = run_cli("apply", "--auto-approve", "--no-verify")
    assert code == 0, err
    assert not (repo / ".byok" / ".gitignore").exists()


def test_a_tracked_master_key_or_store_warns_in_validate_and_plan(repo: Path) -> None:
    assert run_cli("apply", "--auto-approve", "--no-verify")[0] == 0
    code, out, _ = run_cli("validate")
    assert code == 0
    assert "in-git" not in out

    _git(repo, "add", "-f", ".byok/master.key", ".byok/state.db")
    code, out, _ = run_cli("validate")
    assert code == 0, "a warning, not an error: the files are still valid"
    assert ".byok/master.key:1:1: warning: this master key is tracked by git" in out
    assert "[master-key-in-git]" in out
    assert ".byok/state.db:1:1: warning: this store file" in out
    assert "[store-in-git]" in out

    code, _, err = run_cli("plan", "--no-verify")
    assert code == 0, err
    assert "[master-key-in-git]" in err
    assert "[store-in-git]" in err


def test_a_tracked_key_file_named_by_the_environment_warns(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = repo / "config" / "byok-prod.key"
    key_file.parent.mkdir()
    key_file.write_text(base64.b64encode(b"x" * 32).decode() + "\n")
    _git(repo, "add", "config/byok-prod.key")
    monkeypatch.setenv("BYOK_MASTER_KEY_FILE", str(key_file))
    code, out, _ = run_cli("validate", "--format", "json")
    assert code == 0
    assert '"rule": "master-key-in-git"' in out
    assert '"path": "config/byok-prod.key"' in out
    assert base64.b64encode(b"x" * 32).decode() not in out


def test_outside_a_repository_there_is_nothing_to_say(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "workspaces").mkdir()
    (tmp_path / "workspaces" / "acme.yaml").write_text(NEO_ONLY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    code, out, _ = run_cli("validate")
    assert code == 0
    assert "in-git" not in out
