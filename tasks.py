#!/usr/bin/env python3
"""The project's commands, needing nothing but Python 3.11+.

python3 tasks.py demo    set up .venv, then run byokctl on the example GitOps repo
python3 tasks.py test    set up .venv, then run the test suite
python3 tasks.py lint    ruff check, ruff format --check, mypy --strict (CI runs it too)
python3 tasks.py bench   run every benchmark, then print one table (on demand, never in CI)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".byokctl-installed"


def say(text: str) -> None:
    print(f"\033[1m==> {text}\033[0m" if sys.stdout.isatty() else f"==> {text}", flush=True)


def run(*args: str | Path, env: dict[str, str] | None = None) -> None:
    printable = " ".join(str(a).replace(str(ROOT) + os.sep, "") for a in args)
    say(printable)
    subprocess.run([str(a) for a in args], cwd=ROOT, check=True, env=env)


def setup() -> None:
    """Create .venv and install byokctl with its test and dev tools (skipped when current)."""
    if not PY.exists():
        say("creating .venv")
        venv.create(VENV, with_pip=True)
    if STAMP.exists() and STAMP.stat().st_mtime >= (ROOT / "pyproject.toml").stat().st_mtime:
        return
    run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(PY, "-m", "pip", "install", "--quiet", "-e", ".[dev]")
    STAMP.touch()


def demo() -> None:
    """The whole job on the examples: validate, verified plan and apply, state, resolve.

    The providers are played by ``byokctl sandbox`` on a loopback port (the examples' keys
    are fake); the store is the embedded SQLite default in ``.byok/``.
    """
    setup()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOPS_AGE", "BYOK_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    byokctl = BIN / "byokctl"
    workspaces = "examples/gitops/workspaces"
    # validate needs no key: structure and encryption status are visible in SOPS files.
    run(byokctl, "validate", workspaces, env=env)
    # plan and apply decrypt with the example's demo age key (never use it for real).
    env["SOPS_AGE_KEY_FILE"] = str(ROOT / "examples/gitops/age/demo-key.txt")
    say("byokctl sandbox --port 0   (stands in for the seven providers' APIs)")
    sandbox = subprocess.Popen(
        [str(byokctl), "sandbox", "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert sandbox.stdout is not None
        first = ""
        for _ in range(5):  # a comment line, then: export BYOK_SANDBOX_URL=http://127.0.0.1:PORT
            first = sandbox.stdout.readline().strip()
            if first.startswith("export BYOK_SANDBOX_URL="):
                break
        else:
            raise SystemExit(f"the sandbox did not start: {first!r}")
        env["BYOK_SANDBOX_URL"] = first.split("=", 1)[1]
        print(f"    {first}", flush=True)
        run(byokctl, "plan", workspaces, env=env)
        run(byokctl, "apply", "--auto-approve", workspaces, env=env)
        run(byokctl, "state", "list", env=env)
        run(byokctl, "resolve", "acme-support", "--feature", "assist", env=env)
        run(byokctl, "resolve", "umbrella-care", "--feature", "summarize", env=env)
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
    print(
        "\nNext: the fleet page, resolver API and metrics over this demo store:\n"
        "    .venv/bin/byokctl serve            # then open http://127.0.0.1:8750/\n"
        "(loopback only, no token needed; docs/serve.md shows the API with curl)",
        flush=True,
    )


def test() -> None:
    setup()
    run(PY, "-m", "pytest", *sys.argv[2:])


def lint() -> None:
    setup()
    run(BIN / "ruff", "check", ".")
    run(BIN / "ruff", "format", "--check", ".")
    run(BIN / "mypy", "--strict", "byokctl")


#: Every benchmark, in the order run: each prints its own lines and reports its rows.
BENCHMARKS = (
    "validate",
    "sops_decrypt",
    "plan_apply",
    "verify",
    "probe",
    "resolver",
    "store",
    "serve",
)


def bench() -> None:
    """Run every benchmark in ``benchmarks/`` and print one table of their claims.

    Each row: the measure, its anchor, the value now, the ratio, the target the issues
    name, and whether it is met. Exits 1 when a target is missed or a benchmark failed.
    The machine's load average is printed before and after: on a shared machine it says
    how far the times can be trusted.
    """
    setup()
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="byok-bench-report-") as tmp:
        rows_file = Path(tmp) / "rows.jsonl"
        env = {**os.environ, "BYOK_BENCH_REPORT": str(rows_file)}
        load_before = os.getloadavg()
        for name in BENCHMARKS:
            try:
                run(PY, ROOT / "benchmarks" / f"{name}.py", env=env)
            except subprocess.CalledProcessError as exc:
                failed.append(f"{name}.py exited {exc.returncode}")
        load_after = os.getloadavg()
        rows = (
            [json.loads(line) for line in rows_file.read_text().splitlines()]
            if (rows_file.exists())
            else []
        )
    header = ("measure", "anchor", "now", "ratio", "target", "met")
    table = [[str(r[h]) if h != "met" else _met(r["met"]) for h in header] for r in rows]
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(header)]
    print()
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print(
        f"\nload average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after, "
        f"on {os.cpu_count()} CPUs"
    )
    for failure in failed:
        print(f"failed: {failure}")
    if failed or any(r["met"] is False for r in rows):
        raise SystemExit(1)


def _met(met: bool | None) -> str:
    return {True: "yes", False: "NO", None: "n/a"}[met]


COMMANDS = {"demo": demo, "test": test, "lint": lint, "setup": setup, "bench": bench}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__)
        raise SystemExit(2)
    try:
        COMMANDS[sys.argv[1]]()
    except subprocess.CalledProcessError as exc:
        raise SystemExit(exc.returncode) from None
