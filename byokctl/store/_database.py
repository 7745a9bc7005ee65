"""What the store's SQL needs from a database, whichever its dialect.

The live state (:mod:`._live`) and the runtime state (:mod:`._runtime_state`) are each
written once, as SQL both dialects agree on, against :class:`Database`: a backend per
dialect (:mod:`._sqlite`, :mod:`._postgres`) that owns the connections and supplies
what differs: how a transaction starts and serialises, the apply lock, bulk writes, a
period expression, and change announcements. One backend object serves both states,
so a process holds one set of connections per database (see :mod:`._registry`).

Shared SQL uses ``?`` placeholders; :class:`Tx` rewrites them for drivers that use
``%s`` (so no shared statement may contain a literal ``?`` or ``%``). Timestamps are
passed as ISO 8601 text in one fixed format (UTC, microseconds): SQLite stores that text
and compares it as a string, PostgreSQL reads it into ``TIMESTAMPTZ``; either comes back
through :func:`seconds` (or :func:`._codec.as_utc` for a ``datetime``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, Protocol

from byokctl.errors import StoreError

from ._codec import EncodedWrites, as_utc
from ._migrations import Dialect
from ._runtime import ChangeFeed, Period
from ._types import LockInfo

#: The ``what`` of the first transaction of an ``open_store``: a database that cannot be
#: reached then says "cannot reach" (as a first connection does), not "unavailable".
OPENING = "open the store"

#: How a workspace row is upserted, after each dialect's ``INSERT INTO workspaces ...``;
#: a write by the settings page (not ``managed``) leaves ``applied_digest`` alone: that
#: is how its changes become drift.
UPSERT_WORKSPACE_UNMANAGED = (
    " ON CONFLICT (name) DO UPDATE SET notify = excluded.notify, enabled = excluded.enabled,"
    " updated_at = excluded.updated_at, updated_by = excluded.updated_by,"
    " fallback = excluded.fallback"
)
UPSERT_WORKSPACE_MANAGED = UPSERT_WORKSPACE_UNMANAGED + ", applied_digest = excluded.applied_digest"


class Busy(Exception):
    """A bounded wait ran out (a lock or a connection): ask again later, not an outage."""


def stamp(t: float) -> str:
    """POSIX seconds as the store's timestamp parameter (ISO 8601, UTC, microseconds)."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="microseconds")


def seconds(value: Any) -> float:
    """A stored timestamp (SQLite's text, PostgreSQL's ``datetime``) as POSIX seconds."""
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value)).timestamp()


@functools.lru_cache(maxsize=512)
def _pyformat(sql: str) -> bytes:
    # bytes: psycopg then parses %s only, and no shared statement holds a literal '%'.
    return sql.replace("?", "%s").encode()


