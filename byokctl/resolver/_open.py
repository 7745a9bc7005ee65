"""Opening the two stores a resolver reads, for :meth:`Resolver.from_url`."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from byokctl.store import MasterKey, Store, load_master_key, load_next_keys, open_store
from byokctl.store.runtime import RuntimeStore, open_runtime_store

from .options import ResolverOptions


def open_stores(
    store_url: str,
    options: ResolverOptions,
    *,
    master_key: MasterKey | None,
    extra_keys: Iterable[MasterKey],
) -> tuple[Store, RuntimeStore]:
    """The live store and the runtime store at ``store_url`` (both closed on failure).

    ``master_key`` defaults to ``BYOK_MASTER_KEY``/``BYOK_MASTER_KEY_FILE`` from the
    options' environment. A rotation's next key (``BYOK_MASTER_KEY_NEXT``) is accepted
    for decryption, so a running resolver keeps its credentials through
    ``byokctl store rotate-key``.
    """
    if master_key is None:
        master_key = load_master_key(options.env, store_url=store_url, byok_dir=Path(".byok")).key
    extra = (*extra_keys, *load_next_keys(options.env))
    store = open_store(store_url, master_key=master_key, extra_keys=extra)
    try:
        runtime = open_runtime_store(store_url)
    except BaseException:
        store.close()
        raise
    return store, runtime
