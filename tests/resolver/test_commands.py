"""The command functions behind ``byokctl resolve``, ``status`` and ``credits``."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import pytest

from byokctl.commands import resolve as cmd
from byokctl.errors import ByokError
from byokctl.model import FallbackPolicy
from byokctl.resolver import ProviderResponse, Resolver
from byokctl.store import MasterKey, Store
from tests.resolver.helpers import CANARY, put, workspace


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, master_key: MasterKey, store_url: str) -> None:
    monkeypatch.setenv("BYOK_MASTER_KEY", master_key.to_base64())
    monkeypatch.setenv("BYOK_STORE", store_url)


def _run(fn: object, *args: object, **kw: object) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = fn(*args, store=None, out=out, err=err, **kw)  # type: ignore[operator]
    text = out.getvalue() + err.getvalue()
    assert CANARY not in text
    return code, out.getvalue()


def test_resolve_shows_route_and_reason_without_credentials(store: Store) -> None:
    put(store, workspace("acme", "openai"), workspace("plain", None))
    code, out = _run(cmd.resolve, "acme", feature="auto-reply", fmt="json")
    assert code == 0
    assert json.loads(out) == {
        "workspace": "acme", "feature": "auto_reply", "provider": "openai", "model": "gpt-4o",
        "base_url": "https://api.openai.com/v1", "settings": {}, "reason": "byok", "cost": 1,
        "fallback": {}, "neo_credits_left": None,
    }  # fmt: skip
    code, out = _run(cmd.resolve, "plain", feature="summarize", fmt="text")
    assert "neo" in out and "no_provider_enabled" in out and "2 credits" in out
    with pytest.raises(ByokError, match="unknown AI feature"):
        _run(cmd.resolve, "acme", feature="poetry", fmt="text")


def test_status_lists_routes_reasons_and_open_episodes(
    store: Store, store_url: str, master_key: MasterKey
) -> None:
    put(store, workspace("acme", "openai"), workspace("plain", None))
    with Resolver.from_url(store_url, master_key=master_key, refresh_interval=None, env={}) as r:
        r.report(r.resolve("acme", "assist"), ProviderResponse(401, b"{}"))
    code, out = _run(cmd.status, fmt="json")
    doc = {w["name"]: w for w in json.loads(out)["workspaces"]}
    assert doc["acme"]["route"] == "neo" and doc["acme"]["reason"] == "provider_failed:invalid_key"
    assert [e["outcome"] for e in doc["acme"]["open_episodes"]] == ["invalid_key"]
    assert doc["plain"]["reason"] == "no_provider_enabled" and doc["plain"]["open_episodes"] == []
    code, out = _run(cmd.status, fmt="text")
    assert code == 0 and "provider_failed:invalid_key" in out and "e-mail pending" in out


def test_credits_sums_the_ledger(store: Store, store_url: str, master_key: MasterKey) -> None:
    put(store, workspace("acme", "openai"), workspace("plain", None))
    with Resolver.from_url(store_url, master_key=master_key, refresh_interval=None, env={}) as r:
        for _ in range(3):
            r.resolve("acme", "assist")
        r.resolve("plain", "assist")
    _, out = _run(cmd.credits, None, since="2000-01-01", fmt="json")
    assert json.loads(out)["total_credits"] == 6
    _, out = _run(cmd.credits, "acme", since=None, fmt="text")
    assert "total: 3 credits" in out
    _, out = _run(cmd.credits, None, since="2999-01-01", fmt="text")
    assert "no credit usage recorded" in out
    with pytest.raises(ByokError, match="not a date"):
        _run(cmd.credits, None, since="yesterday", fmt="text")


def test_resolve_of_a_workspace_not_in_the_store_exits_1(
    store: Store, store_url: str, master_key: MasterKey
) -> None:
    # The library keeps answering Neo with unknown_workspace (the runtime contract); the
    # command tells the person asking that the name is not there.
    put(store, workspace("acme", "openai"))
    with pytest.raises(ByokError, match="workspace 'acme-typo' is not in the store"):
        _run(cmd.resolve, "acme-typo", feature="assist", fmt="text")
    resolver = Resolver.from_url(
        store_url, master_key=master_key, refresh_interval=None, notify=False, listen=False
    )
    try:
        assert resolver.resolve("acme-typo", "assist").reason == "unknown_workspace"
    finally:
        resolver.close()


def test_resolve_status_and_credits_show_policy_remaining_cap_and_why_unavailable(
    store: Store, store_url: str, master_key: MasterKey
) -> None:
    capped = replace(
        workspace("capped", "openai"),
        fallback=FallbackPolicy(max_neo_credits=5, per="day", return_="on_recovery"),
    )
    private = replace(workspace("private", "openai"), fallback=FallbackPolicy(neo=False))
    put(store, capped, private)
    with Resolver.from_url(store_url, master_key=master_key, refresh_interval=None, env={}) as r:
        for name in ("capped", "private"):
            route = r.resolve(name, "assist")
            r.fallback(route, r.report(route, ProviderResponse(401, b"{}")))  # capped: 3 spent
    _, out = _run(cmd.resolve, "private", feature="summarize", fmt="json")
    doc = json.loads(out)
    assert (doc["provider"], doc["reason"], doc["cost"], doc["model"]) == (
        "unavailable", "fallback_disabled:invalid_key", 0, "",
    )  # fmt: skip
    assert doc["fallback"] == {"neo": False}
    _, out = _run(cmd.resolve, "private", feature="summarize", fmt="text")
    assert "AI unavailable" in out and "fallback_disabled:invalid_key" in out
    assert "never Neo (neo: false)" in out
    _, out = _run(cmd.status, fmt="json")
    rows = {w["name"]: w for w in json.loads(out)["workspaces"]}
    assert rows["capped"]["fallback"] == {
        "max_neo_credits": 5, "per": "day", "return": "on_recovery",
    }  # fmt: skip
    assert rows["capped"]["neo_credits_left"] == 2
    assert rows["private"]["route"] == "unavailable"
    _, out = _run(cmd.status, fmt="text")
    assert "Neo capped at 5 credits per day (2 left); return on_recovery" in out
    _, out = _run(cmd.credits, "capped", since=None, fmt="json")
    assert json.loads(out)["neo_caps"] == [
        {"workspace": "capped", "max_neo_credits": 5, "per": "day", "neo_credits_left": 2}
    ]
    _, out = _run(cmd.credits, None, since=None, fmt="text")
    assert "capped: Neo capped at 5 credits per day (2 left)" in out
