"""What ``byokctl status`` shows: each workspace's route now, why, since when, its episodes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from byokctl.model import DEFAULT_FALLBACK, FallbackPolicy
from byokctl.store.runtime import Episode

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
