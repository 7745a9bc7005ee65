"""A separate process for the racing and migration tests: ``python _store_worker.py MODE ...``.

Modes (the master key comes in ``BYOK_MASTER_KEY``):
  race URL NAME ROUNDS BARRIER N
                         once N racers have checked in under directory BARRIER, apply ROUNDS
                         updates to workspace NAME, each against the serial it read,
                         retrying a stale plan; print JSON stats
  hold URL SECONDS       take the lock as "holder-process", print its id, hold it, release
  open URL               open the store (running migrations), print the schema version
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from byokctl.errors import StalePlanError
from byokctl.executor import apply_plan
from byokctl.store import MasterKey, open_store
from tests.store.storetest_helpers import Change, FieldChange, workspace


def _barrier(directory: Path, name: str, parties: int) -> None:
    """Wait until every racer has started, so that they really run at the same time."""
    (directory / f"ready-{name}").touch()
    deadline = time.monotonic() + 60
    while len(list(directory.glob("ready-*"))) < parties and time.monotonic() < deadline:
        time.sleep(0.005)


def main(argv: list[str]) -> int:
    mode, url = argv[0], argv[1]
    key = MasterKey.from_base64(os.environ["BYOK_MASTER_KEY"], source="BYOK_MASTER_KEY")
    with open_store(url, master_key=key) as store:
        if mode == "open":
            print(store.schema_version())
        elif mode == "hold":
            with store.lock("holder-process", "apply", timeout=10) as info:
                print(info.id, flush=True)
                time.sleep(float(argv[2]))
        elif mode == "race":
            name, rounds = argv[2], int(argv[3])
            _barrier(Path(argv[4]), name, int(argv[5]))
            done = stale = 0
            while done < rounds:
                state = store.read_state()
                live = state.workspaces.get(name)
                count = int(live.workspace.providers["openai"].model) if live else 0
                ws = workspace(name, model=str(count + 1))
                change = Change(
                    name,
                    "update" if live else "create",
                    ws,
                    (FieldChange("providers.openai.model"),),
                )
                try:
                    apply_plan(
                        store,
                        [change],
                        holder=f"racer {name}",
                        lock_timeout=30,
                        expected_serial=state.serial,
                    )
                except StalePlanError:
                    stale += 1  # the other racer applied first: plan again
                    continue
                done += 1
            print(json.dumps({"done": done, "stale": stale}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
