"""`status`, `resolve`, `plan` and `apply` with one workspace's live row damaged (SQLite, PostgreSQL)."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from byokctl.cli import main
from byokctl.store import MasterKey, open_store
from tests.conftest import Repo, workspace_yaml
from tests.damage import DAMAGE
from tests.pg import postgres_database, postgres_schema_url  # noqa: F401 - a fixture

CANARY_ACME = "sk-store-error-canary-acme-71c2"
CANARY_BETA = "sk-store-error-canary-beta-0d94"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'state.db'}"
    return postgres_schema_url(request.getfixturevalue("postgres_database"))


@pytest.fixture
def applied(
    make_repo: Callable[[], Repo], store_url: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[Repo, str]:
    """Two workspaces applied from files; the live store is then ready to be damaged."""
    repo = make_repo()
    repo.write("acme", workspace_yaml("acme", enabled="openai", keys={"openai": CANARY_ACME}))
    repo.write("beta", workspace_yaml("beta", enabled="openai", keys={"openai": CANARY_BETA}))
    monkeypatch.chdir(repo.root)
    monkeypatch.setenv("BYOK_STORE", store_url)
    monkeypatch.setenv("BYOK_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())
    assert main(["apply", "--auto-approve", "--no-verify"]) == 0
    return repo, store_url


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    for text in (out, err):
        assert CANARY_ACME not in text
        assert CANARY_BETA not in text
        assert "Traceback" not in text
    return code, out, err


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_status_and_resolve_isolate_the_bad_row(
    applied: tuple[Repo, str], capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    _, url = applied
    capsys.readouterr()
    DAMAGE[damage](url, "acme", "beta")
    code, out, err = _run(capsys, "status", "--format", "json")
    assert code == 0, err
    rows = {w["name"]: w for w in json.loads(out)["workspaces"]}
    assert (rows["acme"]["route"], rows["acme"]["reason"]) == ("neo", "store_error")
    assert [e["outcome"] for e in rows["acme"]["open_episodes"]] == ["store_error"]
    assert (rows["beta"]["route"], rows["beta"]["reason"]) == ("openai", "byok")
    code, out, err = _run(capsys, "status")
    assert code == 0, err
    assert any(line.startswith("acme") and "store_error" in line for line in out.splitlines())
    code, out, err = _run(capsys, "resolve", "beta", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["reason"] == "byok"
    code, out, err = _run(capsys, "resolve", "acme", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["reason"] == "store_error"


@pytest.mark.parametrize("damage", ["flipped-ciphertext", "garbage-notify-json"])
def test_plan_and_apply_name_the_unreadable_workspace_and_change_nothing(
    applied: tuple[Repo, str], capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    repo, url = applied
    capsys.readouterr()
    DAMAGE[damage](url, "acme", "beta")
    (repo.workspaces / "acme.yaml").unlink()  # the plan would otherwise be a no-op for it
    code, out, err = _run(capsys, "plan", "--no-verify", "--detailed-exitcode")
    assert code == 1
    assert "workspace 'acme'" in err and "unreadable" in err
    assert "to destroy" not in out  # it never planned a delete of the row it cannot read
    code, out, err = _run(capsys, "apply", "--no-verify", "--auto-approve")
    assert code == 1
    assert "workspace 'acme'" in err and "unreadable" in err
    master_key = MasterKey.from_base64(os.environ["BYOK_MASTER_KEY"], source="test")
    with open_store(url, master_key=master_key) as store:
        assert store.serial() == 1  # nothing was applied
        assert set(store.read_state().unreadable) == {"acme"}
        assert store.lock_info() is None
    # Leaving it out of the plan, the other workspaces can still be planned.
    code, out, err = _run(capsys, "plan", "--no-verify", "--target", "beta")
    assert code == 0, err


def test_state_and_import_say_what_they_leave_out(
    applied: tuple[Repo, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _, url = applied
    capsys.readouterr()
    DAMAGE["copied-ciphertext"](url, "acme", "beta")
    code, out, err = _run(capsys, "state", "list", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert [w["name"] for w in doc["workspaces"]] == ["beta"]
    assert [u["name"] for u in doc["unreadable"]] == ["acme"]
    assert "workspace 'acme' is in the store but left out" in err
    code, out, err = _run(capsys, "state", "show", "acme")
    assert code == 1
    assert "workspace 'acme' is in the store, but its rows are unreadable" in err
    code, out, err = _run(capsys, "import", "acme", "--out-dir", str(tmp_path / "imported"))
    assert code == 1
    assert "unreadable" in err
    assert not (tmp_path / "imported").exists()
