"""Fixtures for the probe tests: a repo with a SQLite store, the sandbox, a real SMTP server."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from byokctl.resolver import SMTP_FROM_ENV, SMTP_URL_ENV
from byokctl.sandbox import Sandbox
from tests.conftest import Repo
from tests.resolver.conftest import Mailbox, free_port, start_smtp


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    with Sandbox(port=0) as sb:
        for name, url in sb.base_urls().items():
            monkeypatch.setenv(name, url)
        yield sb


@pytest.fixture
def mailbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Mailbox]:
    box = Mailbox(free_port())
    controller = start_smtp(box)
    monkeypatch.setenv(SMTP_URL_ENV, box.url)
    monkeypatch.setenv(SMTP_FROM_ENV, "byokctl@ops.example")
    yield box
    controller.stop()


@pytest.fixture
def repo(make_repo: Callable[[], Repo], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    repo = make_repo()
    monkeypatch.chdir(repo.root)
    monkeypatch.setenv("BYOK_STORE", f"sqlite:///{tmp_path}/state.db")
    monkeypatch.setenv("BYOK_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())
    return repo
