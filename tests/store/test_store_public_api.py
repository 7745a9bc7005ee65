"""The store package's public surface is exactly what it means to export."""

from __future__ import annotations

import byokctl.store
from byokctl.store import BACKENDS


def test_exported_names_are_pinned() -> None:
    assert sorted(byokctl.store.__all__) == sorted(
        [
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
            "load_master_key",
            "load_next_keys",
            "check_store_url",
            "open_store",
            "read_master_key_file",
            "safe_url",
            "save_master_key",
            "store_exists",
        ]
    )
    for name in byokctl.store.__all__:
        assert hasattr(byokctl.store, name), name


def test_backends_registry() -> None:
    assert set(BACKENDS) == {"sqlite", "postgresql", "postgres"}  # libpq's two spellings
    assert BACKENDS["postgres"] is BACKENDS["postgresql"]
