"""Files → checked documents → desired state.

``validate_paths`` needs no key: structure and encryption status are visible in a SOPS
file. ``load_desired`` additionally decrypts and builds :class:`~byokctl.model.Workspace`
values; every file's problems are reported, not only the first file's.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from byokctl.catalog import PROVIDERS, SECRET_FIELDS
from byokctl.config import rules, schema
from byokctl.config.diagnostics import Diagnostic, Severity, error
from byokctl.config.discover import DEFAULT_PATH, Candidate, discover
from byokctl.config.yamlsource import YamlDocument, YamlProblem, parse
from byokctl.errors import SopsError
from byokctl.model import DesiredState, ProviderConfig, Secret, SourceFile, Workspace

if TYPE_CHECKING:
    from byokctl.sops import Identities

#: Workspace files are a few KB; anything this large is a mistake or an attack.
MAX_FILE_BYTES: Final = 1024 * 1024


@dataclass
class CheckedFile:
    """One workspace file after validation (``document`` is None when it did not parse)."""

    candidate: Candidate
    content: bytes = b""
    document: YamlDocument | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.document is not None and not any(
            d.severity is Severity.ERROR for d in self.diagnostics
        )

    @property
    def name(self) -> str | None:
        meta = self.document.value.get("metadata") if self.document else None
        name = meta.get("name") if isinstance(meta, Mapping) else None
        return name if isinstance(name, str) and not rules.is_encrypted(name) else None


@dataclass
class Validation:
    """The result of validating a set of paths."""

    files: list[CheckedFile]
    diagnostics: list[Diagnostic]

    @property
    def ok(self) -> bool:
        return not any(d.severity is Severity.ERROR for d in self.diagnostics)


def validate_paths(paths: Sequence[str]) -> Validation:
    """Find, parse and check every workspace file under ``paths``. Never raises for bad input."""
    candidates, diagnostics = discover(paths)
    if not candidates and not diagnostics:
        # An empty checkout must never plan as "delete every workspace".
        shown = ", ".join(paths) or DEFAULT_PATH
        diagnostics.append(
            error(
                shown,
                1,
                1,
                "no-workspace-files",
                "no workspace files (*.yaml, *.yml) found",
                "check the path; hidden files and folders are skipped",
            )
        )
    files = [check_file(c) for c in candidates]
    _check_unique_names(files)
    for f in files:
        diagnostics.extend(f.diagnostics)
    diagnostics.sort(key=lambda d: (d.path, d.line, d.column, d.rule))
    return Validation(files, diagnostics)


def check_file(candidate: Candidate) -> CheckedFile:
    """Read and check one file: YAML, schema, and the rules beyond the schema."""
    checked = CheckedFile(candidate)
    display = candidate.display
    try:
        # O_NONBLOCK: a file swapped for a FIFO after discovery must not hang the read.
        fd = os.open(candidate.real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with open(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                checked.diagnostics.append(
                    error(display, 1, 1, "not-a-regular-file", "this is not a regular file")
                )
                return checked
            size = info.st_size
            if size > MAX_FILE_BYTES:
                checked.diagnostics.append(
                    error(
                        display,
                        1,
                        1,
                        "file-too-large",
                        f"the file is {size:,} bytes; workspace files are limited to "
                        f"{MAX_FILE_BYTES:,}",
                        "a workspace file declares one workspace and is a few KB",
                    )
                )
                return checked
            checked.content = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        checked.diagnostics.append(
            error(
                display,
                1,
                1,
                "file-unreadable",
                f"cannot read the file: {exc.strerror or exc}",
                "check its permissions",
            )
        )
        return checked
    try:
        document = parse(checked.content)
    except YamlProblem as p:
        checked.diagnostics.append(
            error(display, p.mark.line, p.mark.column, p.rule, p.message, p.hint)
        )
        return checked
    checked.document = document
    checked.diagnostics.extend(_document_diagnostics(display, document))
    return checked


def _document_diagnostics(display: str, document: YamlDocument) -> list[Diagnostic]:
    value = document.value
    encrypted = set(rules.encrypted_paths(value))
    findings = [
        f
        for f in schema.check(value)
        # An encrypted non-secret value cannot be checked without the key (a warning says so).
        if f.path not in encrypted
    ]
    findings.extend(rules.check(value, sops_command=lambda: _sops_command(display)))
    # A value with a control character breaks its pattern too; say the more precise thing once.
    controlled = {f.path for f in findings if f.rule == "control-character"}
    findings = [f for f in findings if f.rule != "schema-pattern" or f.path not in controlled]
    out = []
    for f in findings:
        mark = document.mark(f.path)
        severity = Severity.WARNING if f.rule in rules.WARNING_RULES else Severity.ERROR
        out.append(Diagnostic(display, mark.line, mark.column, severity, f.message, f.rule, f.hint))
    return out


def _sops_command(display: str) -> str:
    """How to encrypt the file: sops looks for .sops.yaml from its working directory up."""
    path = Path(display)
    for directory in path.resolve().parents:
        if (directory / ".sops.yaml").is_file():
            relative = os.path.relpath(path.resolve(), directory)
            if directory == Path.cwd():
                return f"sops encrypt -i {relative}"
            return f"(cd {os.path.relpath(directory)} && sops encrypt -i {relative})"
    return (
        f"sops encrypt -i {display}, after creating a .sops.yaml with a creation rule "
        "above it (see examples/gitops/.sops.yaml)"
    )


def _check_unique_names(files: Sequence[CheckedFile]) -> None:
    first: dict[str, CheckedFile] = {}
    for f in files:
        name = f.name
        if name is None or f.document is None:
            continue
        if name in first:
            other = first[name]
            assert other.document is not None
            theirs = other.document.mark(("metadata", "name"))
            mark = f.document.mark(("metadata", "name"))
            f.diagnostics.append(
                error(
                    f.candidate.display,
                    mark.line,
                    mark.column,
                    "duplicate-name",
                    f"workspace {name!r} is already declared in "
                    f"{other.candidate.display}:{theirs.line}:{theirs.column}",
                    "a workspace name is its identity: rename one, or remove the copy",
                )
            )
        else:
            first[name] = f


# --- desired state ------------------------------------------------------------------


@dataclass
class Loaded:
    """Desired state from files, with every problem found on the way."""

    desired: DesiredState
    diagnostics: list[Diagnostic]

    @property
    def ok(self) -> bool:
        return not any(d.severity is Severity.ERROR for d in self.diagnostics)


def load_desired(paths: Sequence[str], *, identities: Identities | None = None) -> Loaded:
    """Validate, decrypt and build the desired state of every workspace under ``paths``.

    Files that fail validation or decryption contribute a diagnostic and no workspace;
    callers must refuse to plan when :attr:`Loaded.ok` is false, or a broken file would
    look like a deleted workspace.
    """
    validation = validate_paths(paths)
    diagnostics = list(validation.diagnostics)
    workspaces: dict[str, Workspace] = {}
    sources: dict[str, SourceFile] = {}
    for f in validation.files:
        if not f.ok or f.document is None:
            continue
        display = f.candidate.display
        value = f.document.value
        if rules.has_sops_metadata(value):
            try:
                data = _decrypt(f, identities)
            except SopsError as exc:
                # The sops module names the file first; the diagnostic already does.
                message = exc.message.removeprefix(f"{f.candidate.real}: ")
                diagnostics.append(error(display, 1, 1, _sops_rule(exc), message, exc.hint))
                continue
            if not all(rules.is_secret_path(p) for p in rules.encrypted_paths(value)):
                # Values that were encrypted could not be checked before; check them now.
                recheck = YamlDocument(
                    _with_placeholders(data, value), f.document.value_marks, f.document.key_marks
                )
                late = [
                    d
                    for d in _document_diagnostics(display, recheck)
                    if d.severity is Severity.ERROR
                ]
                if late:
                    diagnostics.extend(late)
                    continue
        else:
            data = value
        workspace = workspace_from_document(data)
        if workspace.name in workspaces:  # only possible when names were encrypted
            diagnostics.append(
                error(
                    display,
                    1,
                    1,
                    "duplicate-name",
                    f"workspace {workspace.name!r} is already declared in "
                    f"{sources[workspace.name].path}",
                )
            )
            continue
        workspaces[workspace.name] = workspace
        sources[workspace.name] = SourceFile(display, hashlib.sha256(f.content).hexdigest())
    diagnostics.sort(key=lambda d: (d.path, d.line, d.column, d.rule))
    return Loaded(DesiredState(workspaces, sources), diagnostics)


def _decrypt(f: CheckedFile, identities: Identities | None) -> dict[str, Any]:
    from byokctl.sops import decrypt_file  # noqa: PLC0415 - validate must not need sops

    data: dict[str, Any] = decrypt_file(
        f.candidate.real, identities=identities, content=f.content
    ).data
    return data


@cache
def _sops_rules() -> Mapping[type[SopsError], str]:
    from byokctl import errors  # noqa: PLC0415

    return {
        errors.NotSopsFileError: "sops-not-sops-file",
        errors.NoIdentityError: "sops-no-identity",
        errors.IdentityMismatchError: "sops-wrong-identity",
        errors.MacMismatchError: "sops-mac-mismatch",
        errors.DecryptionError: "sops-decrypt-failed",
        errors.SopsBinaryError: "sops-binary",
    }


def _sops_rule(exc: SopsError) -> str:
    for cls, rule in _sops_rules().items():
        if isinstance(exc, cls):
            return rule
    return "sops-error"


def _with_placeholders(data: Mapping[str, Any], encrypted: Mapping[str, Any]) -> dict[str, Any]:
    """The decrypted document with secrets put back as their ciphertext, for re-checking."""
    out = dict(data)
    out["sops"] = encrypted.get("sops")
    spec = dict(out.get("spec") or {})
    providers = dict(spec.get("providers") or {})
    enc_providers = encrypted["spec"]["providers"]
    for name, config in providers.items():
        restored = dict(config)
        for field_name in SECRET_FIELDS:
            if field_name in restored:
                restored[field_name] = enc_providers[name][field_name]
        providers[name] = restored
    spec["providers"] = providers
    out["spec"] = spec
    return out


def workspace_from_document(data: Mapping[str, Any]) -> Workspace:
    """Build a Workspace from a valid, decrypted document."""
    metadata = data["metadata"]
    spec = data["spec"]
    providers: dict[str, ProviderConfig] = {}
    for provider_id, config in (spec.get("providers") or {}).items():
        provider = PROVIDERS[provider_id]
        providers[provider_id] = ProviderConfig(
            provider=provider_id,
            model=str(config["model"]),
            settings={k: str(config[k]) for k in provider.settings if k in config},
            secrets={k: Secret(str(config[k])) for k in provider.secret_fields if k in config},
        )
    return Workspace(
        name=metadata["name"],
        notify=tuple(metadata.get("notify") or ()),
        enabled=spec.get("enabled"),
        providers=providers,
    )
