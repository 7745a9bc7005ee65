"""The sticky pull-request comment and the drift issue, over GitHub's REST API (httpx).

Used by ``byokctl comment``; kept apart from :mod:`byokctl.github` so that the commands
that only write for the runner never load an HTTP client.
"""

from __future__ import annotations

from byokctl.github._comment import (
    DRIFT_TITLE,
    Mode,
    Outcome,
    comment_body,
    destroy_warning,
    failure_body,
    marker,
    sync_comment,
    sync_drift_issue,
    utf16_length,
)
from byokctl.github._rest import DEFAULT_API_URL, GitHubClient, GitHubError, Repository

__all__ = [
    "DEFAULT_API_URL",
    "DRIFT_TITLE",
    "GitHubClient",
    "GitHubError",
    "Mode",
    "Outcome",
    "Repository",
    "comment_body",
    "destroy_warning",
    "failure_body",
    "marker",
    "sync_comment",
    "sync_drift_issue",
    "utf16_length",
]
