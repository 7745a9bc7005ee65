"""Credential verification: does each workspace's key work, and is its model available?

The data flows one way: a desired state's provider configurations → one adapter per
provider (:mod:`byokctl.verify._adapters`, over the safe HTTP client of
:mod:`byokctl.verify._http`) → a :class:`~byokctl.classify.Classification` per
answer (:mod:`byokctl.classify`, pure, shared with the runtime resolver) →
:class:`~byokctl.plan.CredentialCheck` values attached to the plan
(:func:`with_checks`), judged by one rule (:func:`enable_findings`) that makes ``plan``
exit 1 and ``apply`` refuse (:func:`refuse_failed_enable`).
"""

from __future__ import annotations

from byokctl.classify import (
    STICKY,
    TRANSIENT,
    UNCONFIRMED,
    Classification,
    Outcome,
    classify_exception,
    classify_response,
)
from byokctl.verify._cache import VerifyCache
from byokctl.verify._http import ALLOW_PRIVATE_ENV, SANDBOX_ENV, AddressResolver, is_public_address
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

__all__ = [
    "ALLOW_PRIVATE_ENV",
    "SANDBOX_ENV",
    "STICKY",
    "TRANSIENT",
    "UNCONFIRMED",
    "AddressResolver",
    "Classification",
    "Outcome",
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
