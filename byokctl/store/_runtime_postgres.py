"""The PostgreSQL implementation of :class:`~byokctl.store._runtime.RuntimeStore`, and its feed.

Same semantics as the SQLite runtime store, decided the PostgreSQL way:

- **One decision, one transaction.** ``record_failure``, ``record_success``,
  ``claim_probe`` and ``reset`` read a provider's health row, decide and write. Two
  processes must not interleave there, and the row may not exist yet (so ``FOR UPDATE``
  has nothing to lock): each takes a transaction-level advisory lock on
  ``(schema, workspace, provider)`` first. Other providers are not held up, unlike
  SQLite's one writer. The unique index on open episodes stays the last arbiter.
- **Compare-and-set claims.** ``claim_notification`` is one ``UPDATE ... WHERE`` the
  lease is free: under READ COMMITTED a second claimer waits for the first one's row
  lock, re-checks the condition against the committed row, and updates nothing.
- **NOTIFY on every route change.** The write that bumps the runtime version also sends
  ``NOTIFY byok_changes, 'runtime:<version>'`` (the configuration store sends
  ``'<serial>'`` on the same channel), delivered at commit and never for a rollback, so
  that resolvers listening through a :class:`PostgresChangeFeed` reload at once.

Connections: up to four direct autocommit connections, reused and checked on checkout
(:class:`_Connections`). Not ``psycopg_pool`` as the configuration store: a pool keeps
reconnecting in the background and logs a warning for every failed attempt, and its
``getconn`` waits its whole timeout for a server that refuses connections; the
resolver wants the opposite during an outage: fail at once with libpq's reason, log
nothing (the resolver logs the outage once), and connect again on the next call.
Every psycopg error becomes a one-line :class:`~byokctl.errors.StoreError` naming
``host:port``; the resolver treats those as "the store is unavailable". Times are
``TIMESTAMPTZ`` in the database and POSIX seconds at the interface; the caller's clock
is used, never the server's, so an injected clock means the same on both backends.
"""

from __future__ import annotations

import logging
import random
import select
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any, Final, TypeAlias

import psycopg
import psycopg.errors
from psycopg.conninfo import make_conninfo

from byokctl.errors import StoreError

from ._health import (
    EPISODE_COLUMNS,
    HEALTH_COLUMNS,
    credit_usage_query,
    credit_usage_rows,
    decide_failure,
    decide_probe,
    decide_success,
    episodes_from_rows,
    episodes_query,
    health_from_row,
    health_values,
    may_reset,
    write_decision,
)
from ._postgres import CHANGES_CHANNEL, Target, int4_hash
from ._runtime import (
    BreakerPolicy,
    CreditEntry,
    CreditUsage,
    Episode,
    Failure,
    HealthChange,
    HealthRecord,
    Period,
    ProbeGrant,
)

_log = logging.getLogger("byokctl.store")

#: The payload prefix of a runtime change on :data:`CHANGES_CHANNEL`.
RUNTIME_PAYLOAD_PREFIX: Final = "runtime:"
#: At most this many connections per process (concurrent reports from many threads).
MAX_CONNECTIONS: Final = 4
#: Advisory lock namespace ("byor") for health decisions, the first int4 of each key.
_NS_HEALTH: Final = 0x62796F72
#: The change feed reconnects after 0.1 s, doubling up to this cap (plus jitter).
FEED_BACKOFF_MIN_S: Final = 0.1
FEED_BACKOFF_MAX_S: Final = 5.0

_Conn: TypeAlias = psycopg.Connection[tuple[Any, ...]]

_PERIOD_FORMATS: Final[dict[str, str]] = {"day": "YYYY-MM-DD", "month": "YYYY-MM"}


