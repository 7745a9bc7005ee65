"""``byokctl validate``: structure, rules and encryption status, no key needed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TextIO

from byokctl import __version__
from byokctl.commands._tracked import tracked_secret_files
from byokctl.config.diagnostics import render_json, render_text
from byokctl.config.loader import validate_paths

Format = Literal["text", "json", "sarif"]


def validate(
    paths: Sequence[str],
    *,
    fmt: Format,
    out: TextIO,
    err: TextIO | None = None,
    only: Sequence[str] = (),
) -> int:
    """Check the workspace files under ``paths``; 0 when valid, 1 when not.

    ``only`` limits the report (and the exit code) to those rule ids, for hooks such as
    "no plaintext secret". Under GitHub Actions every finding is also an annotation on
    ``err`` and the report is appended to the step summary.
    """
    from byokctl.github import Actions, render_sarif, validate_markdown  # noqa: PLC0415

    result = validate_paths(paths)
    found = [*tracked_secret_files(), *result.diagnostics]
    diagnostics = [d for d in found if not only or d.rule in only]
    ok = not any(d.severity == "error" for d in diagnostics)
    actions = Actions.from_env()
    if fmt == "sarif":
        relative = actions.relative if actions else None
        print(render_sarif(diagnostics, version=__version__, relative=relative), file=out)
    else:
        render = render_json if fmt == "json" else render_text
        print(render(diagnostics, files=len(result.files)), file=out)
    if actions is not None:
        actions.annotate(diagnostics, err or out)
        actions.append_summary(
            validate_markdown(diagnostics, files=len(result.files), relative=actions.relative)
        )
    return 0 if ok else 1
