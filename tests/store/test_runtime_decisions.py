"""The runtime store's decisions as pure functions: no database, no clock, no I/O.

The backends (tests in ``test_store_runtime*`` and the resolver's) run these inside
their transactions; here each rule of the breaker and episode state machine is pinned
down on its own.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from byokctl.store._health import (
    HealthDecision,
    credit_usage_query,
    decide_failure,
    decide_probe,
    decide_success,
    episodes_query,
    health_from_row,
    health_values,
    may_reset,
    write_decision,
)
from byokctl.store.runtime import (
    MAX_RETRY_AFTER_S,
    BreakerPolicy,
    Failure,
    HealthRecord,
    capped_retry_after,
)

POLICY = BreakerPolicy(threshold=3, window=60.0, cooldown=30.0, probe_timeout=30.0)
T0 = 1_700_000_000.0


def failure(
    *,
    fingerprint: str = "fp1",
    sticky: bool = False,
    probe: bool = False,
    retry_after: float | None = None,
    outcome: str = "outage",
) -> Failure:
    """A failure of acme's openai provider."""
    return Failure(
        "acme", "openai", fingerprint, outcome, sticky, "sanitized detail", retry_after, probe
    )


def run(
    failures: list[Failure], *, start: float = T0, step: float = 1.0
) -> tuple[HealthRecord | None, list[HealthDecision]]:
    """Apply failures one second apart from ``start``, as a backend would (ids from 1)."""
    h: HealthRecord | None = None
    decisions = []
    next_id = 1
    for i, f in enumerate(failures):
        d = decide_failure(h, f, now=start + i * step, policy=POLICY)
        decisions.append(d)
        if d.write:
            assert d.health is not None
            h = d.health
            if d.opens is not None:
                h, next_id = replace(h, episode_id=next_id), next_id + 1
    return h, decisions


# -- failures: counting, the window and the breaker -------------------------------------


def test_transient_failures_below_the_threshold_count_without_changing_the_route() -> None:
    h, decisions = run([failure(), failure()])
    assert h is not None
    assert (h.status, h.failures, h.window_started, h.since) == ("ok", 2, T0, T0)
    assert all(d.write and not d.changed and d.opens is None and not d.close for d in decisions)


def test_the_threshold_opens_the_breaker_and_one_episode() -> None:
    h, decisions = run([failure(), failure(), failure()])
    last = decisions[-1]
    assert last.changed
    assert last.opens == failure()
    assert last.close == ()
    assert h is not None
    assert (h.status, h.failures, h.episode_id) == ("open", 3, 1)
    assert h.open_until == T0 + 2 + POLICY.cooldown
    assert h.probe_until is None
    assert h.since == T0 + 2


def test_retry_after_longer_than_the_cooldown_wins() -> None:
    h, _ = run([failure(), failure(), failure(retry_after=120.0)])
    assert h is not None
    assert h.open_until == T0 + 2 + 120.0
    h, _ = run([failure(), failure(), failure(retry_after=5.0)])
    assert h is not None
    assert h.open_until == T0 + 2 + POLICY.cooldown


def test_the_window_is_fixed_from_its_first_failure() -> None:
    # Two failures, then one just past the window: a fresh window, counted from 1.
    h, decisions = run([failure(), failure(), failure()], step=35.0)
    assert h is not None
    assert (h.status, h.failures, h.window_started) == ("ok", 1, T0 + 70.0)
    assert not any(d.changed for d in decisions)
    # Exactly at the window's end counts as outside it.
    h2 = decide_failure(
        replace(h, failures=2, window_started=T0), failure(), now=T0 + 60.0, policy=POLICY
    ).health
    assert h2 is not None
    assert (h2.failures, h2.window_started) == (1, T0 + 60.0)


def test_a_failure_in_flight_while_open_is_counted_but_does_not_extend_the_cooldown() -> None:
    h, _ = run([failure(), failure(), failure()])
    assert h is not None
    d = decide_failure(h, failure(outcome="timeout"), now=T0 + 10, policy=POLICY)
    assert d.write
    assert not d.changed
    assert d.opens is None
    assert d.health == replace(h, failures=4, outcome="timeout")


