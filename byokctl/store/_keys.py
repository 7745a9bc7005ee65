"""The master key for encryption at rest, the keyring a store decrypts with, and loading.

Each secret field is encrypted with AES-256-GCM under a subkey derived (HKDF-SHA256) from
the master key, with a fresh 12-byte nonce and additional data that names the workspace,
provider and field. The ciphertext row records the *key id* of the master key that
wrote it; the id is a hash of a further derived value, so it identifies the key without
revealing anything about it.

Rotation without downtime works with a keyring: a process holds one *primary* key (used
to encrypt and to compute drift digests) and may accept older or newer keys for
decryption. The operator (1) gives every reader the new key as an extra key, (2) runs
``byokctl store rotate-key`` (one transaction: every ciphertext re-encrypted), (3) makes
the new key primary everywhere and drops the old one. Readers never see a half-rotated
store, and a reader that holds both keys keeps working before, during and after step 2.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import secrets
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from byokctl.errors import MasterKeyError

from ._localdir import make_private_dir

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
#: The file the local SQLite default keeps its auto-created master key in.
MASTER_KEY_FILE_NAME: Final = "master.key"

ENV_KEY: Final = "BYOK_MASTER_KEY"
ENV_KEY_FILE: Final = "BYOK_MASTER_KEY_FILE"
ENV_KEY_NEXT: Final = "BYOK_MASTER_KEY_NEXT"
ENV_KEY_NEXT_FILE: Final = "BYOK_MASTER_KEY_NEXT_FILE"


def _derive(key: bytes, info: bytes) -> bytes:
    # Separate subkeys per purpose: the raw master key never touches data directly.
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(key)


class MasterKey:
    """A 32-byte master key. Its value never appears in ``repr``; ``key_id`` names it."""

    __slots__ = ("_aead", "_digest_key", "_key", "key_id")

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise MasterKeyError(f"a master key must be {KEY_BYTES} bytes, got {len(key)}")
        self._key = key
        self._aead = AESGCM(_derive(key, b"byokctl secret encryption v1"))
        self._digest_key = _derive(key, b"byokctl drift digest v1")
        self.key_id = hashlib.sha256(_derive(key, b"byokctl master key id v1")).hexdigest()[:16]

    @classmethod
    def generate(cls) -> MasterKey:
        """A new random master key."""
        return cls(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def from_base64(cls, text: str, *, source: str) -> MasterKey:
        """Decode a base64 master key; ``source`` names where it came from, for errors."""
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise MasterKeyError(
                f"the master key in {source} is not valid base64",
                hint="generate one with: head -c 32 /dev/urandom | base64",
            ) from None
        if len(raw) != KEY_BYTES:
            raise MasterKeyError(
                f"the master key in {source} decodes to {len(raw)} bytes; it must be {KEY_BYTES}",
                hint="generate one with: head -c 32 /dev/urandom | base64",
            )
        return cls(raw)

    def to_base64(self) -> str:
        """The key as base64, for writing it to a key file. Handle the result as a secret."""
        return base64.b64encode(self._key).decode()

    @property
    def digest_key(self) -> bytes:
        """The HMAC key for drift digests and secret fingerprints (derived, not the key)."""
        return self._digest_key

    def encrypt(self, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
        """Encrypt under this key; returns ``(nonce, ciphertext_with_tag)``."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce, self._aead.encrypt(nonce, plaintext, aad)

    def decrypt(self, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        """Decrypt; raises :class:`cryptography.exceptions.InvalidTag` on any mismatch."""
        return self._aead.decrypt(nonce, ciphertext, aad)

    def __repr__(self) -> str:
        return f"MasterKey(key_id={self.key_id})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MasterKey):
            return NotImplemented
        return secrets.compare_digest(self._key, other._key)

    def __hash__(self) -> int:
        return hash(self.key_id)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a MasterKey cannot be pickled")


class Keyring:
    """The primary key (encrypts, digests) and extra keys accepted only for decryption."""

    def __init__(self, primary: MasterKey, extra: Iterable[MasterKey] = ()) -> None:
        self.primary = primary
        self._by_id = {k.key_id: k for k in (*extra, primary)}

    def get(self, key_id: str) -> MasterKey | None:
        """The key with this id, if this keyring holds it."""
        return self._by_id.get(key_id)

    def require(self, key_id: str) -> MasterKey:
        """The key with this id, or :class:`MasterKeyError` saying the key is wrong."""
        key = self._by_id.get(key_id)
        if key is None:
            raise wrong_key_error(key_id, self.primary)
        return key

    def with_primary(self, key: MasterKey) -> Keyring:
        """This keyring with ``key`` as the primary and every current key kept as extra."""
        return Keyring(key, self._by_id.values())

    def decrypt(self, key_id: str, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes | None:
        """Plaintext, or ``None`` when the ciphertext or its binding was altered."""
        key = self.require(key_id)
        try:
            return key.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            return None


def wrong_key_error(store_key_id: str, given: MasterKey) -> MasterKeyError:
    """The error for a master key that is not the one the store was written with."""
    return MasterKeyError(
        "the master key does not match the one this store was written with "
        f"(key id {store_key_id}; the key given has key id {given.key_id})",
        hint=f"set {ENV_KEY} or {ENV_KEY_FILE} to the store's master key",
    )


def must_register_key(current: str | None, keyring: Keyring) -> bool:
    """Check that a write may encrypt with ``keyring.primary`` on a store whose key is ``current``.

    Returns True when the store has no key yet: the first write decides the store's
    master key, and the caller registers the primary key in the same transaction.
    Returns False when the store's key is the primary key. Any other key is a
    :class:`MasterKeyError`.
    """
    primary = keyring.primary
    if current is None:
        return True
    if current != primary.key_id:
        if keyring.get(current) is not None:
            raise MasterKeyError(
                f"the store's master key is now key id {current}, but this process "
                f"encrypts with key id {primary.key_id}",
                hint="make the store's current key the primary master key",
            )
        raise wrong_key_error(current, primary)
    return False


@dataclass(frozen=True)
class LoadedMasterKey:
    """A master key and where it came from. ``created`` is true when it was just made."""

    key: MasterKey
    source: str
    created: bool = False


def _is_local_default(store_url: str, byok_dir: Path) -> bool:
    if not store_url.startswith("sqlite:///"):
        return False
    db = Path(store_url.removeprefix("sqlite:///"))
    return db.parent.resolve() == byok_dir.resolve()


def read_master_key_file(path: Path) -> MasterKey:
    """Read a master key file (base64 of 32 bytes); MasterKeyError names what is wrong."""
    try:
        text = path.read_text(encoding="ascii")
    except OSError as exc:
        raise MasterKeyError(f"cannot read the master key file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        # The decode error would quote bytes of the file: say only what is wrong.
        raise MasterKeyError(f"the master key file {path} is not base64 text") from None
    return MasterKey.from_base64(text, source=str(path))


def save_master_key(path: Path, key: MasterKey, *, replace: bool = False) -> None:
    """Write ``key`` to ``path`` with mode 0600, atomically.

    Without ``replace`` an existing file is left alone and :class:`FileExistsError` is
    raised, so two processes creating the key at once agree on one key.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(key.to_base64() + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if the file exists: first writer wins
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def load_next_keys(env: Mapping[str, str]) -> tuple[MasterKey, ...]:
    """The key a rotation is about to move to, accepted for decryption only.

    ``BYOK_MASTER_KEY_NEXT`` (base64) or ``BYOK_MASTER_KEY_NEXT_FILE``: set it on every
    resolver and CI runner before ``byokctl store rotate-key``, so that nothing has to
    restart at the moment of the rotation; afterwards make it ``BYOK_MASTER_KEY``.
    """
    inline, file = env.get(ENV_KEY_NEXT), env.get(ENV_KEY_NEXT_FILE)
    if inline and file:
        raise MasterKeyError(
            f"both {ENV_KEY_NEXT} and {ENV_KEY_NEXT_FILE} are set", hint="set only one of them"
        )
    if inline:
        return (MasterKey.from_base64(inline, source=ENV_KEY_NEXT),)
    if file:
        return (read_master_key_file(Path(file)),)
    return ()


def load_master_key(env: Mapping[str, str], *, store_url: str, byok_dir: Path) -> LoadedMasterKey:
    """Find the master key: ``BYOK_MASTER_KEY``, ``BYOK_MASTER_KEY_FILE``, or the local default.

    Only for the local SQLite default (a ``sqlite:///`` store inside ``byok_dir``) is a
    missing key created, once, as ``byok_dir/master.key`` with mode 0600; the result's
    ``created`` flag tells the CLI to print a notice. Anything else without a key is a
    :class:`MasterKeyError` that says what to set.
    """
    inline, file = env.get(ENV_KEY), env.get(ENV_KEY_FILE)
    if inline and file:
        raise MasterKeyError(
            f"both {ENV_KEY} and {ENV_KEY_FILE} are set", hint="set only one of them"
        )
    if inline:
        return LoadedMasterKey(MasterKey.from_base64(inline, source=ENV_KEY), ENV_KEY)
    if file:
        return LoadedMasterKey(read_master_key_file(Path(file)), str(file))
    if not _is_local_default(store_url, byok_dir):
        raise MasterKeyError(
            "no master key: the store needs one to encrypt API keys at rest",
            hint=f"set {ENV_KEY} (base64 of 32 random bytes) or {ENV_KEY_FILE} (a file holding it)",
        )
    path = byok_dir / MASTER_KEY_FILE_NAME
    if path.exists():
        return LoadedMasterKey(read_master_key_file(path), str(path))
    make_private_dir(byok_dir)
    if stat.S_IMODE(byok_dir.stat().st_mode) & 0o077:
        # Only tighten a directory byokctl owns the content of; never loosen anything.
        byok_dir.chmod(0o700)
    key = MasterKey.generate()
    try:
        save_master_key(path, key)
    except FileExistsError:  # another process created it first: use that one
        return LoadedMasterKey(read_master_key_file(path), str(path))
    return LoadedMasterKey(key, str(path), created=True)
