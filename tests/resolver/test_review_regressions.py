"""Regressions from the review of the resolver and the runtime store (one test per defect).

Real stores (SQLite and PostgreSQL via ``store_url``), real provider bodies, an injected
clock; the canary key must never reach the runtime tables or ``byokctl status``.
"""

from __future__ import annotations

import io
import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from byokctl.classify import (
    MAX_SCAN,
    Classification,
    ClassifiedFailure,
    Outcome,
    sanitize,
)
from byokctl.classify import _outcome as classify  # where sanitize's patterns live
from byokctl.commands.resolve import status
from byokctl.model import redact
from byokctl.resolver import BreakerPolicy, ProviderResponse, Resolver
from byokctl.resolver.options import ResolverOptions
from byokctl.store import MasterKey, Store, open_store
from byokctl.store._sqlite import BUSY_TIMEOUT_S
from byokctl.store.runtime import RuntimeStore, open_runtime_store
from tests.resolver.conftest import Mailbox
from tests.resolver.helpers import CANARY, Clock, put, workspace
from tests.waiting import wait_until

POLICY = BreakerPolicy(threshold=1, window=60.0, cooldown=30.0, probe_timeout=10.0)


@pytest.fixture
def make(
    store: Store, store_url: str, master_key: MasterKey, clock: Clock
) -> Iterator[Callable[..., Resolver]]:
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


def test_app_made_classifications_are_sanitized_before_storing_and_in_status(  # noqa: PLR0917 - pytest parameters
    store: Store, store_url: str, master_key: MasterKey, make: Callable[..., Resolver],
    monkeypatch: pytest.MonkeyPatch, runtime: RuntimeStore,
) -> None:  # fmt: skip
    put(store, workspace("acme"), workspace("beta"))
    r = make()
    raw = f"401 from https://api.openai.com (Authorization: Bearer {CANARY})"
    c = r.report(r.resolve("acme", "assist"), Classification(Outcome.INVALID_KEY, raw))
    assert c is not None and CANARY not in c.detail
    r.report(r.resolve("beta", "assist"), ClassifiedFailure(Classification(Outcome.OUTAGE, raw)))
    details = [e.detail for e in runtime.episodes(open_only=False)]
    assert details and not any(CANARY in d for d in details)
    monkeypatch.setenv("BYOK_MASTER_KEY", master_key.to_base64())
    for fmt in ("json", "text"):
        out = io.StringIO()
        assert status(store=store_url, fmt=fmt, out=out, err=io.StringIO()) == 0  # type: ignore[arg-type]
        assert CANARY not in out.getvalue()


def test_sanitize_cuts_huge_provider_text_before_the_patterns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What makes huge text cheap: the redaction and the patterns never see more than
    # MAX_SCAN characters (their cost per MB is the caller's). Spy on what they get.
    seen: list[int] = []

    class Spy:
        def __init__(self, pattern: re.Pattern[str]) -> None:
            self.pattern = pattern

        def sub(self, repl: str, text: str) -> str:
            seen.append(len(text))
            return self.pattern.sub(repl, text)

    def spied_redact(text: str) -> str:
        seen.append(len(text))
        return redact(text)

    monkeypatch.setattr(classify, "redact", spied_redact)
    monkeypatch.setattr(classify, "_CONTROL", Spy(classify._CONTROL))
    monkeypatch.setattr(classify, "_KEYLIKE", Spy(classify._KEYLIKE))
    huge = ("word " * 2_000_000) + CANARY
    assert CANARY not in sanitize(huge)
    assert len(seen) == 3 and max(seen) <= MAX_SCAN, seen
    # A cut through a key drops the whole token: no half key survives.
    assert "sk-canary" not in sanitize(" " * 4090 + CANARY)


