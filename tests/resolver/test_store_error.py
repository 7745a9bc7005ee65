"""One bad row never takes the fleet down: its workspace goes to Neo (``store_error``), alone.

Real SQLite and PostgreSQL stores, damaged with SQL (``tests/damage.py``); a real SMTP
server for the e-mail. Canaries check that no key leaks into a route, a log or a mail.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from byokctl.errors import ByokError, StoreError
from byokctl.model import NEO
from byokctl.resolver import DEFAULT_NEO_COSTS, ProviderResponse, Resolver, SmtpConfig
from byokctl.store import MasterKey, Store, open_store
from byokctl.store.runtime import RuntimeStore
from tests.damage import DAMAGE, flip_ciphertext, run_sql
from tests.resolver.conftest import Mailbox
from tests.resolver.helpers import CANARY, put, workspace

INVALID = ProviderResponse(401, b'{"error":{"code":"invalid_api_key","message":"bad key"}}')
ACME_KEY = CANARY + "-acme"
BETA_KEY = CANARY + "-beta"


def _store_error_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "cannot be read from the store" in r.getMessage()
    ]


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_bad_row_routes_its_workspace_to_neo_and_no_other(
    store: Store,
    store_url: str,
    master_key: MasterKey,
    caplog: pytest.LogCaptureFixture,
    damage: str,
) -> None:
    put(
        store,
        workspace("acme", key=ACME_KEY, notify=("ops@acme.example",)),
        workspace("beta", key=BETA_KEY),
    )
    DAMAGE[damage](store_url, "acme", "beta")
    caplog.set_level(logging.INFO)
    # Before the fix, from_url itself raised here: the application could not even fall
    # back to Neo for any workspace.
    with Resolver.from_url(store_url, master_key=master_key, refresh_interval=None, env={}) as r:
        acme = r.resolve("acme", "assist")
        assert (acme.provider, acme.reason) == (NEO, "store_error")
        assert acme.cost == DEFAULT_NEO_COSTS["assist"]
        assert acme.credentials == {}
        beta = r.resolve("beta", "summarize")
        assert (beta.provider, beta.reason) == ("openai", "byok")
        assert beta.api_key() == BETA_KEY
        assert r.resolve("nobody", "assist").reason == "unknown_workspace"
        # A reload (another apply moved the serial) does not log the same damage again.
        put(store, workspace("gamma"))
        assert r.refresh()
        assert r.resolve("gamma", "assist").reason == "byok"
        assert r.resolve("acme", "auto-reply").reason == "store_error"
        status = {s.workspace: s for s in r.status()}
    warnings = _store_error_warnings(caplog)
    assert len(warnings) == 1, warnings
    assert "'acme'" in warnings[0]
    assert "beta" not in warnings[0]
    assert set(status) == {"acme", "beta", "gamma"}
    assert status["acme"].reason == "store_error"
    assert [e.outcome for e in status["acme"].episodes] == ["store_error"]
    assert status["beta"].episodes == ()
    assert CANARY not in caplog.text + repr(acme) + repr(status)


def test_the_operator_is_mailed_once_and_the_episode_closes_when_repaired(
    store: Store,
    store_url: str,
    master_key: MasterKey,
    mailbox: Mailbox,
    runtime: RuntimeStore,
) -> None:
    put(
        store,
        workspace("acme", key=ACME_KEY, notify=("ops@acme.example", "cto@acme.example")),
        workspace("beta", key=BETA_KEY),
    )
    flip_ciphertext(store_url, "acme", "beta")
    smtp = SmtpConfig(mailbox.url, sender="byok@helpdesk.example")
    # Two processes' worth of resolvers see the same damage: one episode, one e-mail.
    with (
        Resolver.from_url(
            store_url, master_key=master_key, smtp=smtp, refresh_interval=None, env={}
        ) as first,
        Resolver.from_url(
            store_url, master_key=master_key, smtp=smtp, refresh_interval=None, env={}
        ) as second,
    ):
        sent = first.deliver_notifications() + second.deliver_notifications()
        first.refresh()
        sent += first.deliver_notifications() + second.deliver_notifications()
        assert sent == 1
        messages = mailbox.wait_for(1)
        assert len(messages) == 1
        rcpts, msg = messages[0]
        assert sorted(rcpts) == ["cto@acme.example", "ops@acme.example"]
        text = msg.as_string()
        assert "configuration unreadable" in msg["Subject"]
        assert "acme" in msg["Subject"]
        assert "store_error" in text and "Neo has taken over" in text
        assert CANARY not in text
        # Repaired (apply rewrites the workspace): back to its provider, episode closed.
        put(store, workspace("acme", key=ACME_KEY, notify=("ops@acme.example",)))
        assert first.refresh()
        route = first.resolve("acme", "assist")
        assert (route.provider, route.reason) == ("openai", "byok")
        assert runtime.episodes(workspace="acme", open_only=True) == []
        closed = runtime.episodes(workspace="acme", open_only=False)
        assert [(e.outcome, e.close_reason) for e in closed] == [
            ("store_error", "store_rows_repaired")
        ]
        second.refresh()
        assert second.resolve("acme", "assist").reason == "byok"
    assert len(mailbox.messages) == 1


def test_from_url_raises_for_configuration_errors_only(
    store: Store, store_url: str, master_key: MasterKey
) -> None:
    put(store, workspace("acme", key=ACME_KEY), workspace("beta", key=BETA_KEY))
    flip_ciphertext(store_url, "acme", "beta")
    Resolver.from_url(store_url, master_key=master_key, refresh_interval=None, env={}).close()
    with pytest.raises(StoreError, match="unsupported store URL"):
        Resolver.from_url("mysql://db/byok", master_key=master_key, env={})
    with pytest.raises(StoreError, match="master key"):  # a wrong key is not a bad row
        Resolver.from_url(store_url, master_key=MasterKey.generate(), env={})
    with pytest.raises(ByokError):  # no master key at all
        Resolver.from_url(store_url, env={})


def test_a_bad_runtime_row_fails_closed_for_its_workspace_alone(
    tmp_path: Path, master_key: MasterKey, caplog: pytest.LogCaptureFixture
) -> None:
    # SQLite only: PostgreSQL's timestamptz columns cannot hold a malformed time.
    url = f"sqlite:///{tmp_path / 'state.db'}"
    with open_store(url, master_key=master_key) as store:
        put(store, workspace("acme", key=ACME_KEY), workspace("beta", key=BETA_KEY))
    with Resolver.from_url(url, master_key=master_key, refresh_interval=None, env={}) as r:
        assert r.report(r.resolve("acme", "assist"), INVALID) is not None
    run_sql(url, "UPDATE provider_health SET since = 'garbage' WHERE workspace = 'acme'")
    run_sql(url, "UPDATE failure_episodes SET opened_at = 'garbage' WHERE workspace = 'acme'")
    caplog.set_level(logging.INFO)
    with Resolver.from_url(url, master_key=master_key, refresh_interval=None, env={}) as r:
        assert r.resolve("acme", "assist").reason == "store_error"  # fails closed
        assert r.resolve("beta", "assist").reason == "byok"
        for _ in range(2):
            status = {s.workspace: s for s in r.status()}
            assert status["acme"].reason == "store_error"
            assert status["acme"].episodes == ()  # its row does not decode: left out
        # The operator's override (or new credentials) rewrites the record.
        assert r.clear("acme")
        assert r.resolve("acme", "assist").reason == "byok"
    bad = [m for m in caplog.messages if "is malformed" in m]
    assert len(bad) == 2, bad  # one line per bad row, not one per read
    assert CANARY not in caplog.text


def test_a_providers_own_failure_survives_the_unreadable_time(
    store: Store, store_url: str, master_key: MasterKey, runtime: RuntimeStore
) -> None:
    put(store, workspace("acme", key=ACME_KEY), workspace("beta", key=BETA_KEY))
    with Resolver.from_url(store_url, master_key=master_key, refresh_interval=None, env={}) as r:
        assert r.report(r.resolve("acme", "assist"), INVALID) is not None
        assert r.resolve("acme", "assist").reason == "provider_failed:invalid_key"
    good = run_sql(
        store_url, "SELECT nonce, ciphertext FROM provider_secrets WHERE workspace = ?", "acme"
    )
    flip_ciphertext(store_url, "acme", "beta")
    with Resolver.from_url(store_url, master_key=master_key, refresh_interval=None, env={}) as r:
        assert r.resolve("acme", "assist").reason == "store_error"
        open_now = runtime.episodes(workspace="acme", open_only=True)
        assert sorted(e.outcome for e in open_now) == ["invalid_key", "store_error"]
        # The rows are restored as they were (a backup): the key is still the revoked one.
        run_sql(
            store_url,
            "UPDATE provider_secrets SET nonce = ?, ciphertext = ? WHERE workspace = ?",
            bytes(good[0][0]),  # type: ignore[arg-type]
            bytes(good[0][1]),  # type: ignore[arg-type]
            "acme",
        )
        put(store, workspace("gamma"))  # any apply moves the serial: the resolver reloads
        assert r.refresh()
        assert r.resolve("acme", "assist").reason == "provider_failed:invalid_key"
        still_open = runtime.episodes(workspace="acme", open_only=True)
        assert [e.outcome for e in still_open] == ["invalid_key"]  # the same episode: no new mail
        assert still_open[0].id in {e.id for e in open_now}
