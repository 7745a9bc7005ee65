"""The public surface, the import contract, secrets, credits and propagation."""

from __future__ import annotations

import logging
import subprocess
import sys
import time

import pytest

import byokctl.resolver
from byokctl.resolver import ProviderResponse, Resolver
from byokctl.store import MasterKey, Store
from tests.resolver.helpers import CANARY, Clock, put, workspace
from tests.waiting import wait_until


def test_exported_names_are_pinned() -> None:
    assert sorted(byokctl.resolver.__all__) == sorted([
        "BYOK_COST", "DEFAULT_NEO_COSTS", "FEATURES", "SMTP_FROM_ENV", "SMTP_URL_ENV",
        "BreakerPolicy", "CreditUsage", "Episode", "ProviderResponse", "Resolver", "Route",
        "SmtpConfig", "WorkspaceStatus",
        # The JSON documents of `status` and `credits`, shared by the CLI and `serve`.
        "credits_to_dict", "episode_to_dict", "neo_caps",
    ])  # fmt: skip


def test_importing_and_resolving_needs_no_cli_dependency(
    store: Store, store_url: str, master_key: MasterKey
) -> None:
    put(store, workspace("acme", "openai"))
    code = (
        "import sys\n"
        "from byokctl.store import MasterKey\n"
        "import byokctl.resolver\n"
        f"r = byokctl.resolver.Resolver.from_url({store_url!r}, master_key=MasterKey.from_base64({master_key.to_base64()!r}, source='test'), refresh_interval=None, env={{}})\n"
        "assert r.resolve('acme', 'assist').provider == 'openai'\n"
        "r.report(r.resolve('acme', 'assist'), 'ok')\n"
        "r.close()\n"
        "loaded = [m for m in ('click', 'rich', 'httpx') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_route_repr_str_dict_and_logs_never_show_the_key(
    store: Store, store_url: str, master_key: MasterKey, caplog: pytest.LogCaptureFixture
) -> None:
    put(store, workspace("acme", "openai"))
    caplog.set_level(logging.DEBUG, logger="byokctl")
    with Resolver.from_url(store_url, master_key=master_key, refresh_interval=None, env={}) as r:
        route = r.resolve("acme", "assist")
        assert route.api_key() == CANARY
        shown = " ".join([repr(route), str(route), str(route.to_dict()), repr(route.credentials)])
        assert CANARY not in shown
        c = r.report(
            route, ProviderResponse(401, f'{{"error":{{"message":"bad key {CANARY}"}}}}'.encode())
        )
        assert c is not None and CANARY not in c.detail
        assert CANARY not in repr(r.status())
    assert "Neo takes over" in caplog.text
    assert CANARY not in caplog.text


def test_credits_are_buffered_then_summed_per_workspace_feature_route_and_period(
    store: Store, store_url: str, master_key: MasterKey
) -> None:
    put(store, workspace("acme", "openai"), workspace("plain", None))
    clock = Clock(1_800_000_000.0)  # 2027-01-15
    with Resolver.from_url(
        store_url, master_key=master_key, refresh_interval=None, clock=clock, env={}
    ) as r:
        for _ in range(10):
            r.resolve("acme", "assist")
        r.resolve("plain", "auto-reply")
        assert r.credit_usage() == []  # buffered: no write on the hot path
        assert r.flush() == 11
        clock.advance(40 * 86_400)
        r.resolve("acme", "summarize")
    # close() flushed the last charge
    with Resolver.from_url(store_url, master_key=master_key, refresh_interval=None, env={}) as r:
        total = {
            (u.workspace, u.feature, u.route): (u.actions, u.credits) for u in r.credit_usage()
        }
        assert total == {
            ("acme", "assist", "openai"): (10, 10),
            ("acme", "summarize", "openai"): (1, 1),
            ("plain", "auto_reply", "neo"): (1, 5),
        }
        months = {(u.period, u.feature) for u in r.credit_usage(workspace="acme", period="month")}
        assert months == {("2027-01", "assist"), ("2027-02", "summarize")}
        later = r.credit_usage(since=1_800_000_000.0 + 86_400)
        assert [(u.feature, u.actions) for u in later] == [("summarize", 1)]


def test_a_failure_and_an_apply_reach_another_resolver(
    store: Store, store_url: str, master_key: MasterKey
) -> None:
    # How fast is benchmarks/store.py's figure (propagation to 4 processes); here: it
    # arrives, with a deadline that only bounds a hang.
    put(store, workspace("acme", "openai"))
    with (
        Resolver.from_url(store_url, master_key=master_key, refresh_interval=0.05, env={}) as a,
        Resolver.from_url(store_url, master_key=master_key, refresh_interval=0.05, env={}) as b,
    ):
        a.report(a.resolve("acme", "assist"), ProviderResponse(401, b"{}"))
        wait_until(
            lambda: b.resolve("acme", "assist").reason == "provider_failed:invalid_key",
            what="the failure to reach the other resolver",
        )
        put(store, workspace("acme", "anthropic"))  # apply switches provider
        wait_until(
            lambda: all(r.resolve("acme", "assist").provider == "anthropic" for r in (a, b)),
            what="the apply to reach both resolvers",
        )


# Thread safety of the table swap does not depend on the backend: SQLite only.
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_resolve_is_thread_safe_under_concurrent_refreshes(
    store: Store, store_url: str, master_key: MasterKey
) -> None:
    import threading

    put(store, workspace("acme", "openai"))
    errors: list[BaseException] = []
    with Resolver.from_url(store_url, master_key=master_key, refresh_interval=0.01, env={}) as r:
        stop = threading.Event()

        def hammer() -> None:
            try:
                while not stop.is_set():
                    assert r.resolve("acme", "assist").provider in ("openai", "xai")
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        for provider in ("xai", "openai", "xai"):
            put(store, workspace("acme", provider))
            time.sleep(0.05)
        stop.set()
        for t in threads:
            t.join()
        r.flush()
    assert not errors
