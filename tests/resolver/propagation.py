"""Measure propagation across resolver processes (used by the tests and ``benchmarks/store.py``).

:class:`WatcherFleet` starts N ``tests.resolver._watcher`` processes on one store. The
driver then alternates two events: an apply (a new provider and key for ``acme``,
written the way apply writes) and a failure reported by one of the processes (an
invalid key: sticky, so every process must route ``acme`` to Neo). For each event it
records, per process, how long after the event committed that process's resolver
returned the new route (the process that reported a failure is not counted: it sees
its own report at once).
"""

from __future__ import annotations

import contextlib
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from byokctl.store import MasterKey, Store
from tests.resolver.helpers import put, workspace

REPO = Path(__file__).resolve().parents[2]
FAILED = ("neo", "provider_failed:invalid_key")
PROVIDERS = ("openai", "anthropic", "deepseek", "xai")


@dataclass
class _Watcher:
    proc: subprocess.Popen[str]
    seen: list[tuple[str, str, float]] = field(default_factory=list)
    reported: list[float] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)
    ready: bool = False

    def read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            parts = line.split()
            with self.cond:
                if parts[:1] == ["seen"]:
                    self.seen.append((parts[1], parts[2], float(parts[3])))
                elif parts[:1] == ["reported"]:
                    self.reported.append(float(parts[1]))
                elif parts[:1] == ["ready"]:
                    self.ready = True
                self.cond.notify_all()

    def wait(self, check: Callable[[], bool], what: str, timeout: float) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: check() or self.proc.poll() is not None, timeout):
                raise AssertionError(f"watcher {self.proc.pid}: timed out waiting for {what}")
            if not check():
                raise AssertionError(f"watcher {self.proc.pid} exited before {what}")

    def first_seen(self, state: tuple[str, str], after: int, timeout: float) -> float:
        """When this process first showed ``state`` among its changes from index ``after``."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for provider, reason, t in self.seen[after:]:
                    if (provider, reason) == state:
                        return t
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.proc.poll() is not None:
                    raise AssertionError(
                        f"watcher {self.proc.pid} never saw {state}; saw {self.seen[after:]}"
                    )
                self.cond.wait(remaining)

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()


@dataclass
class Propagation:
    """Delays in seconds, per event kind."""

    apply: list[float] = field(default_factory=list)
    failure: list[float] = field(default_factory=list)

    @property
    def all(self) -> list[float]:
        """Every delay."""
        return self.apply + self.failure

    def summary(self) -> str:
        """p50, p99 and max of all delays, then of applies and failures apart."""
        return (
            f"{summarize(self.all)}; apply {summarize(self.apply)}; "
            f"failure {summarize(self.failure)}"
        )


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def summarize(values: list[float]) -> str:
    """p50, p99 and max in milliseconds."""
    return (
        f"p50 {statistics.median(values) * 1000:7.1f} ms, p99 {percentile(values, 0.99) * 1000:7.1f}"
        f" ms, max {max(values) * 1000:7.1f} ms ({len(values)} samples)"
    )


class WatcherFleet:
    """N resolver processes watching ``acme``; a context manager that always stops them."""

    def __init__(
        self,
        store_url: str,
        master_key: MasterKey,
        *,
        processes: int = 4,
        refresh_interval: float = 1.0,
        listen: bool = True,
        env: Mapping[str, str] | None = None,
        max_staleness: float | Literal["default"] | None = "default",
    ) -> None:
        environ = {
            **os.environ,
            **(env or {}),
            "BYOK_MASTER_KEY": master_key.to_base64(),
            "PYTHONPATH": str(REPO),
        }
        args = [sys.executable, "-m", "tests.resolver._watcher", store_url,
                str(refresh_interval), "1" if listen else "0"]  # fmt: skip
        if max_staleness != "default":
            args.append("none" if max_staleness is None else str(max_staleness))
        self.watchers = [
            _Watcher(
                subprocess.Popen(
                    args,
                    env=environ,
                    cwd=REPO,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
            for _ in range(processes)
        ]
        self._readers = [threading.Thread(target=w.read, daemon=True) for w in self.watchers]
        for t in self._readers:
            t.start()
        self.stderr: list[str] = []

    def __enter__(self) -> WatcherFleet:
        try:
            for w in self.watchers:
                w.wait(lambda w=w: w.ready, "ready", 60)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Ask every process to quit; kill the ones that do not."""
        for w in self.watchers:
            with contextlib.suppress(OSError):
                w.send("quit")
        for w in self.watchers:
            try:
                _, err = w.proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                _, err = w.proc.communicate()
            self.stderr.append(err)
        for t in self._readers:
            t.join(5)

    @property
    def returncodes(self) -> list[int | None]:
        """Each process's exit status (after :meth:`stop`)."""
        return [w.proc.returncode for w in self.watchers]

    def run(
        self,
        store: Store,
        rounds: int,
        *,
        timeout: float = 10.0,
        after_failure: Callable[[int], None] | None = None,
        jitter: float = 0.0,
    ) -> Propagation:
        """``rounds`` times: an apply, then a failure reported by one process; measure.

        ``after_failure(round)`` (optional) runs after each failure was seen everywhere,
        before the next apply (the e-mail test waits for that episode's e-mail there).
        ``jitter``: sleep up to that many seconds (uniformly) before each event, so that
        events do not start in phase with the processes' polls (which happens when each
        event starts right after the previous one was seen at a poll).
        """
        result = Propagation()
        for i in range(rounds):
            provider = PROVIDERS[i % len(PROVIDERS)]
            time.sleep(random.uniform(0, jitter))
            marks = [len(w.seen) for w in self.watchers]
            put(store, workspace("acme", provider, key=f"sk-round-{i}-{os.urandom(8).hex()}"))
            committed = time.monotonic()
            for w, mark in zip(self.watchers, marks, strict=True):
                result.apply.append(w.first_seen((provider, "byok"), mark, timeout) - committed)
            reporter = self.watchers[i % len(self.watchers)]
            time.sleep(random.uniform(0, jitter))
            marks = [len(w.seen) for w in self.watchers]
            count = len(reporter.reported)
            reporter.send("fail")
            reporter.wait(
                lambda r=reporter, n=count: len(r.reported) > n,  # type: ignore[misc]
                "its report",
                timeout,
            )
            reported = reporter.reported[count]
            for w, mark in zip(self.watchers, marks, strict=True):
                seen = w.first_seen(FAILED, mark, timeout)
                if w is not reporter:
                    result.failure.append(seen - reported)
            if after_failure is not None:
                after_failure(i)
        return result
