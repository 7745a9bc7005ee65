"""SOPS: native age decryption with the sops binary as the authority.

A plan over thousands of workspace files must not start thousands of processes, so
files encrypted to age recipients are decrypted in-process (pyrage unwraps the data key,
AES-256-GCM opens the values) and their MAC is always verified. The ``sops`` binary
decides whenever the native path cannot give exactly sops's answer: other key types,
Shamir key groups, comment rules, YAML features read differently by Go and Python, and
every native MAC mismatch. byokctl never writes the SOPS format: :func:`encrypt_file`
calls ``sops encrypt``.

Errors (all :class:`~byokctl.errors.SopsError`) name the file and never hold a
decrypted value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from byokctl.errors import SopsError
from byokctl.sops import _binary, _native
from byokctl.sops._binary import find_sops_binary
from byokctl.sops._identities import AgeIdentity, Identities, load_identities
from byokctl.sopsformat import is_sops_document, recipients_of

__all__ = [
    "AgeIdentity",
    "DecryptResult",
    "Identities",
    "decrypt_file",
    "encrypt_file",
    "encrypt_to_bytes",
    "find_sops_binary",
    "is_sops_document",
    "load_identities",
]


@dataclass(frozen=True)
class DecryptResult:
    """A decrypted file. ``repr`` shows only how it was decrypted, never the values.

    ``data`` is the first (usually only) document without its ``sops`` key; ``documents``
    holds every document of a multi-document file. ``via`` says which path served it and
    ``fallback_reason`` why the native path deferred to the binary (``None`` if it did not).
    """

    data: dict[str, Any] = field(repr=False)
    via: Literal["native", "sops"]
    documents: tuple[dict[str, Any], ...] = field(repr=False, default=())
    fallback_reason: str | None = None


def decrypt_file(
    path: Path, *, identities: Identities | None = None, content: bytes | None = None
) -> DecryptResult:
    """Decrypt a SOPS YAML file, natively when possible, else with the sops binary.

    ``content`` is the file's bytes if the caller already read them (so that what is
    decrypted is exactly what was hashed); otherwise ``path`` is read. ``identities``
    defaults to :func:`load_identities` from the process environment; pass one object to
    many calls so ``SOPS_AGE_KEY_CMD`` runs once.

    Raises NotSopsFileError, NoIdentityError, IdentityMismatchError, MacMismatchError,
    DecryptionError or SopsBinaryError, each naming ``path``.
    """
    if content is None:
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise SopsError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if identities is None:
        identities = load_identities()
    try:
        documents = _native.decrypt(path, content, identities)
    except _native.NeedsBinary as deferred:
        documents = _binary.decrypt(
            path, content, identities.env, _recipients(content), deferred.reason
        )
        return DecryptResult(documents[0], "sops", tuple(documents), deferred.reason)
    return DecryptResult(documents[0], "native", tuple(documents))


def _recipients(content: bytes) -> list[str]:
    """The file's recipients for error messages, read without trusting the file's shape."""
    import yaml  # noqa: PLC0415 - only on the rare binary path

    try:
        first = next(yaml.safe_load_all(content), None)
    except yaml.YAMLError:
        return []
    if isinstance(first, Mapping) and isinstance(first.get("sops"), Mapping):
        return recipients_of(first["sops"])
    return []


def encrypt_file(
    path: Path, *, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> None:
    """Encrypt ``path`` in place with ``sops encrypt -i``, following the repo's ``.sops.yaml``.

    sops looks for ``.sops.yaml`` from its working directory upward; that is ``cwd`` if
    given, else the file's own directory. ``env`` defaults to the process environment.
    Raises SopsError / SopsBinaryError naming the file.
    """
    _binary.encrypt_in_place(path, cwd=cwd, env=env)


def encrypt_to_bytes(
    content: bytes, *, filename: Path, env: Mapping[str, str] | None = None
) -> bytes:
    """Encrypt a YAML document for ``filename`` and return the SOPS file's bytes.

    The plaintext goes to sops over a pipe and is never written to disk; sops chooses the
    creation rule for ``filename`` from the ``.sops.yaml`` found from its directory up.
    Raises SopsError / SopsBinaryError naming ``filename``.
    """
    return _binary.encrypt_stdin(content, filename=filename, env=env)
