"""Checking and decrypting across processes gives exactly the one-process result.

The comparisons run in a fresh interpreter, as the command line does: a worker is forked
only from a process running no other thread, and a test process may have some.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from byokctl.config.loader import PARALLEL_FROM, workers_for
from tests.conftest import Repo, workspace_yaml

CANARY = "sk-parallel-canary-5e6f7a8b9c"

# Loads the files with one process and with two, and prints what each saw, keys as
# fingerprints only.
_COMPARE = """
import json, sys
from byokctl.config.loader import load_desired, validate_paths

def summary(loaded):
    return {
        "workers": loaded.workers,
        "diagnostics": [d.format() for d in loaded.diagnostics],
        "workspaces": {
            name: {
                "enabled": ws.enabled,
                "notify": list(ws.notify),
                "providers": {
                    pid: [c.model, dict(c.settings),
                          {k: s.fingerprint(b"test") for k, s in c.secrets.items()}]
                    for pid, c in ws.providers.items()
                },
            }
            for name, ws in loaded.desired.workspaces.items()
        },
        "sources": {n: [s.path, s.sha256] for n, s in loaded.desired.sources.items()},
    }

def checked(v):
    return {
        "workers": v.workers,
        "files": [f.candidate.display for f in v.files],
        "diagnostics": [d.format() for d in v.diagnostics],
    }

paths = sys.argv[1:]
print(json.dumps({
    "load": [summary(load_desired(paths, jobs=j)) for j in (1, 2)],
    "validate": [checked(validate_paths(paths, jobs=j)) for j in (1, 2)],
}))
"""


def _run(code: str, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=60,  # a hung pool fails the test instead of the suite
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _mixed_repo(repo: Repo) -> None:
    for i in range(5):
        repo.write(
            f"good-{i}",
            workspace_yaml(f"good-{i}", enabled="openai", keys={"openai": f"{CANARY}{i}"}),
        )
    repo.write("neo", workspace_yaml("neo"))
    tampered = repo.write("tampered", workspace_yaml("tampered", keys={"openai": CANARY}))
    tampered.write_text(tampered.read_text().replace("model: gpt-4o", "model: gpt-4"))
    repo.write("unconfigured", workspace_yaml("unconfigured", enabled="gemini"), encrypt=False)
    repo.write("plain-key", workspace_yaml("plain-key", keys={"openai": CANARY}), encrypt=False)
    repo.write("zz-copy-of-good-1", workspace_yaml("good-1", keys={"openai": CANARY}))
    (repo.workspaces / "broken.yaml").write_text("apiVersion: byok/v1\nkind: [\n")
    (repo.workspaces / "empty.yaml").write_text("")


def test_two_workers_load_exactly_what_one_does(make_repo: Callable[[], Repo]) -> None:
    repo = make_repo()
    _mixed_repo(repo)
    out = _run(_COMPARE, str(repo.workspaces))
    assert CANARY not in out
    result = json.loads(out)
    one, two = result["load"]
    assert (one["workers"], two["workers"]) == (1, 2)
    assert two["diagnostics"] == one["diagnostics"]
    assert two["workspaces"] == one["workspaces"]
    assert two["sources"] == one["sources"]
    # The run is the interesting one: every kind of problem, and the good files loaded.
    rules = {d.split("\n", 1)[0].rsplit("[", 1)[-1].rstrip("]") for d in one["diagnostics"]}
    assert {"sops-mac-mismatch", "enabled-not-configured", "file-not-encrypted",
            "duplicate-name", "yaml-syntax", "empty-file"} <= rules  # fmt: skip
    assert set(one["workspaces"]) == {f"good-{i}" for i in range(5)} | {"neo"}
    checked_one, checked_two = result["validate"]
    assert (checked_one["workers"], checked_two["workers"]) == (1, 2)
    assert checked_two["files"] == checked_one["files"]
    assert checked_two["diagnostics"] == checked_one["diagnostics"]


def test_the_key_command_runs_once_for_all_workers(
    make_repo: Callable[[], Repo], tmp_path: Path
) -> None:
    repo = make_repo()
    for i in range(4):
        repo.write(f"ws-{i}", workspace_yaml(f"ws-{i}", keys={"openai": f"{CANARY}{i}"}))
    runs = tmp_path / "runs"
    env = {k: v for k, v in os.environ.items() if k != "SOPS_AGE_KEY_FILE"}
    env["SOPS_AGE_KEY_CMD"] = f"sh -c 'echo run >> {runs}; cat {repo.key_file}'"
    code = (
        "import sys\n"
        "from byokctl.config.loader import load_desired\n"
        "loaded = load_desired(sys.argv[1:], jobs=2)\n"
        "print(loaded.workers, len(loaded.desired.workspaces), loaded.ok)\n"
    )
    assert _run(code, str(repo.workspaces), env=env).split() == ["2", "4", "True"]
    assert runs.read_text().splitlines() == ["run"]


def test_one_process_serves_small_runs_and_threaded_callers() -> None:
    assert workers_for(PARALLEL_FROM - 1) == 1
    assert workers_for(10_000, jobs=1) == 1
    # A fork would copy only this thread: a lock the other one holds would never be freed.
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert workers_for(10_000, jobs=2) == 1
    finally:
        release.set()
        other.join()


def test_a_worker_that_dies_fails_the_run_instead_of_hanging_it(
    make_repo: Callable[[], Repo],
) -> None:
    repo = make_repo()
    for i in range(4):
        repo.write(f"ws-{i}", workspace_yaml(f"ws-{i}"), encrypt=False)
    # Fault injection: the worker checking ws-2 is killed, as the OOM killer would.
    code = (
        "import os, sys\n"
        "from byokctl.config import loader\n"
        "real = loader._examine\n"
        "def dying(candidate, decrypt):\n"
        "    if candidate.display.endswith('ws-2.yaml'):\n"
        "        os._exit(9)\n"
        "    return real(candidate, decrypt)\n"
        "loader._examine = dying\n"
        "try:\n"
        "    loader.validate_paths(sys.argv[1:], jobs=2)\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__)\n"
    )
    assert _run(code, str(repo.workspaces)).strip() == "BrokenProcessPool"
