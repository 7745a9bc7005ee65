"""The credit buffer: charges collected in memory, written to the ledger in batches.

A resolve appends one tuple to a :class:`collections.deque` (atomic and lock-free in
CPython: no lock on the hot path) and never touches the store. A background thread
drains the deque every flush interval, sums the charges per workspace, feature and
route, and appends the sums to the store's ledger in one transaction.

What a crash can lose: the charges of the last flush interval (default 1 s) that were
not yet written, plus any batch the store refused while it was unreachable (kept in
memory and retried on the next flush, so only a crash during an outage of the store
loses more). A clean :meth:`CreditBuffer.flush` at close loses nothing.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

from byokctl.errors import StoreError
from byokctl.store.runtime import CreditEntry, RuntimeStore

from ._table import Charge

_log = logging.getLogger("byokctl.resolver")


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

    def flush(self) -> int:
        """Write what is buffered (summed); return the number of charges written."""
        with self._flush_lock:
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
            entries = self._unwritten + [
                CreditEntry(w, f, r, a, c, at) for (w, f, r), (a, c) in sums.items()
            ]
            if not entries:
                return 0
            try:
                self._runtime.append_credits(entries)
            except StoreError as exc:
                # Keep them for the next flush: the ledger must not lose credits because
                # the store was briefly unavailable.
                self._unwritten = entries
                _log.warning("credit ledger: cannot write %d entries yet: %s", len(entries), exc)
                return 0
            self._unwritten = []
            return taken
