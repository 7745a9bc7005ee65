"""``byokctl serve`` as a process: starts on the store, takes its tokens file, stops on SIGTERM.

The shutdown closes the resolver, which flushes the credit buffer: the charges of the
requests answered before the signal are in the ledger once the process has exited.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from byokctl.serve.auth import add_token
from byokctl.store import MasterKey, open_store
from byokctl.store.runtime import open_runtime_store
from tests.resolver.helpers import CANARY, put, workspace
from tests.waiting import wait_until

BYOKCTL = Path(sys.executable).parent / "byokctl"


def test_serve_runs_on_the_store_takes_tokens_and_flushes_on_sigterm(
    tmp_path: Path, store_url: str, master_key: MasterKey
) -> None:
    with open_store(store_url, master_key=master_key) as store:
        put(store, workspace("acme-support", "openai"))
    tokens = tmp_path / "tokens"
    token = add_token(tokens, frozenset({"resolve"}))
    env = {
        **os.environ,
        "BYOK_MASTER_KEY": master_key.to_base64(),
        "BYOK_SERVE_TOKENS_FILE": str(tokens),
    }
    proc = subprocess.Popen(
        [str(BYOKCTL), "serve", "--port", "0", "--store", store_url],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[str] = []
    assert proc.stderr is not None
    stderr = proc.stderr

    def read() -> None:
        for line in stderr:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        found = wait_until(
            lambda: next(
                (
                    m
                    for line in lines
                    if (m := re.search(r"running on http://127\.0\.0\.1:(\d+)", line))
                ),
                None,
            ),
            what="uvicorn's 'running on' line",
        )
        base = f"http://127.0.0.1:{found.group(1)}"
        with httpx.Client(base_url=base, timeout=30) as c:
            assert c.get("/healthz").status_code == 200
            assert c.post("/api/v1/resolve", json={"workspace": "acme-support"}).status_code == 401
            auth = {"Authorization": f"Bearer {token}"}
            for feature in ("assist", "summarize", "auto_reply"):
                r = c.post("/api/v1/resolve", json={"workspace": "acme-support", "feature": feature},
                           headers=auth)  # fmt: skip
                assert r.status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=10)
    output = "".join(lines)
    assert "Traceback" not in output
    assert CANARY not in output and token not in output
    runtime = open_runtime_store(store_url)
    try:
        usage = {u.feature: u.credits for u in runtime.credit_usage(workspace="acme-support")}
    finally:
        runtime.close()
    assert usage == {"assist": 1, "summarize": 1, "auto_reply": 1}
