"""The sticky pull-request comment and the drift issue: their bodies, and keeping one of each.

A comment is byokctl's when its body *starts* with the hidden marker
``<!-- byokctl:plan id=ID -->``; ``ID`` is the config directory (or ``--id``), so several
directories in one repository each keep their own comment. The body puts the summary and
a destroy warning first and never exceeds GitHub's 65,536 characters (counted in UTF-16
code units, as GitHub's limit is enforced, so that astral characters cannot push it over).
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import quote

from byokctl.github._rest import GitHubClient, Json
from byokctl.plan import Action, Plan
from byokctl.render import GITHUB_COMMENT_LIMIT, render_markdown

Mode = Literal["update", "recreate", "delete"]

#: How the drift issue is titled; the label (``byok-drift``) is what finds it again.
DRIFT_TITLE: Final = "byokctl: the live state has drifted from the files"

_NAMES_SHOWN: Final = 20


def marker(marker_id: str, kind: str = "plan") -> str:
    """The hidden first line that identifies byokctl's comment for ``marker_id``."""
    # Percent-encode anything that could end the HTML comment or the line.
    safe_id = quote(marker_id, safe="/._@+=:,") or "."
    return f"<!-- byokctl:{kind} id={safe_id} -->"


def utf16_length(text: str) -> int:
    """The length GitHub measures: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _names(names: list[str]) -> str:
    # One line each, HTML-escaped: a name can end neither the alert nor the code span.
    shown = ", ".join(
        f"<code>{html.escape(' '.join(n.split()))}</code>" for n in names[:_NAMES_SHOWN]
    )
    more = len(names) - _NAMES_SHOWN
    return shown + (f" and {more:,} more" if more > 0 else "")


def destroy_warning(plan: Plan) -> str:
    """A Markdown alert naming the workspaces the plan deletes, or ``""``."""
    deleted = [c.name for c in plan.changes if c.action is Action.DELETE]
    if not deleted:
        return ""
    noun = "workspace" if len(deleted) == 1 else "workspaces"
    return (
        f"> [!CAUTION]\n> **This plan destroys {len(deleted):,} {noun}:** {_names(deleted)}. "
        "Applying it removes their providers and keys from the live store.\n\n"
    )


def comment_body(
    plan: Plan,
    *,
    marker_line: str,
    run_url: str | None = None,
    limit: int = GITHUB_COMMENT_LIMIT,
) -> str:
    """The whole comment: marker, destroy warning, the plan (cut to fit), where the rest is."""
    head = f"{marker_line}\n{destroy_warning(plan)}"
    where = (
        f"[the job's step summary and plan artifact]({run_url})"
        if run_url
        else ("the job's step summary and plan artifact")
    )
    foot = f"\n<sub>The full plan is in {where}. No secret is ever shown.</sub>\n"
    budget = limit - utf16_length(head) - utf16_length(foot)
    while True:
        body = head + render_markdown(plan, limit=max(budget, 0)) + foot
        excess = utf16_length(body) - limit
        if excess <= 0 or budget <= 0:
            break
        # Astral characters count twice in UTF-16: render again with less room.
        budget -= excess
    return body if utf16_length(body) <= limit else _cut_utf16(body, limit)


def failure_body(*, marker_line: str, run_url: str | None, sha: str | None) -> str:
    """The comment when the plan could not be made: the previous plan no longer holds."""
    commit = f" for {html.escape(sha[:12])}" if sha else ""
    where = f"[the run's log and annotations]({run_url})" if run_url else "the run's log"
    return (
        f"{marker_line}\n### byokctl plan\n\n> [!WARNING]\n> **The plan failed{commit}**: "
        "the workspace files could not be planned, so there is no plan to review. See "
        f"{where}, fix the files and push again.\n"
    )


def _cut_utf16(text: str, limit: int) -> str:
    units = 0
    for i, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return text[:i]
    return text


@dataclass(frozen=True)
class Outcome:
    """What happened: ``created``, ``updated``, ``unchanged``, ``recreated``, ``deleted``,
    ``closed``, ``none`` (nothing to do); ``url`` of the comment or issue, if any."""

    action: str
    url: str | None = None


def _ours(comments: Iterable[Json], marker_line: str, author: str | None) -> list[Json]:
    found = []
    for c in comments:
        body = c.get("body")
        if not isinstance(body, str) or not body.startswith(marker_line):
            continue
        login = (c.get("user") or {}).get("login")
        if author is not None and login != author:
            continue
        found.append(c)
    return found


def sync_comment(
    client: GitHubClient,
    issue: int,
    *,
    body: str,
    marker_line: str,
    mode: Mode,
    author: str | None = None,
) -> Outcome:
    """Keep exactly one comment with ``marker_line`` on ``issue`` (none for ``delete``)."""
    existing = _ours(client.comments(issue), marker_line, author)
    if mode == "delete":
        for c in existing:
            client.delete_comment(int(c["id"]))
        return Outcome("deleted" if existing else "none")
    if mode == "recreate" or not existing:
        for c in existing:
            client.delete_comment(int(c["id"]))
        made = client.create_comment(issue, body)
        return Outcome("recreated" if existing else "created", made.get("html_url"))
    keep, extra = existing[0], existing[1:]
    # Two runs that raced may each have posted one: keep the first, remove the others.
    for c in extra:
        client.delete_comment(int(c["id"]))
    if keep.get("body") == body:
        return Outcome("unchanged", keep.get("html_url"))
    edited = client.update_comment(int(keep["id"]), body)
    return Outcome("updated", edited.get("html_url"))


def sync_drift_issue(client: GitHubClient, *, label: str, plan: Plan, body: str) -> Outcome:
    """One open issue labelled ``label`` while the plan has changes; closed when clean."""
    existing = list(client.open_issues(label))
    if not plan.has_changes:
        for issue in existing:
            client.update_issue(
                int(issue["number"]), {"state": "closed", "state_reason": "completed"}
            )
        return Outcome("closed" if existing else "none")
    if not existing:
        made = client.create_issue(DRIFT_TITLE, body, [label])
        return Outcome("created", made.get("html_url"))
    keep = existing[0]
    for issue in existing[1:]:
        client.update_issue(int(issue["number"]), {"state": "closed", "state_reason": "completed"})
    if keep.get("body") == body:
        return Outcome("unchanged", keep.get("html_url"))
    edited = client.update_issue(int(keep["number"]), {"body": body})
    return Outcome("updated", edited.get("html_url"))