def test_a_late_report_from_the_old_key_keeps_the_new_keys_sticky_state(
    store: Store, make: Callable[..., Resolver], runtime: RuntimeStore
) -> None:
    put(store, workspace("acme", key="sk-old-key-aaaaaaaaaaaaaaaaaaaaa"))
    r, other = make(), make()  # ``other`` still has the old key's routes
    old = other.resolve("acme", "assist")
    put(store, workspace("acme", key="sk-new-key-bbbbbbbbbbbbbbbbbbbbb"))
    r.refresh()
    new = r.resolve("acme", "assist")
    r.report(new, ProviderResponse(401, b'{"error":{"message":"Incorrect API key"}}'))
    r.report(old, ProviderResponse(503))  # this process knows the key changed: dropped
    other.report(old, ProviderResponse(503))  # the store refuses it too
    r.refresh()
    assert r.peek("acme", "assist").reason == "provider_failed:invalid_key"
    assert [(e.outcome, e.close_reason) for e in runtime.episodes(open_only=False)] == [
        ("invalid_key", None)
    ]


def test_a_huge_retry_after_neither_raises_nor_opens_the_breaker_for_years(
    store: Store, make: Callable[..., Resolver], clock: Clock
) -> None:
    put(store, workspace("acme"))
    r = make()
    c = r.report(r.resolve("acme", "assist"), ProviderResponse(429, b"", {"Retry-After": "9" * 20}))
    assert c is not None and c.retry_after == 3600.0
    assert r.peek("acme", "assist").reason == "circuit_open:rate_limited"
    clock.advance(3601)
    assert r.resolve("acme", "assist").probe


def test_report_rejects_odd_inputs_with_clear_errors(
    store: Store, make: Callable[..., Resolver]
) -> None:
    put(store, workspace("acme"))
    r = make()
    route = r.resolve("acme", "assist")
    for odd in (None, 429, b"x"):
        with pytest.raises(TypeError, match="report takes Classification"):
            r.report(route, odd)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="status must be an int"):
        r.report(route, ProviderResponse("429"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="outcome string is one of ok"):
        r.report(route, "500")


@pytest.mark.parametrize("bad", ["evil\x00", "\udcff", "x" * 500])
def test_a_bad_workspace_name_neither_blocks_credits_nor_fakes_an_outage(
    store: Store, make: Callable[..., Resolver], bad: str
) -> None:
    put(store, workspace("acme"))
    r = make()
    r.resolve(bad, "assist")  # an unknown, unchargeable name: not in the ledger
    r.credits.append((bad, "assist", "neo", 3, 1))  # even if one got into the buffer
    r.resolve("acme", "assist")
    r.flush()
    assert r.store_available
    assert [(u.workspace, u.actions) for u in r.credit_usage()] == [("acme", 1)]
    assert r.credits.unwritten == 0
    assert len(r.credits.rejected) == 1


def test_the_refresh_thread_survives_a_flush_bug_and_close_still_closes(
    store: Store, store_url: str, master_key: MasterKey, caplog: pytest.LogCaptureFixture
) -> None:
    put(store, workspace("acme"))
    runtime = open_runtime_store(store_url)  # opened here, owned by the resolver
    options = ResolverOptions(refresh_interval=0.05, max_staleness=5.0, env={})
    r = Resolver(open_store(store_url, master_key=master_key), runtime, options, owns_stores=True)
    r.credits.append((["unhashable"], "assist", "neo", 3, 1))  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, "byokctl.resolver"):
        wait_until(
            lambda: "could not flush the credit buffer" in caplog.text,
            what="the refresh thread's flush to fail",
        )
        assert any(t.name == "byokctl-resolver-refresh" for t in threading.enumerate())
        r.credits.append((["unhashable"], "assist", "neo", 3, 1))  # type: ignore[arg-type]
        r.close()  # the flush in close fails too: the stores are closed anyway
    assert "could not flush the credit buffer" in caplog.text
    if store_url.startswith("sqlite"):  # PostgreSQL's pool would reconnect on demand
        with pytest.raises(Exception):  # noqa: B017, PT011 - closed: any driver error
            runtime.versions()


