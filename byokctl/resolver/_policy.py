"""``spec.fallback`` at runtime: never Neo, the Neo credit cap, and return on recovery.

The routing table (:mod:`._table`) already says what each Neo route becomes under the
workspace's policy: with ``neo: false`` an ``unavailable`` route (reason
``fallback_disabled:<outcome>``, no credit spent); with ``max_neo_credits`` a Neo entry
marked with its policy, which :meth:`Policies.charge_neo` lets through only while the
cap allows. This module holds those values and the slow path that checks the cap.

**The cap is counted from the credit ledger, in the store.** A capped Neo action is not
buffered like other charges: it is written by one store transaction that sums the
workspace's Neo credits in the window and appends the charge only if the sum stays
within the cap (:meth:`~byokctl.store.runtime.RuntimeStore.charge_neo_capped`,
serialised per workspace: SQLite's single writer, PostgreSQL's advisory lock). So
however many processes on however many hosts race, the ledger never passes the cap
while the store answers: the overspend is zero, within the "one buffered flush" the
issue allows. The price is one store write per capped Neo action (milliseconds, during
a failure only; uncapped and BYOK routes stay a dict lookup). Once refused in a
window, a process answers ``neo_cap_reached`` from memory until the window ends.

During a store outage the check cannot be made; each process then spends from the
last sum it saw plus its own charges since (buffered, written after the outage), so
the overspend is bounded by what the other processes spend during the outage, at most
the cap's remainder each.

Windows: ``per: episode`` counts from the start of the enabled provider's current
failure (sticky or breaker open; with no failure open there is no window and nothing is
capped), ``day`` and ``month`` from the start of the UTC day or month.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from byokctl.errors import AIUnavailableError, StoreError
from byokctl.model import NEO, UNAVAILABLE, FallbackPolicy
from byokctl.store.runtime import CreditEntry, Episode, Failure, RuntimeStore

from ._route import FALLBACK_DISABLED, NEO_CAP_REACHED, Route

if TYPE_CHECKING:
    from ._refresh import Refresher, Snapshot
    from .options import ResolverOptions

_log = logging.getLogger("byokctl.resolver")

#: The pseudo-provider a workspace's "Neo credit cap reached" episode is recorded under
#: (its one e-mail goes through the episode machinery, like a provider's failure).
NEO_CAP: Final = "neo_cap"


def unavailable_route(workspace: str, feature: str, reason: str) -> Route:
    """No AI for this action: policy forbids Neo or its cap is spent (cost 0, no model)."""
    return Route(workspace, feature, UNAVAILABLE, "", None, reason, 0)


def unavailable_guard(route: Route) -> Route:
    """``route``, unless it is ``unavailable``: then :class:`AIUnavailableError` (why, no key)."""
    if route.is_unavailable:
        raise AIUnavailableError(route.workspace, route.feature, route.reason)
    return route


def disabled_reason(neo_reason: str) -> str:
    """``fallback_disabled:<outcome>`` for what would have sent the action to Neo.

    ``provider_failed:invalid_key`` and ``circuit_open:outage`` give their outcome;
    ``no_provider_enabled`` stays itself.
    """
    outcome = neo_reason.partition(":")[2] or neo_reason
    return f"{FALLBACK_DISABLED}:{outcome}"


def window_start(per: str, now: float, episode_since: float | None) -> float | None:
    """Where the cap's window began (POSIX seconds); ``None``: no window (nothing capped).

    An episode's start is taken at the store's precision (microseconds), so the window
    this process patched in and the one every process reads back are the same value.
    """
    if per == "episode":
        if episode_since is None:
            return None
        return datetime.fromtimestamp(episode_since, UTC).timestamp()
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if per == "month":
        day = day.replace(day=1)
    return day.timestamp()


def cap_fingerprint(key: bytes, workspace: str, since: float) -> str:
    """Identifies one window of a workspace's cap (its episode is per window)."""
    data = f"neo-cap\0{workspace}\0{since!r}".encode()
    return hmac.new(key, data, hashlib.sha256).hexdigest()[:32]


def policy_of(snap: Snapshot | None, workspace: str) -> FallbackPolicy | None:
    """The workspace's policy in ``snap`` (``None``: not a readable workspace there)."""
    live = snap.state.workspaces.get(workspace) if snap is not None else None
    return live.workspace.fallback if live is not None else None


def episode_since(snap: Snapshot | None, workspace: str) -> float | None:
    """When the enabled provider's current failure began (``None``: none is open)."""
    live = snap.state.workspaces.get(workspace) if snap is not None else None
    if snap is None or live is None or live.workspace.enabled is None:
        return None
    h = snap.health.get((workspace, live.workspace.enabled))
    if h is None or h.status == "ok":
        return None
    return h.since


