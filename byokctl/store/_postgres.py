"""The PostgreSQL database: one store shared by every CI runner and application host.

URL: ``postgresql://user:password@host:port/dbname`` plus any libpq parameter as a query
string, e.g. ``?connect_timeout=3`` or ``?options=-csearch_path%3Dbyok`` to keep the
store in its own schema. Passwords never appear in a message (:func:`safe_url`).

How it holds together:

- **Connections**: one :class:`~._pg_target.Connections` per process and database,
  shared by the live and the runtime state (see :mod:`._registry`). Every psycopg error
  is translated here into a one-line :class:`~byokctl.errors.StoreError` naming
  ``host:port`` and what to check.
- **The apply lock** is a session-level advisory lock held by one connection for the
  lock's whole duration (``write`` runs on that same session). If the process is
  ``kill -9``'d its connection closes and PostgreSQL frees the lock with it. The
  ``store_lock`` row describes the lock for humans and ``lock_info``; a row whose
  advisory lock is free is stale, and the next ``lock`` reclaims it. ``force_unlock``
  removes the row and terminates the holder's session if it is still alive (a hung
  or partitioned run), which frees the advisory lock and aborts anything it was
  writing, so two writers can never believe they hold the lock.
- **Decisions** about one provider's health take a transaction-level advisory lock on
  ``(schema, workspace, provider)``; other providers are not held up.
- **Announcements**: ``NOTIFY byok_changes`` in the writing transaction, delivered at
  commit, heard by :class:`~._pg_feed.PostgresChangeFeed`.
- **Migrations** run under ``pg_advisory_xact_lock``, so concurrent first uses queue.

Advisory lock keys are two ``int4``: a namespace and a hash of the store's schema, so
stores in different schemas of one database do not share a lock.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Final

import psycopg
import psycopg.errors

from byokctl.errors import StoreError

from ._codec import EncodedWrites, as_utc, lock_held_error
from ._database import (
    OPENING,
    UPSERT_WORKSPACE_MANAGED,
    UPSERT_WORKSPACE_UNMANAGED,
    Busy,
    Session,
    Tx,
    no_such_lock,
    read_lock,
)
from ._migrations import Dialect
from ._pg_feed import PostgresChangeFeed
from ._pg_target import CHANGES_CHANNEL, MAX_CONNECTIONS, Conn, Connections, Target, int4_hash
from ._runtime import Period
from ._types import LockInfo

SCHEME: Final = "postgresql"
#: How long after the caller's lock timeout to wait for a holder that has taken the
#: advisory lock but not yet written its row (or is between deleting it and unlocking).
_UNRECORDED_HOLDER_GRACE_S: Final = 2.0
#: Advisory lock namespaces ("byok", "byom", "byor"), the first int4 of each key.
_NS_APPLY_LOCK: Final = 0x62796F6B
_NS_MIGRATIONS: Final = 0x62796F6D
_NS_HEALTH: Final = 0x62796F72
_PERIOD_FORMATS: Final[dict[str, str]] = {"day": "YYYY-MM-DD", "month": "YYYY-MM"}

# Each statement writes all its rows at once from arrays (one round trip per table, not
# per row): a 10,000-workspace apply is a handful of statements.
_INSERT_WORKSPACES: Final = (
    "INSERT INTO workspaces (name, notify, enabled, applied_digest, updated_at, updated_by,"
    " fallback) SELECT * FROM unnest(%s::text[], %s::text[]::jsonb[], %s::text[], %s::bytea[],"
    " %s::text[]::timestamptz[], %s::text[], %s::text[]::jsonb[])"
)
_INSERT_PROVIDERS: Final = (
    "INSERT INTO provider_configs (workspace, provider, model, settings, models)"
    " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]::jsonb[],"
    " %s::text[]::jsonb[])"
)
_INSERT_CIPHERTEXTS: Final = (
    "INSERT INTO provider_secrets (workspace, provider, field, key_id, nonce, ciphertext)"
    " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::bytea[],"
    " %s::bytea[])"
)


def _columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows as one list per column, for the ``unnest`` inserts."""
    return [list(column) for column in zip(*rows, strict=True)]


