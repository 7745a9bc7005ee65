"""The runtime side of the live store: provider health, failure episodes, credits.

A separate public module (not part of :mod:`byokctl.store`'s ``__all__``) because only
the resolver and its commands use it; plans and apply never do. ``open_runtime_store``
opens it by URL like :func:`byokctl.store.open_store`, from :data:`RUNTIME_BACKENDS`.
"""

from __future__ import annotations

from collections.abc import Callable

from byokctl.errors import StoreError

from ._registry import DEFAULT_STORE_URL, safe_url
from ._runtime import (
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
)
from ._runtime_sqlite import SQLiteRuntimeStore

__all__ = [
    "RUNTIME_BACKENDS",
    "BreakerPolicy",
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
    "open_runtime_store",
]

#: ``scheme -> opener``. PostgreSQL registers here when its runtime backend lands.
RUNTIME_BACKENDS: dict[str, Callable[[str], RuntimeStore]] = {
    "sqlite": SQLiteRuntimeStore.open,
}


def open_runtime_store(url: str) -> RuntimeStore:
    """Open the runtime side (health, episodes, credits) of the store at ``url``.

    The store must exist at the current schema: open it with
    :func:`byokctl.store.open_store` first, which runs pending migrations.
    """
    scheme, sep, _ = url.partition("://")
    opener = RUNTIME_BACKENDS.get(scheme) if sep else None
    if opener is None:
        known = ", ".join(f"{s}://" for s in sorted(RUNTIME_BACKENDS))
        raise StoreError(
            f"no runtime backend for the store URL {safe_url(url)!r}",
            hint=f"use one of: {known} (for example {DEFAULT_STORE_URL})",
        )
    return opener(url)
