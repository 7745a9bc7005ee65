"""Fixtures for ``byokctl serve``: a store with workspaces, the app, uvicorn on a loopback port.

The server runs for real (uvicorn in a thread, on a socket bound to 127.0.0.1:0); tests
talk to it over HTTP with httpx, curl or a browser. Tokens are written to a real tokens
file, one per scope set, and handed to the tests in ``Served.tokens``.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import uvicorn

from byokctl.resolver import Resolver
from byokctl.resolver.options import ResolverOptions
from byokctl.serve.access import Access
from byokctl.serve.app import create_app
from byokctl.serve.auth import Sessions, Tokens, add_token
from byokctl.serve.state import ServeState
from byokctl.store import AuditChange, AuditEntry, MasterKey, Store, WorkspaceWrite, open_store
from byokctl.store.runtime import RuntimeStore, open_runtime_store
from tests.pg import postgres_database, postgres_schema_url  # noqa: F401 - a fixture
from tests.resolver.helpers import CANARY, workspace
from tests.waiting import wait_until

SCOPE_SETS = {
    "read": {"read"},
    "resolve": {"resolve"},
    "keys": {"resolve", "resolve:keys"},
    "admin": {"admin"},
}


class LiveServer:
    """uvicorn serving ``app`` in a thread on a loopback port of its own."""

    def __init__(self, app: object) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")  # type: ignore[arg-type]
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        self.thread.start()
        wait_until(lambda: self.server.started, what="uvicorn to start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


@dataclass
class Served:
    """A running server, its stores and resolver, and one token per scope set."""

    url: str
    store: Store
    runtime: RuntimeStore
    resolver: Resolver
    state: ServeState
    tokens: dict[str, str] = field(default_factory=dict)
    tokens_file: Path | None = None

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {} if token is None else {"Authorization": f"Bearer {self.tokens[token]}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each server test runs on SQLite and on PostgreSQL (a fresh schema)."""
    if request.param == "postgresql":
        database: str = request.getfixturevalue("postgres_database")
        return postgres_schema_url(database)
    return f"sqlite:///{tmp_path / 'store' / 'state.db'}"


@pytest.fixture
def master_key() -> MasterKey:
    return MasterKey.generate()


def fleet(store: Store) -> None:
    """The test fleet: BYOK on OpenAI (the canary key), on Anthropic, and one on Neo.

    Written the way apply writes it: one transaction, audited with each change's fields.
    """
    workspaces = (
        workspace("acme-support", "openai"),
        workspace("globex", "anthropic", key="sk-ant-test-key-000000000000"),
        workspace("initech", None),
    )
    fields = {"acme-support": ("enabled", "providers.openai.api_key", "providers.openai.model")}
    audit = AuditEntry(
        "ci@example.com",
        datetime.now(UTC),
        "apply",
        store.serial() + 1,
        tuple(AuditChange(w.name, "create", fields.get(w.name, ("notify",))) for w in workspaces),
    )
    store.write(
        [WorkspaceWrite.upsert(w) for w in workspaces], expected_serial=store.serial(), audit=audit
    )


def serve(
    tmp_path: Path, store_url: str, master_key: MasterKey, *, tokens: bool
) -> Iterator[Served]:
    store = open_store(store_url, master_key=master_key)
    fleet(store)
    runtime = open_runtime_store(store_url)
    resolver = Resolver(
        open_store(store_url, master_key=master_key),
        open_runtime_store(store_url),
        ResolverOptions(refresh_interval=0.1, notify=False, env={}),
        owns_stores=True,
    )
    issued: dict[str, str] = {}
    tokens_file = None
    if tokens:
        tokens_file = tmp_path / "tokens"
        for name, scopes in SCOPE_SETS.items():
            issued[name] = add_token(tokens_file, frozenset(scopes))
        access = Access(Tokens.load(tokens_file), Sessions())
    else:
        access = Access(None, Sessions())
    state = ServeState(resolver, store, runtime, access)
    server = LiveServer(create_app(state)).start()
    try:
        yield Served(server.url, store, runtime, resolver, state, issued, tokens_file)
    finally:
        server.stop()
        resolver.close()
        runtime.close()
        store.close()


@pytest.fixture
def served(tmp_path: Path, store_url: str, master_key: MasterKey) -> Iterator[Served]:
    """A server with tokens (the way a non-loopback bind must run)."""
    yield from serve(tmp_path, store_url, master_key, tokens=True)


@pytest.fixture
def served_open(tmp_path: Path, store_url: str, master_key: MasterKey) -> Iterator[Served]:
    """A loopback server without tokens."""
    yield from serve(tmp_path, store_url, master_key, tokens=False)


__all__ = ["CANARY", "LiveServer", "Served"]
