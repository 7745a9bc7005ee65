"""Propagation across resolver processes: applies and reported failures, within the bound.

On PostgreSQL the resolvers LISTEN and reload as soon as a change is announced; polling
the store's versions is the safety net (a missed notification, a dropped connection).
On SQLite they poll. Each run prints the measured delays (``pytest -s`` shows them).
"""

from __future__ import annotations

import re
import statistics
import time

import psycopg
import pytest

from byokctl.resolver import Resolver
from byokctl.store import MasterKey, Store, open_store
from byokctl.store.runtime import open_runtime_store
from tests.pg import postgres_schema_url
from tests.resolver.conftest import Mailbox
from tests.resolver.helpers import put, workspace
from tests.resolver.propagation import WatcherFleet

ROUNDS = 6
#: The propagation bound under test: the default refresh interval.
BOUND_S = 1.0


def test_4_processes_see_applies_and_failures_within_the_bound_with_one_email_each(
    store: Store, store_url: str, master_key: MasterKey, mailbox: Mailbox
) -> None:
    listening = store_url.startswith("postgresql")
    # SQLite only polls: poll 4x per bound so that the bound holds with margin.
    interval = BOUND_S if listening else BOUND_S / 4
    put(store, workspace("acme", "gemini"))  # not the first round's provider
    with WatcherFleet(
        store_url, master_key, refresh_interval=interval, env={"BYOK_SMTP_URL": mailbox.url}
    ) as fleet:
        # The episode's e-mail goes out before the next apply closes the episode.
        result = fleet.run(store, ROUNDS, after_failure=lambda i: mailbox.wait_for(i + 1) and None)
    assert fleet.returncodes == [0, 0, 0, 0], fleet.stderr
    how = "LISTEN" if listening else f"polling every {interval:g} s"
    print(f"\n{store_url.split(':', maxsplit=1)[0]} ({how}): {result.summary()}")
    assert len(result.apply) == 4 * ROUNDS and len(result.failure) == 3 * ROUNDS
    assert max(result.all) < BOUND_S, result.summary()
    if listening:
        # Woken by NOTIFY, not by the 1 s poll (which would put the median near 0.5 s).
        assert statistics.median(result.all) < 0.2, result.summary()

    # Exactly one e-mail per failure episode, though four processes could send each.
    time.sleep(0.3)  # room for a (wrong) duplicate to arrive
    runtime = open_runtime_store(store_url)
    try:
        episodes = runtime.episodes(workspace="acme", open_only=False)
    finally:
        runtime.close()
    assert len(episodes) == ROUNDS
    assert all(e.notified_at is not None for e in episodes)
    bodies = [bytes(msg.get_payload(decode=True)).decode() for _, msg in mailbox.messages]
    mailed = sorted(int(m.group(1)) for b in bodies if (m := re.search(r"episode (\d+)", b)))
    assert len(bodies) == ROUNDS
    assert mailed == sorted(e.id for e in episodes)


@pytest.fixture
def pg_url(postgres_database: str) -> str:
    """A PostgreSQL store location (a fresh schema)."""
    return postgres_schema_url(postgres_database)


def _listen_pids(pg_url: str) -> set[int]:
    """Backends of this database's resolver LISTEN connections (``byokctl-listen``)."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE application_name = 'byokctl-listen' AND datname = current_database()"
        ).fetchall()
    return {int(row[0]) for row in rows}


def _wait_for(check: object, timeout: float) -> float:
    """Seconds until ``check()`` is true; fails after ``timeout``."""
    started = time.monotonic()
    while not check():  # type: ignore[operator]
        elapsed = time.monotonic() - started
        assert elapsed < timeout, f"not within {timeout} s"
        time.sleep(0.002)
    return time.monotonic() - started


def test_polling_catches_a_change_whose_notification_was_missed(pg_url: str) -> None:
    key = MasterKey.generate()
    with open_store(pg_url, master_key=key) as store:
        put(store, workspace("acme", "openai"))
        with Resolver.from_url(pg_url, master_key=key, refresh_interval=0.3, env={}) as r:
            route = r.peek("acme", "assist")
            _wait_for(lambda: len(_listen_pids(pg_url)) == 1, 5.0)  # its LISTEN connection
            # A health change written without NOTIFY: as if the notification was lost.
            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute(
                    "INSERT INTO provider_health (workspace, provider, credential_fingerprint,"
                    " status, reason, failures, since, checked_at) VALUES"
                    " ('acme', 'openai', %s, 'sticky', 'invalid_key', 1, now(), now())",
                    (route.fingerprint,),
                )
                conn.execute("UPDATE runtime_meta SET version = version + 1")
            delay = _wait_for(
                lambda: r.peek("acme", "assist").reason == "provider_failed:invalid_key", 2.0
            )
    assert delay < 0.3 + 0.3, delay  # one poll interval plus a reload


def test_a_dropped_listen_connection_reconnects_and_keeps_changes_fast(pg_url: str) -> None:
    key = MasterKey.generate()
    with open_store(pg_url, master_key=key) as store:
        put(store, workspace("acme", "openai"))
        # A 30 s poll: anything seen faster than that came through LISTEN.
        with Resolver.from_url(
            pg_url, master_key=key, refresh_interval=30.0, max_staleness=None, env={}
        ) as r:
            _wait_for(lambda: len(_listen_pids(pg_url)) == 1, 5.0)
            [old_pid] = _listen_pids(pg_url)
            with psycopg.connect(pg_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (old_pid,))
            _wait_for(lambda: (pids := _listen_pids(pg_url)) and old_pid not in pids, 5.0)
            put(store, workspace("acme", "anthropic"))
            delay = _wait_for(lambda: r.peek("acme", "assist").provider == "anthropic", 2.0)
    assert delay < 0.5, delay
