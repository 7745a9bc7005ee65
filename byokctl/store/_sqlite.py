"""The SQLite backend: the embedded default (``sqlite:///.byok/state.db``).

One connection per store object, in autocommit mode with explicit transactions: writes
use ``BEGIN IMMEDIATE`` (the write lock is taken up front, so two writers queue on
``busy_timeout`` instead of deadlocking on an upgrade), reads use a deferred transaction
so that one ``read_state`` sees one snapshot in WAL mode. The lock is a row in
``store_lock``: it survives the process that took it, which is what makes a crashed
run visible and ``force-unlock`` meaningful. The row records the holder's host and
process (``_process``), so a holder of this host that died is detected and its lock
released by the next taker instead of needing ``force-unlock``.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from byokctl.errors import MasterKeyError, StoreError
from byokctl.model import LiveState, Workspace

from ._codec import (
    ConfigRows,
    EncodedWrites,
    audit_changes_json,
    audit_entry,
    check_write,
    encode_writes,
    live_state,
    lock_held_error,
    rotation,
    stale_plan_error,
)
from ._keys import Keyring, MasterKey, must_register_key
from ._localdir import make_private_dir
from ._migrations import LATEST_VERSION, pending_migrations
from ._process import ProcessIdentity, is_gone, this_process
from ._types import AuditEntry, LockInfo, WorkspaceWrite

SCHEME = "sqlite"
#: How long a statement waits for another process's write transaction.
BUSY_TIMEOUT_S = 30.0

_UPSERT_MANAGED = (
    "INSERT INTO workspaces (name, notify, enabled, applied_digest, updated_at, updated_by)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET notify = excluded.notify,"
    " enabled = excluded.enabled, applied_digest = excluded.applied_digest,"
    " updated_at = excluded.updated_at, updated_by = excluded.updated_by"
)
# The settings page leaves applied_digest alone: that is how its changes become drift.
_UPSERT_UNMANAGED = (
    "INSERT INTO workspaces (name, notify, enabled, applied_digest, updated_at, updated_by)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET notify = excluded.notify,"
    " enabled = excluded.enabled, updated_at = excluded.updated_at,"
    " updated_by = excluded.updated_by"
)
_INSERT_PROVIDER = (
    "INSERT INTO provider_configs (workspace, provider, model, settings) VALUES (?, ?, ?, ?)"
)
_INSERT_CIPHERTEXT = (
    "INSERT INTO provider_secrets (workspace, provider, field, key_id, nonce, ciphertext)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


def _now() -> datetime:
    return datetime.now(UTC)


def path_from_url(url: str) -> Path:
    """``sqlite:///rel/path.db`` is relative, ``sqlite:////abs/path.db`` absolute."""
    prefix = f"{SCHEME}:///"
    if not url.startswith(prefix) or url == prefix:
        raise StoreError(
            f"not a SQLite store URL: {url!r}",
            hint="use sqlite:///relative/path.db or sqlite:////absolute/path.db",
        )
    return Path(url.removeprefix(prefix))


@contextmanager
def sqlite_transaction(
    conn: sqlite3.Connection, mutex: AbstractContextManager[Any], path: Path, mode: str
) -> Iterator[sqlite3.Connection]:
    """One ``BEGIN <mode>`` transaction on ``conn`` under ``mutex``; SQLite errors translated.

    Shared by the configuration and the runtime store (each has its own connection).
    """
    with mutex:
        try:
            conn.execute(f"BEGIN {mode}")
        except sqlite3.Error as exc:
            raise StoreError(f"the store {path} is unavailable: {exc}") from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"the store {path} failed: {exc}") from exc
            raise


