"""``byokctl import``: live workspaces → SOPS-encrypted workspace files.

The plaintext document goes to ``sops`` over a pipe and only the encrypted result is
written, so an API key never touches the disk in clear. After an import, ``byokctl
plan`` shows each imported workspace as adopted with no other change.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml

from byokctl.commands._inputs import (
    open_live_store,
    provider_documents,
    refuse_if_unreadable,
    store_url,
    warn_unreadable,
)
from byokctl.config.schema import load_schema
from byokctl.errors import ByokError, StoreError
from byokctl.model import Secret, Workspace
from byokctl.sops import encrypt_to_bytes

#: The schema's rule for metadata.name (the schema is the one source of it).
SLUG = re.compile(load_schema()["$defs"]["slug"]["pattern"])

HEADER = "# Imported from the live store by `byokctl import`; api_key values are SOPS-encrypted.\n"


def workspace_document(workspace: Workspace) -> dict[str, Any]:
    """The workspace file's content, plaintext keys included (for sops to encrypt)."""
    metadata: dict[str, Any] = {"name": workspace.name}
    if workspace.notify:
        metadata["notify"] = list(workspace.notify)
    spec: dict[str, Any] = {}
    if workspace.enabled:
        spec["enabled"] = workspace.enabled
    if not workspace.fallback.is_default:
        spec["fallback"] = workspace.fallback.fields()
    spec["providers"] = provider_documents(workspace, Secret.reveal)
    return {"apiVersion": "byok/v1", "kind": "Workspace", "metadata": metadata, "spec": spec}


def import_workspaces(
    names: Sequence[str], *, store: str | None, out_dir: Path, force: bool, out: TextIO, err: TextIO
) -> int:
    """Write ``out_dir/NAME.yaml`` for each named live workspace (default: every unmanaged one)."""
    with open_live_store(store_url(store), err=err) as live_store:
        state = live_store.read_state()
    if names:
        refuse_if_unreadable(state, names)
        missing = [n for n in names if n not in state.workspaces]
        if missing:
            raise StoreError(
                f"no such workspace in the store: {', '.join(missing)}",
                hint="`byokctl state list` shows the workspaces it holds",
            )
        chosen = [state.workspaces[n].workspace for n in names]
    else:
        warn_unreadable(state, err)
        chosen = [live.workspace for live in state.workspaces.values() if not live.managed]
        if not chosen:
            print("Nothing to import: every live workspace is managed already.", file=out)
            return 0
    bad = [ws.name for ws in chosen if not SLUG.fullmatch(ws.name)]
    if bad:
        # A name written outside byokctl (by the settings page) becomes a file name here:
        # it must not be able to point outside --out-dir.
        raise ByokError(
            f"cannot import {', '.join(map(repr, bad))}: not a valid workspace name "
            "(lower-case letters, digits and '-')",
            hint="rename the workspace in the application first",
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = {ws.name: out_dir / f"{ws.name}.yaml" for ws in chosen}
    existing = [str(p) for p in targets.values() if p.exists()]
    if existing and not force:
        raise ByokError(
            f"refusing to overwrite {', '.join(existing)}",
            hint="move them away, choose another --out-dir, or pass --force",
        )
    # Encrypt everything first: a missing creation rule fails before any file is written.
    encrypted = {
        name: encrypt_to_bytes(
            yaml.safe_dump(workspace_document(ws), sort_keys=False).encode(),
            filename=targets[name],
        )
        for name, ws in ((ws.name, ws) for ws in chosen)
    }
    for name, content in encrypted.items():
        _write_atomically(targets[name], HEADER.encode() + content)
        print(f"wrote {targets[name]}", file=out)
    print(
        f"Imported {len(encrypted)} workspace(s). Review and commit the files; `byokctl plan` "
        "then shows them adopted with no other change.",
        file=out,
    )
    return 0


def _write_atomically(path: Path, content: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
