"""Racing `byokctl apply` processes serialize like Terraform's, and a dead holder's lock is freed.

Real processes (`python -m byokctl`), real sops-encrypted checkouts, one real store
(SQLite file or PostgreSQL schema) shared by all of them.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pyrage
import pytest

from byokctl.cli import main
from byokctl.sops import find_sops_binary
from byokctl.store import MasterKey, Store, open_store
from byokctl.store._process import ProcessIdentity, is_gone, this_process
from tests.conftest import workspace_yaml
from tests.pg import postgres_database, postgres_schema_url  # noqa: F401 - a fixture

REPO_ROOT = Path(__file__).resolve().parents[2]
CANARY = "sk-contention-canary-4be1"
RACERS = 4
APPLY = (sys.executable, "-m", "byokctl", "apply")


@dataclass(frozen=True)
class Checkout:
    """One CI runner's checkout: its directory and the desired state its files declare."""

    root: Path
    team: str
    notify: str
    key: str


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'state.db'}"
    return postgres_schema_url(request.getfixturevalue("postgres_database"))


@pytest.fixture
def master_key() -> MasterKey:
    return MasterKey.generate()


@pytest.fixture
def identity_file(tmp_path: Path) -> tuple[Path, str]:
    identity = pyrage.x25519.Identity.generate()
    path = tmp_path / "age.txt"
    path.write_text(f"{identity}\n")
    return path, str(identity.to_public())


def _env(store_url: str, key: MasterKey, identity: Path) -> dict[str, str]:
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return {
        **os.environ,
        "BYOK_STORE": store_url,
        "BYOK_MASTER_KEY": key.to_base64(),
        "SOPS_AGE_KEY_FILE": str(identity),
        "PYTHONPATH": pythonpath,
    }


def _sops_encrypt(root: Path, path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ["HOME"]}
    env["SOPS_DISABLE_VERSION_CHECK"] = "1"
    subprocess.run(
        [str(find_sops_binary()), "encrypt", "-i", str(path)],
        cwd=root,
        env=env,
        check=True,
        capture_output=True,
    )


def _checkout(base: Path, index: int, recipient: str) -> Checkout:
    """A checkout whose desired state differs from every other's in every workspace."""
    root = base / f"checkout-{index}"
    (root / "workspaces").mkdir(parents=True)
    (root / ".sops.yaml").write_text(
        "creation_rules:\n"
        "  - path_regex: .*\\.yaml$\n"
        "    encrypted_regex: ^api_key$\n"
        f"    age: {recipient}\n"
    )
    co = Checkout(root, f"team-{index}", f"[ops{index}@acme.example]", f"{CANARY}-{index}")
    files = {
        "acme": workspace_yaml("acme", enabled="openai", keys={"openai": co.key}, notify=co.notify),
        co.team: workspace_yaml(co.team),
    }
    for name, text in files.items():
        path = root / "workspaces" / f"{name}.yaml"
        path.write_text(text)
        _sops_encrypt(root, path)
    return co


def _apply(co: Checkout, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*APPLY, "--auto-approve", "--no-verify", "--lock-timeout", "30"],
        cwd=co.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _store_sessions(store_url: str) -> int:
    """How many sessions byokctl processes hold on the PostgreSQL server now."""
    with psycopg.connect(store_url, autocommit=True) as pg:
        row = pg.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'byokctl'"
            " AND datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


def _wait_until_started(procs: list[subprocess.Popen[str]], store_url: str, baseline: int) -> None:
    """Wait (bounded) until every process has the store open, then a moment more.

    Only makes the race likely: the assertions after it hold whatever the timing. On
    SQLite a process that has the database file open has opened the store; on
    PostgreSQL each keeps a session open from then on (``baseline``: ours).
    """
    deadline = time.monotonic() + 60
    if not store_url.startswith("sqlite:///"):
        while time.monotonic() < deadline and _store_sessions(store_url) < baseline + len(procs):
            time.sleep(0.02)
    else:
        db = Path(store_url.removeprefix("sqlite:///")).resolve()

        def opened(pid: int) -> bool:
            try:
                return any(
                    os.readlink(f"/proc/{pid}/fd/{fd}") == str(db)
                    for fd in os.listdir(f"/proc/{pid}/fd")
                )
            except OSError:
                return False

        while time.monotonic() < deadline and not all(opened(p.pid) for p in procs):
            time.sleep(0.02)
    time.sleep(1.0)


