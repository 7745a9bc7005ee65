"""The plan as a value: what would change, per workspace and per field, and why.

Everything here is a frozen value with no I/O. Renderers and the saved-plan format only
read these; :func:`byokctl.plan.diff` is the one place that builds them.

A plan never holds a secret outside :attr:`Change.before` / :attr:`Change.after` (the
real :class:`~byokctl.model.Workspace` values that apply writes, whose
:class:`~byokctl.model.Secret` objects redact themselves). Everything a renderer or the
plan file reads -- field changes, :class:`WorkspaceView` -- is secret-free by
construction: a secret appears only as its field name and whether it changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

from byokctl.model import SourceFile, Workspace

#: A non-secret field's value: a string, the notify list, or ``None`` (``enabled`` when
#: Neo powers the workspace, or a field that is absent on one side of a change).
FieldValue = str | tuple[str, ...] | None


class Action(StrEnum):
    """What happens to a whole workspace; the values are the JSON ``actions`` strings."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    NOOP = "no-op"


class FieldAction(StrEnum):
    """What happens to one field of a workspace."""

    ADD = "add"
    CHANGE = "change"
    REMOVE = "remove"


@dataclass(frozen=True)
class FieldChange:
    """One field that differs between the live state and the files.

    ``path`` is dotted: ``enabled``, ``notify``, ``providers.openai.model``,
    ``providers.azure_openai.endpoint``, ``providers.openai.api_key``. For a secret
    (``sensitive=True``) there is no value at all: ``before`` and ``after`` are always
    ``None`` and ``action`` alone says whether the key was added, rotated or removed.
    """

    path: str
    action: FieldAction
    before: FieldValue = None
    after: FieldValue = None
    sensitive: bool = False

    def __post_init__(self) -> None:
        # Enforced here rather than trusted to callers: a value on a sensitive field
        # would flow straight into every renderer and the plan file.
        if self.sensitive and (self.before is not None or self.after is not None):
            raise ValueError(f"sensitive field {self.path} must not carry a value")

    @property
    def provider(self) -> str | None:
        """The provider id for a ``providers.<id>.<field>`` path, else ``None``."""
        parts = self.path.split(".")
        return parts[1] if parts[0] == "providers" and len(parts) > 1 else None


@dataclass(frozen=True)
class ProviderView:
    """A provider configuration without its secrets: only the secret fields' names."""

    model: str
    settings: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    #: A model per feature (``spec.providers.<p>.models``); empty: ``model`` for all.
    models: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", MappingProxyType(dict(sorted(self.settings.items()))))
        object.__setattr__(self, "secrets", tuple(sorted(self.secrets)))
        object.__setattr__(self, "models", MappingProxyType(dict(sorted(self.models.items()))))


@dataclass(frozen=True)
class WorkspaceView:
    """A workspace as renderers and the plan file may see it: no secret value anywhere."""

    enabled: str | None = None
    notify: tuple[str, ...] = ()
    providers: Mapping[str, ProviderView] = field(default_factory=dict)
    #: ``spec.fallback``'s fields that differ from the default, spelled as in the file.
    fallback: Mapping[str, bool | int | str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "notify", tuple(self.notify))
        object.__setattr__(self, "fallback", MappingProxyType(dict(self.fallback)))
        object.__setattr__(
            self, "providers", MappingProxyType(dict(sorted(self.providers.items())))
        )

    @classmethod
    def of(cls, workspace: Workspace) -> WorkspaceView:
        """The secret-free view of ``workspace``."""
        return cls(
            enabled=workspace.enabled,
            notify=workspace.notify,
            providers={
                pid: ProviderView(
                    config.model, dict(config.settings), tuple(config.secrets), config.models
                )
                for pid, config in workspace.providers.items()
            },
            fallback=workspace.fallback.fields(),
        )


@dataclass(frozen=True)
class CredentialCheck:
    """The outcome of verifying one provider's credentials (filled by verification).

    ``outcome`` is a short machine-readable class such as ``ok`` or ``invalid_key``;
    ``detail`` is a human sentence. Neither may contain a secret.
    """

    provider: str
    outcome: str
    detail: str = ""


