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

from ._registry import BACKENDS, open_runtime_store
from ._runtime import (
    MAX_RETRY_AFTER_S,
    NEVER_RECOVERS,
    BreakerPolicy,
    ChangeFeed,
    ChangeSource,
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
    "NEVER_RECOVERS",
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


#: ``scheme -> opener``: the runtime view of :data:`byokctl.store.BACKENDS` (one registry).
RUNTIME_BACKENDS: dict[str, Callable[[str], RuntimeStore]] = dict.fromkeys(
    BACKENDS, open_runtime_store
)
