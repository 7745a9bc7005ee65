"""Benchmark: a healthy fleet probe of 1,000 workspaces at 100 ms provider latency.

Claim (issue 16): ``byokctl probe`` over 1,000 stored workspaces, each enabled on OpenAI
with its own key (one ``GET /models`` per probe), at parallelism 50 takes at most 1.5x
the ideal ``N x latency / parallelism`` (1,000 x 0.1 s / 50 = 2 s). It is the whole
probe round: targets from the resolver (credentials decrypted from a SQLite store), the
checks, and every verdict recorded. The provider is ``byokctl.sandbox`` in its own
process (see ``benchmarks/verify.py`` for why).

Runs are paired: each probe round is followed by a bare verification of the same
credentials (``verify_desired``, same parallelism, no cache), so the table shows what
probing adds to verification on the same machine at the same moment. The median of the
probe rounds decides; it passes only at <= 1.5x the ideal. Run::

    .venv/bin/python benchmarks/probe.py [--workspaces N] [--parallelism P] [--runs R]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from byokctl.catalog import PROVIDERS
from byokctl.model import DesiredState, ProviderConfig, Secret, Workspace
from byokctl.probe import probe
from byokctl.resolver import Resolver
from byokctl.store import AuditEntry, MasterKey, WorkspaceWrite, open_store
from byokctl.verify import verify_desired

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import Row, report
from verify import provider


def fleet(n: int) -> dict[str, Workspace]:
    return {
        f"ws-{i:04d}": Workspace(
            f"ws-{i:04d}",
            notify=("ops@example.com",),
            enabled="openai",
            providers={
                "openai": ProviderConfig(
                    "openai", "gpt-4o", secrets={"api_key": Secret(f"sk-probe-{i:04d}-valid")}
                )
            },
        )
        for i in range(n)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspaces", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--parallelism", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5, help="paired runs; the median counts")
    args = parser.parse_args()
    workspaces = fleet(args.workspaces)
    ideal = args.workspaces * args.latency / args.parallelism
    key = MasterKey.generate()
    probes: list[float] = []
    verifies: list[float] = []
    with tempfile.TemporaryDirectory(prefix="byok-bench-probe-") as tmp:
        url = f"sqlite:///{tmp}/state.db"
        store = open_store(url, master_key=key)
        audit = AuditEntry("bench", datetime.now(UTC), "apply", 1)
        store.write(
            [WorkspaceWrite.upsert(w) for w in workspaces.values()],
            expected_serial=0,
            audit=audit,
        )
        store.close()
        with provider(args.latency, own=False) as (what, base, requests, _cpu):
            env = {PROVIDERS["openai"].base_url_env: base}
            print(f"provider: {what} in its own process, latency {args.latency * 1000:.0f} ms")
            resolver = Resolver.from_url(
                url, master_key=key, refresh_interval=None, notify=False, env=env
            )
            with resolver:
                for run in range(1, args.runs + 1):
                    load = os.getloadavg()[0]
                    calls = requests()
                    start = time.perf_counter()
                    result = probe(resolver, parallelism=args.parallelism, cache=None, env=env)
                    wall = time.perf_counter() - start
                    calls = requests() - calls
                    if not result.ok or len(result.results) != args.workspaces:
                        raise SystemExit("the fleet is not healthy: the benchmark is void")
                    start = time.perf_counter()
                    verify_desired(
                        DesiredState(workspaces, {}),
                        parallelism=args.parallelism,
                        cache=None,
                        env=env,
                    )
                    bare = time.perf_counter() - start
                    probes.append(wall)
                    verifies.append(bare)
                    print(
                        f"run {run}: probe {wall:.2f} s ({wall / ideal:.2f}x ideal, {calls} "
                        f"calls), bare verification {bare:.2f} s ({bare / ideal:.2f}x); "
                        f"load average {load:.1f} on {os.cpu_count()} CPUs"
                    )
    median = statistics.median(probes)
    paired = statistics.median(p / v for p, v in zip(probes, verifies, strict=True))
    print(
        f"probe {args.workspaces} workspaces, parallelism {args.parallelism}: median "
        f"{median:.2f} s of {args.runs} (ideal {ideal:.2f} s, ratio {median / ideal:.2f}x; "
        f"target <= 1.5x); paired probe/verification {paired:.2f}x"
    )
    report(
        [
            Row(
                f"probe {args.workspaces:,} healthy at {args.latency * 1000:.0f} ms, "
                f"parallelism {args.parallelism} (median of {args.runs} paired runs)",
                f"ideal {ideal:.2f} s",
                f"{median:.2f} s",
                f"{median / ideal:.2f}x (vs bare verification {paired:.2f}x)",
                "<= 1.5x",
                median / ideal <= 1.5,
            )
        ]
    )


if __name__ == "__main__":
    main()
