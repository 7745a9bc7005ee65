"""Store URLs to backends: one explicit registry, no entry-point magic."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from byokctl.errors import StoreError

from ._keys import Keyring, MasterKey
from ._sqlite import SQLiteStore, path_from_url
from ._types import Store


def _open_postgresql(url: str, keyring: Keyring) -> Store:
    # Imported here so that SQLite users and the resolver never load psycopg.
    try:
        from ._postgres import PostgresStore  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise psycopg_missing(exc) from None
    return PostgresStore.open(url, keyring)


def psycopg_missing(exc: ImportError) -> StoreError:
    """The error for a PostgreSQL URL when psycopg is not installed."""
    return StoreError(
        f"the PostgreSQL store needs psycopg, which is not installed ({exc.name})",
        hint="pip install 'psycopg[binary]' psycopg-pool",
    )


#: ``scheme -> opener``: one explicit registry, opened by URL scheme.
BACKENDS: dict[str, Callable[[str, Keyring], Store]] = {
    "sqlite": SQLiteStore.open,
    "postgresql": _open_postgresql,
    "postgres": _open_postgresql,  # libpq accepts both spellings
}

DEFAULT_STORE_URL = "sqlite:///.byok/state.db"


def safe_url(url: str) -> str:
    """The URL with any ``user:password@`` part and ``password=`` parameter masked."""
    masked = re.sub(r"//[^/@]*@", "//***@", url)
    return re.sub(r"([?&]password=)[^&]*", r"\1***", masked, flags=re.IGNORECASE)


def _opener(url: str) -> Callable[[str, Keyring], Store]:
    scheme, sep, _ = url.partition("://")
    opener = BACKENDS.get(scheme) if sep else None
    if opener is None:
        known = ", ".join(f"{s}://" for s in sorted(BACKENDS))
        raise StoreError(
            f"unsupported store URL {safe_url(url)!r}",
            hint=f"use one of: {known} (for example {DEFAULT_STORE_URL})",
        )
    return opener


def check_store_url(url: str) -> None:
    """Raise :class:`StoreError` unless ``url`` names a known kind of store."""
    _opener(url)


def store_exists(url: str) -> bool:
    """Whether the store at ``url`` was created already (a server store always counts)."""
    _opener(url)
    if url.startswith("sqlite:"):
        return path_from_url(url).exists()
    return True


def open_store(url: str, *, master_key: MasterKey, extra_keys: Iterable[MasterKey] = ()) -> Store:
    """Open the store at ``url``, applying pending schema migrations.

    ``master_key`` encrypts and computes drift digests; ``extra_keys`` are accepted for
    decryption only (used while a master key rotation rolls out).
    """
    return _opener(url)(url, Keyring(master_key, extra_keys))
