"""What every benchmark reports: rows of measure, anchor, now, ratio, target, met.

A benchmark prints its own lines as before and calls :func:`report` with its rows; when
``BYOK_BENCH_REPORT`` names a file (``python3 tasks.py bench`` sets it) the rows are
appended to it as JSON lines, for the one table ``tasks.py bench`` prints.
:func:`run_measured` runs a command and returns its wall time and its own peak memory
(``wait4``'s rusage of that child alone).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

REPORT_ENV = "BYOK_BENCH_REPORT"


@dataclass(frozen=True)
class Row:
    """One measured claim. ``met`` is ``None`` when the anchor or the measure is missing."""

    measure: str
    anchor: str
    now: str
    ratio: str
    target: str
    met: bool | None


def report(rows: Sequence[Row]) -> None:
    """Print ``rows`` and append them to ``$BYOK_BENCH_REPORT`` when it is set."""
    for row in rows:
        verdict = {True: "met", False: "NOT met", None: "not measured"}[row.met]
        print(
            f"[{verdict}] {row.measure}: {row.now} "
            f"(anchor {row.anchor}; {row.ratio}; target {row.target})"
        )
    target = os.environ.get(REPORT_ENV)
    if target:
        with Path(target).open("a", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(asdict(row)) + "\n")


@dataclass(frozen=True)
class Measured:
    """A finished command: wall seconds, exit code, its peak resident memory, its stderr."""

    seconds: float
    returncode: int
    peak_mib: float
    stderr: bytes


def run_measured(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Measured:
    """Run ``argv`` (stdout discarded) and measure it."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(argv),
        env=None if env is None else dict(env),
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    stderr = proc.stderr.read()
    # wait4, not wait: the rusage of this child alone (ru_maxrss in KiB on Linux).
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stderr.close()
    return Measured(seconds, proc.returncode, usage.ru_maxrss / 1024, stderr)
