"""Propagation across resolver processes: applies and reported failures reach every one.

On PostgreSQL the resolvers LISTEN and reload as soon as a change is announced; polling
the store's versions is the safety net (a missed notification, a dropped connection).
On SQLite they poll. Each run prints the measured delays (``pytest -s`` shows them).
"""

from __future__ import annotations

import re

import psycopg
import pytest

from byokctl.resolver import Resolver
from byokctl.store import MasterKey, Store, open_store
from byokctl.store.runtime import open_runtime_store
from tests.pg import postgres_schema_url
from tests.resolver.conftest import Mailbox
from tests.resolver.helpers import put, workspace
from tests.resolver.propagation import WatcherFleet
from tests.waiting import wait_until

ROUNDS = 6
#: SQLite's poll interval here (a quarter of the default 1 s bound). How long
#: propagation takes is benchmarks/store.py's figure, not an assertion here.
POLL_S = 0.25
#: A poll interval longer than any test: whatever is seen, LISTEN/NOTIFY delivered.
NO_POLL_S = 3600.0
#: How long a change may take to arrive before the test fails (a bound on a hang).
DEADLINE_S = 30.0


def test_4_processes_see_every_apply_and_failure_with_one_email_each(
    store: Store, store_url: str, master_key: MasterKey, mailbox: Mailbox
) -> None:
    listening = store_url.startswith("postgresql")
    # On PostgreSQL the processes never poll during the test: every change each one
    # sees was announced (LISTEN/NOTIFY). SQLite has only the poll.
    interval, staleness = (NO_POLL_S, None) if listening else (POLL_S, "default")
    put(store, workspace("acme", "gemini"))  # not the first round's provider
    with WatcherFleet(
        store_url, master_key, refresh_interval=interval, max_staleness=staleness,
        env={"BYOK_SMTP_URL": mailbox.url},
    ) as fleet:  # fmt: skip
        # The episode's e-mail goes out before the next apply closes the episode.
        result = fleet.run(
            store,
            ROUNDS,
            after_failure=lambda i: mailbox.wait_for(i + 1, DEADLINE_S) and None,
            timeout=DEADLINE_S,
        )
    assert fleet.returncodes == [0, 0, 0, 0], fleet.stderr
    how = "LISTEN" if listening else f"polling every {interval:g} s"
    print(f"\n{store_url.split(':', maxsplit=1)[0]} ({how}): {result.summary()}")
    # Every process saw every apply, and every failure another process reported.
    assert len(result.apply) == 4 * ROUNDS and len(result.failure) == 3 * ROUNDS

    # Exactly one e-mail per failure episode, though four processes could send each.
    # The processes have exited (return codes above): every e-mail sent has arrived.
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


def test_polling_catches_a_change_whose_notification_was_missed(pg_url: str) -> None:
    key = MasterKey.generate()
    with open_store(pg_url, master_key=key) as store:
        put(store, workspace("acme", "openai"))
        with Resolver.from_url(pg_url, master_key=key, refresh_interval=0.3, env={}) as r:
            route = r.peek("acme", "assist")
            wait_until(
                lambda: len(_listen_pids(pg_url)) == 1, DEADLINE_S, "the LISTEN connection"
            )  # its LISTEN connection
            # A health change written without NOTIFY: as if the notification was lost.
            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute(
                    "INSERT INTO provider_health (workspace, provider, credential_fingerprint,"
                    " status, reason, failures, since, checked_at) VALUES"
                    " ('acme', 'openai', %s, 'sticky', 'invalid_key', 1, now(), now())",
                    (route.fingerprint,),
                )
                conn.execute("UPDATE runtime_meta SET version = version + 1")
            # Written without NOTIFY, so only the poll can bring it.
            wait_until(
                lambda: r.peek("acme", "assist").reason == "provider_failed:invalid_key",
                DEADLINE_S,
                "the poll to catch the unannounced change",
            )


def test_a_dropped_listen_connection_reconnects_and_keeps_changes_fast(pg_url: str) -> None:
    key = MasterKey.generate()
    with open_store(pg_url, master_key=key) as store:
        put(store, workspace("acme", "openai"))
        # No poll during the test: anything seen came through LISTEN.
        with Resolver.from_url(
            pg_url, master_key=key, refresh_interval=NO_POLL_S, max_staleness=None, env={}
        ) as r:
            wait_until(lambda: len(_listen_pids(pg_url)) == 1, DEADLINE_S, "the LISTEN connection")
            [old_pid] = _listen_pids(pg_url)
            with psycopg.connect(pg_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (old_pid,))
            wait_until(
                lambda: bool(pids := _listen_pids(pg_url)) and old_pid not in pids,
                DEADLINE_S,
                "the feed to reconnect",
            )
            put(store, workspace("acme", "anthropic"))
            wait_until(
                lambda: r.peek("acme", "assist").provider == "anthropic",
                DEADLINE_S,
                "the change announced on the new connection",
            )
