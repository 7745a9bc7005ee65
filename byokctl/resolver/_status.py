"""What ``byokctl status`` shows: each workspace's route now, why, since when, its episodes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from byokctl.classify import sanitize
from byokctl.model import DEFAULT_FALLBACK, FallbackPolicy
from byokctl.store.runtime import CreditUsage, Episode

from ._refresh import Snapshot
from ._route import BYOK, FEATURES, Route
from ._table import Entry, store_error_key


@dataclass(frozen=True)
class WorkspaceStatus:
    """Where one workspace's AI traffic goes now, why, since when, and its open episodes."""

    workspace: str
    enabled: str | None
    provider: str
    model: str
    reason: str
    since: float
    episodes: tuple[Episode, ...] = field(default=())
    #: The workspace's ``spec.fallback`` (the default for an unreadable one).
    fallback: FallbackPolicy = DEFAULT_FALLBACK
    #: Neo credits left in the cap's current window; ``None`` without a cap.
    neo_credits_left: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """One workspace of ``byokctl status --format json`` (and of ``serve``'s API)."""
        return {
            "name": self.workspace,
            "enabled": self.enabled,
            "route": self.provider,
            "model": self.model,
            "reason": self.reason,
            "since": iso(self.since),
            "fallback": self.fallback.fields(),
            "neo_credits_left": self.neo_credits_left,
            "open_episodes": [episode_to_dict(e) for e in self.episodes],
        }


def iso(t: float | None) -> str | None:
    """POSIX seconds as ISO 8601 UTC, to the second; ``None`` stays ``None``."""
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def episode_to_dict(e: Episode) -> dict[str, Any]:
    """One failure episode as ``byokctl status --format json`` shows it (no credential)."""
    return {
        "id": e.id,
        "provider": e.provider,
        "outcome": e.outcome,
        "sticky": e.sticky,
        "opened_at": iso(e.opened_at),
        "notified_at": iso(e.notified_at),
        # Sanitized again: an older byokctl stored details raw.
        "detail": sanitize(e.detail),
    }


def workspace_statuses(
    snap: Snapshot,
    table: Mapping[str, Mapping[str, Entry]],
    open_episodes: Iterable[Episode],
    *,
    now: float,
    remaining: Callable[[str, FallbackPolicy], int | None] = lambda _w, _p: None,
    peek: Callable[[Route], Route] = lambda route: route,
) -> list[WorkspaceStatus]:
    """Every workspace of ``snap``, sorted by name: its route in ``table`` and its episodes.

    ``peek`` is what a capped Neo route is now (``neo_cap_reached`` once the cap is spent).
    """
    episodes: dict[str, list[Episode]] = {}
    for ep in open_episodes:
        episodes.setdefault(ep.workspace, []).append(ep)
    out = []
    for name, live in snap.state.workspaces.items():
        entry = table[name][FEATURES[0]]
        route = entry.route if entry.capped is None else peek(entry.route)
        since = live.updated_at.timestamp()
        if (
            route.reason != BYOK
            and route.provider != live.workspace.enabled
            and live.workspace.enabled
        ):
            h = snap.health.get((name, live.workspace.enabled))
            since = h.since if h is not None else since
        out.append(
            WorkspaceStatus(
                workspace=name,
                enabled=live.workspace.enabled,
                provider=route.provider,
                model=route.model,
                reason=route.reason,
                since=since,
                episodes=tuple(episodes.get(name, ())),
                fallback=live.workspace.fallback,
                neo_credits_left=remaining(name, live.workspace.fallback),
            )
        )
    for name, ws in snap.state.unreadable.items():
        h = snap.health.get(store_error_key(ws))
        route = table[name][FEATURES[0]].route
        out.append(
            WorkspaceStatus(
                workspace=name,
                enabled=ws.enabled,
                provider=route.provider,
                model=route.model,
                reason=route.reason,
                since=h.since if h is not None else now,
                episodes=tuple(episodes.get(name, ())),
            )
        )
    out.sort(key=lambda st: st.workspace)
    return out


def neo_caps(
    statuses: Iterable[WorkspaceStatus], workspace: str | None = None
) -> list[WorkspaceStatus]:
    """The workspaces (of ``workspace``, or all) whose Neo spend is capped."""
    return [
        s
        for s in statuses
        if s.fallback.max_neo_credits is not None
        and s.fallback.neo
        and (workspace is None or s.workspace == workspace)
    ]


def credits_to_dict(
    usage: Iterable[CreditUsage], caps: Iterable[WorkspaceStatus], *, since: str | None
) -> dict[str, Any]:
    """``byokctl credits --format json`` (and ``serve``'s): the sums, the total, the caps."""
    rows = list(usage)
    return {
        "since": since,
        "usage": [
            {
                "workspace": u.workspace,
                "feature": u.feature,
                "route": u.route,
                "actions": u.actions,
                "credits": u.credits,
                **({"period": u.period} if u.period is not None else {}),
            }
            for u in rows
        ],
        "total_credits": sum(u.credits for u in rows),
        "neo_caps": [
            {
                "workspace": s.workspace,
                "max_neo_credits": s.fallback.max_neo_credits,
                "per": s.fallback.per,
                "neo_credits_left": s.neo_credits_left,
            }
            for s in caps
        ],
    }
