"""``byokctl.commands.sandbox.sandbox``: run as a real process, stopped by a real signal."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from byokctl.commands.sandbox import sandbox
from byokctl.errors import ByokError
from byokctl.sandbox import MARKERS, Sandbox

_RUN = (
    "import sys; from byokctl.commands.sandbox import sandbox; "
    "raise SystemExit(sandbox(port=0, latency=0.0, slow_seconds=5.0, out=sys.stdout))"
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_prints_exports_serves_and_stops_on_signal(sig: signal.Signals) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _RUN],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        exports: dict[str, str] = {}
        for line in proc.stdout:
            if m := re.fullmatch(r"export (\w+)=(\S+)\n", line):
                exports[m[1]] = m[2]
            if line.startswith("#   anything else"):
                break
        assert set(exports) == {
            "BYOK_SANDBOX_URL",
            "BYOK_OPENAI_BASE_URL",
            "BYOK_ANTHROPIC_BASE_URL",
            "BYOK_GEMINI_BASE_URL",
            "BYOK_AZURE_OPENAI_BASE_URL",
            "BYOK_XAI_BASE_URL",
            "BYOK_DEEPSEEK_BASE_URL",
            "BYOK_OPENAI_COMPATIBLE_BASE_URL",
        }
        r = httpx.get(
            exports["BYOK_OPENAI_BASE_URL"] + "/models",
            headers={"Authorization": "Bearer sk-CANARY-cmd"},
            trust_env=False,
        )
        assert r.status_code == 200
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert "GET /openai/v1/models -> 200" in err
        assert "CANARY" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_port_in_use_is_a_user_error() -> None:
    with Sandbox() as busy, pytest.raises(ByokError, match="cannot listen") as caught:
        sandbox(port=busy.port, latency=0.0, slow_seconds=5.0, out=sys.stdout)
    assert caught.value.hint is not None


def test_docs_list_every_marker() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "sandbox.md").read_text()
    for marker in MARKERS:
        for substring in marker.substrings:
            assert f"`{substring}`" in doc
