"""Verification results on the plan, and the one rule plan and apply judge them by.

:func:`enable_findings` is that rule; ``apply`` refuses what it calls an error
(:func:`refuse_failed_enable`) and ``plan`` exits 1 on the same errors, so a green
pull-request check means the merge will apply. ``docs/verification.md`` states it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Final, TextIO

from byokctl.classify import UNCONFIRMED, Outcome
from byokctl.errors import VerificationError
from byokctl.model import Workspace
from byokctl.plan import CheckFinding, CredentialCheck, Plan
from byokctl.verify._cache import VerifyCache
from byokctl.verify._run import verify_workspaces


def plan_workspaces(plan: Plan) -> list[Workspace]:
    """The desired workspaces a plan considers (those that exist after applying it)."""
    return [c.after for c in plan.changes if c.after is not None]


def with_checks(plan: Plan, checks: Mapping[str, tuple[CredentialCheck, ...]]) -> Plan:
    """``plan`` with each workspace's checks attached to its change, and the findings
    they lead to (:func:`enable_findings`) as its ``errors`` and ``warnings``."""
    checked = replace(
        plan,
        changes=tuple(replace(c, checks=checks.get(c.name, c.checks)) for c in plan.changes),
    )
    errors, warnings = enable_findings(checked)
    return replace(checked, errors=errors, warnings=warnings)


#: The outcome recorded for an enabled provider that has no check at all.
NOT_VERIFIED: Final = "not_verified"


def enable_findings(plan: Plan) -> tuple[tuple[CheckFinding, ...], tuple[CheckFinding, ...]]:
    """The one rule ``plan`` and ``apply`` judge by: ``(errors, warnings)``.

    Only workspaces apply writes are judged (a no-op leaves the store as it is), and of
    each only the provider it leaves enabled. Its check decides:

    * ``ok``: nothing to say;
    * a transient outcome in which the provider said nothing about the credentials
      (:data:`~byokctl.classify.UNCONFIRMED`: rate limited, outage, timeout): a
      **warning**; apply goes ahead (at run time the resolver's breaker sends the
      workspace to Neo while the provider stays unavailable);
    * anything else -- every sticky outcome (the key, its credits, its permissions, the
      model, deployment or endpoint is wrong, or the key cannot even be sent),
      ``unexpected`` (an answer nobody could read), and a missing check: an **error**;
      apply refuses the plan, and ``plan`` exits 1.
    """
    errors: list[CheckFinding] = []
    warnings: list[CheckFinding] = []
    unconfirmed = {o.value for o in UNCONFIRMED}
    for change in plan.changes:
        after = change.after_view if change.after is None else change.after
        enabled = after.enabled if after is not None else None
        if not change.is_change or enabled is None:
            continue
        check = next((c for c in change.checks if c.provider == enabled), None)
        if check is not None and check.outcome == Outcome.OK.value:
            continue
        if check is None:
            finding = CheckFinding(
                change.name, enabled, NOT_VERIFIED, "the provider was not verified"
            )
        else:
            finding = CheckFinding(change.name, enabled, check.outcome, check.detail)
        (warnings if finding.outcome in unconfirmed else errors).append(finding)
    return tuple(errors), tuple(warnings)


def refuse_failed_enable(plan: Plan) -> tuple[CheckFinding, ...]:
    """Raise when applying ``plan`` would leave a workspace enabled on a failing provider.

    Judged by :func:`enable_findings`; returns its warnings (what goes ahead unconfirmed),
    for the caller to show.
    """
    errors, warnings = enable_findings(plan)
    if not errors:
        return warnings
    shown = ", ".join(f"{e.workspace} ({e.provider}: {e.outcome})" for e in errors[:5])
    if len(errors) > 5:
        shown += f" and {len(errors) - 5} more"
    unread = all(e.outcome == Outcome.UNEXPECTED.value for e in errors)
    hint = (
        "the providers' answers could not be read; retry later, check any "
        "BYOK_<PROVIDER>_BASE_URL override, or pass --no-verify to apply without verification"
        if unread
        else "fix the credentials or model (`byokctl plan` shows why), enable another "
        "provider, or pass --no-verify to apply anyway"
    )
    raise VerificationError(
        f"refusing to enable providers whose verification failed: {shown}", hint=hint
    )


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
