"""``spec.fallback`` across resolver processes, on SQLite and PostgreSQL.

Every combination of ``neo``, a Neo credit cap and ``return`` runs the same story in two
processes sharing one store: process A sees the provider fail (sticky ``no_credits``)
and falls back; process B reads the store and serves the next actions; then a probe
reports the provider healthy again. The cap's race runs eight processes at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from byokctl.model import FallbackPolicy
from byokctl.store import MasterKey, Store
from byokctl.store.runtime import RuntimeStore
from tests.resolver.conftest import Mailbox
from tests.resolver.helpers import CANARY, put, workspace
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
#: Neo's default cost of the feature the tests use.
ASSIST = 3


class Worker:
    """One resolver process (``tests.resolver._policy_worker``)."""

    def __init__(self, store_url: str, env: dict[str, str], cooldown: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.resolver._policy_worker", store_url, str(cooldown)],
            env=env,
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self._read() == {"ready": True}

    def _read(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            _, err = self.proc.communicate(timeout=30)
            raise AssertionError(f"worker exited: {err}")
        return json.loads(line)

    def send(self, command: str) -> Any:
        self.start(command)
        return self._read()

    def start(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def finish(self) -> Any:
        return self._read()

    def close(self) -> str:
        if self.proc.poll() is None:
            self.start("quit")
        _, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err
        return err


@dataclass
class Fleet:
    """One store and the resolver processes started on it (all closed and checked at the end)."""

    store: Store
    runtime: RuntimeStore
    url: str
    master_key: MasterKey
    mailbox: Mailbox
    tmp: Path
    workers: list[Worker] = field(default_factory=list)

    def spawn(self, n: int, cooldown: float = 600.0) -> list[Worker]:
        env = {
            **os.environ,
            "BYOK_MASTER_KEY": self.master_key.to_base64(),
            "BYOK_SMTP_URL": self.mailbox.url,
            "PYTHONPATH": str(REPO),
        }
        new = [Worker(self.url, env, cooldown) for _ in range(n)]
        self.workers.extend(new)
        return new


@pytest.fixture
def fleet(  # noqa: PLR0917 - pytest parameters
    store: Store,
    runtime: RuntimeStore,
    store_url: str,
    master_key: MasterKey,
    mailbox: Mailbox,
    tmp_path: Path,
) -> Iterator[Fleet]:
    fl = Fleet(store, runtime, store_url, master_key, mailbox, tmp_path)
    yield fl
    errors = [w.close() for w in fl.workers]
    for err in errors:
        assert CANARY not in err


def neo_credits(runtime: RuntimeStore, name: str = "acme") -> int:
    return sum(u.credits for u in runtime.credit_usage(workspace=name) if u.route == "neo")


def open_episodes(runtime: RuntimeStore) -> list[tuple[str, str]]:
    return sorted((e.provider, e.outcome) for e in runtime.episodes(open_only=True))


@pytest.mark.parametrize("neo", [True, False], ids=["neo", "no-neo"])
@pytest.mark.parametrize("cap", [None, 10], ids=["uncapped", "cap10"])
@pytest.mark.parametrize("ret", ["on_credentials_change", "on_recovery"])
def test_every_policy_across_two_processes(
    fleet: Fleet, neo: bool, cap: int | None, ret: str
) -> None:
    policy = FallbackPolicy(neo=neo, max_neo_credits=cap, per="episode", return_=ret)
    put(fleet.store, replace(workspace("acme"), fallback=policy))
    a, b = fleet.spawn(2)

    # A: the provider fails (sticky); what replaces the action is the policy's.
    fb = a.send("fail acme assist no_credits")
    if neo:
        assert (fb["provider"], fb["reason"], fb["cost"]) == (
            "neo", "provider_failed:no_credits", ASSIST,
        )  # fmt: skip
    else:
        assert (fb["provider"], fb["reason"], fb["cost"], fb["model"]) == (
            "unavailable", "fallback_disabled:no_credits", 0, "",
        )  # fmt: skip

    # B: reads the store and serves the next four actions.
    b.send("refresh")
    routes = [b.send("resolve acme assist") for _ in range(4)]
    seen = [(r["provider"], r["reason"]) for r in routes]
    if not neo:
        assert seen == [("unavailable", "fallback_disabled:no_credits")] * 4
        assert all(r["cost"] == 0 for r in routes)
        expected_neo = 0
    elif cap is None:
        assert seen == [("neo", "provider_failed:no_credits")] * 4
        expected_neo = 5 * ASSIST
    else:  # 3 (A's fallback) + 3 + 3 = 9; the next 3 would pass 10
        assert (
            seen
            == [("neo", "provider_failed:no_credits")] * 2
            + [("unavailable", "neo_cap_reached")] * 2
        )
        expected_neo = 3 * ASSIST
    for w in (a, b):
        w.send("flush")  # uncapped charges are buffered; capped ones are written at once
        w.send("deliver")
    assert neo_credits(fleet.runtime) == expected_neo
    status = {s["workspace"]: s for s in b.send("status")}["acme"]
    assert (status["provider"], status["reason"]) == seen[-1]  # status shows the route now
    assert status["neo_credits_left"] == (None if cap is None or not neo else cap - expected_neo)
    episodes = open_episodes(fleet.runtime)
    assert ("openai", "no_credits") in episodes
    assert (("neo_cap", "neo_cap_reached") in episodes) == (neo and cap is not None)

    # A probe finds the provider healthy again.
    assert a.send("probe acme ok") == {"classified": None}
    b.send("refresh")
    after = b.send("resolve acme assist")
    if ret == "on_recovery":
        assert (after["provider"], after["reason"], after["model"]) == ("openai", "byok", "gpt-4o")
        assert open_episodes(fleet.runtime) == []  # the cap's episode ends with its failure episode
    else:
        assert after["provider"] != "openai"
        assert ("openai", "no_credits") in open_episodes(fleet.runtime)


def test_invalid_key_waits_for_new_credentials_even_on_recovery(fleet: Fleet) -> None:
    policy = FallbackPolicy(return_="on_recovery")
    put(fleet.store, replace(workspace("acme"), fallback=policy))
    a, b = fleet.spawn(2, cooldown=0.05)
    assert a.send("fail acme assist invalid_key")["reason"] == "provider_failed:invalid_key"
    assert a.send("probe acme ok") == {"classified": None}
    b.send("refresh")
    # Not even the probe request: an invalid key is not asked again.
    for _ in range(3):
        route = b.send("resolve acme assist")
        assert (route["provider"], route["reason"]) == ("neo", "provider_failed:invalid_key")
    assert open_episodes(fleet.runtime) == [("openai", "invalid_key")]


def test_on_recovery_lets_the_probe_request_through_after_the_cooldown(fleet: Fleet) -> None:
    policy = FallbackPolicy(neo=False, return_="on_recovery")
    ws = workspace("acme")
    cfg = replace(ws.providers["openai"], models={"summarize": "gpt-4o-mini"})
    put(fleet.store, replace(ws, fallback=policy, providers={"openai": cfg}))
    a, b = fleet.spawn(2, cooldown=0.2)
    assert a.send("fail acme assist no_credits")["reason"] == "fallback_disabled:no_credits"
    b.send("refresh")
    probes: list[dict[str, Any]] = []

    def probed() -> bool:
        route = b.send("ok acme summarize")  # resolve; a provider route reports success
        if route["provider"] == "openai":
            probes.append(route)
            return True
        assert route["reason"] == "fallback_disabled:no_credits"
        return False

    wait_until(probed, timeout=30, what="the probe request after the cooldown")
    assert probes[0]["reason"] == "circuit_probe:no_credits"
    assert probes[0]["probe"]
    assert probes[0]["model"] == "gpt-4o-mini"  # the feature's own model
    a.send("refresh")
    assert a.send("resolve acme assist")["reason"] == "byok"
    assert open_episodes(fleet.runtime) == []


def test_a_policy_change_alone_keeps_the_sticky_episode_open(fleet: Fleet) -> None:
    put(fleet.store, workspace("acme"))
    (a,) = fleet.spawn(1)
    assert a.send("fail acme assist invalid_key")["reason"] == "provider_failed:invalid_key"
    put(fleet.store, replace(workspace("acme"), fallback=FallbackPolicy(neo=False)))
    a.send("refresh")
    route = a.send("resolve acme assist")
    assert (route["provider"], route["reason"]) == ("unavailable", "fallback_disabled:invalid_key")
    assert open_episodes(fleet.runtime) == [("openai", "invalid_key")]


def test_neo_false_with_nothing_enabled_is_unavailable(fleet: Fleet) -> None:
    put(fleet.store, replace(workspace("acme", None), fallback=FallbackPolicy(neo=False)))
    (a,) = fleet.spawn(1)
    route = a.send("resolve acme auto_reply")
    assert (route["provider"], route["reason"], route["cost"]) == (
        "unavailable", "fallback_disabled:no_provider_enabled", 0,
    )  # fmt: skip
    assert neo_credits(fleet.runtime) == 0


@pytest.mark.parametrize("per", ["episode", "day"])
def test_eight_processes_racing_on_a_cap_of_100_never_pass_it_and_send_one_email(
    fleet: Fleet, per: str
) -> None:
    policy = FallbackPolicy(max_neo_credits=100, per=per)
    put(fleet.store, replace(workspace("acme"), fallback=policy))
    racers = fleet.spawn(8)
    first = racers[0].send("fail acme assist no_credits")  # 3 credits: 97 left
    assert first["provider"] == "neo"
    start = fleet.tmp / "go"
    for r in racers[1:]:  # the first keeps the failure as it patched it in, unread
        r.send("refresh")
    for r in racers:
        r.start(f"race acme assist {start}")
    start.touch()
    results = [r.finish() for r in racers]
    assert all(res["reason"] == "neo_cap_reached" for res in results)
    # 33 actions of 3 credits: 99. The 34th would pass 100, whichever process asked.
    assert sum(res["neo"] for res in results) == 32
    assert neo_credits(fleet.runtime) == 99
    for r in racers:
        r.send("deliver")
    messages = fleet.mailbox.wait_for(2)
    subjects = sorted(str(m["Subject"]) for _, m in messages)
    assert len(subjects) == 2, subjects
    assert "Neo credit cap reached" in subjects[0]
    assert "no_credits" in subjects[1]
    assert all(CANARY not in m.as_string() for _, m in messages)


def test_a_raised_cap_serves_again_at_once(fleet: Fleet) -> None:
    ws = replace(workspace("acme"), fallback=FallbackPolicy(max_neo_credits=3))
    put(fleet.store, ws)
    (a,) = fleet.spawn(1)
    assert a.send("fail acme assist no_credits")["provider"] == "neo"  # 3 of 3
    assert a.send("resolve acme assist")["reason"] == "neo_cap_reached"
    put(fleet.store, replace(ws, fallback=FallbackPolicy(max_neo_credits=6)))
    a.send("refresh")
    assert a.send("resolve acme assist")["provider"] == "neo"  # 6 of 6
    assert a.send("resolve acme assist")["reason"] == "neo_cap_reached"
    assert neo_credits(fleet.runtime) == 6