def test_status_and_resolve_commands_never_send_email(  # noqa: PLR0917 - pytest parameters
    store: Store, store_url: str, master_key: MasterKey, make: Callable[..., Resolver],
    mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch, runtime: RuntimeStore,
) -> None:  # fmt: skip
    r = make()
    put(store, workspace("acme"))
    r.refresh()
    r.report(r.resolve("acme", "assist"), ProviderResponse(401, b"{}"))
    monkeypatch.setenv("BYOK_MASTER_KEY", master_key.to_base64())
    monkeypatch.setenv("BYOK_SMTP_URL", mailbox.url)
    from byokctl.commands.resolve import resolve

    status(store=store_url, fmt="text", out=io.StringIO(), err=io.StringIO())
    resolve("acme", feature="assist", store=store_url, fmt="json", out=io.StringIO(),
            err=io.StringIO())  # fmt: skip
    assert mailbox.wait_for(1, timeout=0.3) == []
    assert [e.notified_at for e in runtime.episodes()] == [None]


def test_a_probe_claim_never_blocks_resolve_on_a_busy_store(
    tmp_path: Path, master_key: MasterKey, clock: Clock
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    with open_store(url, master_key=master_key) as store:
        put(store, workspace("acme"))
    with Resolver.from_url(url, master_key=master_key, refresh_interval=None, clock=clock,
                           breaker=POLICY, env={}) as r:  # fmt: skip
        r.report(r.resolve("acme", "assist"), ProviderResponse(503))
        clock.advance(POLICY.cooldown + 1)
        other = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            # Blocking would be waiting for the write lock (the store's busy timeout is
            # 30 s): the resolve must return while the other connection still holds it.
            with ThreadPoolExecutor(1) as pool:
                route = pool.submit(r.resolve, "acme", "assist").result(timeout=BUSY_TIMEOUT_S / 2)
            assert other.in_transaction  # the lock was held all along
        finally:
            other.execute("COMMIT")
            other.close()
        assert route.reason == "circuit_open:outage"
        assert r.store_available  # busy is not an outage
        clock.advance(2)  # the refusal asks again a second later
        assert r.resolve("acme", "assist").probe


def test_buffered_credits_are_flushed_at_exit_without_close(
    store: Store, store_url: str, master_key: MasterKey, tmp_path: Path
) -> None:
    import subprocess
    import sys

    put(store, workspace("acme"))
    code = (
        "from byokctl.resolver import Resolver; from byokctl.store import MasterKey\n"
        f"r = Resolver.from_url({store_url!r}, master_key=MasterKey.from_base64("
        f"{master_key.to_base64()!r}, source='t'), refresh_interval=60.0, flush_interval=60.0, max_staleness=None, env={{}})\n"
        "for _ in range(7): r.resolve('acme', 'assist')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=tmp_path)
    with Resolver.from_url(store_url, master_key=master_key, refresh_interval=None, env={}) as r:
        assert [(u.workspace, u.actions) for u in r.credit_usage()] == [("acme", 7)]


def test_each_episode_email_lease_uses_the_clock_of_its_own_attempt(
    store: Store,
    make: Callable[..., Resolver],
    mailbox: Mailbox,
    clock: Clock,
    runtime: RuntimeStore,
) -> None:
    from byokctl.resolver import SmtpConfig

    put(store, workspace("a1"), workspace("a2"))
    ticks: list[float] = []

    def ticking() -> float:
        clock.advance(5)  # every read of the clock is 5 s later: a slow mail server
        ticks.append(clock.now)
        return clock.now

    r = make(clock=ticking, smtp=SmtpConfig(mailbox.url))
    for name in ("a1", "a2"):
        r.report(r.resolve(name, "assist"), ProviderResponse(401, b"{}"))
    assert r.deliver_notifications() == 2
    sent = sorted(e.notified_at or 0 for e in runtime.episodes())
    assert sent[0] < sent[1]  # each recorded at its own attempt's time
