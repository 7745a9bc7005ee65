"""The runtime state (health, episodes, notifications, credits): one :class:`RuntimeStore`.

A :class:`RuntimeState` is a view onto the same shared :class:`~._database.Database` as
the live state's views, so a resolver holds one set of connections per database. The
decisions are made by the pure functions of :mod:`._health`; here each one is read,
decided and written in one transaction, in SQL both dialects agree on:

- **One decision, one transaction.** ``record_failure``, ``record_success``,
  ``claim_probe`` and ``reset`` read a provider's health row, decide and write. Two
  processes must not interleave there, and the row may not exist yet (so ``FOR UPDATE``
  would have nothing to lock): :meth:`Database.serialize` holds them apart (PostgreSQL:
  a transaction-level advisory lock on ``(schema, workspace, provider)``, so other
  providers are not held up; SQLite: its one writer already runs alone). The unique
  index on open episodes stays the last arbiter.
- **Compare-and-set claims.** ``claim_notification`` is one ``UPDATE ... WHERE`` the
  lease is free: a second claimer re-checks the condition against the committed row and
  updates nothing. ``claim_low_balance`` is one ``INSERT ... ON CONFLICT DO NOTHING``
  (:mod:`._low_balance`): a second claimer's insert finds the first one's row.
- **Announced route changes.** The write that bumps the runtime version announces
  ``'runtime:<version>'`` (PostgreSQL: ``NOTIFY byok_changes``, where the live state
  sends ``'<serial>'``), delivered at commit and never for a rollback;
  :class:`ListeningRuntimeState` hands out the feed that hears it.

Runtime writes are not ``durable`` (SQLite: ``synchronous = NORMAL``, which survives a
process crash in WAL mode; runtime data does not need the configuration's power-loss
guarantee). The caller's clock is used, never the server's, so an injected clock means
the same on both backends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Final

from byokctl.errors import StoreError

from . import _low_balance
from ._database import (
    Busy,
    Database,
    Tx,
    seconds,
    stamp,
)
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
    ChangeFeed,
    CreditEntry,
    CreditUsage,
    Episode,
    Failure,
    HealthChange,
    HealthRecord,
    Period,
    ProbeGrant,
)

#: The payload prefix of a runtime change announcement.
RUNTIME_PAYLOAD_PREFIX: Final = "runtime:"

_PUT_HEALTH: Final = (
    f"INSERT INTO provider_health ({HEALTH_COLUMNS}, checked_at)"  # noqa: S608
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (workspace, provider) DO UPDATE SET"
    " credential_fingerprint = excluded.credential_fingerprint,"
    " status = excluded.status, reason = excluded.reason,"
    " failures = excluded.failures, window_started = excluded.window_started,"
    " open_until = excluded.open_until, probe_until = excluded.probe_until,"
    " since = excluded.since, episode_id = excluded.episode_id,"
    " checked_at = excluded.checked_at"
)
_PENDING: Final = (
    f"SELECT {EPISODE_COLUMNS} FROM failure_episodes"  # noqa: S608
    " WHERE closed_at IS NULL AND notified_at IS NULL"
    " AND (notify_after IS NULL OR notify_after <= ?)"
    " AND (notify_claimed_until IS NULL OR notify_claimed_until <= ?) ORDER BY id"
)


class RuntimeState:
    """A :class:`~byokctl.store.runtime.RuntimeStore` on a shared database. Thread-safe."""

    def __init__(
        self, db: Database, *, url: str, fingerprint_key: bytes, release: Callable[[], None]
    ) -> None:
        self._db = db
        self._url = url
        self._fingerprint_key = fingerprint_key
        self._release = release
        self._mutex = threading.Lock()
        self._closed = False

    def _tx(
        self, what: str, *, write: bool = True, wait: float | None = None
    ) -> AbstractContextManager[Tx]:
        if self._closed:
            raise StoreError(f"the store {self._url} is closed")
        return self._db.transaction(what, write=write, durable=False, wait=wait)

    # -- the writes of a decision (:class:`._health.HealthWriter`) ----------------------

    def _row(self, tx: Tx, workspace: str, provider: str) -> HealthRecord | None:
        """Serialise decisions about one provider of one workspace (until commit); its row."""
        self._db.serialize(tx, f"{workspace}\0{provider}")
        row = tx.one(
            f"SELECT {HEALTH_COLUMNS} FROM provider_health WHERE workspace = ? AND provider = ?",  # noqa: S608
            (workspace, provider),
        )
        return None if row is None else health_from_row(row, seconds, now=time.time())

    def _put(self, tx: Tx, h: HealthRecord, now: float) -> None:
        tx.execute(_PUT_HEALTH, health_values(h, now, stamp))

    def _bump(self, tx: Tx) -> None:
        tx.execute("UPDATE runtime_meta SET version = version + 1 WHERE id = 1")
        version = int(tx.value("SELECT version FROM runtime_meta"))
        # Delivered at commit: listening resolvers reload at once instead of at the poll.
        self._db.announce(tx, f"{RUNTIME_PAYLOAD_PREFIX}{version}")

    def _close_episodes(
        self, tx: Tx, workspace: str, provider: str, now: float, reason: str
    ) -> None:
        tx.execute(
            "UPDATE failure_episodes SET closed_at = ?, close_reason = ?"
            " WHERE workspace = ? AND provider = ? AND closed_at IS NULL",
            (stamp(now), reason, workspace, provider),
        )

    def _open_episode(self, tx: Tx, f: Failure, now: float) -> int:
        # Normally nothing is open here (the transaction saw the health row); closing
        # leftovers keeps the unique "one open episode" index from refusing the insert.
        self._close_episodes(tx, f.workspace, f.provider, now, "superseded")
        return self._db.insert_id(
            tx,
            "INSERT INTO failure_episodes (workspace, provider, credential_fingerprint, reason,"
            " sticky, detail, opened_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (f.workspace, f.provider, f.fingerprint, f.outcome, f.sticky, f.detail, stamp(now)),
        )

    # -- the RuntimeStore interface ---------------------------------------------------

    @property
    def url(self) -> str:
        """The store's URL, without credentials."""
        return self._url

    def fingerprint_key(self) -> bytes:
        """The store-wide fingerprint key."""
        return self._fingerprint_key

    def versions(self) -> tuple[int, int]:
        """``(serial, runtime version)`` in one read."""
        with self._tx("read the store's versions", write=False) as tx:
            row = tx.one(
                "SELECT (SELECT serial FROM store_serial), (SELECT version FROM runtime_meta)"
            )
        if row is None:  # pragma: no cover - both tables always hold their row
            raise StoreError(f"the store {self._db.name} has no serial")
        return int(row[0]), int(row[1])

    def health(self) -> list[HealthRecord]:
        """Every health record."""
        with self._tx("read provider health", write=False) as tx:
            rows = tx.all(f"SELECT {HEALTH_COLUMNS} FROM provider_health")  # noqa: S608
        return [health_from_row(r, seconds, now=time.time()) for r in rows]

    def record_failure(
        self, failure: Failure, *, now: float, policy: BreakerPolicy
    ) -> HealthChange:
        """Count a failure and decide the provider's new health (see the protocol)."""
        with self._tx("record a failure") as tx:
            h = self._row(tx, failure.workspace, failure.provider)
            return write_decision(self, tx, decide_failure(h, failure, now=now, policy=policy), now)

    def record_success(
        self,
        workspace: str,
        provider: str,
        fingerprint: str,
        *,
        now: float,
        recover_sticky: bool = False,
    ) -> HealthChange:
        """Close an open breaker for this fingerprint; sticky records only if ``recover_sticky``."""
        with self._tx("record a recovery") as tx:
            h = self._row(tx, workspace, provider)
            decision = decide_success(
                h, workspace, provider, fingerprint, now=now, recover_sticky=recover_sticky
            )
            return write_decision(self, tx, decision, now)

    def claim_probe(
        self,
        workspace: str,
        provider: str,
        fingerprint: str,
        *,
        now: float,
        lease: float,
        wait: float | None = None,
        sticky_after: float | None = None,
    ) -> ProbeGrant:
        """Grant the half-open probe to exactly one caller (a refusal if busy for ``wait`` s)."""
        try:
            with self._tx("claim a probe", wait=wait) as tx:
                grant, new = decide_probe(
                    self._row(tx, workspace, provider),
                    fingerprint,
                    now=now,
                    lease=lease,
                    sticky_after=sticky_after,
                )
                if new is not None:
                    self._put(tx, new, now)
                return grant
        except Busy:
            return ProbeGrant(False, now)

    def reset(
        self, workspace: str, provider: str, *, fingerprint: str | None, reason: str, now: float
    ) -> bool:
        """Forget a health record (if it still has ``fingerprint``) and close its episode."""
        with self._tx("reset provider health") as tx:
            h = self._row(tx, workspace, provider)
            if not may_reset(h, fingerprint):
                return False
            open_count = tx.value(
                "SELECT count(*) FROM failure_episodes"
                " WHERE workspace = ? AND provider = ? AND closed_at IS NULL",
                (workspace, provider),
            )
            if h is None and not open_count:
                return False
            self._close_episodes(tx, workspace, provider, now, reason)
            tx.execute(
                "DELETE FROM provider_health WHERE workspace = ? AND provider = ?",
                (workspace, provider),
            )
            self._bump(tx)
            return True

    def episodes(self, *, workspace: str | None = None, open_only: bool = True) -> list[Episode]:
        """Episodes, newest first."""
        sql, args = episodes_query(workspace=workspace, open_only=open_only, mark="?")
        with self._tx("read failure episodes", write=False) as tx:
            rows = tx.all(sql, args)
        return episodes_from_rows(rows, seconds)

    def pending_notifications(self, *, now: float) -> list[Episode]:
        """Open, unsent episodes that may be attempted now."""
        at = stamp(now)
        with self._tx("read pending e-mails", write=False) as tx:
            rows = tx.all(_PENDING, (at, at))
        return episodes_from_rows(rows, seconds)

    def claim_notification(self, episode_id: int, *, now: float, lease: float) -> bool:
        """Compare-and-set the send lease."""
        at = stamp(now)
        with self._tx("claim an e-mail") as tx:
            return (
                tx.execute(
                    "UPDATE failure_episodes SET notify_claimed_until = ?,"
                    " notify_attempts = notify_attempts + 1"
                    " WHERE id = ? AND closed_at IS NULL AND notified_at IS NULL"
                    " AND (notify_after IS NULL OR notify_after <= ?)"
                    " AND (notify_claimed_until IS NULL OR notify_claimed_until <= ?)",
                    (stamp(now + lease), episode_id, at, at),
                )
                == 1
            )

    def record_notification(
        self, episode_id: int, recipients: Sequence[str], *, now: float
    ) -> None:
        """Mark the episode's e-mail as sent, per recipient."""
        at = stamp(now)
        with self._tx("record a sent e-mail") as tx:
            tx.execute(
                "UPDATE failure_episodes SET notified_at = ?, notify_claimed_until = NULL,"
                " notify_error = NULL WHERE id = ?",
                (at, episode_id),
            )
            tx.executemany(
                "INSERT INTO notifications_sent (episode_id, recipient, sent_at)"
                " VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                [(episode_id, r, at) for r in recipients],
            )

    def record_notification_failure(
        self, episode_id: int, error: str, *, now: float, retry_at: float
    ) -> None:
        """Release the claim and schedule the next attempt."""
        with self._tx("record a failed e-mail") as tx:
            tx.execute(
                "UPDATE failure_episodes SET notify_claimed_until = NULL, notify_after = ?,"
                " notify_error = ? WHERE id = ?",
                (stamp(retry_at), error[:500], episode_id),
            )

    def claim_low_balance(
        self, workspace: str, provider: str, fingerprint: str, *, now: float, lease: float
    ) -> bool:
        """Become the one sender of this low-balance episode's e-mail (see :mod:`._low_balance`)."""
        with self._tx("claim a low-balance e-mail") as tx:
            key = (workspace, provider, fingerprint)
            return _low_balance.claim(self._db, tx, key, now=now, lease=lease)

    def record_low_balance_sent(
        self, workspace: str, provider: str, fingerprint: str, *, now: float
    ) -> None:
        """The claimed low-balance e-mail went out."""
        with self._tx("record a sent low-balance e-mail") as tx:
            _low_balance.sent(tx, (workspace, provider, fingerprint), now=now)

    def release_low_balance(
        self, workspace: str, provider: str, fingerprint: str, error: str
    ) -> None:
        """Give a low-balance claim back after a failed send."""
        with self._tx("release a low-balance e-mail") as tx:
            _low_balance.release(tx, (workspace, provider, fingerprint), error)

    def end_low_balance(self, workspace: str, provider: str) -> bool:
        """The balance recovered: end the provider's low-balance episode."""
        with self._tx("end a low-balance episode") as tx:
            return _low_balance.end(tx, workspace, provider)

    def append_credits(self, entries: Sequence[CreditEntry]) -> None:
        """Append ledger entries in one transaction."""
        if not entries:
            return
        with self._tx("write the credit ledger") as tx:
            tx.executemany(
                "INSERT INTO credit_ledger (workspace, feature, route, actions, credits, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (e.workspace, e.feature, e.route, e.actions, e.credits, stamp(e.at))
                    for e in entries
                ],
            )

    def charge_neo_capped(self, entry: CreditEntry, *, cap: int, since: float) -> int | None:
        """Append ``entry`` only if the workspace's Neo credits since ``since`` stay within ``cap``.

        Counted from the ledger and written in one transaction, serialised per workspace
        across every process and host: of racing callers, the ones that fit get through.
        Returns the Neo credits spent since ``since`` with this entry, or ``None`` (not
        written) when it would pass the cap.
        """
        with self._tx("charge capped Neo credits") as tx:
            self._db.serialize(tx, f"{entry.workspace}\0neo-cap")
            spent = int(
                tx.value(
                    "SELECT COALESCE(SUM(credits), 0) FROM credit_ledger"
                    " WHERE workspace = ? AND route = ? AND at >= ?",
                    (entry.workspace, entry.route, stamp(since)),
                )
            )
            if spent + entry.credits > cap:
                return None
            tx.execute(
                "INSERT INTO credit_ledger (workspace, feature, route, actions, credits, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    entry.workspace,
                    entry.feature,
                    entry.route,
                    entry.actions,
                    entry.credits,
                    stamp(entry.at),
                ),
            )
            return spent + entry.credits

    def credit_usage(
        self,
        *,
        workspace: str | None = None,
        since: float | None = None,
        until: float | None = None,
        period: Period | None = None,
    ) -> list[CreditUsage]:
        """Sum the ledger (periods are UTC days and months on every backend)."""
        sql, args = credit_usage_query(
            bucket=self._db.period(period) if period else "NULL",
            workspace=workspace,
            since=None if since is None else stamp(since),
            until=None if until is None else stamp(until),
            mark="?",
        )
        with self._tx("sum the credit ledger", write=False) as tx:
            rows = tx.all(sql, args)
        return credit_usage_rows(rows)

    def close(self) -> None:
        """Release the database (the last view closes its connections)."""
        with self._mutex:
            if self._closed:
                return
            self._closed = True
        self._release()

    def __enter__(self) -> RuntimeState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._url!r})"


class ListeningRuntimeState(RuntimeState):
    """A runtime state whose database announces changes: a :class:`ChangeSource` too."""

    def listen(self) -> ChangeFeed:
        """A feed that wakes up when the store announces a change (its own connection)."""
        return self._db.listen()
