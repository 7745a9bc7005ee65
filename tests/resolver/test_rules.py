"""The product rules: Neo without a provider, sticky failures, the circuit breaker.

Real SQLite store, real provider bodies through ``report``, an injectable clock (no sleeps).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from byokctl.model import NEO
from byokctl.resolver import BreakerPolicy, ProviderResponse, Resolver
from byokctl.store import MasterKey, Store
from byokctl.store.runtime import RuntimeStore
from tests.resolver.helpers import Clock, put, workspace

POLICY = BreakerPolicy(threshold=3, window=60.0, cooldown=30.0, probe_timeout=10.0)


@pytest.fixture
def make(
    store: Store, store_url: str, master_key: MasterKey, clock: Clock
) -> Iterator[Callable[..., Resolver]]:
    """Open resolvers (processes) on the shared store; manual refresh, injected clock."""
    opened: list[Resolver] = []

    def factory(**kw: Any) -> Resolver:
        options: dict[str, Any] = {"refresh_interval": None, "clock": clock, "breaker": POLICY,
                                   "env": {}, **kw}  # fmt: skip
        r = Resolver.from_url(store_url, master_key=master_key, **options)
        opened.append(r)
        return r

    yield factory
    for r in opened:
        r.close()


def test_no_enabled_provider_routes_to_neo_at_neo_cost(
    store: Store, make: Callable[..., Resolver]
) -> None:
    put(store, workspace("plain", None))
    r = make()
    assert [(x.provider, x.reason, x.cost) for x in (
        r.resolve("plain", "assist"), r.resolve("plain", "summarize"), r.resolve("plain", "auto-reply")
    )] == [(NEO, "no_provider_enabled", 3), (NEO, "no_provider_enabled", 2), (NEO, "no_provider_enabled", 5)]  # fmt: skip
    assert r.resolve("ghost", "assist").reason == "unknown_workspace"
    with pytest.raises(ValueError, match="unknown AI feature 'translate'"):
        r.resolve("plain", "translate")


def test_byok_route_carries_model_base_url_and_credentials(
    store: Store, store_url: str, master_key: MasterKey
) -> None:
    put(store, workspace("acme", "openai"), workspace("azure", "azure_openai"))
    env = {"BYOK_OPENAI_BASE_URL": "http://127.0.0.1:9/openai/v1/"}
    with Resolver.from_url(store_url, master_key=master_key, refresh_interval=None, env=env) as r:
        route = r.resolve("acme", "assist")
        assert (route.provider, route.model, route.reason, route.cost) == (
            "openai",
            "gpt-4o",
            "byok",
            1,
        )
        assert route.base_url == "http://127.0.0.1:9/openai/v1"
        azure = r.resolve("azure", "summarize")
        assert azure.base_url == "https://acme.openai.azure.com"
        assert azure.settings["deployment"] == "gpt4-prod"
    with Resolver.from_url(store_url, master_key=master_key, refresh_interval=None, env={}) as r:
        assert r.resolve("acme", "assist").base_url == "https://api.openai.com/v1"


def test_neo_costs_are_configurable(store: Store, make: Callable[..., Resolver]) -> None:
    put(store, workspace("plain", None))
    r = make(neo_costs={"assist": 10})
    assert r.resolve("plain", "assist").cost == 10
    assert r.resolve("plain", "summarize").cost == 2


def test_sticky_failure_survives_restart_and_clears_when_apply_changes_the_key(
    store: Store, make: Callable[..., Resolver], runtime: RuntimeStore
) -> None:
    put(store, workspace("acme", "openai"))
    first = make()
    route = first.resolve("acme", "assist")
    body = {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                      "code": "invalid_api_key"}}  # fmt: skip
    first.report(route, ProviderResponse(401, json.dumps(body).encode()))
    assert first.resolve("acme", "assist").reason == "provider_failed:invalid_key"
    first.close()

    second = make()  # a restart: nothing in memory, the store remembers
    assert second.resolve("acme", "assist").reason == "provider_failed:invalid_key"
    put(store, workspace("acme", "openai", key="sk-rotated-key-000000000000"))  # apply
    second.refresh()
    again = second.resolve("acme", "assist")
    assert (again.provider, again.reason) == ("openai", "byok")
    assert again.api_key() == "sk-rotated-key-000000000000"
    closed = runtime.episodes(workspace="acme", open_only=False)
    assert [(e.close_reason) for e in closed] == ["credentials_changed"]


def test_sticky_failure_clears_through_apply_plan(
    store: Store, make: Callable[..., Resolver]
) -> None:
    from byokctl.executor import apply_plan
    from byokctl.model import DesiredState, LiveState
    from byokctl.plan import diff

    put(store, workspace("acme", "deepseek"))
    r = make()
    r.report(
        r.resolve("acme", "assist"),
        ProviderResponse(402, b'{"error":{"message":"Insufficient Balance"}}'),
    )
    assert r.resolve("acme", "assist").reason == "provider_failed:no_credits"
    live: LiveState = store.read_state()
    desired = DesiredState(
        workspaces={"acme": workspace("acme", "deepseek", key="sk-topped-up-new-key-0000")},
        sources={},
    )
    plan = diff(desired, live, created_at=live.workspaces["acme"].updated_at)
    apply_plan(store, plan.changes, holder="test", lock_timeout=5, expected_serial=live.serial)
    r.refresh()
    assert r.resolve("acme", "assist").reason == "byok"


def test_a_sticky_failure_is_not_cleared_by_waiting_or_by_another_success(
    store: Store, make: Callable[..., Resolver], clock: Clock
) -> None:
    put(store, workspace("acme", "anthropic"))
    r = make()
    route = r.resolve("acme", "assist")
    r.report(route, ProviderResponse(
        401, b'{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}'
    ))  # fmt: skip
    clock.advance(86_400)
    r.report(route, "ok")  # a request that was in flight with the old route
    r.refresh()
    assert r.resolve("acme", "assist").reason == "provider_failed:invalid_key"


def test_breaker_opens_cools_down_probes_once_and_closes(
    store: Store, make: Callable[..., Resolver], clock: Clock, runtime: RuntimeStore
) -> None:
    put(store, workspace("acme", "openai"))
    a, b = make(), make()  # two processes sharing the store
    outage = ProviderResponse(503, b'{"error":{"message":"The server is overloaded"}}')
    for _ in range(POLICY.threshold - 1):
        a.report(a.resolve("acme", "assist"), outage)
    assert a.resolve("acme", "assist").reason == "byok"  # below the threshold
    a.report(a.resolve("acme", "assist"), outage)
    assert a.resolve("acme", "assist").reason == "circuit_open:outage"
    b.refresh()
    assert b.resolve("acme", "summarize").reason == "circuit_open:outage"

    clock.advance(POLICY.cooldown - 1)
    assert a.resolve("acme", "assist").is_neo  # still cooling down

    clock.advance(2)
    routes = [a.resolve("acme", "assist"), b.resolve("acme", "assist"), a.resolve("acme", "assist")]
    probes = [x for x in routes if x.probe]
    assert len(probes) == 1, routes  # one probe in the whole fleet
    assert probes[0].reason == "circuit_probe:outage"
    assert probes[0].provider == "openai"

    a.report(probes[0], outage)  # the probe fails: open again for a cooldown
    assert a.resolve("acme", "assist").reason == "circuit_open:outage"
    clock.advance(POLICY.cooldown + 1)
    b.refresh()
    probe = b.resolve("acme", "assist")
    assert probe.probe
    b.report(probe, "ok")  # success closes the breaker
    assert b.resolve("acme", "assist").reason == "byok"
    a.refresh()
    assert a.resolve("acme", "assist").reason == "byok"
    episodes = runtime.episodes(workspace="acme", open_only=False)
    assert [(e.outcome, e.close_reason) for e in episodes] == [("outage", "recovered")]


def test_a_lost_probe_is_granted_again_after_its_timeout(
    store: Store, make: Callable[..., Resolver], clock: Clock
) -> None:
    put(store, workspace("acme", "openai"))
    r = make()
    for _ in range(POLICY.threshold):
        r.report(r.resolve("acme", "assist"), TimeoutError("read timed out"))
    clock.advance(POLICY.cooldown)
    assert r.resolve("acme", "assist").probe  # never reported: the process died
    assert not r.resolve("acme", "assist").probe
    clock.advance(POLICY.probe_timeout)
    assert r.resolve("acme", "assist").probe


def test_failures_outside_the_window_do_not_trip_the_breaker(
    store: Store, make: Callable[..., Resolver], clock: Clock
) -> None:
    put(store, workspace("acme", "xai"))
    r = make()
    limited = ProviderResponse(429, b'{"error":"Rate limit reached"}', {"retry-after": "1"})
    for _ in range(5):
        r.report(r.resolve("acme", "assist"), limited)
        clock.advance(POLICY.window / 2 + 1)
    assert r.resolve("acme", "assist").reason == "byok"


def test_retry_after_longer_than_the_cooldown_is_honoured(
    store: Store, make: Callable[..., Resolver], clock: Clock
) -> None:
    put(store, workspace("acme", "openai"))
    r = make()
    limited = ProviderResponse(
        429,
        b'{"error":{"code":"rate_limit_exceeded","message":"slow down"}}',
        {"retry-after": "120"},
    )
    for _ in range(POLICY.threshold):
        r.report(r.resolve("acme", "assist"), limited)
    clock.advance(POLICY.cooldown + 1)
    assert r.resolve("acme", "assist").reason == "circuit_open:rate_limited"
    clock.advance(120)
    assert r.resolve("acme", "assist").probe


def test_sticky_failure_while_the_breaker_is_open_escalates(
    store: Store, make: Callable[..., Resolver], clock: Clock, runtime: RuntimeStore
) -> None:
    put(store, workspace("acme", "openai"))
    r = make()
    for _ in range(POLICY.threshold):
        r.report(r.resolve("acme", "assist"), ProviderResponse(500, b"{}"))
    clock.advance(POLICY.cooldown)
    probe = r.resolve("acme", "assist")
    r.report(probe, ProviderResponse(
        429, b'{"error":{"type":"insufficient_quota","code":"insufficient_quota","message":"quota"}}'
    ))  # fmt: skip
    assert r.resolve("acme", "assist").reason == "provider_failed:no_credits"
    episodes = runtime.episodes(workspace="acme", open_only=False)
    assert [(e.outcome, e.close_reason) for e in episodes] == [
        ("no_credits", None),
        ("outage", "escalated"),
    ]


def test_run_with_fallback_serves_the_user_on_neo_and_charges_once(
    store: Store, make: Callable[..., Resolver]
) -> None:
    put(store, workspace("acme", "gemini"))
    r = make()
    bad_key = {"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                         "status": "INVALID_ARGUMENT",
                         "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                      "reason": "API_KEY_INVALID"}]}}  # fmt: skip

    class ProviderError(Exception):
        def __init__(self) -> None:
            super().__init__("400 from Gemini")
            self.status_code = 400
            self.body = bad_key["error"]

    served: list[str] = []

    def action(route: object) -> str:
        from byokctl.resolver import Route

        assert isinstance(route, Route)
        served.append(route.provider)
        if not route.is_neo:
            raise ProviderError()
        return f"answered by {route.provider} ({route.reason})"

    assert (
        r.run_with_fallback("acme", "assist", action)
        == "answered by neo (provider_failed:invalid_key)"
    )
    assert served == ["gemini", NEO]
    assert r.run_with_fallback("acme", "assist", action).endswith("(provider_failed:invalid_key)")
    r.flush()
    usage = {(u.route, u.actions, u.credits) for u in r.credit_usage(workspace="acme")}
    assert usage == {(NEO, 2, 6)}  # the failed BYOK attempt was refunded
