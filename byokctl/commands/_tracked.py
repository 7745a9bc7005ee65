"""A master key or a store committed to git is a leak waiting to be pushed: warn about it.

``validate`` and ``plan`` ask git which of these files it tracks in the repository around
the working directory: anything under a ``.byok/`` directory (the local store and its
auto-created master key), any ``master.key``, and the files ``BYOK_MASTER_KEY_FILE``,
``BYOK_MASTER_KEY_NEXT_FILE`` and a ``sqlite:///`` ``BYOK_STORE`` name. Without git, or
outside a repository, there is nothing to say. This never fails a command.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from byokctl.config.diagnostics import Diagnostic, warning

_PATTERNS = (":(top,glob)**/.byok/**", ":(top,glob)**/master.key")
_KEY_ENV = ("BYOK_MASTER_KEY_FILE", "BYOK_MASTER_KEY_NEXT_FILE")


def _git(*args: str) -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        proc = subprocess.run([git, *args], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def _named_files(env: Mapping[str, str], top: Path) -> list[str]:
    named = [env[name] for name in _KEY_ENV if env.get(name)]
    store = env.get("BYOK_STORE", "")
    if store.startswith("sqlite:///"):
        named.append(store.removeprefix("sqlite:///").partition("?")[0])
    specs = []
    for file in named:
        path = Path(file).absolute()
        if path.is_relative_to(top):
            specs.append(f":(top,literal){path.relative_to(top).as_posix()}")
    return specs


def tracked_secret_files(env: Mapping[str, str] = os.environ) -> list[Diagnostic]:
    """A warning for every master key or store file that git tracks here."""
    top = _git("rev-parse", "--show-toplevel")
    if not top:
        return []
    listed = _git("ls-files", "-z", "--", *_PATTERNS, *_named_files(env, Path(top.strip())))
    found = []
    for path in sorted(set(filter(None, (listed or "").split("\0")))):
        if path.endswith(".key"):
            found.append(
                warning(
                    path,
                    1,
                    1,
                    "master-key-in-git",
                    "this master key is tracked by git: whoever can read the repository can "
                    "decrypt every API key in the store",
                    f"git rm --cached {path}, add it to .gitignore, and rotate the master key "
                    "(byokctl store rotate-key); treat the store's API keys as exposed",
                )
            )
        else:
            found.append(
                warning(
                    path,
                    1,
                    1,
                    "store-in-git",
                    "this store file (or a file beside it in .byok/) is tracked by git",
                    f"git rm --cached {path} and add it to .gitignore: the store is live "
                    "state, not configuration (share it through PostgreSQL instead)",
                )
            )
    return found
