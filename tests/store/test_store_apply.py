"""The apply executor: lock, serial check, one transaction, audit; and racing processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from byokctl.errors import LockHeldError, MasterKeyError, StalePlanError
from byokctl.executor import apply_plan, default_holder
from byokctl.store import AuditChange, MasterKey, Store
from tests.store.storetest_helpers import CANARY, Backend, Change, FieldChange, upserts, workspace

WORKER = Path(__file__).with_name("_store_worker.py")
REPO_ROOT = Path(__file__).resolve().parents[2]


def _run_worker(key: MasterKey, *args: str) -> subprocess.Popen[str]:
    # The worker imports the shared helpers as ``tests.store.storetest_helpers``.
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "BYOK_MASTER_KEY": key.to_base64(), "PYTHONPATH": pythonpath}
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_apply_creates_updates_deletes_and_audits(store: Store) -> None:
    result = apply_plan(
        store,
        upserts([workspace("acme"), workspace("beta")]),
        holder="ci",
        lock_timeout=0,
        expected_serial=0,
        clock=lambda: datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    assert (result.previous_serial, result.serial) == (0, 1)
    assert result.created == ("acme", "beta")
    changes = [
        Change("acme", "update", workspace("acme", model="gpt-4.1"), (FieldChange("model"),)),
        Change("beta", "delete", None),
        Change("gamma", "no-op", workspace("gamma")),
    ]
    result = apply_plan(store, changes, holder="ci", lock_timeout=0, expected_serial=1)
    assert result.updated == ("acme",)
    assert result.deleted == ("beta",)
    assert result.serial == 2
    state = store.read_state()
    assert set(state.workspaces) == {"acme"}
    assert state.workspaces["acme"].workspace.providers["openai"].model == "gpt-4.1"
    log = store.audit_log()
    assert log[0].changes == (
        AuditChange("acme", "update", ("model",)),
        AuditChange("beta", "delete", ()),
    )
    assert log[1].at == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert log[1].who == "ci"
    assert store.lock_info() is None


def test_nothing_to_do_is_a_no_op(store: Store) -> None:
    apply_plan(store, upserts([workspace("acme")]), holder="ci", lock_timeout=0, expected_serial=0)
    with store.lock("someone else", "apply", timeout=0):
        # An empty plan needs no lock and moves nothing.
        result = apply_plan(
            store, [Change("acme", "no-op", None)], holder="ci", lock_timeout=0, expected_serial=1
        )
    assert not result.changed
    assert result.serial == 1
    assert store.serial() == 1
    assert len(store.audit_log()) == 1


def test_stale_plans_are_refused(store: Store) -> None:
    apply_plan(store, upserts([workspace("acme")]), holder="ci", lock_timeout=0, expected_serial=0)
    with pytest.raises(StalePlanError, match="serial is 1"):
        apply_plan(
            store, upserts([workspace("beta")]), holder="ci", lock_timeout=0, expected_serial=0
        )
    with pytest.raises(StalePlanError):
        apply_plan(store, [], holder="ci", lock_timeout=0, expected_serial=0)
    assert store.lock_info() is None
    assert set(store.read_state().workspaces) == {"acme"}


def test_lock_is_released_when_the_write_fails(backend: Backend, master_key: MasterKey) -> None:
    with backend.open(master_key) as s:
        apply_plan(s, upserts([workspace("a")]), holder="ci", lock_timeout=0, expected_serial=0)
    with backend.open(MasterKey.generate()) as wrong:
        with pytest.raises(MasterKeyError) as excinfo:
            apply_plan(
                wrong, upserts([workspace("b")]), holder="ci", lock_timeout=0, expected_serial=1
            )
        assert CANARY not in str(excinfo.value)
        assert wrong.lock_info() is None


def test_bad_changes_are_programming_errors(store: Store) -> None:
    with pytest.raises(ValueError, match="needs the workspace"):
        apply_plan(
            store, [Change("a", "create", None)], holder="x", lock_timeout=0, expected_serial=0
        )
    with pytest.raises(ValueError, match="unknown action"):
        apply_plan(
            store, [Change("a", "replace", None)], holder="x", lock_timeout=0, expected_serial=0
        )


def test_default_holder_names_user_host_and_pid() -> None:
    assert f"(pid {os.getpid()})" in default_holder()


def test_a_held_lock_makes_another_process_wait_or_fail(
    backend: Backend, master_key: MasterKey
) -> None:
    backend.open(master_key).close()  # migrate first, so both processes start alike
    holder = _run_worker(master_key, "hold", backend.url, "1.5")
    assert holder.stdout is not None
    lock_id = holder.stdout.readline().strip()
    with backend.open(master_key) as s:
        with pytest.raises(LockHeldError) as excinfo:
            apply_plan(
                s, upserts([workspace("a")]), holder="me", lock_timeout=0.2, expected_serial=0
            )
        message = str(excinfo.value)
        assert "holder-process" in message
        assert f"byokctl force-unlock {lock_id}" in message
        # With a longer timeout it waits for the other process and then applies.
        result = apply_plan(
            s, upserts([workspace("a")]), holder="me", lock_timeout=30, expected_serial=0
        )
        assert result.serial == 1
    assert holder.wait(30) == 0


def test_two_processes_racing_apply_lose_no_update(
    backend: Backend, master_key: MasterKey, tmp_path: Path
) -> None:
    rounds = 40
    backend.open(master_key).close()
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    racers = [
        _run_worker(master_key, "race", backend.url, name, str(rounds), str(barrier), "2")
        for name in ("left", "right")
    ]
    stale = 0
    for racer in racers:
        out, err = racer.communicate(timeout=120)
        assert racer.returncode == 0, err
        stats = json.loads(out)
        assert stats["done"] == rounds
        stale += stats["stale"]
    assert stale > 0  # they really raced: some plans went stale and were made again
    with backend.open(master_key) as s:
        state = s.read_state()
        assert state.serial == 2 * rounds  # serial +1 per apply, none lost
        for name in ("left", "right"):
            assert state.workspaces[name].workspace.providers["openai"].model == str(rounds)
        serials = [e.serial for e in s.audit_log()]
        assert serials == list(range(2 * rounds, 0, -1))
        assert s.lock_info() is None


def test_concurrent_first_opens_migrate_once(backend: Backend, master_key: MasterKey) -> None:
    openers = [_run_worker(master_key, "open", backend.url) for _ in range(4)]
    versions = set()
    for p in openers:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        versions.add(out.strip())
    with backend.open(master_key) as s:
        assert versions == {str(s.schema_version())}
