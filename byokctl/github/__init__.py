"""byokctl on GitHub: workflow commands, step outputs and summary, SARIF.

Everything that writes for the Actions runner escapes what it writes
(:mod:`byokctl.github._workflow`), so that no file path, workspace name or message can
forge a workflow command. The REST client and the sticky pull-request comment are
:mod:`byokctl.github.comment`, apart, so that ``validate`` and ``plan`` never load an
HTTP client for their GitHub output.
"""

from __future__ import annotations

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
    "DEFUSED_PREFIX",
    "RULE_HELP",
    "Actions",
    "CommandGuard",
    "annotation_commands",
    "apply_markdown",
    "escape_data",
    "escape_property",
    "format_outputs",
    "guard_streams",
    "plan_outputs",
    "render_sarif",
    "runner_reads",
    "send_command",
    "validate_markdown",
    "workflow_command",
]
