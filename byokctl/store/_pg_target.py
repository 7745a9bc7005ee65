"""Where a PostgreSQL store lives, and the few connections a process keeps to it.

:class:`Target` parses the URL once: the libpq connection string (which holds the
password and is only ever handed to libpq) and a password-free name for messages.
:class:`Connections` is the one pool of a process per database, shared by the live and
the runtime state: up to :data:`MAX_CONNECTIONS` direct autocommit connections, reused
and checked on checkout, none made in the background. Not ``psycopg_pool``: a pool keeps
reconnecting in the background and logs a warning for every failed attempt, and its
``getconn`` waits its whole timeout for a server that refuses connections; during an
outage the store wants the opposite: fail at once with libpq's reason, log nothing (the
resolver logs the outage once), and connect again on the next call.
"""

from __future__ import annotations

import hashlib
import re
import threading
from typing import Any, Final, TypeAlias

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from byokctl.errors import StoreError

from ._urls import safe_url

#: Seconds to wait for a connection (libpq's ``connect_timeout`` unless the URL sets it).
DEFAULT_CONNECT_TIMEOUT_S: Final = 5
#: At most this many connections per process and database (a lock session, concurrent
#: reports from many threads, a read of the live state).
MAX_CONNECTIONS: Final = 4
#: Every change is announced on this channel: ``'<serial>'`` for the configuration,
#: ``'runtime:<version>'`` for the runtime state.
CHANGES_CHANNEL: Final = "byok_changes"

Conn: TypeAlias = psycopg.Connection[tuple[Any, ...]]


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


class Connections:
    """A few direct connections, reused; checked on checkout; none made in the background."""

    def __init__(self, conninfo: str, size: int, timeout: float) -> None:
        self._conninfo = conninfo
        self._timeout = timeout
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[Conn] = []
        self._lock = threading.Lock()
        self._closed = False

    def get(self, timeout: float | None = None) -> Conn | None:
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
                    fresh: Conn = psycopg.connect(self._conninfo, autocommit=True)
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

    def put(self, conn: Conn, *, healthy: bool) -> None:
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
