"""``byokctl resolve NAME``, ``byokctl status``, ``byokctl credits [NAME]``: the runtime, read.

Each opens the store and a :class:`~byokctl.resolver.Resolver` without background
threads and with e-mail off (``notify=False``: a command only looks, whatever
``BYOK_SMTP_URL`` says). Episode details are sanitized again on output. ``resolve``
shows where the next action would go without charging it: it reads the routing table,
not the ledger. Credentials never appear in any output.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from byokctl.commands._inputs import open_resolver
from byokctl.errors import ByokError
from byokctl.model import FallbackPolicy
from byokctl.resolver import FEATURES, credits_to_dict, neo_caps

Format = Literal["text", "json"]


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def resolve(
    name: str, *, feature: str, store: str | None, fmt: Format, out: TextIO, err: TextIO
) -> int:
    """Where the next ``feature`` action of workspace ``name`` goes, and why."""
    with open_resolver(store, err=err) as resolver:
        try:
            route = resolver.peek(name, feature)
        except ValueError as exc:
            raise ByokError(str(exc), hint=f"--feature is one of: {', '.join(FEATURES)}") from None
        row = next((s for s in resolver.status() if s.workspace == name), None)
    if route.reason == "unknown_workspace":
        # The library answers Neo for it (the runtime contract: never fail an AI action);
        # a person asking about a name that is not there has most likely mistyped it.
        raise ByokError(
            f"workspace {name!r} is not in the store",
            hint="`byokctl state list` shows the workspaces there; `byokctl apply` creates them",
        )
    feature = route.feature
    doc = {
        "workspace": name,
        "feature": feature,
        "provider": route.provider,
        "model": route.model,
        "base_url": route.base_url,
        "settings": dict(route.settings),
        "reason": route.reason,
        "cost": route.cost,
        "fallback": row.fallback.fields() if row else {},
        "neo_credits_left": row.neo_credits_left if row else None,
    }
    if fmt == "json":
        print(json.dumps(doc, indent=2), file=out)
        return 0
    unit = "credit" if route.cost == 1 else "credits"
    if route.is_unavailable:
        print(f"{name} {feature}: AI unavailable (no route, 0 credits)", file=out)
    else:
        print(f"{name} {feature}: {route.provider} {route.model} ({route.cost} {unit})", file=out)
    print(f"  reason:   {route.reason}", file=out)
    print(f"  base url: {route.base_url or '-'}", file=out)
    if row is not None and not row.fallback.is_default:
        print(f"  fallback: {policy_text(row.fallback, row.neo_credits_left)}", file=out)
    return 0


def policy_text(policy: FallbackPolicy, left: int | None) -> str:
    """``spec.fallback`` in one line: ``neo: false``, ``cap 100 per day (37 left)``, return."""
    parts = []
    if not policy.neo:
        parts.append("never Neo (neo: false)")
    elif policy.max_neo_credits is not None:
        remaining = "" if left is None else f" ({left} left)"
        parts.append(f"Neo capped at {policy.max_neo_credits} credits per {policy.per}{remaining}")
    if policy.return_ != "on_credentials_change":
        parts.append(f"return {policy.return_}")
    return "; ".join(parts) or "default"


def status(*, store: str | None, fmt: Format, out: TextIO, err: TextIO) -> int:
    """Every workspace: its route, the reason, since when, and its open failure episodes."""
    with open_resolver(store, err=err) as resolver:
        rows = resolver.status()
    if fmt == "json":
        doc: dict[str, Any] = {"workspaces": [s.to_dict() for s in rows]}
        print(json.dumps(doc, indent=2), file=out)
        return 0
    if not rows:
        print("no workspaces in the store", file=out)
        return 0
    for s in rows:
        print(
            f"{s.workspace:<32} {s.provider:<17} {s.reason:<36} since {_iso(s.since)}",
            file=out,
        )
        if not s.fallback.is_default:
            print(f"  fallback: {policy_text(s.fallback, s.neo_credits_left)}", file=out)
        for e in s.episodes:
            mailed = "e-mailed" if e.notified_at is not None else "e-mail pending"
            print(
                f"  episode {e.id}: {e.provider} {e.outcome} since {_iso(e.opened_at)} ({mailed})",
                file=out,
            )
    return 0


def _parse_since(since: str | None) -> float | None:
    if since is None:
        return None
    try:
        parsed = datetime.fromisoformat(since)
    except ValueError:
        raise ByokError(
            f"--since {since!r} is not a date", hint="use YYYY-MM-DD or an ISO 8601 time"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def credits(
    name: str | None, *, since: str | None, store: str | None, fmt: Format, out: TextIO, err: TextIO
) -> int:
    """Credit usage from the ledger, per workspace, feature and route (``--since`` a date)."""
    start = _parse_since(since)
    with open_resolver(store, err=err) as resolver:  # migrates; checks the master key
        usage = resolver.credit_usage(workspace=name, since=start)
        caps = neo_caps(resolver.status(), name)
    if fmt == "json":
        doc = credits_to_dict(usage, caps, since=since)
        print(json.dumps(doc, indent=2), file=out)
        return 0
    for s in caps:
        print(f"{s.workspace}: {policy_text(s.fallback, s.neo_credits_left)}", file=out)
    if not usage:
        print("no credit usage recorded" + (f" since {since}" if since else ""), file=out)
        return 0
    for u in usage:
        print(
            f"{u.workspace:<32} {u.feature:<11} {u.route:<17} "
            f"{u.actions:>8} actions {u.credits:>9} credits",
            file=out,
        )
    print(f"total: {sum(u.credits for u in usage)} credits", file=out)
    return 0
