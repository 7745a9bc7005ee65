"""The plan for machines: the documented, versioned JSON format (``docs/plan-json.md``)."""

from __future__ import annotations

from byokctl.plan import Plan, planfile


def render_json(plan: Plan) -> str:
    """The plan as JSON: ``format_version``, a summary, and one entry per workspace with
    ``actions`` (``["create"]``, ``["update"]``, ``["delete"]`` or ``["no-op"]``),
    field-level changes, and before/after where secrets are ``{"sensitive": true}``.

    It is the saved-plan format, so ``plan --format json`` and ``plan --out`` agree.
    """
    return planfile.dumps(plan)
