"""encrypt_file follows .sops.yaml; the sops binary is found; the public API is pinned."""

from __future__ import annotations

from pathlib import Path

import pytest

import byokctl.sops
from byokctl.errors import SopsError
from byokctl.sops import (
    decrypt_file,
    encrypt_file,
    encrypt_to_bytes,
    find_sops_binary,
    load_identities,
)
from tests.sops.conftest import AgeKey, clean_env


def test_public_api_is_pinned() -> None:
    assert sorted(byokctl.sops.__all__) == [
        "AgeIdentity",
        "DecryptResult",
        "Identities",
        "decrypt_file",
        "encrypt_file",
        "encrypt_to_bytes",
        "find_sops_binary",
        "is_sops_document",
        "load_identities",
    ]


def test_find_sops_binary_is_the_real_executable() -> None:
    binary = find_sops_binary()
    assert binary.is_file()
    assert binary.read_bytes()[:4] != b"#!/u"  # the Go binary, not the Python wrapper


def test_encrypt_file_uses_the_repo_sops_yaml(tmp_path: Path, key1: AgeKey) -> None:
    (tmp_path / ".sops.yaml").write_text(
        "creation_rules:\n"
        "  - path_regex: workspaces/.*\\.yaml$\n"
        f"    age: {key1.recipient}\n"
        "    encrypted_regex: ^api_key$\n"
    )
    target = tmp_path / "workspaces" / "team" / "acme.yaml"
    target.parent.mkdir(parents=True)
    target.write_text("name: acme\napi_key: sk-to-encrypt-123\n")

    encrypt_file(target, env=clean_env(tmp_path))

    text = target.read_text()
    assert "sk-to-encrypt-123" not in text and "name: acme" in text
    env = clean_env(tmp_path, SOPS_AGE_KEY=key1.secret)
    result = decrypt_file(target, identities=load_identities(env))
    assert result.via == "native"
    assert result.data == {"name": "acme", "api_key": "sk-to-encrypt-123"}


def test_encrypt_file_without_a_rule_says_so(tmp_path: Path) -> None:
    target = tmp_path / "acme.yaml"
    target.write_text("api_key: sk-unruled-456\n")
    with pytest.raises(SopsError) as caught:
        encrypt_file(target, env=clean_env(tmp_path))
    assert str(target) in str(caught.value)
    assert "sk-unruled-456" not in str(caught.value)
    assert target.read_text() == "api_key: sk-unruled-456\n"


def test_encrypt_to_bytes_never_writes_plaintext(tmp_path: Path, key1: AgeKey) -> None:
    (tmp_path / ".sops.yaml").write_text(
        "creation_rules:\n"
        "  - path_regex: workspaces/.*\\.yaml$\n"
        f"    age: {key1.recipient}\n"
        "    encrypted_regex: ^api_key$\n"
    )
    target = tmp_path / "workspaces" / "acme.yaml"
    target.parent.mkdir()
    encrypted = encrypt_to_bytes(
        b"name: acme\napi_key: sk-piped-789\n", filename=target, env=clean_env(tmp_path)
    )
    assert not target.exists()
    assert b"sk-piped-789" not in encrypted
    target.write_bytes(encrypted)
    env = clean_env(tmp_path, SOPS_AGE_KEY=key1.secret)
    assert decrypt_file(target, identities=load_identities(env)).data == {
        "name": "acme",
        "api_key": "sk-piped-789",
    }


def test_encrypt_to_bytes_without_a_rule_says_so(tmp_path: Path) -> None:
    with pytest.raises(SopsError) as caught:
        encrypt_to_bytes(
            b"api_key: sk-unruled-000\n", filename=tmp_path / "x.yaml", env=clean_env(tmp_path)
        )
    assert "creation rule" in str(caught.value)
    assert "sk-unruled-000" not in str(caught.value)
