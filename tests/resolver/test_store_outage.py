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
from typing import Any

import psycopg
import pytest

from byokctl.resolver import ProviderResponse, Resolver
from byokctl.resolver.options import ResolverOptions
from byokctl.store import MasterKey, open_store
from byokctl.store.runtime import open_runtime_store
from tests.conftest import Repo, workspace_yaml
from tests.pg import Cluster, free_port, throwaway_cluster
from tests.resolver.helpers import put, workspace
from tests.waiting import wait_until

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
    """What one application thread saw, at each change of reason.

    Each change is ``(started, returned, reason, previous_started)``: when the first
    ``resolve`` with the new reason started and returned, and when the last one with
    the previous reason started (monotonic times).
    """

    changes: list[tuple[float, float, str, float]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    slowest_resolve: float = 0.0

    def between(self, start: float, end: float) -> list[tuple[float, float, str, float]]:
        """The changes whose first ``resolve`` started after ``start`` and returned before ``end``."""
        return [c for c in self.changes if c[0] > start and c[1] < end]


def _serve(r: Resolver, stop: threading.Event, load: _Load) -> None:
    last = None
    previous = 0.0
    try:
        while not stop.is_set():
            t = time.monotonic()
            route = r.resolve("acme", "assist")
            returned = time.monotonic()
            load.slowest_resolve = max(load.slowest_resolve, returned - t)  # printed only
            if route.reason != last:
                load.changes.append((t, returned, route.reason, previous))
                last = route.reason
            previous = t
            if not route.is_neo:
                r.report(route, "ok")
            time.sleep(0.001)
    except BaseException as exc:  # the test asserts there are none
        load.errors.append(exc)


#: The resolver's background thread (polls, flushes): the one the gate can hold.
_REFRESH_THREAD = "byokctl-resolver-refresh"


class _Spied:
    """A store (or runtime store) that records which thread calls it, and can hold the
    resolver's background thread at its next call (``hold``/``release``).

    Holding it lets the test make the last successful read itself, at a known time: the
    staleness bound then starts from that read, whatever the machine's load.
    """

    def __init__(self, inner: object, calls: list[str]) -> None:
        self._inner = inner
        self._calls = calls
        self._open = threading.Event()
        self._open.set()
        self.held = threading.Event()

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args: object, **kwargs: object) -> object:
            thread = threading.current_thread().name
            self._calls.append(thread)  # list.append is atomic
            if thread == _REFRESH_THREAD and not self._open.is_set():
                self.held.set()
                self._open.wait()
            return attr(*args, **kwargs)

        return call


def _spied_resolver(url: str, key: MasterKey, calls: list[str]) -> tuple[Resolver, list[_Spied]]:
    store = _Spied(open_store(url, master_key=key), calls)
    runtime = _Spied(open_runtime_store(url), calls)
    r = Resolver(
        store,  # type: ignore[arg-type]
        runtime,  # type: ignore[arg-type]
        ResolverOptions(refresh_interval=REFRESH_S, max_staleness=MAX_STALENESS_S, env={}),
        owns_stores=True,
    )
    return r, [store, runtime]


def _database(cluster: Cluster, name: str) -> str:
    """A new database on the cluster, as a store URL (each test starts empty)."""
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    base, _, query = cluster.url.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}?{query}"


def test_outage_serves_the_cache_then_fails_closed_logs_once_and_recovers(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    key = MasterKey.generate()
    url = _database(cluster, "resolvers")
    with open_store(url, master_key=key) as store:
        put(store, workspace("acme", "openai"))
    caplog.set_level(logging.INFO, logger="byokctl")
    calls: list[str] = []  # the name of the thread of every store call
    spied = [_spied_resolver(url, key, calls) for _ in range(2)]
    resolvers = [r for r, _ in spied]
    loads = [_Load() for _ in range(4)]
    stop = threading.Event()
    threads = [
        threading.Thread(target=_serve, args=(resolvers[i % 2], stop, load), name=f"load-{i}")
        for i, load in enumerate(loads)
    ]
    for t in threads:
        t.start()
    me = threading.current_thread().name
    try:
        wait_until(lambda: all(load.changes for load in loads), what="every load to resolve")
        # The last successful read before the outage is the test's own: hold each
        # background thread at its next store call, then refresh.
        for _, stores in spied:
            for s in stores:
                s.hold()
        wait_until(
            lambda: all(any(s.held.is_set() for s in stores) for _, stores in spied),
            what="the background threads to be held",
        )
        read = []  # (started, returned) of each resolver's last successful read
        window = time.monotonic()  # what the loads see from here on is checked below
        for r in resolvers:
            started = time.monotonic()
            r.refresh()
            read.append((started, time.monotonic()))
        cluster.stop()  # immediate: every session cut at once, like a crash
        down_at = time.monotonic()
        for _, stores in spied:
            for s in stores:
                s.release()  # their calls now meet the stopped server

        # The outage is noticed by the background poll.
        wait_until(lambda: not any(r.store_available for r in resolvers), what="the outage")
        # Reporting during the outage never raises and never touches the store.
        before = calls.count(me)
        outcome = resolvers[0].report(resolvers[0].resolve("acme", "assist"), INVALID)
        assert calls.count(me) == before, "report called the store during the outage"
        assert outcome is not None and outcome.outcome == "invalid_key"

        # Past the staleness bound: fail closed to Neo.
        wait_until(
            lambda: all(
                r.resolve("acme", "assist").reason == "store_unavailable" for r in resolvers
            ),
            what="store_unavailable",
        )
        route = resolvers[1].resolve("acme", "summarize")
        assert (route.provider, route.cost) == ("neo", 2)
        up_at = time.monotonic()
        cluster.start()
        wait_until(
            lambda: all(r.resolve("acme", "assist").reason == "byok" for r in resolvers),
            what="recovery",
        )
        back_at = time.monotonic()
        # Recovered for real: a failure reported now reaches the other resolver.
        resolvers[0].report(resolvers[0].resolve("acme", "assist"), INVALID)
        wait_until(
            lambda: resolvers[1].resolve("acme", "assist").reason == "provider_failed:invalid_key",
            what="the failure after recovery",
        )
    finally:
        stop.set()
        for _, stores in spied:
            for s in stores:
                s.release()
        for t in threads:
            t.join(10)
        for r in resolvers:
            r.close()
    first_closed = min(
        c[0] for load in loads for c in load.between(window, up_at) if c[2] == "store_unavailable"
    )
    print(
        f"\nstore_unavailable {first_closed - down_at:.2f} s after the stop "
        f"(max_staleness {MAX_STALENESS_S} s); routes back {back_at - up_at:.2f} s after "
        f"the restart; slowest resolve {max(x.slowest_resolve for x in loads) * 1e3:.2f} ms"
    )
    assert all(not load.errors for load in loads), [load.errors for load in loads]
    # The hot path never waits for the store: the application's threads never call it.
    assert not [name for name in calls if name.startswith("load-")]
    # The cache served until the staleness bound, then Neo: never anything else, never
    # back. Bounds from the last successful read (not the clock of a busy machine):
    # no Neo before read-start + max_staleness, no cache after read-end + max_staleness.
    for i, load in enumerate(loads):
        (read_started, read_returned) = read[i % 2]
        outage = load.between(window, up_at)
        assert [c[2] for c in outage] in ([], ["store_unavailable"]), load.changes
        for _started, returned, reason, previous in outage:
            assert returned > read_started + MAX_STALENESS_S, (reason, returned, read)
            assert previous <= read_returned + MAX_STALENESS_S, (reason, previous, read)

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
