"""Benchmark: verifying 1,000 workspaces against a loopback provider with 100 ms latency.

Claim (issue 13, tightening issue 5's 1.5x): with ``--parallelism 50`` the wall time is
within 1.2x of the ideal ``N x latency / parallelism`` (1,000 x 0.1 s / 50 = 2 s), and a
re-run within the cache's lifetime makes zero provider calls. The median of ``--runs``
runs counts; each run also prints the CPU time per request of the client (this process)
and of the provider stand-in (its own process), and the machine's load average, because
on a shared 2-core machine the wall time says as much about the neighbours as about us.

Each workspace configures one provider (OpenAI: one list-models request per check) with
its own key, so no two checks share a cache entry or an in-flight request. The provider
is ``byokctl.sandbox`` (its ``latency`` option) when present, else a threaded loopback
server of this script; either runs in a child process. Run::

    /tmp/venv/bin/python benchmarks/verify.py
    /tmp/venv/bin/python benchmarks/verify.py --workspaces 200 --parallelism 20
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from byokctl.catalog import PROVIDERS
from byokctl.model import DesiredState, ProviderConfig, Secret, Workspace
from byokctl.verify import VerifyCache, verify_desired

sys.path.insert(0, str(Path(__file__).parent))
from _report import Row, report


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def _own_server(latency: float) -> Iterator[tuple[str, Callable[[], int]]]:
    """A minimal OpenAI list-models server on loopback, when the sandbox is unavailable."""
    count = [0]
    lock = threading.Lock()
    body = b'{"object":"list","data":[{"id":"gpt-4o","object":"model"}]}'

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            with lock:
                count[0] += 1
            time.sleep(latency)
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.request_queue_size = 256
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/openai/v1", lambda: count[0]
    finally:
        server.shutdown()
        server.server_close()


def _serve(conn: Connection, latency: float, own: bool) -> None:
    """Child process: run the provider, send its URL, answer count and CPU queries."""
    with _provider_here(latency, own=own) as (what, url, counter):
        conn.send((what, url))
        while (query := conn.recv()) in ("count", "cpu"):
            conn.send(counter() if query == "count" else _cpu_seconds())


@contextmanager
def _provider_here(latency: float, *, own: bool) -> Iterator[tuple[str, str, Callable[[], int]]]:
    if not own:
        try:
            from byokctl.sandbox import Sandbox
        except ImportError:
            own = True
    if own:
        with _own_server(latency) as (url, counter):
            yield "own loopback server", url, counter
        return
    with Sandbox(port=0, latency=latency) as sandbox:
        url = sandbox.base_urls()[PROVIDERS["openai"].base_url_env]
        yield "byokctl.sandbox", url, lambda: len(sandbox.requests)


@contextmanager
def provider(
    latency: float, *, own: bool
) -> Iterator[tuple[str, str, Callable[[], int], Callable[[], float]]]:
    """(what, OpenAI base URL, request counter, its CPU seconds), served from another process.

    A separate process, so that the server's threads do not compete with the client for
    the GIL: the benchmark measures byokctl, not the test server.
    """
    parent, child = multiprocessing.get_context("spawn").Pipe()
    process = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(child, latency, own), daemon=True
    )
    process.start()
    what, url = parent.recv()

    def count() -> int:
        parent.send("count")
        return int(parent.recv())

    def cpu() -> float:
        parent.send("cpu")
        return float(parent.recv())

    try:
        yield what, url, count, cpu
    finally:
        parent.send("stop")
        process.join(timeout=10)


def desired(n: int) -> DesiredState:
    workspaces = {
        f"ws-{i:04d}": Workspace(
            f"ws-{i:04d}",
            enabled="openai",
            providers={
                "openai": ProviderConfig(
                    "openai", "gpt-4o", secrets={"api_key": Secret(f"sk-bench-{i:04d}-valid")}
                )
            },
        )
        for i in range(n)
    }
    return DesiredState(workspaces, {})


def main() -> None:
    """Run the benchmark and print its numbers."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspaces", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--parallelism", type=int, default=50)
    parser.add_argument("--own-server", action="store_true", help="do not use byokctl.sandbox")
    parser.add_argument("--runs", type=int, default=5, help="runs; the median counts")
    args = parser.parse_args()
    state = desired(args.workspaces)
    ideal = args.workspaces * args.latency / args.parallelism
    walls: list[float] = []
    with provider(args.latency, own=args.own_server) as (what, url, requests, server_cpu):
        env = {PROVIDERS["openai"].base_url_env: url}
        print(f"provider: {what} in its own process, latency {args.latency * 1000:.0f} ms")
        for run in range(1, args.runs + 1):
            with tempfile.TemporaryDirectory() as tmp:
                cache = VerifyCache(Path(tmp) / "cache", lifetime=600)
                load = os.getloadavg()[0]
                calls, cpu, served = requests(), _cpu_seconds(), server_cpu()
                start = time.perf_counter()
                checks = verify_desired(state, parallelism=args.parallelism, cache=cache, env=env)
                wall = time.perf_counter() - start
                cpu, served = _cpu_seconds() - cpu, server_cpu() - served
                calls = requests() - calls
                ok = sum(c.outcome == "ok" for cs in checks.values() for c in cs)
                start = time.perf_counter()
                verify_desired(state, parallelism=args.parallelism, cache=cache, env=env)
                cached_wall = time.perf_counter() - start
            walls.append(wall)
            print(
                f"run {run}: {wall:.2f} s (ratio {wall / ideal:.2f}x), {ok} ok, {calls} calls; "
                f"CPU per request: client {cpu / max(calls, 1) * 1000:.2f} ms, "
                f"stand-in {served / max(calls, 1) * 1000:.2f} ms; load average {load:.1f} "
                f"on {os.cpu_count()} CPUs; cached re-run {cached_wall:.2f} s"
            )
        total_calls = requests()
    median = statistics.median(walls)
    expected = args.runs * args.workspaces
    print(
        f"verify {args.workspaces} workspaces, parallelism {args.parallelism}: "
        f"median {median:.2f} s"
        f" of {args.runs} (ideal {ideal:.2f} s, ratio {median / ideal:.2f}x; target <= 1.2x)"
    )
    print(f"cached re-runs: {total_calls - expected} provider calls (target: 0)")
    report(
        [
            Row(
                f"verify {args.workspaces:,} at {args.latency * 1000:.0f} ms, "
                f"parallelism {args.parallelism} (median of {args.runs})",
                f"ideal {ideal:.2f} s",
                f"{median:.2f} s",
                f"{median / ideal:.2f}x",
                "<= 1.2x",
                median / ideal <= 1.2,
            ),
            Row(
                "verify cached re-run: provider calls",
                f"{expected:,} calls uncached",
                f"{total_calls - expected} calls",
                "-",
                "0",
                total_calls == expected,
            ),
        ]
    )


if __name__ == "__main__":
    main()
