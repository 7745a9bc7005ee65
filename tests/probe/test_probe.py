"""``byokctl probe`` against the sandbox, a SQLite store and a real SMTP server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from byokctl.sandbox import Sandbox
from tests.cli.running import run_cli
from tests.conftest import Repo, workspace_yaml
from tests.resolver.conftest import Mailbox
from tests.waiting import wait_until

GOOD = "sk-probe-good-canary-1a2b3c4d"
REVOKED = "sk-probe-invalid-canary-9f8e7d6c"


def _apply(repo: Repo) -> None:
    # --no-verify: the store is to hold a key the provider refuses (revoked after apply).
    code, out, err = run_cli("apply", "--auto-approve", "--no-verify")
    assert code == 0, out + err


def _fleet(repo: Repo) -> None:
    repo.write("good", workspace_yaml("good", enabled="openai", keys={"openai": GOOD}))
    repo.write(
        "revoked",
        workspace_yaml("revoked", enabled="anthropic", keys={"anthropic": REVOKED}),
    )
    repo.write("neo", workspace_yaml("neo", keys={"openai": GOOD}))
    _apply(repo)


def _open_episodes() -> list[tuple[str, str]]:
    code, out, err = run_cli("status", "--format", "json")
    assert code == 0, err
    return [
        (ws["name"], episode["outcome"])
        for ws in json.loads(out)["workspaces"]
        for episode in ws["open_episodes"]
    ]


def test_a_revoked_key_opens_one_episode_and_one_email_before_any_action(
    repo: Repo, sandbox: Sandbox, mailbox: Mailbox
) -> None:
    _fleet(repo)
    code, out, err = run_cli("resolve", "revoked", "--format", "json")
    assert json.loads(out)["reason"] == "byok", "nothing is known about the key yet"

    code, out, err = run_cli("probe", "--store-only", "--format", "json")
    assert code == 1, err
    report = json.loads(out)
    found = {(r["workspace"], r["provider"], r["outcome"]) for r in report["results"]}
    assert found == {("good", "openai", "ok"), ("revoked", "anthropic", "invalid_key")}
    assert report["emails_sent"] == 1
    assert all(r["recorded"] for r in report["results"])
    messages = mailbox.wait_for(1)
    assert len(messages) == 1
    recipients, message = messages[0]
    assert recipients == ["ops@example.com"]
    assert "revoked" in message["Subject"] and "invalid_key" in message["Subject"]
    assert _open_episodes() == [("revoked", "invalid_key")]

    code, out, _ = run_cli("resolve", "revoked", "--format", "json")
    assert code == 0
    assert json.loads(out)["reason"] == "provider_failed:invalid_key"
    assert json.loads(run_cli("resolve", "good", "--format", "json")[1])["reason"] == "byok"
    # No user action ran: the provider saw only the read-only list calls of the probe.
    assert {(r.method, r.path) for r in sandbox.requests} == {
        ("GET", "/openai/v1/models"),
        ("GET", "/anthropic/v1/models"),
    }

    # Probing again: the episode is open already; no second one, no second e-mail.
    code, out, _ = run_cli("probe", "--store-only", "--format", "json", "--no-cache")
    assert code == 1
    assert json.loads(out)["emails_sent"] == 0
    assert _open_episodes() == [("revoked", "invalid_key")]
    assert len(mailbox.wait_for(2, timeout=0.5)) == 1
    for text in (out, err, str(messages)):
        assert GOOD not in text and REVOKED not in text


def test_a_healthy_fleet_exits_0_and_records_nothing(
    repo: Repo, sandbox: Sandbox, mailbox: Mailbox
) -> None:
    repo.write("good", workspace_yaml("good", enabled="openai", keys={"openai": GOOD}))
    repo.write("grok", workspace_yaml("grok", enabled="xai", keys={"xai": GOOD}))
    _apply(repo)
    code, out, err = run_cli("probe", "--store-only")
    assert code == 0, out + err
    assert "Probed 2 key(s): 2 ok, 0 failed; 0 e-mail(s) sent." in out
    assert _open_episodes() == []
    # xAI's key status is part of the probe, as in verification.
    assert ("GET", "/xai/v1/api-key") in {(r.method, r.path) for r in sandbox.requests}


def test_files_not_applied_yet_are_probed_but_not_recorded(
    repo: Repo, sandbox: Sandbox, mailbox: Mailbox
) -> None:
    repo.write("good", workspace_yaml("good", enabled="openai", keys={"openai": GOOD}))
    _apply(repo)
    # The file now holds another (revoked) key that was never applied.
    repo.write("good", workspace_yaml("good", enabled="openai", keys={"openai": REVOKED}))
    code, out, _ = run_cli("probe", "--format", "json")
    assert code == 1
    (result,) = json.loads(out)["results"]
    assert (result["outcome"], result["recorded"]) == ("invalid_key", False)
    assert _open_episodes() == []
    code, out, _ = run_cli("probe")  # the text says why, not that the workspace is missing
    assert "not recorded: the store holds other credentials; apply first" in out
    assert json.loads(run_cli("resolve", "good", "--format", "json")[1])["reason"] == "byok"


def test_a_low_balance_sends_one_running_low_email_per_episode(
    repo: Repo, sandbox: Sandbox, mailbox: Mailbox, tmp_path: Path
) -> None:
    text = workspace_yaml("deep", enabled="deepseek", keys={"deepseek": GOOD})
    # The sandbox's balance is 10.00: below a threshold of 25.
    repo.write("deep", text.replace("      api_key:", "      low_balance: 25\n      api_key:"))
    _apply(repo)
    code, out, _ = run_cli("probe", "--store-only", "--format", "json", "--no-cache")
    assert code == 0, "a low balance is not a failure"
    (result,) = json.loads(out)["results"]
    assert (result["balance"], result["low_balance"], result["running_low"]) == (10.0, 25.0, True)
    assert json.loads(out)["low_balance_emails"] == 1
    (_, message), *_ = mailbox.wait_for(1)
    assert "running low" in message["Subject"]
    assert GOOD not in message.as_string()
    code, out, _ = run_cli("probe", "--store-only", "--format", "json", "--no-cache")
    assert json.loads(out)["low_balance_emails"] == 0, "one e-mail per episode"
    assert len(mailbox.wait_for(2, timeout=0.5)) == 1
    assert _open_episodes() == [], "running low is not a failure episode"


def test_every_probes_until_sigterm(repo: Repo, sandbox: Sandbox) -> None:
    repo.write("good", workspace_yaml("good", enabled="openai", keys={"openai": GOOD}))
    _apply(repo)
    proc = subprocess.Popen(
        [sys.executable, "-m", "byokctl", "probe", "--store-only", "--every", "10m"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        assert proc.stdout is not None
        line = wait_until(proc.stdout.readline, what="the first round's output")
        assert line.startswith("good")
        wait_until(lambda: "Probed 1 key(s)" in proc.stdout.readline(), what="the summary")  # type: ignore[union-attr]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("every", ["5", "soon", "1s"])
def test_every_refuses_what_is_not_a_duration(repo: Repo, every: str) -> None:
    code, _, err = run_cli("probe", "--store-only", "--every", every)
    assert code == 1
    assert "--every" in err


def test_paths_and_store_only_together_are_refused(repo: Repo) -> None:
    code, _, err = run_cli("probe", "--store-only", "workspaces")
    assert code == 1
    assert "not both" in err


def test_the_email_names_a_compatible_provider_by_its_display_name(
    repo: Repo, sandbox: Sandbox, mailbox: Mailbox
) -> None:
    text = workspace_yaml("gw", enabled="openai_compatible", keys={"openai_compatible": REVOKED})
    repo.write("gw", text.replace("      api_key:", "      name: Acme gateway\n      api_key:"))
    _apply(repo)
    code, out, _ = run_cli("probe", "--store-only", "--format", "json")
    assert code == 1
    assert json.loads(out)["results"][0]["outcome"] == "invalid_key"
    ((_, message),) = mailbox.wait_for(1)
    assert "Acme gateway failed" in message["Subject"]
    assert "Provider:   Acme gateway (openai_compatible)" in str(message.get_payload(decode=True))
    assert REVOKED not in message.as_string()
