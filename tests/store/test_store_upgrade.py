"""A store written by an earlier byokctl opens, keeps its runtime state, and plans to no change.

The fixture (see ``fixtures/README.md``) was written by the code before the store became
one database object per dialect. Released migrations are pinned by a digest, so neither
dialect's schema can change under an existing store without a new migration version.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from byokctl.cli import main
from byokctl.store import MasterKey, open_store
from byokctl.store._migrations import LATEST_VERSION, MIGRATIONS
from byokctl.store.runtime import open_runtime_store

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).parent / "fixtures" / "store-schema4-a2a00ae.db"
FIXTURE_KEY = FIXTURE.with_suffix(".key")
EXAMPLES = ROOT / "examples" / "gitops"
#: The example workspaces the fixture store was applied from.
OLD_FILES = ("acme-support", "globex-helpdesk", "hooli-cx", "initech-it", "umbrella-care")

#: sha256 of the released migrations up to each version (version, name, both dialects'
#: statements): the digest of versions 1-4 is the one pinned before version 5 was added.
RELEASED_MIGRATIONS = {
    4: "d082c0522f9e6b3a009611286d0eb99d63dfcc79b9aabb5dadb0f371d56e4db1",
    5: "c5ca2ec71df3189799683f4983252146390639a5fc4552f8206827574b6ea06c",
    6: "c651eccc01863b1fc04160eb4cde37a3dd48dcd8ef2c32bee849285b345fb1ca",
}


@pytest.mark.parametrize("upto", sorted(RELEASED_MIGRATIONS))
def test_released_migrations_are_unchanged(upto: int) -> None:
    released = [m for m in MIGRATIONS if m.version <= upto]
    doc = json.dumps([[m.version, m.name, list(m.sqlite), list(m.postgresql)] for m in released])
    assert hashlib.sha256(doc.encode()).hexdigest() == RELEASED_MIGRATIONS[upto], (
        "a released migration was edited: add a new version instead"
    )


def test_every_migration_is_pinned() -> None:
    assert max(m.version for m in MIGRATIONS) == max(RELEASED_MIGRATIONS), (
        "pin the new migration's digest in RELEASED_MIGRATIONS"
    )


@pytest.fixture
def old_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    path = tmp_path / "state.db"
    shutil.copyfile(FIXTURE, path)
    path.chmod(0o600)
    monkeypatch.setenv("BYOK_MASTER_KEY", FIXTURE_KEY.read_text().strip())
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(EXAMPLES / "age" / "demo-key.txt"))
    return f"sqlite:///{path}"


#: What the examples gained after the fixture was written (issue 16: hooli-cx's gateway).
ADDED_SINCE = {"hooli-cx": "providers.openai_compatible."}


def test_an_existing_store_plans_to_no_change(
    old_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["plan", "--no-verify", "--format", "json", "--store", old_store]
    # The files the fixture store was applied from: none has the fields of schema 5.
    code = main([*argv, *(str(EXAMPLES / "workspaces" / f"{name}.yaml") for name in OLD_FILES)])
    out, err = capsys.readouterr()
    assert code == 0, err
    changes = [c for c in json.loads(out)["changes"] if c["actions"] != ["no-op"]]
    # Nothing but what the files gained since: the old rows read as they were written.
    assert {c["name"] for c in changes} == set(ADDED_SINCE)
    for change in changes:
        assert change["actions"] == ["update"]
        assert all(f["path"].startswith(ADDED_SINCE[change["name"]]) for f in change["fields"])
        assert all(f["action"] == "add" for f in change["fields"])


def test_an_existing_store_keeps_its_rows_and_migrates_to_the_latest(old_store: str) -> None:
    key = MasterKey.from_base64(FIXTURE_KEY.read_text().strip(), source="fixture")
    with open_store(old_store, master_key=key) as store:
        state = store.read_state()
        assert state.serial == 1
        assert sorted(state.workspaces) == [
            "acme-support", "globex-helpdesk", "hooli-cx", "initech-it", "umbrella-care",
        ]  # fmt: skip
        assert not any(lw.drifted for lw in state.workspaces.values())
        assert [e.operation for e in store.audit_log()] == ["apply"]
        assert store.schema_version() == LATEST_VERSION == 6
        # Rows written before schema 5 read as the default policy and one model.
        for live in state.workspaces.values():
            assert live.workspace.fallback.is_default
            assert all(not cfg.models for cfg in live.workspace.providers.values())
    runtime = open_runtime_store(old_store)
    try:
        health = {(h.workspace, h.provider): h for h in runtime.health()}
        assert health["acme-support", "openai"].status == "open"
        assert health["acme-support", "openai"].open_until == 1_780_000_030.0
        assert health["hooli-cx", "anthropic"].status == "sticky"
        episodes = runtime.episodes()
        assert [(e.workspace, e.outcome, e.sticky) for e in episodes] == [
            ("hooli-cx", "invalid_key", True),
            ("acme-support", "outage", False),
        ]
        usage = {(u.workspace, u.route): (u.actions, u.credits) for u in runtime.credit_usage()}
        assert usage == {("acme-support", "neo"): (3, 30), ("hooli-cx", "byok"): (2, 0)}
        assert runtime.versions() == (1, 2)
        # Schema 6's low-balance notices work on the migrated store: one claim per episode.
        claims = [
            runtime.claim_low_balance("hooli-cx", "deepseek", "fp", now=1_780_000_000.0, lease=60)
            for _ in range(2)
        ]
        assert claims == [True, False]
    finally:
        runtime.close()
    db = sqlite3.connect(old_store.removeprefix("sqlite:///"))
    try:
        assert db.execute("SELECT count(*) FROM schema_migrations").fetchone() == (6,)
    finally:
        db.close()


def test_a_store_from_a_newer_byokctl_is_refused_clearly_and_left_alone(
    old_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key = MasterKey.from_base64(FIXTURE_KEY.read_text().strip(), source="fixture")
    with open_store(old_store, master_key=key):
        pass  # migrated to the latest version
    path = old_store.removeprefix("sqlite:///")
    db = sqlite3.connect(path)
    try:
        with db:
            db.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (LATEST_VERSION + 1, "from the future", "2030-01-01T00:00:00+00:00"),
            )
    finally:
        db.close()
    before = Path(path).read_bytes()
    code = main(["plan", "--no-verify", "--store", old_store, str(EXAMPLES / "workspaces")])
    _, err = capsys.readouterr()
    assert code == 1
    assert f"schema version {LATEST_VERSION + 1}, newer than this byokctl knows" in err
    assert "downgrading a store is not supported" in err
    assert "Traceback" not in err
    assert Path(path).read_bytes() == before
