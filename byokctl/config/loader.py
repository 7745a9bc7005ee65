"""Files → checked documents → desired state.

``validate_paths`` needs no key: structure and encryption status are visible in a SOPS
file. ``load_desired`` additionally decrypts and builds :class:`~byokctl.model.Workspace`
values; every file's problems are reported, not only the first file's.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import stat
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from byokctl.config import rules, schema
from byokctl.config.diagnostics import Diagnostic, Severity, error
from byokctl.config.discover import DEFAULT_PATH, Candidate, discover
from byokctl.config.documents import sops_rule, with_placeholders, workspace_from_document
from byokctl.config.yamlsource import Mark, YamlDocument, YamlProblem, parse
from byokctl.errors import SopsError
from byokctl.model import DesiredState, SourceFile, Workspace

if TYPE_CHECKING:
    from byokctl.sops import Identities

#: Workspace files are a few KB; anything this large is a mistake or an attack.
MAX_FILE_BYTES: Final = 1024 * 1024


@dataclass
class CheckedFile:
    """One workspace file after validation: what the checks found, not the file itself.

    Only what a plan needs outlives the check (the diagnostics, the plaintext name and
    where it is written, the hash of the bytes); the bytes and the parsed document do
    not, so a run over thousands of files holds one file's worth at a time.
    """

    candidate: Candidate
    diagnostics: list[Diagnostic] = field(default_factory=list)
    #: Whether the file parsed as a YAML mapping.
    parsed: bool = False
    #: ``metadata.name`` if it is a plain (unencrypted) string, and where it is written.
    name: str | None = None
    name_mark: Mark = field(default_factory=lambda: Mark(1, 1))
    #: SHA-256 of the bytes that were checked (and decrypted), hex.
    sha256: str = ""

    @property
    def ok(self) -> bool:
        return self.parsed and not any(d.severity is Severity.ERROR for d in self.diagnostics)


@dataclass
class Validation:
    """The result of validating a set of paths.

    ``workers`` is how many processes checked the files (1: this one).
    """

    files: list[CheckedFile]
    diagnostics: list[Diagnostic]
    workers: int = 1

    @property
    def ok(self) -> bool:
        return not any(d.severity is Severity.ERROR for d in self.diagnostics)


def validate_paths(paths: Sequence[str], *, jobs: int | None = None) -> Validation:
    """Find, parse and check every workspace file under ``paths``. Never raises for bad input.

    ``jobs`` caps the processes that check files (default: one per CPU for a large run,
    this process alone for a small one; see :func:`workers_for`).
    """
    candidates, diagnostics = _candidates(paths)
    files: list[CheckedFile] = []
    names = _FirstNames()
    workers = workers_for(len(candidates), jobs)
    for outcome in _examine_all(candidates, workers, decrypt=None):
        names.check(outcome.checked)
        files.append(outcome.checked)
        diagnostics.extend(outcome.checked.diagnostics)
    diagnostics.sort(key=_order)
    return Validation(files, diagnostics, workers)


def _order(d: Diagnostic) -> tuple[str, int, int, str]:
    return (d.path, d.line, d.column, d.rule)


def _candidates(paths: Sequence[str]) -> tuple[list[Candidate], list[Diagnostic]]:
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
    return candidates, diagnostics


#: Below this many files one process is quicker than starting others.
PARALLEL_FROM: Final = 100


def workers_for(files: int, jobs: int | None = None) -> int:
    """How many processes check ``files`` files: at most ``jobs`` (default: the CPUs).

    More than one only where a worker can be forked safely: on Linux, from a process
    that runs no other thread (a fork copies only the calling thread, so a lock another
    thread held, in a connection pool say, would stay held in the child forever).
    """
    if jobs is None:
        if files < PARALLEL_FROM:
            return 1
        jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    wanted = max(1, min(jobs, files))
    if wanted == 1 or sys.platform != "linux" or threading.active_count() > 1:
        return 1
    return wanted


@dataclass
class _Outcome:
    """One file, checked, and decrypted if asked: what a worker sends back."""

    checked: CheckedFile
    #: Decryption and late-check problems; they count only if the file is kept.
    load_diagnostics: list[Diagnostic] = field(default_factory=list)
    #: The decrypted document (plaintext keys), for the desired state only.
    data: dict[str, Any] | None = field(default=None, repr=False)

    def to_wire(self) -> tuple[Any, ...]:
        """The parts the parent lacks; it has the candidate (sending it back costs time)."""
        c = self.checked
        return (c.diagnostics, c.parsed, c.name, c.name_mark, c.sha256,
                self.load_diagnostics, self.data)  # fmt: skip

    @classmethod
    def from_wire(cls, candidate: Candidate, wire: tuple[Any, ...]) -> _Outcome:
        diagnostics, parsed, name, name_mark, sha256, load_diagnostics, data = wire
        checked = CheckedFile(candidate, diagnostics, parsed, name, name_mark, sha256)
        return cls(checked, load_diagnostics, data)


class _Decrypt:
    """Marks a run that decrypts, with the identities to use."""

    def __init__(self, identities: Identities) -> None:
        self.identities = identities


# What a forked worker checks and decrypts with, inherited at the fork rather than sent:
# age identities cannot be pickled (and must not be: SOPS_AGE_KEY_CMD ran once, in the
# parent), and a task is then just an index into the candidates.
_worker_job: tuple[Sequence[Candidate], _Decrypt | None] = ((), None)


def _worker_init(candidates: Sequence[Candidate], decrypt: _Decrypt | None) -> None:
    global _worker_job  # noqa: PLW0603 - one per worker process, set once at its start
    _worker_job = (candidates, decrypt)


def _worker_examine(index: int) -> tuple[Any, ...]:
    candidates, decrypt = _worker_job
    return _examine(candidates[index], decrypt).to_wire()


def _examine_all(
    candidates: Sequence[Candidate], workers: int, *, decrypt: _Decrypt | None
) -> Iterator[_Outcome]:
    """Every candidate checked (and decrypted), in the candidates' order."""
    if workers <= 1:
        for candidate in candidates:
            yield _examine(candidate, decrypt)
        return
    if decrypt is not None:
        # Load the keys now, once: a worker that loaded them would run SOPS_AGE_KEY_CMD again.
        decrypt.identities.identities  # noqa: B018 - the property loads them
    # An executor rather than multiprocessing.Pool: a worker that dies (the OOM killer)
    # breaks it with an error, where a Pool would wait for the lost task forever. With
    # "fork" it starts every worker before its own management thread.
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_worker_init,
        initargs=(candidates, decrypt),
    )
    try:
        # Small chunks keep the order cheap to restore and each worker's memory flat.
        chunk = max(1, min(64, len(candidates) // (workers * 8)))
        wires = pool.map(_worker_examine, range(len(candidates)), chunksize=chunk)
        for candidate, wire in zip(candidates, wires, strict=True):
            yield _Outcome.from_wire(candidate, wire)
    finally:
        # On Ctrl-C or an error, drop the files not yet started instead of checking them all.
        pool.shutdown(wait=True, cancel_futures=True)


def _examine(candidate: Candidate, decrypt: _Decrypt | None) -> _Outcome:
    checked, content, document = check_file(candidate)
    outcome = _Outcome(checked)
    if decrypt is None or document is None or not checked.ok:
        return outcome
    display = candidate.display
    value = document.value
    if not rules.has_sops_metadata(value):
        outcome.data = value
        return outcome
    try:
        data = _decrypt(candidate, content, decrypt.identities)
    except SopsError as exc:
        # The sops module names the file first; the diagnostic already does.
        message = exc.message.removeprefix(f"{candidate.real}: ")
        outcome.load_diagnostics.append(error(display, 1, 1, sops_rule(exc), message, exc.hint))
        return outcome
    if not all(rules.is_secret_path(p) for p in rules.encrypted_paths(value)):
        # Values that were encrypted could not be checked before; check them now.
        recheck = YamlDocument(
            with_placeholders(data, value), document.value_marks, document.key_marks
        )
        late = [d for d in _document_diagnostics(display, recheck) if d.severity is Severity.ERROR]
        if late:
            outcome.load_diagnostics.extend(late)
            return outcome
    outcome.data = data
    return outcome


def check_file(candidate: Candidate) -> tuple[CheckedFile, bytes, YamlDocument | None]:
    """Read and check one file: YAML, schema, and the rules beyond the schema.

    Returns the findings with the bytes read and the parsed document (``None`` when
    the file did not parse), for a caller that goes on to decrypt them.
    """
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
                return checked, b"", None
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
                return checked, b"", None
            # Up to MAX_FILE_BYTES + 1 bytes, as the size said; read(n) would first make an
            # n-byte buffer, a megabyte per file. More only if the file grew since fstat.
            content = f.read(size + 1)
            if len(content) > size:
                content += f.read(MAX_FILE_BYTES + 1 - len(content))
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
        return checked, b"", None
    checked.sha256 = hashlib.sha256(content).hexdigest()
    try:
        document = parse(content)
    except YamlProblem as p:
        checked.diagnostics.append(
            error(display, p.mark.line, p.mark.column, p.rule, p.message, p.hint)
        )
        return checked, content, None
    checked.parsed = True
    meta = document.value.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    if isinstance(name, str) and not rules.is_encrypted(name):
        checked.name = name
        checked.name_mark = document.mark(("metadata", "name"))
    checked.diagnostics.extend(_document_diagnostics(display, document))
    return checked, content, document


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


class _FirstNames:
    """The first file to declare each plain workspace name; later ones get an error."""

    def __init__(self) -> None:
        self._first: dict[str, CheckedFile] = {}

    def check(self, f: CheckedFile) -> None:
        name = f.name
        if name is None:
            return
        other = self._first.get(name)
        if other is None:
            self._first[name] = f
            return
        theirs, mark = other.name_mark, f.name_mark
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


# --- desired state ------------------------------------------------------------------


@dataclass
class Loaded:
    """Desired state from files, with every problem found on the way.

    ``workers`` is how many processes checked and decrypted the files (1: this one).
    """

    desired: DesiredState
    diagnostics: list[Diagnostic]
    workers: int = 1

    @property
    def ok(self) -> bool:
        return not any(d.severity is Severity.ERROR for d in self.diagnostics)


def load_desired(
    paths: Sequence[str], *, identities: Identities | None = None, jobs: int | None = None
) -> Loaded:
    """Validate, decrypt and build the desired state of every workspace under ``paths``.

    Files that fail validation or decryption contribute a diagnostic and no workspace;
    callers must refuse to plan when :attr:`Loaded.ok` is false, or a broken file would
    look like a deleted workspace. ``identities`` defaults to the environment's (loaded
    once for the run); ``jobs`` is as for :func:`validate_paths`. Large runs check and
    decrypt across the CPUs; the result and its order are the same either way.
    """
    if identities is None:
        from byokctl.sops import load_identities  # noqa: PLC0415 - validate must not need sops

        identities = load_identities()
    candidates, checked_diagnostics = _candidates(paths)
    late: list[Diagnostic] = []
    workspaces: dict[str, Workspace] = {}
    sources: dict[str, SourceFile] = {}
    names = _FirstNames()
    workers = workers_for(len(candidates), jobs)
    for outcome in _examine_all(candidates, workers, decrypt=_Decrypt(identities)):
        f = outcome.checked
        names.check(f)
        checked_diagnostics.extend(f.diagnostics)
        if not f.ok:
            continue
        late.extend(outcome.load_diagnostics)
        if outcome.data is None:
            continue
        display = f.candidate.display
        workspace = workspace_from_document(outcome.data)
        if workspace.name in workspaces:  # only possible when names were encrypted
            late.append(
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
        sources[workspace.name] = SourceFile(display, f.sha256)
    # As validation orders its findings, then the later ones (a stable sort keeps ties so).
    checked_diagnostics.sort(key=_order)
    diagnostics = [*checked_diagnostics, *late]
    diagnostics.sort(key=_order)
    return Loaded(DesiredState(workspaces, sources), diagnostics, workers)


def _decrypt(candidate: Candidate, content: bytes, identities: Identities) -> dict[str, Any]:
    from byokctl.sops import decrypt_file  # noqa: PLC0415 - validate must not need sops

    data: dict[str, Any] = decrypt_file(candidate.real, identities=identities, content=content).data
    return data