def cap_record_current(
    snap: Snapshot, key: bytes, workspace: str, fingerprint: str, now: float
) -> bool:
    """Whether a cap episode (by its fingerprint) belongs to the workspace's current window."""
    policy = policy_of(snap, workspace)
    if policy is None or policy.max_neo_credits is None:
        return False
    since = window_start(policy.per, now, episode_since(snap, workspace))
    return since is not None and cap_fingerprint(key, workspace, since) == fingerprint


def policy_paragraph(policy: FallbackPolicy) -> str:
    """What a failure e-mail says about the workspace's ``spec.fallback`` (not the default)."""
    parts = []
    if not policy.neo:
        parts.append(
            "This workspace's policy never sends its AI actions to Neo (spec.fallback.neo: "
            "false): AI Assist, Summarization and Auto-replies show 'AI unavailable' until "
            "the provider serves again. No Neo credits are spent."
        )
    else:
        parts.append(
            "AI Assist, Summarization and Auto-replies keep working on Neo, the helpdesk's "
            "managed model, which costs more credits per action than your own provider."
        )
        if policy.max_neo_credits is not None:
            parts.append(
                f"Neo's spend is capped at {policy.max_neo_credits} credits per {policy.per}; "
                "past it AI is unavailable."
            )
    if policy.return_ == "on_recovery":
        parts.append(
            "With spec.fallback.return: on_recovery, traffic returns to the provider by "
            "itself once a probe succeeds (an invalid key still needs a new key)."
        )
    return " ".join(parts)


def cap_email(episode: Episode, policy: FallbackPolicy | None) -> tuple[str, str]:
    """Subject and body of the one e-mail sent when a workspace's Neo credit cap is spent."""
    per = policy.per if policy is not None else "episode"
    window = "failure episode" if per == "episode" else f"UTC {per}"
    opened = datetime.fromtimestamp(episode.opened_at, UTC)
    body = "\n".join(
        [
            f"Workspace {episode.workspace!r} has spent its Neo credit cap, and AI is now "
            "unavailable for it.",
            "",
            f"Cap:        {episode.detail or '-'}",
            f"Since:      {opened:%Y-%m-%d %H:%M:%S} UTC",
            "",
            "Its own provider is failing (see the earlier e-mail), and Neo served in its "
            f"place until the cap (spec.fallback.max_neo_credits) was reached for this {window}. "
            "AI Assist, Summarization and Auto-replies show 'AI unavailable' until the "
            f"provider serves again or the {window} ends.",
            "",
            "What to do:",
            "  Fix the provider's credentials (the failure e-mail says how), or raise "
            "spec.fallback.max_neo_credits and apply the change.",
            "",
            f"This is the only e-mail for this cap (episode {episode.id}); `byokctl status` "
            "shows each workspace's route and its remaining Neo credits.",
        ]
    )
    subject = f"[byokctl] {episode.workspace}: Neo credit cap reached, AI unavailable"
    return subject, body


