"""The runtime store's low-balance notices on each backend: one claimer per episode.

The e-mails themselves are ``tests/probe/test_low_balance.py``'s; here the claim's
rules, with an injected clock: a lease, a release, a sent notice, an ended episode,
other credentials.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from byokctl.store import Store
from byokctl.store.runtime import RuntimeStore, open_runtime_store
from tests.store.storetest_helpers import Backend

T0 = 1_800_000_000.0
LEASE = 60.0
EPISODE = ("acme", "deepseek", "fp-1")


@pytest.fixture
def runtime(store: Store, backend: Backend) -> Iterator[RuntimeStore]:
    rt = open_runtime_store(backend.url)
    yield rt
    rt.close()


def _claim(rt: RuntimeStore, fp: str = "fp-1", *, at: float = T0) -> bool:
    return rt.claim_low_balance("acme", "deepseek", fp, now=at, lease=LEASE)


def test_one_claim_per_episode_until_it_ends(runtime: RuntimeStore) -> None:
    assert _claim(runtime)
    assert not _claim(runtime, at=T0 + 1), "claimed: the lease holds"
    runtime.record_low_balance_sent(*EPISODE, now=T0 + 2)
    assert not _claim(runtime, at=T0 + 10 * LEASE), "sent: nothing more this episode"
    assert runtime.end_low_balance("acme", "deepseek")
    assert not runtime.end_low_balance("acme", "deepseek"), "nothing left to end"
    assert _claim(runtime, at=T0 + 11 * LEASE), "the next drop is a new episode"


def test_a_released_claim_is_claimed_again_at_once(runtime: RuntimeStore) -> None:
    assert _claim(runtime)
    runtime.release_low_balance(*EPISODE, "SMTPConnectError: refused")
    assert _claim(runtime, at=T0 + 1)


def test_a_crashed_claimers_lease_runs_out(runtime: RuntimeStore) -> None:
    assert _claim(runtime)
    assert not _claim(runtime, at=T0 + LEASE - 1)
    assert _claim(runtime, at=T0 + LEASE)


def test_new_credentials_are_a_new_episode_and_end_the_old_one(runtime: RuntimeStore) -> None:
    assert _claim(runtime)
    runtime.record_low_balance_sent(*EPISODE, now=T0)
    assert _claim(runtime, "fp-2", at=T0 + 1)
    runtime.record_low_balance_sent("acme", "deepseek", "fp-2", now=T0 + 1)
    assert _claim(runtime, "fp-1", at=T0 + 2), "the old credentials' episode had ended"
    assert runtime.claim_low_balance("acme", "openai", "fp-1", now=T0, lease=LEASE), (
        "another provider is another episode"
    )


def test_concurrent_claims_from_separate_opens_grant_exactly_one(
    store: Store, backend: Backend
) -> None:
    n = 6
    opened = [open_runtime_store(backend.url) for _ in range(n)]
    barrier = threading.Barrier(n, timeout=30)
    granted: list[bool] = []
    errors: list[BaseException] = []

    def claim(rt: RuntimeStore) -> None:
        try:
            barrier.wait()
            granted.append(_claim(rt))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(rt,)) for rt in opened]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        for rt in opened:
            rt.close()
    assert errors == []
    assert sorted(granted) == [False] * (n - 1) + [True]
