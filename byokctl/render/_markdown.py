"""The plan as a pull-request comment: summary first, one ``<details>`` per workspace.

GitHub rejects a comment over 65,536 characters, and a plan over thousands of
workspaces easily exceeds that. The summary is bounded (counts, and at most a few names
per list), so it is always kept; then workspaces are added in order while they fit, and
a closing note says how many were cut.
"""

from __future__ import annotations

import html
from typing import Final

from byokctl.plan import Action, Change, CheckFinding, FieldAction, Plan
from byokctl.render._wording import (
    REFUSAL_HINT,
    UNMANAGED_HINT,
    field_lines,
    partial_warning,
    refusal_heading,
    summary_line,
    unconfirmed_heading,
)

#: GitHub's limit on an issue or pull-request comment, in characters.
GITHUB_COMMENT_LIMIT: Final = 65536

# Lists in the summary name at most this many workspaces, so the summary stays small
# however large the plan is.
_NAMES_IN_SUMMARY: Final = 10

_CUT_NOTE: Final = (
    "\n---\n**{cut} more workspace{s} cut** to keep this comment under {limit:,} "
    "characters. Run `byokctl plan` (or `--format json`) for the full plan.\n"
)


def render_markdown(plan: Plan, *, limit: int = GITHUB_COMMENT_LIMIT) -> str:
    """The plan in GitHub-flavoured Markdown, never longer than ``limit`` characters."""
    summary = _summary(plan)
    blocks = [_details(change) for change in plan.changes if change.is_change]
    if not blocks:
        return _clip(summary, limit)

    kept: list[str] = []
    used = len(summary)
    for i, block in enumerate(blocks):
        remaining = len(blocks) - i - 1
        # Keep room for the note in case a later block does not fit.
        note = _note(remaining, limit) if remaining else ""
        if used + len(block) + len(note) > limit:
            return _clip(summary + "".join(kept) + _note(len(blocks) - i, limit), limit)
        kept.append(block)
        used += len(block)
    return _clip(summary + "".join(kept), limit)


def _note(cut: int, limit: int) -> str:
    return _CUT_NOTE.format(cut=f"{cut:,}", s="" if cut == 1 else "s", limit=limit)


def _clip(text: str, limit: int) -> str:
    text = text.rstrip("\n") + "\n"
    # Over the limit only when the limit is smaller than the summary itself: the
    # contract is the length, so cut hard rather than exceed it.
    return text if len(text) <= limit else text[:limit]


def _names(names: list[str] | tuple[str, ...]) -> str:
    shown = ", ".join(f"`{_code(n)}`" for n in names[:_NAMES_IN_SUMMARY])
    more = len(names) - _NAMES_IN_SUMMARY
    return shown + (f" and {more:,} more" if more > 0 else "")


def _summary(plan: Plan) -> str:
    add, change, destroy = plan.summary
    unchanged = sum(1 for c in plan.changes if c.action is Action.NOOP and not c.adopt)
    # Each part ends with a blank line: GitHub needs one before an alert or a table.
    # What apply would refuse comes first, above the fold: never only in a <details>.
    out = ["### byokctl plan\n\n", *_findings(plan), f"**{summary_line(plan)}**\n\n"]
    warning = partial_warning(plan, max_names=_NAMES_IN_SUMMARY)
    if warning:
        out.append(f"> [!WARNING]\n> {_text(warning[0].upper() + warning[1:])}.\n\n")
    drifted = [c.name for c in plan.changes if c.drift]
    if drifted:
        out.append(
            f"> [!NOTE]\n> Changed outside byokctl since the last apply (drift): "
            f"{_names(drifted)}.\n\n"
        )
    out.append(
        "| action | workspaces |\n|---|---:|\n"
        f"| create | {add:,} |\n| update | {change:,} |\n| delete | {destroy:,} |\n"
    )
    if plan.adoptions:
        out.append(f"| adopt | {len(plan.adoptions):,} |\n")
    out.append(f"| unchanged | {unchanged:,} |\n")
    if plan.unmanaged:
        hint = _text(UNMANAGED_HINT[0].upper() + UNMANAGED_HINT[1:])
        out.append(f"\n{hint}: {_names(plan.unmanaged)}.\n")
    out.append("\n")
    out.append(f"<sub>Computed against live serial {plan.serial}.</sub>\n\n")
    return "".join(out)


