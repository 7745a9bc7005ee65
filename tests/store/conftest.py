"""Fixtures for the store contract suite: one ``backend`` fixture, one param per backend.

Each backend has its name in ``BACKEND_NAMES`` and a branch in ``backend``; every
contract test runs against each unchanged. PostgreSQL tests run in a database created
for the test session (``byok_test_<random>`` on the server named by
``BYOK_TEST_POSTGRES``, default ``postgresql://postgres@127.0.0.1:5432/postgres``),
one schema per test, and the database is dropped at the end (see ``tests/pg.py``). When
the server is unreachable they skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from byokctl.store import MasterKey, Store

# The PostgreSQL helpers are shared with the resolver tests; re-exported here because
# the store tests import them from this module.
from tests.pg import (  # noqa: F401 - postgres_database is a fixture
    POSTGRES_ADMIN_URL,
    postgres_database,
    postgres_schema_url,
    postgres_unavailable,
)
from tests.store.storetest_helpers import Backend

BACKEND_NAMES = ["sqlite", "postgresql"]


@pytest.fixture(autouse=True)
def _no_real_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A store test must never read or write the user's home or the real .byok/.
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(home / var.lower()))
    for var in ("BYOK_MASTER_KEY", "BYOK_MASTER_KEY_FILE", "BYOK_STORE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(params=BACKEND_NAMES)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """A fresh store location on each backend."""
    if request.param == "sqlite":
        return Backend("sqlite", f"sqlite:///{tmp_path / 'store' / 'state.db'}")
    if request.param == "postgresql":
        database: str = request.getfixturevalue("postgres_database")
        return Backend("postgresql", postgres_schema_url(database))
    raise AssertionError(f"unknown backend {request.param}")  # pragma: no cover


@pytest.fixture
def master_key() -> MasterKey:
    """A random master key for this test."""
    return MasterKey.generate()


@pytest.fixture
def store(backend: Backend, master_key: MasterKey) -> Iterator[Store]:
    """An open, empty store on each backend."""
    s = backend.open(master_key)
    yield s
    s.close()
