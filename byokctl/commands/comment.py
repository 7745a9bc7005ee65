"""``byokctl comment PLANFILE``: one sticky pull-request comment (or the drift issue).

The repository, token and API root come from the environment the Actions runner sets
(``GITHUB_REPOSITORY``, ``GITHUB_TOKEN``, ``GITHUB_API_URL``); the pull request from
``--pr`` or the event that started the workflow (``GITHUB_EVENT_PATH``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from byokctl.errors import ByokError
from byokctl.github.comment import (
    DEFAULT_API_URL,
    GitHubClient,
    GitHubError,
    Mode,
    Repository,
    comment_body,
    failure_body,
    marker,
    sync_comment,
    sync_drift_issue,
)
from byokctl.plan import planfile


def comment(
    plan_path: Path | None,
    *,
    pr: int | None,
    mode: Mode,
    marker_id: str | None,
    allow_readonly: bool,
    drift_issue: str | None,
    author: str | None,
    out: TextIO,
    err: TextIO,
    failed: bool = False,
    env: Mapping[str, str] = os.environ,
    max_wait: float = 60.0,
) -> int:
    """Upsert (or delete) byokctl's comment for this config directory on the pull request.

    With ``drift_issue`` (a label), keep one open issue with that label instead: opened or
    updated while the plan has changes, closed when it has none. A 403 (a fork's
    read-only token) exits 0 with a warning when ``allow_readonly`` is set. With
    ``failed`` (and no plan), the comment says the plan failed, so an outdated plan is
    never left standing on a pull request whose latest push broke it.
    """
    if failed == (plan_path is not None):
        raise ByokError(
            "give either PLANFILE or --failed",
            hint="byokctl comment byok.plan, or (in a step that runs on failure) "
            "byokctl comment --failed",
        )
    if failed and drift_issue:
        raise ByokError("--failed is for the pull-request comment, not the drift issue")
    saved = planfile.read_plan(plan_path) if plan_path is not None else None
    repository = Repository.parse(_required(env, "GITHUB_REPOSITORY", "OWNER/NAME"))
    token = env.get("GITHUB_TOKEN") or env.get("GH_TOKEN")
    if not token:
        raise ByokError(
            "no GitHub token: GITHUB_TOKEN is not set",
            hint="pass `GITHUB_TOKEN: ${{ github.token }}` in the step's env "
            "(the action does it from its github-token input)",
        )
    api_url = env.get("GITHUB_API_URL") or DEFAULT_API_URL
    kind = "drift" if drift_issue else "plan"
    marker_line = marker(marker_id or default_marker_id(env), kind)
    if saved is None:
        body = failure_body(
            marker_line=marker_line, run_url=run_url(env), sha=env.get("GITHUB_SHA")
        )
    else:
        body = comment_body(saved, marker_line=marker_line, run_url=run_url(env))
    try:
        with GitHubClient(repository, token=token, api_url=api_url, max_wait=max_wait) as client:
            if drift_issue and saved is not None:
                outcome = sync_drift_issue(client, label=drift_issue, plan=saved, body=body)
                what = f"drift issue ({drift_issue})"
            else:
                number = pr if pr is not None else pull_request_number(env)
                outcome = sync_comment(
                    client,
                    number,
                    body=body,
                    marker_line=marker_line,
                    mode=mode,
                    author=author,
                )
                what = f"comment on #{number}"
    except GitHubError as exc:
        if exc.status == 403 and allow_readonly:
            print(f"byokctl: warning: {exc.message}; not commenting (--allow-readonly)", file=err)
            return 0
        raise
    print(f"byokctl: {what}: {outcome.action}", file=err)
    if outcome.url:
        print(outcome.url, file=out)
    return 0


def _required(env: Mapping[str, str], name: str, shape: str) -> str:
    value = env.get(name)
    if not value:
        raise ByokError(
            f"{name} is not set",
            hint=f"the Actions runner sets it; elsewhere export {name}={shape}",
        )
    return value


def pull_request_number(env: Mapping[str, str]) -> int:
    """The pull request of the event in ``$GITHUB_EVENT_PATH`` (pull_request, issue_comment)."""
    path = env.get("GITHUB_EVENT_PATH")
    hint = "pass --pr N, or run on a pull_request event"
    if not path:
        raise ByokError(
            "no pull request: --pr is not given and GITHUB_EVENT_PATH is not set", hint=hint
        )
    try:
        event = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ByokError(f"cannot read the event file {path}: {exc}", hint=hint) from None
    for key in ("pull_request", "issue"):
        number = (event.get(key) or {}).get("number") if isinstance(event, dict) else None
        if isinstance(number, int) and not isinstance(number, bool):
            return number
    raise ByokError(f"the event in {path} is not about a pull request", hint=hint)


def default_marker_id(env: Mapping[str, str]) -> str:
    """The config directory: the working directory relative to ``GITHUB_WORKSPACE``."""
    here = Path.cwd().resolve()
    root = env.get("GITHUB_WORKSPACE")
    if root and here.is_relative_to(Path(root).resolve()):
        return here.relative_to(Path(root).resolve()).as_posix()
    return "."


def run_url(env: Mapping[str, str]) -> str | None:
    """The workflow run's page, where the summary and the plan artifact are."""
    server, repo, run = (
        env.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    )
    if server and repo and run and run.isdigit():
        return f"{server.rstrip('/')}/{repo}/actions/runs/{run}"
    return None
