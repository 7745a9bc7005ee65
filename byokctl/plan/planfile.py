"""The saved-plan format: a plan as a versioned JSON document, and its staleness checks.

One format serves both ``byokctl plan --out FILE`` and ``byokctl plan --format json``
(documented in ``docs/plan-json.md``): a machine reading either sees the same thing,
and ``byokctl show FILE`` can render a saved plan in any format.

A saved plan holds **no secret**, not even a fingerprint: a secret field appears only as
its name and whether it is added, rotated or removed. So a saved plan cannot be applied
by itself. Instead ``apply FILE`` checks it is fresh (:func:`check_fresh`: the live
serial and the source files' hashes are those the plan was made from), recomputes the
plan from the files, and checks the result is the plan that was reviewed
(:func:`check_same`), then applies the recomputed plan.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from byokctl.errors import ByokError, StalePlanError
from byokctl.model import SourceFile
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

#: ``major.minor``: a reader accepts any minor of its major (minors only add fields).
FORMAT_VERSION: Final = "1.1"
_MAJOR: Final = FORMAT_VERSION.split(".")[0]

#: What a secret leaf becomes in ``before``/``after``: a marker, never a value.
SENSITIVE_MARKER: Final[Mapping[str, bool]] = {"sensitive": True}

_AGAIN: Final = "run `byokctl plan --out FILE` again, review it, and apply the new plan"

Document = dict[str, Any]


def to_document(plan: Plan) -> Document:
    """The plan as a JSON-ready dict in the documented format (no secret)."""
    add, change, destroy = plan.summary
    # ``errors`` come first: a reader (or a person paging through the JSON) sees what
    # apply would refuse before anything else.
    return {
        "format_version": FORMAT_VERSION,
        "errors": [_finding_document(f) for f in plan.errors],
        "warnings": [_finding_document(f) for f in plan.warnings],
        "created_at": plan.created_at.isoformat(),
        "serial": plan.serial,
        "targets": None if plan.targets is None else list(plan.targets),
        "paths": list(plan.paths),
        "summary": {
            "add": add,
            "change": change,
            "destroy": destroy,
            "adopt": len(plan.adoptions),
            "has_changes": plan.has_changes,
        },
        "sources": [
            {"workspace": name, "path": source.path, "sha256": source.sha256}
            for name, source in plan.sources.items()
        ],
        "unmanaged": list(plan.unmanaged),
        "changes": [_change_document(c) for c in plan.changes],
    }


def dumps(plan: Plan) -> str:
    """The plan as JSON text in the documented format, ending with a newline."""
    return json.dumps(to_document(plan), indent=2, ensure_ascii=False) + "\n"


def loads(text: str, *, origin: str = "plan") -> Plan:
    """Read a plan back from :func:`dumps` output. ``origin`` names it in errors.

    The result has no :attr:`Change.before`/:attr:`Change.after` workspaces (the file
    holds no secret): it can be rendered and compared, not applied.
    """
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ByokError(
            f"{origin} is not a byokctl plan: not JSON ({exc.args[0]})",
            hint="pass a file written by `byokctl plan --out FILE`",
        ) from exc
    if not isinstance(doc, dict) or "format_version" not in doc:
        raise ByokError(
            f"{origin} is not a byokctl plan: no format_version",
            hint="pass a file written by `byokctl plan --out FILE`",
        )
    version = str(doc["format_version"])
    if version.split(".", maxsplit=1)[0] != _MAJOR:
        raise ByokError(
            f"{origin} has plan format {version}; this byokctl reads {_MAJOR}.x",
            hint="make the plan again with this byokctl: run `byokctl plan --out FILE`",
        )
    try:
        return _plan_from_document(doc)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ByokError(
            f"{origin} is not a valid byokctl plan ({type(exc).__name__}: {exc})",
            hint="pass an unmodified file written by `byokctl plan --out FILE`",
        ) from exc


def write_plan(path: Path, plan: Plan) -> None:
    """Save ``plan`` to ``path`` atomically (a reader never sees half a plan)."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path())
    except OSError as exc:
        raise ByokError(
            f"cannot write the plan file {path}: {exc.strerror}",
            hint="check that its directory exists and is writable",
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(dumps(plan))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_plan(path: Path) -> Plan:
    """Load a plan saved by :func:`write_plan`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ByokError(f"cannot read plan file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError:
        raise ByokError(
            f"{path} is not a byokctl plan: not UTF-8 text",
            hint="pass a file written by `byokctl plan --out FILE`",
        ) from None
    return loads(text, origin=str(path))


def check_fresh(saved: Plan, *, current_serial: int, current_hashes: Mapping[str, str]) -> None:
    """Raise :class:`StalePlanError` unless ``saved`` was made from the current state.

    ``current_hashes`` maps each workspace file's path (as the loader names it) to its
    sha256 now. The plan is stale when the live serial moved, or when any file changed,
    disappeared or appeared since the plan was made (a conservative rule even for a
    ``--target`` plan: the reviewed plan was made from exactly those files).
    """
    problems: list[str] = []
    if current_serial != saved.serial:
        problems.append(
            f"the live state moved from serial {saved.serial} to {current_serial} "
            "since the plan was made"
        )
    then = {source.path: source.sha256 for source in saved.sources.values()}
    for path in sorted(set(then) | set(current_hashes)):
        if path not in current_hashes:
            problems.append(f"file {path} was removed since the plan was made")
        elif path not in then:
            problems.append(f"file {path} is new since the plan was made")
        elif then[path] != current_hashes[path]:
            problems.append(f"file {path} changed since the plan was made")
    if problems:
        raise StalePlanError("stale plan: " + "; ".join(problems), hint=_AGAIN)


def differences(saved: Plan, current: Plan) -> list[str]:
    """How ``current`` differs from ``saved``, one sentence per workspace; empty if equal.

    Compares everything a reviewer saw -- actions, fields, non-secret values, whether
    each secret is added, rotated or removed, drift, adoption, targets, unmanaged
    workspaces -- and nothing they could not: secret values (which the saved plan does
    not have), timestamps, and credential checks (a re-plan may skip verification).
    """
    found: list[str] = []
    if saved.targets != current.targets:
        found.append(f"targets differ ({saved.targets} vs {current.targets})")
    if saved.unmanaged != current.unmanaged:
        found.append("the unmanaged workspaces differ")
    old = {c.name: _comparable(c) for c in saved.changes}
    new = {c.name: _comparable(c) for c in current.changes}
    for name in sorted(set(old) | set(new)):
        if name not in new:
            found.append(f"workspace {name} is no longer in the plan")
        elif name not in old:
            found.append(f"workspace {name} is new in the plan")
        elif old[name] != new[name]:
            found.append(f"workspace {name} would change differently")
    return found


def check_same(saved: Plan, current: Plan) -> None:
    """Raise :class:`StalePlanError` unless ``current`` is the plan that was saved."""
    found = differences(saved, current)
    if found:
        raise StalePlanError(
            "stale plan: recomputing it gives a different result: " + "; ".join(found),
            hint=_AGAIN,
        )


# -- the document, both ways ---------------------------------------------------------


def _comparable(change: Change) -> Document:
    doc = _change_document(change)
    del doc["checks"]
    return doc


def _change_document(change: Change) -> Document:
    return {
        "name": change.name,
        "actions": [str(change.action)],
        "reason": change.reason,
        "reasons": list(change.reasons),
        "drift": change.drift,
        "drift_reason": change.drift_reason or None,
        "adopt": change.adopt,
        "fields": [_field_document(f) for f in change.fields],
        "before": _view_document(change.before_view),
        "after": _view_document(change.after_view),
        "checks": [
            {"provider": c.provider, "outcome": c.outcome, "detail": c.detail}
            for c in change.checks
        ],
    }


def _finding_document(finding: CheckFinding) -> Document:
    return {
        "workspace": finding.workspace,
        "provider": finding.provider,
        "outcome": finding.outcome,
        "detail": finding.detail,
        "message": finding.message,
    }


def _finding_from_document(doc: Document) -> CheckFinding:
    return CheckFinding(
        str(doc["workspace"]), str(doc["provider"]), str(doc["outcome"]), str(doc["detail"])
    )


def _field_document(change: FieldChange) -> Document:
    doc: Document = {"path": change.path, "action": str(change.action)}
    if change.sensitive:
        doc["sensitive"] = True
    else:
        doc["before"] = _value_document(change.before)
        doc["after"] = _value_document(change.after)
        doc["sensitive"] = False
    return doc


def _value_document(value: FieldValue) -> str | list[str] | None:
    return list(value) if isinstance(value, tuple) else value


def _view_document(view: WorkspaceView | None) -> Document | None:
    if view is None:
        return None
    providers: Document = {}
    for pid, config in view.providers.items():
        entry: Document = {"model": config.model, **config.settings}
        if config.models:  # only when set: plans of files without it read as before
            entry["models"] = dict(config.models)
        for name in config.secrets:
            entry[name] = dict(SENSITIVE_MARKER)
        providers[pid] = entry
    doc: Document = {"enabled": view.enabled, "notify": list(view.notify)}
    if view.fallback:
        doc["fallback"] = dict(view.fallback)
    doc["providers"] = providers
    return doc


def _plan_from_document(doc: Document) -> Plan:
    for name in ("changes", "sources", "unmanaged", "paths", "errors", "warnings"):
        if not isinstance(doc.get(name, []), list):
            raise TypeError(f"{name!r} must be a list")
    targets = doc["targets"]
    if targets is not None and not isinstance(targets, list):
        raise TypeError("'targets' must be a list or null")
    return Plan(
        changes=tuple(_change_from_document(c) for c in doc["changes"]),
        serial=int(doc["serial"]),
        sources={
            str(s["workspace"]): SourceFile(path=str(s["path"]), sha256=str(s["sha256"]))
            for s in doc["sources"]
        },
        created_at=datetime.fromisoformat(doc["created_at"]),
        targets=None if targets is None else tuple(str(t) for t in targets),
        unmanaged=tuple(str(n) for n in doc["unmanaged"]),
        paths=tuple(str(p) for p in doc.get("paths", ())),
        # Format 1.0 had neither list.
        errors=tuple(_finding_from_document(f) for f in doc.get("errors", ())),
        warnings=tuple(_finding_from_document(f) for f in doc.get("warnings", ())),
    )


def _change_from_document(doc: Document) -> Change:
    (action,) = doc["actions"]
    return Change(
        name=str(doc["name"]),
        action=Action(action),
        reasons=tuple(str(r) for r in doc["reasons"]),
        fields=tuple(_field_from_document(f) for f in doc["fields"]),
        drift=bool(doc["drift"]),
        drift_reason=str(doc["drift_reason"] or ""),
        adopt=bool(doc["adopt"]),
        before_view=_view_from_document(doc["before"]),
        after_view=_view_from_document(doc["after"]),
        checks=tuple(
            CredentialCheck(str(c["provider"]), str(c["outcome"]), str(c["detail"]))
            for c in doc["checks"]
        ),
    )


def _field_from_document(doc: Document) -> FieldChange:
    if doc["sensitive"]:
        return FieldChange(str(doc["path"]), FieldAction(doc["action"]), sensitive=True)
    return FieldChange(
        str(doc["path"]),
        FieldAction(doc["action"]),
        _value_from_document(doc["before"]),
        _value_from_document(doc["after"]),
    )


def _value_from_document(value: object) -> FieldValue:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    raise TypeError(f"unexpected field value of type {type(value).__name__}")


def _view_from_document(doc: Document | None) -> WorkspaceView | None:
    if doc is None:
        return None
    providers: dict[str, ProviderView] = {}
    for pid, entry in doc["providers"].items():
        settings = {k: str(v) for k, v in entry.items() if k != "model" and isinstance(v, str)}
        secrets = tuple(k for k, v in entry.items() if v == SENSITIVE_MARKER)
        models = entry.get("models") or {}
        if not isinstance(models, dict):
            raise TypeError("'models' must be an object")
        providers[str(pid)] = ProviderView(
            str(entry["model"]), settings, secrets, {str(k): str(v) for k, v in models.items()}
        )
    fallback = doc.get("fallback") or {}
    if not isinstance(fallback, dict) or not all(
        isinstance(v, bool | int | str) for v in fallback.values()
    ):
        raise TypeError("'fallback' must be an object of scalars")
    return WorkspaceView(
        enabled=doc["enabled"],
        notify=tuple(doc["notify"]),
        providers=providers,
        fallback={str(k): v for k, v in fallback.items()},
    )
