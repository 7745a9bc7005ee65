"""Age identities, found where sops finds them.

sops (``age/keysource.go``) reads *every* one of these that is set and pools the keys:
``SOPS_AGE_KEY`` (keys in the variable), ``SOPS_AGE_KEY_FILE`` (a keys file),
``SOPS_AGE_KEY_CMD`` (a command that prints keys), and the keys file in the user config
directory (``$XDG_CONFIG_HOME/sops/age/keys.txt``, else ``~/.config/sops/age/keys.txt``).
It also tries SSH keys (``SOPS_AGE_SSH_PRIVATE_KEY_FILE``, ``~/.ssh/id_ed25519``,
``~/.ssh/id_rsa``); those, age plugin identities and passphrase-protected key files are
not read here: their presence only tells the decryptor to let the sops binary try.

The keys stay in memory; nothing here writes them anywhere.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pyrage  # type: ignore[import-untyped]

_SECRET_KEY_PREFIX = "AGE-SECRET-KEY-1"  # noqa: S105 - the key format's prefix, not a key
_PLUGIN_KEY_PREFIX = "AGE-PLUGIN-"


@dataclass(frozen=True)
class AgeIdentity:
    """One X25519 identity and where it came from. ``repr`` never shows the key."""

    identity: pyrage.x25519.Identity
    recipient: str
    source: str

    def __repr__(self) -> str:
        return f"AgeIdentity(recipient={self.recipient!r}, source={self.source!r})"


@dataclass(frozen=True)
class _Loaded:
    identities: tuple[AgeIdentity, ...]
    looked_in: tuple[str, ...]
    # Sources that hold keys only the sops binary can use (SSH keys, plugins, encrypted
    # key files). When native decryption finds no matching key, these make it worth
    # asking the binary before reporting a mismatch.
    binary_only_sources: tuple[str, ...]
    problems: tuple[str, ...]


class Identities:
    """The age identities available to decrypt, loaded once on first use.

    Loading is deferred so that commands which never decrypt (``validate``) never run
    ``SOPS_AGE_KEY_CMD`` nor fail for want of a key. The command runs at most once per
    object; the object is safe to share between threads.
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = dict(env)
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None

    @property
    def env(self) -> Mapping[str, str]:
        """The environment the identities are looked up in (also given to the sops binary)."""
        return self._env

    def _get(self) -> _Loaded:
        with self._lock:
            if self._loaded is None:
                self._loaded = _load(self._env)
            return self._loaded

    @property
    def identities(self) -> tuple[AgeIdentity, ...]:
        """The X25519 identities found (loads them on first access)."""
        return self._get().identities

    @property
    def looked_in(self) -> tuple[str, ...]:
        """Every place searched, in sops's order, for error messages."""
        return self._get().looked_in

    @property
    def binary_only_sources(self) -> tuple[str, ...]:
        """Places holding keys that only the sops binary can use."""
        return self._get().binary_only_sources

    @property
    def problems(self) -> tuple[str, ...]:
        """Why some places could not be read (never contains key material)."""
        return self._get().problems

    def describe_search(self) -> str:
        """A sentence fragment saying where keys were looked for and what went wrong."""
        text = "looked in " + ", ".join(self.looked_in)
        if self.problems:
            text += "; problems: " + "; ".join(self.problems)
        return text

    def __repr__(self) -> str:
        if self._loaded is None:
            return "Identities(<not loaded>)"
        sources = sorted({i.source for i in self._loaded.identities})
        return f"Identities({len(self._loaded.identities)} key(s) from {sources})"


def load_identities(env: Mapping[str, str] | None = None) -> Identities:
    """Return the age identities sops would use, read lazily from ``env`` (default: os.environ).

    Nothing is read until a decryption needs a key; a missing key then raises
    :class:`~byokctl.errors.NoIdentityError` saying where it looked.
    """
    return Identities(os.environ if env is None else env)


