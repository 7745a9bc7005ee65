"""The plan: what apply would change, as a value, and the saved-plan file format.

``diff(desired, live)`` is pure; :class:`Plan` and :class:`Change` are frozen values that
renderers (``byokctl.render``) and the plan file (:mod:`byokctl.plan.planfile`) only read.
"""

from __future__ import annotations

from byokctl.plan._diff import apply_to, diff
from byokctl.plan._values import (
    Action,
    Change,
    CheckFinding,
    CredentialCheck,
    FieldAction,
    FieldChange,
    FieldValue,
    Plan,
    ProviderView,
    WorkspaceView,
)

__all__ = [
    "Action",
    "Change",
    "CheckFinding",
    "CredentialCheck",
    "FieldAction",
    "FieldChange",
    "FieldValue",
    "Plan",
    "ProviderView",
    "WorkspaceView",
    "apply_to",
    "diff",
]
