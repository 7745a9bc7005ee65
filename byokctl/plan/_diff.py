"""The diff: desired state against live state, as a :class:`~byokctl.plan.Plan`. Pure.

The field-level diff is deepdiff's, over a *projection* of each workspace: plain dicts,
strings and tuples in which every secret is already a :class:`SecretToken` (a keyed
fingerprint; the key is random per process and never leaves this module), so no
plaintext can reach the library, whatever it introspects. deepdiff's paths
(``['providers', 'openai', 'models', 'summarize']``) are translated to the dotted paths
the renderers print (``providers.openai.models.summarize``); a field that deepdiff reports
inside a value (an item of ``notify``) is the field itself, and a subtree added or
removed whole (a new provider) is each of its fields. New fields of the workspace need a
line in :func:`projection`, nothing else.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from byokctl.model import DesiredState, LiveState, LiveWorkspace, Workspace
from byokctl.plan._values import (
    Action,
    Change,
    FieldAction,
    FieldChange,
    FieldValue,
    Plan,
    WorkspaceView,
)


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


@dataclass(frozen=True)
class SecretToken:
    """A secret in a projection: a keyed fingerprint of its value, never the value."""

    digest: str


#: The fingerprint key of this process's projections (random: tokens are only compared).
_TOKEN_KEY: Final = os.urandom(32)

#: A projected value: a field's plain value, a secret's token, or a mapping of them.
Projected = FieldValue | SecretToken | Mapping[str, "Projected"]


def projection(workspace: Workspace | None) -> dict[str, Projected]:
    """``workspace`` as plain data for deepdiff, secrets as tokens; ``{}`` for none.

    Keys are the dotted paths' parts, in the shape the renderers print: a provider's
    settings and secrets sit beside its ``model``. A policy shows only the fields that
    differ from the default (as the file spells them), so a file without ``fallback``
    projects as it did before the field existed.
    """
    if workspace is None:
        return {}
    providers: dict[str, Projected] = {}
    for pid, config in workspace.providers.items():
        entry: dict[str, Projected] = {"model": config.model, "models": dict(config.models)}
        entry.update(config.settings)
        for key, secret in config.secrets.items():
            entry[key] = SecretToken(secret.fingerprint(_TOKEN_KEY))
        providers[pid] = entry
    return {
        "enabled": workspace.enabled,
        "notify": workspace.notify,
        "fallback": {k: _text(v) for k, v in workspace.fallback.fields().items()},
        "providers": providers,
    }


def _flatten(value: Mapping[str, Projected], prefix: str = "") -> dict[str, Projected]:
    """Dotted path -> leaf (anything but a mapping); an empty mapping has no leaves."""
    out: dict[str, Projected] = {}
    for key, child in value.items():
        path = prefix + key
        if isinstance(child, Mapping):
            out.update(_flatten(child, path + "."))
        else:
            out[path] = child
    return out


def _text(value: bool | int | str) -> str:
    """A policy value as the plan shows it: YAML's spelling (``false``, ``100``)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _changed_paths(
    old: dict[str, Projected],
    new: dict[str, Projected],
    old_leaves: Mapping[str, Projected],
    new_leaves: Mapping[str, Projected],
) -> set[str]:
    """The dotted leaf paths deepdiff finds different between two projections."""
    from deepdiff import DeepDiff  # noqa: PLC0415 - only plans with an update pay for it

    leaves = set(old_leaves) | set(new_leaves)
    changed: set[str] = set()
    for levels in DeepDiff(old, new, view="tree").values():
        for level in levels:
            parts = [str(p) for p in level.path(output_format="list")]
            for end in range(1, len(parts) + 1):
                dotted = ".".join(parts[:end])
                if dotted in leaves:  # the field itself, or a change inside its value
                    changed.add(dotted)
                    break
            else:  # a subtree added or removed whole: each of its fields
                dotted = ".".join(parts) + "."
                changed.update(p for p in leaves if p.startswith(dotted))
    return changed


def _field_changes(before: Workspace | None, after: Workspace | None) -> tuple[FieldChange, ...]:
    old_p, new_p = projection(before), projection(after)
    old, new = _flatten(old_p), _flatten(new_p)
    if before is None or after is None:
        paths = set(old) | set(new)  # every field is added (or removed): nothing to compare
    elif old_p == new_p:
        return ()
    else:
        paths = _changed_paths(old_p, new_p, old, new)
    changes: list[FieldChange] = []
    for path in _ordered_paths(old, new):
        if path not in paths:
            continue
        if path in old and path in new:
            action = FieldAction.CHANGE
        else:
            action = FieldAction.ADD if path in new else FieldAction.REMOVE
        a, b = old.get(path), new.get(path)
        if isinstance(a, SecretToken) or isinstance(b, SecretToken):
            # A secret is known only to be added, rotated or removed: no value, ever.
            changes.append(FieldChange(path, action, sensitive=True))
        else:
            assert not isinstance(a, Mapping)  # leaves only
            assert not isinstance(b, Mapping)
            changes.append(FieldChange(path, action, a, b))
    return tuple(changes)


def _ordered_paths(old: Mapping[str, Projected], new: Mapping[str, Projected]) -> list[str]:
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