def test_a_probe_failure_reopens_the_breaker_for_another_cooldown() -> None:
    h, _ = run([failure(), failure(), failure()])
    assert h is not None
    probing = replace(h, probe_until=T0 + 60)
    d = decide_failure(probing, failure(probe=True), now=T0 + 40, policy=POLICY)
    assert d.changed
    assert d.opens is None  # the same episode goes on
    assert d.health is not None
    assert d.health.open_until == T0 + 40 + POLICY.cooldown
    assert d.health.probe_until is None
    assert d.health.episode_id == h.episode_id


# -- sticky failures ------------------------------------------------------------------


def test_a_sticky_failure_goes_sticky_at_once_with_its_own_episode() -> None:
    d = decide_failure(None, failure(sticky=True, outcome="invalid_key"), now=T0, policy=POLICY)
    assert d.changed
    assert d.close == ("escalated",)
    assert d.opens is not None
    assert d.health is not None
    assert (d.health.status, d.health.outcome, d.health.failures) == ("sticky", "invalid_key", 1)
    assert d.health.open_until is None


def test_a_sticky_failure_escalates_an_open_breaker() -> None:
    h, _ = run([failure(), failure(), failure()])
    d = decide_failure(h, failure(sticky=True), now=T0 + 5, policy=POLICY)
    assert d.close == ("escalated",)
    assert d.opens is not None
    assert d.health is not None
    assert (d.health.status, d.health.failures, d.health.since) == ("sticky", 4, T0 + 5)


@pytest.mark.parametrize("sticky", [False, True])
def test_sticky_stays_over_any_later_failure(sticky: bool) -> None:
    h, _ = run([failure(sticky=True)])
    d = decide_failure(h, failure(sticky=sticky, probe=True), now=T0 + 5, policy=POLICY)
    assert d == HealthDecision("acme", "openai", h)
    assert not d.write


# -- credentials changed --------------------------------------------------------------


@pytest.mark.parametrize(
    "previous",
    [[failure(), failure(), failure()], [failure(sticky=True)], [failure()]],
    ids=["open", "sticky", "counting"],
)
@pytest.mark.parametrize("sticky", [False, True])
def test_a_failure_for_another_fingerprint_never_replaces_the_record(
    previous: list[Failure], sticky: bool
) -> None:
    # Regression: a late report from the old key wiped the new key's sticky state.
    # Only a reset on a credential change (the resolver's reconcile) replaces a record.
    h, _ = run(previous)
    d = decide_failure(h, failure(fingerprint="fp2", sticky=sticky), now=T0 + 5, policy=POLICY)
    assert d == HealthDecision("acme", "openai", h)


def test_a_huge_retry_after_is_capped_at_an_hour() -> None:
    for huge in (1e20, float("inf")):
        h, _ = run([failure(), failure(), failure(retry_after=huge)])
        assert h is not None
        assert h.open_until == T0 + 2 + MAX_RETRY_AFTER_S
    assert capped_retry_after(float("nan")) is None
    assert capped_retry_after(-5.0) == 0.0


# -- successes ----------------------------------------------------------------------


def test_a_success_closes_an_open_breaker() -> None:
    h, _ = run([failure(), failure(), failure()])
    d = decide_success(h, "acme", "openai", "fp1", now=T0 + 40)
    assert d.close == ("recovered",)
    assert d.changed
    assert d.health == HealthRecord(
        "acme", "openai", "fp1", "ok", None, 0, None, None, None, T0 + 40, None
    )


@pytest.mark.parametrize(
    ("failures", "fingerprint"),
    [
        ([failure(sticky=True)], "fp1"),  # only new credentials clear sticky
        ([failure()], "fp1"),  # ok: nothing to close
        ([failure(), failure(), failure()], "fp2"),  # another fingerprint's success
        ([], "fp1"),  # no record
    ],
)
def test_a_success_leaves_anything_else_alone(failures: list[Failure], fingerprint: str) -> None:
    h, _ = run(failures)
    d = decide_success(h, "acme", "openai", fingerprint, now=T0 + 40)
    assert d == HealthDecision("acme", "openai", h)


# -- the half-open probe ----------------------------------------------------------------


