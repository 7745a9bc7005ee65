"""plan, apply and models with verification: real sops files, SQLite, a loopback provider."""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from byokctl.cli import main
from byokctl.commands.apply import apply
from byokctl.commands.models import models
from byokctl.commands.plan import plan
from byokctl.errors import ByokError
from byokctl.model import Workspace
from byokctl.plan import Action, Change, CheckFinding, CredentialCheck, Plan
from byokctl.verify import enable_findings, refuse_failed_enable, with_checks
from tests.conftest import Repo, workspace_yaml
from tests.verify.conftest import ProviderServer, Reply
from tests.verify.shapes import env_for, serve_ok

GOOD = "sk-cmd-canary-good-7a6b5c4d3e2f1"
BAD = "sk-cmd-canary-bad-0f1e2d3c4b5a6"
#: The provider is down for this key (503, after its retries): a transient outcome.
DOWN = "sk-cmd-canary-down-5e6f7a8b9c0d1"


@pytest.fixture
def repo(
    make_repo: Callable[[], Repo],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    provider_server: ProviderServer,
) -> Repo:
    repo = make_repo()
    monkeypatch.chdir(repo.root)
    monkeypatch.setenv("BYOK_STORE", f"sqlite:///{tmp_path}/state.db")
    monkeypatch.setenv("BYOK_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())
    for name, value in env_for(provider_server).items():
        monkeypatch.setenv(name, value)

    def by_key(seen: object) -> Reply:
        auth = getattr(seen, "headers", {}).get("authorization", "")
        if BAD in auth:
            return Reply(401, {"error": {"code": "invalid_api_key", "message": "bad key"}})
        if DOWN in auth:  # Retry-After 0: the runner's retries cost no waiting
            body = {"error": {"type": "server_error", "message": "overloaded"}}
            return Reply(503, body, {"retry-after": "0"})
        return Reply(200, {"object": "list", "data": [{"id": "gpt-4o"}, {"id": "gpt-4o-mini"}]})

    provider_server.route("/openai/v1/models", by_key)
    serve_ok(provider_server, "anthropic")
    return repo


def _run_plan(
    fmt: str = "text", *, detailed: bool = False, verify: bool = True, out_file: Path | None = None
) -> tuple[int, str, str]:
    """``plan``'s exit code as the CLI's error boundary makes it (a ByokError is 1)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        code = plan(
            [], store=None, fmt=fmt, out_file=out_file, detailed_exitcode=detailed,  # type: ignore[arg-type]
            targets=[], verify=verify, out=out, err=err, parallelism=4,
        )  # fmt: skip
    except ByokError as exc:
        print(f"byokctl: error: {exc}", file=err)
        code = 1
    return code, out.getvalue(), err.getvalue()


def _run_apply(verify: bool = True) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = apply(
        [], store=None, auto_approve=True, lock_timeout=5, verify=verify, out=out, err=err,
        confirm=None, parallelism=4,
    )  # fmt: skip
    return code, out.getvalue(), err.getvalue()


def test_plan_shows_checks_in_every_format(repo: Repo, provider_server: ProviderServer) -> None:
    repo.write(
        "alpha", workspace_yaml("alpha", enabled="openai", keys={"openai": GOOD, "anthropic": GOOD})
    )
    repo.write("beta", workspace_yaml("beta", keys={"openai": BAD}))
    code, out, err = _run_plan()
    assert code == 0
    assert "# verify openai: ok (gpt-4o is available" in out
    assert "# verify anthropic: ok" in out
    assert "# verify openai: invalid_key" in out
    _, doc, _ = _run_plan("json")
    assert "invalid_key" in doc
    _, md, _ = _run_plan("markdown")
    assert "invalid_key" in md
    for text in (out, err, doc, md):
        assert GOOD not in text and BAD not in text
    # Second plan within the cache's lifetime: no provider call at all.
    before = len(provider_server.seen())
    _run_plan()
    assert len(provider_server.seen()) == before


def test_apply_refuses_a_failed_enable(repo: Repo) -> None:
    repo.write("beta", workspace_yaml("beta", enabled="openai", keys={"openai": BAD}))
    with pytest.raises(
        ByokError, match=r"refusing to enable.*beta \(openai: invalid_key\)"
    ) as info:
        _run_apply()
    assert info.value.hint is not None and "--no-verify" in info.value.hint
    assert _run_apply(verify=False)[0] == 0


def test_apply_allows_verified_enable(repo: Repo) -> None:
    repo.write("alpha", workspace_yaml("alpha", enabled="openai", keys={"openai": GOOD}))
    code, out, _ = _run_apply()
    assert code == 0
    assert "Apply complete" in out


def test_apply_allows_failed_provider_that_is_not_enabled(repo: Repo) -> None:
    repo.write(
        "alpha",
        workspace_yaml("alpha", enabled="anthropic", keys={"openai": BAD, "anthropic": GOOD}),
    )
    assert _run_apply()[0] == 0


def test_models_command(repo: Repo) -> None:
    path = repo.write("alpha", workspace_yaml("alpha", enabled="openai", keys={"openai": GOOD}))
    out, err = io.StringIO(), io.StringIO()
    assert models(path, "openai", fmt="text", out=out, err=err) == 0
    assert out.getvalue().splitlines() == ["gpt-4o  (configured)", "gpt-4o-mini"]
    out = io.StringIO()
    assert models(path, "openai", fmt="json", out=out, err=err) == 0
    doc = json.loads(out.getvalue())
    assert doc["models"] == ["gpt-4o", "gpt-4o-mini"] and doc["model_available"] is True
    assert GOOD not in out.getvalue() + err.getvalue()
    with pytest.raises(ByokError, match="does not configure anthropic"):
        models(path, "anthropic", fmt="text", out=out, err=err)


def test_models_command_bad_key(repo: Repo) -> None:
    path = repo.write("beta", workspace_yaml("beta", keys={"openai": BAD}))
    out, err = io.StringIO(), io.StringIO()
    assert models(path, "openai", fmt="text", out=out, err=err) == 1
    assert "invalid_key" in err.getvalue()
    assert BAD not in err.getvalue()


def _change(
    name: str,
    enabled: str | None,
    checks: tuple[CredentialCheck, ...],
    action: Action = Action.UPDATE,
) -> Change:
    return Change(name, action, ("r",), after=Workspace(name, enabled=enabled), checks=checks)


def _plan(*changes: Change) -> Plan:
    return Plan(changes, serial=1, sources={}, created_at=datetime.now(UTC))


def test_refuse_failed_enable_rules() -> None:
    ok = (CredentialCheck("openai", "ok"),)
    bad = (CredentialCheck("openai", "invalid_key"),)
    refuse_failed_enable(_plan(_change("a", "openai", ok)))
    refuse_failed_enable(_plan(_change("a", None, bad)))  # Neo: nothing enabled
    refuse_failed_enable(_plan(_change("a", "openai", bad, Action.NOOP)))  # nothing written
    with pytest.raises(ByokError, match=r"a \(openai: invalid_key\)"):
        refuse_failed_enable(_plan(_change("a", "openai", bad)))
    with pytest.raises(ByokError, match="not_verified"):
        refuse_failed_enable(_plan(_change("a", "openai", ())))
    # The transient side of the rule: the provider said nothing about the key.
    for transient in ("outage", "rate_limited", "timeout"):
        outage = CredentialCheck("openai", transient, "busy")
        warnings = refuse_failed_enable(_plan(_change("a", "openai", (outage,))))
        assert warnings == (CheckFinding("a", "openai", transient, "busy"),)
    # An answer nobody could read confirms nothing either way: refused, retry advised.
    with pytest.raises(ByokError) as info:
        refuse_failed_enable(
            _plan(_change("a", "openai", (CredentialCheck("openai", "unexpected"),)))
        )
    assert info.value.hint is not None and "retry later" in info.value.hint
    bad_format = CredentialCheck("openai", "invalid_key_format")
    with pytest.raises(ByokError, match="invalid_key_format"):
        refuse_failed_enable(_plan(_change("a", "openai", (bad_format,))))


def test_enable_findings_is_what_with_checks_records() -> None:
    p = _plan(
        _change("a", "openai", ()),
        _change("b", "openai", ()),
        _change("c", "openai", ()),
        _change("d", None, ()),
    )
    got = with_checks(
        p,
        {
            "a": (CredentialCheck("openai", "invalid_key", "bad"),),
            "b": (CredentialCheck("openai", "timeout", "slow"),),
            "c": (CredentialCheck("openai", "ok"),),
            "d": (CredentialCheck("openai", "invalid_key"),),
        },
    )
    assert got.errors == (CheckFinding("a", "openai", "invalid_key", "bad"),)
    assert got.warnings == (CheckFinding("b", "openai", "timeout", "slow"),)
    assert (got.errors, got.warnings) == enable_findings(got)


def test_with_checks_attaches_by_name() -> None:
    p = _plan(_change("a", "openai", ()), _change("b", None, ()))
    got = with_checks(p, {"a": (CredentialCheck("openai", "ok", "fine"),)})
    assert got.change("a").checks == (CredentialCheck("openai", "ok", "fine"),)
    assert got.change("b").checks == ()


# --- plan and apply judge by one rule (through the CLI and its error boundary) -----------


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_fails_what_apply_refuses_in_every_format(
    repo: Repo, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    repo.write("alpha", workspace_yaml("alpha", enabled="openai", keys={"openai": GOOD}))
    repo.write("beta", workspace_yaml("beta", enabled="openai", keys={"openai": BAD}))
    for detailed in ((), ("--detailed-exitcode",)):
        code, out, err = _cli(capsys, "plan", *detailed)
        assert code == 1, (detailed, err)
        # The failure comes before the plan body, naming workspace, provider and outcome.
        assert out.startswith("Error: apply would refuse this plan: 1 workspace")
        assert out.index("beta: openai (enabled): invalid_key") < out.index("byokctl will")
        assert "refusing to enable providers whose verification failed: beta" in err
        assert "Traceback" not in err
    code, out, _ = _cli(capsys, "plan", "--format", "json", "--detailed-exitcode")
    assert code == 1
    doc = json.loads(out)
    assert [(e["workspace"], e["provider"], e["outcome"]) for e in doc["errors"]] == [
        ("beta", "openai", "invalid_key")
    ]
    code, out, _ = _cli(capsys, "plan", "--format", "markdown")
    assert code == 1
    assert out.index("> [!CAUTION]") < out.index("**Plan:") < out.index("<details>")
    assert "`beta`: openai `invalid_key`" in out[: out.index("<details>")]
    # The saved plan keeps the failure (a PR comment made from it shows it) and apply
    # refuses it, as plan said it would.
    saved = tmp_path / "refused.plan"
    assert _cli(capsys, "plan", "--out", str(saved))[0] == 1
    assert json.loads(saved.read_text())["errors"][0]["workspace"] == "beta"
    code, out, _ = _cli(capsys, "show", str(saved), "--format", "markdown")
    assert code == 0 and out.index("> [!CAUTION]") < out.index("<details>")
    code, _, err = _cli(capsys, "apply", str(saved))
    assert code == 1 and "refusing to enable" in err
    code, _, err = _cli(capsys, "apply", "--auto-approve")
    assert code == 1 and "refusing to enable providers whose verification failed: beta" in err
    # --no-verify keeps today's contract: changes present is 2.
    assert _cli(capsys, "plan", "--no-verify", "--detailed-exitcode")[0] == 2
    for text in capsys.readouterr():
        assert GOOD not in text and BAD not in text


def test_a_transient_outcome_warns_and_plan_and_apply_both_go_ahead(
    repo: Repo, capsys: pytest.CaptureFixture[str], provider_server: ProviderServer, tmp_path: Path
) -> None:
    repo.write("gamma", workspace_yaml("gamma", enabled="openai", keys={"openai": DOWN}))
    saved = tmp_path / "gamma.plan"
    code, out, err = _cli(capsys, "plan", "--detailed-exitcode", "--out", str(saved))
    assert code == 2, err  # changes present, and nothing apply would refuse
    assert out.startswith("Warning: the provider could not confirm the credentials")
    assert "gamma: openai (enabled): outage" in out
    code, out, _ = _cli(capsys, "plan", "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["errors"] == []
    assert [w["outcome"] for w in doc["warnings"]] == ["outage"]
    # apply PLANFILE verifies again, warns on stderr, and applies.
    code, out, err = _cli(capsys, "apply", str(saved))
    assert code == 0, err
    assert "warning: not confirmed now: gamma: openai (enabled): outage" in err
    code, out, _ = _cli(capsys, "state", "show", "gamma", "--format", "json")
    assert code == 0 and json.loads(out)["enabled"] == "openai"
    # apply from the files shows the warning first and applies as well.
    repo.write("theta", workspace_yaml("theta", enabled="openai", keys={"openai": DOWN}))
    code, out, err = _cli(capsys, "apply", "--auto-approve")
    assert code == 0, err
    assert out.startswith("Warning: the provider could not confirm") and "Apply complete" in out
    # The outage was retried each time, never cached: it says nothing about the key.
    assert len(provider_server.seen("/openai/v1/models")) >= 4 * 3


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ('"sk-cmd-canary-newline-1f2e3d4c5b\\n"', "it ends with a line break"),
        ('"sk-cmd-canary inner-space-9a8b7c"', "it contains whitespace (character 14 of 32)"),
        ("sk-cmd-canary-n\u00e4ive-6d5c4b3a2f", "it contains a non-ASCII character"),
    ],
)
def test_a_key_no_header_can_carry_is_invalid_key_format(
    repo: Repo,
    capsys: pytest.CaptureFixture[str],
    provider_server: ProviderServer,
    key: str,
    problem: str,
) -> None:
    repo.write("delta", workspace_yaml("delta", enabled="openai", keys={"openai": key}))
    code, out, err = _cli(capsys, "plan", "--detailed-exitcode")
    assert code == 1, err
    assert out.startswith("Error: apply would refuse this plan")
    line = next(x for x in out.splitlines() if "invalid_key_format" in x)
    assert line.startswith("  delta: openai (enabled): invalid_key_format (OpenAI: ")
    assert problem in line
    assert "unexpected" not in out and "UnicodeEncodeError" not in out + err
    assert "delta (openai: invalid_key_format)" in err
    assert provider_server.seen() == []  # found before any request
    code, _, err = _cli(capsys, "apply", "--auto-approve")
    assert code == 1 and "invalid_key_format" in err
    path = repo.workspaces / "delta.yaml"
    code, _, err = _cli(capsys, "models", str(path), "openai")
    assert code == 1 and "delta openai: invalid_key_format" in err


def test_the_rule_against_the_sandbox_for_all_seven_providers(
    repo: Repo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both sides of the rule with every provider's real answer shapes (docs/sandbox.md)."""
    from byokctl.catalog import PROVIDERS
    from byokctl.sandbox import Sandbox

    with Sandbox(port=0, latency=0.0) as sandbox:
        for name, url in sandbox.base_urls().items():
            monkeypatch.setenv(name, url)
        for provider in PROVIDERS:
            slug = provider.replace("_", "-")
            key = {provider: f"sk-{slug}-invalid-canary-0001"}
            repo.write(f"bad-{slug}", workspace_yaml(f"bad-{slug}", enabled=provider, keys=key))
            key = {provider: f"sk-{slug}-outage-canary-0002"}
            repo.write(f"down-{slug}", workspace_yaml(f"down-{slug}", enabled=provider, keys=key))
        code, out, err = _cli(capsys, "plan", "--format", "json", "--detailed-exitcode")
        assert code == 1, err
        doc = json.loads(out)
        found = {(f["workspace"], f["provider"], f["outcome"]) for f in doc["errors"]}
        assert found == {(f"bad-{p.replace('_', '-')}", p, "invalid_key") for p in PROVIDERS}
        found = {(f["workspace"], f["provider"], f["outcome"]) for f in doc["warnings"]}
        assert found == {(f"down-{p.replace('_', '-')}", p, "outage") for p in PROVIDERS}
        code, _, err = _cli(capsys, "apply", "--auto-approve")
        assert code == 1 and "refusing to enable" in err
        for provider in PROVIDERS:
            (repo.workspaces / f"bad-{provider.replace('_', '-')}.yaml").unlink()
        code, out, err = _cli(capsys, "plan", "--detailed-exitcode")
        assert code == 2, err
        assert out.startswith(
            f"Warning: the provider could not confirm the credentials of {len(PROVIDERS)}"
        )
        code, out, err = _cli(capsys, "apply", "--auto-approve")
        assert code == 0, err
        assert f"Apply complete! Workspaces: {len(PROVIDERS)} added" in out
