"""Renderers: a :class:`~byokctl.plan.Plan` as text, JSON or Markdown. Each only reads it.

None of them can show a secret: they read only the plan's secret-free parts (field
changes and :class:`~byokctl.plan.WorkspaceView`), never ``Change.before``/``after``.
"""

from __future__ import annotations

from byokctl.render._json import render_json
from byokctl.render._markdown import GITHUB_COMMENT_LIMIT, render_markdown
from byokctl.render._text import render_text

__all__ = ["GITHUB_COMMENT_LIMIT", "render_json", "render_markdown", "render_text"]
