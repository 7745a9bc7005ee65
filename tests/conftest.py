"""Fixtures shared by every test.

``_isolate`` (autouse) makes it impossible for a test to read or write the user's real
home, sops identities, byokctl store or crash logs.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pyrage
import pytest

from byokctl.sops import find_sops_binary

# GITHUB_ too: under GitHub Actions the CLI writes to $GITHUB_OUTPUT and the step summary,
# and a test must never write to the real job's files.
_ENV_PREFIXES = ("SOPS_", "BYOK_", "XDG_", "GITHUB_")


@pytest.fixture(autouse=True)
def _isolate(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("home")
    for name in list(os.environ):
        if name.startswith(_ENV_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    monkeypatch.setenv("SOPS_DISABLE_VERSION_CHECK", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    return home


# --- a GitOps repo encrypted by the real sops ------------------------------------------


@dataclass(frozen=True)
class Repo:
    """A workspace repository: ``root/.sops.yaml``, ``root/workspaces/*.yaml``, an age key."""

    root: Path
    key_file: Path
    recipient: str

    @property
    def workspaces(self) -> Path:
        return self.root / "workspaces"

    def write(self, name: str, text: str, *, encrypt: bool = True) -> Path:
        """Write ``workspaces/NAME.yaml`` and encrypt it with the real sops."""
        path = self.workspaces / f"{name}.yaml"
        path.write_text(text)
        if encrypt:
            env = {
                "PATH": os.environ.get("PATH", ""),
                "HOME": os.environ["HOME"],
                "SOPS_DISABLE_VERSION_CHECK": "1",
            }
            subprocess.run(
                [str(find_sops_binary()), "encrypt", "-i", str(path)],
                cwd=self.root,
                env=env,
                check=True,
                capture_output=True,
            )
        return path


def workspace_yaml(
    name: str,
    *,
    enabled: str | None = None,
    keys: Mapping[str, str] | None = None,
    models: Mapping[str, str] | None = None,
    notify: str = "[ops@example.com]",
) -> str:
    """A workspace file; ``keys`` maps provider id to its (plaintext) api_key."""
    keys = keys or {}
    models = models or {}
    default_models = {
        "openai": "gpt-4o",
        "anthropic": "claude-3-5-sonnet-20241022",
        "gemini": "gemini-2.0-flash",
        "xai": "grok-3",
        "deepseek": "deepseek-chat",
        "azure_openai": "gpt-4",
        "openai_compatible": "llama-3.1-8b-instruct",
    }
    lines = [
        "apiVersion: byok/v1",
        "kind: Workspace",
        "metadata:",
        f"  name: {name}",
        f"  notify: {notify}",
        "spec:",
    ]
    if enabled:
        lines.append(f"  enabled: {enabled}")
    lines.append("  providers:" + ("" if keys else " {}"))
    for provider, key in keys.items():
        lines += [
            f"    {provider}:",
            f"      model: {models.get(provider, default_models[provider])}",
        ]
        if provider == "azure_openai":
            lines += [
                "      endpoint: https://acme.openai.azure.com",
                '      api_version: "2024-06-01"',
                "      deployment: gpt4-prod",
            ]
        if provider == "openai_compatible":
            lines.append("      base_url: https://llm.acme.example/v1")
        lines.append(f"      api_key: {key}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def make_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], Repo]:
    """A factory for an empty repo whose age key is in SOPS_AGE_KEY_FILE."""

    def make() -> Repo:
        identity = pyrage.x25519.Identity.generate()
        root = tmp_path / "repo"
        (root / "workspaces").mkdir(parents=True)
        key_file = tmp_path / "age.txt"
        key_file.write_text(f"{identity}\n")
        recipient = str(identity.to_public())
        (root / ".sops.yaml").write_text(
            "creation_rules:\n"
            "  - path_regex: .*\\.yaml$\n"
            "    encrypted_regex: ^api_key$\n"
            f"    age: {recipient}\n"
        )
        monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(key_file))
        return Repo(root, key_file, recipient)

    return make
