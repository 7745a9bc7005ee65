"""Run the console entry point in-process, through its error boundary, capturing output."""

from __future__ import annotations

import contextlib
import io

from byokctl.cli import main


def run_cli(*argv: str) -> tuple[int, str, str]:
    """``byokctl ARGV…`` as the console script runs it: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()
