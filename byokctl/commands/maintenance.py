"""``byokctl force-unlock ID`` and ``byokctl store rotate-key``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TextIO

from byokctl.commands._inputs import LOCAL_DIR, open_live_store, store_url
from byokctl.errors import MasterKeyError
from byokctl.executor import default_holder
from byokctl.store import (
    ENV_KEY,
    ENV_KEY_FILE,
    ENV_KEY_NEXT,
    ENV_KEY_NEXT_FILE,
    MASTER_KEY_FILE_NAME,
    MasterKey,
    load_master_key,
    load_next_keys,
    open_store,
    read_master_key_file,
    save_master_key,
)

#: How long rotate-key waits for a running apply to finish.
ROTATE_LOCK_TIMEOUT = 60.0


def force_unlock(lock_id: str, *, store: str | None, out: TextIO, err: TextIO) -> int:
    """Remove the lock with ``lock_id`` (after its holder died)."""
    with open_live_store(store_url(store), err=err) as live_store:
        held = live_store.lock_info()
        live_store.force_unlock(lock_id)
    who = f" (held by {held.holder} for {held.operation!r})" if held and held.id == lock_id else ""
    print(f"Removed lock {lock_id}{who}.", file=out)
    return 0


def rotate_key(*, store: str | None, new_key_file: Path | None, out: TextIO, err: TextIO) -> int:
    """Re-encrypt every secret under a new master key, in one transaction, under the lock.

    With the local store's auto-created key and no ``--new-key-file``, a new key is
    generated and replaces ``.byok/master.key``; it is written beside it first, so that an
    interruption never leaves the store encrypted under a key that exists nowhere.
    """
    url = store_url(store)
    current = load_master_key(os.environ, store_url=url, byok_dir=LOCAL_DIR)
    local_file = LOCAL_DIR / MASTER_KEY_FILE_NAME
    pending = local_file.with_name(local_file.name + ".next")
    replace_local = False
    next_keys = load_next_keys(os.environ)
    if new_key_file is not None:
        new_key = read_master_key_file(new_key_file)
    elif next_keys:
        new_key = next_keys[0]
    elif Path(current.source) == local_file:
        if pending.exists():
            raise MasterKeyError(
                f"{pending} exists: an earlier rotation was interrupted",
                hint=f"if `byokctl state list` fails with the current key, move {pending} to "
                f"{local_file}; otherwise delete {pending}; then run rotate-key again",
            )
        new_key = MasterKey.generate()
        save_master_key(pending, new_key)
        replace_local = True
    else:
        raise MasterKeyError(
            f"the master key comes from {current.source}; give the new one with --new-key-file "
            f"or {ENV_KEY_NEXT_FILE}",
            hint="make one with: python3 -c 'import os,base64;"
            "print(base64.b64encode(os.urandom(32)).decode())' > new.key; for no downtime, set "
            f"{ENV_KEY_NEXT_FILE}=new.key on every resolver first; after the rotation point "
            f"{ENV_KEY} or {ENV_KEY_FILE} at it",
        )
    with open_store(url, master_key=current.key) as live_store:
        holder = default_holder()
        with live_store.lock(holder, "rotate-key", timeout=ROTATE_LOCK_TIMEOUT):
            count = live_store.rotate_master_key(new_key, who=holder)
    if replace_local:
        os.replace(pending, local_file)
        where = f"{local_file} now holds it"
    else:
        where = (
            f"now make it {ENV_KEY} / {ENV_KEY_FILE} for every byokctl and resolver, "
            f"then drop {ENV_KEY_NEXT} / {ENV_KEY_NEXT_FILE}"
        )
    print(
        f"Re-encrypted {count} secret(s) under the new master key "
        f"(key id {new_key.key_id}); {where}.",
        file=out,
    )
    return 0
