"""``Resolver.record_probe``: a probe's answer is recorded as a report of a real request is."""

from __future__ import annotations

from dataclasses import replace

import pytest

from byokctl.classify import Classification, Outcome
from byokctl.model import FallbackPolicy
from byokctl.resolver import BreakerPolicy, Resolver
from byokctl.store import MasterKey, Store
from byokctl.store.runtime import RuntimeStore
from tests.resolver.helpers import CANARY, Clock, put, workspace


def _resolver(store_url: str, master_key: MasterKey, clock: Clock) -> Resolver:
    return Resolver.from_url(
        store_url,
        master_key=master_key,
        refresh_interval=None,
        env={},
        clock=clock,
        breaker=BreakerPolicy(threshold=2, cooldown=30.0),
    )


def _fingerprint(r: Resolver, name: str = "acme", provider: str = "openai") -> str:
    snap = r._view.snap  # what `byokctl probe` computes from the store's fingerprint key
    assert snap is not None
    return snap.fingerprints[(name, provider)]


def test_a_failed_probe_is_recorded_like_a_reported_failure(
    store: Store, store_url: str, master_key: MasterKey, clock: Clock, runtime: RuntimeStore
) -> None:
    put(store, workspace("acme"), workspace("beta"))
    with _resolver(store_url, master_key, clock) as r:
        # Transient: counts toward the breaker (threshold 2), like reports do.
        assert r.record_probe("beta", Outcome.OUTAGE, fingerprint=_fingerprint(r, "beta"))
        assert r.resolve("beta", "assist").provider == "openai"
        c = r.record_probe("beta", Outcome.OUTAGE, fingerprint=_fingerprint(r, "beta"))
        assert c is not None and c.outcome is Outcome.OUTAGE
        assert r.resolve("beta", "assist").reason == "circuit_open:outage"
        # Sticky: the episode opens once, the workspace goes to Neo.
        detail = Classification(Outcome.INVALID_KEY, f"refused {CANARY}")
        c = r.record_probe("acme", detail, fingerprint=_fingerprint(r))
        assert c is not None and c.outcome is Outcome.INVALID_KEY
        assert CANARY not in c.detail
        assert r.resolve("acme", "assist").reason == "provider_failed:invalid_key"
    episodes = sorted((e.workspace, e.outcome) for e in runtime.episodes(open_only=True))
    assert episodes == [("acme", "invalid_key"), ("beta", "outage")]
    assert all(CANARY not in (e.detail or "") for e in runtime.episodes(open_only=False))


def test_a_probe_for_credentials_the_workspace_no_longer_has_is_ignored(
    store: Store, store_url: str, master_key: MasterKey, clock: Clock, runtime: RuntimeStore
) -> None:
    put(store, workspace("acme", key=CANARY + "-old"))
    with _resolver(store_url, master_key, clock) as r:
        old = _fingerprint(r)
        put(store, workspace("acme", key=CANARY + "-new"))
        r.refresh()
        # Classified (as a late report is), never recorded.
        assert r.record_probe("acme", Outcome.INVALID_KEY, fingerprint=old) is not None
        assert r.record_probe("nobody", Outcome.INVALID_KEY, fingerprint=old) is not None
        assert r.resolve("acme", "assist").reason == "byok"
        with pytest.raises(TypeError):
            r.record_probe("acme", "ok", fingerprint=old)  # type: ignore[arg-type]
    assert runtime.episodes(open_only=False) == []


@pytest.mark.parametrize("ret", ["on_credentials_change", "on_recovery"])
def test_a_passing_probe_closes_a_breaker_and_on_recovery_a_sticky_episode(  # noqa: PLR0917 - pytest parameters
    store: Store, store_url: str, master_key: MasterKey, clock: Clock, runtime: RuntimeStore,
    ret: str,
) -> None:  # fmt: skip
    policy = FallbackPolicy(return_=ret)
    put(store, replace(workspace("acme"), fallback=policy), workspace("beta"))
    with _resolver(store_url, master_key, clock) as r:
        for _ in range(2):
            r.record_probe("beta", Outcome.TIMEOUT, fingerprint=_fingerprint(r, "beta"))
        r.record_probe("acme", Outcome.NO_CREDITS, fingerprint=_fingerprint(r))
        assert r.record_probe("beta", Outcome.OK, fingerprint=_fingerprint(r, "beta")) is None
        assert r.record_probe("acme", Outcome.OK, fingerprint=_fingerprint(r)) is None
        assert r.resolve("beta", "assist").reason == "byok"  # any policy: a breaker closes
        acme = r.resolve("acme", "assist").reason
    if ret == "on_recovery":
        assert acme == "byok"
        assert [e.workspace for e in runtime.episodes(open_only=True)] == []
    else:
        assert acme == "provider_failed:no_credits"
        assert [e.workspace for e in runtime.episodes(open_only=True)] == ["acme"]
