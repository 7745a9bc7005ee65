"""Diagnostics: one finding about one place in one file.

Rendered as ``path:line:col: error|warning: message [rule-id]`` with an indented hint
line, or as JSON (``docs/validate-json.md`` documents that format).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

#: The version of the JSON document ``validate --format json`` prints.
DIAGNOSTICS_FORMAT_VERSION: Final = "1.0"


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Diagnostic:
    """A finding at ``path:line:column`` (both 1-based). ``rule`` is a stable id."""

    path: str
    line: int
    column: int
    severity: Severity
    message: str
    rule: str
    hint: str | None = None

    def format(self) -> str:
        head = (
            f"{self.path}:{self.line}:{self.column}: {self.severity}: {self.message} [{self.rule}]"
        )
        return f"{head}\n  hint: {self.hint}" if self.hint else head

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "severity": str(self.severity),
            "rule": self.rule,
            "message": self.message,
            "hint": self.hint,
        }


def error(  # noqa: PLR0917 - reads like the rendered line: path, line, column, rule, message
    path: str, line: int, column: int, rule: str, message: str, hint: str | None = None
) -> Diagnostic:
    return Diagnostic(path, line, column, Severity.ERROR, message, rule, hint)


def warning(  # noqa: PLR0917
    path: str, line: int, column: int, rule: str, message: str, hint: str | None = None
) -> Diagnostic:
    return Diagnostic(path, line, column, Severity.WARNING, message, rule, hint)


def render_text(diagnostics: Sequence[Diagnostic], *, files: int) -> str:
    """The human report: each diagnostic, then a one-line summary."""
    errors = sum(d.severity is Severity.ERROR for d in diagnostics)
    warnings = len(diagnostics) - errors
    lines = [d.format() for d in diagnostics]
    noun = "file" if files == 1 else "files"
    if errors:
        lines.append(f"{files} {noun} checked: {errors} error(s), {warnings} warning(s).")
    else:
        lines.append(f"{files} {noun} valid ({warnings} warning(s)).")
    return "\n".join(lines)


def render_json(diagnostics: Sequence[Diagnostic], *, files: int) -> str:
    """The machine report: see ``docs/validate-json.md``."""
    errors = sum(d.severity is Severity.ERROR for d in diagnostics)
    doc = {
        "format_version": DIAGNOSTICS_FORMAT_VERSION,
        "valid": errors == 0,
        "files_checked": files,
        "error_count": errors,
        "warning_count": len(diagnostics) - errors,
        "diagnostics": [d.to_json() for d in diagnostics],
    }
    return json.dumps(doc, indent=2)
