"""Benchmark: a cached ``Resolver.resolve`` against LiteLLM's ``Router`` selection step.

Claim (issue 6): a cached resolve has a median latency of at most 5 µs and is at least
20x faster than the anchor. The anchor is the selection step of LiteLLM's ``Router``
(``get_available_deployment``) on an equivalent configuration: six deployments, one per
provider (OpenAI, Anthropic, Gemini, Azure OpenAI, xAI, DeepSeek), each its own model
group as a workspace's single enabled provider is. LiteLLM is installed only for this
benchmark (``pip install litellm``); it is not a dependency of byokctl.

Run: ``python benchmarks/resolver.py [--workspaces N] [--calls N]``. Prints median and
p99 per call (single-threaded, timed one call at a time with ``perf_counter_ns``, minus
the timer's own cost) and throughput with 1 and 8 threads, for both, and the ratio.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from byokctl.model import ProviderConfig, Secret, Workspace
from byokctl.resolver import Resolver
from byokctl.store import AuditEntry, MasterKey, WorkspaceWrite, open_store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import Row, report

PROVIDERS = {
    "openai": ("gpt-4o", "openai/gpt-4o"),
    "anthropic": ("claude-3-5-sonnet-20241022", "anthropic/claude-3-5-sonnet-20241022"),
    "gemini": ("gemini-2.0-flash", "gemini/gemini-2.0-flash"),
    "azure_openai": ("gpt-4", "azure/gpt4-prod"),
    "xai": ("grok-3", "xai/grok-3"),
    "deepseek": ("deepseek-chat", "deepseek/deepseek-chat"),
}


def _workspace(i: int) -> Workspace:
    provider = list(PROVIDERS)[i % len(PROVIDERS)]
    settings = (
        {"endpoint": "https://acme.openai.azure.com", "api_version": "2024-06-01",
         "deployment": "gpt4-prod"}
        if provider == "azure_openai" else {}
    )  # fmt: skip
    cfg = ProviderConfig(
        provider, PROVIDERS[provider][0], settings, {"api_key": Secret(f"sk-bench-{i:08d}-key")}
    )
    return Workspace(f"ws-{i}", ("ops@example.com",), provider, {provider: cfg})


def _timer_overhead() -> float:
    clock = time.perf_counter_ns
    samples = []
    for _ in range(10_000):
        t0 = clock()
        samples.append(clock() - t0)
    return statistics.median(samples)


def latency(fn: Callable[[int], object], calls: int) -> tuple[float, float]:
    """Median and p99 of one call, in microseconds."""
    clock = time.perf_counter_ns
    overhead = _timer_overhead()
    samples = []
    for i in range(calls):
        t0 = clock()
        fn(i)
        samples.append(clock() - t0 - overhead)
    samples.sort()
    return statistics.median(samples) / 1000, samples[int(len(samples) * 0.99)] / 1000


def throughput(fn: Callable[[int], object], threads: int, seconds: float) -> float:
    """Calls per second over all threads."""
    counts = [0] * threads
    stop = threading.Event()
    barrier = threading.Barrier(threads + 1)

    def worker(slot: int) -> None:
        barrier.wait()
        n = 0
        while not stop.is_set():
            for i in range(1000):
                fn(i)
            n += 1000
        counts[slot] = n

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join()
    return sum(counts) / (time.perf_counter() - started)


def litellm_router() -> tuple[Callable[[int], object], str]:
    """The anchor: LiteLLM Router with six deployments, selecting per call."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network at import
    from litellm import Router

    model_list: list[dict[str, Any]] = []
    for provider, (_, llm_model) in PROVIDERS.items():
        params: dict[str, Any] = {"model": llm_model, "api_key": f"sk-bench-{provider}"}
        if provider == "azure_openai":
            params |= {"api_base": "https://acme.openai.azure.com", "api_version": "2024-06-01"}
        model_list.append({"model_name": provider, "litellm_params": params})
    router = Router(model_list=model_list)
    names = list(PROVIDERS)
    messages = [{"role": "user", "content": "Summarize this ticket."}]

    def select(i: int) -> object:
        return router.get_available_deployment(model=names[i % 6], messages=messages)

    return select, f"litellm {importlib.metadata.version('litellm')}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workspaces", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--anchor-calls", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/state.db"
        key = MasterKey.generate()
        with open_store(url, master_key=key) as store:
            from datetime import UTC, datetime

            store.write(
                [WorkspaceWrite.upsert(_workspace(i)) for i in range(args.workspaces)],
                expected_serial=0,
                audit=AuditEntry("bench", datetime.now(UTC), "apply", 1),
            )
        resolver = Resolver.from_url(url, master_key=key, refresh_interval=1.0, env={})
        names = [f"ws-{i}" for i in range(args.workspaces)]
        features = ["assist", "summarize", "auto_reply"]
        resolve = resolver.resolve

        def ours(i: int) -> object:
            return resolve(names[i % args.workspaces], features[i % 3])

        for i in range(10_000):  # warm up
            ours(i)
        med, p99 = latency(ours, args.calls)
        t1 = throughput(ours, 1, args.seconds)
        t8 = throughput(ours, 8, args.seconds)
        resolver.close()

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.workspaces} workspaces")
    print(
        f"byokctl Resolver.resolve (cached): median {med:.2f} us, p99 {p99:.2f} us, "
        f"{t1:,.0f}/s on 1 thread, {t8:,.0f}/s on 8 threads"
    )
    try:
        select, label = litellm_router()
    except ImportError as exc:
        print(f"anchor unavailable (pip install litellm): {exc}")
        report(
            [
                Row("resolve (cached), median", "-", f"{med:.2f} us", "-", "<= 5 us", med <= 5.0),
                Row(
                    "resolve (cached) vs LiteLLM Router selection",
                    "litellm not installed",
                    f"{med:.2f} us",
                    "not measured",
                    ">= 20x",
                    None,
                ),
            ]
        )
        return 0 if med <= 5.0 else 1
    for i in range(200):
        select(i)
    a_med, a_p99 = latency(select, args.anchor_calls)
    a_t1 = throughput(select, 1, args.seconds)
    a_t8 = throughput(select, 8, args.seconds)
    print(
        f"anchor {label} Router.get_available_deployment (6 deployments): median "
        f"{a_med:.2f} us, p99 {a_p99:.2f} us, {a_t1:,.0f}/s on 1 thread, {a_t8:,.0f}/s on 8 threads"
    )
    ratio = a_med / med if med > 0 else float("inf")
    ok = med <= 5.0 and ratio >= 20
    report(
        [
            Row("resolve (cached), median", "-", f"{med:.2f} us", "-", "<= 5 us", med <= 5.0),
            Row(
                "resolve (cached) vs LiteLLM Router selection",
                f"{label}: {a_med:.2f} us",
                f"{med:.2f} us",
                f"{ratio:.0f}x",
                ">= 20x",
                ratio >= 20,
            ),
        ]
    )
    print(
        f"ratio (anchor median / ours): {ratio:.0f}x; target median <= 5 us and >= 20x: "
        f"{'met' if ok else 'NOT met'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
