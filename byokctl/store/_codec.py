"""Backend-neutral encodings: additional data for ciphertexts and the drift digest.

Both are shared by every backend so that a store's meaning does not depend on where it
lives (a later ``migrate-store`` can copy rows between backends unchanged).
"""

from __future__ import annotations

import hashlib
import hmac
import json

from byokctl.model import Workspace


def secret_aad(workspace: str, provider: str, field: str) -> bytes:
    """Additional data binding a ciphertext to its row; a JSON list, so no separator games."""
    return json.dumps(["byokctl-secret/v1", workspace, provider, field]).encode()


def canonical(workspace: Workspace, fingerprint_key: bytes) -> bytes:
    """A canonical encoding of a workspace; secrets appear only as keyed fingerprints."""
    doc = {
        "name": workspace.name,
        "notify": list(workspace.notify),
        "enabled": workspace.enabled,
        "providers": {
            pid: {
                "model": cfg.model,
                "settings": dict(cfg.settings),
                "secrets": {f: s.fingerprint(fingerprint_key) for f, s in cfg.secrets.items()},
            }
            for pid, cfg in workspace.providers.items()
        },
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def workspace_digest(workspace: Workspace, digest_key: bytes) -> bytes:
    """HMAC-SHA256 over the canonical form: what drift detection compares."""
    return hmac.new(digest_key, canonical(workspace, digest_key), hashlib.sha256).digest()


def rekey_digest(old_digest: bytes, digest_key: bytes) -> bytes:
    """A digest for a *drifted* workspace after key rotation.

    The canonical form apply last wrote is not kept, so it cannot be re-digested under
    the new key; this value never equals a real digest, so the workspace stays drifted
    until the next apply (which is what drift means).
    """
    return hmac.new(digest_key, b"rotated:" + old_digest, hashlib.sha256).digest()
