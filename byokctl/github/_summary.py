"""Step-summary Markdown for ``validate`` and ``apply`` (``plan`` uses the plan renderer).

Every value from the repository (paths, messages) is HTML-escaped and kept on one table
line, so file content cannot add rows, links or HTML to the summary.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Final

from byokctl.config.diagnostics import Diagnostic, Severity

#: A summary lists at most this many findings (the log and SARIF have all of them).
MAX_ROWS: Final = 200


def _cell(text: str) -> str:
    one_line = " ".join(text.split())
    return html.escape(one_line, quote=False).replace("|", "&#124;").replace("`", "&#96;")


def validate_markdown(
    diagnostics: Sequence[Diagnostic],
    *,
    files: int,
    relative: Callable[[str], str] = lambda p: p,
) -> str:
    """The validate report as a Markdown table: where, severity, rule, message and hint."""
    errors = sum(d.severity is Severity.ERROR for d in diagnostics)
    warnings = len(diagnostics) - errors
    noun = "file" if files == 1 else "files"
    if errors:
        head = f"**{files} {noun} checked: {errors} error(s), {warnings} warning(s).**"
    else:
        head = f"**{files} {noun} valid ({warnings} warning(s)).**"
    out = [f"### byokctl validate\n\n{head}\n"]
    if diagnostics:
        out.append("\n| where | severity | rule | message |\n|---|---|---|---|\n")
        for d in diagnostics[:MAX_ROWS]:
            message = f"{d.message} (fix: {d.hint})" if d.hint else d.message
            where = f"{relative(d.path)}:{d.line}:{d.column}"
            out.append(f"| {_cell(where)} | {d.severity} | {_cell(d.rule)} | {_cell(message)} |\n")
        if len(diagnostics) > MAX_ROWS:
            out.append(f"\n{len(diagnostics) - MAX_ROWS:,} more finding(s) are in the log.\n")
    return "".join(out)


def apply_markdown(plan_markdown: str, result_line: str, *, commit_url: str | None = None) -> str:
    """The apply summary: what was applied, the result, and where its review is.

    ``commit_url`` is the applied commit's page, which links the pull request that merged
    it and so the plan comment reviewed there.
    """
    reviewed = (
        f'\nApplied commit: <a href="{html.escape(commit_url)}">{html.escape(commit_url)}</a> '
        "(its page links the pull request and the plan reviewed there).\n"
        if commit_url
        else ""
    )
    body = plan_markdown.replace("### byokctl plan", "### byokctl apply", 1)
    return f"{body.rstrip()}\n\n**{html.escape(result_line, quote=False)}**\n{reviewed}"
