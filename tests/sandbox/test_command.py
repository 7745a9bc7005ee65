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


def test_stream_interval_holds_a_stream_until_the_signal() -> None:
    run = _RUN.replace("slow_seconds=5.0,", "slow_seconds=5.0, stream_interval=600.0,")
    proc = subprocess.Popen(
        [sys.executable, "-c", run],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert "600 s between stream events" in banner
        url = next(
            line.split("=", 1)[1].strip()
            for line in proc.stdout
            if line.startswith("export BYOK_OPENAI_BASE_URL=")
        )
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        with (
            httpx.Client(timeout=120, trust_env=False) as client,
            client.stream(
                "POST", url + "/chat/completions", headers={"Authorization": "Bearer k"}, json=body
            ) as r,
        ):
            lines = r.iter_lines()
            assert next(lines).startswith(
                "data: "
            )  # the first event; the next waits out the interval
            proc.send_signal(signal.SIGTERM)  # stopping cuts the pauses short
            rest = list(lines)
        assert "data: [DONE]" in rest
        proc.communicate(timeout=60)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
