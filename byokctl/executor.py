"""The executor: apply a plan's changes to the live store, locked and atomic.

Deciding *what* to change is the plan's job; this module only does it: take the lock
(:func:`locked`, before the live state is read for planning), check that the store is
still at the serial the plan was made against, write every
change in one transaction with its audit entry, and release the lock even on failure.
It reads plan changes through the small :class:`PlannedChange` protocol, so it does not
depend on the plan module's classes.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Protocol, TextIO

from byokctl.errors import StalePlanError
from byokctl.model import Workspace
from byokctl.store import (
    AuditChange,
    AuditEntry,
    LockInfo,
    Store,
    WorkspaceWrite,
    WriteAction,
)

#: The operation name apply records in the lock and the audit log.
APPLY_OPERATION: Final = "apply"


class ChangedField(Protocol):
    """A field-level change: only its path is read (values never reach the audit log)."""

    @property
    def path(self) -> str: ...


class PlannedChange(Protocol):
    """What apply needs from one planned workspace change."""

    @property
    def name(self) -> str: ...

    @property
    def action(self) -> str:
        """``create``, ``update``, ``delete`` or ``no-op``."""
        ...

    @property
    def after(self) -> Workspace | None: ...

    @property
    def fields(self) -> Sequence[ChangedField]: ...


@dataclass(frozen=True)
class ApplyResult:
    """What one apply did. ``audit`` is ``None`` when there was nothing to do."""

    previous_serial: int
    serial: int
    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    audit: AuditEntry | None = None

    @property
    def changed(self) -> bool:
        """Whether anything was written."""
        return self.audit is not None


def default_holder() -> str:
    """Who this process is, for the lock and the audit log: ``user@host (pid N)``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. in some containers
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()} (pid {os.getpid()})"


@contextmanager
def locked(
    store: Store,
    *,
    holder: str,
    lock_timeout: float,
    notice: TextIO,
    operation: str = APPLY_OPERATION,
) -> Iterator[LockInfo]:
    """Hold the store's lock for a whole run: read the live state, plan and apply under it.

    This is what makes racing applies serialize as Terraform's do: each waits (up to
    ``lock_timeout`` s) for its predecessor, then plans against the state it left, so
    none fails on a serial that moved. A lock left by a holder that no longer exists
    and was released on the way is reported on ``notice``. Released on exit, even on
    failure.
    """
    with store.lock(holder, operation, timeout=lock_timeout) as info:
        if info.reclaimed is not None:
            stale = info.reclaimed
            print(
                f"byokctl: notice: released a stale lock (id {stale.id}) that "
                f"{stale.holder} took for {stale.operation!r} at "
                f"{stale.created:%Y-%m-%d %H:%M:%S %Z}: its holder is no longer running",
                file=notice,
            )
        yield info


def _to_write(change: PlannedChange) -> tuple[WorkspaceWrite, AuditChange]:
    action = change.action
    fields = tuple(f.path for f in change.fields)
    if action == "delete":
        return WorkspaceWrite.delete(change.name), AuditChange(change.name, "delete", fields)
    if action in ("create", "update"):
        if change.after is None:
            raise ValueError(f"a {action} of {change.name!r} needs the workspace after it")
        write_action: WriteAction = "create" if action == "create" else "update"
        return WorkspaceWrite.upsert(change.after), AuditChange(change.name, write_action, fields)
    raise ValueError(f"unknown action {action!r} for workspace {change.name!r}")


def apply_plan(
    store: Store,
    changes: Sequence[PlannedChange],
    *,
    holder: str,
    lock_timeout: float,
    expected_serial: int,
    operation: str = APPLY_OPERATION,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    held: LockInfo | None = None,
) -> ApplyResult:
    """Apply ``changes`` (no-ops skipped) as one transaction under the store's lock.

    ``held``: the caller already holds the lock (it took it *before* reading the live
    state it planned against, see :func:`locked`); then no lock is taken here. Else the
    lock is taken for the write alone.

    Raises :class:`~byokctl.errors.LockHeldError` if the lock stays held past
    ``lock_timeout`` seconds, :class:`~byokctl.errors.StalePlanError` if the store's
    serial is no longer ``expected_serial`` (nothing is written). With nothing to do,
    no lock is taken and the serial does not move; a stale plan is still refused.
    """
    pending = [_to_write(c) for c in changes if c.action != "no-op"]
    if not pending:
        current = store.serial()
        if current != expected_serial:
            raise StalePlanError(
                f"the store changed since the plan was made: its serial is {current}, "
                f"the plan was made at serial {expected_serial}",
                hint="run plan again against the current state",
            )
        return ApplyResult(previous_serial=current, serial=current)
    audit = AuditEntry(
        who=holder,
        at=clock(),
        operation=operation,
        serial=expected_serial + 1,
        changes=tuple(a for _, a in pending),
    )
    writes = [w for w, _ in pending]
    if held is not None:
        serial = store.write(writes, expected_serial=expected_serial, audit=audit)
    else:
        with store.lock(holder, operation, timeout=lock_timeout):
            serial = store.write(writes, expected_serial=expected_serial, audit=audit)

    def named(action: str) -> tuple[str, ...]:
        return tuple(a.workspace for _, a in pending if a.action == action)

    return ApplyResult(
        previous_serial=expected_serial,
        serial=serial,
        created=named("create"),
        updated=named("update"),
        deleted=named("delete"),
        audit=audit,
    )
