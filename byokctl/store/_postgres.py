"""The PostgreSQL backend: one live store shared by every CI runner and application host.

URL: ``postgresql://user:password@host:port/dbname`` plus any libpq parameter as a query
string, e.g. ``?connect_timeout=3`` or ``?options=-csearch_path%3Dbyok`` to keep the
store in its own schema. Passwords never appear in a message (:func:`safe_url`).

How it holds together:

- **Connections**: a ``psycopg_pool`` pool of autocommit connections (explicit
  transactions only), each checked on checkout so that connections killed by a server
  restart are replaced instead of failing the next call. Every psycopg error is
  translated here into a one-line :class:`~byokctl.errors.StoreError` naming
  ``host:port`` and what to check; the pool's own reconnection gives up quickly
  (``reconnect_timeout``) so that a recovered server is used again within seconds.
- **The apply lock** is a session-level advisory lock held by one pool connection for
  the lock's whole duration (``write`` runs on that same session). If the process is
  ``kill -9``'d its connection closes and PostgreSQL frees the lock with it. The
  ``store_lock`` row describes the lock for humans and ``lock_info``; a row whose
  advisory lock is free is stale, and the next ``lock`` reclaims it. ``force_unlock``
  removes the row and terminates the holder's session if it is still alive (a hung
  or partitioned run), which frees the advisory lock and aborts anything it was
  writing, so two writers can never believe they hold the lock.
- **The serial** is bumped first in every write transaction with a compare-and-set
  (``UPDATE ... WHERE serial = %s``): the row lock it takes serialises writers, and a
  writer that lost the race updates no row and gets StalePlanError. The same
  transaction sends ``NOTIFY byok_changes, '<serial>'`` so that resolvers on other hosts
  can wake up at commit (they poll the serial as the safety net). The runtime store
  (``_runtime_postgres``) announces health changes on the same channel as
  ``'runtime:<version>'``.
- **Migrations** run under ``pg_advisory_xact_lock``, so concurrent first uses queue.

Advisory lock keys are two ``int4``: a namespace (apply lock or migrations) and a hash of
the store's schema, so stores in different schemas of one database do not share a lock.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Final, NoReturn, TypeAlias

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from byokctl.errors import MasterKeyError, StoreError
from byokctl.model import LiveState, Workspace

from ._codec import (
    ConfigRows,
    EncodedWrites,
    as_utc,
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
from ._migrations import LATEST_VERSION, pending_migrations
from ._registry import safe_url  # the registry imports this module lazily: no cycle
from ._types import AuditEntry, LockInfo, WorkspaceWrite

SCHEME: Final = "postgresql"
#: Seconds to wait for a connection (libpq's ``connect_timeout`` unless the URL sets it).
DEFAULT_CONNECT_TIMEOUT_S: Final = 5
#: The pool: one connection kept open; up to four (a lock session, writes, lock_info).
POOL_MIN_SIZE: Final = 1
POOL_MAX_SIZE: Final = 4
#: Every serial change is announced on this channel; the payload is the new serial.
CHANGES_CHANNEL: Final = "byok_changes"
#: How long after the caller's lock timeout to wait for a holder that has taken the
#: advisory lock but not yet written its row (or is between deleting it and unlocking).
_UNRECORDED_HOLDER_GRACE_S: Final = 2.0
#: Advisory lock namespaces ("byok", "byom"), the first int4 of each key.
_NS_APPLY_LOCK: Final = 0x62796F6B
_NS_MIGRATIONS: Final = 0x62796F6D

_Conn: TypeAlias = psycopg.Connection[tuple[Any, ...]]

# Each statement writes all its rows at once from arrays (one round trip per table, not
# per row): a 10,000-workspace apply is a handful of statements.
_UPSERT_WORKSPACES = (
    "INSERT INTO workspaces (name, notify, enabled, applied_digest, updated_at, updated_by)"
    " SELECT * FROM unnest(%s::text[], %s::text[]::jsonb[], %s::text[], %s::bytea[],"
    " %s::text[]::timestamptz[], %s::text[]) ON CONFLICT (name) DO UPDATE SET"
    " notify = excluded.notify, enabled = excluded.enabled,"
    " updated_at = excluded.updated_at, updated_by = excluded.updated_by"
)
# The settings page leaves applied_digest alone: that is how its changes become drift.
_UPSERT_MANAGED = _UPSERT_WORKSPACES + ", applied_digest = excluded.applied_digest"
_UPSERT_UNMANAGED = _UPSERT_WORKSPACES
_INSERT_PROVIDERS = (
    "INSERT INTO provider_configs (workspace, provider, model, settings)"
    " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]::jsonb[])"
)
_INSERT_CIPHERTEXTS = (
    "INSERT INTO provider_secrets (workspace, provider, field, key_id, nonce, ciphertext)"
    " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::bytea[],"
    " %s::bytea[])"
)


def _columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows as one list per column, for the ``unnest`` inserts."""
    return [list(column) for column in zip(*rows, strict=True)]


