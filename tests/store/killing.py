"""``kill -9`` of a store-writing child at a chosen point, for the crash tests.

Deterministic on a busy machine: a kill meant to land inside an apply freezes the child
(SIGSTOP) once the lock is seen held, and kills it only if the lock is still held while
it is frozen; and after a kill on PostgreSQL the test waits until the server has ended
the dead child's sessions (a backend notices a dead client only when it next reads,
and may still finish the one statement in flight, a COMMIT included), so that what the
test reads afterwards is final.

The child's sessions are recognised by their ``application_name`` (:func:`tagged`).
"""

from __future__ import annotations

import os
import secrets
import signal

import psycopg

from byokctl.store import Store
from tests.store.storetest_helpers import Backend
from tests.waiting import wait_until

#: The holder name the doomed children take the lock with.
DOOMED = "doomed"


def tagged(backend: Backend) -> tuple[Backend, str]:
    """The same location, with sessions named by a new tag on PostgreSQL; and the tag."""
    tag = f"byok-doomed-{secrets.token_hex(4)}"
    if backend.name != "postgresql":
        return backend, tag
    return Backend(backend.name, f"{backend.url}&application_name={tag}"), tag


def _sessions(backend: Backend, tag: str, *, running_only: bool = False) -> int:
    """The child's sessions; ``running_only``: those executing a statement right now.

    A session waiting for the client (``ClientRead``, e.g. for the rest of a pipeline)
    cannot move while the child is frozen, so it does not count as running.
    """
    with psycopg.connect(backend.url, autocommit=True, application_name="byok-test") as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND (NOT %s"
            " OR (state = 'active' AND wait_event IS DISTINCT FROM 'ClientRead'))",
            (tag, running_only),
        ).fetchone()
    return int(row[0]) if row else 0


def _holding(store: Store) -> bool:
    lock = store.lock_info()
    return lock is not None and lock.holder == DOOMED


def freeze_inside_apply(pid: int, store: Store, backend: Backend, tag: str) -> None:
    """Return with child ``pid`` stopped (SIGSTOP) while it holds the apply lock.

    ``store`` is the test's own, to look at the lock. On PostgreSQL the child's statement
    in flight (if any) is let finish before the look: it could be the one that releases.
    """

    def frozen_holding() -> bool:
        wait_until(lambda: _holding(store), what="the child to take the lock")
        os.kill(pid, signal.SIGSTOP)
        if backend.name == "postgresql":
            wait_until(
                lambda: _sessions(backend, tag, running_only=True) == 0,
                what="the frozen child's statement in flight to finish",
            )
        if _holding(store):
            return True
        os.kill(pid, signal.SIGCONT)  # caught between two applies: let it take the next
        return False

    try:
        wait_until(frozen_holding, what="the child frozen while holding the lock")
    except BaseException:
        os.kill(pid, signal.SIGKILL)  # never leave a stopped child behind
        raise


def wait_sessions_ended(backend: Backend, tag: str) -> None:
    """On PostgreSQL, wait until the server has ended every session of a killed child."""
    if backend.name == "postgresql":
        wait_until(lambda: _sessions(backend, tag) == 0, what="the killed child's sessions to end")
