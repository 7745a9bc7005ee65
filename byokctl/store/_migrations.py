"""Versioned schema migrations.

A migration is a version, a name and its statements; the backend's runner applies the
missing ones in order inside one write transaction and records each in
``schema_migrations``, so running it twice, or in two processes at once, is safe.
Released migrations are never edited: a schema change is a new version.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    """One schema version."""

    version: int
    name: str
    statements: tuple[str, ...]


_APPEND_ONLY = """
CREATE TRIGGER audit_log_no_{op} BEFORE {OP} ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END
"""

SQLITE_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "configuration, serial, lock, audit log, master keys",
        (
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
    ),
    Migration(
        2,
        "runtime data: provider health, failure episodes, notifications, credit ledger",
        (
            # Runtime tables outlive the configuration rows on purpose (a deleted
            # workspace's ledger stays countable), so no foreign keys to workspaces.
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
    ),
)