@dataclass(frozen=True)
class CheckFinding:
    """A workspace the plan leaves enabled on a provider whose check did not pass.

    Verification fills these (``byokctl.verify.enable_findings``, the one rule ``plan``
    and ``apply`` judge by): an *error* is what apply refuses, a *warning* what it lets
    through. Like :class:`CredentialCheck`, no field may contain a secret.
    """

    workspace: str
    provider: str
    outcome: str
    detail: str = ""

    @property
    def message(self) -> str:
        """One line for people: workspace, provider, outcome and why."""
        text = f"{self.workspace}: {self.provider} (enabled): {self.outcome}"
        return text + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class Change:
    """What happens to one workspace, and why.

    ``before`` is the live workspace and ``after`` the desired one (``None`` where the
    workspace does not exist on that side). They carry the real secrets so that apply can
    write ``after``; a plan read back from a file has neither (``None``) and is only for
    showing and comparing. ``before_view``/``after_view`` are the secret-free versions.
    """

    name: str
    action: Action
    reasons: tuple[str, ...]
    fields: tuple[FieldChange, ...] = ()
    drift: bool = False
    #: Changed outside byokctl: who changed it and when, as a sentence.
    drift_reason: str = ""
    #: The live workspace exists but was never managed by byokctl; apply takes it over.
    adopt: bool = False
    before_view: WorkspaceView | None = None
    after_view: WorkspaceView | None = None
    before: Workspace | None = field(default=None, repr=False)
    after: Workspace | None = field(default=None, repr=False)
    #: Credential verification results; empty until verification fills it.
    checks: tuple[CredentialCheck, ...] = ()

    @property
    def reason(self) -> str:
        """All reasons as one sentence."""
        return "; ".join(self.reasons)

    @property
    def is_change(self) -> bool:
        """Whether apply has anything to do for this workspace.

        Besides creates, updates and deletes: an adoption, and drift that already matches
        the files (apply records the workspace as managed again, so the drift clears).
        """
        return self.action is not Action.NOOP or self.adopt or self.drift


@dataclass(frozen=True)
class Plan:
    """Every workspace considered, what happens to each, and what the plan was made from.

    ``changes`` holds one entry per workspace considered (no-ops included), sorted by
    name. ``serial`` is the live serial the plan was computed against and ``sources`` the
    files (by hash) it was computed from: together they decide whether a saved plan is
    stale. ``targets`` is ``None`` for a full plan, else the names it was limited to.
    ``unmanaged`` names live workspaces byokctl never managed and leaves alone.
    """

    changes: tuple[Change, ...]
    serial: int
    sources: Mapping[str, SourceFile]
    created_at: datetime
    targets: tuple[str, ...] | None = None
    unmanaged: tuple[str, ...] = ()
    #: The PATH arguments the desired state was read from, as given (relative to the
    #: working directory of ``plan``); ``apply FILE`` reads the same paths again.
    paths: tuple[str, ...] = ()
    #: What apply would refuse (it exits ``plan`` with 1), and what it lets through with a
    #: warning; empty until verification fills them (none with ``--no-verify``).
    errors: tuple[CheckFinding, ...] = ()
    warnings: tuple[CheckFinding, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "changes", tuple(sorted(self.changes, key=lambda c: c.name)))
        object.__setattr__(self, "sources", MappingProxyType(dict(sorted(self.sources.items()))))
        object.__setattr__(self, "unmanaged", tuple(sorted(self.unmanaged)))
        if self.targets is not None:
            object.__setattr__(self, "targets", tuple(sorted(set(self.targets))))

    @property
    def summary(self) -> tuple[int, int, int]:
        """``(to add, to change, to destroy)``, as in the final line of the text plan."""
        counts = dict.fromkeys(Action, 0)
        for change in self.changes:
            counts[change.action] += 1
        return counts[Action.CREATE], counts[Action.UPDATE], counts[Action.DELETE]

    @property
    def has_changes(self) -> bool:
        """Whether applying the plan would write anything (adoptions count)."""
        return any(change.is_change for change in self.changes)

    @property
    def adoptions(self) -> tuple[str, ...]:
        """Names of unmanaged live workspaces this plan brings under management."""
        return tuple(change.name for change in self.changes if change.adopt)

    @property
    def partial(self) -> bool:
        """Whether ``--target`` limited the plan to some workspaces."""
        return self.targets is not None

    def change(self, name: str) -> Change:
        """The change for workspace ``name``; ``KeyError`` if it was not considered."""
        for change in self.changes:
            if change.name == name:
                return change
        raise KeyError(name)
