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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from byokctl.errors import StoreError

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
)
from ._sqlite import BUSY_TIMEOUT_S, SCHEME, path_from_url

_HEALTH_COLUMNS: Final = (
    "workspace, provider, credential_fingerprint, status, reason, failures,"
    " window_started, open_until, probe_until, since, episode_id"
)
_EPISODE_COLUMNS: Final = (
    "id, workspace, provider, credential_fingerprint, reason, sticky, detail, opened_at,"
    " closed_at, close_reason, notified_at, notify_attempts, notify_error"
)
_STATUSES: Final[dict[str, HealthStatus]] = {"ok": "ok", "open": "open", "sticky": "sticky"}
_PERIOD_CHARS: Final[dict[str, int]] = {"day": 10, "month": 7}


def _ts(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="microseconds")


def _ts_or_none(t: float | None) -> str | None:
    return None if t is None else _ts(t)


def _tf(s: str | None) -> float | None:
    return None if s is None else datetime.fromisoformat(s).timestamp()


def _tf_req(s: str) -> float:
    return datetime.fromisoformat(s).timestamp()


def _health(row: tuple[object, ...]) -> HealthRecord:
    ws, prov, fp, status, reason, failures, window, open_until, probe, since, ep = row
    return HealthRecord(
        workspace=str(ws),
        provider=str(prov),
        fingerprint=str(fp),
        status=_STATUSES.get(str(status), "ok"),
        outcome=None if reason is None else str(reason),
        failures=int(str(failures)),
        window_started=_tf(None if window is None else str(window)),
        open_until=_tf(None if open_until is None else str(open_until)),
        probe_until=_tf(None if probe is None else str(probe)),
        since=_tf_req(str(since)),
        episode_id=None if ep is None else int(str(ep)),
    )


def _episode(row: tuple[object, ...]) -> Episode:
    (eid, ws, prov, fp, reason, sticky, detail, opened, closed, close_reason, notified,
     attempts, error) = row  # fmt: skip
    return Episode(
        id=int(str(eid)),
        workspace=str(ws),
        provider=str(prov),
        fingerprint=str(fp),
        outcome=str(reason),
        sticky=bool(sticky),
        detail="" if detail is None else str(detail),
        opened_at=_tf_req(str(opened)),
        closed_at=_tf(None if closed is None else str(closed)),
        close_reason=None if close_reason is None else str(close_reason),
        notified_at=_tf(None if notified is None else str(notified)),
        notify_attempts=int(str(attempts)),
        notify_error=None if error is None else str(error),
    )


