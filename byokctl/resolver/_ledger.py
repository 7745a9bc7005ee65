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

A bad entry must not hold the others hostage (nor pass for an outage): names that no
store can hold (not text, NUL, lone surrogates, overlong) are set aside before the
write; when the store refuses a batch but still answers, the entries are written one
by one and those it refuses are set aside (:attr:`CreditBuffer.rejected`). An entry
refused alone three flushes in a row while the store answers is set aside too.
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

#: Longest workspace, feature or route name written to the ledger.
MAX_NAME = 200
#: A batch refused on its own this many flushes in a row (the store answering) is set aside.
MAX_SOLO_REFUSALS = 3
#: At most this many set-aside entries are kept (merged per name and hour) for inspection.
MAX_REJECTED = 1000


def storable(name: object) -> bool:
    """Whether ``name`` can be written to any backend's ledger (UTF-8 text, no NUL, short)."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME or "\x00" in name:
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class CreditBuffer:
    """Charges waiting to be written. ``append`` is the hot path; ``flush`` the slow one."""

    def __init__(self, runtime: RuntimeStore, clock: Callable[[], float]) -> None:
        self._runtime = runtime
        self._clock = clock
        self._charges: deque[Charge] = deque()
        #: Bound method, looked up once: ``resolve`` calls it on every action.
        self.append = self._charges.append
        self._unwritten: list[CreditEntry] = []
        #: Entries no store will take (see the module docstring); never retried.
        self.rejected: list[CreditEntry] = []
        self._solo_refusals = 0
        self._rejected_logged = 0
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
        new = []
        for (w, f, r), (a, c) in sums.items():
            entry = CreditEntry(w, f, r, a, c, at)
            if storable(w) and storable(f) and storable(r):
                new.append(entry)
            else:
                self._reject([entry])
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

        Raises :class:`StoreError` when the store is unavailable; nothing is lost: the
        entries are kept and written with the next successful flush. Entries the
        store refuses while it answers are set aside (:attr:`rejected`), not retried.
        """
        with self._flush_lock:
            taken = self._drain()
            if not self._unwritten:
                return 0
            try:
                self._runtime.append_credits(self._unwritten)
            except StoreError:
                # Unreachable store: this raises too, and every entry stays for the next
                # flush (the ledger must not lose credits to a short outage).
                self._runtime.versions()
                self._one_by_one()
            else:
                self._solo_refusals = 0
            self._unwritten = []
            return taken

    def _one_by_one(self) -> None:
        """The store answers but refused the batch: find the entries it refuses."""
        refused: list[CreditEntry] = []
        error: StoreError | None = None
        entries = self._unwritten
        for entry in entries:
            try:
                self._runtime.append_credits([entry])
            except StoreError as exc:
                refused.append(entry)
                error = exc
        if error is None:
            self._solo_refusals = 0
            return
        if len(refused) == len(entries):
            self._solo_refusals += 1
            if self._solo_refusals < MAX_SOLO_REFUSALS:
                self._unwritten = refused
                raise error  # maybe the store itself (a full disk): keep them for now
        self._solo_refusals = 0
        self._reject(refused)

    def log_rejected(self) -> None:
        """Log (once) the entries set aside since the last call."""
        rejected = len(self.rejected)
        if rejected > self._rejected_logged:
            _log.warning(
                "resolver: %d credit ledger entries were refused by the store as data "
                "(not an outage) and set aside; the other entries were written",
                rejected - self._rejected_logged,
            )
        self._rejected_logged = rejected

    def _reject(self, entries: list[CreditEntry]) -> None:
        merged = _merge(self.rejected + entries)
        self.rejected = merged[-MAX_REJECTED:]


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