def _ts(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _seconds(d: datetime) -> float:
    return d.timestamp()


class _Busy(Exception):
    """A bounded wait ran out (a lock or a connection): ask again later, not an outage."""


class _Connections:
    """A few direct connections, reused; checked on checkout; none made in the background."""

    def __init__(self, conninfo: str, size: int, timeout: float) -> None:
        self._conninfo = conninfo
        self._timeout = timeout
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[_Conn] = []
        self._lock = threading.Lock()
        self._closed = False

    def get(self, timeout: float | None = None) -> _Conn | None:
        """A live connection, or ``None`` if all are busy for ``timeout`` s (default: the pool's).

        Raises :class:`psycopg.Error` when a new connection cannot be made.
        """
        if not self._slots.acquire(timeout=self._timeout if timeout is None else timeout):
            return None
        try:
            while True:
                with self._lock:
                    conn = self._idle.pop() if self._idle else None
                if conn is None:
                    fresh: _Conn = psycopg.connect(self._conninfo, autocommit=True)
                    return fresh
                try:
                    conn.execute("")  # one round trip: a server restart killed it?
                except psycopg.Error:
                    conn.close()
                    continue
                return conn
        except BaseException:
            self._slots.release()
            raise

    def put(self, conn: _Conn, *, healthy: bool) -> None:
        """Return a connection from :meth:`get` (closed unless ``healthy``)."""
        try:
            with self._lock:
                keep = healthy and not self._closed and not conn.closed and not conn.broken
                if keep:
                    self._idle.append(conn)
            if not keep:
                conn.close()
        finally:
            self._slots.release()

    def close(self) -> None:
        """Close the idle connections; busy ones close when returned."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class PostgresRuntimeStore:
    """Runtime state in the PostgreSQL store's database. Safe to share between threads."""

    def __init__(self, url: str) -> None:
        self._target = Target(url)
        try:
            first: _Conn = psycopg.connect(self._target.conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise self._target.unreachable(exc) from None
        try:
            row = first.execute(
                "SELECT current_schema(), to_regclass('runtime_meta') IS NOT NULL"
            ).fetchone()
            if row is None or row[0] is None or not row[1]:
                raise StoreError(
                    f"the PostgreSQL store {self._target.safe_url} has no runtime tables",
                    hint="open it with this byokctl version first so that its migrations run",
                )
            self._schema = str(row[0])
            key = first.execute("SELECT fingerprint_key FROM runtime_meta").fetchone()
        except psycopg.Error as exc:
            raise self._failure(exc, "open the runtime store") from None
        finally:
            first.close()
        if key is None:
            raise StoreError(
                f"the PostgreSQL store {self._target.safe_url} has no runtime_meta row"
            )
        self._fingerprint_key = bytes(key[0])
        self._conns = _Connections(self._target.conninfo, MAX_CONNECTIONS, self._target.timeout)

    @classmethod
    def open(cls, url: str) -> PostgresRuntimeStore:
        """Open the runtime side of the store at a ``postgresql://`` URL."""
        return cls(url)

    # -- plumbing ---------------------------------------------------------------------

    def _failure(self, exc: BaseException, what: str) -> StoreError:
        if isinstance(exc, psycopg.OperationalError):
            return StoreError(
                f"the PostgreSQL store at {self._target.endpoint} is unavailable, so could "
                f"not {what}: {self._target.reason(exc)}",
                hint=f"check that PostgreSQL is running and reachable at {self._target.endpoint}",
            )
        return StoreError(
            f"the PostgreSQL store {self._target.safe_url} failed to {what}: "
            f"{self._target.reason(exc)}"
        )

    @contextmanager
    def _tx(self, what: str, *, wait: float | None = None) -> Iterator[_Conn]:
        """One transaction; with ``wait``, lock and pool timeouts raise :class:`_Busy`."""
        try:
            conn = self._conns.get(timeout=wait)
        except psycopg.Error as exc:
            raise self._failure(exc, what) from None
        if conn is None:
            if wait is not None:
                raise _Busy
            raise StoreError(
                f"timed out waiting for one of this process's {MAX_CONNECTIONS} connections "
                f"to the PostgreSQL store at {self._target.endpoint} (to {what})",
                hint="the store is slow to answer: check the server's load",
            )
        healthy = False
        try:
            with conn.transaction():
                yield conn
            healthy = True
        except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled) as exc:
            healthy = True  # the transaction was rolled back; the connection is fine
            if wait is not None:
                raise _Busy from None
            raise self._failure(exc, what) from None
        except psycopg.Error as exc:
            healthy = not isinstance(exc, psycopg.OperationalError)
            raise self._failure(exc, what) from None
        finally:
            self._conns.put(conn, healthy=healthy)

    def _locked_row(self, c: _Conn, workspace: str, provider: str) -> HealthRecord | None:
        """Serialise decisions about one provider of one workspace (until commit); its row."""
        key = int4_hash(f"{self._schema}\0{workspace}\0{provider}")
        c.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_NS_HEALTH, key))
        row = c.execute(
            f"SELECT {HEALTH_COLUMNS} FROM provider_health"  # noqa: S608
            " WHERE workspace = %s AND provider = %s",
            (workspace, provider),
        ).fetchone()
        return None if row is None else health_from_row(row, _seconds, now=time.time())

    @staticmethod
    def _put(c: _Conn, h: HealthRecord, now: float) -> None:
        c.execute(
            f"INSERT INTO provider_health ({HEALTH_COLUMNS}, checked_at)"  # noqa: S608
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (workspace, provider) DO UPDATE SET"
            " credential_fingerprint = excluded.credential_fingerprint,"
            " status = excluded.status, reason = excluded.reason,"
            " failures = excluded.failures, window_started = excluded.window_started,"
            " open_until = excluded.open_until, probe_until = excluded.probe_until,"
            " since = excluded.since, episode_id = excluded.episode_id,"
            " checked_at = excluded.checked_at",
            health_values(h, now, _ts),
        )

    @staticmethod
    def _bump(c: _Conn) -> None:
        row = c.execute(
            "UPDATE runtime_meta SET version = version + 1 WHERE id = 1 RETURNING version"
        ).fetchone()
        version = 0 if row is None else int(row[0])
        # Delivered at commit: listening resolvers reload at once instead of at the poll.
        c.execute(
            "SELECT pg_notify(%s, %s)", (CHANGES_CHANNEL, f"{RUNTIME_PAYLOAD_PREFIX}{version}")
        )

    @staticmethod
    def _close_episodes(c: _Conn, workspace: str, provider: str, now: float, reason: str) -> None:
        c.execute(
            "UPDATE failure_episodes SET closed_at = %s, close_reason = %s"
            " WHERE workspace = %s AND provider = %s AND closed_at IS NULL",
            (_ts(now), reason, workspace, provider),
        )

    def _open_episode(self, c: _Conn, f: Failure, now: float) -> int:
        # Normally nothing is open here (the transaction saw the health row); closing
        # leftovers keeps the unique "one open episode" index from refusing the insert.
        self._close_episodes(c, f.workspace, f.provider, now, "superseded")
        row = c.execute(
            "INSERT INTO failure_episodes (workspace, provider, credential_fingerprint, reason,"
            " sticky, detail, opened_at) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (f.workspace, f.provider, f.fingerprint, f.outcome, f.sticky, f.detail, _ts(now)),
        ).fetchone()
        return 0 if row is None else int(row[0])

    # -- the RuntimeStore interface ---------------------------------------------------

    @property
    def url(self) -> str:
        """The store's URL, password masked."""
        return self._target.safe_url

    def fingerprint_key(self) -> bytes:
        """The store-wide fingerprint key."""
        return self._fingerprint_key

    def versions(self) -> tuple[int, int]:
        """``(serial, runtime version)`` in one read."""
        with self._tx("read the store's versions") as c:
            row = c.execute(
                "SELECT (SELECT serial FROM store_serial), (SELECT version FROM runtime_meta)"
            ).fetchone()
        if row is None:  # pragma: no cover - both tables always hold their row
            raise StoreError(f"the PostgreSQL store {self._target.safe_url} has no serial")
        return int(row[0]), int(row[1])

    def health(self) -> list[HealthRecord]:
        """Every health record."""
        with self._tx("read provider health") as c:
            rows = c.execute(f"SELECT {HEALTH_COLUMNS} FROM provider_health").fetchall()  # noqa: S608
        return [health_from_row(r, _seconds, now=time.time()) for r in rows]

    def record_failure(
        self, failure: Failure, *, now: float, policy: BreakerPolicy
    ) -> HealthChange:
        """Count a failure and decide the provider's new health (see the protocol)."""
        with self._tx("record a failure") as c:
            h = self._locked_row(c, failure.workspace, failure.provider)
            decision = decide_failure(h, failure, now=now, policy=policy)
            return write_decision(self, c, decision, now)

    def record_success(
        self, workspace: str, provider: str, fingerprint: str, *, now: float
    ) -> HealthChange:
        """Close an open breaker for this fingerprint; sticky records stay."""
        with self._tx("record a recovery") as c:
            h = self._locked_row(c, workspace, provider)
            decision = decide_success(h, workspace, provider, fingerprint, now=now)
            return write_decision(self, c, decision, now)

    def claim_probe(
        self,
        workspace: str,
        provider: str,
        fingerprint: str,
        *,
        now: float,
        lease: float,
        wait: float | None = None,
    ) -> ProbeGrant:
        """Grant the half-open probe to exactly one caller (a refusal if busy for ``wait`` s)."""
        try:
            with self._tx("claim a probe", wait=wait) as c:
                if wait is not None:
                    # Another process deciding about this provider holds the advisory
                    # lock: give up after ``wait`` rather than hold the caller's thread.
                    ms = max(1, int(wait * 1000))
                    c.execute(f"SET LOCAL lock_timeout = {ms}")
                    c.execute(f"SET LOCAL statement_timeout = {ms * 2}")
                grant, new = decide_probe(
                    self._locked_row(c, workspace, provider), fingerprint, now=now, lease=lease
                )
                if new is not None:
                    self._put(c, new, now)
                return grant
        except _Busy:
            return ProbeGrant(False, now)

    def reset(
        self, workspace: str, provider: str, *, fingerprint: str | None, reason: str, now: float
    ) -> bool:
        """Forget a health record (if it still has ``fingerprint``) and close its episode."""
        with self._tx("reset provider health") as c:
            h = self._locked_row(c, workspace, provider)
            if not may_reset(h, fingerprint):
                return False
            row = c.execute(
                "SELECT count(*) FROM failure_episodes"
                " WHERE workspace = %s AND provider = %s AND closed_at IS NULL",
                (workspace, provider),
            ).fetchone()
            if h is None and not (row and row[0]):
                return False
            self._close_episodes(c, workspace, provider, now, reason)
            c.execute(
                "DELETE FROM provider_health WHERE workspace = %s AND provider = %s",
                (workspace, provider),
            )
            self._bump(c)
            return True

    def episodes(self, *, workspace: str | None = None, open_only: bool = True) -> list[Episode]:
        """Episodes, newest first."""
        sql, args = episodes_query(workspace=workspace, open_only=open_only, mark="%s")
        with self._tx("read failure episodes") as c:
            rows = c.execute(sql.encode(), args).fetchall()
        return episodes_from_rows(rows, _seconds)

    def pending_notifications(self, *, now: float) -> list[Episode]:
        """Open, unsent episodes that may be attempted now."""
        stamp = _ts(now)
        with self._tx("read pending e-mails") as c:
            rows = c.execute(
                f"SELECT {EPISODE_COLUMNS} FROM failure_episodes"  # noqa: S608
                " WHERE closed_at IS NULL AND notified_at IS NULL"
                " AND (notify_after IS NULL OR notify_after <= %s)"
                " AND (notify_claimed_until IS NULL OR notify_claimed_until <= %s) ORDER BY id",
                (stamp, stamp),
            ).fetchall()
        return episodes_from_rows(rows, _seconds)

    def claim_notification(self, episode_id: int, *, now: float, lease: float) -> bool:
        """Compare-and-set the send lease."""
        stamp = _ts(now)
        with self._tx("claim an e-mail") as c:
            cur = c.execute(
                "UPDATE failure_episodes SET notify_claimed_until = %s,"
                " notify_attempts = notify_attempts + 1"
                " WHERE id = %s AND closed_at IS NULL AND notified_at IS NULL"
                " AND (notify_after IS NULL OR notify_after <= %s)"
                " AND (notify_claimed_until IS NULL OR notify_claimed_until <= %s)",
                (_ts(now + lease), episode_id, stamp, stamp),
            )
            return cur.rowcount == 1

    def record_notification(
        self, episode_id: int, recipients: Sequence[str], *, now: float
    ) -> None:
        """Mark the episode's e-mail as sent, per recipient."""
        stamp = _ts(now)
        with self._tx("record a sent e-mail") as c:
            c.execute(
                "UPDATE failure_episodes SET notified_at = %s, notify_claimed_until = NULL,"
                " notify_error = NULL WHERE id = %s",
                (stamp, episode_id),
            )
            if recipients:
                c.execute(
                    "INSERT INTO notifications_sent (episode_id, recipient, sent_at)"
                    " SELECT %s, r, %s FROM unnest(%s::text[]) AS r ON CONFLICT DO NOTHING",
                    (episode_id, stamp, list(recipients)),
                )

    def record_notification_failure(
        self, episode_id: int, error: str, *, now: float, retry_at: float
    ) -> None:
        """Release the claim and schedule the next attempt."""
        with self._tx("record a failed e-mail") as c:
            c.execute(
                "UPDATE failure_episodes SET notify_claimed_until = NULL, notify_after = %s,"
                " notify_error = %s WHERE id = %s",
                (_ts(retry_at), error[:500], episode_id),
            )

    def append_credits(self, entries: Sequence[CreditEntry]) -> None:
        """Append ledger entries (one statement)."""
        if not entries:
            return
        columns = [
            [e.workspace for e in entries],
            [e.feature for e in entries],
            [e.route for e in entries],
            [e.actions for e in entries],
            [e.credits for e in entries],
            [_ts(e.at) for e in entries],
        ]
        with self._tx("write the credit ledger") as c:
            c.execute(
                "INSERT INTO credit_ledger (workspace, feature, route, actions, credits, at)"
                " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::int[],"
                " %s::int[], %s::timestamptz[])",
                columns,
            )

    def credit_usage(
        self,
        *,
        workspace: str | None = None,
        since: float | None = None,
        until: float | None = None,
        period: Period | None = None,
    ) -> list[CreditUsage]:
        """Sum the ledger."""
        # Periods are UTC days and months, as on SQLite (whose timestamps are UTC text).
        bucket = (
            f"to_char(at AT TIME ZONE 'UTC', '{_PERIOD_FORMATS[period]}')" if period else "NULL"
        )
        sql, args = credit_usage_query(
            bucket=bucket,
            workspace=workspace,
            since=None if since is None else _ts(since),
            until=None if until is None else _ts(until),
            mark="%s",
        )
        with self._tx("sum the credit ledger") as c:
            rows = c.execute(sql.encode(), args).fetchall()
        return credit_usage_rows(rows)

    def listen(self) -> PostgresChangeFeed:
        """A feed that wakes up when this store announces a change (its own connection)."""
        return PostgresChangeFeed(self._target)

    def close(self) -> None:
        """Close the connections."""
        self._conns.close()

    def __enter__(self) -> PostgresRuntimeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostgresRuntimeStore({self._target.safe_url!r})"


