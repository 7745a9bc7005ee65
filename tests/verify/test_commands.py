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

from byokctl.commands.apply import apply
from byokctl.commands.models import models
from byokctl.commands.plan import plan
from byokctl.errors import ByokError
from byokctl.model import Workspace
from byokctl.plan import Action, Change, CredentialCheck, Plan
from byokctl.verify import refuse_failed_enable, with_checks
from tests.conftest import Repo, workspace_yaml
from tests.verify.conftest import ProviderServer, Reply
from tests.verify.shapes import env_for, serve_ok

GOOD = "sk-cmd-canary-good-7a6b5c4d3e2f1"
BAD = "sk-cmd-canary-bad-0f1e2d3c4b5a6"


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
        return Reply(200, {"object": "list", "data": [{"id": "gpt-4o"}, {"id": "gpt-4o-mini"}]})

    provider_server.route("/openai/v1/models", by_key)
    serve_ok(provider_server, "anthropic")
    return repo


def _run_plan(fmt: str = "text") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = plan(
        [], store=None, fmt=fmt, out_file=None, detailed_exitcode=False, targets=[],  # type: ignore[arg-type]
        verify=True, out=out, err=err, parallelism=4,
    )  # fmt: skip
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
    repo.write("beta", workspace_yaml("beta", enabled="openai", keys={"openai": BAD}))
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
    with pytest.raises(ByokError, match="not verified"):
        refuse_failed_enable(_plan(_change("a", "openai", ())))
    with pytest.raises(ByokError) as info:
        refuse_failed_enable(_plan(_change("a", "openai", (CredentialCheck("openai", "outage"),))))
    assert info.value.hint is not None and "retry later" in info.value.hint


def test_with_checks_attaches_by_name() -> None:
    p = _plan(_change("a", "openai", ()), _change("b", None, ()))
    got = with_checks(p, {"a": (CredentialCheck("openai", "ok", "fine"),)})
    assert got.change("a").checks == (CredentialCheck("openai", "ok", "fine"),)
    assert got.change("b").checks == ()
