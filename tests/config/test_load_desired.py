"""Files encrypted by the real sops → desired state; every file's problem is reported."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from byokctl.config.loader import load_desired
from byokctl.model import Secret
from tests.conftest import Repo, workspace_yaml

CANARY = "sk-desired-canary-0a1b2c3d4e"


def test_desired_state_from_encrypted_files(make_repo: Callable[[], Repo]) -> None:
    repo = make_repo()
    repo.write(
        "acme",
        workspace_yaml(
            "acme", enabled="openai", keys={"openai": CANARY, "azure_openai": "az-key-12345678"}
        ),
    )
    repo.write("neo", workspace_yaml("neo"))
    loaded = load_desired([str(repo.workspaces)])
    assert loaded.ok, loaded.diagnostics
    acme = loaded.desired.workspaces["acme"]
    assert acme.enabled == "openai"
    assert acme.providers["openai"].secrets["api_key"] == Secret(CANARY)
    azure = acme.providers["azure_openai"]
    assert azure.settings == {
        "api_version": "2024-06-01",
        "deployment": "gpt4-prod",
        "endpoint": "https://acme.openai.azure.com",
    }
    assert loaded.desired.workspaces["neo"].enabled is None
    assert set(loaded.desired.sources) == {"acme", "neo"}
    assert len(loaded.desired.sources["acme"].sha256) == 64
    assert CANARY not in repr(loaded)


def test_every_broken_file_is_reported(
    make_repo: Callable[[], Repo], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo()
    repo.write("good", workspace_yaml("good", enabled="openai", keys={"openai": CANARY}))
    tampered = repo.write("tampered", workspace_yaml("tampered", keys={"openai": CANARY}))
    text = tampered.read_text().replace("model: gpt-4o", "model: gpt-4")
    tampered.write_text(text)
    repo.write("invalid", workspace_yaml("invalid", enabled="gemini"), encrypt=False)
    loaded = load_desired([str(repo.workspaces)])
    assert not loaded.ok
    rules = {d.path.rsplit("/", 1)[-1]: d.rule for d in loaded.diagnostics}
    assert rules == {"tampered.yaml": "sops-mac-mismatch", "invalid.yaml": "enabled-not-configured"}
    assert set(loaded.desired.workspaces) == {"good"}
    for d in loaded.diagnostics:
        assert CANARY not in d.format()


def test_no_identity_is_a_per_file_diagnostic(
    make_repo: Callable[[], Repo], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo()
    repo.write("a", workspace_yaml("a", keys={"openai": CANARY}))
    repo.write("b", workspace_yaml("b", keys={"openai": CANARY}))
    monkeypatch.delenv("SOPS_AGE_KEY_FILE")
    loaded = load_desired([str(repo.workspaces)])
    assert [d.rule for d in loaded.diagnostics] == ["sops-no-identity", "sops-no-identity"]
    assert "SOPS_AGE_KEY_FILE" in loaded.diagnostics[0].message
