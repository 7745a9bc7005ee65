"""Store URLs to backends: one explicit registry, no entry-point magic."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from byokctl.errors import StoreError

from ._keys import Keyring, MasterKey
from ._sqlite import SQLiteStore
from ._types import Store

#: ``scheme -> opener``. PostgreSQL (``postgresql``) registers here when it lands.
BACKENDS: dict[str, Callable[[str, Keyring], Store]] = {
    "sqlite": SQLiteStore.open,
}

DEFAULT_STORE_URL = "sqlite:///.byok/state.db"


def safe_url(url: str) -> str:
    """The URL with any ``user:password@`` part masked, for messages."""
    return re.sub(r"//[^/@]*@", "//***@", url)


def open_store(url: str, *, master_key: MasterKey, extra_keys: Iterable[MasterKey] = ()) -> Store:
    """Open the store at ``url``, applying pending schema migrations.

    ``master_key`` encrypts and computes drift digests; ``extra_keys`` are accepted for
    decryption only (used while a master key rotation rolls out).
    """
    scheme, sep, _ = url.partition("://")
    opener = BACKENDS.get(scheme) if sep else None
    if opener is None:
        known = ", ".join(f"{s}://" for s in sorted(BACKENDS))
        raise StoreError(
            f"unsupported store URL {safe_url(url)!r}",
            hint=f"use one of: {known} (for example {DEFAULT_STORE_URL})",
        )
    return opener(url, Keyring(master_key, extra_keys))
