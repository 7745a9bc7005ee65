"""The SQLite database: the embedded default (``sqlite:///.byok/state.db``).

One :class:`SQLiteDatabase` per file per process (see :mod:`._registry`), holding two
connections in autocommit mode with explicit transactions: one for the configuration
(``synchronous = FULL``: an acknowledged apply survives power loss) and one for the
runtime state (``NORMAL``: in WAL mode that survives a process crash), so that a long
read of the configuration never holds up a resolver's report. Writes use ``BEGIN
IMMEDIATE`` (the write lock is taken up front, so two writers queue on ``busy_timeout``
instead of deadlocking on an upgrade); reads use a deferred transaction so that one
``read_state`` sees one snapshot in WAL mode. SQLite runs one writer at a time across
threads and processes, so a decision ("read the row, decide, write") needs no other lock.

The apply lock is a row in ``store_lock``: it survives the process that took it, which
is what makes a crashed run visible and ``force-unlock`` meaningful. The row records
the holder's host and process (:mod:`._process`), so a holder of this host that died is
detected and its lock released by the next taker instead of needing ``force-unlock``.
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
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from byokctl.errors import StoreError

from ._codec import EncodedWrites, lock_held_error
from ._database import (
    UPSERT_WORKSPACE_MANAGED,
    UPSERT_WORKSPACE_UNMANAGED,
    Busy,
    Session,
    Tx,
    no_such_lock,
    read_lock,
)
from ._localdir import make_private_dir
from ._migrations import Dialect
from ._process import ProcessIdentity, is_gone, this_process
from ._runtime import ChangeFeed, Period
from ._types import LockInfo

SCHEME: Final = "sqlite"
#: How long a statement waits for another process's write transaction.
BUSY_TIMEOUT_S: Final = 30.0
#: SQLite's primary result codes for "another connection holds the lock".
_SQLITE_BUSY: Final = 5
_SQLITE_LOCKED: Final = 6
_PERIOD_CHARS: Final[dict[str, int]] = {"day": 10, "month": 7}

_INSERT_WORKSPACE: Final = (
    "INSERT INTO workspaces (name, notify, enabled, applied_digest, updated_at, updated_by,"
    " fallback) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def path_from_url(url: str) -> Path:
    """``sqlite:///rel/path.db`` is relative, ``sqlite:////abs/path.db`` absolute."""
    prefix = f"{SCHEME}:///"
    if not url.startswith(prefix) or url == prefix:
        raise StoreError(
            f"not a SQLite store URL: {url!r}",
            hint="use sqlite:///relative/path.db or sqlite:////absolute/path.db",
        )
    return Path(url.removeprefix(prefix))


