"""The runtime side of the live store: provider health, failure episodes, credits.

A separate public module (not part of :mod:`byokctl.store`'s ``__all__``) because only
the resolver and its commands use it; plans and apply never do. ``open_runtime_store``
opens it by URL like :func:`byokctl.store.open_store`, from :data:`RUNTIME_BACKENDS`.

A backend that can announce changes (PostgreSQL: ``LISTEN/NOTIFY``) also satisfies
:class:`ChangeSource`; the resolver then waits on its :class:`ChangeFeed` instead of
only polling :meth:`RuntimeStore.versions`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from byokctl.errors import StoreError

from ._registry import DEFAULT_STORE_URL, psycopg_missing, safe_url
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


def _open_postgresql(url: str) -> RuntimeStore:
    # Imported here so that SQLite users never load psycopg.
    try:
        from ._runtime_postgres import PostgresRuntimeStore  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise psycopg_missing(exc) from None
    return PostgresRuntimeStore.open(url)


#: ``scheme -> opener``: one explicit registry, as :data:`byokctl.store.BACKENDS`.
RUNTIME_BACKENDS: dict[str, Callable[[str], RuntimeStore]] = {
    "sqlite": SQLiteRuntimeStore.open,
    "postgresql": _open_postgresql,
    "postgres": _open_postgresql,  # libpq accepts both spellings
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
