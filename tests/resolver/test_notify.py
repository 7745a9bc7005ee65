"""Failure e-mails over a real SMTP server: one per episode, retried, never the key."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from byokctl.resolver import ProviderResponse, Resolver, SmtpConfig
from byokctl.store import MasterKey, Store
from byokctl.store.runtime import RuntimeStore
from tests.resolver.conftest import Mailbox, free_port, start_smtp
from tests.resolver.helpers import CANARY, Clock, put, workspace

REPO = Path(__file__).resolve().parents[2]
INVALID = ProviderResponse(
    401,
    # Providers echo a masked key; a careless one might echo it whole: the canary.
    f'{{"error":{{"code":"invalid_api_key","message":"Incorrect API key provided: {CANARY}"}}}}'.encode(),
)


def test_one_email_for_1000_failures_from_8_threads(  # noqa: PLR0917 - pytest parameters
    store: Store, store_url: str, master_key: MasterKey, mailbox: Mailbox,
    caplog: pytest.LogCaptureFixture, runtime: RuntimeStore,
) -> None:  # fmt: skip
    put(store, workspace("acme", "openai", notify=("ops@acme.example", "cto@acme.example")))
    caplog.set_level(logging.DEBUG)
    smtp = SmtpConfig(mailbox.url, sender="byok@helpdesk.example")
    with Resolver.from_url(
        store_url, master_key=master_key, smtp=smtp, refresh_interval=0.05, env={}
    ) as r:
        route = r.resolve("acme", "assist")
        barrier = threading.Barrier(8)

        def fail() -> None:
            barrier.wait()
            for _ in range(125):
                r.report(route, INVALID)

        threads = [threading.Thread(target=fail) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert r.resolve("acme", "assist").reason == "provider_failed:invalid_key"
        messages = mailbox.wait_for(1)
        time.sleep(0.3)  # room for a (wrong) second e-mail to arrive
        episodes = runtime.episodes(workspace="acme")
    assert len(mailbox.messages) == 1
    rcpts, msg = messages[0]
    assert sorted(rcpts) == ["cto@acme.example", "ops@acme.example"]
    text = msg.as_string()
    assert "acme" in msg["Subject"] and "OpenAI" in msg["Subject"] and "Neo" in msg["Subject"]
    assert "invalid_key" in text and "Neo has taken over" in text and "What to do" in text
    assert CANARY not in text
    assert CANARY not in caplog.text
    assert len(episodes) == 1 and episodes[0].notified_at is not None


def test_one_email_for_failures_from_4_processes_at_once(
    store: Store, store_url: str, master_key: MasterKey, mailbox: Mailbox, tmp_path: Path
) -> None:
    put(store, workspace("acme", "openai"))
    start = tmp_path / "go"
    env = {
        **os.environ,
        "BYOK_MASTER_KEY": master_key.to_base64(),
        "BYOK_SMTP_URL": mailbox.url,
        "PYTHONPATH": str(REPO),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.resolver._worker", store_url, str(start), "250", "2"],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for p in procs:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready"
    start.touch()  # all four fail at once
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        assert CANARY not in err
    mailbox.wait_for(1)
    time.sleep(0.3)
    assert len(mailbox.messages) == 1
    assert CANARY not in mailbox.messages[0][1].as_string()


def test_a_failed_send_is_retried_later_and_never_fails_the_action(
    store: Store, store_url: str, master_key: MasterKey, clock: Clock, runtime: RuntimeStore
) -> None:
    put(store, workspace("acme", "openai"))
    box = Mailbox(free_port())  # nothing listens there yet
    smtp = SmtpConfig(box.url, timeout=2.0)
    with Resolver.from_url(
        store_url, master_key=master_key, smtp=smtp, refresh_interval=None, clock=clock, env={}
    ) as r:
        route = r.resolve("acme", "assist")
        assert r.report(route, INVALID) is not None  # the action's report works regardless
        assert r.deliver_notifications() == 0  # connection refused: recorded, retried later
        [episode] = runtime.episodes(workspace="acme")
        assert episode.notify_attempts == 1 and episode.notify_error
        controller = start_smtp(box)
        try:
            assert r.deliver_notifications() == 0  # not yet: the retry is scheduled
            clock.advance(3600)
            assert r.deliver_notifications() == 1
            assert r.deliver_notifications() == 0  # sent once, recorded
        finally:
            controller.stop()
    assert len(box.messages) == 1


def test_recovery_closes_the_episode_and_a_new_one_mails_again(
    store: Store, store_url: str, master_key: MasterKey, clock: Clock, mailbox: Mailbox
) -> None:
    from byokctl.resolver import BreakerPolicy

    put(store, workspace("acme", "openai"))
    smtp = SmtpConfig(mailbox.url)
    policy = BreakerPolicy(threshold=1, cooldown=10)
    outage = ProviderResponse(503, b"{}")
    with Resolver.from_url(
        store_url, master_key=master_key, smtp=smtp, refresh_interval=None, clock=clock,
        breaker=policy, env={},
    ) as r:  # fmt: skip
        r.report(r.resolve("acme", "assist"), outage)
        assert r.deliver_notifications() == 1
        clock.advance(11)
        probe = r.resolve("acme", "assist")
        r.report(probe, "ok")
        assert r.deliver_notifications() == 0
        r.report(r.resolve("acme", "assist"), outage)  # a new episode
        assert r.deliver_notifications() == 1
    subjects = [m["Subject"] for _, m in mailbox.messages]
    assert len(subjects) == 2 and all("outage" in s for s in subjects)