def test_a_single_probe_after_the_cooldown() -> None:
    h, _ = run([failure(), failure(), failure()])
    assert h is not None
    assert h.open_until is not None
    # During the cooldown: come back when it ends.
    grant, new = decide_probe(h, "fp1", now=h.open_until - 1, lease=10.0)
    assert (grant.granted, grant.retry_at, new) == (False, h.open_until, None)
    # After it: granted once, with a lease.
    now = h.open_until + 1
    grant, new = decide_probe(h, "fp1", now=now, lease=10.0)
    assert (grant.granted, grant.retry_at) == (True, now + 10.0)
    assert new == replace(h, probe_until=now + 10.0)
    # A second caller during the lease is refused until the lease ends ...
    grant, again = decide_probe(new, "fp1", now=now + 5, lease=10.0)
    assert (grant.granted, grant.retry_at, again) == (False, now + 10.0, None)
    # ... and granted after it (the first probe hung).
    grant, again = decide_probe(new, "fp1", now=now + 10.0, lease=10.0)
    assert grant.granted
    assert again is not None


@pytest.mark.parametrize(
    ("failures", "fingerprint"),
    [([], "fp1"), ([failure()], "fp1"), ([failure(sticky=True)], "fp1"), ([failure()], "fp2")],
)
def test_no_probe_without_an_open_breaker_for_this_fingerprint(
    failures: list[Failure], fingerprint: str
) -> None:
    h, _ = run(failures)
    grant, new = decide_probe(h, fingerprint, now=T0 + 100, lease=10.0)
    assert (grant.granted, grant.retry_at, new) == (False, T0 + 100, None)


def test_reset_refuses_a_record_with_other_credentials() -> None:
    h, _ = run([failure()])
    assert may_reset(h, "fp1")
    assert may_reset(h, None)
    assert may_reset(None, "fp1")
    assert not may_reset(h, "fp2")


# -- carrying a decision out ----------------------------------------------------------


class Recorder:
    """An in-memory :class:`~byokctl.store._health.HealthWriter`: records the write order."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def _close_episodes(
        self, c: str, workspace: str, provider: str, now: float, reason: str
    ) -> None:
        self.calls.append(("close", c, workspace, provider, now, reason))

    def _open_episode(self, c: str, f: Failure, now: float) -> int:
        self.calls.append(("open", c, f.outcome, now))
        return 42

    def _put(self, c: str, h: HealthRecord, now: float) -> None:
        self.calls.append(("put", c, h.status, h.episode_id, now))

    def _bump(self, c: str) -> None:
        self.calls.append(("bump", c))


def test_write_decision_closes_opens_writes_then_bumps_in_that_order() -> None:
    h, _ = run([failure(), failure(), failure()])
    d = decide_failure(h, failure(sticky=True, probe=True), now=T0 + 5, policy=POLICY)
    rec = Recorder()
    change = write_decision(rec, "tx", d, T0 + 5)
    assert rec.calls == [
        ("close", "tx", "acme", "openai", T0 + 5, "escalated"),
        ("open", "tx", "outage", T0 + 5),
        ("put", "tx", "sticky", 42, T0 + 5),
        ("bump", "tx"),
    ]
    assert change.changed
    assert change.episode_opened == 42
    assert change.health is not None
    assert change.health.episode_id == 42


def test_write_decision_of_a_no_op_writes_nothing() -> None:
    h, _ = run([failure(sticky=True)])
    rec = Recorder()
    change = write_decision(rec, "tx", decide_success(h, "acme", "openai", "fp1", now=T0), T0)
    assert rec.calls == []
    assert (change.health, change.changed, change.episode_opened) == (h, False, None)


def test_health_rows_round_trip_through_the_shared_codec() -> None:
    h, _ = run([failure(), failure(), failure()])
    assert h is not None
    values = health_values(h, T0 + 9, lambda t: t)
    assert values[-1] == T0 + 9  # checked_at
    assert health_from_row(values[:-1], float) == h


def test_shared_queries_use_the_drivers_placeholder() -> None:
    sql, args = episodes_query(workspace="acme", open_only=True, mark="%s")
    assert "workspace = %s AND closed_at IS NULL ORDER BY id DESC" in sql
    assert args == ["acme"]
    sql, args = credit_usage_query(bucket="NULL", workspace=None, since="S", until="U", mark="?")
    assert "WHERE at >= ? AND at < ? GROUP BY" in sql
    assert args == ["S", "U"]
