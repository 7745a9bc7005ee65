"""``byokctl init [DIR]``: scaffold a config repository ready for GitHub.

It writes ``.sops.yaml`` (encrypting only ``api_key`` values to one age recipient), an
example workspace that needs no key, the three reference workflows, a
``.pre-commit-config.yaml`` and a ``.gitignore``. Without ``--age-recipient`` it creates
the age identity itself (pyrage; no ``age-keygen`` needed) in ``DIR/.byok/age.key``
(mode 0600, git-ignored) and says where it must go: the ``SOPS_AGE_KEY`` secret.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Final, TextIO

import pyrage  # type: ignore[import-untyped, unused-ignore]

from byokctl.errors import ByokError

#: Where a generated age identity goes, relative to DIR (``.byok/`` is git-ignored).
AGE_KEY_PATH: Final = ".byok/age.key"

WORKFLOWS: Final = ("byok-plan.yml", "byok-apply.yml", "byok-drift.yml")


def _template(*parts: str) -> str:
    resource = files("byokctl.scaffold")
    for part in parts:
        resource = resource / part
    return resource.read_text(encoding="utf-8")


def scaffold_files(recipient: str) -> dict[str, str]:
    """Every file ``init`` writes (path relative to DIR → content), except the age key."""
    found = {
        ".sops.yaml": _template("sops.yaml").replace("{recipient}", recipient),
        "workspaces/example.yaml": _template("example.yaml"),
        ".pre-commit-config.yaml": _template("pre-commit-config.yaml"),
        ".gitignore": _template("gitignore"),
    }
    for name in WORKFLOWS:
        found[f".github/workflows/{name}"] = _template("workflows", name)
    return found


def _check_recipient(text: str) -> str:
    try:
        pyrage.x25519.Recipient.from_str(text)
    except Exception as exc:  # pyrage raises its own RecipientError (not exported)
        raise ByokError(
            f"--age-recipient is not an age recipient: {text[:80]!r}",
            hint="give the public key (age1…) of the identity that CI will decrypt with",
        ) from exc
    return text


def init(
    directory: Path,
    *,
    age_recipient: str | None,
    force: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    """Scaffold ``directory``; refuse to overwrite any file unless ``force``."""
    identity = None
    if age_recipient is not None:
        recipient = _check_recipient(age_recipient.strip())
    else:
        identity = pyrage.x25519.Identity.generate()
        recipient = str(identity.to_public())
    planned: dict[str, str] = scaffold_files(recipient)
    if identity is not None:
        planned[AGE_KEY_PATH] = ""  # written separately, owner-only
    existing = sorted(p for p in planned if (directory / p).exists())
    if existing and not force:
        raise ByokError(
            f"refusing to overwrite {len(existing)} existing file(s) in {directory}: "
            + ", ".join(existing),
            hint="move them away, or pass --force to overwrite them",
        )
    for relative, content in planned.items():
        if relative != AGE_KEY_PATH:
            _write(directory / relative, content)
            print(f"wrote {directory / relative}", file=out)
    if identity is not None:
        key_path = directory / AGE_KEY_PATH
        _write_identity(key_path, identity, recipient)
        print(f"wrote {key_path}", file=out)
        print(
            f"byokctl: created an age identity in {key_path} (mode 0600, git-ignored; its "
            f"public key {recipient} is in .sops.yaml). Store its content as the repository "
            "secret SOPS_AGE_KEY (Settings → Secrets and variables → Actions), keep a copy "
            "somewhere safe, and never commit it: whoever has it can decrypt the API keys.",
            file=err,
        )
    print(_next_steps(directory), file=err)
    return 0


def _write(path: Path, content: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    except OSError as exc:
        raise ByokError(f"cannot write {path}: {exc.strerror}") from None


def _write_identity(path: Path, identity: object, recipient: str) -> None:
    created = datetime.now(UTC).replace(microsecond=0).isoformat()
    text = f"# created: {created}\n# public key: {recipient}\n{identity}\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.unlink(missing_ok=True)  # --force: a fresh file, so the mode below holds
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise ByokError(f"cannot write the age identity {path}: {exc.strerror}") from None


def _next_steps(directory: Path) -> str:
    return (
        f"byokctl: next: cd {directory} && byokctl validate; then add the repository "
        "secrets BYOK_STORE (postgresql://…, the shared store) and BYOK_MASTER_KEY, and an "
        "environment named production for byok-apply (docs/github.md)"
    )
