"""The runtime store's decisions, made once for every backend: pure functions, no I/O.

Each backend reads a provider's :class:`HealthRecord` inside its own transaction, asks
a function here what to do (:func:`decide_failure`, :func:`decide_success`,
:func:`decide_probe`, :func:`may_reset`), and carries the answer out with its own SQL
(:func:`write_decision` orders the writes). Keeping the breaker and episode state
machine here means the two backends cannot drift apart, and it can be tested without a
database. Also here: what is the same in both backends' row decoding and filters
(and, as its one effect, the log line for a runtime row that does not decode).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol, TypeVar

# Public in byokctl.store.runtime now; both names stay importable here, their old and
# private place, until the resolver imports them from there (the alias re-exports).
from ._runtime import (
    NEVER_RECOVERS,
    BreakerPolicy,
    CreditUsage,
    Episode,
    Failure,
    HealthChange,
    HealthRecord,
    HealthStatus,
    ProbeGrant,
    capped_retry_after,
)

HEALTH_COLUMNS: Final = (
    "workspace, provider, credential_fingerprint, status, reason, failures,"
    " window_started, open_until, probe_until, since, episode_id"
)
EPISODE_COLUMNS: Final = (
    "id, workspace, provider, credential_fingerprint, reason, sticky, detail, opened_at,"
    " closed_at, close_reason, notified_at, notify_attempts, notify_error"
)
_STATUSES: Final[dict[str, HealthStatus]] = {"ok": "ok", "open": "open", "sticky": "sticky"}

# -- decisions --------------------------------------------------------------------------


@dataclass(frozen=True)
class HealthDecision:
    """What one health write does, carried out in this order by :func:`write_decision`.

    1. close the provider's open episodes once per reason in ``close``;
    2. if ``opens`` is set, open an episode for that failure, whose id then goes into
       ``health.episode_id`` (the decision cannot know it);
    3. if ``write``, write ``health`` (else it is the unchanged record, returned as is);
    4. if ``changed``, bump the runtime version: traffic moves.
    """

    workspace: str
    provider: str
    health: HealthRecord | None
    write: bool = False
    close: tuple[str, ...] = ()
    opens: Failure | None = None
    changed: bool = False


def decide_failure(
    h: HealthRecord | None, f: Failure, *, now: float, policy: BreakerPolicy
) -> HealthDecision:
    """The new health after failure ``f``, given the current record ``h`` (see the protocol).

    A failure for another fingerprint than the record's changes nothing: it is either a
    late report from credentials already replaced, or one for new credentials that
    arrived before the resolver's reconcile reset the old record; only that reset (on a
    credential change, :func:`may_reset`) may replace a record, never a failure (a late
    report from the old key would otherwise wipe the new key's sticky state). Sticky
    stays sticky; a sticky failure escalates; a probe's failure re-opens the breaker;
    transient failures count in a fixed window and trip the breaker at the threshold.
    ``retry_after`` is capped at :data:`MAX_RETRY_AFTER_S` (a provider may send anything).
    """
    ws, prov = f.workspace, f.provider
    if h is not None and h.fingerprint != f.fingerprint:
        return HealthDecision(ws, prov, h)
    if h is not None and h.status == "sticky":
        return HealthDecision(ws, prov, h)
    failures = 1 if h is None else h.failures + 1
    if f.sticky:
        # A transient episode in progress ends here; the sticky one needs new
        # credentials, which is a different message to the admins.
        new = HealthRecord(
            ws, prov, f.fingerprint, "sticky", f.outcome, failures, None, None, None, now, None
        )
        return HealthDecision(ws, prov, new, True, ("escalated",), f, changed=True)
    cooldown = max(policy.cooldown, capped_retry_after(f.retry_after) or 0.0)
    if h is not None and h.status == "open":
        if not f.probe:
            # A request that was in flight when the breaker opened: counted, but it
            # must not extend the cooldown.
            return HealthDecision(ws, prov, replace(h, failures=failures, outcome=f.outcome), True)
        new = replace(
            h, failures=failures, outcome=f.outcome, open_until=now + cooldown, probe_until=None
        )
        return HealthDecision(ws, prov, new, True, changed=True)
    fresh = h is None or h.window_started is None or now - h.window_started >= policy.window
    count = 1 if fresh or h is None else h.failures + 1
    window_started = now if fresh or h is None else h.window_started
    if count < policy.threshold:
        new = HealthRecord(
            ws, prov, f.fingerprint, "ok", f.outcome, count,
            window_started, None, None, now if h is None else h.since, None,
        )  # fmt: skip
        return HealthDecision(ws, prov, new, True)
    new = HealthRecord(
        ws, prov, f.fingerprint, "open", f.outcome, count,
        window_started, now + cooldown, None, now, None,
    )  # fmt: skip
    return HealthDecision(ws, prov, new, True, (), f, changed=True)


def recoverable(h: HealthRecord, recover_sticky: bool) -> bool:
    """Whether a success may close this record: an open breaker, or (on_recovery) sticky."""
    if h.status == "open":
        return True
    return recover_sticky and h.status == "sticky" and h.outcome != NEVER_RECOVERS


def decide_success(
    h: HealthRecord | None,
    workspace: str,
    provider: str,
    fingerprint: str,
    *,
    now: float,
    recover_sticky: bool = False,
) -> HealthDecision:
    """A success closes an open breaker for this fingerprint; anything else stays as it is.

    ``recover_sticky`` (the workspace's ``spec.fallback.return: on_recovery``): it closes
    a sticky record too, unless its outcome is ``invalid_key``.
    """
    if h is None or h.fingerprint != fingerprint or not recoverable(h, recover_sticky):
        return HealthDecision(workspace, provider, h)
    new = HealthRecord(workspace, provider, fingerprint, "ok", None, 0, None, None, None, now, None)
    return HealthDecision(workspace, provider, new, True, ("recovered",), changed=True)


def decide_probe(
    h: HealthRecord | None,
    fingerprint: str,
    *,
    now: float,
    lease: float,
    sticky_after: float | None = None,
) -> tuple[ProbeGrant, HealthRecord | None]:
    """Whether to grant the half-open probe, and the record to write when granted.

    ``sticky_after`` (``return: on_recovery``): a sticky record (not ``invalid_key``) gets
    a probe too, from ``since + sticky_after`` on, one lease at a time.
    """
    if h is None or h.fingerprint != fingerprint or not recoverable(h, sticky_after is not None):
        # The caller's view is stale; its next refresh brings the truth.
        return ProbeGrant(False, now), None
    if h.status == "sticky" and sticky_after is not None and h.since + sticky_after > now:
        return ProbeGrant(False, h.since + sticky_after), None
    if h.open_until is not None and h.open_until > now:
        return ProbeGrant(False, h.open_until), None
    if h.probe_until is not None and h.probe_until > now:
        return ProbeGrant(False, h.probe_until), None
    return ProbeGrant(True, now + lease), replace(h, probe_until=now + lease)


def may_reset(h: HealthRecord | None, fingerprint: str | None) -> bool:
    """Whether a reset may touch this record: not if it now has other credentials."""
    return h is None or fingerprint is None or h.fingerprint == fingerprint


# -- carrying a decision out ----------------------------------------------------------------

_C_contra = TypeVar("_C_contra", contravariant=True)


class HealthWriter(Protocol[_C_contra]):
    """A backend's writes inside one of its transactions on connection type ``C``."""

    def _close_episodes(
        self, c: _C_contra, workspace: str, provider: str, now: float, reason: str
    ) -> None: ...

    def _open_episode(self, c: _C_contra, f: Failure, now: float) -> int: ...

    def _put(self, c: _C_contra, h: HealthRecord, now: float) -> None: ...

    def _bump(self, c: _C_contra) -> None: ...


_C = TypeVar("_C")


def write_decision(writer: HealthWriter[_C], c: _C, d: HealthDecision, now: float) -> HealthChange:
    """Carry ``d`` out on ``c`` (inside the caller's transaction) and say what it did."""
    for reason in d.close:
        writer._close_episodes(c, d.workspace, d.provider, now, reason)
    health, episode = d.health, None
    if d.opens is not None and health is not None:
        episode = writer._open_episode(c, d.opens, now)
        health = replace(health, episode_id=episode)
    if d.write and health is not None:
        writer._put(c, health, now)
    if d.changed:
        writer._bump(c)
    return HealthChange(health, changed=d.changed, episode_opened=episode)


# -- rows and filters -----------------------------------------------------------------------

#: A backend's stored timestamp (ISO text, ``datetime``) to POSIX seconds.
Seconds = Callable[[Any], float]


def _opt(value: Any, seconds: Seconds) -> float | None:
    return None if value is None else seconds(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def health_values(h: HealthRecord, now: float, ts: Callable[[float], object]) -> tuple[object, ...]:
    """The parameters that write ``h``: :data:`HEALTH_COLUMNS`, then ``checked_at`` (now).

    ``ts`` turns POSIX seconds into the backend's timestamp parameter.
    """
    return (
        h.workspace,
        h.provider,
        h.fingerprint,
        h.status,
        h.outcome,
        h.failures,
        None if h.window_started is None else ts(h.window_started),
        None if h.open_until is None else ts(h.open_until),
        None if h.probe_until is None else ts(h.probe_until),
        ts(h.since),
        h.episode_id,
        ts(now),
    )


#: The outcome of a health record whose row does not decode (also a resolver reason).
STORE_ERROR: Final = "store_error"

_log = logging.getLogger("byokctl.store")
#: Bad runtime rows already logged by this process (by content, so the same damage in
#: another store, or new damage, is logged too): each once, not on every read.
_logged_bad_rows: set[tuple[str, str]] = set()
_logged_lock = threading.Lock()


def _log_bad_row(table: str, row: Sequence[Any], key: str, effect: str) -> None:
    seen = (table, hashlib.sha256(repr(tuple(row)).encode()).hexdigest())
    with _logged_lock:
        if seen in _logged_bad_rows:
            return
        _logged_bad_rows.add(seen)
    _log.warning(
        "store: the row of %s for %s is malformed (a column does not decode); %s",
        table,
        key,
        effect,
    )


def health_from_row(
    row: Sequence[Any], seconds: Seconds, *, now: float | None = None
) -> HealthRecord:
    """A health record from a row of :data:`HEALTH_COLUMNS`.

    With ``now``, a row that does not decode (a malformed timestamp or count) fails
    closed instead of failing every read: it becomes a sticky ``store_error`` record for
    that workspace and provider alone (Neo until its credentials change or
    ``Resolver.clear``), logged once per process. Without it the error propagates.
    """
    try:
        return _health_from_row(row, seconds)
    except (TypeError, ValueError):
        if now is None:
            raise
    ws, prov, fp = (str(v) for v in row[:3])
    _log_bad_row(
        "provider_health",
        row,
        f"workspace {ws!r}, provider {prov!r}",
        "the provider is treated as failed (Neo, store_error) until the record is reset",
    )
    return HealthRecord(
        workspace=ws,
        provider=prov,
        fingerprint=fp,
        status="sticky",
        outcome=STORE_ERROR,
        failures=0,
        window_started=None,
        open_until=None,
        probe_until=None,
        since=now,
        episode_id=None,
    )


def _health_from_row(row: Sequence[Any], seconds: Seconds) -> HealthRecord:
    ws, prov, fp, status, reason, failures, window, open_until, probe, since, ep = row
    return HealthRecord(
        workspace=str(ws),
        provider=str(prov),
        fingerprint=str(fp),
        status=_STATUSES.get(str(status), "ok"),
        outcome=_opt_str(reason),
        failures=int(failures),
        window_started=_opt(window, seconds),
        open_until=_opt(open_until, seconds),
        probe_until=_opt(probe, seconds),
        since=seconds(since),
        episode_id=None if ep is None else int(ep),
    )


def episodes_from_rows(rows: Iterable[Sequence[Any]], seconds: Seconds) -> list[Episode]:
    """Episodes from rows of :data:`EPISODE_COLUMNS`; a row that does not decode is left
    out (logged once per process) rather than failing every listing."""
    out = []
    for row in rows:
        try:
            out.append(episode_from_row(row, seconds))
        except (TypeError, ValueError):
            _log_bad_row("failure_episodes", row, f"episode {row[0]!r}", "it is left out")
    return out


def episode_from_row(row: Sequence[Any], seconds: Seconds) -> Episode:
    """An episode from a row of :data:`EPISODE_COLUMNS`."""
    (eid, ws, prov, fp, reason, sticky, detail, opened, closed, close_reason, notified,
     attempts, error) = row  # fmt: skip
    return Episode(
        id=int(eid),
        workspace=str(ws),
        provider=str(prov),
        fingerprint=str(fp),
        outcome=str(reason),
        sticky=bool(sticky),
        detail="" if detail is None else str(detail),
        opened_at=seconds(opened),
        closed_at=_opt(closed, seconds),
        close_reason=_opt_str(close_reason),
        notified_at=_opt(notified, seconds),
        notify_attempts=int(attempts),
        notify_error=_opt_str(error),
    )


def episodes_query(
    *, workspace: str | None, open_only: bool, mark: str
) -> tuple[str, list[object]]:
    """The ``episodes`` query, newest first; ``mark`` is the driver's placeholder."""
    where: list[str] = []
    args: list[object] = []
    if workspace is not None:
        where.append(f"workspace = {mark}")
        args.append(workspace)
    if open_only:
        where.append("closed_at IS NULL")
    sql = f"SELECT {EPISODE_COLUMNS} FROM failure_episodes"  # noqa: S608
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + " ORDER BY id DESC", args


def credit_usage_query(
    *,
    bucket: str,
    workspace: str | None,
    since: object | None,
    until: object | None,
    mark: str,
) -> tuple[str, list[object]]:
    """The ledger sum, grouped by the backend's period expression ``bucket`` (or ``NULL``).

    ``since`` and ``until`` are already in the backend's timestamp type.
    """
    where: list[str] = []
    args: list[object] = []
    for condition, value in (
        (f"workspace = {mark}", workspace),
        (f"at >= {mark}", since),
        (f"at < {mark}", until),
    ):
        if value is not None:
            where.append(condition)
            args.append(value)
    sql = (
        f"SELECT workspace, feature, route, sum(actions), sum(credits), {bucket} AS period"  # noqa: S608
        " FROM credit_ledger"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " GROUP BY workspace, feature, route, period"
        # A refunded attempt (a failure served by Neo) nets to zero: not usage.
        " HAVING sum(actions) != 0 OR sum(credits) != 0"
        " ORDER BY period, workspace, feature, route"
    )
    return sql, args


def credit_usage_rows(rows: Iterable[Sequence[Any]]) -> list[CreditUsage]:
    """The rows of :func:`credit_usage_query` as values."""
    return [
        CreditUsage(str(w), str(f), str(r), int(a), int(cr), None if p is None else str(p))
        for w, f, r, a, cr, p in rows
    ]
