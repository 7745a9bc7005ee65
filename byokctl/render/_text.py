"""The human plan, shaped like Terraform's: ``+ create``, ``~ update``, ``- delete``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from byokctl.plan import Change, FieldAction, Plan
from byokctl.render._wording import (
    ACTION_SYMBOL,
    REFUSAL_HINT,
    UNMANAGED_HINT,
    FieldLine,
    field_lines,
    heading,
    partial_warning,
    refusal_heading,
    summary_line,
    unconfirmed_heading,
)

# Plain ANSI SGR codes: the CLI decides whether colour is wanted (TTY, NO_COLOR), so
# this module needs no terminal library and returns the same text either way.
_RESET: Final = "\x1b[0m"
_BOLD: Final = "\x1b[1m"
_GREEN: Final = "\x1b[32m"
_YELLOW: Final = "\x1b[33m"
_RED: Final = "\x1b[31m"
_SYMBOL_COLOUR: Final = {"+": _GREEN, "~": _YELLOW, "-": _RED, " ": ""}


def render_text(plan: Plan, *, color: bool) -> str:
    """The plan for people, ending with ``Plan: X to add, Y to change, Z to destroy.``

    No-op workspaces are not listed (drifted ones get a note). ANSI colour only when
    ``color`` is true; the text is otherwise identical.
    """

    paint = _Paint(color)
    # What apply would refuse comes first, before anything a reviewer might stop at.
    out = _findings(plan, paint)
    warning = partial_warning(plan)
    if warning:
        out += [paint("Warning: ", _BOLD, _YELLOW) + warning, ""]

    changes = [c for c in plan.changes if c.is_change]
    if changes:
        out += ["byokctl will perform the following actions:", ""]
        for change in changes:
            out += _workspace_block(change, paint)
            out.append("")

    if plan.unmanaged:
        out.append(paint("Note: ", _BOLD) + UNMANAGED_HINT + ":")
        out += [f"  {name}" for name in plan.unmanaged]
        out.append("")

    out.append(paint(summary_line(plan), _BOLD))
    return "\n".join(out) + "\n"


def _findings(plan: Plan, paint: _Paint) -> list[str]:
    lines: list[str] = []
    if plan.errors:
        lines.append(paint("Error: ", _BOLD, _RED) + refusal_heading(plan) + ":")
        lines += [f"  {e.message}" for e in plan.errors]
        lines += [REFUSAL_HINT, ""]
    if plan.warnings:
        lines.append(paint("Warning: ", _BOLD, _YELLOW) + unconfirmed_heading(plan) + ":")
        lines += [f"  {w.message}" for w in plan.warnings]
        lines.append("")
    return lines


def _workspace_block(change: Change, paint: _Paint) -> list[str]:
    symbol = ACTION_SYMBOL[change.action]
    colour = _SYMBOL_COLOUR[symbol]
    lines = [paint(f"  # {heading(change)}: {change.reason}", _BOLD)]
    if change.drift:
        lines.append(paint(f"  # drift: {change.drift_reason}", _YELLOW))
    lines += [
        f"  # verify {c.provider}: {c.outcome}" + (f" ({c.detail})" if c.detail else "")
        for c in change.checks
    ]
    fields = list(field_lines(change))
    if not fields:
        lines.append(f"  {paint(symbol, colour)} workspace {json.dumps(change.name)} {{}}")
        return lines
    lines.append(f"  {paint(symbol, colour)} workspace {json.dumps(change.name)} {{")
    width = max(len(f.path) for f in fields)
    lines += [_field_line(f, width, paint) for f in fields]
    lines.append("    }")
    return lines


def _field_line(line: FieldLine, width: int, paint: _Paint) -> str:
    change = line.change
    if change is None or change.action is FieldAction.ADD:
        value = line.after
    elif change.action is FieldAction.REMOVE:
        value = line.before
    elif change.sensitive:
        value = line.after
    else:
        value = f"{line.before} -> {line.after}"
    symbol = paint(line.symbol, _SYMBOL_COLOUR[line.symbol])
    return f"      {symbol} {line.path.ljust(width)} = {value}"


@dataclass(frozen=True)
class _Paint:
    """Wraps text in ANSI codes, or leaves it alone when colour is off."""

    color: bool

    def __call__(self, text: str, *codes: str) -> str:
        codes = tuple(c for c in codes if c)
        return f"{''.join(codes)}{text}{_RESET}" if self.color and codes else text
