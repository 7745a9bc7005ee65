"""``byokctl show PLANFILE``: render a saved plan."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from byokctl.commands._inputs import use_color
from byokctl.commands.plan import PlanFormat, render
from byokctl.plan import planfile


def show(path: Path, *, fmt: PlanFormat, out: TextIO) -> int:
    """Print a plan saved by ``plan --out`` in any format."""
    saved = planfile.read_plan(path)
    print(render(saved, fmt, color=use_color(out)).rstrip("\n"), file=out)
    return 0
