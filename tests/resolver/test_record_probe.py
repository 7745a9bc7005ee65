"""``Resolver.record_probe``: a probe's verdict recorded like a report (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from byokctl.classify import Classification, Outcome
from byokctl.model import NEO, ProviderConfig, Secret, Workspace
from byokctl.resolver import BreakerPolicy, ProviderResponse, Resolver
from byokctl.store import MasterKey, Store
from byokctl.store.runtime import RuntimeStore
from tests.resolver.helpers import CANARY, Clock, put, workspace

POLICY = BreakerPolicy(threshold=3, window=60.0, cooldown=30.0, probe_timeout=10.0)


@pytest.fixture
def make(
    store: Store, store_url: str, master_key: MasterKey, clock: Clock
) -> Iterator[Callable[..., Resolver]]:
    opened: list[Resolver] = []

    def factory(**kw: Any) -> Resolver:
        options: dict[str, Any] = {
            "refresh_interval": None,
            "clock": clock,
            "breaker": POLICY,
            "env": {},
            "notify": False,
            **kw,
        }
        r = Resolver.from_url(store_url, master_key=master_key, **options)
        opened.append(r)
        return r

    yield factory
    for r in opened:
        r.close()


def _target(r: Resolver, name: str) -> str:
    (target,) = [t for t in r.probe_targets() if t.workspace == name]
    assert target.current
    return target.fingerprint


def test_targets_are_the_enabled_providers_with_their_credentials(
    store: Store, make: Callable[..., Resolver]
) -> None:
    put(store, workspace("acme", "openai"), workspace("plain", None), workspace("az", "xai"))
    r = make()
    targets = r.probe_targets()
    assert [(t.workspace, t.config.provider) for t in targets] == [
        ("acme", "openai"),
        ("az", "xai"),
    ]
    assert targets[0].config.secrets["api_key"].reveal() == CANARY
    assert targets[0].fingerprint == r.resolve("acme", "assist").fingerprint
    assert CANARY not in repr(targets)


def test_a_sticky_probe_opens_one_episode_and_routes_to_neo(
    store: Store, runtime: RuntimeStore, make: Callable[..., Resolver]
) -> None:
    put(store, workspace("acme", "openai"))
    r = make()
    fp = _target(r, "acme")
    failed = r.record_probe(
        "acme", Classification(Outcome.INVALID_KEY, "OpenAI: revoked"), fingerprint=fp
    )
    assert failed is not None and failed.outcome is Outcome.INVALID_KEY
    assert r.record_probe("acme", Outcome.INVALID_KEY, fingerprint=fp) is not None
    route = r.resolve("acme", "assist")
    assert (route.provider, route.reason) == (NEO, "provider_failed:invalid_key")
    assert [(e.workspace, e.outcome) for e in runtime.episodes()] == [("acme", "invalid_key")]
    # Another process sees it too.
    assert make().resolve("acme", "assist").reason == "provider_failed:invalid_key"


def test_a_probe_of_replaced_credentials_is_ignored(
    store: Store, runtime: RuntimeStore, make: Callable[..., Resolver]
) -> None:
    put(store, workspace("acme", "openai"))
    r = make()
    old = _target(r, "acme")
    put(store, workspace("acme", "openai", key="sk-rotated-key-000111222333"))
    r.refresh()
    assert r.record_probe("acme", Outcome.INVALID_KEY, fingerprint=old) is not None
    assert r.resolve("acme", "assist").reason == "byok"
    assert runtime.episodes() == []
    # A workspace the store does not hold: nothing either.
    assert r.record_probe("ghost", Outcome.INVALID_KEY, fingerprint=old) is not None
    assert runtime.episodes() == []


def test_transient_probes_trip_the_breaker_and_a_passing_one_closes_it(
    store: Store, make: Callable[..., Resolver], clock: Clock
) -> None:
    put(store, workspace("acme", "openai"))
    r = make()
    fp = _target(r, "acme")
    for _ in range(POLICY.threshold):
        r.record_probe("acme", Outcome.OUTAGE, fingerprint=fp)
    assert r.resolve("acme", "assist").reason == "circuit_open:outage"
    clock.advance(POLICY.cooldown + 1)
    assert r.record_probe("acme", Outcome.OK, fingerprint=fp) is None
    assert r.resolve("acme", "assist").reason == "byok"


def test_a_passing_probe_does_not_end_a_sticky_episode(
    store: Store, make: Callable[..., Resolver]
) -> None:
    put(store, workspace("acme", "openai"))
    r = make()
    route = r.resolve("acme", "assist")
    r.report(route, ProviderResponse(401, b'{"error":{"code":"invalid_api_key"}}'))
    assert r.record_probe("acme", Outcome.OK, fingerprint=_target(r, "acme")) is None
    assert r.resolve("acme", "assist").reason == "provider_failed:invalid_key"


def test_targets_from_files_are_recorded_only_when_they_are_the_stored_credentials(
    store: Store, runtime: RuntimeStore, make: Callable[..., Resolver]
) -> None:
    put(store, workspace("acme", "openai"))
    r = make()
    same = workspace("acme", "openai")
    cfg = ProviderConfig("openai", "gpt-4o", {}, {"api_key": Secret("sk-not-applied-999")})
    other = Workspace("acme", notify=("ops@example.com",), enabled="openai",
                      providers={"openai": cfg})  # fmt: skip
    (t_same,) = r.probe_targets([same])
    (t_other,) = r.probe_targets([other])
    assert t_same.current and not t_other.current
    assert t_same.fingerprint == _target(r, "acme")
    r.record_probe("acme", Outcome.INVALID_KEY, fingerprint=t_other.fingerprint)
    assert runtime.episodes() == []


def test_a_compatible_route_carries_base_url_headers_and_maybe_no_key(
    store: Store, make: Callable[..., Resolver]
) -> None:
    settings = {"base_url": "https://llm.acme.example/v1/", "headers.X-Title": "Acme"}
    cfg = ProviderConfig("openai_compatible", "llama-3.1-8b-instruct", settings, {})
    ws = Workspace("gw", enabled="openai_compatible", providers={"openai_compatible": cfg})
    put(store, ws)
    route = make().resolve("gw", "assist")
    assert (route.provider, route.reason) == ("openai_compatible", "byok")
    assert route.base_url == "https://llm.acme.example/v1"
    assert route.headers == {"X-Title": "Acme"}
    assert route.api_key() is None
