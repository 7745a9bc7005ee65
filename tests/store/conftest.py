"""Fixtures for the store contract suite: one ``backend`` fixture, one param per backend.

Each backend has its name in ``BACKEND_NAMES`` and a branch in ``backend``; every
contract test runs against each unchanged. PostgreSQL tests run in a database created
for the test session (``byok_test_<random>`` on the server named by
``BYOK_TEST_POSTGRES``, default ``postgresql://postgres@127.0.0.1:5432/postgres``),
one schema per test, and the database is dropped at the end. When the server is
unreachable they skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from byokctl.store import MasterKey, Store
from tests.store.storetest_helpers import Backend

BACKEND_NAMES = ["sqlite", "postgresql"]

#: The server PostgreSQL tests create their database on (a maintenance database URL).
POSTGRES_ADMIN_URL = os.environ.get(
    "BYOK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def postgres_unavailable(reason: str) -> None:
    """Skip a PostgreSQL test, or fail it under CI, where these tests must run."""
    message = f"PostgreSQL is not available at {POSTGRES_ADMIN_URL}: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: PostgreSQL tests must run)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh database for this test session; yields its URL and drops it afterwards."""
    name = f"byok_test_{secrets.token_hex(6)}"
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'CREATE DATABASE "{name}"'.encode())
    except psycopg.Error as exc:
        postgres_unavailable(str(exc).strip().splitlines()[0])
    base, _, _ = POSTGRES_ADMIN_URL.partition("?")
    try:
        yield f"{base.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def postgres_schema_url(database_url: str) -> str:
    """A new, empty schema in the session's database, as a store URL that uses it."""
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"'.encode())
    return f"{database_url}?options=-csearch_path%3D{schema}&connect_timeout=3"


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