class Tx:
    """One open transaction on a driver connection; shared SQL runs through it.

    ``raw`` is the driver's connection, for a backend's own (dialect-specific) SQL.
    """

    __slots__ = ("_pyformat", "raw")

    def __init__(self, raw: Any, *, pyformat: bool) -> None:
        self.raw = raw
        self._pyformat = pyformat

    def _sql(self, sql: str) -> str | bytes:
        return _pyformat(sql) if self._pyformat else sql

    def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        return int(self.raw.execute(self._sql(sql), params).rowcount)

    def execute_verbatim(self, sql: str) -> None:
        """Run a statement with no parameters exactly as written (a migration's DDL)."""
        self.raw.execute(sql.encode() if self._pyformat else sql)

    def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        """Run one statement once per row of parameters."""
        if not rows:
            return
        if self._pyformat:
            with self.raw.cursor() as cur:
                cur.executemany(self._sql(sql), rows)
        else:
            self.raw.executemany(sql, rows)

    def one(self, sql: str, params: Sequence[object] = ()) -> tuple[Any, ...] | None:
        """The first row, or ``None``."""
        row = self.raw.execute(self._sql(sql), params).fetchone()
        return None if row is None else tuple(row)

    def all(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Every row."""
        return [tuple(r) for r in self.raw.execute(self._sql(sql), params).fetchall()]

    def value(self, sql: str, params: Sequence[object] = ()) -> Any:
        """The first column of the one row (a StoreError if there is none)."""
        row = self.one(sql, params)
        if row is None:
            raise StoreError(f"the store returned no row for: {sql}")
        return row[0]


#: A connection a backend keeps for one holder of the apply lock (PostgreSQL: the
#: session whose advisory lock it is), or ``None`` where the lock is a row (SQLite).
Session = Any


class Database(Protocol):
    """One database, in one dialect, shared by every store view of this process."""

    #: The dialect of :mod:`._migrations`' statements.
    dialect: Dialect
    #: A password-free name for messages (a path or a masked URL).
    name: str
    #: Whether :meth:`listen` gives a change feed.
    announces: bool

    def transaction(
        self,
        what: str,
        *,
        write: bool,
        snapshot: bool = False,
        durable: bool = True,
        wait: float | None = None,
        session: Session = None,
    ) -> AbstractContextManager[Tx]:
        """One transaction; driver errors become one-line :class:`StoreError`\\ s naming ``what``.

        ``write``: the transaction writes (SQLite takes the write lock up front).
        ``snapshot``: several reads see one state. ``durable=False``: runtime data that
        need not survive power loss. ``wait``: give up after about that long for a lock
        or a connection, raising :class:`Busy`. ``session``: run on the apply lock's
        connection from :meth:`lock`.
        """
        ...

    def json_text(self, column: str) -> str:
        """An SQL expression reading a JSON ``column`` as text."""
        ...

    def has_table(self, tx: Tx, name: str) -> bool:
        """Whether the table exists (in the store's schema)."""
        ...

    def schema_version(self, tx: Tx) -> int:
        """The highest migration recorded (0 for an empty database)."""
        ...

    def lock_migrations(self, tx: Tx) -> None:
        """Queue concurrent migrators until ``tx`` ends."""
        ...

    def serialize(self, tx: Tx, key: str) -> None:
        """Serialise decisions about ``key`` until ``tx`` ends (if writers do not already)."""
        ...

    def announce(self, tx: Tx, payload: str) -> None:
        """Tell listening processes, at commit, that something changed."""
        ...

    def insert_id(self, tx: Tx, sql: str, params: Sequence[object]) -> int:
        """Run an ``INSERT`` and return the generated ``id``."""
        ...

    def period(self, period: Period) -> str:
        """An SQL expression of ``at``: its UTC day (``YYYY-MM-DD``) or month (``YYYY-MM``)."""
        ...

    def write_rows(self, tx: Tx, enc: EncodedWrites, *, managed: bool) -> None:
        """Delete and upsert the encoded workspaces, providers and ciphertexts."""
        ...

    def lock(
        self, holder: str, operation: str, *, timeout: float
    ) -> AbstractContextManager[tuple[LockInfo, Session]]:
        """Take the apply lock; yield it and the session writes under it must use."""
        ...

    def force_unlock(self, lock_id: str) -> None:
        """Remove the lock with this id (and end its holder's session where it has one)."""
        ...

    def release_session(self, session: Session) -> None:
        """End a lock session whose holder's store view is closing (frees the lock)."""
        ...

    def listen(self) -> ChangeFeed:
        """A change feed on its own connection (only when :attr:`announces`)."""
        ...

    def close(self) -> None:
        """Close every connection."""
        ...


def read_lock(tx: Tx) -> LockInfo | None:
    """The lock row, or ``None`` (the same on every backend)."""
    row = tx.one("SELECT id, holder, operation, created FROM store_lock")
    if row is None:
        return None
    return LockInfo(str(row[0]), str(row[1]), str(row[2]), as_utc(row[3]))


def no_such_lock(tx: Tx, lock_id: str) -> StoreError:
    """The error for ``force_unlock`` of an id no lock has."""
    row = tx.one("SELECT id FROM store_lock")
    current = f"the current lock's id is {row[0]}" if row else "the store is unlocked"
    return StoreError(f"no lock with id {lock_id!r}: {current}")