class PostgresChangeFeed:
    """``LISTEN byok_changes`` on a dedicated connection (never one from the pool).

    One thread calls :meth:`wait`; any thread may call :meth:`interrupt`,
    :meth:`reconnect` and :meth:`close`. A lost connection is re-established with
    exponential backoff (0.1 s doubling to 5 s, jittered) from inside :meth:`wait`; the
    first wait after a reconnection returns ``True`` because notifications sent while
    disconnected are lost. TCP keepalives find a silently dead peer in about 20 s.
    """

    def __init__(self, target: Target) -> None:
        self._target = target
        self._conninfo = make_conninfo(
            target.conninfo,
            application_name="byokctl-listen",
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=5,
            keepalives_count=3,
        )
        self._conn: _Conn | None = None
        self._mutex = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._backoff = FEED_BACKOFF_MIN_S
        self._next_attempt = 0.0
        self._missed = False
        self._closed = False
        self._drop_requested = False
        self._connect()

    @property
    def connected(self) -> bool:
        """Whether the ``LISTEN`` connection is up now."""
        conn = self._conn
        return conn is not None and not conn.closed

    def _connect(self) -> bool:
        try:
            conn: _Conn = psycopg.connect(self._conninfo, autocommit=True)
            conn.execute(f"LISTEN {CHANGES_CHANNEL}")
        except psycopg.Error as exc:
            delay = self._backoff * (0.5 + random.random())  # noqa: S311 - jitter only
            self._next_attempt = time.monotonic() + delay
            self._backoff = min(self._backoff * 2, FEED_BACKOFF_MAX_S)
            _log.debug("change feed: cannot LISTEN at %s: %s", self._target.endpoint,
                       self._target.reason(exc))  # fmt: skip
            return False
        with self._mutex:
            if self._closed:
                conn.close()
                return False
            self._conn = conn
        self._backoff = FEED_BACKOFF_MIN_S
        return True

    def _drop(self) -> None:
        with self._mutex:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        self._missed = True

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s; ``True`` when a change was announced (or may have been missed).

        Never raises for a lost connection: it reconnects (with backoff) and reports
        ``True`` once it is back, so the caller re-reads the store.
        """
        deadline = time.monotonic() + timeout
        if self._drop_requested:
            self._drop_requested = False
            self._drop()
            self._next_attempt = 0.0
        due = self._conn is None and not self._closed and time.monotonic() >= self._next_attempt
        if due and self._connect():
            _log.info("change feed: listening again at %s", self._target.endpoint)
        conn = self._conn
        if conn is None:
            # Disconnected: sleep until the next attempt (or the deadline) unless woken.
            pause = max(0.0, min(deadline, self._next_attempt) - time.monotonic())
            self._sleep(pause)
            return False
        if self._missed:
            self._missed = False
            return True
        try:
            if self._drain(conn):
                return True
            remaining = max(0.0, deadline - time.monotonic())
            wake = self._wake_r.fileno()
            ready, _, _ = select.select([conn.fileno(), wake], [], [], remaining)
            if wake in ready:
                self._clear_wake()
            if conn.fileno() in ready:
                # Readable: notifications, or the end of the connection (which raises).
                return self._drain(conn)
            return False
        except (psycopg.Error, OSError, ValueError) as exc:
            if self._closed:
                return False
            _log.info(
                "change feed: lost the LISTEN connection to %s (%s); polling until it is back",
                self._target.endpoint,
                self._target.reason(exc),
            )
            self._drop()
            self._next_attempt = time.monotonic() + FEED_BACKOFF_MIN_S
            return False

    @staticmethod
    def _drain(conn: _Conn) -> bool:
        return any(True for _ in conn.notifies(timeout=0))

    def _sleep(self, seconds: float) -> None:
        ready, _, _ = select.select([self._wake_r], [], [], seconds)
        if ready:
            self._clear_wake()

    def _clear_wake(self) -> None:
        try:
            while self._wake_r.recv(512):
                pass
        except (BlockingIOError, OSError):
            pass

    def interrupt(self) -> None:
        """Make a :meth:`wait` in progress return now."""
        with suppress(OSError):
            self._wake_w.send(b"x")

    def reconnect(self) -> None:
        """Re-establish the connection at the next wait (e.g. after an outage of the store).

        A connection that survived a network partition may be silently dead; this
        replaces it without waiting for keepalives.
        """
        self._drop_requested = True
        self.interrupt()

    def close(self) -> None:
        """Close the connection (a waiting thread should be stopped first)."""
        with self._mutex:
            self._closed = True
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        self._wake_r.close()
        self._wake_w.close()

    def __repr__(self) -> str:
        return f"PostgresChangeFeed({self._target.safe_url!r}, connected={self.connected})"
