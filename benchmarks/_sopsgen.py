"""Benchmark fixtures only: write many SOPS files fast, and prove them equal to sops's.

Encrypting 10,000 files with the sops binary takes minutes, so the benchmarks write the
SOPS format themselves (age-wrapped data key, AES-256-GCM values with the key path as
additional data, the SHA-512 MAC). byokctl itself never writes the format: it calls
``sops encrypt``. :func:`check_with_sops` decrypts a sample with the real binary so a
benchmark never runs on files sops would not accept.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyrage
import yaml
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from byokctl.sops import find_sops_binary

LASTMODIFIED = "2026-11-27T12:00:00Z"


def _enc(aes: AESGCM, plaintext: bytes, aad: bytes, kind: str = "str") -> str:
    iv = os.urandom(32)
    sealed = aes.encrypt(iv, plaintext, aad)
    data, tag = sealed[:-16], sealed[-16:]
    b64 = base64.b64encode
    return (
        f"ENC[AES256_GCM,data:{b64(data).decode()},iv:{b64(iv).decode()},"
        f"tag:{b64(tag).decode()},type:{kind}]"
    )


def _leaves(value: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _leaves(child, (*path, key))
    elif isinstance(value, list):
        for child in value:
            yield from _leaves(child, path)
    else:
        yield path, value


def encrypt_document(doc: dict[str, Any], recipient: str) -> str:
    """The SOPS file for ``doc`` (strings only), encrypting keys named ``api_key``."""
    data_key = os.urandom(32)
    aes = AESGCM(data_key)
    mac = hashlib.sha512()

    def walk(value: Any, path: tuple[str, ...]) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, path) for v in value]
        text = str(value)
        mac.update(text.encode())
        if path and path[-1] == "api_key":
            return _enc(aes, text.encode(), (":".join(path) + ":").encode())
        return text

    encrypted = walk(doc, ())
    encrypted["sops"] = {
        "age": [
            {
                "recipient": recipient,
                "enc": pyrage.encrypt(
                    data_key, [pyrage.x25519.Recipient.from_str(recipient)], armored=True
                ).decode(),
            }
        ],
        "lastmodified": LASTMODIFIED,
        "mac": _enc(aes, mac.hexdigest().upper().encode(), LASTMODIFIED.encode()),
        "encrypted_regex": "^api_key$",
        "version": "3.11.0",
    }
    return yaml.safe_dump(encrypted, sort_keys=False, width=200)


def workspace_document(i: int, *, key_tag: str = "") -> dict[str, Any]:
    """A realistic workspace: 1-3 providers, one enabled (every 5th on Neo)."""
    name = f"ws-{i:05d}"
    providers: dict[str, Any] = {
        "openai": {"model": "gpt-4o", "api_key": f"sk-bench-openai-{i:05d}{key_tag}"},
    }
    if i % 2:
        providers["anthropic"] = {
            "model": "claude-3-5-sonnet-20241022",
            "api_key": f"sk-ant-bench-{i:05d}{key_tag}",
        }
    if i % 3 == 0:
        providers["azure_openai"] = {
            "model": "gpt-4",
            "endpoint": f"https://bench-{i:05d}.openai.azure.com",
            "api_version": "2024-06-01",
            "deployment": "gpt4-prod",
            "api_key": f"az-bench-{i:05d}{key_tag}",
        }
    spec: dict[str, Any] = {"providers": providers}
    if i % 5:
        spec = {"enabled": "openai", **spec}
    return {
        "apiVersion": "byok/v1",
        "kind": "Workspace",
        "metadata": {"name": name, "notify": [f"ops-{i:05d}@bench.example"]},
        "spec": spec,
    }


def new_identity(directory: Path) -> tuple[Path, str]:
    """A throwaway age identity file and its recipient."""
    identity = pyrage.x25519.Identity.generate()
    key_file = directory / "age.txt"
    key_file.write_text(f"{identity}\n")
    return key_file, str(identity.to_public())


def check_with_sops(path: Path, key_file: Path) -> dict[str, Any]:
    """Decrypt ``path`` with the real sops binary (raises if sops refuses it)."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(key_file.parent),
        "SOPS_AGE_KEY_FILE": str(key_file),
        "SOPS_DISABLE_VERSION_CHECK": "1",
    }
    out = subprocess.run(
        [str(find_sops_binary()), "decrypt", str(path)],
        env=env,
        capture_output=True,
        check=True,
    ).stdout
    result: dict[str, Any] = yaml.safe_load(out)
    return result