class SQLiteStore:
    """The live store in one SQLite file. Safe to share between threads of one process."""

    def __init__(self, path: Path, keyring: Keyring, *, busy_timeout: float = BUSY_TIMEOUT_S):
        self._path = path
        self._keyring = keyring
        self._mutex = threading.RLock()
        self._conn = self._connect(path, busy_timeout)
        try:
            self._migrate()
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def open(cls, url: str, keyring: Keyring) -> SQLiteStore:
        """Open (and create, owner-only, if missing) the store at a ``sqlite:///`` URL."""
        return cls(path_from_url(url), keyring)

    @staticmethod
    def _connect(path: Path, busy_timeout: float) -> sqlite3.Connection:
        try:
            make_private_dir(path.parent)
            if not path.exists():
                # Create the file ourselves so it is 0600 from its first byte; SQLite
                # gives the -wal and -shm files the same mode as the database.
                # (FileExistsError: another process created it between the two calls.)
                with contextlib.suppress(FileExistsError):
                    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            conn = sqlite3.connect(
                path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the store {path}: {exc}") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = FULL")  # an acknowledged apply survives power loss
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"cannot open the store {path}: {exc}") from exc
        return conn

    # -- plumbing ---------------------------------------------------------------------

    def _transaction(self, mode: str = "IMMEDIATE") -> AbstractContextManager[sqlite3.Connection]:
        return sqlite_transaction(self._conn, self._mutex, self._path, mode)

    def _migrate(self) -> None:
        if self._read_schema_version() == LATEST_VERSION:
            return  # the common case: no write lock needed to open a current store
        with self._transaction() as c:  # BEGIN IMMEDIATE: one migrator at a time
            c.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            applied = {int(r[0]) for r in c.execute("SELECT version FROM schema_migrations")}
            for migration in pending_migrations(applied, store=str(self._path)):
                for statement in migration.statements("sqlite"):
                    c.execute(statement)
                c.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, _now().isoformat()),
                )

    def _read_schema_version(self) -> int:
        with self._transaction("DEFERRED") as c:
            exists = c.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
            ).fetchone()
            if not exists:
                return 0
            row = c.execute("SELECT max(version) FROM schema_migrations").fetchone()
            return int(row[0] or 0)

    @staticmethod
    def _current_key_id(c: sqlite3.Connection) -> str | None:
        row = c.execute("SELECT key_id FROM master_keys WHERE retired_at IS NULL").fetchone()
        return None if row is None else str(row[0])

    def _claim_key(self, c: sqlite3.Connection) -> None:
        """Check that the primary key is the store's key (registering it on a new store)."""
        if must_register_key(self._current_key_id(c), self._keyring):
            c.execute(
                "INSERT INTO master_keys (key_id, added_at) VALUES (?, ?)",
                (self._keyring.primary.key_id, _now().isoformat()),
            )

    @staticmethod
    def _check_serial(c: sqlite3.Connection, expected: int) -> None:
        current = int(c.execute("SELECT serial FROM store_serial").fetchone()[0])
        if current != expected:
            raise stale_plan_error(current, expected)

    @staticmethod
    def _bump_serial(c: sqlite3.Connection) -> int:
        c.execute("UPDATE store_serial SET serial = serial + 1 WHERE id = 1")
        return int(c.execute("SELECT serial FROM store_serial").fetchone()[0])

    @staticmethod
    def _insert_audit(c: sqlite3.Connection, entry: AuditEntry) -> None:
        c.execute(
            "INSERT INTO audit_log (at, who, operation, serial, changes) VALUES (?, ?, ?, ?, ?)",
            (
                entry.at.isoformat(),
                entry.who,
                entry.operation,
                entry.serial,
                audit_changes_json(entry),
            ),
        )

    @staticmethod
    def _load(c: sqlite3.Connection) -> ConfigRows:
        return ConfigRows(
            serial=int(c.execute("SELECT serial FROM store_serial").fetchone()[0]),
            key_id=SQLiteStore._current_key_id(c),
            workspaces=c.execute(
                "SELECT name, notify, enabled, applied_digest, updated_at, updated_by"
                " FROM workspaces"
            ).fetchall(),
            providers=c.execute(
                "SELECT workspace, provider, model, settings FROM provider_configs"
            ).fetchall(),
            secrets=c.execute(
                "SELECT workspace, provider, field, key_id, nonce, ciphertext FROM provider_secrets"
            ).fetchall(),
        )

    def _apply_encoded(self, c: sqlite3.Connection, enc: EncodedWrites, *, managed: bool) -> None:
        c.executemany("DELETE FROM workspaces WHERE name = ?", enc.deletes)
        c.executemany(_UPSERT_MANAGED if managed else _UPSERT_UNMANAGED, enc.workspaces)
        # Replace each upserted workspace's providers wholesale (secrets cascade).
        c.executemany("DELETE FROM provider_configs WHERE workspace = ?", enc.upserted)
        c.executemany(_INSERT_PROVIDER, enc.providers)
        c.executemany(_INSERT_CIPHERTEXT, enc.secrets)

    # -- the Store interface ----------------------------------------------------------

    @property
    def url(self) -> str:
        """The store's URL."""
        return f"{SCHEME}:///{self._path}"

    def read_state(self) -> LiveState:
        """The configuration at one serial, secrets decrypted."""
        with self._transaction("DEFERRED") as c:
            rows = self._load(c)
        return live_state(rows, self._keyring, store=str(self._path))

    def serial(self) -> int:
        """The current serial."""
        with self._transaction("DEFERRED") as c:
            return int(c.execute("SELECT serial FROM store_serial").fetchone()[0])

    def schema_version(self) -> int:
        """The highest migration applied."""
        return self._read_schema_version()

    @contextmanager
    def lock(self, holder: str, operation: str, *, timeout: float) -> Iterator[LockInfo]:
        """Take the lock (waiting up to ``timeout`` s), yield it, release it on exit.

        A lock whose holder was a process of this host that no longer exists (killed,
        crashed) is released on the way: the yielded lock's ``reclaimed`` names it.
        """
        deadline = time.monotonic() + timeout
        me = this_process()
        reclaimed: LockInfo | None = None
        while True:
            info = LockInfo(str(uuid.uuid4()), holder, operation, _now().replace(microsecond=0))
            taken, stale = self._try_lock(info, me)
            reclaimed = stale or reclaimed
            if taken:
                break
            if stale is not None:
                continue  # its dead holder's row is gone: try again at once
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                held = self.lock_info()
                if held is not None:
                    raise lock_held_error(held)
                continue  # released between our attempt and the look: try once more
            # Jitter keeps two waiters from polling in lockstep.
            time.sleep(min(remaining, 0.02 + random.random() * 0.05))  # noqa: S311
        info = replace(info, reclaimed=reclaimed)
        try:
            yield info
        finally:
            with self._transaction() as c:
                c.execute("DELETE FROM store_lock WHERE id = ?", (info.id,))

    def _try_lock(self, info: LockInfo, me: ProcessIdentity) -> tuple[bool, LockInfo | None]:
        """Insert the lock row; else release it if its holder is gone.

        Returns whether the lock was taken, and the stale lock released (if any).
        """
        with self._transaction() as c:
            try:
                c.execute(
                    "INSERT INTO store_lock (id, slot, holder, operation, created, host, pid,"
                    " process) VALUES (?, 1, ?, ?, ?, ?, ?, ?)",
                    (
                        info.id,
                        info.holder,
                        info.operation,
                        info.created.isoformat(),
                        me.host,
                        me.pid,
                        me.process,
                    ),
                )
            except sqlite3.IntegrityError:
                pass
            else:
                return True, None
            row = c.execute(
                "SELECT id, holder, operation, created, host, pid, process FROM store_lock"
            ).fetchone()
            if row is None or row[4] is None or row[5] is None:
                return False, None
            if not is_gone(ProcessIdentity(str(row[4]), int(row[5]), row[6])):
                return False, None
            # In the same write transaction as the look: no one can take the lock between.
            c.execute("DELETE FROM store_lock WHERE id = ?", (row[0],))
            return False, LockInfo(row[0], row[1], row[2], datetime.fromisoformat(row[3]))

    def lock_info(self) -> LockInfo | None:
        """The current lock, or ``None``."""
        with self._transaction("DEFERRED") as c:
            row = c.execute("SELECT id, holder, operation, created FROM store_lock").fetchone()
        if row is None:
            return None
        return LockInfo(row[0], row[1], row[2], datetime.fromisoformat(row[3]))

    def force_unlock(self, lock_id: str) -> None:
        """Remove the lock with this id."""
        with self._transaction() as c:
            deleted = c.execute("DELETE FROM store_lock WHERE id = ?", (lock_id,)).rowcount
            if deleted == 0:
                row = c.execute("SELECT id FROM store_lock").fetchone()
                current = f"the current lock's id is {row[0]}" if row else "the store is unlocked"
                raise StoreError(f"no lock with id {lock_id!r}: {current}")

    def write(
        self, writes: Sequence[WorkspaceWrite], *, expected_serial: int, audit: AuditEntry
    ) -> int:
        """Apply ``writes`` in one transaction and return the new serial."""
        check_write(writes, expected_serial, audit)
        primary = self._keyring.primary
        enc = encode_writes(writes, primary, at=audit.at, who=audit.who, managed=True)
        with self._transaction() as c:
            self._check_serial(c, expected_serial)
            self._claim_key(c)  # refuses a key other than the store's, before any row changes
            self._apply_encoded(c, enc, managed=True)
            serial = self._bump_serial(c)
            self._insert_audit(c, audit)
        return serial

    def put_unmanaged(self, workspace: Workspace, *, updated_by: str) -> None:
        """Write a workspace as the application's settings page would (shows as drift)."""
        primary = self._keyring.primary
        enc = encode_writes(
            [WorkspaceWrite.upsert(workspace)], primary, at=_now(), who=updated_by, managed=False
        )
        with self._transaction() as c:
            self._claim_key(c)
            self._apply_encoded(c, enc, managed=False)
            self._bump_serial(c)

    def audit_log(self, *, limit: int | None = None) -> list[AuditEntry]:
        """Audit entries, newest first."""
        with self._transaction("DEFERRED") as c:
            rows = c.execute(
                "SELECT at, who, operation, serial, changes FROM audit_log"
                " ORDER BY seq DESC LIMIT ?",
                (-1 if limit is None else limit,),
            ).fetchall()
        return [audit_entry(*row) for row in rows]

    def rotate_master_key(self, new_key: MasterKey, *, who: str) -> int:
        """Re-encrypt every secret under ``new_key`` in one transaction; return the count."""
        with self._transaction() as c:
            rows = self._load(c)
            current = rows.key_id
            if current == new_key.key_id:
                raise MasterKeyError(f"the store already uses the key with key id {current}")
            updates = rotation(rows, self._keyring, new_key)
            c.executemany(
                "UPDATE provider_secrets SET key_id = ?, nonce = ?, ciphertext = ?"
                " WHERE workspace = ? AND provider = ? AND field = ?",
                updates.secrets,
            )
            c.executemany(
                "UPDATE workspaces SET applied_digest = ? WHERE name = ?", updates.digests
            )
            stamp = _now()
            c.execute(
                "UPDATE master_keys SET retired_at = ? WHERE retired_at IS NULL",
                (stamp.isoformat(),),
            )
            c.execute(
                "INSERT INTO master_keys (key_id, added_at) VALUES (?, ?) ON CONFLICT (key_id)"
                " DO UPDATE SET retired_at = NULL",
                (new_key.key_id, stamp.isoformat()),
            )
            self._insert_audit(c, AuditEntry(who, stamp, "rotate-key", rows.serial))
        self._keyring = self._keyring.with_primary(new_key)
        return len(updates.secrets)

    def close(self) -> None:
        """Close the connection."""
        with self._mutex:
            self._conn.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self._path)!r})"
