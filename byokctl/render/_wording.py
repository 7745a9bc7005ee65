"""What the renderers share: how a value, a field line and a summary are worded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from byokctl.plan import Action, Change, FieldAction, FieldChange, FieldValue, Plan

#: Shown for a secret that is present and not changed by the plan.
SENSITIVE: Final = "(sensitive)"
#: Shown for a secret the plan replaces (a rotated key).
SENSITIVE_CHANGED: Final = "(sensitive value changed)"

NO_CHANGES: Final = "No changes. The live state matches the files."

SYMBOL: Final = {FieldAction.ADD: "+", FieldAction.CHANGE: "~", FieldAction.REMOVE: "-"}
ACTION_SYMBOL: Final = {
    Action.CREATE: "+",
    Action.UPDATE: "~",
    Action.DELETE: "-",
    Action.NOOP: "~",
}


def value_text(value: FieldValue) -> str:
    """A value as the plan shows it: JSON-quoted, so spaces and empties are visible."""
    if isinstance(value, tuple):
        return json.dumps(list(value), ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False)


def summary_line(plan: Plan) -> str:
    """Terraform's last line: ``Plan: 1 to add, 2 to change, 0 to destroy.``"""
    if not plan.has_changes:
        return NO_CHANGES
    add, change, destroy = plan.summary
    return f"Plan: {add} to add, {change} to change, {destroy} to destroy."


def heading(change: Change) -> str:
    """``acme will be created`` and the like, for the line above a workspace's fields."""
    if change.action is Action.NOOP:
        if change.adopt:
            return f"{change.name} will be adopted, with no configuration change"
        return f"{change.name} will be recorded as managed again, with no configuration change"
    verb = {
        Action.CREATE: "created",
        Action.UPDATE: "updated in place",
        Action.DELETE: "deleted",
    }[change.action]
    adopted = " and adopted" if change.adopt else ""
    return f"{change.name} will be {verb}{adopted}"


def partial_warning(plan: Plan, *, max_names: int | None = None) -> str:
    """The warning a ``--target`` plan carries; empty for a full plan.

    ``max_names`` bounds how many target names are listed (the Markdown summary must
    stay small however many targets there are).
    """
    if plan.targets is None:
        return ""
    shown = plan.targets if max_names is None else plan.targets[:max_names]
    names = ", ".join(shown) if shown else "(none)"
    if len(shown) < len(plan.targets):
        names += f" and {len(plan.targets) - len(shown):,} more"
    return (
        f"this plan is partial: only the targeted workspaces ({names}) were considered; "
        "the others may still differ from the files"
    )


def refusal_heading(plan: Plan) -> str:
    """The sentence above the plan's errors: what apply would refuse; empty without errors."""
    count = len(plan.errors)
    if not count:
        return ""
    return (
        f"apply would refuse this plan: {_workspaces(count)} would be left enabled on a "
        "provider whose credentials failed verification"
    )


#: What to do about the errors, below their list.
REFUSAL_HINT: Final = (
    "Fix the credentials or the model, enable another provider, or pass --no-verify to "
    "apply without verification."
)


def unconfirmed_heading(plan: Plan) -> str:
    """The sentence above the plan's warnings (enables apply lets through); empty without."""
    count = len(plan.warnings)
    if not count:
        return ""
    return (
        f"the provider could not confirm the credentials of {_workspaces(count)} right now "
        "(rate limited, outage or timeout); apply goes ahead, and while the provider stays "
        "unavailable the resolver sends the AI actions to Neo"
    )


def _workspaces(count: int) -> str:
    return f"{count:,} workspace" + ("" if count == 1 else "s")


UNMANAGED_HINT: Final = (
    "live workspaces not managed by byokctl and not in the files; they are left alone "
    "(bring them under management with `byokctl import NAME`)"
)


@dataclass(frozen=True)
class FieldLine:
    """One line of a workspace's detail: a change, or an unchanged secret for context."""

    path: str
    #: ``+``, ``~``, ``-``, or a space for an unchanged line shown for context.
    symbol: str
    before: str
    after: str
    change: FieldChange | None


def field_lines(change: Change) -> Iterator[FieldLine]:
    """The lines to show for ``change``: each field change, in order, plus the unchanged
    secrets of every provider whose other fields change (so a reviewer sees at a glance
    that the key was kept: ``(sensitive)``)."""
    context = _unchanged_secrets(change)
    shown_context: set[str] = set()
    fields = change.fields
    for i, field in enumerate(fields):
        if field.sensitive:
            before = after = SENSITIVE_CHANGED if field.action is FieldAction.CHANGE else SENSITIVE
        else:
            before, after = value_text(field.before), value_text(field.after)
        yield FieldLine(field.path, SYMBOL[field.action], before, after, field)
        pid = field.provider
        last_of_provider = pid is not None and (
            i + 1 == len(fields) or fields[i + 1].provider != pid
        )
        if pid is not None and last_of_provider and pid not in shown_context:
            shown_context.add(pid)
            for path in context.get(pid, ()):
                yield FieldLine(path, " ", SENSITIVE, SENSITIVE, None)


def _unchanged_secrets(change: Change) -> dict[str, list[str]]:
    if change.before_view is None or change.after_view is None:
        return {}
    changed = {f.path for f in change.fields}
    touched = {f.provider for f in change.fields if f.provider is not None}
    found: dict[str, list[str]] = {}
    for pid in sorted(touched):
        before = change.before_view.providers.get(pid)
        after = change.after_view.providers.get(pid)
        if before is None or after is None:
            continue  # a provider added or removed shows all its fields already
        for name in after.secrets:
            path = f"providers.{pid}.{name}"
            if name in before.secrets and path not in changed:
                found.setdefault(pid, []).append(path)
    return found
