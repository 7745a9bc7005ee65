"""Credential verification: does each workspace's key work, and is its model available?

The data flows one way: a desired state's provider configurations → one adapter per
provider (:mod:`byokctl.verify._adapters`, over the safe HTTP client of
:mod:`byokctl.verify._http`) → a :class:`~byokctl.verify.classify.Classification` per
answer (:mod:`byokctl.verify.classify`, pure, shared with the runtime resolver) →
:class:`~byokctl.plan.CredentialCheck` values attached to the plan
(:func:`with_checks`), judged by one rule (:func:`enable_findings`) that makes ``plan``
exit 1 and ``apply`` refuse (:func:`refuse_failed_enable`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from byokctl.verify._cache import VerifyCache
    from byokctl.verify._http import ALLOW_PRIVATE_ENV, SANDBOX_ENV, Resolver, is_public_address
    from byokctl.verify._plan import (
        enable_findings,
        plan_workspaces,
        refuse_failed_enable,
        verify_plan,
        with_checks,
    )
    from byokctl.verify._run import (
        RetryPolicy,
        Verified,
        list_models,
        verify_desired,
        verify_workspaces,
    )
    from byokctl.verify.classify import (
        STICKY,
        TRANSIENT,
        UNCONFIRMED,
        Classification,
        Outcome,
        classify_exception,
        classify_response,
    )

__all__ = [
    "ALLOW_PRIVATE_ENV",
    "SANDBOX_ENV",
    "STICKY",
    "TRANSIENT",
    "UNCONFIRMED",
    "Classification",
    "Outcome",
    "Resolver",
    "RetryPolicy",
    "Verified",
    "VerifyCache",
    "classify_exception",
    "classify_response",
    "enable_findings",
    "is_public_address",
    "list_models",
    "plan_workspaces",
    "refuse_failed_enable",
    "verify_desired",
    "verify_plan",
    "verify_workspaces",
    "with_checks",
]

# Submodules load on first use: the runtime resolver imports ``byokctl.verify.classify``
# (pure) and must not pay for httpx, which in turn imports click and rich when installed.
_HOMES = {
    "VerifyCache": "_cache",
    "ALLOW_PRIVATE_ENV": "_http",
    "SANDBOX_ENV": "_http",
    "Resolver": "_http",
    "is_public_address": "_http",
    "enable_findings": "_plan",
    "plan_workspaces": "_plan",
    "refuse_failed_enable": "_plan",
    "verify_plan": "_plan",
    "with_checks": "_plan",
    "RetryPolicy": "_run",
    "Verified": "_run",
    "list_models": "_run",
    "verify_desired": "_run",
    "verify_workspaces": "_run",
    "STICKY": "classify",
    "TRANSIENT": "classify",
    "UNCONFIRMED": "classify",
    "Classification": "classify",
    "Outcome": "classify",
    "classify_exception": "classify",
    "classify_response": "classify",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
