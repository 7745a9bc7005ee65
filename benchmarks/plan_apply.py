"""Plan, apply and a no-op re-plan of 1,000 and 10,000 workspaces, end to end.

Each step runs the installed ``byokctl`` console script in a fresh process against a
fresh SQLite store, on SOPS files decrypted natively (a sample is checked with the real
sops binary first). The anchor is the 1,000-workspace run: the 10k/1k ratio of each step
(10.0 is linear). Targets (issue 13): a 10,000-workspace plan without verify in <= 10 s on
this machine, growth t(10k)/t(1k) <= 10, and plan's peak memory at 10k <= 120 MiB.

    .venv/bin/python benchmarks/plan_apply.py [--sizes 1000 10000]
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import _sopsgen
from _report import Row, report, run_measured

BYOKCTL = shutil.which("byokctl", path=str(Path(sys.executable).parent)) or "byokctl"


def generate(directory: Path, n: int, recipient: str) -> None:
    directory.mkdir(parents=True)
    for i in range(n):
        doc = _sopsgen.workspace_document(i)
        (directory / f"ws-{i:05d}.yaml").write_text(_sopsgen.encrypt_document(doc, recipient))


def timed(
    args: list[str], env: dict[str, str], *, ok: tuple[int, ...] = (0,)
) -> tuple[float, float]:
    """Wall seconds and peak MiB of one ``byokctl`` run."""
    done = run_measured([BYOKCTL, *args], env=env)
    if done.returncode not in ok:
        raise SystemExit(
            f"byokctl {' '.join(args)} exited {done.returncode}: {done.stderr[-500:]!r}"
        )
    return done.seconds, done.peak_mib


def run(sizes: list[int]) -> None:
    results: dict[int, dict[str, float]] = {}
    peaks: dict[int, float] = {}
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
            plan, peaks[n] = timed(
                ["plan", "--no-verify", "--detailed-exitcode", str(ws)], env, ok=(2,)
            )
            apply, _ = timed(["apply", "--no-verify", "--auto-approve", str(ws)], env)
            replan, _ = timed(["plan", "--no-verify", "--detailed-exitcode", str(ws)], env, ok=(0,))
            steps = {"plan": plan, "apply": apply, "no-op re-plan": replan}
            results[n] = steps
            print(
                f"{n:>7,} workspaces: "
                + ", ".join(f"{k} {v:.2f}s ({n / v:,.0f}/s)" for k, v in steps.items())
                + f"; plan peak memory {peaks[n]:.0f} MiB"
            )
    small, large = sizes[0], sizes[-1]
    if len(sizes) >= 2:
        print(f"\nratio {large:,}/{small:,} (linear = {large / small:.1f}):")
        for step in results[small]:
            print(f"  {step:<14} {results[large][step] / results[small][step]:5.1f}x")
    plan_s = results[large]["plan"]
    growth = plan_s / results[small]["plan"]
    linear = large / small
    report(
        [
            Row(
                f"plan {large:,} workspaces (--no-verify)",
                f"plan {small:,}: {results[small]['plan']:.2f} s",
                f"{plan_s:.2f} s",
                f"{growth:.1f}x the {small:,}-run",
                "<= 10 s",
                plan_s <= 10,
            ),
            Row(
                f"plan growth t({large:,})/t({small:,})",
                f"linear {linear:.1f}x",
                f"{growth:.1f}x",
                f"{growth / linear:.2f} of linear",
                f"<= {linear:.0f}x" if large != small else "n/a",
                growth <= linear if large != small else None,
            ),
            Row(
                f"plan {large:,} peak memory",
                f"plan {small:,}: {peaks[small]:.0f} MiB",
                f"{peaks[large]:.0f} MiB",
                f"{peaks[large] / peaks[small]:.1f}x the {small:,}-run",
                "<= 120 MiB",
                peaks[large] <= 120,
            ),
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    run(parser.parse_args().sizes)
