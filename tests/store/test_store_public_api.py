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
            "open_store",
            "safe_url",
            "save_master_key",
        ]
    )
    for name in byokctl.store.__all__:
        assert hasattr(byokctl.store, name), name


def test_backends_registry() -> None:
    assert set(BACKENDS) == {"sqlite", "postgresql"}
