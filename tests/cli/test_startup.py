"""What a plain ``validate`` or ``plan --no-verify`` never loads: start-up is part of the run."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Repo, workspace_yaml

_RUN = """
import sys
from byokctl.cli import main
code = main(sys.argv[1:])
heavy = sorted(m for m in ("httpx", "jsonschema", "rich") if m in sys.modules)
print(code, ",".join(heavy) or "-", file=sys.stderr)
"""


def _loaded(*args: str) -> tuple[str, str]:
    proc = subprocess.run(
        [sys.executable, "-c", _RUN, *args], capture_output=True, text=True, check=False, timeout=60
    )
    code, heavy = proc.stderr.strip().splitlines()[-1].split()
    return code, heavy


def test_validate_of_valid_files_loads_neither_jsonschema_nor_httpx(
    make_repo: Callable[[], Repo],
) -> None:
    repo = make_repo()
    repo.write("acme", workspace_yaml("acme", enabled="openai", keys={"openai": "sk-startup-1234"}))
    assert _loaded("validate", str(repo.workspaces)) == ("0", "-")


def test_plan_without_verify_loads_no_http_client(
    make_repo: Callable[[], Repo], tmp_path: Path
) -> None:
    repo = make_repo()
    repo.write("acme", workspace_yaml("acme", enabled="openai", keys={"openai": "sk-startup-1234"}))
    store = f"sqlite:///{tmp_path / 'none.db'}"
    code, heavy = _loaded("plan", "--no-verify", "--store", store, str(repo.workspaces))
    assert code == "0"
    assert "httpx" not in heavy.split(",")
    assert "jsonschema" not in heavy.split(",")


def test_an_invalid_file_still_gets_the_detailed_report(make_repo: Callable[[], Repo]) -> None:
    repo = make_repo()
    repo.write("acme", workspace_yaml("acme\\n"), encrypt=False)
    proc = subprocess.run(
        [sys.executable, "-m", "byokctl", "validate", str(repo.workspaces)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "[schema-pattern]" in proc.stdout or "[control-character]" in proc.stdout
