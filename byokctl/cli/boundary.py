"""The one error boundary of the command line.

A :class:`~byokctl.errors.ByokError` becomes a one-line message (and its hint) on stderr
and exit code 1. Ctrl-C exits 130. Anything else is a bug: a short message names a crash
log holding the traceback, and the exit code is :data:`~byokctl.errors.EXIT_CRASH` (3).
Every text that leaves the process goes through :func:`~byokctl.model.redact`, with every
secret the command has seen retained for it (:func:`~byokctl.model.retain_secrets`), also
those whose values are no longer held when the error is reported.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import sys
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from byokctl import __version__
from byokctl.errors import (
    EXIT_CRASH,
    EXIT_INTERRUPTED,
    ByokError,
    ConfigError,
    LockHeldError,
    SopsError,
    StalePlanError,
    VerificationError,
)
from byokctl.model import redact, retain_secrets

_URL_CREDENTIALS = re.compile(r"(://[^/@\s]*?:)[^/@\s]*@")


def _scrub(text: str) -> str:
    """Secrets this process has seen, and passwords in URLs (store URLs), masked."""
    return _URL_CREDENTIALS.sub(r"\1***@", redact(text))


def crash_dir() -> Path:
    """Where crash logs go: ``$XDG_CACHE_HOME/byokctl`` or ``~/.cache/byokctl``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "byokctl"


def guarded(run: Callable[[], int]) -> int:
    """Run ``run`` and turn every exception into an exit code and a safe message."""
    with retain_secrets():
        return _guarded(run)


def _guarded(run: Callable[[], int]) -> int:
    try:
        return run()
    except ByokError as exc:
        print(f"byokctl: error: {_scrub(exc.message)}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {_scrub(exc.hint)}", file=sys.stderr)
        _report_failure(exc)
        return 1
    except KeyboardInterrupt:
        print("byokctl: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        log = write_crash_log(exc)
        where = f"; details in {log}" if log else ""
        print(
            f"byokctl: unexpected error: {type(exc).__name__}{where}\n"
            "  This is a bug in byokctl; please report it with the crash log.",
            file=sys.stderr,
        )
        return EXIT_CRASH


def failure_reason(exc: ByokError) -> str | None:
    """Why a pipeline failed, as the action's ``failure-reason`` output names it."""
    if isinstance(exc, StalePlanError):
        return "plan-stale"
    if isinstance(exc, LockHeldError):
        return "state-locked"
    if isinstance(exc, ConfigError | SopsError):
        return "invalid-config"
    if isinstance(exc, VerificationError):  # refuse_failed_enable: plan and apply alike
        return "verify-failed"
    return None


def _report_failure(exc: ByokError) -> None:
    """Under GitHub Actions: the failure's class as the ``failure_reason`` step output."""
    reason = failure_reason(exc)
    if reason is None or os.environ.get("GITHUB_ACTIONS", "").lower() != "true":
        return
    from byokctl.github import Actions  # noqa: PLC0415

    actions = Actions.from_env()
    if actions is not None:
        with contextlib.suppress(ByokError):  # the error at hand matters more
            actions.set_outputs({"failure_reason": reason})


def write_crash_log(exc: BaseException) -> Path | None:
    """Write the traceback (secrets scrubbed) to a new owner-only file; None if impossible."""
    text = "".join(traceback.format_exception(exc))
    report = (
        f"byokctl {__version__} on Python {platform.python_version()} ({platform.platform()})\n"
        f"time: {datetime.now(UTC).isoformat()}\n"
        f"argv: {' '.join(sys.argv[1:])}\n\n{text}"
    )
    # Store URLs in argv or messages may carry a database password.
    report = _scrub(report)
    try:
        directory = crash_dir()
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        path = directory / f"crash-{stamp}-{os.getpid()}.log"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(report)
    except OSError:
        return None
    return path
