"""The SQLite implementation of :class:`~byokctl.store._runtime.RuntimeStore`.

It opens its own connection to the configuration store's file (the schema, migration 3
and up, is created by :func:`byokctl.store.open_store`). Each decision is one
``BEGIN IMMEDIATE`` transaction: SQLite serializes writers across threads and
processes, so "read the health row, decide, write" cannot interleave. The connection
uses ``synchronous = NORMAL``: in WAL mode that survives a process crash, and runtime
data does not need the configuration's power-loss guarantee.

Timestamps are ISO 8601 text with a fixed format (UTC, microseconds), so that they
compare correctly as strings in SQL.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

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
from ._sqlite import BUSY_TIMEOUT_S, SCHEME, path_from_url, sqlite_transaction

_PERIOD_CHARS: Final[dict[str, int]] = {"day": 10, "month": 7}
#: SQLite's primary result codes for "another connection holds the lock".
_SQLITE_BUSY: Final = 5
_SQLITE_LOCKED: Final = 6


def _ts(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="microseconds")


def _seconds(s: Any) -> float:
    return datetime.fromisoformat(str(s)).timestamp()


class SQLiteRuntimeStore:
    """Runtime state in the SQLite store file. Safe to share between threads."""

    def __init__(self, path: Path, *, busy_timeout: float = BUSY_TIMEOUT_S) -> None:
        self._path = path
        self._mutex = threading.Lock()
        self._busy_ms = int(busy_timeout * 1000)
        if not path.exists():
            raise StoreError(
                f"the store {path} does not exist",
                hint="open it once with byokctl (any command) or byokctl.store.open_store",
            )
        try:
            self._conn = sqlite3.connect(
                path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            row = self._conn.execute("SELECT fingerprint_key FROM runtime_meta").fetchone()
        except sqlite3.Error as exc:
            if hasattr(self, "_conn"):
                self._conn.close()
            raise StoreError(
                f"the store {path} has no runtime tables: {exc}",
                hint="open it with this byokctl version first so that its migrations run",
            ) from exc
        self._fingerprint_key = bytes(row[0])

    @classmethod
    def open(cls, url: str) -> SQLiteRuntimeStore:
        """Open the runtime side of the store at a ``sqlite:///`` URL."""
        return cls(path_from_url(url))

    def _tx(self, mode: str = "IMMEDIATE") -> AbstractContextManager[sqlite3.Connection]:
        return sqlite_transaction(self._conn, self._mutex, self._path, mode)

    # -- helpers inside a transaction -------------------------------------------------

    @staticmethod
    def _row(c: sqlite3.Connection, workspace: str, provider: str) -> HealthRecord | None:
        row = c.execute(
            f"SELECT {HEALTH_COLUMNS} FROM provider_health WHERE workspace = ? AND provider = ?",  # noqa: S608
            (workspace, provider),
        ).fetchone()
        return None if row is None else health_from_row(row, _seconds, now=time.time())

    @staticmethod
    def _put(c: sqlite3.Connection, h: HealthRecord, now: float) -> None:
        c.execute(
            f"INSERT OR REPLACE INTO provider_health ({HEALTH_COLUMNS}, checked_at)"  # noqa: S608
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            health_values(h, now, _ts),
        )

    @staticmethod
    def _bump(c: sqlite3.Connection) -> None:
        c.execute("UPDATE runtime_meta SET version = version + 1 WHERE id = 1")

    @staticmethod
    def _close_episodes(
        c: sqlite3.Connection, workspace: str, provider: str, now: float, reason: str
    ) -> None:
        c.execute(
            "UPDATE failure_episodes SET closed_at = ?, close_reason = ?"
            " WHERE workspace = ? AND provider = ? AND closed_at IS NULL",
            (_ts(now), reason, workspace, provider),
        )

    def _open_episode(self, c: sqlite3.Connection, f: Failure, now: float) -> int:
        # Normally nothing is open here (the transaction saw the health row); closing
        # leftovers keeps the unique "one open episode" index from refusing the insert.
        self._close_episodes(c, f.workspace, f.provider, now, "superseded")
        cur = c.execute(
            "INSERT INTO failure_episodes (workspace, provider, credential_fingerprint, reason,"
            " sticky, detail, opened_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (f.workspace, f.provider, f.fingerprint, f.outcome, int(f.sticky), f.detail, _ts(now)),
        )
        return int(cur.lastrowid or 0)

    # -- the RuntimeStore interface ---------------------------------------------------

    @property
    def url(self) -> str:
        """The store's URL."""
        return f"{SCHEME}:///{self._path}"

    def fingerprint_key(self) -> bytes:
        """The store-wide fingerprint key."""
        return self._fingerprint_key

    def versions(self) -> tuple[int, int]:
        """``(serial, runtime version)``."""
        with self._mutex:
            try:
                row = self._conn.execute(
                    "SELECT (SELECT serial FROM store_serial), (SELECT version FROM runtime_meta)"
                ).fetchone()
            except sqlite3.Error as exc:
                raise StoreError(f"the store {self._path} failed: {exc}") from exc
        return int(row[0]), int(row[1])

    def health(self) -> list[HealthRecord]:
        """Every health record."""
        with self._tx("DEFERRED") as c:
            rows = c.execute(f"SELECT {HEALTH_COLUMNS} FROM provider_health").fetchall()  # noqa: S608
        return [health_from_row(r, _seconds, now=time.time()) for r in rows]

    def record_failure(
        self, failure: Failure, *, now: float, policy: BreakerPolicy
    ) -> HealthChange:
        """Count a failure and decide the provider's new health (see the protocol)."""
        with self._tx() as c:
            h = self._row(c, failure.workspace, failure.provider)
            decision = decide_failure(h, failure, now=now, policy=policy)
            return write_decision(self, c, decision, now)

    def record_success(
        self, workspace: str, provider: str, fingerprint: str, *, now: float
    ) -> HealthChange:
        """Close an open breaker for this fingerprint; sticky records stay."""
        with self._tx() as c:
            h = self._row(c, workspace, provider)
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
        if wait is None:
            with self._tx() as c:
                return self._claim(c, workspace, provider, fingerprint, now=now, lease=lease)
        # Bounded: another thread of this process (the mutex) and another process (the
        # busy timeout, lowered for this one transaction) may each delay it ``wait`` s.
        if not self._mutex.acquire(timeout=wait):
            return ProbeGrant(False, now)
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {max(1, int(wait * 1000))}")
            try:
                with sqlite_transaction(self._conn, nullcontext(), self._path, "IMMEDIATE") as c:
                    return self._claim(c, workspace, provider, fingerprint, now=now, lease=lease)
            except StoreError as exc:
                code = getattr(exc.__cause__, "sqlite_errorcode", 0) & 0xFF
                if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
                    return ProbeGrant(False, now)
                raise
            finally:
                self._conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
        except sqlite3.Error as exc:
            raise StoreError(f"the store {self._path} failed: {exc}") from exc
        finally:
            self._mutex.release()

    def _claim(
        self,
        c: sqlite3.Connection,
        workspace: str,
        provider: str,
        fingerprint: str,
        *,
        now: float,
        lease: float,
    ) -> ProbeGrant:
        grant, new = decide_probe(
            self._row(c, workspace, provider), fingerprint, now=now, lease=lease
        )
        if new is not None:
            self._put(c, new, now)
        return grant

    def reset(
        self, workspace: str, provider: str, *, fingerprint: str | None, reason: str, now: float
    ) -> bool:
        """Forget a health record (if it still has ``fingerprint``) and close its episode."""
        with self._tx() as c:
            h = self._row(c, workspace, provider)
            if not may_reset(h, fingerprint):
                return False
            open_count = c.execute(
                "SELECT count(*) FROM failure_episodes"
                " WHERE workspace = ? AND provider = ? AND closed_at IS NULL",
                (workspace, provider),
            ).fetchone()[0]
            if h is None and not open_count:
                return False
            self._close_episodes(c, workspace, provider, now, reason)
            c.execute(
                "DELETE FROM provider_health WHERE workspace = ? AND provider = ?",
                (workspace, provider),
            )
            self._bump(c)
            return True

    def episodes(self, *, workspace: str | None = None, open_only: bool = True) -> list[Episode]:
        """Episodes, newest first."""
        sql, args = episodes_query(workspace=workspace, open_only=open_only, mark="?")
        with self._tx("DEFERRED") as c:
            rows = c.execute(sql, args).fetchall()
        return episodes_from_rows(rows, _seconds)

    def pending_notifications(self, *, now: float) -> list[Episode]:
        """Open, unsent episodes that may be attempted now."""
        stamp = _ts(now)
        with self._tx("DEFERRED") as c:
            rows = c.execute(
                f"SELECT {EPISODE_COLUMNS} FROM failure_episodes"  # noqa: S608
                " WHERE closed_at IS NULL AND notified_at IS NULL"
                " AND (notify_after IS NULL OR notify_after <= ?)"
                " AND (notify_claimed_until IS NULL OR notify_claimed_until <= ?) ORDER BY id",
                (stamp, stamp),
            ).fetchall()
        return episodes_from_rows(rows, _seconds)

    def claim_notification(self, episode_id: int, *, now: float, lease: float) -> bool:
        """Compare-and-set the send lease."""
        stamp = _ts(now)
        with self._tx() as c:
            cur = c.execute(
                "UPDATE failure_episodes SET notify_claimed_until = ?,"
                " notify_attempts = notify_attempts + 1"
                " WHERE id = ? AND closed_at IS NULL AND notified_at IS NULL"
                " AND (notify_after IS NULL OR notify_after <= ?)"
                " AND (notify_claimed_until IS NULL OR notify_claimed_until <= ?)",
                (_ts(now + lease), episode_id, stamp, stamp),
            )
            return cur.rowcount == 1

    def record_notification(
        self, episode_id: int, recipients: Sequence[str], *, now: float
    ) -> None:
        """Mark the episode's e-mail as sent, per recipient."""
        stamp = _ts(now)
        with self._tx() as c:
            c.execute(
                "UPDATE failure_episodes SET notified_at = ?, notify_claimed_until = NULL,"
                " notify_error = NULL WHERE id = ?",
                (stamp, episode_id),
            )
            c.executemany(
                "INSERT OR IGNORE INTO notifications_sent (episode_id, recipient, sent_at)"
                " VALUES (?, ?, ?)",
                [(episode_id, r, stamp) for r in recipients],
            )

    def record_notification_failure(
        self, episode_id: int, error: str, *, now: float, retry_at: float
    ) -> None:
        """Release the claim and schedule the next attempt."""
        with self._tx() as c:
            c.execute(
                "UPDATE failure_episodes SET notify_claimed_until = NULL, notify_after = ?,"
                " notify_error = ? WHERE id = ?",
                (_ts(retry_at), error[:500], episode_id),
            )

    def append_credits(self, entries: Sequence[CreditEntry]) -> None:
        """Append ledger entries."""
        if not entries:
            return
        with self._tx() as c:
            c.executemany(
                "INSERT INTO credit_ledger (workspace, feature, route, actions, credits, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (e.workspace, e.feature, e.route, e.actions, e.credits, _ts(e.at))
                    for e in entries
                ],
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
        sql, args = credit_usage_query(
            bucket=f"substr(at, 1, {_PERIOD_CHARS[period]})" if period else "NULL",
            workspace=workspace,
            since=None if since is None else _ts(since),
            until=None if until is None else _ts(until),
            mark="?",
        )
        with self._tx("DEFERRED") as c:
            rows = c.execute(sql, args).fetchall()
        return credit_usage_rows(rows)

    def close(self) -> None:
        """Close the connection."""
        with self._mutex:
            self._conn.close()

    def __enter__(self) -> SQLiteRuntimeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteRuntimeStore({str(self._path)!r})"
