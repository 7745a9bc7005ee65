"""plan → apply → state → import through the CLI, with real sops files and a real SQLite store."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from byokctl.cli import main
from tests.conftest import Repo, workspace_yaml

CANARY_A = "sk-cli-canary-alpha-93f1c0"
CANARY_B = "sk-cli-canary-beta-5e2d7a"
CANARY_C = "sk-cli-canary-gamma-0b8e44"


@pytest.fixture
def repo(make_repo: Callable[[], Repo], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    repo = make_repo()
    repo.write(
        "alpha",
        workspace_yaml("alpha", enabled="openai", keys={"openai": CANARY_A, "anthropic": CANARY_B}),
    )
    repo.write("beta", workspace_yaml("beta"))
    monkeypatch.chdir(repo.root)
    monkeypatch.setenv("BYOK_STORE", f"sqlite:///{tmp_path}/state.db")
    monkeypatch.setenv("BYOK_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())
    return repo


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_no_canary(*texts: str) -> None:
    for text in texts:
        for canary in (CANARY_A, CANARY_B, CANARY_C):
            assert canary not in text


def test_plan_apply_replan(repo: Repo, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "plan", "--no-verify", "--detailed-exitcode")
    assert code == 2, err
    assert "Plan: 2 to add, 0 to change, 0 to destroy." in out
    assert "(sensitive)" in out
    code, out2, err2 = run(capsys, "apply", "--no-verify", "--auto-approve")
    assert code == 0, err2
    assert "2 added" in out2
    code, out3, err3 = run(capsys, "plan", "--no-verify", "--detailed-exitcode")
    assert code == 0, err3
    code, out4, _ = run(capsys, "apply", "--no-verify", "--auto-approve")
    assert code == 0
    assert "No changes" in out4
    code, out5, err5 = run(capsys, "state", "show", "alpha", "--format", "json")
    assert code == 0, err5
    doc = json.loads(out5)
    assert doc["providers"]["openai"]["api_key"] == "(sensitive)"
    assert_no_canary(out, err, out2, err2, out3, err3, out4, out5)
    db = Path(str(tmp_path / "state.db")).read_bytes()
    assert CANARY_A.encode() not in db


def test_saved_plan_applies_once_then_is_stale(
    repo: Repo, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    plan_file = tmp_path / "saved.plan"
    code, _, err = run(capsys, "plan", "--no-verify", "--out", str(plan_file))
    assert code == 0, err
    text = plan_file.read_text()
    assert_no_canary(text)
    assert json.loads(text)["paths"] == ["workspaces"]
    code, out, err = run(capsys, "show", str(plan_file))
    assert code == 0
    assert "Plan: 2 to add" in out
    code, out, err = run(capsys, "apply", "--no-verify", str(plan_file))
    assert code == 0, err
    code, out, err = run(capsys, "apply", "--no-verify", str(plan_file))
    assert code == 1
    assert "stale plan" in err
    assert "serial 0 to 1" in err


def test_saved_plan_refused_when_a_file_changed(
    repo: Repo, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    plan_file = tmp_path / "saved.plan"
    assert run(capsys, "plan", "--no-verify", "--out", str(plan_file))[0] == 0
    repo.write("beta", workspace_yaml("beta", notify="[new@example.com]"))
    code, _, err = run(capsys, "apply", "--no-verify", str(plan_file))
    assert code == 1
    assert "workspaces/beta.yaml changed since the plan was made" in err


def test_apply_refuses_to_prompt_without_a_terminal(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "apply", "--no-verify")
    assert code == 1
    assert "--auto-approve" in err


def test_update_rotate_and_delete(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "apply", "--no-verify", "--auto-approve")[0] == 0
    repo.write(
        "alpha",
        workspace_yaml(
            "alpha", enabled="anthropic", keys={"openai": CANARY_C, "anthropic": CANARY_B}
        ),
    )
    (repo.workspaces / "beta.yaml").unlink()
    code, out, err = run(capsys, "plan", "--no-verify", "--detailed-exitcode")
    assert code == 2, err
    assert "Plan: 0 to add, 1 to change, 1 to destroy." in out
    assert "(sensitive value changed)" in out
    code, md, _ = run(capsys, "plan", "--no-verify", "--format", "markdown")
    assert "<details>" in md
    assert_no_canary(out, err, md)
    assert run(capsys, "apply", "--no-verify", "--auto-approve")[0] == 0
    code, out, _ = run(capsys, "state", "list", "--format", "json")
    doc = json.loads(out)
    assert [w["name"] for w in doc["workspaces"]] == ["alpha"]
    assert doc["workspaces"][0]["enabled"] == "anthropic"


def test_invalid_files_plan_nothing(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.write("gamma", workspace_yaml("gamma", enabled="gemini"), encrypt=False)
    code, out, err = run(capsys, "plan", "--no-verify")
    assert code == 1
    assert "gamma.yaml:7:3: error" in err
    assert "nothing was planned" in err
    assert out == ""


def test_target_limits_and_warns(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "plan", "--no-verify", "--target", "beta", "--target", "nope")
    assert code == 0
    assert "Plan: 1 to add, 0 to change, 0 to destroy." in out
    assert "partial" in out
    assert "--target nope matches no workspace" in err


def test_import_round_trips_to_an_adopting_plan(
    repo: Repo, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from byokctl.model import ProviderConfig, Secret, Workspace
    from byokctl.store import MasterKey, open_store

    assert run(capsys, "apply", "--no-verify", "--auto-approve")[0] == 0
    key = MasterKey.from_base64(os.environ["BYOK_MASTER_KEY"], source="test")
    legacy = Workspace(
        name="legacy",
        notify=("admin@legacy.example",),
        enabled="deepseek",
        providers={
            "deepseek": ProviderConfig(
                "deepseek", "deepseek-chat", secrets={"api_key": Secret(CANARY_C)}
            )
        },
    )
    with open_store(os.environ["BYOK_STORE"], master_key=key) as store:
        store.put_unmanaged(legacy, updated_by="settings page")
    code, out, err = run(capsys, "plan", "--no-verify")
    assert "legacy" in out  # listed as unmanaged, left alone
    assert "No changes." in out

    code, out, err = run(capsys, "import")  # every unmanaged workspace, into ./workspaces
    assert code == 0, err
    written = (repo.workspaces / "legacy.yaml").read_text()
    assert "sops:" in written
    assert_no_canary(written, out, err)
    code, out, err = run(capsys, "plan", "--no-verify", "--detailed-exitcode")
    assert code == 2, err
    assert "adopt" in out
    assert "Plan: 0 to add, 0 to change, 0 to destroy." in out
    assert run(capsys, "apply", "--no-verify", "--auto-approve")[0] == 0
    assert run(capsys, "plan", "--no-verify", "--detailed-exitcode")[0] == 0
    code, out, err = run(capsys, "import", "legacy")
    assert code == 1
    assert "refusing to overwrite" in err


def test_import_writes_back_the_fallback_policy_and_per_feature_models(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    from byokctl.model import FallbackPolicy, ProviderConfig, Secret, Workspace
    from byokctl.store import MasterKey, open_store

    key = MasterKey.from_base64(os.environ["BYOK_MASTER_KEY"], source="test")
    policy = FallbackPolicy(neo=True, max_neo_credits=250, per="day", return_="on_recovery")
    legacy = Workspace(
        name="legacy",
        notify=("admin@legacy.example",),
        enabled="deepseek",
        providers={
            "deepseek": ProviderConfig(
                "deepseek",
                "deepseek-chat",
                secrets={"api_key": Secret(CANARY_C)},
                models={"summarize": "deepseek-reasoner"},
            )
        },
        fallback=policy,
    )
    with open_store(os.environ["BYOK_STORE"], master_key=key) as store:
        store.put_unmanaged(legacy, updated_by="settings page")
    code, out, err = run(capsys, "import", "legacy")
    assert code == 0, err
    written = (repo.workspaces / "legacy.yaml").read_text()
    assert "max_neo_credits: 250" in written and "return: on_recovery" in written
    assert "summarize: deepseek-reasoner" in written
    assert_no_canary(written, out, err)
    code, out, err = run(capsys, "plan", "--no-verify", "--detailed-exitcode", "--target", "legacy")
    assert code == 2, err
    assert "adopt" in out and "fallback" not in out and "models" not in out
    assert "Plan: 0 to add, 0 to change, 0 to destroy." in out


def test_rotate_key_with_a_new_key_file(
    repo: Repo, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(capsys, "apply", "--no-verify", "--auto-approve")[0] == 0
    new_key = tmp_path / "new.key"
    new_key.write_text(base64.b64encode(os.urandom(32)).decode())
    code, out, err = run(capsys, "store", "rotate-key", "--new-key-file", str(new_key))
    assert code == 0, err
    assert "Re-encrypted 2 secret(s)" in out
    # The old key no longer opens the store's secrets; the new one does.
    code, _, err = run(capsys, "state", "list")
    assert code == 1
    assert "master key" in err
    monkeypatch.delenv("BYOK_MASTER_KEY")
    monkeypatch.setenv("BYOK_MASTER_KEY_FILE", str(new_key))
    assert run(capsys, "plan", "--no-verify", "--detailed-exitcode")[0] == 0


def test_force_unlock_of_an_unknown_lock(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "apply", "--no-verify", "--auto-approve")[0] == 0
    code, _, err = run(capsys, "force-unlock", "no-such-lock")
    assert code == 1
    assert "no-such-lock" in err


def test_local_default_store_creates_its_key_once(
    repo: Repo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BYOK_STORE")
    monkeypatch.delenv("BYOK_MASTER_KEY")
    code, _, err = run(capsys, "apply", "--no-verify", "--auto-approve")
    assert code == 0, err
    assert "created a master key" in err
    key = repo.root / ".byok" / "master.key"
    assert key.stat().st_mode & 0o077 == 0
    code, _, err = run(capsys, "plan", "--no-verify", "--detailed-exitcode")
    assert code == 0
    assert "created a master key" not in err


def test_saved_unverified_plan_applies_without_verifying_again(
    repo: Repo, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Made with --no-verify, the reviewed plan is applied as it was made: apply does not
    # call providers (here there are none to call: every base URL is refused).
    monkeypatch.setenv("BYOK_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("BYOK_ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    plan_file = tmp_path / "saved.plan"
    assert run(capsys, "plan", "--no-verify", "--out", str(plan_file))[0] == 0
    code, out, err = run(capsys, "apply", str(plan_file))
    assert code == 0, err
    assert "2 added" in out


def test_reads_never_create_a_store(
    repo: Repo, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    typo = tmp_path / "typo" / "state.db"
    code, _, err = run(capsys, "state", "list", "--store", f"sqlite:///{typo}")
    assert code == 1
    assert "no store at" in err
    assert not typo.parent.exists()
    # plan works before the first apply, against an empty state, and creates nothing
    code, out, err = run(capsys, "plan", "--no-verify", "--store", f"sqlite:///{typo}")
    assert code == 0, err
    assert "Plan: 2 to add" in out
    assert "planning against an empty state" in err
    assert not typo.parent.exists()


def test_a_mistyped_store_url_is_reported_as_such(
    repo: Repo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BYOK_MASTER_KEY")
    code, _, err = run(capsys, "plan", "--no-verify", "--store", "sqlit:///x.db")
    assert code == 1
    assert "unsupported store URL" in err


def test_drift_matching_the_files_is_cleared_by_apply(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    from byokctl.model import Workspace
    from byokctl.store import MasterKey, open_store

    assert run(capsys, "apply", "--no-verify", "--auto-approve")[0] == 0
    key = MasterKey.from_base64(os.environ["BYOK_MASTER_KEY"], source="test")
    with open_store(os.environ["BYOK_STORE"], master_key=key) as store:
        store.put_unmanaged(
            Workspace(name="beta", notify=("x@example.com",)), updated_by="settings page"
        )
    repo.write("beta", workspace_yaml("beta", notify="[x@example.com]"))
    code, out, _ = run(capsys, "plan", "--no-verify", "--detailed-exitcode")
    assert code == 2
    assert "recorded as managed again" in out
    assert run(capsys, "apply", "--no-verify", "--auto-approve")[0] == 0
    code, out, _ = run(capsys, "state", "list")
    assert "drifted" not in out
    assert run(capsys, "plan", "--no-verify", "--detailed-exitcode")[0] == 0


def test_user_errors_on_plan_files_are_one_line(
    repo: Repo, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "plan", "--no-verify", "--out", str(tmp_path / "no" / "dir" / "p"))
    assert code == 1
    assert "cannot write the plan file" in err
    binary = tmp_path / "bin.plan"
    binary.write_bytes(b"\xff\xfe\x00")
    code, _, err = run(capsys, "show", str(binary))
    assert code == 1
    assert "not a byokctl plan" in err
    wrong = tmp_path / "wrong.plan"
    wrong.write_text('{"format_version": "1.0", "paths": "workspaces", "targets": null}')
    code, _, err = run(capsys, "show", str(wrong))
    assert code == 1
    assert "not a valid byokctl plan" in err


def test_import_refuses_names_that_are_not_slugs(
    repo: Repo, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from byokctl.model import Workspace
    from byokctl.store import MasterKey, open_store

    assert run(capsys, "apply", "--no-verify", "--auto-approve")[0] == 0
    key = MasterKey.from_base64(os.environ["BYOK_MASTER_KEY"], source="test")
    with open_store(os.environ["BYOK_STORE"], master_key=key) as store:
        store.put_unmanaged(Workspace(name="../../escaped"), updated_by="settings page")
    code, _, err = run(capsys, "import", "--out-dir", str(tmp_path / "imp"))
    assert code == 1
    assert "not a valid workspace name" in err
    assert not (tmp_path / "escaped.yaml").exists()


def test_crash_log_masks_store_passwords(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from byokctl.cli.boundary import crash_dir, write_crash_log

    monkeypatch.setattr(
        "sys.argv", ["byokctl", "plan", "--store", "postgresql://admin:S3cretPW@db/byok"]
    )
    log = write_crash_log(RuntimeError("while opening postgresql://admin:S3cretPW@db/byok"))
    assert log is not None
    text = log.read_text()
    assert "S3cretPW" not in text
    assert "postgresql://admin:***@db/byok" in text
    assert crash_dir() in log.parents


def test_rotation_without_downtime_through_the_next_key(
    repo: Repo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from byokctl.resolver import Resolver

    assert run(capsys, "apply", "--no-verify", "--auto-approve")[0] == 0
    old_key = os.environ["BYOK_MASTER_KEY"]
    new_key = base64.b64encode(os.urandom(32)).decode()
    # Step 1: every process learns the next key while still using the old one.
    monkeypatch.setenv("BYOK_MASTER_KEY_NEXT", new_key)
    env = {"BYOK_MASTER_KEY": old_key, "BYOK_MASTER_KEY_NEXT": new_key}
    resolver = Resolver.from_url(os.environ["BYOK_STORE"], env=env, refresh_interval=None)
    try:
        assert resolver.resolve("alpha", "assist").reason == "byok"
        # Step 2: rotate; no file needed, the next key is the new key.
        code, out, err = run(capsys, "store", "rotate-key")
        assert code == 0, err
        assert "Re-encrypted 2 secret(s)" in out
        # The running resolver (old primary + next key) still decrypts after a reload.
        resolver.refresh()
        route = resolver.resolve("alpha", "assist")
        assert route.reason == "byok"
        assert route.api_key() == CANARY_A
        # So does the CLI with the old key as primary and the next key set.
        assert run(capsys, "state", "list")[0] == 0
    finally:
        resolver.close()
    # Step 3: the new key becomes the primary everywhere.
    monkeypatch.setenv("BYOK_MASTER_KEY", new_key)
    monkeypatch.delenv("BYOK_MASTER_KEY_NEXT")
    assert run(capsys, "plan", "--no-verify", "--detailed-exitcode")[0] == 0
