"""``byokctl validate``: structure, rules and encryption status, no key needed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TextIO

from byokctl.commands._tracked import tracked_secret_files
from byokctl.config.diagnostics import render_json, render_text
from byokctl.config.loader import validate_paths

Format = Literal["text", "json"]


def validate(paths: Sequence[str], *, fmt: Format, out: TextIO) -> int:
    """Check the workspace files under ``paths``; 0 when valid, 1 when not."""
    result = validate_paths(paths)
    diagnostics = [*tracked_secret_files(), *result.diagnostics]
    render = render_json if fmt == "json" else render_text
    print(render(diagnostics, files=len(result.files)), file=out)
    return 0 if result.ok else 1
