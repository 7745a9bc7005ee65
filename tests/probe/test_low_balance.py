"""The "running low" e-mail is once per episode across hosts: its state is the store's.

On SQLite and PostgreSQL, with the sandbox's DeepSeek balance (10.00) below a threshold
of 25 and a real SMTP server: probes on two hosts (processes) or in two threads at once
send one e-mail; a recovered balance ends the episode, so the next drop sends another;
a failed send is retried by the next probe.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from byokctl.probe import ProbeReport, probe
from byokctl.probe._lowbalance import notify_low_balance
from byokctl.resolver import Resolver
from byokctl.sandbox import Sandbox
from tests.cli.running import run_cli
from tests.conftest import Repo, workspace_yaml
from tests.pg import postgres_database, postgres_schema_url  # noqa: F401 - a fixture
from tests.resolver.conftest import Mailbox, free_port
from tests.waiting import wait_until

KEY = "sk-lowbal-good-canary-5e6f7a8b"
OTHER_KEY = "sk-lowbal-other-canary-1c2d3e4f"
PROBE = ("probe", "--store-only", "--format", "json", "--no-cache")


@pytest.fixture
def repo(make_repo: Callable[[], Repo], monkeypatch: pytest.MonkeyPatch) -> Repo:
    repo = make_repo()
    monkeypatch.chdir(repo.root)
    return repo


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(
    request: pytest.FixtureRequest, repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """A store on each backend, holding workspace ``deep`` (DeepSeek, low_balance 25)."""
    if request.param == "postgresql":
        url = postgres_schema_url(request.getfixturevalue("postgres_database"))
    else:
        url = f"sqlite:///{tmp_path}/state.db"
    monkeypatch.setenv("BYOK_STORE", url)
    monkeypatch.setenv("BYOK_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())
    _write(repo, KEY)
    return url


def _write(repo: Repo, key: str) -> None:
    text = workspace_yaml("deep", enabled="deepseek", keys={"deepseek": key})
    repo.write("deep", text.replace("      api_key:", "      low_balance: 25\n      api_key:"))
    code, out, err = run_cli("apply", "--auto-approve", "--no-verify")
    assert code == 0, out + err


def _probe(url: str, *, balance: float | None = None) -> ProbeReport:
    """One probe run, as a host runs it (its own resolver); ``balance``: what it saw instead."""
    with Resolver.from_url(url, refresh_interval=None) as resolver:
        report = probe(resolver, cache=None)
        if balance is not None:
            report = replace(
                report, results=tuple(replace(r, balance=balance) for r in report.results)
            )
        return notify_low_balance(resolver, report)


def _running_low(box: Mailbox) -> list[str]:
    return [m["Subject"] for _, m in box.messages if "running low" in m["Subject"]]


def test_two_hosts_probing_at_once_send_one_email(
    store_url: str, sandbox: Sandbox, mailbox: Mailbox, tmp_path: Path
) -> None:
    procs = []
    for host in ("a", "b"):
        env = dict(os.environ, HOME=str(tmp_path / host), XDG_STATE_HOME=str(tmp_path / host))
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "byokctl", *PROBE],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
        )
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert KEY not in out + err
        outs.append(json.loads(out))
    assert sorted(o["low_balance_emails"] for o in outs) == [0, 1]
    assert all(o["results"][0]["running_low"] for o in outs)
    mailbox.wait_for(1)
    assert len(mailbox.wait_for(2, timeout=0.5)) == 1
    assert _running_low(mailbox) == ["[byokctl] deep: DeepSeek balance is running low"]


def test_threads_with_their_own_store_claiming_at_once_send_one_email(
    store_url: str, sandbox: Sandbox, mailbox: Mailbox
) -> None:
    n = 4
    barrier = threading.Barrier(n, timeout=60)
    sent: list[int] = []
    failed: list[BaseException] = []

    def host() -> None:
        try:
            with Resolver.from_url(store_url, refresh_interval=None) as resolver:
                report = probe(resolver, cache=None)
                barrier.wait()  # every host has seen the low balance: all claim now
                sent.append(notify_low_balance(resolver, report).low_balance_emails)
        except BaseException as exc:
            failed.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=host) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert failed == []
    assert sorted(sent) == [0] * (n - 1) + [1]
    mailbox.wait_for(1)
    assert len(mailbox.wait_for(2, timeout=0.5)) == 1


def test_a_recovered_balance_ends_the_episode_and_the_next_drop_emails_again(
    store_url: str, sandbox: Sandbox, mailbox: Mailbox
) -> None:
    assert _probe(store_url).low_balance_emails == 1
    assert _probe(store_url).low_balance_emails == 0, "one e-mail per episode"
    # A probe sees the balance at the threshold: the episode ends, nothing is sent.
    recovered = _probe(store_url, balance=25.0)
    assert (recovered.results[0].running_low, recovered.low_balance_emails) == (False, 0)
    assert _probe(store_url).low_balance_emails == 1, "a new drop is a new episode"
    assert _probe(store_url).low_balance_emails == 0
    assert len(_running_low(mailbox)) == len(mailbox.wait_for(2)) == 2


def test_new_credentials_are_a_new_episode(
    store_url: str, repo: Repo, sandbox: Sandbox, mailbox: Mailbox
) -> None:
    assert _probe(store_url).low_balance_emails == 1
    _write(repo, OTHER_KEY)
    assert _probe(store_url).low_balance_emails == 1, "another key, another episode"
    assert _probe(store_url).low_balance_emails == 0
    assert len(mailbox.wait_for(2)) == 2


def test_a_failed_send_is_retried_by_the_next_probe(
    store_url: str, sandbox: Sandbox, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    working = os.environ["BYOK_SMTP_URL"]
    monkeypatch.setenv("BYOK_SMTP_URL", f"smtp://127.0.0.1:{free_port()}")  # nothing listens
    proc = subprocess.run(
        [sys.executable, "-m", "byokctl", *PROBE],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, "a low balance is not a failure, nor is a refused e-mail"
    assert json.loads(proc.stdout)["low_balance_emails"] == 0
    assert "the running-low e-mail for deep could not be sent" in proc.stderr
    assert KEY not in proc.stdout + proc.stderr
    failed = _probe(store_url)  # a second failure: the first run gave its claim back
    assert failed.low_balance_emails == 0
    (note,) = failed.notes
    assert "could not be sent" in note and "deep" in note
    assert KEY not in note
    monkeypatch.setenv("BYOK_SMTP_URL", working)
    assert _probe(store_url).low_balance_emails == 1, "the claim was released: retried"
    assert _probe(store_url).low_balance_emails == 0
    wait_until(lambda: len(mailbox.messages) == 1, what="the retried e-mail")
    assert len(mailbox.wait_for(2, timeout=0.5)) == 1
