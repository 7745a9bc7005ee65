"""The runtime side of the live store: provider health, failure episodes, credits.

A separate public module (not part of :mod:`byokctl.store`'s ``__all__``) because only
the resolver and its commands use it; plans and apply never do. ``open_runtime_store``
opens it by URL like :func:`byokctl.store.open_store`, from the same registry, as a view
onto the same database object: a process that opens both holds one set of connections
per database. :func:`capped_retry_after` is the one rule for a provider's Retry-After.

A backend that can announce changes (PostgreSQL: ``LISTEN/NOTIFY``) also satisfies
:class:`ChangeSource`; the resolver then waits on its :class:`ChangeFeed` instead of
only polling :meth:`RuntimeStore.versions`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from ._registry import BACKENDS, open_runtime_store
from ._runtime import (
    MAX_RETRY_AFTER_S,
    BreakerPolicy,
    CreditEntry,
    CreditUsage,
    Episode,
    Failure,
    HealthChange,
    HealthRecord,
    HealthStatus,
    Period,
    ProbeGrant,
    RuntimeStore,
    capped_retry_after,
)

__all__ = [
    "MAX_RETRY_AFTER_S",
    "RUNTIME_BACKENDS",
    "BreakerPolicy",
    "ChangeFeed",
    "ChangeSource",
    "CreditEntry",
    "CreditUsage",
    "Episode",
    "Failure",
    "HealthChange",
    "HealthRecord",
    "HealthStatus",
    "Period",
    "ProbeGrant",
    "RuntimeStore",
    "capped_retry_after",
    "open_runtime_store",
]


class ChangeFeed(Protocol):
    """Wake-ups when the store announces a change (one waiting thread at a time)."""

    @property
    def connected(self) -> bool:
        """Whether announcements can arrive now (else only polling finds changes)."""
        ...

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s; ``True`` if a change was announced or may have been missed."""
        ...

    def interrupt(self) -> None:
        """Make a :meth:`wait` in progress return now (from any thread)."""
        ...

    def reconnect(self) -> None:
        """Replace the connection at the next :meth:`wait` (it may be silently dead)."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


@runtime_checkable
class ChangeSource(Protocol):
    """A runtime store that can announce changes (see :class:`ChangeFeed`)."""

    def listen(self) -> ChangeFeed:
        """A new feed on its own connection."""
        ...


#: ``scheme -> opener``: the runtime view of :data:`byokctl.store.BACKENDS` (one registry).
RUNTIME_BACKENDS: dict[str, Callable[[str], RuntimeStore]] = dict.fromkeys(
    BACKENDS, open_runtime_store
)