def _findings(plan: Plan) -> list[str]:
    out: list[str] = []
    if plan.errors:
        heading = refusal_heading(plan)
        out.append(
            f"> [!CAUTION]\n> **{_text(heading[0].upper() + heading[1:])}:**\n>\n"
            + _finding_items(plan.errors)
            + f">\n> {_text(REFUSAL_HINT)}\n\n"
        )
    if plan.warnings:
        heading = unconfirmed_heading(plan)
        out.append(
            f"> [!WARNING]\n> {_text(heading[0].upper() + heading[1:])}:\n>\n"
            + _finding_items(plan.warnings)
            + "\n"
        )
    return out


def _finding_items(findings: tuple[CheckFinding, ...]) -> str:
    # Bounded like the summary's name lists; provider text goes in a code span, where
    # neither Markdown nor HTML in it is interpreted.
    lines = [
        f"> - `{_code(f.workspace)}`: {_text(f.provider)} `{_code(f.outcome)}`"
        + (f" `{_code(f.detail)}`" if f.detail else "")
        + "\n"
        for f in findings[:_NAMES_IN_SUMMARY]
    ]
    more = len(findings) - _NAMES_IN_SUMMARY
    if more > 0:
        lines.append(f"> - and {more:,} more (`byokctl plan` lists them all)\n")
    return "".join(lines)


def _details(change: Change) -> str:
    drift = " ⚠️ drift" if change.drift else ""
    title = _inline(change.reason)
    lines: list[str] = []
    if change.drift:
        lines.append(f"# drift: {change.drift_reason}")
    lines += [
        f"# verify {c.provider}: {c.outcome}" + (f" ({c.detail})" if c.detail else "")
        for c in change.checks
    ]
    for line in field_lines(change):
        field = line.change
        if field is None:
            lines.append(f"  {line.path} = {line.after}")
        elif field.action is FieldAction.ADD:
            lines.append(f"+ {line.path} = {line.after}")
        elif field.action is FieldAction.REMOVE:
            lines.append(f"- {line.path} = {line.before}")
        elif field.sensitive:
            # "!" is highlighted as a change in GitHub's diff syntax.
            lines.append(f"! {line.path} = {line.after}")
        else:
            lines += [f"- {line.path} = {line.before}", f"+ {line.path} = {line.after}"]
    body = "\n".join(lines)
    fence = _fence(body)
    return (
        f"<details><summary><b>{_action(change)}</b> <code>{_inline(change.name)}</code>"
        f"{drift}: {title}</summary>\n\n{fence}diff\n{body}\n{fence}\n\n</details>\n\n"
    )


def _action(change: Change) -> str:
    if change.action is Action.NOOP:
        return "~ adopt"
    word = {Action.CREATE: "+ create", Action.UPDATE: "~ update", Action.DELETE: "- delete"}
    return word[change.action] + (" (adopt)" if change.adopt else "")


def _fence(body: str) -> str:
    # A value containing ``` would close a fixed fence early; use a longer one.
    longest, run = 0, 0
    for char in body:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def _inline(text: str) -> str:
    # One line: a line break (worse, a blank line) would end the HTML block or the alert
    # it stands in, and what follows would be read as Markdown.
    return html.escape(" ".join(text.split()))


def _code(text: str) -> str:
    return " ".join(text.split()).replace("`", "'")


def _text(text: str) -> str:
    return html.escape(text, quote=False)
