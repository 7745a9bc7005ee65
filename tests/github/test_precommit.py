"""The hooks in ``.pre-commit-hooks.yaml``, run by the real ``pre-commit try-repo``.

``try-repo`` clones this repository (with uncommitted changes) and runs a hook on a
scratch git repository. The hooks are ``language: system``: they run the byokctl on
PATH, so they need no network.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Repo, workspace_yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def try_repo(repo: Path, hook: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(home),
        "PRE_COMMIT_HOME": str(home / "pre-commit"),
        "SOPS_DISABLE_VERSION_CHECK": "1",
        "NO_COLOR": "1",
        "GIT_AUTHOR_NAME": "dev",
        "GIT_AUTHOR_EMAIL": "dev@example.com",
        "GIT_COMMITTER_NAME": "dev",
        "GIT_COMMITTER_EMAIL": "dev@example.com",
    }
    return subprocess.run(
        [str(BIN / "pre-commit"), "try-repo", str(ROOT), hook, "--all-files", "--color", "never"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def git_repo(root: Path) -> None:
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)


@pytest.fixture
def scratch(make_repo: object, tmp_path: Path) -> Repo:
    repo: Repo = make_repo()  # type: ignore[operator]
    repo.write(
        "good", workspace_yaml("good", enabled="openai", keys={"openai": "sk-hook-canary-1"})
    )
    return repo


def test_both_hooks_pass_on_encrypted_files(scratch: Repo, tmp_path: Path) -> None:
    git_repo(scratch.root)
    for hook in ("byokctl-validate", "byokctl-forbid-unencrypted"):
        done = try_repo(scratch.root, hook, tmp_path / "home")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Passed" in done.stdout


def test_forbid_unencrypted_names_file_and_line(scratch: Repo, tmp_path: Path) -> None:
    leaked = scratch.write(
        "leaky",
        workspace_yaml("leaky", enabled="openai", keys={"openai": "sk-hook-canary-2"}),
        encrypt=False,
    )
    # A workspace that is wrong in other ways, but holds no plaintext key: not this hook's job.
    (scratch.workspaces / "odd.yaml").write_text(workspace_yaml("odd", enabled="gemini"))
    git_repo(scratch.root)
    done = try_repo(scratch.root, "byokctl-forbid-unencrypted", tmp_path / "home")
    assert done.returncode == 1
    line = next(n for n, text in enumerate(leaked.read_text().splitlines(), 1) if "api_key" in text)
    assert f"workspaces/leaky.yaml:{line}:" in done.stdout
    assert "file-not-encrypted" in done.stdout
    assert "odd.yaml" not in done.stdout
    assert "sk-hook-canary-2" not in done.stdout + done.stderr
    done = try_repo(scratch.root, "byokctl-validate", tmp_path / "home")
    assert done.returncode == 1
    assert "enabled-not-configured" in done.stdout and "odd.yaml" in done.stdout