class Policies:
    """The slow path of capped Neo routes, and the cap's e-mail. One per resolver."""

    def __init__(
        self,
        runtime: RuntimeStore,
        view: Refresher,
        *,
        charge: Callable[[tuple[str, str, str, int, int]], None],
        options: ResolverOptions,
        wake: Callable[[], None],
    ) -> None:
        self._runtime = runtime
        self._view = view
        self._charge = charge
        self._clock = options.clock
        self._breaker = options.breaker
        self._wake = wake
        self._key = runtime.fingerprint_key()
        #: workspace -> (window start, cap) in which the cap was found spent: a raised
        #: cap (a new apply) is asked of the store again at once.
        self._exhausted: dict[str, tuple[float, int]] = {}
        #: workspace -> (window start, Neo credits spent as last seen) for outages.
        self._spent: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def policy(self, workspace: str) -> FallbackPolicy | None:
        """The workspace's policy, as the current table knows it (``None``: unknown)."""
        return policy_of(self._view.snap, workspace)

    def window(self, workspace: str, policy: FallbackPolicy, now: float) -> float | None:
        """The start of the workspace's current cap window, if one is running."""
        return window_start(policy.per, now, episode_since(self._view.snap, workspace))

    def remaining(self, workspace: str, policy: FallbackPolicy) -> int | None:
        """Neo credits left in the current window (from the ledger); ``None``: no cap/window."""
        if policy.max_neo_credits is None or not policy.neo:
            return None  # no cap, or no Neo at all
        now = self._clock()
        since = self.window(workspace, policy, now)
        if since is None:
            return policy.max_neo_credits
        usage = self._runtime.credit_usage(workspace=workspace, since=since)
        spent = sum(u.credits for u in usage if u.route == NEO)
        return max(0, policy.max_neo_credits - spent)

    def peek(self, route: Route) -> Route:
        """What a capped Neo ``route`` is now, without charging: itself, or ``neo_cap_reached``."""
        policy = self.policy(route.workspace)
        left = None if policy is None else self.remaining(route.workspace, policy)
        if left is not None and left < route.cost:
            return unavailable_route(route.workspace, route.feature, NEO_CAP_REACHED)
        return route

    def fallback(self, neo: Route) -> Route:
        """``neo`` as the workspace's policy allows it, charged: Neo, capped Neo or ``unavailable``.

        For the Neo route of an action that failed on the provider (``fallback``) or
        found the store unavailable; an unknown workspace's policy is the default.
        """
        policy = self.policy(neo.workspace)
        if policy is not None and not policy.neo:
            self._charge((neo.workspace, neo.feature, UNAVAILABLE, 0, 1))
            return unavailable_route(neo.workspace, neo.feature, disabled_reason(neo.reason))
        if policy is not None and policy.max_neo_credits is not None:
            return self.charge_neo(neo, policy)
        self._charge((neo.workspace, neo.feature, NEO, neo.cost, 1))
        return neo

    def charge_neo(self, route: Route, policy: FallbackPolicy) -> Route:
        """``route`` (Neo) if the workspace's cap allows its cost, else ``neo_cap_reached``."""
        cap = policy.max_neo_credits
        now = self._clock()
        since = self.window(route.workspace, policy, now)
        if cap is None or since is None:
            self._charge((route.workspace, route.feature, NEO, route.cost, 1))
            return route
        if self._exhausted.get(route.workspace) == (since, cap):
            return self._refuse(route, policy, since, notify=False)
        if not self._view.available:
            return self._estimate(route, cap, since)
        entry = CreditEntry(route.workspace, route.feature, NEO, 1, route.cost, now)
        try:
            spent = self._runtime.charge_neo_capped(entry, cap=cap, since=since)
        except StoreError as exc:
            self._view.store_failed(exc)
            return self._estimate(route, cap, since)
        if spent is None:
            return self._refuse(route, policy, since, notify=True)
        with self._lock:
            self._spent[route.workspace] = (since, spent)
        return route

    def _estimate(self, route: Route, cap: int, since: float) -> Route:
        """During an outage: the last sum seen plus this process's own charges since."""
        with self._lock:
            seen_since, spent = self._spent.get(route.workspace, (since, 0))
            if seen_since != since:
                spent = 0
            if spent + route.cost > cap:
                allowed = False
            else:
                allowed = True
                self._spent[route.workspace] = (since, spent + route.cost)
        if not allowed:
            return unavailable_route(route.workspace, route.feature, NEO_CAP_REACHED)
        self._charge((route.workspace, route.feature, NEO, route.cost, 1))
        return route

    def _refuse(self, route: Route, policy: FallbackPolicy, since: float, *, notify: bool) -> Route:
        self._exhausted[route.workspace] = (since, policy.max_neo_credits or 0)
        self._charge((route.workspace, route.feature, UNAVAILABLE, 0, 1))
        if notify:
            try:
                self._record_cap_reached(route.workspace, policy, since)
            except StoreError as exc:
                self._view.store_failed(exc)
            except Exception:
                self._view.log_unexpected("record a reached Neo credit cap")
        return unavailable_route(route.workspace, route.feature, NEO_CAP_REACHED)

    def _record_cap_reached(self, workspace: str, policy: FallbackPolicy, since: float) -> None:
        """Open (once per window, across processes) the episode whose e-mail says so."""
        fp = cap_fingerprint(self._key, workspace, since)
        now = self._clock()
        snap = self._view.snap
        known = snap.health.get((workspace, NEO_CAP)) if snap is not None else None
        if known is not None and known.fingerprint != fp:
            # The previous window's episode: close it, so this window gets its e-mail.
            self._runtime.reset(
                workspace,
                NEO_CAP,
                fingerprint=known.fingerprint,
                reason="neo_cap_window_ended",
                now=now,
            )
        window = "this failure episode" if policy.per == "episode" else f"this UTC {policy.per}"
        failure = Failure(
            workspace=workspace,
            provider=NEO_CAP,
            fingerprint=fp,
            outcome=NEO_CAP_REACHED,
            sticky=True,
            detail=f"{policy.max_neo_credits} Neo credits spent in {window}",
            retry_after=None,
            probe=False,
        )
        change = self._runtime.record_failure(failure, now=now, policy=self._breaker)
        if change.episode_opened is not None:
            _log.warning(
                "resolver: %s spent its Neo credit cap (%d per %s); AI is unavailable until "
                "the window ends or its provider recovers",
                workspace,
                policy.max_neo_credits or 0,
                policy.per,
            )
            self._wake()