class SQLiteRuntimeStore:
    """Runtime state in the SQLite store file. Safe to share between threads."""

    def __init__(self, path: Path, *, busy_timeout: float = BUSY_TIMEOUT_S) -> None:
        self._path = path
        self._mutex = threading.Lock()
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

    @contextmanager
    def _tx(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        with self._mutex:
            try:
                self._conn.execute(f"BEGIN {mode}")
            except sqlite3.Error as exc:
                raise StoreError(f"the store {self._path} is unavailable: {exc}") from exc
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"the store {self._path} failed: {exc}") from exc
                raise

    # -- helpers inside a transaction -------------------------------------------------

    @staticmethod
    def _row(c: sqlite3.Connection, workspace: str, provider: str) -> HealthRecord | None:
        row = c.execute(
            f"SELECT {_HEALTH_COLUMNS} FROM provider_health WHERE workspace = ? AND provider = ?",  # noqa: S608
            (workspace, provider),
        ).fetchone()
        return None if row is None else _health(row)

    @staticmethod
    def _put(c: sqlite3.Connection, h: HealthRecord, now: float) -> None:
        c.execute(
            f"INSERT OR REPLACE INTO provider_health ({_HEALTH_COLUMNS}, checked_at)"  # noqa: S608
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                h.workspace,
                h.provider,
                h.fingerprint,
                h.status,
                h.outcome,
                h.failures,
                _ts_or_none(h.window_started),
                _ts_or_none(h.open_until),
                _ts_or_none(h.probe_until),
                _ts(h.since),
                h.episode_id,
                _ts(now),
            ),
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
            rows = c.execute(f"SELECT {_HEALTH_COLUMNS} FROM provider_health").fetchall()  # noqa: S608
        return [_health(r) for r in rows]

    def record_failure(
        self, failure: Failure, *, now: float, policy: BreakerPolicy
    ) -> HealthChange:
        """Count a failure and decide the provider's new health (see the protocol)."""
        f = failure
        with self._tx() as c:
            h = self._row(c, f.workspace, f.provider)
            replaced = False
            if h is not None and h.fingerprint != f.fingerprint:
                self._close_episodes(c, f.workspace, f.provider, now, "credentials_changed")
                h, replaced = None, True
            if h is not None and h.status == "sticky":
                return HealthChange(h, changed=False)
            failures = 1 if h is None else h.failures + 1
            if f.sticky:
                # A transient episode in progress ends here; the sticky one needs new
                # credentials, which is a different message to the admins.
                self._close_episodes(c, f.workspace, f.provider, now, "escalated")
                episode = self._open_episode(c, f, now)
                new = HealthRecord(
                    f.workspace, f.provider, f.fingerprint, "sticky", f.outcome, failures,
                    None, None, None, now, episode,
                )  # fmt: skip
                self._put(c, new, now)
                self._bump(c)
                return HealthChange(new, changed=True, episode_opened=episode)
            cooldown = max(policy.cooldown, f.retry_after or 0.0)
            if h is not None and h.status == "open":
                if not f.probe:
                    # A request that was in flight when the breaker opened: counted, but
                    # it must not extend the cooldown.
                    new = replace(h, failures=failures, outcome=f.outcome)
                    self._put(c, new, now)
                    return HealthChange(new, changed=False)
                new = replace(
                    h, failures=failures, outcome=f.outcome, open_until=now + cooldown,
                    probe_until=None,
                )  # fmt: skip
                self._put(c, new, now)
                self._bump(c)
                return HealthChange(new, changed=True)
            fresh = h is None or h.window_started is None or now - h.window_started >= policy.window
            count = 1 if fresh or h is None else h.failures + 1
            window_started = now if fresh or h is None else h.window_started
            if count < policy.threshold:
                new = HealthRecord(
                    f.workspace, f.provider, f.fingerprint, "ok", f.outcome, count,
                    window_started, None, None, now if h is None else h.since, None,
                )  # fmt: skip
                self._put(c, new, now)
                if replaced:
                    self._bump(c)
                return HealthChange(new, changed=replaced)
            episode = self._open_episode(c, f, now)
            new = HealthRecord(
                f.workspace, f.provider, f.fingerprint, "open", f.outcome, count,
                window_started, now + cooldown, None, now, episode,
            )  # fmt: skip
            self._put(c, new, now)
            self._bump(c)
            return HealthChange(new, changed=True, episode_opened=episode)

    def record_success(
        self, workspace: str, provider: str, fingerprint: str, *, now: float
    ) -> HealthChange:
        """Close an open breaker for this fingerprint; sticky records stay."""
        with self._tx() as c:
            h = self._row(c, workspace, provider)
            if h is None or h.fingerprint != fingerprint or h.status != "open":
                return HealthChange(h, changed=False)
            self._close_episodes(c, workspace, provider, now, "recovered")
            new = HealthRecord(
                workspace, provider, fingerprint, "ok", None, 0, None, None, None, now, None
            )
            self._put(c, new, now)
            self._bump(c)
            return HealthChange(new, changed=True)

    def claim_probe(
        self, workspace: str, provider: str, fingerprint: str, *, now: float, lease: float
    ) -> ProbeGrant:
        """Grant the half-open probe to exactly one caller."""
        with self._tx() as c:
            h = self._row(c, workspace, provider)
            if h is None or h.fingerprint != fingerprint or h.status != "open":
                # The caller's view is stale; its next refresh brings the truth.
                return ProbeGrant(False, now)
            if h.open_until is not None and h.open_until > now:
                return ProbeGrant(False, h.open_until)
            if h.probe_until is not None and h.probe_until > now:
                return ProbeGrant(False, h.probe_until)
            self._put(c, replace(h, probe_until=now + lease), now)
            return ProbeGrant(True, now + lease)

    def reset(
        self, workspace: str, provider: str, *, fingerprint: str | None, reason: str, now: float
    ) -> bool:
        """Forget a health record (if it still has ``fingerprint``) and close its episode."""
        with self._tx() as c:
            h = self._row(c, workspace, provider)
            if h is not None and fingerprint is not None and h.fingerprint != fingerprint:
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
        where, args = [], []
        if workspace is not None:
            where.append("workspace = ?")
            args.append(workspace)
        if open_only:
            where.append("closed_at IS NULL")
        sql = f"SELECT {_EPISODE_COLUMNS} FROM failure_episodes"  # noqa: S608
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._tx("DEFERRED") as c:
            rows = c.execute(sql + " ORDER BY id DESC", args).fetchall()
        return [_episode(r) for r in rows]

    def pending_notifications(self, *, now: float) -> list[Episode]:
        """Open, unsent episodes that may be attempted now."""
        stamp = _ts(now)
        with self._tx("DEFERRED") as c:
            rows = c.execute(
                f"SELECT {_EPISODE_COLUMNS} FROM failure_episodes"  # noqa: S608
                " WHERE closed_at IS NULL AND notified_at IS NULL"
                " AND (notify_after IS NULL OR notify_after <= ?)"
                " AND (notify_claimed_until IS NULL OR notify_claimed_until <= ?) ORDER BY id",
                (stamp, stamp),
            ).fetchall()
        return [_episode(r) for r in rows]

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
        where: list[str] = []
        args: list[object] = []
        if workspace is not None:
            where.append("workspace = ?")
            args.append(workspace)
        if since is not None:
            where.append("at >= ?")
            args.append(_ts(since))
        if until is not None:
            where.append("at < ?")
            args.append(_ts(until))
        bucket = f"substr(at, 1, {_PERIOD_CHARS[period]})" if period else "NULL"
        sql = (
            f"SELECT workspace, feature, route, sum(actions), sum(credits), {bucket} AS period"  # noqa: S608
            " FROM credit_ledger"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " GROUP BY workspace, feature, route, period"
            # A refunded attempt (a failure served by Neo) nets to zero: not usage.
            " HAVING sum(actions) != 0 OR sum(credits) != 0"
            " ORDER BY period, workspace, feature, route"
        )
        with self._tx("DEFERRED") as c:
            rows = c.execute(sql, args).fetchall()
        return [
            CreditUsage(str(w), str(f), str(r), int(a), int(cr), None if p is None else str(p))
            for w, f, r, a, cr, p in rows
        ]

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
