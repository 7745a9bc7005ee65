"""Routes handed out by ``/api/v1/resolve``, kept by id until ``/api/v1/report`` names them.

A client in another language cannot hand back the :class:`~byokctl.resolver.Route`
object, so the server keeps it (with its credentials' fingerprint, which decides
whether a report still concerns the current key) under a random ``route_id``. The book
is bounded: the oldest routes are forgotten first (a report for one is answered 404,
"resolve again"), and so is a route older than :data:`ROUTE_TTL_S`.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from typing import Final

from byokctl.resolver import Route

#: How many routes are kept for a later report.
MAX_ROUTES: Final = 200_000
#: How long a route can be reported on.
ROUTE_TTL_S: Final = 3600.0


class RouteBook:
    """``route_id`` → the route it names; thread-safe, bounded, oldest out first."""

    def __init__(self, *, limit: int = MAX_ROUTES, ttl: float = ROUTE_TTL_S) -> None:
        self._limit = limit
        self._ttl = ttl
        self._routes: OrderedDict[str, tuple[Route, float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._routes)

    def keep(self, route: Route) -> str:
        """Keep ``route``; return its new id."""
        route_id = "rt_" + secrets.token_urlsafe(16)
        now = time.monotonic()
        with self._lock:
            self._routes[route_id] = (route, now + self._ttl)
            while len(self._routes) > self._limit:
                self._routes.popitem(last=False)
        return route_id

    def take(self, route_id: str) -> Route | None:
        """The route ``route_id`` names, forgotten at once (one report per route)."""
        with self._lock:
            entry = self._routes.pop(route_id, None)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]
