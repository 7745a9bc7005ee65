"""``LISTEN byok_changes``: the change feed of a PostgreSQL store, on its own connection."""

from __future__ import annotations

import logging
import random
import select
import socket
import threading
import time
from contextlib import suppress
from typing import Final

import psycopg
from psycopg.conninfo import make_conninfo

from ._pg_target import CHANGES_CHANNEL, Conn, Target

_log = logging.getLogger("byokctl.store")

#: The change feed reconnects after 0.1 s, doubling up to this cap (plus jitter).
FEED_BACKOFF_MIN_S: Final = 0.1
FEED_BACKOFF_MAX_S: Final = 5.0


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
        self._conn: Conn | None = None
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
            conn: Conn = psycopg.connect(self._conninfo, autocommit=True)
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
    def _drain(conn: Conn) -> bool:
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
