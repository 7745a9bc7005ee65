"""The server stopped and restarted under apply load, on a throwaway cluster.

The shared server is never stopped: this module starts its own cluster with ``initdb``
and ``pg_ctl`` on a free port in a temporary directory (``tests.pg.throwaway_cluster``)
and always stops and deletes it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from byokctl.errors import StalePlanError, StoreError
from byokctl.executor import apply_plan
from byokctl.store import MasterKey, Store, open_store
from tests.pg import Cluster, throwaway_cluster
from tests.store.storetest_helpers import changes_between, generation
from tests.waiting import wait_until

SIZE = 30  # workspaces per generation


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A fresh cluster for this module, stopped and deleted afterwards."""
    with throwaway_cluster() as node:
        yield node


@dataclass
class _Load:
    """What one applying thread saw."""

    ok: list[tuple[float, int]]
    failed: list[tuple[float, str]]
    unexpected: list[str]


def _apply_loop(store: Store, name: str, stop: threading.Event, load: _Load) -> None:
    while not stop.is_set():
        try:
            serial = store.serial()
            apply_plan(
                store,
                changes_between(generation(serial, SIZE), generation(serial + 1, SIZE)),
                holder=name,
                lock_timeout=10,
                expected_serial=serial,
            )
            load.ok.append((time.monotonic(), serial + 1))
        except StalePlanError:
            continue  # the other thread applied first
        except StoreError as exc:
            load.failed.append((time.monotonic(), str(exc)))
            time.sleep(0.05)
        except BaseException as exc:  # the test asserts there are none
            load.unexpected.append(repr(exc))
            return


def test_restart_under_apply_load(cluster: Cluster) -> None:
    key = MasterKey.generate()
    open_store(cluster.url, master_key=key).close()
    stores = [open_store(cluster.url, master_key=key) for _ in range(2)]
    loads = [_Load([], [], []) for _ in stores]
    stop = threading.Event()
    threads = [
        threading.Thread(target=_apply_loop, args=(s, f"loader-{i}", stop, load))
        for i, (s, load) in enumerate(zip(stores, loads, strict=True))
    ]
    for t in threads:
        t.start()
    try:
        wait_until(
            lambda: all(load.ok for load in loads), what="both loaders to apply before the outage"
        )
        down_at = time.monotonic()
        cluster.stop()
        wait_until(
            lambda: all(any(t > down_at for t, _ in load.failed) for load in loads),
            what="both loaders' applies to fail while the server is down",
        )
        # While the server is down, a fresh open fails cleanly too.
        with pytest.raises(StoreError, match=f"cannot reach .* at 127.0.0.1:{cluster.port}"):
            open_store(cluster.url, master_key=key)
        cluster.start()
        up_at = time.monotonic()
        wait_until(
            lambda: all(any(t > up_at for t, _ in load.ok) for load in loads),
            what="both loaders to apply again after the restart",
        )
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        for s in stores:
            s.close()

    for load in loads:
        assert load.unexpected == []  # only StoreErrors: no psycopg exception escaped
        assert any(t < down_at for t, _ in load.ok)
        assert any(t > up_at for t, _ in load.ok), "the store did not recover"
        for _, message in load.failed:
            assert "\n" not in message
            assert f"127.0.0.1:{cluster.port}" in message, message
    failures = [t for load in loads for t, _ in load.failed]
    assert any(down_at <= t <= up_at for t in failures)  # applies failed while it was down
    # How soon after the restart is printed, not asserted (a busy machine decides it).
    recovery = min(t for load in loads for t, _ in load.ok if t > up_at) - up_at
    print(f"failed while down: {len(failures)}; recovered {recovery:.2f} s after restart")
    print("one failure:", loads[0].failed[0][1] if loads[0].failed else "-")

    # Nothing half-written: the state is exactly one generation, the audit log complete,
    # and the lock (possibly a stale row from a cut session) is free at once.
    with open_store(cluster.url, master_key=key) as s, s.lock("check", "apply", timeout=2):
        state = s.read_state()
        assert {n: lw.workspace for n, lw in state.workspaces.items()} == generation(
            state.serial, SIZE
        )
        assert not any(lw.drifted for lw in state.workspaces.values())
        assert [e.serial for e in s.audit_log()] == list(range(state.serial, 0, -1))