def _now() -> datetime:
    return datetime.now(UTC)


def int4_hash(text: str) -> int:
    """A stable signed 32-bit hash (advisory lock keys are int4 pairs)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big", signed=True)


class Target:
    """Where the store lives: the libpq connection string and a password-free name for it."""

    def __init__(self, url: str) -> None:
        self.safe_url = safe_url(url)
        try:
            params = conninfo_to_dict(url)
        except psycopg.Error:
            raise StoreError(
                f"not a valid PostgreSQL store URL: {self.safe_url!r}",
                hint="use postgresql://user:password@host:port/database",
            ) from None
        host = str(params.get("host") or params.get("hostaddr") or "localhost")
        self.endpoint = f"{host}:{params.get('port') or 5432}"
        self.database = str(params.get("dbname") or params.get("user") or "")
        self._password = str(params.get("password") or "")
        self.timeout = float(str(params.get("connect_timeout") or DEFAULT_CONNECT_TIMEOUT_S))
        extra: dict[str, Any] = {}
        if "connect_timeout" not in params:
            extra["connect_timeout"] = DEFAULT_CONNECT_TIMEOUT_S
        if "application_name" not in params:
            extra["application_name"] = "byokctl"
        # Holds the password: only ever handed to libpq, never formatted into a message.
        self.conninfo = make_conninfo(url, **extra)

    def reason(self, exc: BaseException) -> str:
        """The gist of a psycopg error, one line, with the password masked."""
        if isinstance(exc, psycopg.Error) and exc.diag.message_primary:
            text = exc.diag.message_primary
        else:
            lines = str(exc).strip().splitlines()
            text = lines[0] if lines else type(exc).__name__
            # libpq: 'connection to server at "h" (1.2.3.4), port 5432 failed: <why>'
            text = text.rsplit(" failed: ", 1)[-1]
        text = re.sub(r"^(FATAL|ERROR):\s+", "", text.strip())
        if self._password:
            text = text.replace(self._password, "***")
        return text

    def unreachable(self, exc: BaseException) -> StoreError:
        """The error for a server that cannot be reached (or refuses us)."""
        return StoreError(
            f"cannot reach the PostgreSQL store {self.safe_url} at {self.endpoint}: "
            f"{self.reason(exc)}",
            hint=f"check that PostgreSQL is running and accepts connections at "
            f"{self.endpoint}, and the user, password and database in the store URL",
        )


class PostgresStore:
    """The live store in a PostgreSQL database. Safe to share between threads."""

    def __init__(self, url: str, keyring: Keyring) -> None:
        self._target = Target(url)
        self._keyring = keyring
        self._mutex = threading.Lock()
        #: thread id -> the connection whose session holds the apply lock for that thread
        self._lock_sessions: dict[int, _Conn] = {}
        # One direct connection first: an unreachable server is reported at once with
        # libpq's reason, rather than after the pool's timeout.
        try:
            first: _Conn = psycopg.connect(self._target.conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise self._target.unreachable(exc) from None
        try:
            self._schema, self._key = self._identify(first)
            self._migrate(first)
        except psycopg.Error as exc:
            raise self._failure(exc, "open the store", committing=False) from None
        finally:
            first.close()
        self._pool: ConnectionPool[_Conn] = ConnectionPool(
            self._target.conninfo,
            kwargs={"autocommit": True},
            min_size=POOL_MIN_SIZE,
            max_size=POOL_MAX_SIZE,
            timeout=self._target.timeout,
            # Give up a failed reconnection quickly: the next request starts a fresh
            # attempt, so a server that came back is used within seconds, not after
            # the pool's exponential backoff has grown to minutes.
            reconnect_timeout=max(2.0, self._target.timeout),
            check=ConnectionPool.check_connection,
            name="byokctl",
            open=False,
        )
        self._pool.open(wait=False)

    @classmethod
    def open(cls, url: str, keyring: Keyring) -> PostgresStore:
        """Open the store at a ``postgresql://`` URL, applying pending migrations."""
        return cls(url, keyring)

    # -- plumbing ---------------------------------------------------------------------

    def _identify(self, conn: _Conn) -> tuple[str, int]:
        row = conn.execute("SELECT current_schema()").fetchone()
        if row is None or row[0] is None:
            raise StoreError(
                f"the PostgreSQL store {self._target.safe_url} has no schema to live in: "
                "no schema on its search_path exists",
                hint="create the schema named in the URL's options=-csearch_path=..., "
                "or drop that option to use public",
            )
        schema = str(row[0])
        return schema, int4_hash(schema)

    def _failure(self, exc: psycopg.Error, what: str, *, committing: bool) -> StoreError:
        """Translate a psycopg error raised while doing ``what``."""
        if isinstance(exc, PoolTimeout | psycopg.OperationalError):
            if committing:
                return StoreError(
                    f"lost the connection to the PostgreSQL store at {self._target.endpoint} "
                    f"while committing ({what}): {self._target.reason(exc)}",
                    hint="the change may or may not have been committed: run plan to see "
                    "the store's current state",
                )
            return StoreError(
                f"the PostgreSQL store at {self._target.endpoint} is unavailable, so could "
                f"not {what}: {self._target.reason(exc)}; nothing was written",
                hint=f"check that PostgreSQL is running and reachable at {self._target.endpoint}",
            )
        return StoreError(
            f"the PostgreSQL store {self._target.safe_url} failed to {what}: "
            f"{self._target.reason(exc)}"
        )

    def _checkout(self, what: str) -> _Conn:
        try:
            return self._pool.getconn()
        except PoolTimeout:
            self._raise_unreachable(what)

    def _raise_unreachable(self, what: str) -> NoReturn:
        # The pool only says it timed out: one direct attempt finds out why.
        try:
            psycopg.connect(self._target.conninfo).close()
        except psycopg.Error as exc:
            raise self._failure(exc, what, committing=False) from None
        raise StoreError(
            f"timed out waiting for a connection to the PostgreSQL store at "
            f"{self._target.endpoint} (to {what}); nothing was written",
            hint="the server is reachable but busy: retry, or check max_connections",
        )

    def _checkin(self, conn: _Conn) -> None:
        try:
            self._pool.putconn(conn)
        except Exception:
            conn.close()

    @contextmanager
    def _transaction(
        self, what: str, *, snapshot: bool = False, conn: _Conn | None = None
    ) -> Iterator[_Conn]:
        """One transaction on ``conn`` or a pooled connection; psycopg errors translated.

        ``snapshot``: a read-only REPEATABLE READ transaction, so several SELECTs see
        one consistent state.
        """
        c = conn if conn is not None else self._checkout(what)
        committing = False
        try:
            with c.transaction():
                if snapshot:
                    c.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                yield c
                committing = True
        except psycopg.Error as exc:
            raise self._failure(exc, what, committing=committing) from None
        finally:
            if conn is None:
                self._checkin(c)

    def _migrate(self, conn: _Conn) -> None:
        if self._schema_version(conn) == LATEST_VERSION:
            return  # the common case: no lock needed to open a current store
        with conn.transaction():
            # Concurrent first uses queue here; the loser then finds the versions applied.
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_NS_MIGRATIONS, self._key))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
            )
            applied = {int(r[0]) for r in conn.execute("SELECT version FROM schema_migrations")}
            for migration in pending_migrations(applied, store=self._target.safe_url):
                for statement in migration.statements("postgresql"):
                    conn.execute(statement.encode())  # bytes: no %-placeholder parsing
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, _now()),
                )

    @staticmethod
    def _schema_version(conn: _Conn) -> int:
        row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        if row is None or not row[0]:
            return 0
        found = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(found[0] or 0) if found else 0

    @staticmethod
    def _one(conn: _Conn, query: str, params: Sequence[object] = ()) -> Any:
        row = conn.execute(query.encode(), params).fetchone()
        if row is None:
            raise StoreError(f"the store returned no row for: {query}")
        return row[0]

    @staticmethod
    def _current_key_id(c: _Conn) -> str | None:
        row = c.execute("SELECT key_id FROM master_keys WHERE retired_at IS NULL").fetchone()
        return None if row is None else str(row[0])

    def _claim_key(self, c: _Conn) -> None:
        """Check that the primary key is the store's key (registering it on a new store)."""
        if must_register_key(self._current_key_id(c), self._keyring):
            c.execute(
                "INSERT INTO master_keys (key_id, added_at) VALUES (%s, %s)",
                (self._keyring.primary.key_id, _now()),
            )

    def _bump_serial(self, c: _Conn, expected: int | None) -> int:
        """Increment the serial; with ``expected``, only if it still is that (else stale).

        Runs first in every write transaction: the row lock it takes queues concurrent
        writers, and under READ COMMITTED a writer that queued behind one that committed
        re-checks ``serial = expected`` against the new row, finds it false, and updates
        nothing.
        """
        if expected is None:
            return int(self._one(c, "UPDATE store_serial SET serial = serial + 1 RETURNING serial"))
        row = c.execute(
            "UPDATE store_serial SET serial = serial + 1 WHERE id = 1 AND serial = %s"
            " RETURNING serial",
            (expected,),
        ).fetchone()
        if row is None:
            raise stale_plan_error(int(self._one(c, "SELECT serial FROM store_serial")), expected)
        return int(row[0])

    @staticmethod
    def _notify(c: _Conn, serial: int) -> None:
        # Delivered at commit, never for a rolled-back transaction.
        c.execute("SELECT pg_notify(%s, %s)", (CHANGES_CHANNEL, str(serial)))

    @staticmethod
    def _insert_audit(c: _Conn, entry: AuditEntry) -> None:
        c.execute(
            "INSERT INTO audit_log (at, who, operation, serial, changes)"
            " VALUES (%s, %s, %s, %s, %s::jsonb)",
            (entry.at, entry.who, entry.operation, entry.serial, audit_changes_json(entry)),
        )

    def _load(self, c: _Conn) -> ConfigRows:
        return ConfigRows(
            serial=int(self._one(c, "SELECT serial FROM store_serial")),
            key_id=self._current_key_id(c),
            workspaces=c.execute(
                "SELECT name, notify::text, enabled, applied_digest, updated_at, updated_by"
                " FROM workspaces"
            ).fetchall(),
            providers=c.execute(
                "SELECT workspace, provider, model, settings::text FROM provider_configs"
            ).fetchall(),
            secrets=c.execute(
                "SELECT workspace, provider, field, key_id, nonce, ciphertext FROM provider_secrets"
            ).fetchall(),
        )

    @staticmethod
    def _apply_encoded(c: _Conn, enc: EncodedWrites, *, managed: bool) -> None:
        if enc.deletes:
            c.execute("DELETE FROM workspaces WHERE name = ANY(%s)", ([n for (n,) in enc.deletes],))
        if enc.workspaces:
            upsert = _UPSERT_MANAGED if managed else _UPSERT_UNMANAGED
            c.execute(upsert, _columns(enc.workspaces))
            # Replace each upserted workspace's providers wholesale (secrets cascade).
            c.execute(
                "DELETE FROM provider_configs WHERE workspace = ANY(%s)",
                ([n for (n,) in enc.upserted],),
            )
        if enc.providers:
            c.execute(_INSERT_PROVIDERS, _columns(enc.providers))
        if enc.secrets:
            c.execute(_INSERT_CIPHERTEXTS, _columns(enc.secrets))

    def _lock_session(self) -> _Conn | None:
        """The connection holding the apply lock for the calling thread, if any."""
        with self._mutex:
            return self._lock_sessions.get(threading.get_ident())

    # -- the Store interface ----------------------------------------------------------

    @property
    def url(self) -> str:
        """The store's URL, password masked."""
        return self._target.safe_url

    def read_state(self) -> LiveState:
        """The configuration at one serial, secrets decrypted."""
        with self._transaction("read the live state", snapshot=True) as c:
            rows = self._load(c)
        return live_state(rows, self._keyring, store=self._target.safe_url)

    def serial(self) -> int:
        """The current serial."""
        with self._transaction("read the serial") as c:
            return int(self._one(c, "SELECT serial FROM store_serial"))

    def schema_version(self) -> int:
        """The highest migration applied."""
        with self._transaction("read the schema version") as c:
            return self._schema_version(c)

    @contextmanager
    def lock(self, holder: str, operation: str, *, timeout: float) -> Iterator[LockInfo]:
        """Take the lock (waiting up to ``timeout`` s), yield it, release it on exit."""
        conn = self._checkout("take the lock")
        try:
            info = self._acquire(conn, holder, operation, timeout)
        except BaseException:
            self._checkin(conn)
            raise
        tid = threading.get_ident()
        with self._mutex:
            self._lock_sessions[tid] = conn
        try:
            yield info
        finally:
            with self._mutex:
                if self._lock_sessions.get(tid) is conn:
                    del self._lock_sessions[tid]
            self._release(conn, info)

    def _acquire(self, conn: _Conn, holder: str, operation: str, timeout: float) -> LockInfo:
        deadline = time.monotonic() + timeout
        key = (_NS_APPLY_LOCK, self._key)
        try:
            while True:
                got = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", key).fetchone()
                if got is not None and got[0]:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    held = self.lock_info()
                    if held is not None:
                        raise lock_held_error(held)
                    if remaining < -_UNRECORDED_HOLDER_GRACE_S:
                        raise lock_held_error(
                            LockInfo("(unrecorded)", "an unknown session", "?", _now())
                        )
                # Jitter keeps waiters from polling in lockstep.
                time.sleep(max(0.0, min(remaining, 0.02 + random.random() * 0.05)) or 0.02)  # noqa: S311
            info = LockInfo(str(uuid.uuid4()), holder, operation, _now().replace(microsecond=0))
            try:
                with conn.transaction():
                    # We hold the advisory lock, so any row left is stale: its holder's
                    # session is gone (killed, or the server restarted). Reclaim it.
                    stale = conn.execute(
                        "DELETE FROM store_lock RETURNING id, holder, operation, created"
                    ).fetchone()
                    if stale is not None:
                        info = replace(
                            info,
                            reclaimed=LockInfo(
                                str(stale[0]), str(stale[1]), str(stale[2]), as_utc(stale[3])
                            ),
                        )
                    conn.execute(
                        "INSERT INTO store_lock (id, slot, holder, operation, created,"
                        " backend_pid) VALUES (%s, 1, %s, %s, %s, pg_backend_pid())",
                        (info.id, holder, operation, info.created),
                    )
            except BaseException:
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", key)
                raise
        except psycopg.Error as exc:
            raise self._failure(exc, "take the lock", committing=False) from None
        return info

    def _release(self, conn: _Conn, info: LockInfo) -> None:
        try:
            with conn.transaction():
                conn.execute("DELETE FROM store_lock WHERE id = %s", (info.id,))
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", (_NS_APPLY_LOCK, self._key))
        except psycopg.Error:
            # The session is gone (force-unlocked, server restart, network): its advisory
            # lock went with it, and a row left behind is stale and will be reclaimed.
            # Closing makes sure the session, and so the lock, really ends.
            conn.close()
        finally:
            self._checkin(conn)

    def lock_info(self) -> LockInfo | None:
        """The lock row, or ``None``.

        A row whose holder died is still shown (it says who was running what) until the
        next ``lock`` reclaims it or ``force_unlock`` removes it; it blocks no one.
        """
        with self._transaction("read the lock") as c:
            row = c.execute("SELECT id, holder, operation, created FROM store_lock").fetchone()
        if row is None:
            return None
        return LockInfo(str(row[0]), str(row[1]), str(row[2]), as_utc(row[3]))

    def force_unlock(self, lock_id: str) -> None:
        """Remove the lock row with this id and end its holder's session if still alive."""
        with self._transaction("force-unlock") as c:
            row = c.execute(
                "DELETE FROM store_lock WHERE id = %s RETURNING backend_pid", (lock_id,)
            ).fetchone()
            if row is None:
                other = c.execute("SELECT id FROM store_lock").fetchone()
                current = (
                    f"the current lock's id is {other[0]}" if other else "the store is unlocked"
                )
                raise StoreError(f"no lock with id {lock_id!r}: {current}")
            pid = int(row[0])
        self._end_holder_session(pid)

    def _end_holder_session(self, pid: int) -> None:
        # Only a session that still holds *this store's* advisory lock is ended; waiting
        # (up to 5 s) for it to exit means its transaction is over when we return.
        conn = self._checkout("end the lock holder's session")
        try:
            conn.execute(
                "SELECT pg_terminate_backend(l.pid, 5000) FROM pg_locks l"
                " JOIN pg_database d ON d.oid = l.database"
                " WHERE d.datname = current_database() AND l.locktype = 'advisory'"
                " AND l.granted AND l.objsubid = 2 AND l.pid = %s"
                " AND l.classid::bigint = %s AND l.objid::bigint = %s",
                (pid, _NS_APPLY_LOCK & 0xFFFFFFFF, self._key & 0xFFFFFFFF),
            )
        except pg_errors.InsufficientPrivilege:
            raise StoreError(
                f"removed the lock row, but may not end its holder's session "
                f"(backend pid {pid}), which still holds the lock",
                hint=f"ask a database superuser to run: SELECT pg_terminate_backend({pid})",
            ) from None
        except psycopg.Error as exc:
            raise self._failure(exc, "end the lock holder's session", committing=False) from None
        finally:
            self._checkin(conn)

    def write(
        self, writes: Sequence[WorkspaceWrite], *, expected_serial: int, audit: AuditEntry
    ) -> int:
        """Apply ``writes`` in one transaction and return the new serial."""
        check_write(writes, expected_serial, audit)
        enc = encode_writes(writes, self._keyring.primary, at=audit.at, who=audit.who, managed=True)
        # Under the lock, write on the lock's own session: if force-unlock ended it, this
        # write fails instead of racing the next holder.
        with self._transaction("apply", conn=self._lock_session()) as c:
            serial = self._bump_serial(c, expected_serial)
            self._claim_key(c)  # refuses a key other than the store's, before any row changes
            self._apply_encoded(c, enc, managed=True)
            self._insert_audit(c, audit)
            self._notify(c, serial)
        return serial

    def put_unmanaged(self, workspace: Workspace, *, updated_by: str) -> None:
        """Write a workspace as the application's settings page would (shows as drift)."""
        enc = encode_writes(
            [WorkspaceWrite.upsert(workspace)],
            self._keyring.primary,
            at=_now(),
            who=updated_by,
            managed=False,
        )
        with self._transaction("write a workspace") as c:
            serial = self._bump_serial(c, None)
            self._claim_key(c)
            self._apply_encoded(c, enc, managed=False)
            self._notify(c, serial)

    def audit_log(self, *, limit: int | None = None) -> list[AuditEntry]:
        """Audit entries, newest first."""
        with self._transaction("read the audit log") as c:
            rows = c.execute(
                "SELECT at, who, operation, serial, changes::text FROM audit_log"
                " ORDER BY seq DESC LIMIT %s",
                (limit,),
            ).fetchall()
        return [audit_entry(*row) for row in rows]

    def rotate_master_key(self, new_key: MasterKey, *, who: str) -> int:
        """Re-encrypt every secret under ``new_key`` in one transaction; return the count."""
        with self._transaction("rotate the master key") as c:
            # Writers lock the serial row first: holding it, no write can add a secret
            # under the old key between our read and our update.
            c.execute("SELECT serial FROM store_serial FOR UPDATE")
            rows = self._load(c)
            if rows.key_id == new_key.key_id:
                raise MasterKeyError(f"the store already uses the key with key id {rows.key_id}")
            updates = rotation(rows, self._keyring, new_key)
            with c.cursor() as cur:
                if updates.secrets:
                    cur.executemany(
                        "UPDATE provider_secrets SET key_id = %s, nonce = %s, ciphertext = %s"
                        " WHERE workspace = %s AND provider = %s AND field = %s",
                        updates.secrets,
                    )
                if updates.digests:
                    cur.executemany(
                        "UPDATE workspaces SET applied_digest = %s WHERE name = %s",
                        updates.digests,
                    )
            stamp = _now()
            c.execute("UPDATE master_keys SET retired_at = %s WHERE retired_at IS NULL", (stamp,))
            c.execute(
                "INSERT INTO master_keys (key_id, added_at) VALUES (%s, %s) ON CONFLICT (key_id)"
                " DO UPDATE SET retired_at = NULL",
                (new_key.key_id, stamp),
            )
            self._insert_audit(c, AuditEntry(who, stamp, "rotate-key", rows.serial))
        self._keyring = self._keyring.with_primary(new_key)
        return len(updates.secrets)

    def close(self) -> None:
        """Close the pool (and any lock session left open, which frees its lock)."""
        with self._mutex:
            held = list(self._lock_sessions.values())
            self._lock_sessions.clear()
        for conn in held:
            conn.close()
        self._pool.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostgresStore({self._target.safe_url!r})"
