"""The live state (configuration, serial, lock, audit log): one :class:`Store` for every dialect.

A :class:`LiveStore` is a *view* onto a shared :class:`~._database.Database`: it holds
what belongs to one ``open_store`` call (the keyring, the lock sessions of its threads)
and runs SQL both dialects agree on; the database supplies the rest. Each method is one
transaction:

- **The serial** is a compare-and-set at the start of every write
  (``UPDATE ... WHERE serial = ?``): on PostgreSQL the row lock it takes queues
  concurrent writers, and under READ COMMITTED one that queued behind a committed write
  re-checks the condition against the new row and updates nothing (StalePlanError); on
  SQLite the write transaction (``BEGIN IMMEDIATE``) already runs alone. The same
  transaction announces the new serial (PostgreSQL: ``NOTIFY``) at commit.
- **Migrations** run on every open (a single read when the schema is current), under
  the database's migration lock, each version recorded in ``schema_migrations``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any, cast

from byokctl.errors import MasterKeyError, StoreError
from byokctl.model import LiveState, Workspace

from ._codec import (
    ConfigRows,
    audit_changes_json,
    audit_entry,
    check_write,
    encode_writes,
    live_state,
    rotation,
    stale_plan_error,
)
from ._database import OPENING, Database, Session, Tx, read_lock
from ._keys import Keyring, MasterKey, must_register_key
from ._migrations import LATEST_VERSION, SCHEMA_MIGRATIONS_TABLE, pending_migrations
from ._types import AuditEntry, LockInfo, WorkspaceWrite


def _now() -> datetime:
    return datetime.now(UTC)


def migrate(db: Database) -> None:
    """Apply the pending migrations (one read when there are none)."""
    with db.transaction(OPENING, write=False) as tx:
        if db.schema_version(tx) == LATEST_VERSION:
            return  # the common case: no write lock needed to open a current store
    with db.transaction("migrate the store", write=True) as tx:
        db.lock_migrations(tx)  # concurrent first uses queue; the loser finds them applied
        tx.execute(SCHEMA_MIGRATIONS_TABLE[db.dialect])
        applied = {int(r[0]) for r in tx.all("SELECT version FROM schema_migrations")}
        for migration in pending_migrations(applied, store=db.name):
            for statement in migration.statements(db.dialect):
                tx.execute_verbatim(statement)
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, _now().isoformat()),
            )


def _key_id(tx: Tx) -> str | None:
    row = tx.one("SELECT key_id FROM master_keys WHERE retired_at IS NULL")
    return None if row is None else str(row[0])


def _bump_serial(tx: Tx, expected: int | None) -> int:
    """Increment the serial; with ``expected``, only if it still is that (else stale)."""
    if expected is None:
        tx.execute("UPDATE store_serial SET serial = serial + 1 WHERE id = 1")
    elif not tx.execute(
        "UPDATE store_serial SET serial = serial + 1 WHERE id = 1 AND serial = ?", (expected,)
    ):
        raise stale_plan_error(int(tx.value("SELECT serial FROM store_serial")), expected)
    return int(tx.value("SELECT serial FROM store_serial"))


def _insert_audit(tx: Tx, entry: AuditEntry) -> None:
    tx.execute(
        "INSERT INTO audit_log (at, who, operation, serial, changes) VALUES (?, ?, ?, ?, ?)",
        (entry.at.isoformat(), entry.who, entry.operation, entry.serial, audit_changes_json(entry)),
    )


def _load(db: Database, tx: Tx) -> ConfigRows:
    json = db.json_text
    return ConfigRows(
        serial=int(tx.value("SELECT serial FROM store_serial")),
        key_id=_key_id(tx),
        workspaces=cast(
            Any,
            tx.all(
                f"SELECT name, {json('notify')}, enabled, applied_digest, updated_at,"  # noqa: S608
                f" updated_by, {json('fallback')} FROM workspaces"
            ),
        ),
        providers=cast(
            Any,
            tx.all(
                f"SELECT workspace, provider, model, {json('settings')}, {json('models')}"  # noqa: S608
                " FROM provider_configs"
            ),
        ),
        secrets=cast(
            Any,
            tx.all(
                "SELECT workspace, provider, field, key_id, nonce, ciphertext FROM provider_secrets"
            ),
        ),
    )


class LiveStore:
    """A :class:`~byokctl.store.Store` on a shared database. Safe to share between threads.

    Closing it releases its hold on the database (the last view closes the connections)
    and ends any lock session one of its threads still holds.
    """

    def __init__(
        self, db: Database, keyring: Keyring, *, url: str, release: Callable[[], None]
    ) -> None:
        self._db = db
        self._keyring = keyring
        self._url = url
        self._release = release
        self._mutex = threading.Lock()
        self._closed = False
        #: thread id -> the session holding the apply lock for that thread
        self._lock_sessions: dict[int, Session] = {}

    # -- plumbing ---------------------------------------------------------------------

    def _tx(
        self, what: str, *, write: bool = False, snapshot: bool = False, session: Session = None
    ) -> AbstractContextManager[Tx]:
        if self._closed:
            raise StoreError(f"the store {self._url} is closed")
        return self._db.transaction(what, write=write, snapshot=snapshot, session=session)

    def _claim_key(self, tx: Tx) -> None:
        """Check that the primary key is the store's key (registering it on a new store)."""
        if must_register_key(_key_id(tx), self._keyring):
            tx.execute(
                "INSERT INTO master_keys (key_id, added_at) VALUES (?, ?)",
                (self._keyring.primary.key_id, _now().isoformat()),
            )

    def _session(self) -> Session:
        """The session holding the apply lock for the calling thread, if any."""
        with self._mutex:
            return self._lock_sessions.get(threading.get_ident())

    # -- the Store interface ----------------------------------------------------------

    @property
    def url(self) -> str:
        """The store's URL, without credentials."""
        return self._url

    def read_state(self) -> LiveState:
        """The configuration at one serial, secrets decrypted."""
        with self._tx("read the live state", snapshot=True) as tx:
            rows = _load(self._db, tx)
        return live_state(rows, self._keyring, store=self._db.name)

    def serial(self) -> int:
        """The current serial."""
        with self._tx("read the serial") as tx:
            return int(tx.value("SELECT serial FROM store_serial"))

    def schema_version(self) -> int:
        """The highest migration applied."""
        with self._tx("read the schema version") as tx:
            return self._db.schema_version(tx)

    @contextmanager
    def lock(self, holder: str, operation: str, *, timeout: float) -> Iterator[LockInfo]:
        """Take the lock (waiting up to ``timeout`` s), yield it, release it on exit.

        A lock left by a holder that is certainly gone is reclaimed on the way: the
        yielded lock's ``reclaimed`` names it.
        """
        if self._closed:
            raise StoreError(f"the store {self._url} is closed")
        with self._db.lock(holder, operation, timeout=timeout) as (info, session):
            tid = threading.get_ident()
            with self._mutex:
                self._lock_sessions[tid] = session
            try:
                yield info
            finally:
                with self._mutex:
                    if self._lock_sessions.get(tid, self) is session:
                        del self._lock_sessions[tid]

    def lock_info(self) -> LockInfo | None:
        """The current lock, or ``None``.

        On PostgreSQL a row whose holder died is still shown (it says who was running
        what) until the next ``lock`` reclaims it or ``force_unlock`` removes it.
        """
        with self._tx("read the lock") as tx:
            return read_lock(tx)

    def force_unlock(self, lock_id: str) -> None:
        """Remove the lock with this id (and end its holder's session if still alive)."""
        if self._closed:
            raise StoreError(f"the store {self._url} is closed")
        self._db.force_unlock(lock_id)

    def write(
        self, writes: Sequence[WorkspaceWrite], *, expected_serial: int, audit: AuditEntry
    ) -> int:
        """Apply ``writes`` in one transaction and return the new serial."""
        check_write(writes, expected_serial, audit)
        enc = encode_writes(writes, self._keyring.primary, at=audit.at, who=audit.who, managed=True)
        # Under the lock, write on the lock's own session: if force-unlock ended it, this
        # write fails instead of racing the next holder.
        with self._tx("apply", write=True, session=self._session()) as tx:
            serial = _bump_serial(tx, expected_serial)
            self._claim_key(tx)  # refuses a key other than the store's, before any row changes
            self._db.write_rows(tx, enc, managed=True)
            _insert_audit(tx, audit)
            self._db.announce(tx, str(serial))
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
        with self._tx("write a workspace", write=True) as tx:
            serial = _bump_serial(tx, None)
            self._claim_key(tx)
            self._db.write_rows(tx, enc, managed=False)
            self._db.announce(tx, str(serial))

    def provider_settings(self, name: str) -> dict[str, dict[str, Any]] | None:
        """One workspace's configured providers without their secrets (``None``: no such one).

        ``{provider: {"model": …, "settings": {…}, "secret_fields": [names]}}``: the
        non-secret columns and the names of the stored secret fields, never a value, so
        a page can describe one workspace without loading (or decrypting) the fleet.
        """
        json_text = self._db.json_text
        with self._tx("read one workspace's providers") as tx:
            if tx.one("SELECT name FROM workspaces WHERE name = ?", (name,)) is None:
                return None
            configs = tx.all(
                f"SELECT provider, model, {json_text('settings')} FROM provider_configs"  # noqa: S608
                " WHERE workspace = ? ORDER BY provider",
                (name,),
            )
            fields = tx.all(
                "SELECT provider, field FROM provider_secrets WHERE workspace = ?"
                " ORDER BY provider, field",
                (name,),
            )
        out: dict[str, dict[str, Any]] = {}
        for provider, model, settings in configs:
            loaded = json.loads(settings) if isinstance(settings, str) else settings
            out[str(provider)] = {"model": model, "settings": loaded, "secret_fields": []}
        for provider, field in fields:
            if str(provider) in out:
                out[str(provider)]["secret_fields"].append(str(field))
        return out

    def audit_log(self, *, limit: int | None = None) -> list[AuditEntry]:
        """Audit entries, newest first."""
        sql = (
            f"SELECT at, who, operation, serial, {self._db.json_text('changes')}"  # noqa: S608
            " FROM audit_log ORDER BY seq DESC"
        )
        with self._tx("read the audit log") as tx:
            rows = tx.all(sql) if limit is None else tx.all(sql + " LIMIT ?", (limit,))
        return [audit_entry(*row) for row in rows]

    def rotate_master_key(self, new_key: MasterKey, *, who: str) -> int:
        """Re-encrypt every secret under ``new_key`` in one transaction; return the count."""
        with self._tx("rotate the master key", write=True) as tx:
            # Writers update the serial row first: holding its row lock (PostgreSQL; SQLite's
            # write transaction runs alone anyway), no write can add a secret under the old
            # key between our read and our update.
            tx.execute("UPDATE store_serial SET serial = serial WHERE id = 1")
            rows = _load(self._db, tx)
            if rows.key_id == new_key.key_id:
                raise MasterKeyError(f"the store already uses the key with key id {rows.key_id}")
            updates = rotation(rows, self._keyring, new_key)
            tx.executemany(
                "UPDATE provider_secrets SET key_id = ?, nonce = ?, ciphertext = ?"
                " WHERE workspace = ? AND provider = ? AND field = ?",
                updates.secrets,
            )
            tx.executemany(
                "UPDATE workspaces SET applied_digest = ? WHERE name = ?", updates.digests
            )
            at = _now()
            tx.execute(
                "UPDATE master_keys SET retired_at = ? WHERE retired_at IS NULL", (at.isoformat(),)
            )
            tx.execute(
                "INSERT INTO master_keys (key_id, added_at) VALUES (?, ?) ON CONFLICT (key_id)"
                " DO UPDATE SET retired_at = NULL",
                (new_key.key_id, at.isoformat()),
            )
            _insert_audit(tx, AuditEntry(who, at, "rotate-key", rows.serial))
        self._keyring = self._keyring.with_primary(new_key)
        return len(updates.secrets)

    def close(self) -> None:
        """Release the database (and end any lock session left open, which frees its lock)."""
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            held = list(self._lock_sessions.values())
            self._lock_sessions.clear()
        try:
            for session in held:
                self._db.release_session(session)
        finally:
            self._release()

    def __enter__(self) -> LiveStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LiveStore({self._url!r})"
