"""What a failure e-mail and the failure log line say under a workspace's fallback policy."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from byokctl.classify import Classification, Outcome
from byokctl.model import FallbackPolicy
from byokctl.resolver import Resolver
from byokctl.resolver._notify import compose
from byokctl.store import MasterKey, Store
from byokctl.store.runtime import Episode
from tests.resolver.helpers import put, workspace


def _episode(outcome: str, *, sticky: bool = True) -> Episode:
    return Episode(
        id=1,
        workspace="wayne",
        provider="openai",
        fingerprint="fp",
        outcome=outcome,
        sticky=sticky,
        detail="d",
        opened_at=1_800_000_000.0,
        closed_at=None,
        close_reason=None,
        notified_at=None,
        notify_attempts=0,
        notify_error=None,
    )


def _advice(episode: Episode, policy: FallbackPolicy | None) -> str:
    body = compose(
        episode, model="gpt-4o", sender="b@x.example", recipients=["a@x.example"], policy=policy
    ).get_content()
    return " ".join(body.partition("What to do:")[2].partition("This is the only")[0].split())


@pytest.mark.parametrize("outcome", ["invalid_key", "no_credits", "model_not_available"])
def test_never_neo_advice_does_not_promise_neo(outcome: str) -> None:
    advice = _advice(_episode(outcome), FallbackPolicy(neo=False))
    assert "Neo serves" not in advice
    assert "AI is unavailable until" in advice


def test_never_neo_transient_advice_does_not_send_requests_to_neo() -> None:
    advice = _advice(_episode("outage", sticky=False), FallbackPolicy(neo=False))
    assert "go to Neo" not in advice and "AI is unavailable for a cooldown" in advice


def test_on_recovery_advice_names_the_probe_except_for_an_invalid_key() -> None:
    policy = FallbackPolicy(return_="on_recovery")
    assert "until a probe succeeds" in _advice(_episode("no_credits"), policy)
    assert "probe" not in _advice(_episode("invalid_key"), policy)


def test_the_default_advice_is_unchanged() -> None:
    advice = _advice(_episode("no_credits"), None)
    assert advice.endswith("Neo serves until the credentials change.")


def test_the_log_line_of_a_never_neo_failure_does_not_say_neo_takes_over(
    store: Store, store_url: str, master_key: MasterKey, caplog: pytest.LogCaptureFixture
) -> None:
    put(store, replace(workspace("wayne", "openai"), fallback=FallbackPolicy(neo=False)))
    caplog.set_level(logging.WARNING, logger="byokctl")
    with Resolver.from_url(store_url, master_key=master_key, refresh_interval=None, env={}) as r:
        r.report(r.resolve("wayne", "assist"), Classification(Outcome.NO_CREDITS, "empty"))
    assert "wayne on openai failed (no_credits)" in caplog.text
    assert "Neo takes over" not in caplog.text
    assert "AI is unavailable" in caplog.text
