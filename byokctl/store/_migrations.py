"""Versioned schema migrations, one list for every backend.

A migration is a version, a name and its statements *per dialect*: the versions and
what each one means are shared, only the SQL differs (SQLite's ``BLOB`` and ``TEXT``
timestamps, PostgreSQL's ``BYTEA``, ``TIMESTAMPTZ`` and ``JSONB``). One runner
(:func:`byokctl.store._live.migrate`) applies the missing versions in order inside one
write transaction and records each in ``schema_migrations``, so running it twice, or
in two processes at once, is safe (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL:
``pg_advisory_xact_lock``). Released migrations are never edited: a schema change is
a new version, with both dialects.

Why a small runner and not alembic: the schema is a handful of tables owned by one
program, the runner is ~20 lines, it must work on SQLite and PostgreSQL
without SQLAlchemy (a heavy dependency the resolver would otherwise pay for), and it
must run "on first use" from inside ``open_store`` under the backend's own lock.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from byokctl.errors import StoreError

#: The SQL dialects migrations are written in.
Dialect = Literal["sqlite", "postgresql"]


@dataclass(frozen=True)
class Migration:
    """One schema version, written once per dialect."""

    version: int
    name: str
    sqlite: tuple[str, ...]
    postgresql: tuple[str, ...]

    def statements(self, dialect: Dialect) -> tuple[str, ...]:
        """The statements that apply this version in ``dialect``."""
        return self.sqlite if dialect == "sqlite" else self.postgresql


_APPEND_ONLY = """
CREATE TRIGGER audit_log_no_{op} BEFORE {OP} ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END
"""

_PG_APPEND_ONLY_FUNCTION = """
CREATE FUNCTION byok_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END
$$
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "configuration, serial, lock, audit log, master keys",
        sqlite=(
            "CREATE TABLE store_serial (id INTEGER PRIMARY KEY CHECK (id = 1),"
            " serial INTEGER NOT NULL)",
            "INSERT INTO store_serial (id, serial) VALUES (1, 0)",
            # The slot column makes a second row impossible: at most one lock exists.
            "CREATE TABLE store_lock (id TEXT PRIMARY KEY, slot INTEGER NOT NULL UNIQUE"
            " CHECK (slot = 1), holder TEXT NOT NULL, operation TEXT NOT NULL,"
            " created TEXT NOT NULL)",
            # Key ids only: which master key wrote the store. Never a key.
            "CREATE TABLE master_keys (key_id TEXT PRIMARY KEY, added_at TEXT NOT NULL,"
            " retired_at TEXT)",
            "CREATE TABLE workspaces (name TEXT PRIMARY KEY, notify TEXT NOT NULL,"
            " enabled TEXT, applied_digest BLOB, updated_at TEXT NOT NULL,"
            " updated_by TEXT NOT NULL)",
            "CREATE TABLE provider_configs (workspace TEXT NOT NULL REFERENCES workspaces(name)"
            " ON DELETE CASCADE, provider TEXT NOT NULL, model TEXT NOT NULL,"
            " settings TEXT NOT NULL, PRIMARY KEY (workspace, provider))",
            "CREATE TABLE provider_secrets (workspace TEXT NOT NULL, provider TEXT NOT NULL,"
            " field TEXT NOT NULL, key_id TEXT NOT NULL, nonce BLOB NOT NULL,"
            " ciphertext BLOB NOT NULL, PRIMARY KEY (workspace, provider, field),"
            " FOREIGN KEY (workspace, provider) REFERENCES provider_configs(workspace, provider)"
            " ON DELETE CASCADE)",
            "CREATE TABLE audit_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL,"
            " who TEXT NOT NULL, operation TEXT NOT NULL, serial INTEGER NOT NULL,"
            " changes TEXT NOT NULL)",
            _APPEND_ONLY.format(op="update", OP="UPDATE"),
            _APPEND_ONLY.format(op="delete", OP="DELETE"),
        ),
        postgresql=(
            "CREATE TABLE store_serial (id INTEGER PRIMARY KEY CHECK (id = 1),"
            " serial BIGINT NOT NULL)",
            "INSERT INTO store_serial (id, serial) VALUES (1, 0)",
            # The row describes the lock for humans; the lock itself is a session-level
            # advisory lock held by backend_pid, so it dies with the holder's connection.
            "CREATE TABLE store_lock (id TEXT PRIMARY KEY, slot INTEGER NOT NULL UNIQUE"
            " CHECK (slot = 1), holder TEXT NOT NULL, operation TEXT NOT NULL,"
            " created TIMESTAMPTZ NOT NULL, backend_pid INTEGER NOT NULL)",
            "CREATE TABLE master_keys (key_id TEXT PRIMARY KEY, added_at TIMESTAMPTZ NOT NULL,"
            " retired_at TIMESTAMPTZ)",
            "CREATE TABLE workspaces (name TEXT PRIMARY KEY, notify JSONB NOT NULL,"
            " enabled TEXT, applied_digest BYTEA, updated_at TIMESTAMPTZ NOT NULL,"
            " updated_by TEXT NOT NULL)",
            "CREATE TABLE provider_configs (workspace TEXT NOT NULL REFERENCES workspaces(name)"
            " ON DELETE CASCADE, provider TEXT NOT NULL, model TEXT NOT NULL,"
            " settings JSONB NOT NULL, PRIMARY KEY (workspace, provider))",
            "CREATE TABLE provider_secrets (workspace TEXT NOT NULL, provider TEXT NOT NULL,"
            " field TEXT NOT NULL, key_id TEXT NOT NULL, nonce BYTEA NOT NULL,"
            " ciphertext BYTEA NOT NULL, PRIMARY KEY (workspace, provider, field),"
            " FOREIGN KEY (workspace, provider) REFERENCES provider_configs(workspace, provider)"
            " ON DELETE CASCADE)",
            "CREATE TABLE audit_log (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " at TIMESTAMPTZ NOT NULL, who TEXT NOT NULL, operation TEXT NOT NULL,"
            " serial BIGINT NOT NULL, changes JSONB NOT NULL)",
            _PG_APPEND_ONLY_FUNCTION,
            "CREATE TRIGGER audit_log_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_log"
            " FOR EACH ROW EXECUTE FUNCTION byok_audit_log_append_only()",
            "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log"
            " FOR EACH STATEMENT EXECUTE FUNCTION byok_audit_log_append_only()",
        ),
    ),
    Migration(
        2,
        "runtime data: provider health, failure episodes, notifications, credit ledger",
        # Runtime tables outlive the configuration rows on purpose (a deleted
        # workspace's ledger stays countable), so no foreign keys to workspaces.
        sqlite=(
            "CREATE TABLE provider_health (workspace TEXT NOT NULL, provider TEXT NOT NULL,"
            " credential_fingerprint TEXT NOT NULL, status TEXT NOT NULL, reason TEXT,"
            " failures INTEGER NOT NULL DEFAULT 0, open_until TEXT, checked_at TEXT NOT NULL,"
            " PRIMARY KEY (workspace, provider))",
            "CREATE TABLE failure_episodes (id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " workspace TEXT NOT NULL, provider TEXT NOT NULL,"
            " credential_fingerprint TEXT NOT NULL, reason TEXT NOT NULL,"
            " opened_at TEXT NOT NULL, closed_at TEXT, close_reason TEXT)",
            "CREATE INDEX failure_episodes_open ON failure_episodes (workspace, closed_at)",
            "CREATE TABLE notifications_sent (id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " episode_id INTEGER NOT NULL REFERENCES failure_episodes(id),"
            " recipient TEXT NOT NULL, sent_at TEXT NOT NULL, UNIQUE (episode_id, recipient))",
            "CREATE TABLE credit_ledger (id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " workspace TEXT NOT NULL, feature TEXT NOT NULL, route TEXT NOT NULL,"
            " credits INTEGER NOT NULL, at TEXT NOT NULL)",
            "CREATE INDEX credit_ledger_workspace_at ON credit_ledger (workspace, at)",
        ),
        postgresql=(
            "CREATE TABLE provider_health (workspace TEXT NOT NULL, provider TEXT NOT NULL,"
            " credential_fingerprint TEXT NOT NULL, status TEXT NOT NULL, reason TEXT,"
            " failures INTEGER NOT NULL DEFAULT 0, open_until TIMESTAMPTZ,"
            " checked_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (workspace, provider))",
            "CREATE TABLE failure_episodes (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " workspace TEXT NOT NULL, provider TEXT NOT NULL,"
            " credential_fingerprint TEXT NOT NULL, reason TEXT NOT NULL,"
            " opened_at TIMESTAMPTZ NOT NULL, closed_at TIMESTAMPTZ, close_reason TEXT)",
            "CREATE INDEX failure_episodes_open ON failure_episodes (workspace, closed_at)",
            "CREATE TABLE notifications_sent (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " episode_id BIGINT NOT NULL REFERENCES failure_episodes(id),"
            " recipient TEXT NOT NULL, sent_at TIMESTAMPTZ NOT NULL,"
            " UNIQUE (episode_id, recipient))",
            "CREATE TABLE credit_ledger (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " workspace TEXT NOT NULL, feature TEXT NOT NULL, route TEXT NOT NULL,"
            " credits INTEGER NOT NULL, at TIMESTAMPTZ NOT NULL)",
            "CREATE INDEX credit_ledger_workspace_at ON credit_ledger (workspace, at)",
        ),
    ),
    Migration(
        3,
        "runtime: circuit breaker and probe, episode notification state, runtime version",
        # The partial unique index is what makes "one open episode per workspace and
        # provider" a store-level fact: of many processes reporting the same failure at
        # once, exactly one insert succeeds, so exactly one e-mail is owed. runtime_meta
        # holds the version every resolver polls (bumped on each route-changing write)
        # and the random key credential fingerprints are computed with (so fingerprints
        # survive a master key rotation).
        sqlite=(
            "ALTER TABLE provider_health ADD COLUMN window_started TEXT",
            "ALTER TABLE provider_health ADD COLUMN probe_until TEXT",
            "ALTER TABLE provider_health ADD COLUMN since TEXT",
            "ALTER TABLE provider_health ADD COLUMN episode_id INTEGER",
            "ALTER TABLE failure_episodes ADD COLUMN sticky INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE failure_episodes ADD COLUMN detail TEXT",
            "ALTER TABLE failure_episodes ADD COLUMN notified_at TEXT",
            "ALTER TABLE failure_episodes ADD COLUMN notify_attempts INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE failure_episodes ADD COLUMN notify_after TEXT",
            "ALTER TABLE failure_episodes ADD COLUMN notify_claimed_until TEXT",
            "ALTER TABLE failure_episodes ADD COLUMN notify_error TEXT",
            "CREATE UNIQUE INDEX failure_episodes_one_open ON failure_episodes"
            " (workspace, provider) WHERE closed_at IS NULL",
            "CREATE TABLE runtime_meta (id INTEGER PRIMARY KEY CHECK (id = 1),"
            " version INTEGER NOT NULL, fingerprint_key BLOB NOT NULL)",
            "INSERT INTO runtime_meta (id, version, fingerprint_key) VALUES (1, 0, randomblob(32))",
            "ALTER TABLE credit_ledger ADD COLUMN actions INTEGER NOT NULL DEFAULT 1",
        ),
        postgresql=(
            "ALTER TABLE provider_health ADD COLUMN window_started TIMESTAMPTZ",
            "ALTER TABLE provider_health ADD COLUMN probe_until TIMESTAMPTZ",
            "ALTER TABLE provider_health ADD COLUMN since TIMESTAMPTZ",
            "ALTER TABLE provider_health ADD COLUMN episode_id BIGINT",
            "ALTER TABLE failure_episodes ADD COLUMN sticky BOOLEAN NOT NULL DEFAULT FALSE",
            "ALTER TABLE failure_episodes ADD COLUMN detail TEXT",
            "ALTER TABLE failure_episodes ADD COLUMN notified_at TIMESTAMPTZ",
            "ALTER TABLE failure_episodes ADD COLUMN notify_attempts INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE failure_episodes ADD COLUMN notify_after TIMESTAMPTZ",
            "ALTER TABLE failure_episodes ADD COLUMN notify_claimed_until TIMESTAMPTZ",
            "ALTER TABLE failure_episodes ADD COLUMN notify_error TEXT",
            "CREATE UNIQUE INDEX failure_episodes_one_open ON failure_episodes"
            " (workspace, provider) WHERE closed_at IS NULL",
            "CREATE TABLE runtime_meta (id INTEGER PRIMARY KEY CHECK (id = 1),"
            " version BIGINT NOT NULL, fingerprint_key BYTEA NOT NULL)",
            # gen_random_uuid() is built in since PostgreSQL 13 (no pgcrypto needed);
            # two of them give 32 bytes with 244 random bits.
            "INSERT INTO runtime_meta (id, version, fingerprint_key) VALUES (1, 0,"
            " decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''),"
            " 'hex'))",
            "ALTER TABLE credit_ledger ADD COLUMN actions INTEGER NOT NULL DEFAULT 1",
        ),
    ),
    Migration(
        4,
        "lock holder's host and process, so a lock left by a dead local process is released",
        # SQLite's lock is a row that outlives its holder; with the holder's host, pid and
        # process identity (boot id, pid namespace, start time) the next taker on the same
        # host can tell that the holder is gone. PostgreSQL's advisory lock already ends
        # with its holder's session, so it needs no such columns.
        sqlite=(
            "ALTER TABLE store_lock ADD COLUMN host TEXT",
            "ALTER TABLE store_lock ADD COLUMN pid INTEGER",
            "ALTER TABLE store_lock ADD COLUMN process TEXT",
        ),
        postgresql=(),
    ),
    Migration(
        5,
        "fallback policy per workspace, a model per feature",
        # NULL means what a store written before this version means: the seed's policy
        # (Neo until the credentials change) and one model for every feature. The Neo
        # credit cap is counted from the credit ledger itself (see resolver/_policy), so
        # it needs no table; its index makes the count one range scan per workspace.
        sqlite=(
            "ALTER TABLE workspaces ADD COLUMN fallback TEXT",
            "ALTER TABLE provider_configs ADD COLUMN models TEXT",
            "CREATE INDEX credit_ledger_workspace_route_at ON credit_ledger (workspace, route, at)",
        ),
        postgresql=(
            "ALTER TABLE workspaces ADD COLUMN fallback JSONB",
            "ALTER TABLE provider_configs ADD COLUMN models JSONB",
            "CREATE INDEX credit_ledger_workspace_route_at ON credit_ledger (workspace, route, at)",
        ),
    ),
    Migration(
        6,
        "low-balance notices: one running-low e-mail per episode, across hosts",
        # One row per low-balance episode of a workspace's provider and credentials: its
        # insert (ON CONFLICT DO NOTHING) is the claim, so of many probes at once exactly
        # one sends; claimed_until is the sender's lease (a crashed sender's notice is
        # claimed again), sent_at the e-mail. The row is deleted when the episode ends.
        sqlite=(
            "CREATE TABLE low_balance_notices (workspace TEXT NOT NULL,"
            " provider TEXT NOT NULL, credential_fingerprint TEXT NOT NULL,"
            " claimed_at TEXT NOT NULL, claimed_until TEXT, sent_at TEXT,"
            " attempts INTEGER NOT NULL DEFAULT 0, error TEXT,"
            " PRIMARY KEY (workspace, provider, credential_fingerprint))",
        ),
        postgresql=(
            "CREATE TABLE low_balance_notices (workspace TEXT NOT NULL,"
            " provider TEXT NOT NULL, credential_fingerprint TEXT NOT NULL,"
            " claimed_at TIMESTAMPTZ NOT NULL, claimed_until TIMESTAMPTZ, sent_at TIMESTAMPTZ,"
            " attempts INTEGER NOT NULL DEFAULT 0, error TEXT,"
            " PRIMARY KEY (workspace, provider, credential_fingerprint))",
        ),
    ),
)

#: The table that records the applied versions, created before the first migration.
SCHEMA_MIGRATIONS_TABLE: dict[Dialect, str] = {
    "sqlite": "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL, applied_at TEXT NOT NULL)",
    "postgresql": "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)",
}

#: The newest schema version this byokctl knows.
LATEST_VERSION = max(m.version for m in MIGRATIONS)


def pending_migrations(applied: Collection[int], *, store: str) -> list[Migration]:
    """The migrations not yet in ``applied``, in order; a newer store is a StoreError.

    ``store`` names the store in the message (a path or a password-free URL).
    """
    if applied and max(applied) > LATEST_VERSION:
        raise StoreError(
            f"the store {store} has schema version {max(applied)}, newer than "
            f"this byokctl knows ({LATEST_VERSION}): a newer byokctl migrated it, and "
            "this one would misread what it added",
            hint="upgrade byokctl (downgrading a store is not supported); nothing was changed",
        )
    return [m for m in MIGRATIONS if m.version not in applied]
