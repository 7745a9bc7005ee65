"""The JSON documents the API answers with (the same shapes as the CLI's ``--format json``).

A status row is ``WorkspaceStatus.to_dict`` (one workspace of ``byokctl status --format
json``) and the credits are ``credits_to_dict`` (``byokctl credits --format json``). No
document ever holds a credential: routes go through :meth:`Route.to_dict`, providers
through the store's secret-free :meth:`~byokctl.store.Store.provider_settings`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from byokctl.resolver import (
    CreditUsage,
    Resolver,
    Route,
    WorkspaceStatus,
)

from .fleet import Page, breaker_state, route_kind


def route_document(route: Route, route_id: str) -> dict[str, Any]:
    """A route for the API: everything but the credentials, and its ``route_id``."""
    doc = route.to_dict()
    doc["kind"] = route_kind(route.provider)
    doc["route_id"] = route_id
    return doc


def fleet_row(s: WorkspaceStatus, credits: dict[str, dict[str, int]]) -> dict[str, Any]:
    """A row of the fleet page: the status row, its kind, breaker and credits."""
    return {
        **s.to_dict(),
        "kind": route_kind(s.provider),
        "breaker": breaker_state(s.reason),
        "credits": credits,
    }


def _month_start(now: float) -> tuple[float, str]:
    day = datetime.fromtimestamp(now, UTC)
    start = day.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start.timestamp(), day.strftime("%Y-%m-%d")


def _side(route: str) -> str | None:
    """Whose credits: ``neo``, ``byok`` (a provider), or ``None`` (unavailable: free)."""
    kind = route_kind(route)
    return kind if kind in ("neo", "byok") else None


def split_credits(usage: Iterable[CreditUsage], today: str) -> dict[str, dict[str, int]]:
    """Today's and this month's credits, BYOK and Neo apart (rows grouped by day)."""
    out = {"today": {"byok": 0, "neo": 0}, "month": {"byok": 0, "neo": 0}}
    for u in usage:
        side = _side(u.route)
        if side is None:
            continue
        out["month"][side] += u.credits
        if u.period == today:
            out["today"][side] += u.credits
    return out


def workspace_credits(resolver: Resolver, name: str, now: float) -> dict[str, dict[str, int]]:
    """One workspace's credits today and this month (one indexed ledger query)."""
    since, today = _month_start(now)
    usage = resolver.credit_usage(workspace=name, since=since, period="day")
    return split_credits(usage, today)


def page_document(page: Page, resolver: Resolver, now: float, generation: int) -> dict[str, Any]:
    """One page of the fleet, credits read for its rows only."""
    return {
        "generation": generation,
        "total": page.total,
        "matched": page.matched,
        "page": page.query.page,
        "pages": page.pages,
        "per_page": page.query.per_page,
        "counts": page.counts,
        "workspaces": [
            fleet_row(s, workspace_credits(resolver, s.workspace, now)) for s in page.rows
        ],
    }


def daily_credits(
    resolver: Resolver, name: str, now: float, days: int = 30
) -> list[dict[str, Any]]:
    """The last ``days`` days of one workspace's credits, BYOK and Neo apart, oldest first."""
    end = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end.timestamp() - (days - 1) * 86400
    usage = resolver.credit_usage(workspace=name, since=start, period="day")
    by_day: dict[str, dict[str, int]] = {}
    for u in usage:
        side = _side(u.route)
        if side is None:
            continue
        by_day.setdefault(str(u.period), {"byok": 0, "neo": 0})[side] += u.credits
    out = []
    for i in range(days):
        day = datetime.fromtimestamp(start + i * 86400, UTC).strftime("%Y-%m-%d")
        out.append({"day": day, **by_day.get(day, {"byok": 0, "neo": 0})})
    return out