def _user_config_dir(env: Mapping[str, str]) -> Path | None:
    # Go's os.UserConfigDir: $XDG_CONFIG_HOME if set and absolute, else $HOME/.config
    # (on macOS sops also honours XDG_CONFIG_HOME first, which this matches).
    xdg = env.get("XDG_CONFIG_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg)
    home = env.get("HOME", "")
    if home:
        return Path(home) / ".config"
    return None


def _parse_keys(text: str, source: str, out: list[AgeIdentity]) -> tuple[bool, str | None]:
    """Parse an age keys file. Return (holds keys only the binary can use, problem)."""
    binary_only = False
    if text.lstrip().startswith(("-----BEGIN AGE ENCRYPTED FILE-----", "age-encryption.org/")):
        # A passphrase-protected keys file: sops asks for the passphrase itself.
        return True, None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(_PLUGIN_KEY_PREFIX):
            binary_only = True
            continue
        if not line.startswith(_SECRET_KEY_PREFIX):
            # Never echo the line: it may be a mangled key.
            return binary_only, f"{source}: line {number} is not an age secret key"
        try:
            identity = pyrage.x25519.Identity.from_str(line)
        except pyrage.IdentityError:
            return binary_only, f"{source}: line {number} is not a valid age secret key"
        out.append(AgeIdentity(identity, str(identity.to_public()), source))
    return binary_only, None


def _load(env: Mapping[str, str]) -> _Loaded:
    found: list[AgeIdentity] = []
    looked_in: list[str] = []
    binary_only: list[str] = []
    problems: list[str] = []

    def take(text: str, source: str) -> None:
        only_binary, problem = _parse_keys(text, source, found)
        if only_binary:
            binary_only.append(source)
        if problem:
            problems.append(problem)

    ssh_file = env.get("SOPS_AGE_SSH_PRIVATE_KEY_FILE")
    if ssh_file:
        binary_only.append("SOPS_AGE_SSH_PRIVATE_KEY_FILE")
    home = env.get("HOME", "")
    if home:
        for name in ("id_ed25519", "id_rsa"):
            if (Path(home) / ".ssh" / name).is_file():
                binary_only.append(str(Path(home) / ".ssh" / name))

    looked_in.append("SOPS_AGE_KEY")
    if "SOPS_AGE_KEY" in env:
        take(env["SOPS_AGE_KEY"], "SOPS_AGE_KEY")

    looked_in.append("SOPS_AGE_KEY_FILE")
    if "SOPS_AGE_KEY_FILE" in env:
        key_file = env["SOPS_AGE_KEY_FILE"]
        looked_in[-1] = f"SOPS_AGE_KEY_FILE ({key_file})"
        try:
            take(Path(key_file).read_text(encoding="utf-8"), f"SOPS_AGE_KEY_FILE ({key_file})")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"cannot read SOPS_AGE_KEY_FILE {key_file}: {_reason(exc)}")

    looked_in.append("SOPS_AGE_KEY_CMD")
    if "SOPS_AGE_KEY_CMD" in env:
        text, problem = _run_key_command(env["SOPS_AGE_KEY_CMD"], env)
        if problem:
            problems.append(problem)
        else:
            take(text, "SOPS_AGE_KEY_CMD")

    config_dir = _user_config_dir(env)
    if config_dir is not None:
        default_file = config_dir / "sops" / "age" / "keys.txt"
        looked_in.append(str(default_file))
        try:
            take(default_file.read_text(encoding="utf-8"), str(default_file))
        except FileNotFoundError:
            pass
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"cannot read {default_file}: {_reason(exc)}")

    return _Loaded(tuple(found), tuple(looked_in), tuple(binary_only), tuple(problems))


def _run_key_command(command: str, env: Mapping[str, str]) -> tuple[str, str | None]:
    try:
        args = shlex.split(command)
    except ValueError:
        return "", "SOPS_AGE_KEY_CMD could not be parsed as a command line"
    if not args:
        return "", "SOPS_AGE_KEY_CMD is empty"
    try:
        completed = subprocess.run(
            args,
            env=dict(env),
            capture_output=True,
            check=False,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "", f"SOPS_AGE_KEY_CMD ({args[0]}) could not run: {_reason(exc)}"
    if completed.returncode != 0:
        # stderr is not passed on: a key command may print anything, including keys.
        return "", f"SOPS_AGE_KEY_CMD ({args[0]}) exited with status {completed.returncode}"
    try:
        return completed.stdout.decode("utf-8"), None
    except UnicodeDecodeError:
        return "", f"SOPS_AGE_KEY_CMD ({args[0]}) printed something that is not UTF-8 text"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, subprocess.TimeoutExpired):
        return "timed out"
    return type(exc).__name__