def _set_wal(conn: sqlite3.Connection, busy_timeout: float) -> None:
    """Put the file in WAL mode (persistent: once per file), waiting out a busy database.

    Right after a writer was killed, the next connection recovers the WAL while holding it
    exclusively, and a journal-mode change can then fail with "database is locked" at once
    instead of waiting; so the change is retried, with backoff, for up to ``busy_timeout``.
    """
    deadline = time.monotonic() + busy_timeout
    pause = 0.005
    while True:
        try:
            (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
            if str(mode).lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in (_SQLITE_BUSY, _SQLITE_LOCKED)
            if not busy or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def _connect(path: Path, busy_timeout: float, *, durable: bool) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot open the store {path}: {exc}") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        if durable:
            _set_wal(conn, busy_timeout)
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = FULL")
        else:
            conn.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.Error as exc:
        conn.close()
        raise StoreError(f"cannot open the store {path}: {exc}") from exc
    return conn


class _Connection:
    """One connection and the mutex that gives it to one transaction at a time."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.mutex = threading.RLock()


class SQLiteDatabase:
    """A SQLite store file, shared by this process's store views. Thread-safe."""

    dialect: Dialect = "sqlite"
    announces = False

    def __init__(self, path: Path, *, busy_timeout: float = BUSY_TIMEOUT_S) -> None:
        self.name = str(path)
        self._path = path
        self._busy_timeout = busy_timeout
        self._mutex = threading.Lock()
        self._connections: dict[bool, _Connection] = {}

    @staticmethod
    def create_file(path: Path) -> None:
        """Create the store file (and its private directory) if missing, owner-only."""
        try:
            make_private_dir(path.parent)
            if not path.exists():
                # Create the file ourselves so it is 0600 from its first byte; SQLite
                # gives the -wal and -shm files the same mode as the database.
                # (FileExistsError: another process created it between the two calls.)
                with contextlib.suppress(FileExistsError):
                    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError as exc:
            raise StoreError(f"cannot open the store {path}: {exc}") from exc

    def _connection(self, durable: bool) -> _Connection:
        with self._mutex:
            found = self._connections.get(durable)
            if found is None:
                found = _Connection(_connect(self._path, self._busy_timeout, durable=durable))
                self._connections[durable] = found
            return found

    # -- transactions -----------------------------------------------------------------

    @contextmanager
    def transaction(
        self,
        what: str,
        *,
        write: bool,
        snapshot: bool = False,
        durable: bool = True,
        wait: float | None = None,
        session: Session = None,
    ) -> Iterator[Tx]:
        """One ``BEGIN IMMEDIATE`` (``write``) or deferred transaction; errors translated.

        With ``wait``, this process's other threads (the mutex) and other processes (the
        busy timeout, lowered for this one transaction) may each delay it about ``wait``
        seconds before it raises :class:`Busy`.
        """
        c = self._connection(durable)
        if not c.mutex.acquire(timeout=-1 if wait is None else wait):
            raise Busy
        try:
            if wait is not None:
                c.conn.execute(f"PRAGMA busy_timeout = {max(1, int(wait * 1000))}")
            try:
                yield from self._run(c.conn, "IMMEDIATE" if write else "DEFERRED")
            except StoreError as exc:
                code = getattr(exc.__cause__, "sqlite_errorcode", 0) & 0xFF
                if wait is not None and code in (_SQLITE_BUSY, _SQLITE_LOCKED):
                    raise Busy from None
                raise
            finally:
                if wait is not None:
                    c.conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
        except sqlite3.Error as exc:
            raise StoreError(f"the store {self._path} failed: {exc}") from exc
        finally:
            c.mutex.release()

    def _run(self, conn: sqlite3.Connection, mode: str) -> Iterator[Tx]:
        try:
            conn.execute(f"BEGIN {mode}")
        except sqlite3.Error as exc:
            raise StoreError(f"the store {self._path} is unavailable: {exc}") from exc
        try:
            yield Tx(conn, pyformat=False)
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"the store {self._path} failed: {exc}") from exc
            raise

    # -- what differs from PostgreSQL -------------------------------------------------

    def json_text(self, column: str) -> str:
        """JSON columns are ``TEXT`` already."""
        return column

    def has_table(self, tx: Tx, name: str) -> bool:
        """Whether the table exists."""
        return bool(
            tx.one("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
        )

    def schema_version(self, tx: Tx) -> int:
        """The highest migration recorded (0 for an empty file)."""
        if not self.has_table(tx, "schema_migrations"):
            return 0
        return int(tx.value("SELECT max(version) FROM schema_migrations") or 0)

    def lock_migrations(self, tx: Tx) -> None:
        """Nothing to do: the write transaction (``BEGIN IMMEDIATE``) runs alone."""

    def serialize(self, tx: Tx, key: str) -> None:
        """Nothing to do: the write transaction runs alone."""

    def announce(self, tx: Tx, payload: str) -> None:
        """Nothing to do: SQLite cannot announce; resolvers poll the versions."""

    def insert_id(self, tx: Tx, sql: str, params: Sequence[object]) -> int:
        """Run an ``INSERT``; the new row's id (no ``RETURNING``: SQLite < 3.35 lacks it)."""
        return int(tx.raw.execute(sql, params).lastrowid or 0)

    def period(self, period: Period) -> str:
        """Timestamps are UTC ISO text: a day or month is a prefix."""
        return f"substr(at, 1, {_PERIOD_CHARS[period]})"

    def write_rows(self, tx: Tx, enc: EncodedWrites, *, managed: bool) -> None:
        """Deletes, upserts, then each upserted workspace's providers wholesale."""
        tx.executemany("DELETE FROM workspaces WHERE name = ?", enc.deletes)
        tail = UPSERT_WORKSPACE_MANAGED if managed else UPSERT_WORKSPACE_UNMANAGED
        tx.executemany(_INSERT_WORKSPACE + tail, enc.workspaces)
        # Replace each upserted workspace's providers wholesale (secrets cascade).
        tx.executemany("DELETE FROM provider_configs WHERE workspace = ?", enc.upserted)
        tx.executemany(
            "INSERT INTO provider_configs (workspace, provider, model, settings, models)"
            " VALUES (?, ?, ?, ?, ?)",
            enc.providers,
        )
        tx.executemany(
            "INSERT INTO provider_secrets (workspace, provider, field, key_id, nonce,"
            " ciphertext) VALUES (?, ?, ?, ?, ?, ?)",
            enc.secrets,
        )

    # -- the apply lock ---------------------------------------------------------------

    @contextmanager
    def lock(
        self, holder: str, operation: str, *, timeout: float
    ) -> Iterator[tuple[LockInfo, Session]]:
        """Take the lock row (waiting up to ``timeout`` s); delete it on exit.

        A lock whose holder was a process of this host that no longer exists (killed,
        crashed) is released on the way: the yielded lock's ``reclaimed`` names it.
        """
        deadline = time.monotonic() + timeout
        me = this_process()
        reclaimed: LockInfo | None = None
        while True:
            now = datetime.now(UTC).replace(microsecond=0)
            info = LockInfo(str(uuid.uuid4()), holder, operation, now)
            taken, stale = self._try_lock(info, me)
            reclaimed = stale or reclaimed
            if taken:
                break
            if stale is not None:
                continue  # its dead holder's row is gone: try again at once
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                with self.transaction("read the lock", write=False) as tx:
                    held = read_lock(tx)
                if held is not None:
                    raise lock_held_error(held)
                continue  # released between our attempt and the look: try once more
            # Jitter keeps two waiters from polling in lockstep.
            time.sleep(min(remaining, 0.02 + random.random() * 0.05))  # noqa: S311
        try:
            yield replace(info, reclaimed=reclaimed), None
        finally:
            with self.transaction("release the lock", write=True) as tx:
                tx.execute("DELETE FROM store_lock WHERE id = ?", (info.id,))

    def _try_lock(self, info: LockInfo, me: ProcessIdentity) -> tuple[bool, LockInfo | None]:
        """Insert the lock row; else release it if its holder is gone.

        Returns whether the lock was taken, and the stale lock released (if any).
        """
        with self.transaction("take the lock", write=True) as tx:
            try:
                tx.execute(
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
            row = tx.one(
                "SELECT id, holder, operation, created, host, pid, process FROM store_lock"
            )
            if row is None or row[4] is None or row[5] is None:
                return False, None
            if not is_gone(ProcessIdentity(str(row[4]), int(row[5]), row[6])):
                return False, None
            # In the same write transaction as the look: no one can take the lock between.
            tx.execute("DELETE FROM store_lock WHERE id = ?", (row[0],))
            return False, LockInfo(row[0], row[1], row[2], datetime.fromisoformat(row[3]))

    def force_unlock(self, lock_id: str) -> None:
        """Delete the lock row with this id."""
        with self.transaction("force-unlock", write=True) as tx:
            if not tx.execute("DELETE FROM store_lock WHERE id = ?", (lock_id,)):
                raise no_such_lock(tx, lock_id)

    def release_session(self, session: Session) -> None:
        """Nothing to do: the lock is a row, deleted when its ``with`` block ends."""

    def listen(self) -> ChangeFeed:
        """SQLite has no change feed."""
        raise StoreError("a SQLite store cannot announce changes")

    def close(self) -> None:
        """Close both connections."""
        with self._mutex:
            connections, self._connections = list(self._connections.values()), {}
        for c in connections:
            with c.mutex:
                c.conn.close()

    def __repr__(self) -> str:
        return f"SQLiteDatabase({self.name!r})"
