"""GitHub Actions' workflow commands and environment files, written safely.

The runner reads every line a step prints on stdout *and* stderr; a line whose first
non-blank characters are ``::`` is a command (``::error``, ``::add-mask``,
``::stop-commands`` …). byokctl prints text that comes from the repository (file paths,
workspace names, messages quoting values), so under ``GITHUB_ACTIONS=true`` two rules
hold:

- the commands byokctl means to send are built by :func:`workflow_command`, which
  escapes the message (``%``, CR, LF) and every property (also ``:`` and ``,``), as
  GitHub's own toolkit does, so a value cannot end the command early or add a second;
- everything else goes through :class:`CommandGuard`, which defuses any line that would
  start with ``::`` (the runner splits lines on CR as well as LF, so both count).

``$GITHUB_OUTPUT`` is written in the heredoc form with a random delimiter, and
``$GITHUB_STEP_SUMMARY`` is appended to; both are files the runner reads after the step.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import stat
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TextIO

from byokctl.config.diagnostics import Diagnostic, Severity
from byokctl.errors import ByokError

#: GitHub truncates a step summary over 1 MiB; byokctl keeps each part well under it.
STEP_SUMMARY_LIMIT: Final = 1024 * 1024

#: What a defused line starts with: visible, so a reviewer sees that something tried.
DEFUSED_PREFIX: Final = "[escaped] "

# Every line boundary anyone might honour: the runner (.NET ReadLine: CR, LF, CRLF) and
# more (Python's str.splitlines set), so splitting here is never coarser than the runner's.
_LINE_END = re.compile(r"(\r\n|[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029])")
_OUTPUT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def escape_data(text: str) -> str:
    """A command's message, escaped as GitHub's toolkit does (``%``, CR, LF)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A command's property value: as :func:`escape_data`, and ``:`` and ``,`` too."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


_OTHER_LINE_ENDS = re.compile(r"[\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def _one_line(text: str) -> str:
    # CR and LF are escaped by escape_data; a separator the runner does not split on
    # could still split the line in a log viewer, so it becomes a space.
    return _OTHER_LINE_ENDS.sub(" ", text)


def workflow_command(name: str, message: str, properties: Mapping[str, str | int] = {}) -> str:
    """``::name k=v,…::message`` with every part escaped; ``name`` is ours, never input."""
    if not re.fullmatch(r"[a-z][a-z-]*", name):
        raise ValueError(f"not a workflow command name: {name!r}")
    props = ",".join(f"{k}={escape_property(_one_line(str(v)))}" for k, v in properties.items())
    return f"::{name}{' ' + props if props else ''}::{escape_data(_one_line(message))}"


def _defuse(line: str) -> str:
    return DEFUSED_PREFIX + line if line.lstrip().startswith("::") else line


class CommandGuard(io.TextIOBase):
    """A text stream that passes text through but never lets a line start with ``::``.

    Text is released line by line; a partial line is held only while it could still turn
    into a command (blanks and at most one ``:`` so far). :meth:`command` writes one of
    byokctl's own commands, on a line of its own.
    """

    def __init__(self, inner: TextIO) -> None:
        super().__init__()
        self._inner = inner
        self._partial = ""  # the unfinished current line, not yet written
        self._decided = False  # whether the current line's start was already written
        self._at_runner_line_start = True  # the last character written was CR or LF

    def _emit(self, text: str) -> None:
        if text:
            self._inner.write(text)
            self._at_runner_line_start = text[-1] in "\r\n"

    def write(self, text: str) -> int:
        """Write ``text``, defusing every line that would start with ``::``."""
        parts = _LINE_END.split(text)
        # parts alternates: text, line end, text, line end, …, text (the unfinished rest)
        for i in range(0, len(parts) - 1, 2):
            line, end = self._partial + parts[i], parts[i + 1]
            self._emit((line if self._decided else _defuse(line)) + end)
            self._partial, self._decided = "", False
        self._partial += parts[-1]
        self._release()
        return len(text)

    def _release(self) -> None:
        if not self._partial:
            return
        if self._decided:
            self._emit(self._partial)
            self._partial = ""
        elif self._partial.lstrip() not in ("", ":"):
            # Enough of this line's start is known: write it (defused if it is a command).
            self._emit(_defuse(self._partial))
            self._partial, self._decided = "", True

    def command(self, line: str) -> None:
        """Write ``line`` (from :func:`workflow_command`) as a command of its own."""
        if self._partial or self._decided:
            self._emit(self._partial if self._decided else _defuse(self._partial))
            self._partial, self._decided = "", False
        if not self._at_runner_line_start:
            # The runner only starts a line after CR or LF (not after U+2028 and the like).
            self._emit("\n")
        self._emit(line + "\n")

    def flush(self) -> None:
        self._inner.flush()

    def close(self) -> None:
        """Write a held partial line (defused) and flush; the inner stream stays open."""
        if self._partial:
            self._emit(_defuse(self._partial) if not self._decided else self._partial)
            self._partial = ""
        self._inner.flush()
        super().close()

    def isatty(self) -> bool:
        return self._inner.isatty()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self._inner, "encoding", "utf-8"))


