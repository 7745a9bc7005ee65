"""The Store interface and the values that cross it.

One interface, one implementation (:class:`~._live.LiveStore`, over a database per
dialect: SQLite, PostgreSQL), one contract test suite
(``tests/store/test_store_contract.py``) that every backend passes.
The interface is deliberately small and transactional so that each method maps onto a
single database transaction on any backend: the serial is a compare-and-set inside
:meth:`Store.write`, and the lock is a value a backend can keep as a row (SQLite) or an
advisory lock plus a row describing it (PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from byokctl.model import LiveState, Workspace

from ._keys import MasterKey

#: What an apply did to one workspace.
WriteAction = Literal["create", "update", "delete"]


@dataclass(frozen=True)
class LockInfo:
    """Who holds the store's lock, since when, and for what."""

    id: str
    holder: str
    operation: str
    created: datetime
    #: The lock this one replaced because its holder no longer exists (on SQLite: a
    #: process of this host that is gone; on PostgreSQL: a row whose session ended), so
    #: the caller can say so. ``None`` when the lock was free.
    reclaimed: LockInfo | None = field(default=None, compare=False)

    def describe(self) -> str:
        """One line for messages: holder, operation, time and id."""
        return (
            f"{self.holder} holds the store's lock for {self.operation!r} since "
            f"{self.created:%Y-%m-%d %H:%M:%S %Z} (lock id {self.id})"
        )


@dataclass(frozen=True)
class WorkspaceWrite:
    """One workspace to write: an upsert (``workspace`` set) or a delete (``None``)."""

    name: str
    workspace: Workspace | None

    def __post_init__(self) -> None:
        if self.workspace is not None and self.workspace.name != self.name:
            raise ValueError(f"write for {self.name!r} carries workspace {self.workspace.name!r}")

    @classmethod
    def upsert(cls, workspace: Workspace) -> WorkspaceWrite:
        """Create or replace ``workspace``."""
        return cls(workspace.name, workspace)

    @classmethod
    def delete(cls, name: str) -> WorkspaceWrite:
        """Delete the workspace called ``name``."""
        return cls(name, None)


@dataclass(frozen=True)
class AuditChange:
    """What one apply did to one workspace: the action and the changed field paths.

    Paths name fields (``providers.openai.api_key``); values never enter the audit log.
    """

    workspace: str
    action: WriteAction
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuditEntry:
    """One append-only audit record: who did what, when, producing which serial."""

    who: str
    at: datetime
    operation: str
    serial: int
    changes: tuple[AuditChange, ...] = ()


class Store(Protocol):
    """The live store: configuration, serial, lock, audit log and encryption at rest."""

    @property
    def url(self) -> str:
        """The store's URL, without credentials."""
        ...

    def read_state(self) -> LiveState:
        """The configuration at one serial, secrets decrypted; wrong key: MasterKeyError."""
        ...

    def serial(self) -> int:
        """The current serial (0 for a new store)."""
        ...

    def schema_version(self) -> int:
        """The highest schema migration applied."""
        ...

    def lock(
        self, holder: str, operation: str, *, timeout: float
    ) -> AbstractContextManager[LockInfo]:
        """Take the lock, waiting up to ``timeout`` seconds; released on exit, even on error.

        Raises :class:`~byokctl.errors.LockHeldError` naming the holder, the time, the
        operation, the lock id and ``byokctl force-unlock ID`` when it stays held.
        """
        ...

    def lock_info(self) -> LockInfo | None:
        """The current lock, or ``None``."""
        ...

    def force_unlock(self, lock_id: str) -> None:
        """Remove the lock with this id; StoreError if no lock has it."""
        ...

    def write(
        self, writes: Sequence[WorkspaceWrite], *, expected_serial: int, audit: AuditEntry
    ) -> int:
        """Apply ``writes`` in one transaction, all or nothing, and return the new serial.

        The serial must still be ``expected_serial`` (else StalePlanError, nothing
        written); it becomes ``expected_serial + 1``, which ``audit.serial`` must equal.
        Written workspaces become managed with a fresh drift digest.
        """
        ...

    def put_unmanaged(self, workspace: Workspace, *, updated_by: str) -> None:
        """Write a workspace the way the application's settings page does (outside byokctl).

        It keeps the digest apply last wrote, so the change shows as drift, and bumps the
        serial so that a plan made before it is stale. No audit entry.
        """
        ...

    def provider_settings(self, name: str) -> dict[str, dict[str, Any]] | None:
        """One workspace's providers (model, settings, secret field names; no value)."""
        ...

    def audit_log(self, *, limit: int | None = None) -> list[AuditEntry]:
        """Audit entries, newest first."""
        ...

    def rotate_master_key(self, new_key: MasterKey, *, who: str) -> int:
        """Re-encrypt every secret under ``new_key`` in one transaction; return the count.

        Afterwards this store object uses ``new_key`` as its primary key and still
        accepts the old one for decryption.
        """
        ...

    def close(self) -> None:
        """Release the connection."""
        ...

    def __enter__(self) -> Store: ...

    def __exit__(self, *exc: object) -> None: ...
