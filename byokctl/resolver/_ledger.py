"""The credit buffer: charges collected in memory, written to the ledger in batches.

A resolve appends one tuple to a :class:`collections.deque` (atomic and lock-free in
CPython: no lock on the hot path) and never touches the store. A background thread
drains the deque every flush interval, sums the charges per workspace, feature and
route, and appends the sums to the store's ledger in one transaction.

What a crash can lose: the charges of the last flush interval (default 1 s) that were
not yet written, plus any batch the store refused while it was unreachable (kept in
memory and retried on the next flush, so only a crash during an outage of the store
loses more). A clean :meth:`CreditBuffer.flush` at close loses nothing. A refused batch
is not logged here: the resolver logs a store outage once, not once per flush.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from byokctl.store.runtime import CreditEntry, RuntimeStore

from ._table import Charge


class CreditBuffer:
    """Charges waiting to be written. ``append`` is the hot path; ``flush`` the slow one."""

    def __init__(self, runtime: RuntimeStore, clock: Callable[[], float]) -> None:
        self._runtime = runtime
        self._clock = clock
        self._charges: deque[Charge] = deque()
        #: Bound method, looked up once: ``resolve`` calls it on every action.
        self.append = self._charges.append
        self._unwritten: list[CreditEntry] = []
        self._flush_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._charges)

    @property
    def unwritten(self) -> int:
        """Ledger entries the store refused so far (kept for the next flush)."""
        return len(self._unwritten)

    def _drain(self) -> int:
        """Move buffered charges, summed, to the unwritten entries; return how many."""
        sums: dict[tuple[str, str, str], list[int]] = {}
        taken = 0
        pop = self._charges.popleft
        # Only what is there now: appends that race with the drain wait for the next flush.
        for _ in range(len(self._charges)):
            workspace, feature, route, credits, actions = pop()
            acc = sums.setdefault((workspace, feature, route), [0, 0])
            acc[0] += actions
            acc[1] += credits
            taken += 1
        at = self._clock()
        new = [CreditEntry(w, f, r, a, c, at) for (w, f, r), (a, c) in sums.items()]
        self._unwritten = _merge(self._unwritten + new) if self._unwritten else new
        return taken

    def collect(self) -> int:
        """Sum buffered charges into the unwritten entries without writing (during an outage).

        Keeps memory bounded while the store is away: entries of one workspace,
        feature and route within one UTC hour are merged.
        """
        with self._flush_lock:
            return self._drain()

    def flush(self) -> int:
        """Write what is buffered (summed); return the number of charges written.

        Raises :class:`StoreError` when the store refuses the batch; nothing is lost:
        the entries are kept and written with the next successful flush.
        """
        with self._flush_lock:
            taken = self._drain()
            if not self._unwritten:
                return 0
            # On failure the entries stay in _unwritten for the next flush: the ledger
            # must not lose credits because the store was briefly unavailable.
            self._runtime.append_credits(self._unwritten)
            self._unwritten = []
            return taken


def _merge(entries: list[CreditEntry]) -> list[CreditEntry]:
    """Entries of one workspace, feature, route and UTC hour summed (at: the earliest)."""
    merged: dict[tuple[str, str, str, int], CreditEntry] = {}
    for e in entries:
        key = (e.workspace, e.feature, e.route, int(e.at // 3600))
        old = merged.get(key)
        merged[key] = (
            e
            if old is None
            else CreditEntry(
                e.workspace,
                e.feature,
                e.route,
                old.actions + e.actions,
                old.credits + e.credits,
                min(old.at, e.at),
            )
        )
    return list(merged.values())
