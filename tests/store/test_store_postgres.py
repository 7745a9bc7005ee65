"""What only the PostgreSQL backend can show: advisory locks, CAS races, kill -9, raw rows.

Every test runs against the real server (see ``conftest.py``: a database per session, a
schema per test); racing and dying processes are forked, each with its own pool.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import psycopg
import pytest

from byokctl.errors import LockHeldError, StalePlanError, StoreError
from byokctl.executor import apply_plan
from byokctl.store import AuditEntry, MasterKey, WorkspaceWrite, open_store
from tests.store.conftest import postgres_schema_url
from tests.store.killing import DOOMED, freeze_inside_apply, tagged, wait_sessions_ended
from tests.store.storetest_helpers import (
    CANARY,
    Backend,
    Change,
    FieldChange,
    changes_between,
    generation,
    workspace,
)

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork and SIGKILL")


@pytest.fixture
def pg(postgres_database: str) -> Backend:
    """A fresh, empty store location in its own schema."""
    return Backend("postgresql", postgres_schema_url(postgres_database))


@pytest.fixture
def raw(pg: Backend) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A plain connection into the store's schema, to look at rows as they are stored."""
    with psycopg.connect(pg.url, autocommit=True) as conn:
        yield conn


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fork(target: Callable[[], object]) -> int:
    """Run ``target`` in a forked child that never returns into pytest."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            target()
            code = 0
        finally:
            os._exit(code)
    return pid


def _wait_ok(pid: int) -> None:
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child {pid}: {status}"


def _barrier(directory: str, name: str, parties: int) -> None:
    with open(os.path.join(directory, f"ready-{name}"), "w"):
        pass
    deadline = time.monotonic() + 30
    while len(os.listdir(directory)) < parties and time.monotonic() < deadline:
        time.sleep(0.002)


# -- connecting ----------------------------------------------------------------------


def test_unreachable_server_is_one_clear_line_and_masks_the_password() -> None:
    port = _free_port()  # nothing listens there
    url = f"postgresql://byok:hunter2-{CANARY}@127.0.0.1:{port}/byok?connect_timeout=2"
    with pytest.raises(StoreError) as excinfo:
        open_store(url, master_key=MasterKey.generate())
    message = str(excinfo.value)
    # "refused" below is libpq's reason from the first, direct attempt: the error came
    # from that attempt, not from waiting out a pool's timeout.
    assert f"cannot reach the PostgreSQL store postgresql://***@127.0.0.1:{port}/byok" in message
    assert f"at 127.0.0.1:{port}" in message
    assert "refused" in message.lower()
    assert "check that PostgreSQL is running" in (excinfo.value.hint or "")
    assert "hunter2" not in message
    assert CANARY not in message
    assert "\n" not in message
    assert "psycopg" not in message.lower()


def test_unknown_database_and_missing_schema_are_clear(postgres_database: str) -> None:
    base = postgres_database.rsplit("/", 1)[0]
    with pytest.raises(StoreError, match='database "no_such_db_x" does not exist'):
        open_store(f"{base}/no_such_db_x", master_key=MasterKey.generate())
    with pytest.raises(StoreError, match="no schema on its search_path exists"):
        open_store(
            f"{postgres_database}?options=-csearch_path%3Dnope", master_key=MasterKey.generate()
        )


def test_url_and_repr_never_show_the_password(postgres_database: str) -> None:
    base = postgres_schema_url(postgres_database)
    url = base.replace("postgres@", "postgres:s3cret-pw@")  # trust auth ignores it
    with open_store(url + "&password=s3cret-too", master_key=MasterKey.generate()) as s:
        assert "s3cret" not in s.url
        assert "s3cret" not in repr(s)
        assert s.url.startswith("postgresql://***@127.0.0.1")


def test_sqlite_users_do_not_import_psycopg(tmp_path: object) -> None:
    code = (
        "import sys, byokctl.store as s;"
        f"s.open_store('sqlite:///{tmp_path}/x.db', master_key=s.MasterKey.generate()).close();"
        "assert 'psycopg' not in sys.modules and 'psycopg_pool' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- rows at rest ------------------------------------------------------------------------


def test_secrets_are_ciphertext_and_the_audit_log_is_append_only(
    pg: Backend, raw: psycopg.Connection[tuple[object, ...]]
) -> None:
    with pg.open(MasterKey.generate()) as s:
        apply_plan(
            s, [Change("acme", "create", workspace("acme"))], holder="t", lock_timeout=0,
            expected_serial=0,
        )  # fmt: skip
    dump = json.dumps(
        [
            [repr(v) for v in row]
            for table in ("workspaces", "provider_configs", "provider_secrets", "audit_log")
            for row in raw.execute(f"SELECT * FROM {table}".encode()).fetchall()  # noqa: S608
        ]
    )
    assert CANARY not in dump
    for statement in (
        "UPDATE audit_log SET who = 'mallory'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ):
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            raw.execute(statement.encode())
    versions = [r[0] for r in raw.execute("SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions == list(range(1, len(versions) + 1))


def test_newer_schema_is_refused(pg: Backend, raw: psycopg.Connection[tuple[object, ...]]) -> None:
    pg.open(MasterKey.generate()).close()
    raw.execute("INSERT INTO schema_migrations VALUES (99, 'from the future', now())")
    with pytest.raises(StoreError, match="schema version 99, newer than this byokctl"):
        pg.open(MasterKey.generate())


def test_each_write_notifies_the_new_serial(pg: Backend, master_key: MasterKey) -> None:
    with (
        pg.open(master_key) as s,
        psycopg.connect(pg.url, autocommit=True) as listener,
    ):
        listener.execute("LISTEN byok_changes")
        serial = s.write(
            [WorkspaceWrite.upsert(workspace("acme"))],
            expected_serial=0,
            audit=AuditEntry("t", datetime.now(UTC), "apply", 1, ()),
        )
        s.put_unmanaged(workspace("beta"), updated_by="app")
        with pytest.raises(StalePlanError):  # a refused write notifies no one
            s.write([], expected_serial=0, audit=AuditEntry("t", datetime.now(UTC), "apply", 1))
        # A last notification, committed after the refused write: notifications arrive in
        # commit order, so anything the refused write sent would come before it.
        with psycopg.connect(pg.url, autocommit=True) as other:
            other.execute("NOTIFY byok_changes, 'end'")
        got = [(n.channel, n.payload) for n in listener.notifies(timeout=30, stop_after=3)]
    assert got == [
        ("byok_changes", str(serial)),
        ("byok_changes", str(serial + 1)),
        ("byok_changes", "end"),
    ]


# -- the lock ----------------------------------------------------------------------------


def test_a_stale_lock_row_blocks_no_one_and_is_reclaimed(
    pg: Backend, master_key: MasterKey, raw: psycopg.Connection[tuple[object, ...]]
) -> None:
    with pg.open(master_key) as s:
        s.serial()
        # A row left by a session that is gone: its advisory lock is free.
        raw.execute(
            "INSERT INTO store_lock (id, slot, holder, operation, created, backend_pid)"
            " VALUES ('dead-run', 1, 'ghost', 'apply', now(), 1)"
        )
        stale = s.lock_info()
        assert stale is not None and stale.holder == "ghost"  # still shown, for humans
        # timeout=0 is one attempt: getting the lock at all shows the row blocks no one.
        with s.lock("next", "apply", timeout=0) as info:
            assert s.lock_info() == info
            assert info.reclaimed is not None
            assert (info.reclaimed.id, info.reclaimed.holder) == ("dead-run", "ghost")
        assert s.lock_info() is None


def test_force_unlock_ends_a_live_holder_and_its_write_fails(
    pg: Backend, master_key: MasterKey
) -> None:
    holder, other = pg.open(master_key), pg.open(master_key)
    try:
        with holder.lock("hung run", "apply", timeout=0) as info:
            with (
                pytest.raises(LockHeldError, match="hung run"),
                other.lock("me", "apply", timeout=0.1),
            ):
                pass  # pragma: no cover
            other.force_unlock(info.id)
            # The holder's session is gone: it cannot write behind the next holder's back.
            with pytest.raises(
                StoreError, match=r"unavailable, so could not apply: .*; nothing was written"
            ):
                holder.write(
                    [WorkspaceWrite.upsert(workspace("late"))],
                    expected_serial=0,
                    audit=AuditEntry("hung run", datetime.now(UTC), "apply", 1),
                )
            with other.lock("me", "apply", timeout=1) as mine:
                assert other.lock_info() == mine
        assert other.lock_info() is None  # the holder's exit did not remove our lock...
        assert other.serial() == 0  # ...and its write never landed
    finally:
        holder.close()
        other.close()


# -- racing processes ----------------------------------------------------------------


def _racer(pg: Backend, key: MasterKey, name: str, rounds: int, barrier: str) -> None:
    with pg.open(key) as store:
        _barrier(barrier, name, 4)
        done = stale = 0
        while done < rounds:
            state = store.read_state()
            live = state.workspaces.get(name)
            count = int(live.workspace.providers["openai"].model) if live else 0
            change = Change(
                name,
                "update" if live else "create",
                workspace(name, model=str(count + 1)),
                (FieldChange("providers.openai.model"),),
            )
            try:
                apply_plan(
                    store, [change], holder=name, lock_timeout=30, expected_serial=state.serial
                )
            except StalePlanError:
                stale += 1
                continue
            done += 1
    with open(f"{barrier}-{name}.json", "w") as fh:
        json.dump({"done": done, "stale": stale}, fh)


def test_four_racing_apply_processes_lose_no_update(
    pg: Backend, master_key: MasterKey, tmp_path: object
) -> None:
    rounds = 12
    pg.open(master_key).close()
    barrier = os.path.join(str(tmp_path), "barrier")
    os.mkdir(barrier)
    names = [f"racer-{i}" for i in range(4)]
    pids = [_fork(lambda n=n: _racer(pg, master_key, n, rounds, barrier)) for n in names]  # type: ignore[misc]
    for pid in pids:
        _wait_ok(pid)
    stats = [json.load(open(f"{barrier}-{n}.json")) for n in names]  # noqa: SIM115
    assert all(st["done"] == rounds for st in stats)
    assert sum(st["stale"] for st in stats) > 0  # they really raced: plans went stale
    with pg.open(master_key) as s:
        state = s.read_state()
        assert state.serial == 4 * rounds  # +1 per apply, none lost
        for name in names:
            assert state.workspaces[name].workspace.providers["openai"].model == str(rounds)
        assert [e.serial for e in s.audit_log()] == list(range(4 * rounds, 0, -1))
        assert s.lock_info() is None


def _cas_racer(pg: Backend, key: MasterKey, name: str, expected: int, barrier: str) -> None:
    # No lock on purpose: the compare-and-set alone must let exactly one write through.
    with pg.open(key) as store:
        _barrier(barrier, name, 4)
        try:
            store.write(
                [WorkspaceWrite.upsert(workspace(name))],
                expected_serial=expected,
                audit=AuditEntry(name, datetime.now(UTC), "apply", expected + 1),
            )
        except StalePlanError:
            os._exit(3)


def test_serial_compare_and_set_lets_exactly_one_racer_win(
    pg: Backend, master_key: MasterKey, tmp_path: object
) -> None:
    pg.open(master_key).close()
    for rnd in range(3):
        barrier = os.path.join(str(tmp_path), f"barrier-{rnd}")
        os.mkdir(barrier)
        names = [f"r{rnd}-{i}" for i in range(4)]
        pids = [
            _fork(lambda n=n, r=rnd, b=barrier: _cas_racer(pg, master_key, n, r, b))  # type: ignore[misc]
            for n in names
        ]
        codes = []
        for pid in pids:
            _, status = os.waitpid(pid, 0)
            codes.append(os.WEXITSTATUS(status))
        assert sorted(codes) == [0, 3, 3, 3]  # one winner, three refused as stale
        with pg.open(master_key) as s:
            state = s.read_state()
            assert state.serial == rnd + 1
            assert len(state.workspaces) == rnd + 1


# -- kill -9 -------------------------------------------------------------------------

SIZE = 120
KILLS = 20


def _doomed(pg: Backend, key: MasterKey) -> None:
    store = pg.open(key)
    while True:
        serial = store.serial()
        apply_plan(
            store,
            changes_between(generation(serial, SIZE), generation(serial + 1, SIZE)),
            holder=DOOMED,
            lock_timeout=30,
            expected_serial=serial,
        )


def test_kill_9_mid_apply_frees_the_lock_at_once(pg: Backend, master_key: MasterKey) -> None:
    rng = random.Random(9)
    pg.open(master_key).close()
    killed_holding = aimed_inside = 0
    for i in range(KILLS):
        child, tag = tagged(pg)
        pid = _fork(lambda child=child: _doomed(child, master_key))  # type: ignore[misc]
        if i % 2:
            time.sleep(rng.uniform(0.05, 0.25))  # anywhere, inside an apply or not
        else:
            with pg.open(master_key) as watcher:
                freeze_inside_apply(pid, watcher, child, tag)
            aimed_inside += 1
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        # The server ends a dead client's session when it notices; that takes what it
        # takes on a busy machine. From then on the lock is free with no force-unlock.
        wait_sessions_ended(child, tag)
        with pg.open(master_key) as store:
            left = store.lock_info()
            killed_holding += left is not None and left.holder == DOOMED
            # timeout=0, one attempt: no lease to expire, no row that blocks.
            with store.lock("next", "apply", timeout=0):
                state = store.read_state()
                want = generation(state.serial, SIZE)
                assert {n: lw.workspace for n, lw in state.workspaces.items()} == want
                assert not any(lw.drifted for lw in state.workspaces.values())
                log = store.audit_log(limit=1)
                assert (log[0].serial if log else 0) == state.serial
    assert store_lock_free(pg, master_key)
    # The kills did land inside applies: every aimed one at least.
    assert killed_holding >= aimed_inside == KILLS // 2, killed_holding


def store_lock_free(pg: Backend, key: MasterKey) -> bool:
    """Whether the lock can be taken at once (no row left behind that blocks)."""
    with pg.open(key) as s, s.lock("probe", "apply", timeout=0):
        return True


def test_threads_share_one_store(pg: Backend, master_key: MasterKey) -> None:
    # Writers in threads of one process: the pool serves them; the CAS orders them.
    errors: list[BaseException] = []
    store = pg.open(master_key)

    def worker(name: str) -> None:
        for _ in range(5):
            try:
                while True:
                    serial = store.serial()
                    try:
                        store.write(
                            [WorkspaceWrite.upsert(workspace(name))],
                            expected_serial=serial,
                            audit=AuditEntry(name, datetime.now(UTC), "apply", serial + 1),
                        )
                        break
                    except StalePlanError:
                        continue
            except BaseException as exc:  # reported below
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.serial() == 20
    store.close()
