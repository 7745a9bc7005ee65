"""The loop an app in any language runs, with curl alone (as docs/serve.md shows it).

resolve → call the provider → report its raw answer → use the fallback route. The
"provider" is the project's sandbox on loopback; its key markers choose its answer.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from byokctl.sandbox import Sandbox
from tests.resolver.helpers import put, workspace
from tests.serve.conftest import Served

CURL = shutil.which("curl")
pytestmark = pytest.mark.skipif(CURL is None, reason="no curl binary on PATH")


def curl(*args: str) -> tuple[int, str]:
    assert CURL is not None
    done = subprocess.run(
        [CURL, "-sS", "-o", "-", "-w", "\n%{http_code}", *args],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    body, _, code = done.stdout.rpartition("\n")
    return int(code), body


def test_resolve_call_report_fallback_with_curl(served: Served) -> None:
    sandbox = Sandbox(port=0)
    sandbox.start()
    try:
        # a key the sandbox answers 401 "invalid key" to
        put(served.store, workspace("acme-support", "openai", key="sk-sandbox-invalid-0001"))
        served.resolver.refresh()
        auth = f"Authorization: Bearer {served.tokens['keys']}"
        code, body = curl(
            "-X", "POST", f"{served.url}/api/v1/resolve", "-H", auth,
            "-H", "Content-Type: application/json",
            "-d", '{"workspace": "acme-support", "feature": "assist", "include_key": true}',
        )  # fmt: skip
        assert code == 200, body
        route = json.loads(body)
        assert route["provider"] == "openai"
        # the app calls the provider with the route's key ...
        status, answer = curl(
            "-X", "POST", f"{sandbox.url}/openai/v1/chat/completions",
            "-H", f"Authorization: Bearer {route['api_key']}",
            "-H", "Content-Type: application/json",
            "-d", json.dumps({"model": route["model"], "messages": [{"role": "user", "content": "hi"}]}),
        )  # fmt: skip
        assert status == 401
        # ... and reports the raw answer; the server classifies it and names the fallback
        report = json.dumps({"route_id": route["route_id"], "status": status, "body": answer})
        code, body = curl(
            "-X", "POST", f"{served.url}/api/v1/report", "-H", auth,
            "-H", "Content-Type: application/json", "-d", report,
        )  # fmt: skip
        assert code == 200, body
        result = json.loads(body)
        assert result["outcome"] == "invalid_key"
        assert result["fallback"]["provider"] == "neo"
        # the fallback's own report closes the loop
        code, body = curl(
            "-X", "POST", f"{served.url}/api/v1/report", "-H", auth,
            "-H", "Content-Type: application/json",
            "-d", json.dumps({"route_id": result["fallback"]["route_id"], "outcome": "ok"}),
        )  # fmt: skip
        assert code == 200
        assert json.loads(body)["fallback"] is None
        code, body = curl(
            f"{served.url}/api/v1/workspaces/acme-support",
            "-H",
            auth.replace(served.tokens["keys"], served.tokens["read"]),
        )
        assert json.loads(body)["reason"] == "provider_failed:invalid_key"
    finally:
        sandbox.stop()
