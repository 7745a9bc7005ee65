"""Verification results on the plan, and apply's refusal to enable what failed them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from typing import TextIO

from byokctl.errors import ByokError
from byokctl.model import Workspace
from byokctl.plan import CredentialCheck, Plan
from byokctl.verify._cache import VerifyCache
from byokctl.verify._run import verify_workspaces
from byokctl.verify.classify import TRANSIENT, Outcome


def plan_workspaces(plan: Plan) -> list[Workspace]:
    """The desired workspaces a plan considers (those that exist after applying it)."""
    return [c.after for c in plan.changes if c.after is not None]


def with_checks(plan: Plan, checks: Mapping[str, tuple[CredentialCheck, ...]]) -> Plan:
    """``plan`` with each workspace's checks attached to its change."""
    return replace(
        plan,
        changes=tuple(replace(c, checks=checks.get(c.name, c.checks)) for c in plan.changes),
    )


def refuse_failed_enable(plan: Plan) -> None:
    """Raise when applying ``plan`` would leave a workspace enabled on a failing provider.

    Only workspaces apply writes are considered: a no-op leaves the store as it is. A
    missing check counts as a failure (the provider was not verified).
    """
    failed: list[str] = []
    transient_only = True
    for change in plan.changes:
        after = change.after
        if not change.is_change or after is None or after.enabled is None:
            continue
        check = next((c for c in change.checks if c.provider == after.enabled), None)
        if check is not None and check.outcome == Outcome.OK.value:
            continue
        outcome = check.outcome if check is not None else "not verified"
        transient_only = transient_only and outcome in {o.value for o in TRANSIENT}
        failed.append(f"{change.name} ({after.enabled}: {outcome})")
    if not failed:
        return
    shown = ", ".join(failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5 else "")
    hint = (
        "the providers could not confirm the keys right now; retry later, or pass "
        "--no-verify to apply without verification"
        if transient_only
        else "fix the credentials or model (`byokctl plan` shows why), enable another "
        "provider, or pass --no-verify to apply anyway"
    )
    raise ByokError(f"refusing to enable providers whose verification failed: {shown}", hint=hint)


def verify_plan(
    plan: Plan, *, parallelism: int, err: TextIO, env: Mapping[str, str] | None = None
) -> Plan:
    """Verify every provider of the workspaces ``plan`` keeps, and attach the checks.

    Uses the default on-disk cache and draws a progress bar when ``err`` is a terminal.
    """
    environ = os.environ if env is None else env
    checks = verify_workspaces(
        plan_workspaces(plan),
        parallelism=parallelism,
        cache=VerifyCache.default(environ),
        progress=True,
        err=err,
        env=environ,
    )
    return with_checks(plan, checks)