@contextlib.contextmanager
def guard_streams() -> Iterator[None]:
    """Within the block, ``sys.stdout`` and ``sys.stderr`` never print a line starting ``::``.

    stdout is left alone when it is redirected into a regular file (the runner does not
    read it, and data such as ``--format markdown > comment.md`` must stay exact).
    """
    saved = sys.stdout, sys.stderr
    guards = []
    if runner_reads(sys.stdout):
        sys.stdout = guard = CommandGuard(saved[0])
        guards.append(guard)
    sys.stderr = guard = CommandGuard(saved[1])
    guards.append(guard)
    try:
        yield
    finally:
        for g in guards:
            g.close()
        sys.stdout, sys.stderr = saved


def send_command(stream: TextIO, line: str) -> None:
    """Print one of byokctl's own workflow commands on ``stream`` (guarded or not)."""
    if isinstance(stream, CommandGuard):
        stream.command(line)
    else:
        print(line, file=stream)


def runner_reads(stream: TextIO) -> bool:
    """Whether the runner may read ``stream``: anything but a redirect into a regular file."""
    try:
        return not stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError, io.UnsupportedOperation):
        return True


@dataclass(frozen=True)
class Actions:
    """The GitHub Actions environment of this process (``GITHUB_ACTIONS=true``)."""

    workspace: Path | None
    output_file: Path | None
    summary_file: Path | None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Actions | None:
        """The Actions environment, or ``None`` when not running in GitHub Actions."""
        if env.get("GITHUB_ACTIONS", "").lower() != "true":
            return None

        def path(name: str) -> Path | None:
            value = env.get(name)
            return Path(value) if value else None

        return cls(path("GITHUB_WORKSPACE"), path("GITHUB_OUTPUT"), path("GITHUB_STEP_SUMMARY"))

    def relative(self, path: str) -> str:
        """``path`` (as byokctl shows it) relative to ``GITHUB_WORKSPACE``, for annotations."""
        if self.workspace is None:
            return path
        full = Path(os.path.realpath(path))
        root = Path(os.path.realpath(self.workspace))
        if not full.is_relative_to(root):
            return path
        return full.relative_to(root).as_posix()

    def annotate(self, diagnostics: Iterable[Diagnostic], stream: TextIO) -> None:
        """One ``::error``/``::warning`` command per diagnostic, on ``stream``."""
        for line in annotation_commands(diagnostics, relative=self.relative):
            send_command(stream, line)

    def set_outputs(self, values: Mapping[str, str]) -> None:
        """Append step outputs to ``$GITHUB_OUTPUT`` (nothing when it is not set)."""
        if self.output_file is not None:
            _append(self.output_file, format_outputs(values), "GITHUB_OUTPUT")

    def append_summary(self, markdown: str) -> None:
        """Append Markdown to ``$GITHUB_STEP_SUMMARY`` (nothing when it is not set)."""
        if self.summary_file is not None:
            _append(self.summary_file, markdown.rstrip("\n") + "\n\n", "GITHUB_STEP_SUMMARY")


def annotation_commands(
    diagnostics: Iterable[Diagnostic], *, relative: Callable[[str], str] | None = None
) -> list[str]:
    """The workflow commands for ``diagnostics``: file, line, column, rule as title."""
    lines = []
    for d in diagnostics:
        message = f"{d.message}\n{d.hint}" if d.hint else d.message
        lines.append(
            workflow_command(
                "error" if d.severity is Severity.ERROR else "warning",
                message,
                {
                    "file": relative(d.path) if relative else d.path,
                    "line": d.line,
                    "col": d.column,
                    "title": d.rule,
                },
            )
        )
    return lines


def format_outputs(values: Mapping[str, str]) -> str:
    """``$GITHUB_OUTPUT`` text: each value in the heredoc form, with a fresh delimiter."""
    chunks = []
    for name, value in values.items():
        if not _OUTPUT_NAME.fullmatch(name):
            raise ValueError(f"not an output name: {name!r}")
        delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        # A value cannot contain a random 128-bit delimiter by accident; refuse on purpose.
        if delimiter in value:
            raise ValueError("output value contains its delimiter")
        chunks.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
    return "".join(chunks)


def _append(path: Path, text: str, variable: str) -> None:
    try:
        with path.open("a", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise ByokError(
            f"cannot write ${variable} ({path}): {exc.strerror}",
            hint="the runner sets it to a writable file; unset it to run outside Actions",
        ) from None


def plan_outputs(summary: Sequence[int], *, has_changes: bool) -> dict[str, str]:
    """The outputs ``plan`` sets: ``changes``, ``to_add``, ``to_change``, ``to_destroy``."""
    add, change, destroy = summary
    return {
        "changes": "true" if has_changes else "false",
        "to_add": str(add),
        "to_change": str(change),
        "to_destroy": str(destroy),
    }
