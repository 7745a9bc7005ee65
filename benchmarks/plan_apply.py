"""Plan, apply and a no-op re-plan of 1,000 and 10,000 workspaces, end to end.

Each step runs the installed ``byokctl`` console script in a fresh process against a
fresh SQLite store, on SOPS files decrypted natively (a sample is checked with the real
sops binary first). The anchor is linearity: the 10k/1k ratio of each step (10.0 is
linear). Target: a 10,000-workspace plan in under 20 s on this machine.

    .venv/bin/python benchmarks/plan_apply.py [--sizes 1000 10000]
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import _sopsgen

BYOKCTL = shutil.which("byokctl", path=str(Path(sys.executable).parent)) or "byokctl"


def generate(directory: Path, n: int, recipient: str) -> None:
    directory.mkdir(parents=True)
    for i in range(n):
        doc = _sopsgen.workspace_document(i)
        (directory / f"ws-{i:05d}.yaml").write_text(_sopsgen.encrypt_document(doc, recipient))


def timed(args: list[str], env: dict[str, str], *, ok: tuple[int, ...] = (0,)) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        [BYOKCTL, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    elapsed = time.perf_counter() - start
    if proc.returncode not in ok:
        raise SystemExit(
            f"byokctl {' '.join(args)} exited {proc.returncode}: {proc.stderr[-500:]!r}"
        )
    return elapsed


def run(sizes: list[int]) -> None:
    results: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="byok-bench-") as tmp:
        root = Path(tmp)
        key_file, recipient = _sopsgen.new_identity(root)
        for n in sizes:
            ws = root / f"ws-{n}"
            t0 = time.perf_counter()
            generate(ws, n, recipient)
            sample = ws / "ws-00001.yaml"
            assert _sopsgen.check_with_sops(sample, key_file) == _sopsgen.workspace_document(1)
            print(
                f"generated {n:,} SOPS files in {time.perf_counter() - t0:.1f}s "
                "(sample checked with sops)"
            )
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith(("BYOK_", "SOPS_"))},
                "SOPS_AGE_KEY_FILE": str(key_file),
                "BYOK_STORE": f"sqlite:///{root}/state-{n}.db",
                "BYOK_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
                "NO_COLOR": "1",
            }
            steps = {
                "plan": timed(
                    ["plan", "--no-verify", "--detailed-exitcode", str(ws)], env, ok=(2,)
                ),
                "apply": timed(["apply", "--no-verify", "--auto-approve", str(ws)], env),
                "no-op re-plan": timed(
                    ["plan", "--no-verify", "--detailed-exitcode", str(ws)], env, ok=(0,)
                ),
            }
            results[n] = steps
            print(
                f"{n:>7,} workspaces: "
                + ", ".join(f"{k} {v:.2f}s ({n / v:,.0f}/s)" for k, v in steps.items())
            )
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        print(f"\nratio {large:,}/{small:,} (linear = {large / small:.1f}):")
        for step in results[small]:
            print(f"  {step:<14} {results[large][step] / results[small][step]:5.1f}x")
        verdict = "meets" if results[large]["plan"] < 20 else "MISSES"
        print(
            f"{large:,}-workspace plan: {results[large]['plan']:.2f}s ({verdict} the < 20 s target)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    run(parser.parse_args().sizes)
