"""Which files a PATH argument names: files as given, directories searched recursively."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from byokctl.config.diagnostics import Diagnostic, error

DEFAULT_PATH: Final = "workspaces"
SUFFIXES: Final = (".yaml", ".yml")


@dataclass(frozen=True)
class Candidate:
    """A workspace file to read: how to show it, and where it really is."""

    display: str
    real: Path


def _display(path: Path) -> str:
    return os.path.normpath(path).replace(os.sep, "/")


def discover(paths: Sequence[str]) -> tuple[list[Candidate], list[Diagnostic]]:
    """Expand PATH arguments (default ``./workspaces``) into workspace files.

    Directories are searched recursively for ``*.yaml``/``*.yml``, skipping hidden files
    and folders (``.sops.yaml``, ``.git``). A symlink inside a directory that leads out of
    it is an error: a repository must not make byokctl read files elsewhere. So are a
    symlink loop, and anything that is not a regular file (a FIFO would block the read, a
    device such as ``/dev/zero`` never ends): each is a finding naming the path, never a crash.
    """
    found: list[Candidate] = []
    problems: list[Diagnostic] = []
    seen: set[Path] = set()

    def add(display: Path, real: Path) -> None:
        if real not in seen:
            seen.add(real)
            found.append(Candidate(_display(display), real))

    for arg in paths or [DEFAULT_PATH]:
        path = Path(arg)
        try:
            mode = path.stat().st_mode
            real = Path(os.path.realpath(path, strict=True))
        except OSError as exc:
            problems.append(_unusable(path, exc))
            continue
        if stat.S_ISREG(mode):
            add(path, real)
        elif stat.S_ISDIR(mode):
            _walk(path, real, add, problems)
        else:
            problems.append(_not_regular(path, mode))
    return found, problems


def _walk(
    path: Path, root: Path, add: Callable[[Path, Path], None], problems: list[Diagnostic]
) -> None:
    shown_root = _display(path)

    def unreadable(exc: OSError) -> None:
        problems.append(_unusable(Path(exc.filename or path), exc))

    for dirpath, dirnames, filenames in os.walk(path, onerror=unreadable):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for dirname in dirnames:
            sub = Path(dirpath, dirname)
            if sub.is_symlink():
                try:
                    target = Path(os.path.realpath(sub, strict=True))
                except OSError as exc:
                    problems.append(_unusable(sub, exc))
                    continue
                if not target.is_relative_to(root):
                    problems.append(_outside(sub, shown_root))
        # os.walk does not follow directory links, so every file here that is not itself a
        # link really is at realpath(dirpath)/filename: one realpath per directory, not
        # one per file (it is pure Python, several system calls each).
        try:
            real_dir: Path | None = Path(os.path.realpath(dirpath, strict=True))
        except OSError:
            real_dir = None
        for filename in sorted(filenames):
            if filename.startswith(".") or not filename.endswith(SUFFIXES):
                continue
            file = Path(dirpath, filename)
            try:
                info = os.lstat(file)
                if real_dir is not None and not stat.S_ISLNK(info.st_mode):
                    real, mode = real_dir / filename, info.st_mode
                else:
                    real = Path(os.path.realpath(file, strict=True))
                    mode = real.stat().st_mode
            except OSError as exc:
                problems.append(_unusable(file, exc))
                continue
            if not real.is_relative_to(root):
                problems.append(_outside(file, shown_root))
            elif stat.S_ISREG(mode):
                add(file, real)
            elif not stat.S_ISDIR(mode):  # a directory named *.yaml is walked as one
                problems.append(_not_regular(file, mode))


def _unusable(path: Path, exc: OSError) -> Diagnostic:
    """A path that cannot be followed or read, by its cause."""
    display = _display(path)
    if exc.errno == errno.ENOENT:
        if path.is_symlink():
            return error(
                display,
                1,
                1,
                "path-not-found",
                f"a symlink to {os.readlink(path)}, which does not exist",
                "fix or remove the link",
            )
        return error(
            display,
            1,
            1,
            "path-not-found",
            "no such file or directory",
            "give a workspace file or a directory of them (default: ./workspaces)",
        )
    if exc.errno == errno.ELOOP:
        return error(
            display,
            1,
            1,
            "symlink-loop",
            "a symlink loop: following its links leads back to itself",
            "remove the link, or point it at the real file",
        )
    return error(
        display,
        1,
        1,
        "file-unreadable",
        f"cannot read it: {exc.strerror or exc}",
        "check its permissions (byokctl needs read access, and execute on directories)",
    )


def _not_regular(path: Path, mode: int) -> Diagnostic:
    kinds = {
        stat.S_IFIFO: "a named pipe (FIFO)",
        stat.S_IFCHR: "a character device",
        stat.S_IFBLK: "a block device",
        stat.S_IFSOCK: "a socket",
    }
    kind = kinds.get(stat.S_IFMT(mode), "not a regular file")
    return error(
        _display(path),
        1,
        1,
        "not-a-regular-file",
        f"this is {kind}, not a workspace file",
        "give regular files (or directories of them)",
    )


def _outside(link: Path, root: str) -> Diagnostic:
    return error(
        _display(link),
        1,
        1,
        "symlink-outside-tree",
        f"a symlink that leads out of {root} (to {os.readlink(link)})",
        "copy the file into the repository, or remove the link",
    )
