"""``kill -9`` at random points: the store is exactly the old or the new state, never between."""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from byokctl.executor import apply_plan
from byokctl.store import MasterKey
from tests.store.killing import DOOMED, freeze_inside_apply, tagged, wait_sessions_ended
from tests.store.storetest_helpers import Backend, changes_between, generation

SIZE = 120  # workspaces per generation: each apply is a multi-statement transaction
KILLS = 25


def _child(backend: Backend, key: MasterKey) -> None:
    """Apply generation after generation until killed (runs in a forked process)."""
    store = backend.open(key)  # the first children may die mid-migration, too
    while True:
        serial = store.serial()
        old, new = generation(serial, SIZE), generation(serial + 1, SIZE)
        apply_plan(
            store,
            changes_between(old, new),
            holder=DOOMED,
            lock_timeout=30,
            expected_serial=serial,
        )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork and SIGKILL")
def test_kill_9_leaves_old_or_new_state(backend: Backend, master_key: MasterKey) -> None:
    rng = random.Random(4)  # reproducible kill points
    killed_holding_lock = aimed_inside = 0
    for i in range(KILLS):
        child, tag = tagged(backend)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            try:
                _child(child, master_key)
            finally:
                os._exit(1)
        if i % 2:
            # Anywhere: starting, migrating, planning, or inside an apply.
            time.sleep(rng.uniform(0.0, 0.15))
        else:
            # Inside an apply, whatever the machine's load: frozen while holding the lock.
            with backend.open(master_key) as watcher:
                freeze_inside_apply(pid, watcher, child, tag)
            aimed_inside += 1
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status), "the child died before it was killed"
        wait_sessions_ended(child, tag)  # what the server still does for it is done

        with backend.open(master_key) as store:
            lock = store.lock_info()
            if lock is not None:  # killed inside apply: the lock row stays, as it should
                killed_holding_lock += 1
                assert lock.holder == DOOMED
                store.force_unlock(lock.id)
            state = store.read_state()
            expected = generation(state.serial, SIZE)
            assert {n: lw.workspace for n, lw in state.workspaces.items()} == expected
            assert not any(lw.drifted for lw in state.workspaces.values())
            log = store.audit_log(limit=1)
            assert (log[0].serial if log else 0) == state.serial
    # The kills must actually land inside applies, not only between them.
    assert killed_holding_lock >= aimed_inside == (KILLS + 1) // 2