def _pid(who: str) -> int:
    match = re.search(r"\(pid (\d+)\)", who)
    assert match is not None, who
    return int(match.group(1))


def test_racing_applies_serialize_and_the_last_one_wins(
    store_url: str, master_key: MasterKey, identity_file: tuple[Path, str], tmp_path: Path
) -> None:
    identity, recipient = identity_file
    checkouts = [_checkout(tmp_path, i, recipient) for i in range(RACERS)]
    env = _env(store_url, master_key, identity)
    with open_store(store_url, master_key=master_key) as store:
        # Hold the lock while the four start, so that all of them arrive while it is
        # held: before the fix each planned against serial 0 meanwhile, and all but the
        # first failed on a stale serial after it was released.
        with store.lock("the test", "apply", timeout=0):
            baseline = 0 if store_url.startswith("sqlite:") else _store_sessions(store_url)
            procs = [_apply(co, env) for co in checkouts]
            _wait_until_started(procs, store_url, baseline)
        results = [p.communicate(timeout=180) for p in procs]
        for proc, (out, err) in zip(procs, results, strict=True):
            assert proc.returncode == 0, err
            assert "Apply complete!" in out
            assert CANARY not in out + err
        by_pid = {p.pid: co for p, co in zip(procs, checkouts, strict=True)}
        state = store.read_state()
        # Every apply had changes (each checkout differs from every other), so each
        # moved the serial once, and none was lost.
        assert state.serial == RACERS
        audit = store.audit_log()
        assert [e.serial for e in audit] == list(range(RACERS, 0, -1))
        assert {_pid(e.who) for e in audit} == set(by_pid)
        last = by_pid[_pid(audit[0].who)]
        assert set(state.workspaces) == {"acme", last.team}
        acme = state.workspaces["acme"].workspace
        assert acme.notify == (last.notify.strip("[]"),)
        assert acme.providers["openai"].secrets["api_key"].reveal() == last.key
        assert store.lock_info() is None


# -- a lock whose holder is gone ------------------------------------------------------

_HOLD = """
import os, sys
from byokctl.store import MasterKey, open_store
key = MasterKey.from_base64(os.environ["BYOK_MASTER_KEY"], source="env")
store = open_store(sys.argv[1], master_key=key)
lock = store.lock("dead-or-alive runner", "apply", timeout=10)
info = lock.__enter__()
print(info.id, flush=True)
if sys.argv[2] == "die":
    os._exit(0)  # no release: the lock row stays behind, as after a kill -9
sys.stdin.read()  # alive until the test closes our stdin
lock.__exit__(None, None, None)
"""


def _holder(store_url: str, key: MasterKey, mode: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "BYOK_MASTER_KEY": key.to_base64()}
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, store_url, mode],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lock_id = proc.stdout.readline().strip()
    assert lock_id, proc.stderr.read() if proc.stderr else ""
    return proc, lock_id


def _use_checkout(
    tmp_path: Path, identity_file: tuple[Path, str], url: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, MasterKey]:
    identity, recipient = identity_file
    co = _checkout(tmp_path, 0, recipient)
    key = MasterKey.generate()
    monkeypatch.chdir(co.root)
    monkeypatch.setenv("BYOK_STORE", url)
    monkeypatch.setenv("BYOK_MASTER_KEY", key.to_base64())
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(identity))
    return url, key


