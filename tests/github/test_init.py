"""``byokctl init``: a config repository that validates and plans, and the age key handled."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pyrage  # type: ignore[import-untyped, unused-ignore]
import pytest
import yaml

from byokctl.cli import main
from byokctl.commands.init import AGE_KEY_PATH, WORKFLOWS, scaffold_files

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {
    ".sops.yaml",
    "workspaces/example.yaml",
    ".pre-commit-config.yaml",
    ".gitignore",
    *(f".github/workflows/{w}" for w in WORKFLOWS),
}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def files_in(directory: Path) -> set[str]:
    return {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}


def test_init_with_a_generated_key_then_validate_and_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "config"
    code, out, err = run(capsys, "init", str(target))
    assert code == 0, err
    assert files_in(target) == EXPECTED | {AGE_KEY_PATH}
    key_file = target / AGE_KEY_PATH
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    secret = next(
        line for line in key_file.read_text().splitlines() if line.startswith("AGE-SECRET-KEY-")
    )
    identity = pyrage.x25519.Identity.from_str(secret)
    recipient = str(identity.to_public())
    sops = yaml.safe_load((target / ".sops.yaml").read_text())
    [rule] = sops["creation_rules"]
    assert rule == {
        "path_regex": r"(^|/)workspaces/[^/]+\.ya?ml$",
        "encrypted_regex": "^api_key$",
        "age": recipient,
    }
    # The key never leaves its file; the notice says where it must go.
    assert secret not in out + err
    assert "SOPS_AGE_KEY" in err and str(key_file) in err
    assert ".byok/" in (target / ".gitignore").read_text().splitlines()
    monkeypatch.chdir(target)
    assert run(capsys, "validate")[0] == 0
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(key_file))
    code, out, err = run(capsys, "plan", "--detailed-exitcode")
    assert code == 2, err
    assert "Plan: 1 to add, 0 to change, 0 to destroy." in out


def test_init_with_a_given_recipient_writes_no_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipient = str(pyrage.x25519.Identity.generate().to_public())
    code, _, err = run(capsys, "init", str(tmp_path), "--age-recipient", recipient)
    assert code == 0, err
    assert files_in(tmp_path) == EXPECTED
    assert f"age: {recipient}" in (tmp_path / ".sops.yaml").read_text()


def test_init_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "workspaces").mkdir()
    (tmp_path / "workspaces" / "example.yaml").write_text("mine\n")
    (tmp_path / ".gitignore").write_text("mine\n")
    code, _, err = run(capsys, "init", str(tmp_path))
    assert code == 1
    assert ".gitignore, workspaces/example.yaml" in err and "--force" in err
    assert (tmp_path / ".gitignore").read_text() == "mine\n"
    assert not (tmp_path / ".sops.yaml").exists()
    code, _, err = run(capsys, "init", str(tmp_path), "--force")
    assert code == 0, err
    assert (tmp_path / ".gitignore").read_text() != "mine\n"


def test_init_rejects_a_bad_recipient(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "init", str(tmp_path), "--age-recipient", "age1notakey")
    assert code == 1
    assert "not an age recipient" in err and "Traceback" not in err
    assert files_in(tmp_path) == set()


def test_force_replaces_the_key_with_owner_only_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "init", str(tmp_path))[0] == 0
    key_file = tmp_path / AGE_KEY_PATH
    first = key_file.read_text()
    os.chmod(key_file, 0o644)
    assert run(capsys, "init", str(tmp_path), "--force")[0] == 0
    assert key_file.read_text() != first
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_the_reference_workflows_are_the_scaffold() -> None:
    """examples/gitops/.github/workflows is what init writes, byte for byte."""
    written = scaffold_files("age1example")
    for name in WORKFLOWS:
        example = ROOT / "examples" / "gitops" / ".github" / "workflows" / name
        assert example.read_text() == written[f".github/workflows/{name}"], name
