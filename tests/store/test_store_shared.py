"""One database object per process and database, shared by every store view on it.

``open_store`` and ``open_runtime_store`` hand out views; the views of one database
share its connections (one pool on PostgreSQL), closing a view releases its reference,
and the last close closes the connections. Run on each backend (the ``backend``
fixture), plus what only PostgreSQL can show (connections in ``pg_stat_activity``).
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime

import psycopg
import pytest

from byokctl.errors import StoreError
from byokctl.resolver import Resolver
from byokctl.store import AuditEntry, MasterKey, WorkspaceWrite, open_store
from byokctl.store._registry import open_databases
from byokctl.store.runtime import open_runtime_store
from tests.pg import postgres_schema_url
from tests.store.storetest_helpers import Backend, workspace


def _apply(store_url: str, key: MasterKey, name: str) -> None:
    with open_store(store_url, master_key=key) as s:
        serial = s.serial()
        s.write(
            [WorkspaceWrite.upsert(workspace(name))],
            expected_serial=serial,
            audit=AuditEntry("test", datetime.now(UTC), "apply", serial + 1),
        )


def test_views_share_one_database_until_the_last_closes(
    backend: Backend, master_key: MasterKey
) -> None:
    before = open_databases()
    first = backend.open(master_key)
    second = backend.open(master_key)
    runtime = open_runtime_store(backend.url)
    assert open_databases() == before + 1  # three views, one database object
    first.close()
    first.close()  # a second close releases nothing more
    assert open_databases() == before + 1
    assert second.serial() == 0
    assert runtime.versions() == (0, 0)
    with pytest.raises(StoreError, match="is closed"):
        first.serial()
    second.close()
    assert runtime.versions() == (0, 0)  # the runtime view still holds the database
    runtime.close()
    assert open_databases() == before
    with pytest.raises(StoreError, match="is closed"):
        runtime.versions()
    # Opened again after the last close: a new database object, working.
    with backend.open(master_key) as again:
        assert again.serial() == 0
        assert open_databases() == before + 1
    assert open_databases() == before


def test_a_view_sees_the_writes_of_another_view(backend: Backend, master_key: MasterKey) -> None:
    with backend.open(master_key) as reader:
        _apply(backend.url, master_key, "acme")
        assert sorted(reader.read_state().workspaces) == ["acme"]


def test_views_keep_their_own_keys(backend: Backend, master_key: MasterKey) -> None:
    # The database is shared; the keyring is the view's: a wrong key still fails.
    with backend.open(master_key) as right:
        _apply(backend.url, master_key, "acme")
        with backend.open(MasterKey.generate()) as wrong, pytest.raises(StoreError, match="key"):
            wrong.read_state()
        assert "acme" in right.read_state().workspaces


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_opens_its_own_database(backend: Backend, master_key: MasterKey) -> None:
    with backend.open(master_key) as parent:
        assert open_databases() >= 1
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through its exit code
            code = 1
            try:
                # The parent's connections are not the child's: it starts with none.
                if open_databases() == 0:
                    _apply(backend.url, master_key, "from-child")
                    code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert "from-child" in parent.read_state().workspaces  # the parent's still work


def _connections(database_url: str, application_name: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = %s",
            (application_name,),
        ).fetchone()
    return int(row[0]) if row else 0


def test_one_resolver_holds_one_pool_on_postgresql(postgres_database: str) -> None:
    # Before the store was one database object, Resolver.from_url opened two pools on one
    # database (the live store's and the runtime store's): two connections at least.
    name = f"byok-pools-{secrets.token_hex(4)}"
    url = f"{postgres_schema_url(postgres_database)}&application_name={name}"
    key = MasterKey.generate()
    _apply(url, key, "acme")
    assert _connections(postgres_database, name) == 0
    resolver = Resolver.from_url(
        url, master_key=key, refresh_interval=None, listen=False, notify=False, env={}
    )
    try:
        for _ in range(3):
            resolver.resolve("acme", "assist")
        resolver.flush()
        resolver.refresh()
        assert _connections(postgres_database, name) == 1  # one pool, one at a time
    finally:
        resolver.close()
    assert _connections(postgres_database, name) == 0  # the last close closed the pool
