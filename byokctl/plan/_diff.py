"""The diff: desired state against live state, as a :class:`~byokctl.plan.Plan`. Pure.

Hand-written rather than built on deepdiff: the structure is small and fixed (enabled,
notify, providers -> model/settings/secrets), so a direct walk yields the dotted paths,
the per-field actions and the human reasons in one pass. deepdiff would introspect
:class:`~byokctl.model.Secret` through its ``__slots__`` and put the plaintext into its
result (a leak we would have to guard against with custom operators), and its
``root['providers']['openai']`` paths would need translating anyway.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime

from byokctl.model import DesiredState, LiveState, LiveWorkspace, Secret, Workspace
from byokctl.plan._values import (
    Action,
    Change,
    FieldAction,
    FieldChange,
    FieldValue,
    Plan,
    WorkspaceView,
)

#: One leaf of a workspace: a plain value, or a secret (compared, never read).
_Leaf = FieldValue | Secret


def diff(
    desired: DesiredState,
    live: LiveState,
    *,
    created_at: datetime,
    targets: Collection[str] | None = None,
) -> Plan:
    """Compute the plan that turns ``live`` into ``desired``.

    Per workspace: ``create`` (only in the files), ``update`` (both, different),
    ``delete`` (live, managed by byokctl, gone from the files) or ``no-op``. Live
    workspaces byokctl never managed and the files do not mention are left alone and
    listed in :attr:`Plan.unmanaged`; one the files do mention is adopted. ``targets``
    limits the plan to those workspace names. ``created_at`` is stamped on the plan (the
    caller reads the clock, so this stays pure).
    """
    wanted = None if targets is None else frozenset(targets)

    def considered(name: str) -> bool:
        return wanted is None or name in wanted

    changes: list[Change] = []
    unmanaged: list[str] = []
    for name in sorted(set(desired.workspaces) | set(live.workspaces)):
        if not considered(name):
            continue
        want = desired.workspaces.get(name)
        have = live.workspaces.get(name)
        if want is None:
            assert have is not None  # the name came from one of the two mappings
            if have.managed:
                changes.append(_delete(name, have))
            else:
                unmanaged.append(name)
        else:
            changes.append(_create_or_update(name, want, have))
    return Plan(
        changes=tuple(changes),
        serial=live.serial,
        sources=desired.sources,
        created_at=created_at,
        targets=None if wanted is None else tuple(wanted),
        unmanaged=tuple(unmanaged),
    )


def apply_to(live_workspaces: Mapping[str, Workspace], plan: Plan) -> dict[str, Workspace]:
    """The workspaces that result from applying ``plan`` to ``live_workspaces`` (pure).

    This is the executor's semantics without the store, used to state the plan's
    contract as a property: applying ``diff(desired, live)`` to ``live`` yields ``desired``.
    """
    result = dict(live_workspaces)
    for change in plan.changes:
        if change.action is Action.DELETE:
            result.pop(change.name, None)
        elif change.action in (Action.CREATE, Action.UPDATE):
            if change.after is None:
                raise ValueError(
                    f"the change for {change.name} has no desired workspace "
                    "(a plan read from a file cannot be applied; recompute it)"
                )
            result[change.name] = change.after
    return result


def _create_or_update(name: str, want: Workspace, have: LiveWorkspace | None) -> Change:
    if have is None:
        return Change(
            name=name,
            action=Action.CREATE,
            reasons=("new workspace",),
            fields=_field_changes(None, want),
            after_view=WorkspaceView.of(want),
            after=want,
        )
    fields = _field_changes(have.workspace, want)
    adopt = not have.managed
    drift = have.managed and have.drifted
    outcome = "the files restore it" if fields else "it matches the files"
    reasons: list[str] = []
    if adopt:
        reasons.append("adopting a live workspace byokctl did not manage yet")
    reasons.extend(_update_reasons(have.workspace, want, fields))
    if not fields:
        reasons.append("matches the files")
    return Change(
        name=name,
        action=Action.UPDATE if fields else Action.NOOP,
        reasons=tuple(reasons),
        fields=fields,
        drift=drift,
        drift_reason=_drift_reason(have, outcome) if drift else "",
        adopt=adopt,
        before_view=WorkspaceView.of(have.workspace),
        after_view=WorkspaceView.of(want),
        before=have.workspace,
        after=want,
    )


def _delete(name: str, have: LiveWorkspace) -> Change:
    return Change(
        name=name,
        action=Action.DELETE,
        reasons=("removed from the files",),
        fields=_field_changes(have.workspace, None),
        drift=have.drifted,
        drift_reason=_drift_reason(have, "it is no longer in the files") if have.drifted else "",
        before_view=WorkspaceView.of(have.workspace),
        before=have.workspace,
    )


def _drift_reason(have: LiveWorkspace, outcome: str) -> str:
    when = have.updated_at.isoformat(timespec="seconds")
    return f"changed outside byokctl (by {have.updated_by} at {when}); {outcome}"


def _leaves(workspace: Workspace | None) -> dict[str, _Leaf]:
    """A workspace flattened to dotted paths, in the order renderers show them."""
    if workspace is None:
        return {}
    leaves: dict[str, _Leaf] = {"enabled": workspace.enabled, "notify": workspace.notify}
    for key, value in workspace.fallback.fields().items():
        leaves["fallback." + key] = _text(value)
    for pid, config in workspace.providers.items():
        prefix = f"providers.{pid}."
        leaves[prefix + "model"] = config.model
        for feature, model in config.models.items():
            leaves[prefix + "models." + feature] = model
        for key, value in config.settings.items():
            leaves[prefix + key] = value
        for key, secret in config.secrets.items():
            leaves[prefix + key] = secret
    return leaves


def _text(value: bool | int | str) -> str:
    """A policy value as the plan shows it: YAML's spelling (``false``, ``100``)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _field_changes(before: Workspace | None, after: Workspace | None) -> tuple[FieldChange, ...]:
    old, new = _leaves(before), _leaves(after)
    changes: list[FieldChange] = []
    for path in _ordered_paths(old, new):
        if path in old and path in new:
            if old[path] == new[path]:
                continue
            action = FieldAction.CHANGE
        else:
            action = FieldAction.ADD if path in new else FieldAction.REMOVE
        a, b = old.get(path), new.get(path)
        if isinstance(a, Secret) or isinstance(b, Secret):
            # A secret is known only to be added, rotated or removed: no value, ever.
            changes.append(FieldChange(path, action, sensitive=True))
        else:
            changes.append(FieldChange(path, action, a, b))
    return tuple(changes)


