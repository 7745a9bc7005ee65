"""The PostgreSQL server stopped and restarted under resolver load, on a throwaway cluster.

The shared server is never stopped: the cluster is started here with ``initdb`` and
``pg_ctl`` on a free port (``tests.pg.throwaway_cluster``) and deleted afterwards.
Also here: ``plan`` and ``apply`` against an unreachable store fail with a clear message
and change nothing (CLI level, in a subprocess).
"""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from byokctl.resolver import ProviderResponse, Resolver
from byokctl.store import MasterKey, open_store
from tests.conftest import Repo, workspace_yaml
from tests.pg import Cluster, free_port, throwaway_cluster
from tests.resolver.helpers import put, workspace

REPO = Path(__file__).resolve().parents[2]
INVALID = ProviderResponse(401, b'{"error":{"code":"invalid_api_key","message":"bad key"}}')
REFRESH_S = 0.2
MAX_STALENESS_S = 2.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A fresh cluster for this module, stopped and deleted afterwards."""
    with throwaway_cluster() as node:
        yield node


@dataclass
class _Load:
    """What one application thread saw: (monotonic time, reason) at each change."""

    changes: list[tuple[float, str]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    slowest_resolve: float = 0.0

    def reasons_between(self, start: float, end: float) -> set[str]:
        last = None
        seen = set()
        for t, reason in self.changes:
            if t <= start:
                last = reason
            elif t <= end:
                seen.add(reason)
        return seen | ({last} if last else set())


def _serve(r: Resolver, stop: threading.Event, load: _Load) -> None:
    last = None
    try:
        while not stop.is_set():
            t = time.monotonic()
            route = r.resolve("acme", "assist")
            load.slowest_resolve = max(load.slowest_resolve, time.monotonic() - t)
            if route.reason != last:
                load.changes.append((t, route.reason))
                last = route.reason
            if not route.is_neo:
                r.report(route, "ok")
            time.sleep(0.001)
    except BaseException as exc:  # the test asserts there are none
        load.errors.append(exc)


def _database(cluster: Cluster, name: str) -> str:
    """A new database on the cluster, as a store URL (each test starts empty)."""
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    base, _, query = cluster.url.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}?{query}"


def _wait(check: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"timed out waiting for {what}"
        time.sleep(0.01)
    return time.monotonic()


def test_outage_serves_the_cache_then_fails_closed_logs_once_and_recovers(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    key = MasterKey.generate()
    url = _database(cluster, "resolvers")
    with open_store(url, master_key=key) as store:
        put(store, workspace("acme", "openai"))
    caplog.set_level(logging.INFO, logger="byokctl")
    options = {"refresh_interval": REFRESH_S, "max_staleness": MAX_STALENESS_S, "env": {}}
    resolvers = [Resolver.from_url(url, master_key=key, **options) for _ in range(2)]  # type: ignore[arg-type]
    loads = [_Load() for _ in range(4)]
    stop = threading.Event()
    threads = [
        threading.Thread(target=_serve, args=(resolvers[i % 2], stop, load))
        for i, load in enumerate(loads)
    ]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        down_at = time.monotonic()
        cluster.stop()  # immediate: every session cut at once, like a crash

        # The outage is noticed by the background poll, and served from the cache.
        _wait(lambda: not any(r.store_available for r in resolvers), 5.0, "the outage")
        for r in resolvers:
            assert r.resolve("acme", "assist").reason == "byok"
        # Reporting during the outage never raises and never waits for the store.
        started = time.monotonic()
        outcome = resolvers[0].report(resolvers[0].resolve("acme", "assist"), INVALID)
        assert time.monotonic() - started < 0.05
        assert outcome is not None and outcome.outcome == "invalid_key"
        assert resolvers[0].resolve("acme", "assist").reason == "byok"  # dropped, not applied

        # Past the staleness bound: fail closed to Neo.
        closed_at = _wait(
            lambda: all(
                r.resolve("acme", "assist").reason == "store_unavailable" for r in resolvers
            ),
            MAX_STALENESS_S + 3.0,
            "store_unavailable",
        )
        route = resolvers[1].resolve("acme", "summarize")
        assert (route.provider, route.cost) == ("neo", 2)
        up_at = time.monotonic()
        cluster.start()
        back_at = _wait(
            lambda: all(r.resolve("acme", "assist").reason == "byok" for r in resolvers),
            15.0,
            "recovery",
        )
        # Recovered for real: a failure reported now reaches the other resolver.
        resolvers[0].report(resolvers[0].resolve("acme", "assist"), INVALID)
        _wait(
            lambda: resolvers[1].resolve("acme", "assist").reason == "provider_failed:invalid_key",
            1.0,
            "the failure after recovery",
        )
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        for r in resolvers:
            r.close()
    print(
        f"\nstore_unavailable {closed_at - down_at:.2f} s after the stop "
        f"(max_staleness {MAX_STALENESS_S} s); routes back {back_at - up_at:.2f} s after "
        f"the restart; slowest resolve {max(x.slowest_resolve for x in loads) * 1e3:.2f} ms"
    )
    assert all(not load.errors for load in loads), [load.errors for load in loads]
    # The cache served until the staleness bound, then Neo: never anything else.
    assert MAX_STALENESS_S - REFRESH_S - 0.1 <= closed_at - down_at <= MAX_STALENESS_S + 2.5
    for load in loads:
        assert load.reasons_between(down_at, up_at) <= {"byok", "store_unavailable"}
        assert load.slowest_resolve < 0.05  # the hot path never waits for the store

    # One warning per resolver for the whole outage (none per request), one line each,
    # and one info line when it ended.
    ours = [rec for rec in caplog.records if rec.name.startswith("byokctl")]
    warnings = [
        rec.getMessage()
        for rec in ours
        if rec.levelno >= logging.WARNING and "Neo takes over" not in rec.getMessage()
    ]  # the failure reported after the recovery is logged as usual
    assert len(warnings) == 2, warnings
    for message in warnings:
        assert "store is unavailable" in message and "store_unavailable" in message
        assert f"127.0.0.1:{cluster.port}" in message and "\n" not in message
    recovered = [rec.getMessage() for rec in ours if "reachable again" in rec.getMessage()]
    assert len(recovered) == 2, recovered

    # Credits charged during the outage were kept and written after it.
    with Resolver.from_url(url, master_key=key, refresh_interval=None, env={}) as r:
        usage = {(u.route, u.feature) for u in r.credit_usage(workspace="acme")}
    assert ("neo", "summarize") in usage and ("neo", "assist") in usage


@pytest.fixture
def repo(make_repo: Callable[[], Repo], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    repo = make_repo()
    repo.write("alpha", workspace_yaml("alpha", enabled="openai", keys={"openai": "sk-cli-a1"}))
    monkeypatch.chdir(repo.root)
    monkeypatch.setenv("BYOK_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())
    return repo


def _byokctl(*args: str, store: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BYOK_STORE": store, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "byokctl", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "command", [["plan", "--no-verify"], ["apply", "--no-verify", "--auto-approve"]]
)
def test_plan_and_apply_against_an_unreachable_store_fail_in_one_line(
    repo: Repo, command: list[str]
) -> None:
    port = free_port()  # nothing listens there
    done = _byokctl(*command, store=f"postgresql://127.0.0.1:{port}/x")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("byokctl: error: cannot reach the PostgreSQL store")
    assert f"127.0.0.1:{port}" in lines[0]
    # The message is one line; the CLI adds its hint on a second.
    assert len(lines) <= 2 and all(line.strip().startswith("hint:") for line in lines[1:])


def test_apply_while_the_server_is_down_changes_nothing(repo: Repo, cluster: Cluster) -> None:
    url = _database(cluster, "cli")
    assert _byokctl("apply", "--no-verify", "--auto-approve", store=url).returncode == 0
    key = MasterKey.from_base64(os.environ["BYOK_MASTER_KEY"], source="test")
    with open_store(url, master_key=key) as store:
        before = store.serial()
    repo.write("beta", workspace_yaml("beta"))
    cluster.stop()
    try:
        done = _byokctl("apply", "--no-verify", "--auto-approve", store=url)
    finally:
        cluster.start()
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"127.0.0.1:{cluster.port}" in done.stderr.splitlines()[0]
    with open_store(url, master_key=key) as store:
        assert store.serial() == before
        assert sorted(store.read_state().workspaces) == ["alpha"]
