"""Fixtures for the resolver tests: a store, an injectable clock, a real SMTP server.

``store_url`` is parametrized: every test that uses it runs against SQLite and against
PostgreSQL (a fresh schema in the session's database, see ``tests/pg.py``), since health,
episodes, e-mail claims and credits all live in the store.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from byokctl.store import MasterKey, Store, open_store
from byokctl.store.runtime import RuntimeStore, open_runtime_store
from tests.pg import postgres_database, postgres_schema_url  # noqa: F401 - a fixture
from tests.resolver.helpers import Clock

BACKEND_NAMES = ["sqlite", "postgresql"]


@pytest.fixture
def master_key() -> MasterKey:
    return MasterKey.generate()


@pytest.fixture(params=BACKEND_NAMES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store location on each backend."""
    if request.param == "postgresql":
        database: str = request.getfixturevalue("postgres_database")
        return postgres_schema_url(database)
    return f"sqlite:///{tmp_path / 'store' / 'state.db'}"


@pytest.fixture
def store(store_url: str, master_key: MasterKey) -> Iterator[Store]:
    """The configuration store (what apply writes); migrated, so the runtime side exists."""
    s = open_store(store_url, master_key=master_key)
    yield s
    s.close()


@pytest.fixture
def runtime(store: Store, store_url: str) -> Iterator[RuntimeStore]:
    """The runtime side of the same store, opened apart from any resolver: what every
    process sees (health, episodes, e-mails sent, the ledger)."""
    rt = open_runtime_store(store_url)
    yield rt
    rt.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@dataclass
class Mailbox:
    """What the SMTP server received."""

    port: int
    messages: list[tuple[list[str], Message]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[tuple[list[str], Message]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.02)
        with self.lock:
            return list(self.messages)


class _Handler:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        content = envelope.content  # type: ignore[attr-defined]
        data = content if isinstance(content, bytes) else content.encode()
        with self.box.lock:
            self.box.messages.append((list(envelope.rcpt_tos), message_from_bytes(data)))  # type: ignore[attr-defined]
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_smtp(box: Mailbox) -> Controller:
    controller = Controller(_Handler(box), hostname="127.0.0.1", port=box.port)
    controller.start()
    return controller


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """A real SMTP server (aiosmtpd) on loopback."""
    box = Mailbox(free_port())
    controller = start_smtp(box)
    yield box
    controller.stop()
