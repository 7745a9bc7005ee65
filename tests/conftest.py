"""Fixtures shared by every test.

``_isolate`` (autouse) makes it impossible for a test to read or write the user's real
home, sops identities, byokctl store or crash logs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_ENV_PREFIXES = ("SOPS_", "BYOK_", "XDG_")


@pytest.fixture(autouse=True)
def _isolate(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("home")
    for name in list(os.environ):
        if name.startswith(_ENV_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    monkeypatch.setenv("SOPS_DISABLE_VERSION_CHECK", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    return home
