"""Which files a PATH argument names: files as given, directories searched recursively."""

from __future__ import annotations

import os
from collections.abc import Sequence
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
    it is an error: a repository must not make byokctl read files elsewhere.
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
        if path.is_file():
            add(path, path.resolve())
            continue
        if not path.is_dir():
            problems.append(
                error(
                    _display(path),
                    1,
                    1,
                    "path-not-found",
                    "no such file or directory",
                    "give a workspace file or a directory of them (default: ./workspaces)",
                )
            )
            continue
        root = path.resolve()
        shown_root = _display(path)
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for dirname in dirnames:
                sub = Path(dirpath, dirname)
                if sub.is_symlink() and not sub.resolve().is_relative_to(root):
                    problems.append(_outside(sub, shown_root))
            for filename in sorted(filenames):
                if filename.startswith(".") or not filename.endswith(SUFFIXES):
                    continue
                file = Path(dirpath, filename)
                real = file.resolve()
                if not real.is_relative_to(root):
                    problems.append(_outside(file, shown_root))
                elif real.is_file():
                    add(file, real)
    return found, problems


def _outside(link: Path, root: str) -> Diagnostic:
    return error(
        _display(link),
        1,
        1,
        "symlink-outside-tree",
        f"a symlink that leads out of {root} (to {os.readlink(link)})",
        "copy the file into the repository, or remove the link",
    )
