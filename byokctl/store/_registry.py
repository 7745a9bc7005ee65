"""Store URLs to databases: one explicit registry, and one shared database per process.

:data:`BACKENDS` maps a URL scheme to its :class:`Backend`, which says what identifies a
database behind a URL and how to open it. :func:`open_store` and
:func:`open_runtime_store` hand out *views* (:class:`~._live.LiveStore`,
:class:`~._runtime_state.RuntimeState`) onto one reference-counted database object per
process and database, so a resolver that opens both holds one set of connections.
Closing a view releases its reference; the last one closes the connections. A forked
child forgets the parent's databases (their connections are the parent's) and opens
its own.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from byokctl.errors import StoreError

from ._database import Database
from ._keys import Keyring, MasterKey
from ._live import LiveStore, migrate
from ._runtime import RuntimeStore
from ._runtime_state import ListeningRuntimeState, RuntimeState
from ._sqlite import SQLiteDatabase, path_from_url
from ._urls import DEFAULT_STORE_URL, safe_url


def psycopg_missing(exc: ImportError) -> StoreError:
    """The error for a PostgreSQL URL when psycopg is not installed."""
    return StoreError(
        f"the PostgreSQL store needs psycopg, which is not installed ({exc.name})",
        hint="pip install 'psycopg[binary]'",
    )


@dataclass(frozen=True)
class Backend:
    """One kind of store: what identifies its database, how to open it, how to name it."""

    #: The database behind a URL (two URLs with one identity share one database object).
    identity: Callable[[str], str]
    #: Open the database (``create``: make a missing SQLite file).
    open: Callable[[str, bool], Database]
    #: The URL as views report it (no credentials).
    display: Callable[[str], str]


def _sqlite_identity(url: str) -> str:
    # The absolute path: a relative URL names another file after a chdir.
    return str(path_from_url(url).absolute())


def _open_sqlite(url: str, create: bool) -> Database:
    path = path_from_url(url)
    if create:
        SQLiteDatabase.create_file(path)
    elif not path.exists():
        raise StoreError(
            f"the store {path} does not exist",
            hint="open it once with byokctl (any command) or byokctl.store.open_store",
        )
    return SQLiteDatabase(path)


def _postgres_identity(url: str) -> str:
    # The libpq connection string (it may hold the password: it is only ever a key here).
    try:
        from ._pg_target import Target  # noqa: PLC0415 - SQLite users never load psycopg
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise psycopg_missing(exc) from None
    return Target(url).conninfo


def _open_postgres(url: str, create: bool) -> Database:
    from ._postgres import PostgresDatabase  # noqa: PLC0415 - imported by the identity

    return PostgresDatabase(url)


_SQLITE = Backend(_sqlite_identity, _open_sqlite, lambda url: f"sqlite:///{path_from_url(url)}")
_POSTGRES = Backend(_postgres_identity, _open_postgres, safe_url)

#: ``scheme -> backend``: one explicit registry, opened by URL scheme.
BACKENDS: dict[str, Backend] = {
    "sqlite": _SQLITE,
    "postgresql": _POSTGRES,
    "postgres": _POSTGRES,  # libpq accepts both spellings
}


def backend_for(url: str) -> Backend:
    """The backend for ``url``'s scheme; a StoreError naming the known ones if none."""
    scheme, sep, _ = url.partition("://")
    backend = BACKENDS.get(scheme) if sep else None
    if backend is None:
        known = ", ".join(f"{s}://" for s in sorted(BACKENDS))
        raise StoreError(
            f"unsupported store URL {safe_url(url)!r}",
            hint=f"use one of: {known} (for example {DEFAULT_STORE_URL})",
        )
    return backend


def check_store_url(url: str) -> None:
    """Raise :class:`StoreError` unless ``url`` names a known kind of store."""
    backend_for(url)


def store_exists(url: str) -> bool:
    """Whether the store at ``url`` was created already (a server store always counts)."""
    backend_for(url)
    if url.startswith("sqlite:"):
        return path_from_url(url).exists()
    return True


class _Shared:
    """A database and the number of views open on it."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.refs = 1


_shared: dict[str, _Shared] = {}
_shared_lock = threading.Lock()


def _forget_after_fork() -> None:
    global _shared_lock  # noqa: PLW0603 - a lock held by another thread at fork is never released
    _shared_lock = threading.Lock()
    _shared.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def _acquire(url: str, *, create: bool) -> tuple[str, Database]:
    backend = backend_for(url)
    key = backend.identity(url)
    with _shared_lock:
        found = _shared.get(key)
        if found is not None:
            found.refs += 1
            return key, found.db
    # Opened outside the lock: connecting may take seconds, and other URLs need not wait.
    db = backend.open(url, create)
    with _shared_lock:
        found = _shared.get(key)
        if found is None:
            _shared[key] = _Shared(db)
            return key, db
        found.refs += 1
    db.close()  # another thread opened it meanwhile: use theirs
    return key, found.db


def _releaser(key: str, db: Database) -> Callable[[], None]:
    def release() -> None:
        with _shared_lock:
            found = _shared.get(key)
            if found is None or found.db is not db:
                return  # forgotten after a fork: the parent's to close
            found.refs -= 1
            if found.refs:
                return
            del _shared[key]
        db.close()

    return release


def open_databases() -> int:
    """How many databases this process holds open (for tests and diagnostics)."""
    with _shared_lock:
        return len(_shared)


def open_store(
    url: str, *, master_key: MasterKey, extra_keys: Iterable[MasterKey] = ()
) -> LiveStore:
    """Open the store at ``url``, applying pending schema migrations.

    ``master_key`` encrypts and computes drift digests; ``extra_keys`` are accepted for
    decryption only (used while a master key rotation rolls out). Views of one database
    in one process share its connections.
    """
    keyring = Keyring(master_key, extra_keys)
    key, db = _acquire(url, create=True)
    release = _releaser(key, db)
    try:
        migrate(db)
    except BaseException:
        release()
        raise
    return LiveStore(db, keyring, url=backend_for(url).display(url), release=release)


def open_runtime_store(url: str) -> RuntimeStore:
    """Open the runtime side (health, episodes, credits) of the store at ``url``.

    The store must exist at the current schema: open it with :func:`open_store` first,
    which runs pending migrations. It shares the database's connections with the
    store's views in this process.
    """
    backend = backend_for(url)
    key, db = _acquire(url, create=False)
    release = _releaser(key, db)
    try:
        with db.transaction("open the runtime store", write=False, durable=False) as tx:
            if not db.has_table(tx, "runtime_meta"):
                raise StoreError(
                    f"the store {db.name} has no runtime tables",
                    hint="open it with this byokctl version first so that its migrations run",
                )
            row = tx.one("SELECT fingerprint_key FROM runtime_meta")
        if row is None:
            raise StoreError(f"the store {db.name} has no runtime_meta row")
    except BaseException:
        release()
        raise
    kind = ListeningRuntimeState if db.announces else RuntimeState
    return kind(db, url=backend.display(url), fingerprint_key=bytes(row[0]), release=release)
