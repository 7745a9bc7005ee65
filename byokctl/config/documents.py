"""Decrypted documents → domain values, and decryption errors → rule ids (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from byokctl.catalog import PROVIDERS, SECRET_FIELDS, flatten_settings
from byokctl.errors import SopsError
from byokctl.model import FallbackPolicy, ProviderConfig, Secret, Workspace


@cache
def _sops_rules() -> Mapping[type[SopsError], str]:
    from byokctl import errors  # noqa: PLC0415

    return {
        errors.NotSopsFileError: "sops-not-sops-file",
        errors.NoIdentityError: "sops-no-identity",
        errors.IdentityMismatchError: "sops-wrong-identity",
        errors.MacMismatchError: "sops-mac-mismatch",
        errors.DecryptionError: "sops-decrypt-failed",
        errors.SopsBinaryError: "sops-binary",
    }


def sops_rule(exc: SopsError) -> str:
    for cls, rule in _sops_rules().items():
        if isinstance(exc, cls):
            return rule
    return "sops-error"


def with_placeholders(data: Mapping[str, Any], encrypted: Mapping[str, Any]) -> dict[str, Any]:
    """The decrypted document with secrets put back as their ciphertext, for re-checking."""
    out = dict(data)
    out["sops"] = encrypted.get("sops")
    spec = dict(out.get("spec") or {})
    providers = dict(spec.get("providers") or {})
    enc_providers = encrypted["spec"]["providers"]
    for name, config in providers.items():
        restored = dict(config)
        for field_name in SECRET_FIELDS:
            if field_name in restored:
                restored[field_name] = enc_providers[name][field_name]
        providers[name] = restored
    spec["providers"] = providers
    out["spec"] = spec
    return out


def workspace_from_document(data: Mapping[str, Any]) -> Workspace:
    """Build a Workspace from a valid, decrypted document."""
    metadata = data["metadata"]
    spec = data["spec"]
    providers: dict[str, ProviderConfig] = {}
    for provider_id, config in (spec.get("providers") or {}).items():
        provider = PROVIDERS[provider_id]
        providers[provider_id] = ProviderConfig(
            provider=provider_id,
            model=str(config["model"]),
            settings=flatten_settings(provider, config),
            secrets={k: Secret(str(config[k])) for k in provider.secret_fields if k in config},
            models={str(f): str(m) for f, m in (config.get("models") or {}).items()},
        )
    return Workspace(
        name=metadata["name"],
        notify=tuple(metadata.get("notify") or ()),
        enabled=spec.get("enabled"),
        providers=providers,
        fallback=FallbackPolicy.from_fields(spec.get("fallback") or {}),
    )
