"""byokctl on GitHub: workflow commands, step outputs and summary, SARIF, the REST client.

Everything that writes for the Actions runner escapes what it writes
(:mod:`byokctl.github._workflow`), so that no file path, workspace name or message can
forge a workflow command. The REST client (:class:`GitHubClient`) is used by
``byokctl comment`` for the sticky pull-request comment and the drift issue.
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
from byokctl.github._sarif import RULE_HELP, render_sarif
from byokctl.github._summary import apply_markdown, validate_markdown
from byokctl.github._workflow import (
    DEFUSED_PREFIX,
    Actions,
    CommandGuard,
    annotation_commands,
    escape_data,
    escape_property,
    format_outputs,
    guard_streams,
    plan_outputs,
    runner_reads,
    send_command,
    workflow_command,
)

__all__ = [
    "DEFAULT_API_URL",
    "DEFUSED_PREFIX",
    "DRIFT_TITLE",
    "RULE_HELP",
    "Actions",
    "CommandGuard",
    "GitHubClient",
    "GitHubError",
    "Mode",
    "Outcome",
    "Repository",
    "annotation_commands",
    "apply_markdown",
    "comment_body",
    "destroy_warning",
    "escape_data",
    "escape_property",
    "failure_body",
    "format_outputs",
    "guard_streams",
    "marker",
    "plan_outputs",
    "render_sarif",
    "runner_reads",
    "send_command",
    "sync_comment",
    "sync_drift_issue",
    "utf16_length",
    "validate_markdown",
    "workflow_command",
]
