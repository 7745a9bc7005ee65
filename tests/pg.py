"""PostgreSQL for the tests: the shared server's per-session database, schemas, and throwaway clusters.

Used by ``tests/store`` and ``tests/resolver``. Tests on the shared server run in a
database created for the test session (``byok_test_<random>`` on the server named by
``BYOK_TEST_POSTGRES``, default ``postgresql://postgres@127.0.0.1:5432/postgres``), one
schema per test; the database is dropped at the end. The shared server is never
stopped: outage tests start their own cluster with ``initdb``/``pg_ctl`` on a free
port (as the ``postgres`` OS user when run as root, since PostgreSQL refuses root).
When PostgreSQL is unavailable these tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

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


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres() -> str | None:
    return "postgres" if os.geteuid() == 0 else None


@dataclass
class Cluster:
    """A throwaway PostgreSQL cluster: its data directory, port and control commands."""

    base: Path
    port: int
    pg_ctl: str

    @property
    def url(self) -> str:
        """A store URL on this cluster (trust auth, short connect timeout)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres?connect_timeout=2"

    def _run(self, *args: str) -> None:
        subprocess.run(
            [self.pg_ctl, "-D", str(self.base / "data"), *args],
            check=True,
            capture_output=True,
            user=_as_postgres(),
            timeout=60,
        )

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1"
            # Only the processes are killed here, never the machine: no fsync needed.
            " -c fsync=off -c max_connections=60"
        )
        self._run("-l", str(self.base / "server.log"), "-w", "-t", "30", "-o", options, "start")

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server (``immediate``: like a crash, every session cut at once)."""
        self._run("-m", mode, "-w", "stop")


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """A fresh, started cluster on a free port, stopped and deleted afterwards."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is None or pg_ctl is None:
        postgres_unavailable("initdb and pg_ctl are not on PATH")
    assert initdb is not None and pg_ctl is not None
    base = Path(tempfile.mkdtemp(prefix="byok-pg-"))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    node = Cluster(base, free_port(), pg_ctl)
    try:
        subprocess.run(
            [initdb, "-D", str(base / "data"), "-A", "trust", "-U", "postgres", "--no-sync"],
            check=True,
            capture_output=True,
            user=_as_postgres(),
            timeout=120,
        )
        node.start()
    except (OSError, subprocess.SubprocessError) as exc:
        shutil.rmtree(base, ignore_errors=True)
        postgres_unavailable(f"cannot start a throwaway cluster: {exc}")
    try:
        yield node
    finally:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            node.stop()  # fails only if already stopped
        shutil.rmtree(base, ignore_errors=True)
