"""The error boundary: user errors are one line, bugs get a crash log, secrets never leak."""

from __future__ import annotations

import gc
import secrets
from pathlib import Path

import pytest

from byokctl.cli.boundary import crash_dir, guarded
from byokctl.errors import EXIT_CRASH, EXIT_INTERRUPTED, ConfigError
from byokctl.model import Secret, redact

CANARY = "sk-boundary-canary-7f3a9c1e"


def test_user_error_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    def run() -> int:
        raise ConfigError("the thing is wrong", hint="fix the thing")

    assert guarded(run) == 1
    err = capsys.readouterr().err
    assert err == "byokctl: error: the thing is wrong\n  hint: fix the thing\n"


def test_interrupt_exits_130(capsys: pytest.CaptureFixture[str]) -> None:
    def run() -> int:
        raise KeyboardInterrupt

    assert guarded(run) == EXIT_INTERRUPTED


def test_bug_writes_a_scrubbed_crash_log(capsys: pytest.CaptureFixture[str]) -> None:
    secret = Secret(CANARY)

    def run() -> int:
        raise RuntimeError(f"boom with {secret.reveal()}")

    assert guarded(run) == EXIT_CRASH
    err = capsys.readouterr().err
    assert "unexpected error: RuntimeError" in err
    assert CANARY not in err
    [log] = list(crash_dir().glob("crash-*.log"))
    text = log.read_text()
    assert "RuntimeError: boom with (sensitive)" in text
    assert CANARY not in text
    assert log.stat().st_mode & 0o077 == 0


def test_user_error_message_is_scrubbed(capsys: pytest.CaptureFixture[str]) -> None:
    secret = Secret(CANARY)

    def run() -> int:
        raise ConfigError(f"oops {secret.reveal()}")

    guarded(run)
    assert CANARY not in capsys.readouterr().err


def test_a_secret_the_command_no_longer_holds_is_still_scrubbed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = f"sk-dropped-canary-{secrets.token_hex(8)}"

    def run() -> int:
        Secret(key)  # decrypted, used and dropped before the error is reported
        gc.collect()
        raise RuntimeError(f"the provider echoed {key}")

    assert guarded(run) == EXIT_CRASH
    [log] = list(crash_dir().glob("crash-*.log"))
    assert key not in log.read_text()
    assert key not in capsys.readouterr().err
    # After the command, a process does not keep the keys it no longer holds.
    gc.collect()
    assert redact(key) == key


def test_crash_dir_is_not_the_real_home(tmp_path: Path) -> None:
    assert "pytest" in str(crash_dir()) or str(tmp_path.parent) in str(crash_dir())
