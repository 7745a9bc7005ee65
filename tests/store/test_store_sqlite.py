"""What only the SQLite backend can show: its file, its pragmas, its raw rows."""

from __future__ import annotations

import base64
import re
import sqlite3
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from byokctl.errors import StoreError
from byokctl.model import Workspace
from byokctl.store import AuditChange, AuditEntry, MasterKey, Store, WorkspaceWrite, open_store
from tests.store.storetest_helpers import CANARY, workspace


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def _apply(store: Store, *workspaces: Workspace) -> int:
    serial = store.serial()
    audit = AuditEntry("t", datetime.now(UTC), "apply", serial + 1, ())
    return store.write(
        [WorkspaceWrite.upsert(w) for w in workspaces], expected_serial=serial, audit=audit
    )


def _files(db: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm"))
        if p.exists()
    }


def test_file_and_directory_are_owner_only_and_wal(tmp_path: Path) -> None:
    db = tmp_path / ".byok" / "state.db"
    with open_store(_url(db), master_key=MasterKey.generate()) as s:
        _apply(s, workspace("acme"))
        assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
        for name in _files(db):
            assert stat.S_IMODE((db.parent / name).stat().st_mode) == 0o600, name
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_relative_url_is_relative_to_the_working_directory(tmp_path: Path) -> None:
    with open_store("sqlite:///rel/state.db", master_key=MasterKey.generate()) as s:
        assert s.serial() == 0
    assert (tmp_path / "rel" / "state.db").exists()


def test_unknown_scheme_and_bad_url_are_clear_errors() -> None:
    with pytest.raises(StoreError, match="unsupported store URL 'mysql://\\*\\*\\*@h/db'"):
        open_store("mysql://user:pw@h/db", master_key=MasterKey.generate())
    with pytest.raises(StoreError, match="not a SQLite store URL"):
        open_store("sqlite://relative.db", master_key=MasterKey.generate())


def test_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    db = tmp_path / "junk.db"
    db.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"junk\.db"):
        open_store(_url(db), master_key=MasterKey.generate())


def test_no_plaintext_secret_or_master_key_in_the_files(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    key = MasterKey.generate()
    secrets = [f"{CANARY}-file-{i}" for i in range(20)]
    with open_store(_url(db), master_key=key) as s:
        _apply(s, *(workspace(f"ws-{i}", key=k) for i, k in enumerate(secrets)))
        _apply(s, *(workspace(f"ws-{i}", key=k + "-v2") for i, k in enumerate(secrets)))
        s.put_unmanaged(workspace("ws-0", key=secrets[0] + "-app"), updated_by="app")
        new_key = MasterKey.generate()
        s.rotate_master_key(new_key, who="op")
        blobs = _files(db)  # the WAL holds every page written so far
        assert blobs[db.name + "-wal"]
        for name, data in blobs.items():
            assert CANARY.encode() not in data, name
            for k in (key, new_key):
                assert k.to_base64().encode() not in data
                assert base64.b64decode(k.to_base64()) not in data
    for name, data in _files(db).items():  # and after the checkpoint on close
        assert CANARY.encode() not in data, name


def test_a_ciphertext_copied_to_another_row_does_not_decrypt(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    key = MasterKey.generate()
    with open_store(_url(db), master_key=key) as s:
        _apply(s, workspace("victim"), workspace("attacker"))
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(
            "UPDATE provider_secrets SET (nonce, ciphertext) = (SELECT nonce, ciphertext FROM"
            " provider_secrets WHERE workspace = 'victim') WHERE workspace = 'attacker'"
        )
    conn.close()
    with open_store(_url(db), master_key=key) as s:
        state = s.read_state()
    assert set(state.workspaces) == {"victim"}  # the victim's own row still reads
    message = state.unreadable["attacker"].problem
    assert "'attacker'" in message
    assert "copied" in message
    assert CANARY not in message


def test_a_failure_mid_transaction_leaves_nothing(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with open_store(_url(db), master_key=MasterKey.generate()) as s:
        _apply(s, workspace("acme"))
        before = s.read_state()
        # A trigger makes the 50th insert fail, after 49 rows were written.
        conn = sqlite3.connect(db)
        conn.execute(
            "CREATE TRIGGER fail_late BEFORE INSERT ON workspaces WHEN NEW.name = 'ws-049'"
            " BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
        )
        conn.commit()
        conn.close()
        with pytest.raises(StoreError, match="injected failure"):
            _apply(
                s,
                workspace("acme", model="changed"),
                *(workspace(f"ws-{i:03d}") for i in range(60)),
            )
        after = s.read_state()
        assert after == before
        assert len(s.audit_log()) == 1
        _apply(s, workspace("after-failure"))  # the connection is usable again


def test_audit_log_is_append_only(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with open_store(_url(db), master_key=MasterKey.generate()) as s:
        s.write(
            [WorkspaceWrite.upsert(workspace("acme"))],
            expected_serial=0,
            audit=AuditEntry("t", datetime.now(UTC), "apply", 1, (AuditChange("acme", "create"),)),
        )
    conn = sqlite3.connect(db)
    for statement in ("UPDATE audit_log SET who = 'mallory'", "DELETE FROM audit_log"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(statement)
    conn.close()


def test_migrations_are_recorded_once_and_newer_stores_refused(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    key = MasterKey.generate()
    for _ in range(3):
        open_store(_url(db), master_key=key).close()
    conn = sqlite3.connect(db)
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
    assert versions == [1, 2, 3, 4, 5, 6]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    runtime = {"provider_health", "failure_episodes", "notifications_sent", "credit_ledger"}
    assert {*runtime, "low_balance_notices"} <= tables
    with conn:
        conn.execute("INSERT INTO schema_migrations VALUES (99, 'from the future', 'now')")
    conn.close()
    with pytest.raises(StoreError, match="schema version 99"):
        open_store(_url(db), master_key=key)


@pytest.mark.parametrize("value", ["yesterday", "2024-13-45T00:00:00"])
def test_a_malformed_timestamp_makes_its_workspace_unreadable_naming_row_and_column(
    tmp_path: Path, value: str
) -> None:
    # PostgreSQL's timestamptz cannot hold such a value; SQLite's TEXT can.
    db = tmp_path / "state.db"
    with open_store(_url(db), master_key=MasterKey.generate()) as s:
        _apply(s, workspace("acme"), workspace("beta"))
        conn = sqlite3.connect(db)
        with conn:
            conn.execute("UPDATE workspaces SET updated_at = ? WHERE name = 'acme'", (value,))
        conn.close()
        state = s.read_state()
    assert set(state.workspaces) == {"beta"}
    problem = state.unreadable["acme"].problem
    assert re.search(r"workspace 'acme'.*updated_at column", problem)
    assert value not in problem
