"""Low-balance episodes in the runtime store: :attr:`Resolver.low_balance` (``byokctl probe``).

``byokctl probe`` sends one "running low" e-mail per episode of a balance below a
workspace's ``low_balance``; which episode was e-mailed is the runtime store's (table
``low_balance_notices``), shared by every host and process that probes, so of two
probes at once exactly one sends (:meth:`~byokctl.store.runtime.RuntimeStore.claim_low_balance`).
Nothing here routes anything: the key still works.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from byokctl.store.runtime import RuntimeStore

#: How long a claimer may take to send before another probe may claim the e-mail again
#: (well above the SMTP timeout, so a slow send is not duplicated).
LOW_BALANCE_LEASE_S: Final = 300.0


class LowBalanceNotices:
    """Claim, record, release and end low-balance episodes (:attr:`Resolver.low_balance`)."""

    def __init__(self, runtime: RuntimeStore, clock: Callable[[], float]) -> None:
        self._runtime = runtime
        self._clock = clock

    def claim(self, workspace: str, provider: str, fingerprint: str) -> bool:
        """Whether this caller is the one to send the episode's e-mail now."""
        return self._runtime.claim_low_balance(
            workspace, provider, fingerprint, now=self._clock(), lease=LOW_BALANCE_LEASE_S
        )

    def sent(self, workspace: str, provider: str, fingerprint: str) -> None:
        """The e-mail went out: none more this episode."""
        self._runtime.record_low_balance_sent(workspace, provider, fingerprint, now=self._clock())

    def release(self, workspace: str, provider: str, fingerprint: str, error: str) -> None:
        """Sending failed: the next probe tries again."""
        self._runtime.release_low_balance(workspace, provider, fingerprint, error)

    def end(self, workspace: str, provider: str) -> bool:
        """The balance is at or above the threshold: the next drop is a new episode."""
        return self._runtime.end_low_balance(workspace, provider)