@pytest.fixture
def sqlite_repo(
    tmp_path: Path, identity_file: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> tuple[str, MasterKey]:
    url = f"sqlite:///{tmp_path / 'store' / 'state.db'}"
    return _use_checkout(tmp_path, identity_file, url, monkeypatch)


@pytest.fixture
def any_repo(
    tmp_path: Path,
    identity_file: tuple[Path, str],
    store_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[str, MasterKey]:
    return _use_checkout(tmp_path, identity_file, store_url, monkeypatch)


def _lock_row(store: Store) -> tuple[str, int] | None:
    db = store.url.removeprefix("sqlite:///")
    conn = sqlite3.connect(db)
    try:
        row = conn.execute("SELECT host, pid FROM store_lock").fetchone()
    finally:
        conn.close()
    return None if row is None else (str(row[0]), int(row[1]))


def test_the_lock_of_a_dead_process_is_released_with_a_notice(
    any_repo: tuple[str, MasterKey], capsys: pytest.CaptureFixture[str]
) -> None:
    # SQLite: the row names this host and a pid that no longer exists. PostgreSQL: the
    # advisory lock ended with the holder's session; the row it left is reclaimed.
    url, key = any_repo
    proc, lock_id = _holder(url, key, "die")
    assert proc.wait(30) == 0
    if url.startswith("sqlite:"):
        with open_store(url, master_key=key) as store:
            assert _lock_row(store) == (this_process().host, proc.pid)  # host + pid recorded
    # PostgreSQL ends the dead session asynchronously: the timeout covers that moment.
    code = main(["apply", "--auto-approve", "--no-verify", "--lock-timeout", "30"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"released a stale lock (id {lock_id})" in err
    assert "dead-or-alive runner" in err
    assert "Apply complete!" in out
    with open_store(url, master_key=key) as store:
        assert store.lock_info() is None
        assert store.serial() == 1


def test_sqlite_lock_of_a_live_process_still_waits_and_times_out(
    sqlite_repo: tuple[str, MasterKey], capsys: pytest.CaptureFixture[str]
) -> None:
    url, key = sqlite_repo
    proc, lock_id = _holder(url, key, "live")
    try:
        code = main(["apply", "--auto-approve", "--no-verify", "--lock-timeout", "0.3"])
        _, err = capsys.readouterr()
        assert code == 1
        assert "the store is locked" in err
        assert f"byokctl force-unlock {lock_id}" in err
        assert "released a stale lock" not in err
        with open_store(url, master_key=key) as store:
            held = store.lock_info()
            assert held is not None
            assert held.id == lock_id
            assert store.serial() == 0
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.wait(30) == 0


def test_a_reused_pid_is_told_apart_by_its_start_time() -> None:
    me = this_process()
    assert not is_gone(me)  # alive: the same pid with the same start time
    if me.process is None:
        pytest.skip("no /proc here: only a pid that does not exist counts as gone")
    world, _, start = me.process.rpartition("/")
    # Our pid, but a process that started at another time: the recorded one is gone.
    assert is_gone(ProcessIdentity(me.host, me.pid, f"{world}/{int(start) + 1}"))
    # Another boot or pid namespace, or another host: cannot be judged, so not gone.
    assert not is_gone(ProcessIdentity(me.host, me.pid, f"other-boot/{start}"))
    assert not is_gone(ProcessIdentity(f"not-{me.host}", 2**22 + 7, me.process))


def test_apply_with_a_saved_plan_still_refuses_a_stale_plan(
    sqlite_repo: tuple[str, MasterKey], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    plan_file = tmp_path / "saved.plan"
    assert main(["plan", "--no-verify", "--out", str(plan_file)]) == 0
    assert main(["apply", "--auto-approve", "--no-verify"]) == 0
    capsys.readouterr()
    code = main(["apply", "--no-verify", str(plan_file)])
    _, err = capsys.readouterr()
    assert code == 1
    assert "stale plan" in err
