"""The directories byokctl creates for a local store or master key: private, and out of git."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Final

GITIGNORE_TEXT: Final = (
    "# Written by byokctl: this directory holds a master key and/or a store with encrypted\n"
    "# API keys. Neither belongs in git.\n*\n"
)


def make_private_dir(path: Path) -> None:
    """Create ``path`` (0700) and, when byokctl created it, a ``.gitignore`` ignoring all of it.

    A directory that already existed is left as it is: it belongs to someone else.
    """
    if path.exists():
        return
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileExistsError):  # another process wrote it first
        fd = os.open(path / ".gitignore", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(GITIGNORE_TEXT)
