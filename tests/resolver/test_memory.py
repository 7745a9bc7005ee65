"""A resolver that runs for weeks with rotating keys stays flat in memory.

What used to grow: every secret value the process had ever seen (kept for redaction)
and the encodings of every key a failure was reported for. Measured with
:mod:`tracemalloc` (Python allocations, exact, independent of the machine's load);
asserted on memory, never on time.
"""

from __future__ import annotations

import gc
import logging
import secrets
import tracemalloc
from pathlib import Path

import pytest

from byokctl.model import secrets_held
from byokctl.resolver import ProviderResponse, Resolver
from byokctl.store import MasterKey, open_store
from tests.resolver.helpers import put, workspace

ROTATIONS = 1000
RESOLVES_PER_ROTATION = 100  # 100,000 resolves in all
MIB = 2**20


def _key() -> str:
    # The length of an OpenAI project key: the size of what a rotation leaves behind.
    return "sk-proj-" + secrets.token_urlsafe(117)


def test_100k_resolves_across_1000_key_rotations_grow_memory_by_under_5_mib(
    tmp_path: Path, master_key: MasterKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="byokctl")  # a warning per failure: not kept
    url = f"sqlite:///{tmp_path / 'state.db'}"
    with open_store(url, master_key=master_key) as store:
        put(store, workspace("acme", key=_key()))
        with Resolver.from_url(url, master_key=master_key, refresh_interval=None, env={}) as r:

            def rotation() -> None:
                """Apply a new key; its first request fails (echoing the key), the rest go on."""
                put(store, workspace("acme", key=_key()))
                assert r.refresh()
                route = r.resolve("acme", "assist")
                assert route.reason == "byok"
                echoed = (
                    f'{{"error":{{"message":"Incorrect API key provided: {route.api_key()}"}}}}'
                )
                assert r.report(route, ProviderResponse(401, echoed.encode())) is not None
                for _ in range(RESOLVES_PER_ROTATION - 1):
                    r.resolve("acme", "summarize")
                r.flush()

            for _ in range(50):  # warm up: caches, statements, first episodes
                rotation()
            gc.collect()
            held = secrets_held()
            tracemalloc.start()
            try:
                start = tracemalloc.get_traced_memory()[0]
                growth = []
                for i in range(ROTATIONS):
                    rotation()
                    if (i + 1) % (ROTATIONS // 2) == 0:
                        gc.collect()
                        growth.append(tracemalloc.get_traced_memory()[0] - start)
            finally:
                tracemalloc.stop()
            assert r.peek("acme", "assist").reason == "provider_failed:invalid_key"
            assert secrets_held() <= held + 1  # the current key, not every key ever seen
    half, total = growth
    print(f"\nmemory growth over {ROTATIONS} rotations: {total / MIB:.2f} MiB "
          f"(second half {(total - half) / MIB:.2f} MiB)")  # fmt: skip
    assert total < 5 * MIB
    # Flat, not merely small so far: the second half adds (almost) nothing.
    assert total - half < 0.5 * MIB