class PostgresDatabase:
    """A PostgreSQL store, shared by this process's store views. Thread-safe."""

    dialect: Dialect = "postgresql"
    announces = True

    def __init__(self, url: str) -> None:
        self._target = Target(url)
        self.name = self._target.safe_url
        self._conns = Connections(self._target.conninfo, MAX_CONNECTIONS, self._target.timeout)
        # The first connection at once: an unreachable server is reported now, with
        # libpq's reason.
        try:
            first = self._conns.get()
        except psycopg.Error as exc:
            raise self._target.unreachable(exc) from None
        assert first is not None
        healthy = False
        try:
            row = first.execute("SELECT current_schema()").fetchone()
            healthy = True
        except psycopg.Error as exc:
            raise self.failure(exc, "open the store", committing=False) from None
        finally:
            self._conns.put(first, healthy=healthy)
        if row is None or row[0] is None:
            self._conns.close()
            raise StoreError(
                f"the PostgreSQL store {self.name} has no schema to live in: "
                "no schema on its search_path exists",
                hint="create the schema named in the URL's options=-csearch_path=..., "
                "or drop that option to use public",
            )
        self._schema = str(row[0])
        self._key = int4_hash(self._schema)

    def failure(self, exc: BaseException, what: str, *, committing: bool) -> StoreError:
        """Translate a psycopg error raised while doing ``what``."""
        t = self._target
        if isinstance(exc, psycopg.OperationalError):
            if committing:
                return StoreError(
                    f"lost the connection to the PostgreSQL store at {t.endpoint} "
                    f"while committing ({what}): {t.reason(exc)}",
                    hint="the change may or may not have been committed: run plan to see "
                    "the store's current state",
                )
            return StoreError(
                f"the PostgreSQL store at {t.endpoint} is unavailable, so could "
                f"not {what}: {t.reason(exc)}; nothing was written",
                hint=f"check that PostgreSQL is running and reachable at {t.endpoint}",
            )
        return StoreError(f"the PostgreSQL store {t.safe_url} failed to {what}: {t.reason(exc)}")

    def _checkout(self, what: str, wait: float | None = None) -> Conn:
        try:
            conn = self._conns.get(timeout=wait)
        except psycopg.Error as exc:
            if what == OPENING:
                raise self._target.unreachable(exc) from None
            raise self.failure(exc, what, committing=False) from None
        if conn is None:
            if wait is not None:
                raise Busy
            raise StoreError(
                f"timed out waiting for one of this process's {MAX_CONNECTIONS} connections "
                f"to the PostgreSQL store at {self._target.endpoint} (to {what}); "
                "nothing was written",
                hint="the store is slow to answer: check the server's load",
            )
        return conn

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
        """One transaction on ``session`` or a pooled connection; psycopg errors translated.

        ``snapshot``: a read-only REPEATABLE READ transaction, so several SELECTs see
        one consistent state. With ``wait``, lock waits end after about ``wait`` s
        (``lock_timeout``), raising :class:`Busy`.
        """
        conn: Conn = session if session is not None else self._checkout(what, wait)
        healthy, committing = False, False
        try:
            with conn.transaction():
                if snapshot:
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                if wait is not None:
                    ms = max(1, int(wait * 1000))
                    conn.execute(f"SET LOCAL lock_timeout = {ms}".encode())
                    conn.execute(f"SET LOCAL statement_timeout = {ms * 2}".encode())
                yield Tx(conn, pyformat=True)
                committing = True
            healthy = True
        except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled) as exc:
            healthy = True  # the transaction was rolled back; the connection is fine
            if wait is not None:
                raise Busy from None
            raise self.failure(exc, what, committing=False) from None
        except psycopg.Error as exc:
            healthy = not isinstance(exc, psycopg.OperationalError)
            raise self.failure(exc, what, committing=committing) from None
        except BaseException:
            healthy = not conn.broken
            raise
        finally:
            if session is None:
                self._conns.put(conn, healthy=healthy)

    # -- what differs from SQLite -----------------------------------------------------

    def json_text(self, column: str) -> str:
        """``JSONB`` read as text."""
        return f"{column}::text"

    def has_table(self, tx: Tx, name: str) -> bool:
        """Whether the table exists on the search path."""
        return bool(tx.value("SELECT to_regclass(?) IS NOT NULL", (name,)))

    def schema_version(self, tx: Tx) -> int:
        """The highest migration recorded (0 for an empty schema)."""
        if not self.has_table(tx, "schema_migrations"):
            return 0
        return int(tx.value("SELECT max(version) FROM schema_migrations") or 0)

    def lock_migrations(self, tx: Tx) -> None:
        """Concurrent first uses queue here until the migrating transaction ends."""
        tx.execute("SELECT pg_advisory_xact_lock(?, ?)", (_NS_MIGRATIONS, self._key))

    def serialize(self, tx: Tx, key: str) -> None:
        """A transaction-level advisory lock on ``(schema, key)``."""
        lock = int4_hash(f"{self._schema}\0{key}")
        tx.execute("SELECT pg_advisory_xact_lock(?, ?)", (_NS_HEALTH, lock))

    def announce(self, tx: Tx, payload: str) -> None:
        """``NOTIFY``: delivered at commit, never for a rolled-back transaction."""
        tx.execute("SELECT pg_notify(?, ?)", (CHANGES_CHANNEL, payload))

    def insert_id(self, tx: Tx, sql: str, params: Sequence[object]) -> int:
        """Run an ``INSERT ... RETURNING id``."""
        return int(tx.value(sql + " RETURNING id", params))

    def period(self, period: Period) -> str:
        """Periods are UTC days and months, as on SQLite (whose timestamps are UTC text)."""
        return f"to_char(at AT TIME ZONE 'UTC', '{_PERIOD_FORMATS[period]}')"

    def write_rows(self, tx: Tx, enc: EncodedWrites, *, managed: bool) -> None:
        """Deletes, upserts, then each upserted workspace's providers wholesale."""
        c: Conn = tx.raw
        if enc.deletes:
            c.execute("DELETE FROM workspaces WHERE name = ANY(%s)", ([n for (n,) in enc.deletes],))
        if enc.workspaces:
            tail = UPSERT_WORKSPACE_MANAGED if managed else UPSERT_WORKSPACE_UNMANAGED
            c.execute((_INSERT_WORKSPACES + tail).encode(), _columns(enc.workspaces))
            # Replace each upserted workspace's providers wholesale (secrets cascade).
            c.execute(
                "DELETE FROM provider_configs WHERE workspace = ANY(%s)",
                ([n for (n,) in enc.upserted],),
            )
        if enc.providers:
            c.execute(_INSERT_PROVIDERS, _columns(enc.providers))
        if enc.secrets:
            c.execute(_INSERT_CIPHERTEXTS, _columns(enc.secrets))

    def listen(self) -> PostgresChangeFeed:
        """A feed that wakes up when this store announces a change (its own connection)."""
        return PostgresChangeFeed(self._target)

    # -- the apply lock ---------------------------------------------------------------

    @contextmanager
    def lock(
        self, holder: str, operation: str, *, timeout: float
    ) -> Iterator[tuple[LockInfo, Session]]:
        """Take the advisory lock on a connection of its own; yield it and that session."""
        conn = self._checkout("take the lock")
        try:
            info = self._acquire(conn, holder, operation, timeout)
        except BaseException:
            self._conns.put(conn, healthy=not conn.broken)
            raise
        try:
            yield info, conn
        finally:
            self._release(conn, info)

    def _acquire(self, conn: Conn, holder: str, operation: str, timeout: float) -> LockInfo:
        deadline = time.monotonic() + timeout
        key = (_NS_APPLY_LOCK, self._key)
        try:
            while True:
                got = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", key).fetchone()
                if got is not None and got[0]:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    with self.transaction("read the lock", write=False) as tx:
                        held = read_lock(tx)
                    if held is not None:
                        raise lock_held_error(held)
                    if remaining < -_UNRECORDED_HOLDER_GRACE_S:
                        raise lock_held_error(
                            LockInfo("(unrecorded)", "an unknown session", "?", datetime.now(UTC))
                        )
                # Jitter keeps waiters from polling in lockstep.
                time.sleep(max(0.0, min(remaining, 0.02 + random.random() * 0.05)) or 0.02)  # noqa: S311
            created = datetime.now(UTC).replace(microsecond=0)
            info = LockInfo(str(uuid.uuid4()), holder, operation, created)
            try:
                with conn.transaction():
                    # We hold the advisory lock, so any row left is stale: its holder's
                    # session is gone (killed, or the server restarted). Reclaim it.
                    stale = conn.execute(
                        "DELETE FROM store_lock RETURNING id, holder, operation, created"
                    ).fetchone()
                    if stale is not None:
                        was = LockInfo(
                            str(stale[0]), str(stale[1]), str(stale[2]), as_utc(stale[3])
                        )
                        info = replace(info, reclaimed=was)
                    conn.execute(
                        "INSERT INTO store_lock (id, slot, holder, operation, created,"
                        " backend_pid) VALUES (%s, 1, %s, %s, %s, pg_backend_pid())",
                        (info.id, holder, operation, info.created),
                    )
            except BaseException:
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", key)
                raise
        except psycopg.Error as exc:
            raise self.failure(exc, "take the lock", committing=False) from None
        return info

    def _release(self, conn: Conn, info: LockInfo) -> None:
        healthy = False
        try:
            with conn.transaction():
                conn.execute("DELETE FROM store_lock WHERE id = %s", (info.id,))
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", (_NS_APPLY_LOCK, self._key))
            healthy = True
        except psycopg.Error:
            # The session is gone (force-unlocked, server restart, network): its advisory
            # lock went with it, and a row left behind is stale and will be reclaimed.
            # Not returned healthy: closing makes sure the session, and the lock, end.
            pass
        finally:
            self._conns.put(conn, healthy=healthy)

    def release_session(self, session: Session) -> None:
        """Close a lock session (its advisory lock ends with it)."""
        conn: Conn = session
        conn.close()

    def force_unlock(self, lock_id: str) -> None:
        """Remove the lock row with this id and end its holder's session if still alive."""
        with self.transaction("force-unlock", write=True) as tx:
            row = tx.one("DELETE FROM store_lock WHERE id = ? RETURNING backend_pid", (lock_id,))
            if row is None:
                raise no_such_lock(tx, lock_id)
            pid = int(row[0])
        self._end_holder_session(pid)

    def _end_holder_session(self, pid: int) -> None:
        # Only a session that still holds *this store's* advisory lock is ended; waiting
        # (up to 5 s) for it to exit means its transaction is over when we return.
        conn = self._checkout("end the lock holder's session")
        healthy = True
        try:
            conn.execute(
                "SELECT pg_terminate_backend(l.pid, 5000) FROM pg_locks l"
                " JOIN pg_database d ON d.oid = l.database"
                " WHERE d.datname = current_database() AND l.locktype = 'advisory'"
                " AND l.granted AND l.objsubid = 2 AND l.pid = %s"
                " AND l.classid::bigint = %s AND l.objid::bigint = %s",
                (pid, _NS_APPLY_LOCK & 0xFFFFFFFF, self._key & 0xFFFFFFFF),
            )
        except psycopg.errors.InsufficientPrivilege:
            raise StoreError(
                f"removed the lock row, but may not end its holder's session "
                f"(backend pid {pid}), which still holds the lock",
                hint=f"ask a database superuser to run: SELECT pg_terminate_backend({pid})",
            ) from None
        except psycopg.Error as exc:
            healthy = False
            raise self.failure(exc, "end the lock holder's session", committing=False) from None
        finally:
            self._conns.put(conn, healthy=healthy)

    def close(self) -> None:
        """Close the connections (busy ones close when returned)."""
        self._conns.close()

    def __repr__(self) -> str:
        return f"PostgresDatabase({self.name!r})"
