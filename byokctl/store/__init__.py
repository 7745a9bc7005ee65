"""The live store: workspaces, serial, lock, audit log, encryption at rest.

``open_store(url, master_key=...)`` returns a :class:`Store`; backends (SQLite and
PostgreSQL) are listed in :data:`BACKENDS` by URL scheme. A store is a view onto one
database object per process and database, which serves the runtime side
(:mod:`byokctl.store.runtime`) too. Every backend passes the same contract suite.
"""

from __future__ import annotations

from ._keys import (
    ENV_KEY,
    ENV_KEY_FILE,
    ENV_KEY_NEXT,
    ENV_KEY_NEXT_FILE,
    MASTER_KEY_FILE_NAME,
    LoadedMasterKey,
    MasterKey,
    load_master_key,
    load_next_keys,
    read_master_key_file,
    save_master_key,
)
from ._registry import BACKENDS, check_store_url, open_store, store_exists
from ._types import AuditChange, AuditEntry, LockInfo, Store, WorkspaceWrite, WriteAction
from ._urls import DEFAULT_STORE_URL, safe_url

__all__ = [
    "BACKENDS",
    "DEFAULT_STORE_URL",
    "ENV_KEY",
    "ENV_KEY_FILE",
    "ENV_KEY_NEXT",
    "ENV_KEY_NEXT_FILE",
    "MASTER_KEY_FILE_NAME",
    "AuditChange",
    "AuditEntry",
    "LoadedMasterKey",
    "LockInfo",
    "MasterKey",
    "Store",
    "WorkspaceWrite",
    "WriteAction",
    "check_store_url",
    "load_master_key",
    "load_next_keys",
    "open_store",
    "read_master_key_file",
    "safe_url",
    "save_master_key",
    "store_exists",
]
