"""The fleet as the page and ``/api/v1/fleet`` see it: one row per workspace, filtered, paged.

The resolver already holds every workspace's route in memory (it routes from it); the
index keeps :meth:`Resolver.status` rows, rebuilt only when something changed: the
store's versions (the serial that every apply moves, the runtime version that every
route-changing health write moves, in any process) moving. The resolver reloads within
its refresh interval of such a move, so the index rebuilds until its rows show it. A
report or clear in this process patches its one row at once (:meth:`FleetIndex.patch`):
a full rebuild takes about a second at 100,000 workspaces. A page is then a filter over
prepared tuples and a slice: credits are read from the store for the rows of that page
only.

Route kinds are named from ``route.provider`` alone: a provider id is ``byok``,
``neo`` is Neo, ``unavailable`` (a policy that forbids Neo) is ``unavailable``; any
other kind a later resolver adds shows under its own name.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

from byokctl.errors import StoreError
from byokctl.model import NEO, UNAVAILABLE
from byokctl.resolver import FEATURES, Episode, Resolver, WorkspaceStatus

_log = logging.getLogger("byokctl.serve")

SORTS: Final = ("name", "-name", "route", "reason", "since", "-since")
MAX_PER_PAGE: Final = 200
#: How often the index checks the store's versions, and for how long after a move it
#: may keep rebuilding: the resolver reloads within its refresh interval plus the
#: reload, which at 100,000 workspaces re-reads and decrypts them all (tens of seconds).
#: Almost every change shows in the rows (an apply moves the written workspaces'
#: ``since``), which ends the wait early.
TICK_S: Final = 0.25
SETTLE_S: Final = 120.0


def _shape(rows: Sequence[WorkspaceStatus]) -> list[tuple[object, ...]]:
    """What a change shows in: routes, reasons, whole seconds, episode ids.

    Not the exact ``since``: a health record this process patched in holds the clock's
    float, the same record read back from the store a rounded one.
    """
    return [
        (r.workspace, r.enabled, r.provider, r.model, r.reason, int(r.since),
         tuple(e.id for e in r.episodes))
        for r in rows
    ]  # fmt: skip


def route_kind(provider: str) -> str:
    """``byok``, ``neo``, ``unavailable`` (or another kind's own name) for a route's provider."""
    if provider == NEO:
        return "neo"
    if provider == UNAVAILABLE:
        return "unavailable"
    return "byok"


def breaker_state(reason: str) -> str:
    """The breaker as the reason tells it: ``open``, ``half-open`` or ``closed``."""
    if reason.startswith("circuit_open"):
        return "open"
    if reason.startswith("circuit_probe"):
        return "half-open"
    return "closed"


def iso(t: float | None) -> str | None:
    """POSIX seconds as ISO 8601 UTC (seconds), ``None`` stays ``None``."""
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Query:
    """What the page asks for: filters, search, sort, page."""

    route: str = ""
    reason: str = ""
    provider: str = ""
    q: str = ""
    sort: str = "name"
    page: int = 1
    per_page: int = 50

    @classmethod
    def parse(cls, params: Any) -> Query:
        """From query parameters (a mapping); bad values fall back to the defaults."""

        def number(name: str, default: int, top: int) -> int:
            try:
                return max(1, min(int(params.get(name, default)), top))
            except (TypeError, ValueError):
                return default

        sort = str(params.get("sort", "name"))
        return cls(
            route=str(params.get("route", ""))[:40],
            reason=str(params.get("reason", ""))[:120],
            provider=str(params.get("provider", ""))[:40],
            q=str(params.get("q", ""))[:200],
            sort=sort if sort in SORTS else "name",
            page=number("page", 1, 1_000_000),
            per_page=number("per_page", 50, MAX_PER_PAGE),
        )

    def params(self, **changes: object) -> dict[str, str]:
        """Query parameters for a link (only the non-default ones)."""
        values = {**self.__dict__, **changes}
        defaults = Query().__dict__
        return {k: str(v) for k, v in values.items() if v != defaults[k]}


@dataclass(frozen=True)
class Page:
    """One page of the fleet: its rows, how many matched, and the facets to filter by."""

    rows: tuple[WorkspaceStatus, ...]
    total: int
    matched: int
    query: Query
    counts: dict[str, int]

    @property
    def pages(self) -> int:
        return max(1, -(-self.matched // self.query.per_page))


class FleetIndex:
    """The status rows of every workspace, kept current; thread-safe reads."""

    def __init__(
        self,
        resolver: Resolver,
        versions: Callable[[], tuple[int, int]] | None = None,
        episodes: Callable[[str], Sequence[Episode]] | None = None,
    ) -> None:
        self._resolver = resolver
        self._versions = versions
        self._episodes = episodes
        self._rows: tuple[WorkspaceStatus, ...] = ()
        #: The shape of the last full rebuild's rows (patches aside): what a settle compares.
        self._built: list[tuple[object, ...]] = []
        self._by_name: dict[str, WorkspaceStatus] = {}
        self._sorted: dict[str, tuple[WorkspaceStatus, ...]] = {}
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Read before the first rebuild: a move after it is a change the rows may lack.
        self._seen: tuple[int, int] | None = None if versions is None else versions()
        #: Seconds the last full rebuild took (the throttle between rebuilds).
        self.rebuild_seconds = 0.0
        #: Bumped on every change of the rows.
        self.generation = 0
        self.rebuild()

    # -- keeping it current -----------------------------------------------------------

    def rebuild(self) -> None:
        """Take every row from the resolver now (``Resolver.status``)."""
        started = time.monotonic()
        rows = tuple(self._resolver.status())
        counts: dict[str, int] = {}
        for r in rows:
            kind = route_kind(r.provider)
            counts[kind] = counts.get(kind, 0) + 1
        by_name = {r.workspace: r for r in rows}
        self._built = _shape(rows)
        with self._lock:
            self._rows = rows
            self._by_name = by_name
            self._sorted = {"name": rows}
            self._counts = counts
            self.generation += 1
        self.rebuild_seconds = time.monotonic() - started

    def patch(self, name: str) -> None:
        """Update one workspace's row after this process changed it (a report, a clear).

        The route is the resolver's (:meth:`Resolver.peek`, which this process's own
        change reached before the call returned), the episodes the store's; ``since``
        is the newest open episode's opening for a failure route. The next full
        rebuild, which the change's version move brings, replaces the row.
        """
        old = self._by_name.get(name)
        if old is None:
            return
        route = self._resolver.peek(name, FEATURES[0])
        episodes = tuple(self._episodes(name)) if self._episodes else old.episodes
        since = old.since
        if (route.provider, route.reason) != (old.provider, old.reason):
            since = max((e.opened_at for e in episodes), default=time.time())
        new = replace(
            old,
            provider=route.provider,
            model=route.model,
            reason=route.reason,
            since=since,
            episodes=episodes,
        )
        with self._lock:
            rows = self._rows
            i = bisect.bisect_left(rows, name, key=lambda r: r.workspace)
            if i == len(rows) or rows[i].workspace != name:
                return
            self._rows = (*rows[:i], new, *rows[i + 1 :])
            self._by_name = {**self._by_name, name: new}
            self._sorted = {"name": self._rows}
            counts = dict(self._counts)
            counts[route_kind(old.provider)] -= 1
            counts[route_kind(new.provider)] = counts.get(route_kind(new.provider), 0) + 1
            self._counts = {k: v for k, v in counts.items() if v}
            self.generation += 1

    def start(self, clock: Callable[[], float]) -> None:
        """Run the rebuilding thread (daemon) until :meth:`stop`.

        Every :data:`TICK_S` it reads the store's versions. After a move (an apply or a
        route-changing health write, in any process) it rebuilds until the rows differ
        from those before the move, that is until the resolver has reloaded, or for
        :data:`SETTLE_S` at most; never more often than every twice the last
        rebuild's time, so a stream of changes takes at most half a core.
        """

        def run() -> None:
            settle_until = next_at = 0.0
            before: list[tuple[object, ...]] = []
            while not self._stop.wait(TICK_S):
                try:
                    moved = self._moved()
                except StoreError:
                    moved = False  # the resolver logs the outage; its rows stand
                now = clock()
                if moved:
                    # The rows as the resolver has them now are what the move must change:
                    # not the last rebuild's, which may lack a change this process patched
                    # in (a report), whose rebuild would look like the move arriving.
                    try:
                        self.rebuild()
                    except Exception:
                        _log.exception("serve: could not rebuild the fleet index")
                    settle_until, before = now + SETTLE_S, self._built
                    next_at = now + 2 * self.rebuild_seconds
                if now >= settle_until or now < next_at:
                    continue
                try:
                    self.rebuild()
                except Exception:
                    _log.exception("serve: could not rebuild the fleet index")
                    continue
                next_at = now + 2 * self.rebuild_seconds
                if self._built != before:
                    settle_until = 0.0  # the resolver has the change

        self._thread = threading.Thread(target=run, name="byokctl-serve-fleet", daemon=True)
        self._thread.start()

    def _moved(self) -> bool:
        if self._versions is None:
            return False
        versions = self._versions()
        moved = versions != self._seen
        self._seen = versions
        return moved

    def stop(self) -> None:
        """Stop the rebuilding thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- reading ----------------------------------------------------------------------

    def rows(self) -> tuple[WorkspaceStatus, ...]:
        """Every row, by name."""
        return self._rows

    def get(self, name: str) -> WorkspaceStatus | None:
        """One workspace's row."""
        return self._by_name.get(name)

    def _ordered(self, sort: str) -> tuple[WorkspaceStatus, ...]:
        with self._lock:
            rows, cached = self._rows, self._sorted.get(sort)
        if cached is not None:
            return cached
        key: Callable[[WorkspaceStatus], Any]
        reverse = sort.startswith("-")
        field = sort.lstrip("-")
        if field == "route":
            key = lambda r: (route_kind(r.provider), r.provider, r.workspace)  # noqa: E731
        elif field == "reason":
            key = lambda r: (r.reason, r.workspace)  # noqa: E731
        elif field == "since":
            key = lambda r: (r.since, r.workspace)  # noqa: E731
        else:
            key = lambda r: r.workspace  # noqa: E731
        ordered = tuple(sorted(rows, key=key, reverse=reverse))
        with self._lock:
            if self._rows is rows:
                self._sorted[sort] = ordered
        return ordered

    def page(self, query: Query) -> Page:
        """The rows ``query`` selects, one page of them."""
        rows = self._ordered(query.sort)
        matched: Sequence[WorkspaceStatus] = rows
        if query.route:
            matched = [r for r in matched if route_kind(r.provider) == query.route]
        if query.provider:
            matched = [r for r in matched if (r.enabled or "") == query.provider]
        if query.reason:
            reason = query.reason
            matched = [r for r in matched if r.reason == reason or r.reason.startswith(reason)]
        if query.q:
            needle = query.q.lower()
            matched = [r for r in matched if needle in r.workspace.lower()]
        start = (query.page - 1) * query.per_page
        return Page(
            rows=tuple(matched[start : start + query.per_page]),
            total=len(rows),
            matched=len(matched),
            query=query,
            counts=dict(self._counts),
        )
