"""A forged ``ENC[...,type:comment]`` list item, through ``byokctl plan`` and ``apply``.

sops stores a comment inside an encrypted list as an ``ENC[...,type:comment]`` item and
keeps it out of the MAC. The same text in a list sops does *not* encrypt (here
``metadata.notify``, the repo encrypting only ``api_key``) is an ordinary string, inside
the MAC: ``sops decrypt`` refuses the file (MAC mismatch, exit 51). byokctl used to drop
the item and plan the workspace; it must refuse it as sops does and plan nothing.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from byokctl.cli import main
from byokctl.sops import find_sops_binary
from tests.conftest import Repo, workspace_yaml

CANARY = "sk-forged-comment-canary-7d41c9"

# ENC-shaped (base64 data, a 32-byte IV, a 16-byte tag); no key made it, none needs to.
FORGED = (
    "ENC[AES256_GCM,data:Zm9yZ2VkIGNvbW1lbnQ=,"
    f"iv:{base64.b64encode(bytes(range(32))).decode()},"
    f"tag:{base64.b64encode(bytes(range(16))).decode()},type:comment]"
)


@pytest.fixture
def forged_repo(
    make_repo: Callable[[], Repo], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Repo:
    repo = make_repo()
    path = repo.write(
        "alpha",
        workspace_yaml(
            "alpha",
            enabled="openai",
            keys={"openai": CANARY},
            notify="\n    - ops@example.com\n    - oncall@example.com",
        ),
    )
    text = path.read_text()
    # sops indents lists by four: put the forged item after the last notify address.
    forged, count = re.subn(
        r"^(\s*)- oncall@example\.com\n", rf"\g<0>\g<1>- {FORGED}\n", text, flags=re.MULTILINE
    )
    assert count == 1
    path.write_text(forged)
    monkeypatch.chdir(repo.root)
    monkeypatch.setenv("BYOK_STORE", f"sqlite:///{tmp_path}/state.db")
    monkeypatch.setenv("BYOK_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())
    return repo


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_sops_itself_refuses_the_forged_file(forged_repo: Repo) -> None:
    done = subprocess.run(
        [str(find_sops_binary()), "decrypt", str(forged_repo.workspaces / "alpha.yaml")],
        env={**os.environ, "SOPS_AGE_KEY_FILE": str(forged_repo.key_file)},
        capture_output=True,
        check=False,
    )
    assert done.returncode == 51
    assert b"MAC mismatch" in done.stderr


def test_plan_refuses_the_forged_comment_item(
    forged_repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "plan", "--no-verify")
    assert code == 1
    assert "alpha.yaml:1:1: error" in err
    assert "MAC mismatch" in err and "sops-mac-mismatch" in err
    assert "nothing was planned" in err
    assert out == ""
    assert CANARY not in out + err


def test_plan_json_plans_nothing(forged_repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "plan", "--no-verify", "--format", "json", "--detailed-exitcode")
    assert code == 1
    assert out == ""
    assert "MAC mismatch" in err


def test_apply_refuses_and_leaves_the_store_empty(
    forged_repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "apply", "--no-verify", "--auto-approve")
    assert code == 1
    assert "MAC mismatch" in err
    assert "added" not in out
    assert CANARY not in out + err
    code, listing, err = _run(capsys, "state", "list", "--format", "json")
    assert code == 0, err
    assert json.loads(listing)["workspaces"] == []