def _ordered_paths(old: Mapping[str, _Leaf], new: Mapping[str, _Leaf]) -> list[str]:
    """Workspace fields first, then providers by id, each with its model first."""

    def key(path: str) -> tuple[int, str, int, str]:
        parts = path.split(".", 2)
        if parts[0] != "providers":
            return (0, "", 0 if path == "enabled" else 1, path)
        return (1, parts[1], 0 if parts[2] == "model" else 1, parts[2])

    return sorted(set(old) | set(new), key=key)


def _update_reasons(
    before: Workspace, after: Workspace, fields: tuple[FieldChange, ...]
) -> list[str]:
    reasons: list[str] = []
    added = set(after.providers) - set(before.providers)
    removed = set(before.providers) - set(after.providers)
    for change in fields:
        pid = change.provider
        if pid is None:
            if change.path == "enabled":
                reasons.append(f"enabled: {_who(change.before)} -> {_who(change.after)}")
            elif change.path.startswith("fallback."):
                reasons.append(
                    f"{change.path}: {_policy(change.before)} -> {_policy(change.after)}"
                )
            else:
                reasons.append(f"{change.path} changed")
            continue
        if pid in added or pid in removed:
            continue  # said once per provider below, not once per field
        name = change.path.rsplit(".", 1)[1]
        if change.path.startswith(f"providers.{pid}.models."):
            reasons.append(
                f"{pid} model for {name} {_verb(change.action)} "
                f"({_policy(change.before)} -> {_policy(change.after)})"
            )
        elif change.sensitive:
            verb = {
                FieldAction.ADD: "added",
                FieldAction.CHANGE: "rotated",
                FieldAction.REMOVE: "removed",
            }[change.action]
            reasons.append(f"{pid} {name} {verb}")
        elif name == "model":
            reasons.append(f"{pid} model changed ({change.before} -> {change.after})")
        else:
            reasons.append(f"{pid} {name} {_verb(change.action)}")
    reasons.extend(f"provider {pid} added" for pid in sorted(added))
    reasons.extend(f"provider {pid} removed" for pid in sorted(removed))
    return reasons


def _policy(value: FieldValue) -> str:
    """A policy or per-feature value in a reason; absent is the default."""
    return "default" if value is None else str(value)


def _who(enabled: FieldValue) -> str:
    return "none (Neo)" if enabled is None else str(enabled)


def _verb(action: FieldAction) -> str:
    return {FieldAction.ADD: "set", FieldAction.CHANGE: "changed", FieldAction.REMOVE: "unset"}[
        action
    ]
